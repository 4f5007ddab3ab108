/**
 * The conflist's `mesh-init` block: which pods the plugin captures, how it reads
 * them, and the flags every pod gets unless its annotations say otherwise. Checked
 * once per call, before anything else; every message names the key.
 */

import { POD_FLAGS } from '../../config/annotations.js';
import { validateConfig } from '../../config/config.js';
import { FLAGS, type FlagSpec } from '../../config/flags.js';
import type { GivenOption, GivenOptions } from '../../config/given.js';
import { namesGroups } from '../../config/groups.js';
import { UsageError } from '../../errors.js';
import { CniError, ERROR_CODES } from './protocol.js';

/** The plugin's `type`: the file name in the runtime's CNI bin directory. */
export const PLUGIN_TYPE = 'mesh-init-cni';
/** The key of the plugin's own block in its plugin configuration. */
export const BLOCK_KEY = 'mesh-init';

/**
 * Flags that belong to the validation init container, not to the rules: the CNI
 * plugin never takes them from the block, and leaves them to that container when a
 * pod's annotations set them.
 */
export const INIT_CONTAINER_FLAGS: ReadonlySet<string> = new Set([
  'run-validation',
  'probe-address',
  'probe-port',
  'probe-timeout',
  'log-format',
  'log_as_json',
  'log_output_level',
]);

/** The plugin runs in the pod's namespace, which the runtime names; nobody else may. */
export const NAMESPACE_FLAG = 'network-namespace';

/** The flags the block may set: a pod's capture flags, and the node's choice of native nftables. */
export const BLOCK_FLAGS: readonly FlagSpec[] = [
  ...POD_FLAGS.filter(
    (flag) => !INIT_CONTAINER_FLAGS.has(flag.name) && flag.name !== NAMESPACE_FLAG,
  ),
  ...FLAGS.filter((flag) => flag.name === 'native-nftables'),
];

export interface PodLookup {
  /** Reads of the pod before ADD gives up (the first included). */
  readonly attempts: number;
  readonly intervalMs: number;
  /** How long one read may take. */
  readonly timeoutMs: number;
}

export interface CniSettings {
  /** Without one every pod outside excludeNamespaces is captured with the block's flags. */
  readonly kubeconfig: string | undefined;
  readonly excludeNamespaces: readonly string[];
  /** A pod is captured only if it has a container (or native sidecar) of this name. */
  readonly proxyContainer: string;
  /** A pod that has an init container of this name programs itself: it is left alone. */
  readonly initContainer: string;
  readonly podLookup: PodLookup;
  readonly logFormat: 'text' | 'json';
  /** The block's flags, as the command line would give them. */
  readonly options: GivenOptions;
}

const DEFAULT_SETTINGS = {
  proxyContainer: 'proxy',
  initContainer: 'mesh-init',
  podLookup: { attempts: 10, intervalMs: 1000, timeoutMs: 5000 },
} as const;

const KEYS = [
  'kubeconfig',
  'excludeNamespaces',
  'proxyContainer',
  'initContainer',
  'podLookup',
  'logFormat',
  'flags',
] as const;

function invalid(key: string, expected: string, got: unknown): CniError {
  return new CniError(
    ERROR_CODES.invalidConfig,
    `invalid ${BLOCK_KEY}.${key} in the CNI network configuration: expected ${expected}, got ${JSON.stringify(got)}`,
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Kubernetes names (containers, namespaces) are DNS labels. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsLabel(key: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !DNS_LABEL.test(value) || value.length > 63) {
    throw invalid(key, 'a DNS label (lower-case letters, digits and "-", at most 63)', value);
  }
  return value;
}

function namespaces(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('excludeNamespaces', 'a list of namespace names', value);
  return value.map((item, i) => dnsLabel(`excludeNamespaces[${i}]`, item, ''));
}

function kubeconfig(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw invalid('kubeconfig', 'an absolute path to a kubeconfig file', value);
  }
  return value;
}

function seconds(key: string, value: unknown, min: number, max: number, fallbackMs: number) {
  if (value === undefined) return fallbackMs;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(key, `a number of seconds ${min}-${max}`, value);
  }
  return Math.round(value * 1000);
}

function podLookup(value: unknown): PodLookup {
  const defaults = DEFAULT_SETTINGS.podLookup;
  if (value === undefined) return defaults;
  if (!isObject(value)) throw invalid('podLookup', 'an object', value);
  const known = ['attempts', 'intervalSeconds', 'timeoutSeconds'];
  const unknown = Object.keys(value).find((key) => !known.includes(key));
  if (unknown !== undefined) {
    throw invalid(`podLookup.${unknown}`, `one of the keys ${known.join(', ')}`, unknown);
  }
  const { attempts } = value;
  if (
    attempts !== undefined &&
    (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 1 || attempts > 100)
  ) {
    throw invalid('podLookup.attempts', 'an integer 1-100', attempts);
  }
  return {
    attempts: attempts ?? defaults.attempts,
    intervalMs: seconds(
      'podLookup.intervalSeconds',
      value.intervalSeconds,
      0,
      60,
      defaults.intervalMs,
    ),
    timeoutMs: seconds(
      'podLookup.timeoutSeconds',
      value.timeoutSeconds,
      0.1,
      60,
      defaults.timeoutMs,
    ),
  };
}

function logFormat(value: unknown): 'text' | 'json' {
  if (value === undefined) return 'text';
  if (value !== 'text' && value !== 'json') throw invalid('logFormat', '"text" or "json"', value);
  return value;
}

/** How messages name a flag of the block: `mesh-init.flags.proxy-port of the CNI configuration`. */
function blockOrigin(name: string): string {
  return `${BLOCK_KEY}.flags.${name} of the CNI configuration`;
}

/**
 * A flag's JSON value as the command line's text: a boolean flag takes a boolean; any
 * other flag a string, a number, or a list of them (written as a comma list).
 */
function flagValue(flag: FlagSpec, value: unknown): string | boolean {
  const key = `flags.${flag.name}`;
  if (flag.type === 'boolean') {
    if (typeof value !== 'boolean') throw invalid(key, 'true or false', value);
    return value;
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (
    Array.isArray(value) &&
    value.every((item) => typeof item === 'string' || typeof item === 'number')
  ) {
    return value.join(',');
  }
  throw invalid(key, 'a string, a number or a list of them', value);
}

function flagOptions(value: unknown): Map<string, GivenOption> {
  const options = new Map<string, GivenOption>();
  if (value === undefined) return options;
  if (!isObject(value))
    throw invalid('flags', "an object of mesh-init's flags by long name", value);
  for (const [name, given] of Object.entries(value)) {
    const flag = BLOCK_FLAGS.find((f) => f.name === name);
    if (flag === undefined) {
      const why = INIT_CONTAINER_FLAGS.has(name)
        ? 'it belongs to the validation init container (mesh-init inject --cni)'
        : name === NAMESPACE_FLAG
          ? 'the plugin applies in the namespace the runtime names (CNI_NETNS)'
          : 'no such flag of mesh-init inject --help';
      throw new CniError(
        ERROR_CODES.invalidConfig,
        `invalid ${BLOCK_KEY}.flags.${name} in the CNI network configuration: ${why}`,
      );
    }
    options.set(name, { value: flagValue(flag, given), origin: blockOrigin(name), fromEnv: false });
  }
  return options;
}

/** The plugin configuration's block → settings; a missing block is every default. */
export function parseSettings(raw: Readonly<Record<string, unknown>>): CniSettings {
  const block = raw[BLOCK_KEY] ?? {};
  if (!isObject(block)) {
    throw new CniError(
      ERROR_CODES.invalidConfig,
      `invalid ${BLOCK_KEY} in the CNI network configuration: expected an object, got ${JSON.stringify(block)}`,
    );
  }
  const unknown = Object.keys(block).find((key) => !(KEYS as readonly string[]).includes(key));
  if (unknown !== undefined) {
    throw new CniError(
      ERROR_CODES.invalidConfig,
      `invalid ${BLOCK_KEY}.${unknown} in the CNI network configuration: no such key (${KEYS.join(', ')})`,
    );
  }
  const proxyContainer = dnsLabel(
    'proxyContainer',
    block.proxyContainer,
    DEFAULT_SETTINGS.proxyContainer,
  );
  const initContainer = dnsLabel(
    'initContainer',
    block.initContainer,
    DEFAULT_SETTINGS.initContainer,
  );
  if (proxyContainer === initContainer) {
    throw new CniError(
      ERROR_CODES.invalidConfig,
      `conflicting ${BLOCK_KEY}.proxyContainer and ${BLOCK_KEY}.initContainer in the CNI network configuration: both name "${proxyContainer}"`,
    );
  }
  const options = flagOptions(block.flags);
  try {
    // Every pod starts from these: a bad one is the node's mistake, found before any pod.
    if (namesGroups(validateConfig(options))) {
      throw new UsageError(
        `invalid ${BLOCK_KEY}.flags: group names of --outbound-owner-groups need the pod's /etc/group, which the CNI plugin cannot read; give GIDs`,
      );
    }
  } catch (error) {
    if (error instanceof UsageError) throw new CniError(ERROR_CODES.invalidConfig, error.message);
    throw error;
  }
  return {
    kubeconfig: kubeconfig(block.kubeconfig),
    excludeNamespaces: namespaces(block.excludeNamespaces),
    proxyContainer,
    initContainer,
    podLookup: podLookup(block.podLookup),
    logFormat: logFormat(block.logFormat),
    options,
  };
}
