/**
 * Which pods the plugin captures, and with which flags: the decision a runtime's ADD
 * waits on, from the pod as the Kubernetes API returns it. Pure. The annotations are
 * read exactly as `mesh-init inject` reads a pod template's.
 */

import { optionsWithAnnotations, wantsCapture, wantsInjection } from '../../config/annotations.js';
import { type Config, validateConfig } from '../../config/config.js';
import type { GivenOption, GivenOptions } from '../../config/given.js';
import { namesGroups } from '../../config/groups.js';
import { UsageError } from '../../errors.js';
import type { PodView } from '../../system/kube.js';
import { type CniSettings, INIT_CONTAINER_FLAGS, NAMESPACE_FLAG } from './settings.js';

export type PodDecision =
  | { readonly capture: false; readonly reason: string }
  | { readonly capture: true; readonly options: GivenOptions };

export function describePod(namespace: string, name: string): string {
  return `pod ${namespace}/${name}`;
}

function namesOf(list: readonly { readonly name?: string }[] | undefined): string[] {
  return (list ?? []).flatMap((container) =>
    container.name === undefined ? [] : [container.name],
  );
}

/**
 * Captured: a pod with the proxy (a container, or a native sidecar among the init
 * containers) that has no capturing init container of its own and did not opt out.
 * Its flags: the block's, with its annotations on top. A bad annotation throws a
 * UsageError naming it: a pod that should be captured must not start without.
 */
export function decidePod(pod: PodView, settings: CniSettings, resource: string): PodDecision {
  const skip = (reason: string): PodDecision => ({ capture: false, reason });
  const spec = pod.spec;
  if (spec?.hostNetwork === true) return skip("it uses the node's network (hostNetwork)");
  const inits = namesOf(spec?.initContainers);
  const containers = namesOf(spec?.containers);
  if (![...containers, ...inits].includes(settings.proxyContainer)) {
    return skip(`it has no container named ${settings.proxyContainer} (mesh-init.proxyContainer)`);
  }
  if (inits.includes(settings.initContainer)) {
    return skip(
      `its init container ${settings.initContainer} applies the rules (mesh-init.initContainer)`,
    );
  }
  const annotations = new Map<string, unknown>(Object.entries(pod.metadata?.annotations ?? {}));
  const labels = new Map<string, unknown>(Object.entries(pod.metadata?.labels ?? {}));
  if (!wantsInjection(annotations, labels, resource)) return skip('it opted out');
  if (!wantsCapture(annotations)) return skip('its interception mode is NONE');
  return {
    capture: true,
    options: optionsWithAnnotations(settings.options, annotations, resource),
  };
}

/** What a CNI command asks of the run: ADD applies, CHECK compares, DEL cleans up. */
export type RunMode = 'apply' | 'check' | 'cleanup';

const MODE_FLAGS: Readonly<Record<RunMode, string | undefined>> = {
  apply: undefined,
  check: 'check',
  cleanup: 'cleanup',
};

export interface PodConfig {
  readonly config: Config;
  /** What the log should say: flags left to the init container, DNS capture widened. */
  readonly notes: readonly string[];
}

/**
 * The pod's flags → the run's Config in the pod's namespace. Flags of the validation
 * init container are left to it; a namespace of its own choosing is refused. DNS
 * capture takes all of port 53, as Istio's CNI plugin does (the run does so for any
 * namespace of another's): the plugin cannot read the pod's /etc/resolv.conf.
 */
export function podConfig(options: GivenOptions, netns: string, mode: RunMode): PodConfig {
  const given = new Map<string, GivenOption>();
  const notes: string[] = [];
  for (const [name, option] of options) {
    if (name === NAMESPACE_FLAG) {
      throw new UsageError(
        `invalid ${option.origin}: the CNI plugin applies in the pod's own network namespace (CNI_NETNS)`,
      );
    }
    if (INIT_CONTAINER_FLAGS.has(name)) {
      notes.push(`${option.origin} is left to the validation init container`);
      continue;
    }
    given.set(name, option);
  }
  given.set(NAMESPACE_FLAG, { value: netns, origin: 'CNI_NETNS', fromEnv: true });
  const modeFlag = MODE_FLAGS[mode];
  if (modeFlag !== undefined) {
    given.set(modeFlag, {
      value: true,
      origin: `CNI ${mode === 'check' ? 'CHECK' : 'DEL'}`,
      fromEnv: false,
    });
  }
  const config = validateConfig(given);
  if (namesGroups(config)) {
    throw new UsageError(
      "invalid --outbound-owner-groups: group names need the pod's /etc/group, which the CNI plugin cannot read; give GIDs",
    );
  }
  notes.push(...config.notes);
  return { config, notes };
}
