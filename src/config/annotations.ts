import { UsageError } from '../errors.js';
import { FLAGS, type FlagSpec } from './flags.js';
import type { GivenOption, GivenOptions } from './given.js';

/**
 * Per-pod settings from the pod template's annotations, turned into the same
 * GivenOptions the command line gives, so that validateConfig checks them with
 * the same rules and its messages name the annotation and the resource.
 */

/** mesh-init's own annotations: `mesh-init/<flag>`, `mesh-init/inject`, `mesh-init/status`. */
export const MESH_INIT_PREFIX = 'mesh-init/';

/** What inject records on a pod template: the containers it added, to replace them next time. */
export const STATUS_ANNOTATION = `${MESH_INIT_PREFIX}status`;

/** `"false"` keeps a workload out (Istio's name, also as a label, and ours). */
export const INJECT_ANNOTATIONS: readonly string[] = [
  'sidecar.istio.io/inject',
  `${MESH_INIT_PREFIX}inject`,
];

/** Istio's interception mode that means "no capture at all": no init container. */
export const ISTIO_MODE_ANNOTATION = 'sidecar.istio.io/interceptionMode';

/**
 * Flags that are the run's mode or Istio's spellings rather than a pod's capture
 * settings: an injected init container never carries them (inject adds
 * --run-validation --skip-rule-apply itself for --cni).
 */
const NOT_PER_POD: ReadonlySet<string> = new Set([
  'dry-run',
  'cleanup',
  'check',
  'skip-rule-apply',
  'log_as_json',
  'log_output_level',
  'native-nftables',
  'force-apply',
]);

/** The flags an injected init container may carry: on inject's command line and as `mesh-init/<flag>`. */
export const POD_FLAGS: readonly FlagSpec[] = FLAGS.filter((flag) => !NOT_PER_POD.has(flag.name));

/** Istio's annotation names, where Istio has one for the same setting. */
const ISTIO_ANNOTATIONS: ReadonlyMap<string, string> = new Map([
  ['traffic.sidecar.istio.io/includeOutboundIPRanges', 'outbound-include-cidrs'],
  ['traffic.sidecar.istio.io/excludeOutboundIPRanges', 'outbound-exclude-cidrs'],
  ['traffic.sidecar.istio.io/includeInboundPorts', 'inbound-ports'],
  ['traffic.sidecar.istio.io/excludeInboundPorts', 'inbound-exclude-ports'],
  ['traffic.sidecar.istio.io/includeOutboundPorts', 'outbound-include-ports'],
  ['traffic.sidecar.istio.io/excludeOutboundPorts', 'outbound-exclude-ports'],
  ['traffic.sidecar.istio.io/kubevirtInterfaces', 'kube-virt-interfaces'],
  ['traffic.sidecar.istio.io/excludeInterfaces', 'exclude-interfaces'],
  [ISTIO_MODE_ANNOTATION, 'inbound-interception-mode'],
]);

/** Every annotation that sets a flag, Istio's first, then `mesh-init/<flag>` in the flag table's order. */
export const FLAG_ANNOTATIONS: ReadonlyMap<string, FlagSpec> = new Map([
  ...[...ISTIO_ANNOTATIONS].map(([key, name]): [string, FlagSpec] => [key, flagNamed(name)]),
  ...POD_FLAGS.map((flag): [string, FlagSpec] => [`${MESH_INIT_PREFIX}${flag.name}`, flag]),
]);

function flagNamed(name: string): FlagSpec {
  const flag = POD_FLAGS.find((f) => f.name === name);
  if (flag === undefined) throw new Error(`no per-pod flag --${name}`);
  return flag;
}

/** Annotation values as the manifest has them: strings, unless the manifest is wrong. */
export type Annotations = ReadonlyMap<string, unknown>;

function origin(key: string, resource: string): string {
  return `annotation ${key} on ${resource}`;
}

/** Kubernetes keeps annotations as strings; an unquoted `15001` or `false` is refused by the API server too. */
function stringValue(key: string, value: unknown, resource: string): string {
  if (typeof value === 'string') return value;
  const shown = value === null ? 'null' : JSON.stringify(value);
  throw new UsageError(
    `invalid ${origin(key, resource)}: expected a string (annotation values are strings: quote it), got ${shown}`,
  );
}

function booleanValue(key: string, text: string, resource: string): boolean {
  const value = text.trim().toLowerCase();
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(
    `invalid ${origin(key, resource)}: expected "true" or "false", got "${text}"`,
  );
}

/**
 * The command line's options with the pod's annotations on top (an annotation
 * beats the flag: it is the more specific choice). Unknown `mesh-init/…`
 * annotations and two annotations for one flag are errors, not ignored.
 */
export function optionsWithAnnotations(
  base: GivenOptions,
  annotations: Annotations,
  resource: string,
): Map<string, GivenOption> {
  const options = new Map(base);
  const setBy = new Map<string, string>();
  for (const [key, raw] of annotations) {
    const flag = FLAG_ANNOTATIONS.get(key);
    if (flag === undefined) {
      if (isUnknownOwn(key)) {
        throw new UsageError(
          `invalid ${origin(key, resource)}: no such mesh-init annotation (mesh-init/inject, or mesh-init/ and a flag of mesh-init inject --help, such as mesh-init/proxy-port)`,
        );
      }
      continue;
    }
    const text = stringValue(key, raw, resource);
    if (key === ISTIO_MODE_ANNOTATION && text.trim() === 'NONE') continue; // no capture: see wantsCapture
    const earlier = setBy.get(flag.name);
    if (earlier !== undefined) {
      throw new UsageError(
        `conflicting ${origin(earlier, resource)} and ${origin(key, resource)}: both set --${flag.name}, choose one`,
      );
    }
    setBy.set(flag.name, key);
    const value = flag.type === 'boolean' ? booleanValue(key, text, resource) : text;
    options.set(flag.name, { value, origin: origin(key, resource), fromEnv: false });
  }
  return options;
}

function isUnknownOwn(key: string): boolean {
  return (
    key.startsWith(MESH_INIT_PREFIX) &&
    key !== STATUS_ANNOTATION &&
    !INJECT_ANNOTATIONS.includes(key)
  );
}

/** Istio's yes and no words for sidecar.istio.io/inject, in any case. */
const YES = ['true', 'yes', 'y', 'on'];
const NO = ['false', 'no', 'n', 'off'];

/**
 * Whether the workload wants mesh-init: not when an inject annotation (or Istio's
 * inject label) says no. Anything but a yes or no word is an error.
 */
export function wantsInjection(
  annotations: Annotations,
  labels: Annotations,
  resource: string,
): boolean {
  const said = [
    ...INJECT_ANNOTATIONS.map((key) => ({ key, what: 'annotation', value: annotations.get(key) })),
    { key: 'sidecar.istio.io/inject', what: 'label', value: labels.get('sidecar.istio.io/inject') },
  ];
  let wanted = true;
  for (const { key, what, value } of said) {
    if (value === undefined) continue;
    const where = `${what} ${key} on ${resource}`;
    if (typeof value !== 'string') {
      throw new UsageError(
        `invalid ${where}: expected a string ("true" or "false", quoted), got ${JSON.stringify(value)}`,
      );
    }
    const word = value.trim().toLowerCase();
    if (NO.includes(word)) wanted = false;
    else if (!YES.includes(word)) {
      throw new UsageError(`invalid ${where}: expected "true" or "false", got "${value}"`);
    }
  }
  return wanted;
}

/** Istio's `sidecar.istio.io/interceptionMode: NONE`: the proxy without traffic capture. */
export function wantsCapture(annotations: Annotations): boolean {
  const mode = annotations.get(ISTIO_MODE_ANNOTATION);
  return !(typeof mode === 'string' && mode.trim() === 'NONE');
}
