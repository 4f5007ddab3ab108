// Pods made of Docker containers, the way a kubelet makes them: one long-running
// container holds the network namespace, the init container runs to completion
// in it (`network_mode: container:<pod>`), then the app and the proxy join it.
// Every pod sits on one Docker network created `Internal: true`, so nothing a
// test sends can leave the machine; everything is labelled with the run's id
// and removed by `Cluster.remove()`.

import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  type ContainerRuntimeClient,
  GenericContainer,
  getContainerRuntimeClient,
  ImageName,
  type StartedTestContainer,
  Wait,
  type WaitStrategy,
} from 'testcontainers';
import { describe, it } from 'vitest';

// Ryuk would be pulled from a registry (there is none here), and this host has
// /.dockerenv, which makes testcontainers look for the engine at a gateway address.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';

export const IMAGE = process.env.MESH_INIT_IMAGE ?? 'mesh-init:dev';
export const PROXY_UID = 1337;
export const PROXY_PORT = 15001;
export const APP_PORT = 8080;
/** What Istio's injection template passes to istio/init. */
export const INIT_ARGS: readonly string[] = ['-p', String(PROXY_PORT), '-u', String(PROXY_UID)];

const RUN_LABEL = 'mesh-init-test.run';
export const HELPERS_DIR = '/opt/mesh-test';
const helperFiles = [
  'echo-server.mjs',
  'test-proxy.mjs',
  'http-get.mjs',
  'probe.mjs',
  'dns-server.mjs',
  'socket-tools.pl',
].map((name) => ({
  source: fileURLToPath(new URL(name, import.meta.url)),
  target: `${HELPERS_DIR}/${name}`,
}));

export const isCI = ['true', '1'].includes((process.env.CI ?? '').toLowerCase());

export type Engine = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Whether the suite can run here: an engine that answers, and the image built. */
/**
 * Whether a container test file can run: when `missing` names what it lacks, one
 * line says so and the file is skipped; under CI=true a failing test says it
 * instead, never a silent skip.
 */
export function gate(suite: string, missing: string | undefined, needs: string): boolean {
  if (missing === undefined) return true;
  if (isCI) {
    describe(suite, () => {
      it(`has ${needs} (CI=true: never skipped)`, () => {
        throw new Error(`${missing}. To run it, ${HOW_TO_RUN}`);
      });
    });
  } else {
    console.warn(`${suite} skipped: ${missing}. To run it, ${HOW_TO_RUN}`);
  }
  return false;
}

export async function probeEngine(): Promise<Engine> {
  let client: ContainerRuntimeClient;
  try {
    client = await getContainerRuntimeClient();
  } catch (err) {
    return { ok: false, reason: `no Docker engine answers (${(err as Error).message})` };
  }
  if (!(await client.image.exists(ImageName.fromString(IMAGE)))) {
    return { ok: false, reason: `the image ${IMAGE} is not built` };
  }
  return { ok: true };
}

/**
 * An image with Perl, for what Node cannot do (IP_TRANSPARENT, raw sockets):
 * the base the mesh-init image was built from (`BASE`, as .ci/run sets it), else
 * the local equivalent scripts/base-image.sh makes, else the official one.
 */
export async function findBaseImage(): Promise<string | undefined> {
  const client = await getContainerRuntimeClient();
  const candidates = [process.env.BASE, 'mesh-init-base:trixie', 'debian:trixie-slim'];
  for (const name of candidates) {
    if (name !== undefined && name !== '') {
      if (await client.image.exists(ImageName.fromString(name))) return name;
    }
  }
  return undefined;
}

export const HOW_TO_RUN =
  'as root: bash scripts/docker-up.sh && bash scripts/base-image.sh && ' +
  'BASE=mesh-init-base:trixie npm run image && npx vitest run --project container ' +
  '(bash .ci/run does all of it)';

export interface Pod {
  readonly name: string;
  readonly id: string;
  /** The pod's IP on the cluster network. */
  readonly ip: string;
  /** Its IPv6 address, on a dual-stack cluster. */
  readonly ipv6?: string;
}

export interface Sidecars {
  readonly app: StartedTestContainer;
  readonly proxy: StartedTestContainer;
}

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface InitOptions {
  /** `privileged: true` instead of only NET_ADMIN and NET_RAW. */
  readonly privileged?: boolean;
}

/** A container joined to a pod's network namespace, with the test helpers in /opt/mesh-test. */
export interface InPodOptions {
  /** Its name within the pod (`app`, `dns`, …). */
  readonly role: string;
  /** Default: the image's own (for the mesh-init image: mesh-init from its snapshot). */
  readonly entrypoint?: readonly string[];
  /** Arguments after the entrypoint. */
  readonly command?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Default: the mesh-init image. */
  readonly image?: string;
  /** `uid:gid`; default the image's (root). */
  readonly user?: string;
  /** Capabilities added after dropping all of them (they take effect for root only). */
  readonly capabilities?: readonly string[];
}

/** The pod's sandbox (its pause container), when not the default one. */
export interface SandboxOptions {
  /** Default: the mesh-init image, idling in Node. */
  readonly image?: string;
  readonly entrypoint?: readonly string[];
  /** Names the pod answers to on the cluster network (its Services); default its own name. */
  readonly aliases?: readonly string[];
}

export interface NatTables {
  readonly legacy: string;
  readonly nft: string;
}

export interface HttpOptions {
  /** `uid:gid` to send as (default root, as the app). */
  readonly user?: string;
  /** Resolve names to IPv4 (default) or IPv6. */
  readonly family?: 4 | 6;
}

export interface HttpAnswer {
  readonly status?: number;
  readonly body?: string;
  readonly error?: string;
}

/** Waits for a one-shot container to exit, whatever its exit code (testcontainers' own one-shot check polls once a second and throws on a non-zero code). */
export class UntilExit implements WaitStrategy {
  private timeoutMs = 60_000;

  async waitUntilReady(container: Parameters<WaitStrategy['waitUntilReady']>[0]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`container did not exit within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    try {
      await Promise.race([container.wait(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  withStartupTimeout(startupTimeoutMs: number): this {
    this.timeoutMs = startupTimeoutMs;
    return this;
  }

  isStartupTimeoutSet(): boolean {
    return true;
  }

  getStartupTimeout(): number {
    return this.timeoutMs;
  }
}

/** Splits Docker's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, size). */
function demuxLogs(buffer: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const stream = buffer[offset];
    const size = buffer.readUInt32BE(offset + 4);
    const payload = buffer.subarray(offset + 8, offset + 8 + size);
    (stream === 2 ? err : out).push(payload);
    offset += 8 + size;
  }
  return {
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
  };
}

/** Drops what changes between two saves of the same rules: comments and counters. */
function normalizeSave(save: string): string {
  return save
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.replace(/\[\d+:\d+\]$/, '[0:0]'))
    .join('\n');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Cluster {
  private readonly labels: Record<string, string>;

  private constructor(
    private readonly client: ContainerRuntimeClient,
    private readonly runId: string,
    readonly network: string,
  ) {
    this.labels = { [RUN_LABEL]: runId };
  }

  /**
   * A cluster network that reaches nothing outside this machine; dual-stack with
   * `ipv6`, on a random unique-local /64 (Docker picks the IPv4 subnet itself).
   */
  static async create(options: { ipv6?: boolean } = {}): Promise<Cluster> {
    const client = await getContainerRuntimeClient();
    const runId = randomUUID().slice(0, 8);
    const network = `mesh-init-test-${runId}`;
    const ula = `fd6d:${runId.slice(0, 4)}:${runId.slice(4, 8)}::/64`;
    await client.network.create({
      Name: network,
      Driver: 'bridge',
      Internal: true,
      CheckDuplicate: true,
      Labels: { [RUN_LABEL]: runId },
      ...(options.ipv6 ? { EnableIPv6: true, IPAM: { Config: [{ Subnet: ula }] } } : {}),
    });
    return new Cluster(client, runId, network);
  }

  /**
   * The pod's sandbox: holds the network namespace and does nothing else. Created
   * through the engine API rather than GenericContainer because GenericContainer
   * attaches a container with network aliases to the default bridge first, and a
   * pod must be on the internal network alone. The alias is the Service name.
   */
  async startPod(name: string, sandbox: SandboxOptions = {}): Promise<Pod> {
    const container = await this.client.container.create({
      name: `mesh-init-test-${this.runId}-${name}`,
      Image: sandbox.image ?? IMAGE,
      Hostname: name,
      // The image has no coreutils (no `sleep`): Node idles as the pause process.
      Entrypoint: [...(sandbox.entrypoint ?? ['node', '-e', 'setInterval(() => {}, 1 << 30)'])],
      Labels: this.labels,
      HostConfig: { NetworkMode: this.network, CapDrop: ['ALL'] },
      NetworkingConfig: {
        EndpointsConfig: { [this.network]: { Aliases: [...(sandbox.aliases ?? [name])] } },
      },
    });
    await this.client.container.start(container);
    const info = await this.client.container.inspect(container);
    const networks = Object.keys(info.NetworkSettings.Networks);
    const endpoint = info.NetworkSettings.Networks[this.network];
    const ip = endpoint?.IPAddress;
    if (ip === undefined || ip === '' || networks.length !== 1) {
      throw new Error(
        `pod ${name} should be on ${this.network} alone, is on ${networks.join(', ')}`,
      );
    }
    const ipv6 = endpoint?.GlobalIPv6Address;
    return { name, id: container.id, ip, ...(ipv6 ? { ipv6 } : {}) };
  }

  /** Runs the init container in the pod to completion, as the kubelet does before the app starts. */
  async runInit(pod: Pod, args: readonly string[], options: InitOptions = {}): Promise<RunResult> {
    let init = new GenericContainer(IMAGE)
      .withNetworkMode(`container:${pod.id}`)
      .withCommand([...args])
      .withLabels(this.labels)
      .withWaitStrategy(new UntilExit());
    // Otherwise the securityContext of Istio's injection template: root, capabilities
    // NET_ADMIN and NET_RAW only, allowPrivilegeEscalation: false.
    init = options.privileged
      ? init.withPrivilegedMode()
      : init
          .withUser('0:0')
          .withDroppedCapabilities('ALL')
          .withAddedCapabilities('NET_ADMIN', 'NET_RAW')
          .withSecurityOpt('no-new-privileges');
    return this.runToCompletion(init);
  }

  /**
   * The validation init container of CNI mode, with the securityContext of Istio's
   * istio-validation: the image's entrypoint with `--run-validation
   * --skip-rule-apply`, as `user` (the proxy's UID unless told), every capability
   * dropped, allowPrivilegeEscalation: false.
   */
  async runValidation(
    pod: Pod,
    args: readonly string[],
    user = `${PROXY_UID}:${PROXY_UID}`,
  ): Promise<RunResult> {
    const validation = new GenericContainer(IMAGE)
      .withNetworkMode(`container:${pod.id}`)
      .withCommand(['--run-validation', '--skip-rule-apply', ...args])
      .withUser(user)
      .withDroppedCapabilities('ALL')
      .withSecurityOpt('no-new-privileges')
      .withLabels(this.labels)
      .withWaitStrategy(new UntilExit());
    return this.runToCompletion(validation);
  }

  /**
   * Takes the pod's default routes away (Docker gives even an internal network's
   * pods one, through a bridge that leads nowhere), by a one-shot container with
   * NET_ADMIN in the pod's namespace. Returns the routes left.
   */
  async dropDefaultRoutes(pod: Pod): Promise<string> {
    const script =
      'ip -4 route del default 2>/dev/null; ip -6 route del default 2>/dev/null; ' +
      'ip -4 route show; ip -6 route show';
    const result = await this.runInPod(pod, {
      role: `route-${randomUUID().slice(0, 4)}`,
      entrypoint: ['sh', '-c', script],
      capabilities: ['NET_ADMIN'],
    });
    if (result.exitCode !== 0)
      throw new Error(`dropping the default routes failed: ${result.stderr}`);
    return result.stdout;
  }

  /** The app (echo server on 8080) and the proxy (UID 1337, port 15001), joining the pod's namespace. */
  async startSidecars(pod: Pod): Promise<Sidecars> {
    const sidecar = (role: string, script: string) =>
      new GenericContainer(IMAGE)
        .withName(`mesh-init-test-${this.runId}-${pod.name}-${role}`)
        .withNetworkMode(`container:${pod.id}`)
        .withDroppedCapabilities('ALL')
        .withEntrypoint(['node', `${HELPERS_DIR}/${script}`])
        .withCopyFilesToContainer(helperFiles)
        .withLabels(this.labels)
        .withWaitStrategy(Wait.forLogMessage(/listening on/));
    const [app, proxy] = await Promise.all([
      sidecar('app', 'echo-server.mjs').start(),
      sidecar('proxy', 'test-proxy.mjs').withUser(`${PROXY_UID}:${PROXY_UID}`).start(),
    ]);
    return { app, proxy };
  }

  /**
   * The pod's nat table as each iptables backend sees it, read by a one-shot
   * container with NET_ADMIN in the pod's namespace (`kubectl debug`'s way in).
   */
  async natTables(pod: Pod, family: 4 | 6 = 4): Promise<NatTables> {
    const tool = family === 4 ? 'iptables' : 'ip6tables';
    const reader = new GenericContainer(IMAGE)
      .withNetworkMode(`container:${pod.id}`)
      .withDroppedCapabilities('ALL')
      .withAddedCapabilities('NET_ADMIN', 'NET_RAW')
      .withEntrypoint(['sh', '-c'])
      .withCommand([`${tool}-legacy-save -t nat && echo @@@ && ${tool}-nft-save -t nat`])
      .withLabels(this.labels)
      .withWaitStrategy(new UntilExit());
    const result = await this.runToCompletion(reader);
    const [legacy, nft] = result.stdout.split('@@@\n');
    if (result.exitCode !== 0 || legacy === undefined || nft === undefined) {
      throw new Error(`reading the nat table failed (${result.exitCode}): ${result.stderr}`);
    }
    return { legacy: normalizeSave(legacy), nft: normalizeSave(nft) };
  }

  /** Starts a long-running server in the pod, ready once it logs `listening on`. */
  async startInPod(pod: Pod, options: InPodOptions): Promise<StartedTestContainer> {
    return this.inPod(pod, options)
      .withWaitStrategy(Wait.forLogMessage(/listening on/))
      .start();
  }

  /** Runs a one-shot container in the pod to completion. */
  async runInPod(pod: Pod, options: InPodOptions): Promise<RunResult> {
    return this.runToCompletion(this.inPod(pod, options).withWaitStrategy(new UntilExit()));
  }

  /**
   * One table of the pod as one backend's `iptables-save -c` (`ip6tables-save -c`
   * for family 6) prints it, counters included, read as `natTables` does.
   */
  async saveTable(
    pod: Pod,
    table: 'nat' | 'mangle' | 'raw',
    backend: 'legacy' | 'nft',
    family: 4 | 6 = 4,
  ): Promise<string> {
    const tool = family === 4 ? 'iptables' : 'ip6tables';
    const result = await this.runInPod(pod, {
      role: `save-${tool}-${table}-${backend}-${randomUUID().slice(0, 4)}`,
      entrypoint: [`${tool}-${backend}-save`, '-c', '-t', table],
      capabilities: ['NET_ADMIN', 'NET_RAW'],
    });
    if (result.exitCode !== 0) {
      throw new Error(
        `reading the ${tool} ${table} table failed (${result.exitCode}): ${result.stderr}`,
      );
    }
    return result.stdout;
  }

  /** `node probe.mjs ARGS…` in a container of the pod: its JSON answer, or `{error}`. */
  async probe(
    from: StartedTestContainer,
    args: readonly string[],
    user = '0:0',
  ): Promise<Record<string, unknown>> {
    const result = await from.exec(['node', `${HELPERS_DIR}/probe.mjs`, ...args], {
      user,
      // glibc's resolver: one try of one second, not two of five, when nothing answers.
      env: { RES_OPTIONS: 'timeout:1 attempts:1' },
    });
    try {
      return JSON.parse(result.stdout) as Record<string, unknown>;
    } catch {
      return { error: `exit ${result.exitCode}: ${result.stdout}${result.stderr}` };
    }
  }

  /** The stdout of a container (a server's log). */
  async stdoutOf(container: StartedTestContainer): Promise<string> {
    return (await this.logsOf(container.getId())).stdout;
  }

  /** The proxy's access log: its stdout, as `kubectl logs <pod> proxy` shows it. */
  async accessLog(sidecars: Sidecars): Promise<string[]> {
    const { stdout } = await this.logsOf(sidecars.proxy.getId());
    return stdout.split('\n').filter((line) => line.startsWith('['));
  }

  /** Waits until the proxy has logged a line containing `needle` (logs reach the engine asynchronously). */
  async waitForAccessLog(sidecars: Sidecars, needle: string, timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = await this.accessLog(sidecars);
      if (lines.some((line) => line.includes(needle)) || Date.now() > deadline) return lines;
      await sleep(100);
    }
  }

  /** `curl URL` from inside a container of the pod. */
  async httpGet(
    from: StartedTestContainer,
    url: string,
    userAgent: string,
    options: HttpOptions = {},
  ): Promise<HttpAnswer> {
    const result = await from.exec(['node', `${HELPERS_DIR}/http-get.mjs`, url, userAgent], {
      user: options.user ?? '0:0',
      env: { MESH_TEST_FAMILY: String(options.family ?? 4) },
    });
    try {
      return JSON.parse(result.stdout) as HttpAnswer;
    } catch {
      return { error: `exit ${result.exitCode}: ${result.stdout}${result.stderr}` };
    }
  }

  /** Removes every container and the network of this run. */
  async remove(): Promise<void> {
    const dockerode = this.client.container.dockerode;
    const containers = await dockerode.listContainers({
      all: true,
      filters: { label: [`${RUN_LABEL}=${this.runId}`] },
    });
    // Joined containers first, then the pods that hold their namespaces.
    const order = (c: { HostConfig: { NetworkMode: string } }) =>
      c.HostConfig.NetworkMode.startsWith('container:') ? 0 : 1;
    containers.sort((a, b) => order(a) - order(b));
    for (const c of containers) {
      await dockerode.getContainer(c.Id).remove({ force: true, v: true });
    }
    await this.client.network.remove(this.client.network.getById(this.network));
  }

  /**
   * A container of the pod as a spec describes it: joined to its namespace, labelled
   * for remove(), the test helpers in /opt/mesh-test, and nothing else set.
   */
  containerInPod(pod: Pod, role: string, image: string): GenericContainer {
    return new GenericContainer(image)
      .withName(`mesh-init-test-${this.runId}-${pod.name}-${role}`)
      .withNetworkMode(`container:${pod.id}`)
      .withCopyFilesToContainer(helperFiles)
      .withLabels(this.labels);
  }

  private inPod(pod: Pod, options: InPodOptions): GenericContainer {
    let container = new GenericContainer(options.image ?? IMAGE)
      .withName(`mesh-init-test-${this.runId}-${pod.name}-${options.role}`)
      .withNetworkMode(`container:${pod.id}`)
      .withDroppedCapabilities('ALL')
      .withCopyFilesToContainer(helperFiles)
      .withLabels(this.labels);
    if (options.entrypoint !== undefined)
      container = container.withEntrypoint([...options.entrypoint]);
    if (options.command !== undefined) container = container.withCommand([...options.command]);
    if (options.env !== undefined) container = container.withEnvironment({ ...options.env });
    if (options.user !== undefined) container = container.withUser(options.user);
    if (options.capabilities !== undefined && options.capabilities.length > 0) {
      container = container.withAddedCapabilities(...options.capabilities);
    }
    return container;
  }

  /** Starts a one-shot container (its wait strategy waits for the exit) and returns its outcome, removing it. */
  async runToCompletion(container: GenericContainer): Promise<RunResult> {
    const started = await container.start();
    try {
      const info = await this.client.container.inspect(
        this.client.container.getById(started.getId()),
      );
      const logs = await this.logsOf(started.getId());
      return { exitCode: info.State.ExitCode, ...logs };
    } finally {
      await started.stop({ remove: true });
    }
  }

  /** A container's stdout and stderr so far. */
  async logsOf(id: string): Promise<{ stdout: string; stderr: string }> {
    const buffer = (await this.client.container.dockerode
      .getContainer(id)
      .logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    return demuxLogs(buffer);
  }
}
