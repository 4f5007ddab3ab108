import { type Document, isMap, isScalar } from 'yaml';
import { UsageError } from '../../errors.js';
import { insertBefore } from './nodes.js';
import type { Resource } from './resources.js';
import { REMOVED_FIELDS, type WorkloadKind } from './workloads.js';

/**
 * Workloads written for apiVersions that Kubernetes no longer serves (the seed's
 * `extensions/v1beta1` Deployment): a warning that says what to change, or with
 * --upgrade-api the change itself.
 */

export interface Notice {
  readonly level: 'warning' | 'info';
  readonly message: string;
}

function templateLabels(resource: Resource, workload: WorkloadKind): Record<string, unknown> {
  const labels = resource.node.getIn([...workload.templatePath, 'metadata', 'labels']);
  return isMap(labels) ? (labels.toJSON() as Record<string, unknown>) : {};
}

function labelText(labels: Record<string, unknown>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}: ${String(value)}`)
    .join(', ');
}

function needsSelector(resource: Resource, workload: WorkloadKind): boolean {
  const selector = resource.node.getIn(['spec', 'selector']);
  return workload.selectorRequired && (selector === undefined || selector === null);
}

/** Notices for a removed apiVersion; with `upgrade`, rewrites the resource to the current one. */
export function checkApiVersion(
  doc: Document,
  resource: Resource,
  workload: WorkloadKind,
  upgrade: boolean,
): Notice[] {
  const apiVersion = String(resource.node.get('apiVersion'));
  const removedIn = workload.removed.get(apiVersion);
  if (removedIn === undefined) return [];
  const labels = templateLabels(resource, workload);
  const selector = needsSelector(resource, workload);
  const what = `${resource.describe}: apiVersion ${apiVersion} was removed in Kubernetes ${removedIn}`;
  if (!upgrade) {
    const selectorHint = selector
      ? ` and add spec.selector.matchLabels (${Object.keys(labels).length > 0 ? `the template's labels: ${labelText(labels)}` : 'the template has no labels to take'})`
      : '';
    return [
      {
        level: 'warning',
        message: `${what}, current clusters refuse it: change it to ${workload.current}${selectorHint}, or run mesh-init inject --upgrade-api`,
      },
    ];
  }
  return upgradeResource(doc, resource, workload, { what, labels, selector });
}

function upgradeResource(
  doc: Document,
  resource: Resource,
  workload: WorkloadKind,
  found: { what: string; labels: Record<string, unknown>; selector: boolean },
): Notice[] {
  const notices: Notice[] = [];
  const spec = resource.node.get('spec');
  if (found.selector) {
    if (Object.keys(found.labels).length === 0 || !isMap(spec)) {
      throw new UsageError(
        `${found.what}, and --upgrade-api cannot make ${workload.current}'s required spec.selector: the pod template has no labels to select`,
      );
    }
    insertBefore(spec, 'template', doc.createPair('selector', { matchLabels: found.labels }));
  }
  const version = resource.node.get('apiVersion', true);
  if (isScalar(version)) version.value = workload.current;
  for (const path of REMOVED_FIELDS) {
    if (resource.node.hasIn(path)) {
      resource.node.deleteIn(path);
      notices.push({
        level: 'warning',
        message: `${resource.describe}: ${path.join('.')} does not exist in ${workload.current}; --upgrade-api removed it`,
      });
    }
  }
  const selectorNote = found.selector
    ? `, spec.selector.matchLabels from the template's labels (${labelText(found.labels)})`
    : '';
  notices.unshift({
    level: 'info',
    message: `${found.what}; --upgrade-api made it ${workload.current}${selectorNote}`,
  });
  return notices;
}
