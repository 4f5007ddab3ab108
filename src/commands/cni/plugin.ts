/**
 * The CNI plugin, command by command: ADD applies what the init container would,
 * CHECK compares, DEL cleans up, STATUS says whether ADD can work, GC and VERSION
 * answer the runtime. Every run is mesh-init's own run (runMeshInit) with a config
 * whose network namespace is CNI_NETNS; the plugin only decides and translates.
 * stdout carries the result or the error, nothing else; logs go to stderr.
 */

import { validateConfig } from '../../config/config.js';
import type { GivenOptions } from '../../config/given.js';
import { EXIT_DRIFT, EXIT_OK, MeshInitError, UsageError } from '../../errors.js';
import { createLogger, formatConfig, type Logger } from '../../log.js';
import type { RunCommand } from '../../system/exec.js';
import type { ReadPod } from '../../system/kube.js';
import type { LocateProgram } from '../../system/netns.js';
import { type Deps, runMeshInit } from '../run.js';
import { lookUpPod } from './lookup.js';
import { decidePod, describePod, podConfig, type RunMode } from './pod.js';
import {
  CniError,
  type CniRequest,
  ERROR_CODES,
  errorResult,
  parseRequest,
  passThroughResult,
  versionForError,
  versionResult,
} from './protocol.js';
import { type CniSettings, parseSettings } from './settings.js';

export interface CniDeps {
  readonly run: RunCommand;
  /** Absolute program paths: the runtime's environment may have no PATH. */
  readonly locate: LocateProgram;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => Date;
  readonly random: () => number;
  /** A reader of pods through the kubeconfig, each read bounded by the timeout. */
  readonly podReader: (kubeconfig: string, timeoutMs: number) => ReadPod;
  /** Whether a path is a live network namespace. */
  readonly isNamespace: (path: string) => boolean;
  readonly fileExists: (path: string) => boolean;
}

/** Whether the pod is captured, and from which flags; `fromPod` when its annotations took part. */
type Decision =
  | { readonly capture: false; readonly reason: string }
  | { readonly capture: true; readonly options: GivenOptions; readonly fromPod: boolean };

interface Call {
  readonly request: CniRequest;
  readonly settings: CniSettings;
  readonly deps: CniDeps;
  readonly log: Logger;
}

/** Each line names the command and the pod (or container) it is about. */
function prefixed(log: Logger, prefix: string): Logger {
  return {
    info: (event, message, fields) => log.info(event, `${prefix}${message}`, fields),
    error: (event, message, fields) => log.error(event, `${prefix}${message}`, fields),
  };
}

function podOf(request: CniRequest) {
  return {
    namespace: request.args.get('K8S_POD_NAMESPACE') || undefined,
    name: request.args.get('K8S_POD_NAME') || undefined,
  };
}

function subject(request: CniRequest): string {
  const { namespace, name } = podOf(request);
  if (namespace !== undefined && name !== undefined) return describePod(namespace, name);
  return `container ${request.containerId ?? '(none)'}`;
}

/** ADD's and CHECK's question: capture this pod, and with which flags? */
async function decide({ request, settings, deps, log }: Call): Promise<Decision> {
  const { namespace, name } = podOf(request);
  if (namespace !== undefined && settings.excludeNamespaces.includes(namespace)) {
    return {
      capture: false,
      reason: `namespace ${namespace} is excluded (mesh-init.excludeNamespaces)`,
    };
  }
  if (settings.kubeconfig === undefined) {
    // No API to ask: the node captures every pod it runs outside the excluded namespaces.
    return { capture: true, options: settings.options, fromPod: false };
  }
  if (namespace === undefined || name === undefined) {
    return {
      capture: false,
      reason: 'CNI_ARGS names no Kubernetes pod (K8S_POD_NAMESPACE, K8S_POD_NAME)',
    };
  }
  const read = deps.podReader(settings.kubeconfig, settings.podLookup.timeoutMs);
  const pod = await lookUpPod(read, namespace, name, settings.podLookup, deps.sleep, log);
  try {
    const decision = decidePod(pod, settings, describePod(namespace, name));
    return decision.capture ? { ...decision, fromPod: true } : decision;
  } catch (error) {
    throw asPodError(error);
  }
}

function asPodError(error: unknown): unknown {
  if (!(error instanceof UsageError)) return error;
  return new CniError(
    ERROR_CODES.invalidPodSettings,
    error.message,
    'the pod is not started: it should be captured, and its settings are not valid',
  );
}

/** What runMeshInit needs, from the plugin's deps; what it prints is kept for the caller. */
function meshInitDeps(deps: CniDeps, printed: string[]): Deps {
  return {
    run: deps.run,
    locate: deps.locate,
    // --network-namespace reads the families in the pod's namespace instead.
    addressFamilies: () => {
      throw new Error('the CNI plugin reads address families in the pod namespace');
    },
    stdout: (text) => printed.push(text),
    stderr: deps.stderr,
    sleep: deps.sleep,
    now: deps.now,
    random: deps.random,
    validate: async () => ({ ok: false, detail: 'the CNI plugin does not validate' }),
    readGroupFile: async () => {
      throw new Error("the CNI plugin cannot see the pod's /etc/group");
    },
    // Empty: podConfig makes DNS capture take all of port 53 instead.
    readResolvConf: async () => '',
  };
}

/** One run of mesh-init in the pod's namespace; errors become the plugin's. */
async function runInPod(call: Call, options: GivenOptions, fromPod: boolean, mode: RunMode) {
  const { request, deps, log } = call;
  const netns = request.netns ?? '';
  if (!deps.isNamespace(netns)) {
    throw new CniError(
      ERROR_CODES.invalidEnvironment,
      `invalid CNI_NETNS: "${netns}" is not a network namespace`,
    );
  }
  let prepared: ReturnType<typeof podConfig>;
  try {
    prepared = podConfig(options, netns, mode);
  } catch (error) {
    if (fromPod || !(error instanceof UsageError)) throw asPodError(error);
    throw new CniError(ERROR_CODES.invalidConfig, error.message);
  }
  const { config, notes } = prepared;
  log.info('config', `config: ${formatConfig(config)}`);
  for (const note of notes) log.info('note', `note: ${note}`);
  const printed: string[] = [];
  try {
    const code = await runMeshInit(config, meshInitDeps(deps, printed), log);
    return { code, printed: printed.join('') };
  } catch (error) {
    if (!(error instanceof MeshInitError)) throw error;
    throw new CniError(
      ERROR_CODES.applyFailed,
      `${subject(request)}: ${error.message}`,
      mode === 'apply' ? 'nothing of this run stays in the pod: the pod is not started' : '',
    );
  }
}

async function add(call: Call): Promise<string> {
  const decision = await decide(call);
  if (!decision.capture) {
    call.log.info('skip', `not captured: ${decision.reason}`);
    return passThroughResult(call.request.config);
  }
  const { code } = await runInPod(call, decision.options, decision.fromPod, 'apply');
  if (code !== EXIT_OK) {
    throw new CniError(
      ERROR_CODES.applyFailed,
      `${subject(call.request)}: mesh-init exited ${code}`,
    );
  }
  return passThroughResult(call.request.config);
}

async function check(call: Call): Promise<string> {
  const decision = await decide(call);
  if (!decision.capture) {
    call.log.info('skip', `nothing to check: ${decision.reason}`);
    return '';
  }
  const { code, printed } = await runInPod(call, decision.options, decision.fromPod, 'check');
  if (code === EXIT_DRIFT) {
    throw new CniError(
      ERROR_CODES.drift,
      `${subject(call.request)}: the live rules differ from the planned ones`,
      printed.trim(),
    );
  }
  if (code !== EXIT_OK) {
    throw new CniError(
      ERROR_CODES.applyFailed,
      `${subject(call.request)}: mesh-init exited ${code}`,
    );
  }
  return '';
}

/**
 * Best effort, as the spec asks of DEL: a namespace that is gone took the rules with
 * it; one still there gets the block's chains removed. A failure is logged, not
 * returned: the rules live only in the pod's namespace, which the runtime removes
 * next, and a failing DEL would hold the pod's teardown for nothing.
 */
async function del(call: Call): Promise<string> {
  const { request, settings, deps, log } = call;
  const netns = request.netns;
  if (netns === undefined || !deps.isNamespace(netns)) {
    log.info('del', `nothing to remove: the network namespace ${netns ?? '(none given)'} is gone`);
    return '';
  }
  const { namespace } = podOf(request);
  if (namespace !== undefined && settings.excludeNamespaces.includes(namespace)) {
    log.info('del', `nothing to remove: namespace ${namespace} is excluded`);
    return '';
  }
  try {
    await runInPod(call, settings.options, false, 'cleanup');
  } catch (error) {
    log.error(
      'del',
      `removing the rules failed; they go with the namespace: ${(error as Error).message}`,
    );
  }
  return '';
}

/** STATUS: ADD can work when the programs it starts are there, and the kubeconfig is. */
function status({ settings, deps, log }: Call): string {
  const config = validateConfig(settings.options);
  const wanted: string[][] = [['nsenter'], ['ip']];
  if (config.nativeNftables) wanted.push(['nft']);
  else {
    const backends = config.backend === 'auto' ? ['nft', 'legacy'] : [config.backend];
    wanted.push(backends.map((backend) => `iptables-${backend}-restore`));
  }
  const missing = wanted.filter((any) => !any.some((name) => deps.locate(name).startsWith('/')));
  const problems = missing.map((any) => `${any.join(' or ')} not found`);
  if (settings.kubeconfig !== undefined && !deps.fileExists(settings.kubeconfig)) {
    problems.push(`the kubeconfig ${settings.kubeconfig} does not exist (yet)`);
  }
  if (problems.length > 0) {
    throw new CniError(
      ERROR_CODES.notAvailable,
      `mesh-init-cni cannot serve ADD: ${problems.join('; ')}`,
    );
  }
  log.info('status', 'ready: the programs ADD starts are there');
  return '';
}

async function handle(request: CniRequest, deps: CniDeps, setLog: (log: Logger) => void) {
  if (request.command === 'VERSION') return versionResult(request.config.cniVersion);
  const settings = parseSettings(request.config.raw);
  const base = createLogger(settings.logFormat, deps.stderr, deps.now);
  const log = prefixed(base, `cni ${request.command} ${subject(request)}: `);
  setLog(log);
  const call: Call = { request, settings, deps, log };
  switch (request.command) {
    case 'ADD':
      return add(call);
    case 'CHECK':
      return check(call);
    case 'DEL':
      return del(call);
    case 'STATUS':
      return status(call);
    case 'GC':
      // Nothing lives outside the pods' namespaces, which go with the pods.
      log.info('gc', 'nothing to collect: mesh-init keeps no state outside pod namespaces');
      return '';
  }
}

/** The environment and stdin → stdout and an exit code: 0, or 1 with the error JSON. */
export async function runCni(
  env: Readonly<Record<string, string | undefined>>,
  stdin: string,
  deps: CniDeps,
): Promise<number> {
  let log = createLogger('text', deps.stderr, deps.now);
  let version = versionForError(stdin);
  try {
    const request = parseRequest(env, stdin);
    version = request.config.cniVersion;
    const output = await handle(request, deps, (chosen) => {
      log = chosen;
    });
    deps.stdout(output);
    return 0;
  } catch (error) {
    const failure =
      error instanceof CniError
        ? error
        : new CniError(
            ERROR_CODES.internal,
            `internal error: ${(error as Error)?.message ?? String(error)}`,
          );
    log.error('failed', `${failure.message}${failure.details ? ` (${failure.details})` : ''}`, {
      code: failure.code,
    });
    deps.stdout(errorResult(failure, version));
    return 1;
  }
}
