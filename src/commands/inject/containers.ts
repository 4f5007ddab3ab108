import type { Container } from 'kubernetes-types/core/v1.js';
import type { Config } from '../../config/config.js';
import { renderFlags } from '../../config/render-flags.js';

/** The containers inject adds, built from a pod's validated Config. */

export interface InitContainerSettings {
  readonly name: string;
  readonly image: string;
  /** CNI mode: the rules come from the CNI plugin; the container only proves them, unprivileged. */
  readonly cni: boolean;
}

export interface ProxySettings {
  readonly name: string;
  readonly image: string;
}

/**
 * Requests fit a run measured at about 56 MB resident (Node and one
 * iptables-restore per family); the limits leave twice that, and a whole CPU so
 * that Node's start-up, most of the run, is not throttled.
 */
const RESOURCES = {
  requests: { cpu: '10m', memory: '64Mi' },
  limits: { cpu: '1', memory: '128Mi' },
} as const;

/**
 * The init container as Istio's injector writes istio-init today: root inside its
 * own container, only NET_ADMIN and NET_RAW, never privileged nor able to gain
 * privileges. The capabilities act on the pod's network namespace only.
 */
function capturingSecurityContext(): NonNullable<Container['securityContext']> {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    privileged: false,
    runAsGroup: 0,
    runAsNonRoot: false,
    runAsUser: 0,
  };
}

/**
 * CNI mode, as Istio's istio-validation: no capabilities at all, as the proxy's
 * UID and GID (whose traffic the rules spare).
 */
function validatingSecurityContext(config: Config): NonNullable<Container['securityContext']> {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    privileged: false,
    runAsGroup: firstOf(config.proxyGids),
    // -u 0 is allowed (a proxy running as root); the kubelet would refuse it as non-root.
    runAsNonRoot: firstOf(config.proxyUids) !== 0,
    runAsUser: firstOf(config.proxyUids),
  };
}

function firstOf(ids: readonly number[]): number {
  const id = ids[0];
  // validateConfig never returns an empty UID or GID list.
  if (id === undefined) throw new Error('a config without a proxy id');
  return id;
}

export function buildInitContainer(config: Config, settings: InitContainerSettings): Container {
  return {
    name: settings.name,
    image: settings.image,
    args: renderFlags(config),
    resources: {
      requests: { ...RESOURCES.requests },
      limits: { ...RESOURCES.limits },
    },
    securityContext: settings.cni ? validatingSecurityContext(config) : capturingSecurityContext(),
  };
}

/**
 * The sidecar, as in the seed: its image, running as the proxy's UID (the first
 * of -u) and GID, so that the rules leave its own traffic alone.
 */
export function buildProxyContainer(config: Config, settings: ProxySettings): Container {
  return {
    name: settings.name,
    image: settings.image,
    securityContext: {
      runAsGroup: firstOf(config.proxyGids),
      runAsNonRoot: firstOf(config.proxyUids) !== 0,
      runAsUser: firstOf(config.proxyUids),
    },
  };
}
