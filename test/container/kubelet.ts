// Pod specs realised as Docker containers, as a kubelet would: a sandbox holding
// the network namespace, the init containers one after another to completion with
// exactly the spec's args, user, capabilities and limits, then the other
// containers together. Only what the specs of these tests use is realised; any
// other securityContext field is refused rather than ignored, so a spec that asks
// for more cannot pass unnoticed.
import type { Container, PodSpec } from 'kubernetes-types/core/v1.js';
import {
  type ContainerRuntimeClient,
  type GenericContainer,
  getContainerRuntimeClient,
  type StartedTestContainer,
  Wait,
} from 'testcontainers';
import { type Cluster, type Pod, UntilExit } from './pod.js';

/** No registry here: an image the manifest names runs as a local image and program. */
export interface StandIn {
  readonly image: string;
  readonly entrypoint: readonly string[];
  /** What it logs once it serves. */
  readonly ready: RegExp;
}

/** How Docker was told to run a container: what the test checks against the spec. */
export interface Realised {
  readonly user: string;
  readonly cmd: readonly string[];
  readonly capAdd: readonly string[];
  readonly capDrop: readonly string[];
  readonly privileged: boolean;
  readonly securityOpt: readonly string[];
  readonly memory: number;
  readonly nanoCpus: number;
}

export interface InitRun {
  readonly name: string;
  readonly exitCode: number;
  readonly stderr: string;
  readonly realised: Realised;
}

export interface RunningPod {
  readonly pod: Pod;
  readonly inits: readonly InitRun[];
  readonly containers: ReadonlyMap<string, StartedTestContainer>;
  readonly realised: ReadonlyMap<string, Realised>;
}

const REALISED_SECURITY = new Set([
  'allowPrivilegeEscalation',
  'capabilities',
  'privileged',
  'runAsGroup',
  'runAsNonRoot',
  'runAsUser',
]);

/** Kubernetes quantities as Docker takes them: GiB for memory, CPUs for cpu. */
function quantity(text: string | number | undefined, unit: 'memory' | 'cpu'): number | undefined {
  if (text === undefined) return undefined;
  const value = String(text);
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$/.exec(value);
  if (match === null) throw new Error(`quantity ${value} is not one the stand-in kubelet reads`);
  const n = Number(match[1]);
  const scale = { m: 1e-3, Ki: 1024 ** -2, Mi: 1024 ** -1, Gi: 1 } as Record<string, number>;
  const factor = match[2] === undefined ? (unit === 'memory' ? 1024 ** -3 : 1) : scale[match[2]];
  return n * (factor ?? 1);
}

export class Kubelet {
  private constructor(
    private readonly cluster: Cluster,
    private readonly client: ContainerRuntimeClient,
    private readonly sandboxImage: string,
    private readonly standIns: ReadonlyMap<string, StandIn>,
  ) {}

  static async create(
    cluster: Cluster,
    sandboxImage: string,
    standIns: ReadonlyMap<string, StandIn>,
  ): Promise<Kubelet> {
    return new Kubelet(cluster, await getContainerRuntimeClient(), sandboxImage, standIns);
  }

  /**
   * Sandbox, init containers in order (the first failure stops the pod, as the
   * kubelet would keep restarting it), then every container at once.
   */
  async runPod(name: string, aliases: readonly string[], spec: PodSpec): Promise<RunningPod> {
    // The pause container: a sleep from the base image, nothing else.
    const pod = await this.cluster.startPod(name, {
      image: this.sandboxImage,
      entrypoint: ['sleep', 'infinity'],
      aliases,
    });
    const inits: InitRun[] = [];
    for (const init of spec.initContainers ?? []) {
      const run = await this.runToCompletion(pod, init);
      inits.push(run);
      if (run.exitCode !== 0) {
        return { pod, inits, containers: new Map(), realised: new Map() };
      }
    }
    const started = await Promise.all(
      spec.containers.map(async (container) => {
        const built = this.build(pod, container);
        const ready = this.standIns.get(container.image ?? '')?.ready;
        const running = await (ready
          ? built.withWaitStrategy(Wait.forLogMessage(ready))
          : built
        ).start();
        return [container.name, running, await this.realisedOf(running.getId())] as const;
      }),
    );
    return {
      pod,
      inits,
      containers: new Map(started.map(([n, running]) => [n, running])),
      realised: new Map(started.map(([n, , realised]) => [n, realised])),
    };
  }

  private async runToCompletion(pod: Pod, init: Container): Promise<InitRun> {
    const started = await this.build(pod, init).withWaitStrategy(new UntilExit()).start();
    try {
      const info = await this.client.container.inspect(
        this.client.container.getById(started.getId()),
      );
      const { stderr } = await this.cluster.logsOf(started.getId());
      return {
        name: init.name,
        exitCode: info.State.ExitCode,
        stderr,
        realised: await this.realisedOf(started.getId()),
      };
    } finally {
      await started.stop({ remove: true });
    }
  }

  private async realisedOf(id: string): Promise<Realised> {
    const info = await this.client.container.inspect(this.client.container.getById(id));
    const host = info.HostConfig;
    return {
      user: info.Config.User,
      cmd: info.Config.Cmd ?? [],
      capAdd: host.CapAdd ?? [],
      capDrop: host.CapDrop ?? [],
      privileged: host.Privileged ?? false,
      securityOpt: host.SecurityOpt ?? [],
      memory: host.Memory ?? 0,
      nanoCpus: host.NanoCpus ?? 0,
    };
  }

  /** The container as the spec says: image (or its stand-in), command and args, user, capabilities, limits. */
  private build(pod: Pod, spec: Container): GenericContainer {
    const standIn = this.standIns.get(spec.image ?? '');
    let container = this.cluster.containerInPod(pod, spec.name, standIn?.image ?? spec.image ?? '');
    // command replaces the image's ENTRYPOINT and args its CMD, as in Kubernetes.
    const entrypoint = standIn?.entrypoint ?? spec.command;
    if (entrypoint !== undefined) container = container.withEntrypoint([...entrypoint]);
    if (spec.args !== undefined) container = container.withCommand([...spec.args]);

    const security = spec.securityContext ?? {};
    const unknown = Object.keys(security).filter((key) => !REALISED_SECURITY.has(key));
    if (unknown.length > 0)
      throw new Error(`${spec.name}: cannot realise securityContext.${unknown.join(', ')}`);
    if (security.runAsUser !== undefined) {
      container = container.withUser(
        security.runAsGroup !== undefined
          ? `${security.runAsUser}:${security.runAsGroup}`
          : `${security.runAsUser}`,
      );
    }
    // The kubelet refuses to start a container that must not be root but would be.
    if (security.runAsNonRoot === true && (security.runAsUser ?? 0) === 0) {
      throw new Error(`${spec.name}: runAsNonRoot, but it would run as root`);
    }
    const drop = security.capabilities?.drop ?? [];
    const add = security.capabilities?.add ?? [];
    if (drop.length > 0) container = container.withDroppedCapabilities(...drop);
    if (add.length > 0) container = container.withAddedCapabilities(...add);
    if (security.allowPrivilegeEscalation === false) {
      container = container.withSecurityOpt('no-new-privileges');
    }
    if (security.privileged === true) container = container.withPrivilegedMode();

    const limits = spec.resources?.limits ?? {};
    const memory = quantity(limits.memory, 'memory');
    const cpu = quantity(limits.cpu, 'cpu');
    if (memory !== undefined || cpu !== undefined) {
      container = container.withResourcesQuota({
        ...(memory !== undefined ? { memory } : {}),
        ...(cpu !== undefined ? { cpu } : {}),
      });
    }
    return container;
  }
}
