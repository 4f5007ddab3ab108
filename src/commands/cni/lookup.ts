/**
 * The pod, read with a bounded number of attempts. A pod that cannot be read cannot
 * be decided on, so ADD fails rather than let it start uncaptured; the runtime
 * (the kubelet) retries the sandbox later.
 */
import type { Logger } from '../../log.js';
import type { PodView, ReadPod } from '../../system/kube.js';
import { CniError, ERROR_CODES } from './protocol.js';
import type { PodLookup } from './settings.js';

export async function lookUpPod(
  read: ReadPod,
  namespace: string,
  name: string,
  policy: PodLookup,
  sleep: (ms: number) => Promise<void>,
  log: Logger,
): Promise<PodView> {
  const resource = `pod ${namespace}/${name}`;
  let last = '';
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    const outcome = await read(namespace, name);
    if (outcome.ok) return outcome.pod;
    last = outcome.reason;
    if (!outcome.retry) {
      throw new CniError(
        ERROR_CODES.podUnknown,
        `cannot read ${resource} from the Kubernetes API: ${last}`,
        'ADD fails rather than start a pod that may need capture without it',
      );
    }
    log.info(
      'pod',
      `reading ${resource}: attempt ${attempt} of ${policy.attempts} failed: ${last}`,
      {
        attempt,
        attempts: policy.attempts,
      },
    );
    if (attempt < policy.attempts) await sleep(policy.intervalMs);
  }
  throw new CniError(
    ERROR_CODES.tryAgainLater,
    `cannot read ${resource} from the Kubernetes API after ${policy.attempts} attempts (mesh-init.podLookup): ${last}`,
    'ADD fails rather than start a pod that may need capture without it; the runtime retries the pod',
  );
}
