import type { Argv } from 'yargs';
import {
  FLAG_ANNOTATIONS,
  INJECT_ANNOTATIONS,
  ISTIO_MODE_ANNOTATION,
  MESH_INIT_PREFIX,
  POD_FLAGS,
} from '../../config/annotations.js';
import { validateConfig } from '../../config/config.js';
import type { GivenOption } from '../../config/given.js';
import { strictParser } from '../../config/parser.js';
import { UsageError } from '../../errors.js';
import { VERSION } from '../../version.js';
import type { InjectSettings } from './inject.js';

/** `mesh-init inject …`: its own yargs parser, with the capture flags of the flag table. */

const DEFAULT_IMAGE = `mesh-init:${VERSION}`;
const DEFAULT_NAME = 'mesh-init';
/** Istio calls its CNI-mode init container istio-validation: a reader sees it only checks. */
const DEFAULT_CNI_NAME = 'mesh-init-validation';
const DEFAULT_PROXY_NAME = 'proxy';

export type ParsedInject =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'inject'; readonly filename: string; readonly settings: InjectSettings };

/** The flags of inject itself, besides mesh-init's capture flags. */
const INJECT_FLAGS = {
  filename: {
    alias: 'f',
    type: 'string',
    describe: 'the manifests to inject: a YAML or JSON file, or - for standard input',
  },
  image: {
    type: 'string',
    describe: `image of the init container [default: ${DEFAULT_IMAGE}]`,
  },
  'container-name': {
    type: 'string',
    describe: `name of the init container [default: ${DEFAULT_NAME}, with --cni ${DEFAULT_CNI_NAME}]`,
  },
  'proxy-image': {
    type: 'string',
    describe: 'also add the proxy container, with this image, running as --proxy-uid',
  },
  'proxy-name': {
    type: 'string',
    describe: `name of the proxy container [default: ${DEFAULT_PROXY_NAME}]`,
  },
  cni: {
    type: 'boolean',
    describe:
      'the CNI plugin applies the rules: the init container only proves them (--run-validation --skip-rule-apply), as the proxy UID, without capabilities',
  },
  'upgrade-api': {
    type: 'boolean',
    describe:
      'rewrite workloads of removed apiVersions (extensions/v1beta1, apps/v1beta1|2, batch/v1beta1) to the current one, with spec.selector from the template labels where it is missing',
  },
} as const;

const USAGE = `mesh-init inject -f FILE|- [options]

Writes Kubernetes manifests (YAML or JSON, several documents, Lists) to stdout with mesh-init's init container first among the init containers of every pod template: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob. Everything else is written back unchanged. Injecting again replaces what an earlier run added.`;

const column = (key: string) => key.padEnd(50);

/** The annotations, as a table: they beat the capture flags for their pod. */
const EPILOGUE = [
  'Annotations of a pod template (they beat the flags above for that pod; values are strings):',
  `  ${column(INJECT_ANNOTATIONS.join(', '))}"false" leaves the workload out`,
  ...[...FLAG_ANNOTATIONS]
    .filter(([key]) => !key.startsWith(MESH_INIT_PREFIX))
    .map(([key, flag]) => `  ${column(key)}${flag.short ? `-${flag.short}, ` : ''}--${flag.name}`),
  `  ${column(`${ISTIO_MODE_ANNOTATION}: NONE`)}no init container (--proxy-image still adds)`,
  `  ${column(`${MESH_INIT_PREFIX}<flag>`)}a capture flag: ${MESH_INIT_PREFIX}proxy-port: "15006"`,
].join('\n');

function buildParser(argv: readonly string[]): Argv {
  let parser = strictParser(argv, 'mesh-init inject', USAGE)
    .options(INJECT_FLAGS)
    .group(['filename', ...Object.keys(INJECT_FLAGS).slice(1)], 'Inject:')
    .epilogue(EPILOGUE)
    .example('kubectl apply -f <(mesh-init inject --upgrade-api -f apps.yaml)', '')
    .example(
      'mesh-init inject -f - -x 10.0.0.0/8 --proxy-image envoyproxy/envoy:v1.34 < pod.yaml',
      '',
    );
  for (const flag of POD_FLAGS) {
    parser = parser.option(flag.name, {
      type: flag.type,
      describe: `${flag.describe} [default: ${flag.defaultText}] [annotation: ${MESH_INIT_PREFIX}${flag.name}]`,
      ...(flag.short ? { alias: flag.short } : {}),
    });
  }
  return parser.group(
    POD_FLAGS.map((flag) => flag.name),
    "Capture (the init container's own flags, default -p 15001 -u 1337):",
  );
}

/** A flag's single value; yargs makes an array of a flag given twice, which is refused. */
function single(args: Record<string, unknown>, name: string): string | boolean | undefined {
  const value = args[name];
  if (Array.isArray(value)) throw new UsageError(`invalid --${name}: given more than once`);
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  return undefined;
}

function text(args: Record<string, unknown>, name: string): string | undefined {
  const value = single(args, name);
  return typeof value === 'string' ? value : undefined;
}

/** Kubernetes container names are DNS labels: lower case, digits and "-", at most 63. */
function containerName(flag: string, value: string): string {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value) || value.length > 63) {
    throw new UsageError(
      `invalid --${flag}: expected a container name (lower-case letters, digits and "-", at most 63), got "${value}"`,
    );
  }
  return value;
}

function imageName(flag: string, value: string): string {
  if (value === '' || /\s/.test(value)) {
    throw new UsageError(`invalid --${flag}: expected an image reference, got "${value}"`);
  }
  return value;
}

/** Parses and validates inject's command line; the capture flags are checked by validateConfig now, before any file is read. */
export async function parseInjectCommandLine(argv: readonly string[]): Promise<ParsedInject> {
  const parser = buildParser(argv);
  const args = parser.parseSync() as Record<string, unknown>;
  if (single(args, 'help') === true) return { kind: 'help', text: await parser.getHelp() };

  const options = new Map<string, GivenOption>();
  for (const flag of POD_FLAGS) {
    const value = single(args, flag.name);
    if (value !== undefined)
      options.set(flag.name, { value, origin: `--${flag.name}`, fromEnv: false });
  }
  validateConfig(options);

  const filename = text(args, 'filename');
  if (filename === undefined || filename === '') {
    throw new UsageError(
      'missing --filename: name the manifest file (-f apps.yaml), or - for standard input',
    );
  }
  const cni = single(args, 'cni') === true;
  const initName = containerName(
    'container-name',
    text(args, 'container-name') ?? (cni ? DEFAULT_CNI_NAME : DEFAULT_NAME),
  );
  const proxyImage = text(args, 'proxy-image');
  const proxyName = text(args, 'proxy-name');
  if (proxyName !== undefined && proxyImage === undefined) {
    throw new UsageError(
      'invalid --proxy-name: it only goes with --proxy-image (no proxy is added)',
    );
  }
  const proxy =
    proxyImage === undefined
      ? undefined
      : {
          image: imageName('proxy-image', proxyImage),
          name: containerName('proxy-name', proxyName ?? DEFAULT_PROXY_NAME),
        };
  if (proxy?.name === initName) {
    throw new UsageError(
      `conflicting --container-name and --proxy-name: both name a container "${initName}"`,
    );
  }
  return {
    kind: 'inject',
    filename,
    settings: {
      source: filename === '-' ? 'stdin' : filename,
      options,
      init: {
        name: initName,
        image: imageName('image', text(args, 'image') ?? DEFAULT_IMAGE),
        cni,
      },
      proxy,
      upgradeApi: single(args, 'upgrade-api') === true,
    },
  };
}
