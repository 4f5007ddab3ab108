/**
 * The CNI protocol, as data: the environment and the configuration on stdin become a
 * typed request; results and errors become the JSON the runtime reads on stdout.
 * Pure. What the spec says is cited by section of SPEC.md (containernetworking/cni).
 */

/** Versions whose configuration may carry a prevResult (chaining began with 0.3.0). */
const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
const LATEST_VERSION: CniVersion = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

/** The first spec version that has each command. */
const SINCE: Readonly<Record<CniCommand, CniVersion>> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  VERSION: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

/** The spec's well-known error codes (0-99), and ours (100 and up). */
export const ERROR_CODES = {
  incompatibleVersion: 1,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  /** The pod asks for settings that are not valid (a bad annotation). */
  invalidPodSettings: 100,
  /** The rules could not be applied (or removed): nothing of this run stays. */
  applyFailed: 101,
  /** CHECK: the live rules differ from those the pod should have. */
  drift: 102,
  /** The pod could not be read from the Kubernetes API, so it is not known whether to capture it. */
  podUnknown: 103,
  internal: 999,
} as const;

/** An error the runtime gets as `{cniVersion, code, msg, details}` on stdout. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details: string = '',
  ) {
    super(message);
  }
}

/** The plugin's configuration as the runtime derived it for this call (SPEC.md section 3). */
export interface PluginConfig {
  readonly cniVersion: CniVersion;
  readonly name: string | undefined;
  /** The previous plugin's result, verbatim; undefined for the first plugin or none given. */
  readonly prevResult: unknown;
  /** The whole object, for the plugin's own keys. */
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface CniRequest {
  readonly command: CniCommand;
  readonly containerId: string | undefined;
  /** CNI_NETNS: a path to the pod's network namespace (optional for DEL). */
  readonly netns: string | undefined;
  readonly ifname: string | undefined;
  /** CNI_ARGS, `K=V;K2=V2`, as a map: K8S_POD_NAME, K8S_POD_NAMESPACE, … */
  readonly args: ReadonlyMap<string, string>;
  readonly config: PluginConfig;
}

type Env = Readonly<Record<string, string | undefined>>;

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** The variables each command needs (SPEC.md section 2); DEL may come without CNI_NETNS. */
const REQUIRED: Readonly<Record<CniCommand, readonly string[]>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  VERSION: [],
  STATUS: [],
  GC: [],
};

function commandOf(env: Env): CniCommand {
  const given = env.CNI_COMMAND;
  const command = COMMANDS.find((c) => c === given);
  if (command === undefined) {
    throw new CniError(
      ERROR_CODES.invalidEnvironment,
      given === undefined || given === ''
        ? 'CNI_COMMAND is not set: this is a CNI plugin, started by the container runtime (mesh-init-cni install|uninstall manage it)'
        : `invalid CNI_COMMAND: expected one of ${COMMANDS.join(', ')}, got "${given}"`,
    );
  }
  return command;
}

/** CNI_ARGS: `;`-separated `KEY=VALUE` pairs (the value may hold further `=`). */
export function parseCniArgs(text: string | undefined): Map<string, string> {
  const args = new Map<string, string>();
  for (const pair of (text ?? '').split(';')) {
    if (pair.trim() === '') continue;
    const at = pair.indexOf('=');
    if (at <= 0) {
      throw new CniError(
        ERROR_CODES.invalidEnvironment,
        `invalid CNI_ARGS: expected KEY=VALUE pairs separated by ";", got "${pair}"`,
      );
    }
    args.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  }
  return args;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function versionOf(value: unknown): CniVersion {
  if (typeof value !== 'string') {
    throw new CniError(
      ERROR_CODES.invalidConfig,
      `invalid cniVersion in the network configuration: expected a version string such as "${LATEST_VERSION}", got ${JSON.stringify(value) ?? 'nothing'}`,
    );
  }
  const version = SUPPORTED_VERSIONS.find((v) => v === value);
  if (version === undefined) {
    throw new CniError(
      ERROR_CODES.incompatibleVersion,
      `incompatible CNI version "${value}": mesh-init-cni supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  return version;
}

/**
 * The configuration on stdin. VERSION answers whatever comes with it (none, or a
 * version this plugin does not know), as the spec's reference library does: the
 * runtime asks precisely to learn which versions are supported.
 */
function parseConfig(command: CniCommand, stdin: string): PluginConfig {
  if (command === 'VERSION') {
    return { cniVersion: LATEST_VERSION, name: undefined, prevResult: undefined, raw: {} };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (error) {
    throw new CniError(
      ERROR_CODES.decodeFailure,
      `cannot decode the network configuration on stdin: ${(error as Error).message}`,
    );
  }
  if (!isObject(raw)) {
    throw new CniError(
      ERROR_CODES.decodeFailure,
      'cannot decode the network configuration on stdin: expected a JSON object',
    );
  }
  const cniVersion = versionOf(raw.cniVersion);
  return {
    cniVersion,
    name: typeof raw.name === 'string' ? raw.name : undefined,
    prevResult: raw.prevResult,
    raw,
  };
}

function versionIndex(version: CniVersion): number {
  return SUPPORTED_VERSIONS.indexOf(version);
}

/** The environment and stdin → the request; any error names the variable or key at fault. */
export function parseRequest(env: Env, stdin: string): CniRequest {
  const command = commandOf(env);
  const missing = REQUIRED[command].filter((name) => (env[name] ?? '') === '');
  if (missing.length > 0) {
    throw new CniError(
      ERROR_CODES.invalidEnvironment,
      `missing ${missing.join(', ')}: CNI ${command} needs ${REQUIRED[command].join(', ')}`,
    );
  }
  const config = parseConfig(command, stdin);
  if (versionIndex(config.cniVersion) < versionIndex(SINCE[command])) {
    throw new CniError(
      ERROR_CODES.incompatibleVersion,
      `CNI ${command} is not part of CNI spec ${config.cniVersion} (it came with ${SINCE[command]})`,
    );
  }
  const netns = env.CNI_NETNS;
  if (netns !== undefined && netns !== '' && !netns.startsWith('/')) {
    throw new CniError(
      ERROR_CODES.invalidEnvironment,
      `invalid CNI_NETNS: expected the absolute path of a network namespace, got "${netns}"`,
    );
  }
  return {
    command,
    containerId: env.CNI_CONTAINERID || undefined,
    netns: netns === undefined || netns === '' ? undefined : netns,
    ifname: env.CNI_IFNAME || undefined,
    args: parseCniArgs(env.CNI_ARGS),
    config,
  };
}

/**
 * ADD's and CHECK's output: the previous plugin's result, unchanged (mesh-init adds no
 * interface, address or route); the first plugin in a chain reports an empty result.
 */
export function passThroughResult(config: PluginConfig): string {
  const result = config.prevResult ?? { cniVersion: config.cniVersion };
  return `${JSON.stringify(result)}\n`;
}

export function versionResult(cniVersion: CniVersion): string {
  return `${JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS })}\n`;
}

/** The spec's error structure; the version is the request's where it got that far. */
export function errorResult(error: CniError, cniVersion: string = LATEST_VERSION): string {
  return `${JSON.stringify({
    cniVersion,
    code: error.code,
    msg: error.message,
    details: error.details,
  })}\n`;
}

/** The version an error names: the one on stdin if it is a string, else the latest. */
export function versionForError(stdin: string): string {
  try {
    const raw: unknown = JSON.parse(stdin);
    if (isObject(raw) && typeof raw.cniVersion === 'string') return raw.cniVersion;
  } catch {
    // Not JSON: the latest version it is.
  }
  return LATEST_VERSION;
}
