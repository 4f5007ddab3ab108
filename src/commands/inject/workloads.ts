/**
 * The Kubernetes kinds that hold a pod template, as data: where the template
 * sits, the apiVersion current clusters serve, and the old ones they no longer
 * do. A kind under any other apiVersion (a custom resource that happens to be
 * called Deployment) is not a workload and passes through untouched.
 */

export interface WorkloadKind {
  readonly kind: string;
  /** The apiVersion that current Kubernetes releases serve. */
  readonly current: string;
  /** Old apiVersions: the Kubernetes release that stopped serving each. */
  readonly removed: ReadonlyMap<string, string>;
  /** Keys from the resource to the pod template (its `metadata` and `spec`); [] for a Pod. */
  readonly templatePath: readonly string[];
  /**
   * apps/v1 requires spec.selector; extensions/v1beta1 and apps/v1beta1 defaulted
   * it to the template's labels, so manifests written for them often have none.
   */
  readonly selectorRequired: boolean;
}

const APPS_V1_REMOVED = '1.16';

const WORKLOAD_KINDS: readonly WorkloadKind[] = [
  {
    kind: 'Pod',
    current: 'v1',
    removed: new Map(),
    templatePath: [],
    selectorRequired: false,
  },
  {
    kind: 'ReplicationController',
    current: 'v1',
    removed: new Map(),
    templatePath: ['spec', 'template'],
    selectorRequired: false,
  },
  {
    kind: 'Deployment',
    current: 'apps/v1',
    removed: new Map([
      ['extensions/v1beta1', APPS_V1_REMOVED],
      ['apps/v1beta1', APPS_V1_REMOVED],
      ['apps/v1beta2', APPS_V1_REMOVED],
    ]),
    templatePath: ['spec', 'template'],
    selectorRequired: true,
  },
  {
    kind: 'StatefulSet',
    current: 'apps/v1',
    removed: new Map([
      ['apps/v1beta1', APPS_V1_REMOVED],
      ['apps/v1beta2', APPS_V1_REMOVED],
    ]),
    templatePath: ['spec', 'template'],
    selectorRequired: true,
  },
  {
    kind: 'DaemonSet',
    current: 'apps/v1',
    removed: new Map([
      ['extensions/v1beta1', APPS_V1_REMOVED],
      ['apps/v1beta2', APPS_V1_REMOVED],
    ]),
    templatePath: ['spec', 'template'],
    selectorRequired: true,
  },
  {
    kind: 'ReplicaSet',
    current: 'apps/v1',
    removed: new Map([
      ['extensions/v1beta1', APPS_V1_REMOVED],
      ['apps/v1beta2', APPS_V1_REMOVED],
    ]),
    templatePath: ['spec', 'template'],
    selectorRequired: true,
  },
  {
    kind: 'Job',
    current: 'batch/v1',
    removed: new Map(),
    templatePath: ['spec', 'template'],
    selectorRequired: false,
  },
  {
    kind: 'CronJob',
    current: 'batch/v1',
    removed: new Map([
      ['batch/v1beta1', '1.25'],
      ['batch/v2alpha1', '1.21'],
    ]),
    templatePath: ['spec', 'jobTemplate', 'spec', 'template'],
    selectorRequired: false,
  },
];

/**
 * Fields of the removed versions that apps/v1 does not have: an upgrade drops them
 * and says so (rollbackTo was replaced by `kubectl rollout undo`; templateGeneration
 * by the controller's own revision history).
 */
export const REMOVED_FIELDS: readonly (readonly string[])[] = [
  ['spec', 'rollbackTo'],
  ['spec', 'templateGeneration'],
];

/** The workload an apiVersion and kind name, or undefined for anything else. */
export function workloadOf(apiVersion: unknown, kind: unknown): WorkloadKind | undefined {
  return WORKLOAD_KINDS.find(
    (w) =>
      w.kind === kind &&
      typeof apiVersion === 'string' &&
      (w.current === apiVersion || w.removed.has(apiVersion)),
  );
}
