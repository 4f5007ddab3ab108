import type { Container } from 'kubernetes-types/core/v1.js';
import { type Document, isMap, isSeq, type YAMLMap } from 'yaml';
import {
  FLAG_ANNOTATIONS,
  INJECT_ANNOTATIONS,
  optionsWithAnnotations,
  wantsCapture,
  wantsInjection,
} from '../../config/annotations.js';
import { validateConfig } from '../../config/config.js';
import type { GivenOption, GivenOptions } from '../../config/given.js';
import {
  buildInitContainer,
  buildProxyContainer,
  type InitContainerSettings,
  type ProxySettings,
} from './containers.js';
import { parseManifest, printManifest } from './manifests.js';
import { entriesOf, namesOf } from './nodes.js';
import {
  addContainer,
  assertNameFree,
  type Injected,
  readStatus,
  removeInjected,
  writeStatus,
} from './pod-template.js';
import { type Resource, resourcesOf } from './resources.js';
import { checkApiVersion, type Notice } from './upgrade.js';
import { type WorkloadKind, workloadOf } from './workloads.js';

export type { Notice } from './upgrade.js';

/** Everything inject needs to know, validated (the command line's part by parseInjectCommandLine). */
export interface InjectSettings {
  /** How messages name the input: the file name, or `stdin`. */
  readonly source: string;
  /** mesh-init's flags from the command line: every pod's settings unless its annotations say otherwise. */
  readonly options: GivenOptions;
  readonly init: InitContainerSettings;
  /** With --proxy-image: the proxy container too. */
  readonly proxy: ProxySettings | undefined;
  readonly upgradeApi: boolean;
}

export interface InjectResult {
  readonly output: string;
  readonly notices: readonly Notice[];
  /** Pod templates that got mesh-init's containers. */
  readonly injected: number;
}

/** What --cni adds to every pod's options: prove the CNI plugin's rules, apply none. */
function cniOptions(options: Map<string, GivenOption>): void {
  for (const name of ['run-validation', 'skip-rule-apply']) {
    options.set(name, { value: true, origin: '--cni', fromEnv: false });
  }
}

/** Injection annotations on a workload's own metadata do nothing: Kubernetes copies only the template's to the pods. */
function misplacedAnnotations(resource: Resource, workload: WorkloadKind): Notice[] {
  if (workload.templatePath.length === 0) return [];
  const own = entriesOf(resource.node.getIn(['metadata', 'annotations']));
  return [...own.keys()]
    .filter((key) => FLAG_ANNOTATIONS.has(key) || INJECT_ANNOTATIONS.includes(key))
    .map((key) => ({
      level: 'warning',
      message: `${resource.describe}: annotation ${key} is on the ${workload.kind}'s own metadata, where inject does not read it; move it to ${[...workload.templatePath, 'metadata', 'annotations'].join('.')}`,
    }));
}

/** Istio's own init container programs the same chains: two of them in one pod is a mistake. */
function istioInitNotice(spec: YAMLMap, resource: Resource): Notice[] {
  const inits = spec.get('initContainers', true);
  const names = isSeq(inits) ? namesOf(inits) : [];
  return names
    .filter((name) => name === 'istio-init' || name === 'istio-validation')
    .map((name) => ({
      level: 'warning',
      message: `${resource.describe}: it also has Istio's ${name} init container, which programs the same iptables chains: keep one of the two`,
    }));
}

/** One pod template: take out what an earlier run added, then add what this pod asks for. */
function injectWorkload(
  doc: Document,
  resource: Resource,
  workload: WorkloadKind,
  settings: InjectSettings,
): { notices: Notice[]; injected: boolean } {
  const template =
    workload.templatePath.length === 0 ? resource.node : resource.node.getIn(workload.templatePath);
  const spec = isMap(template) ? template.get('spec') : undefined;
  if (!isMap(template) || !isMap(spec)) {
    const message = `${resource.describe}: no pod template at ${[...workload.templatePath, 'spec'].join('.')}, nothing injected`;
    return { notices: [{ level: 'warning', message }], injected: false };
  }
  const notices = misplacedAnnotations(resource, workload);
  const annotations = entriesOf(template.getIn(['metadata', 'annotations']));
  const labels = entriesOf(template.getIn(['metadata', 'labels']));
  removeInjected(spec, readStatus(annotations, resource.describe));

  const added = decideContainers(resource, spec, annotations, labels, settings, notices);
  for (const container of added.initContainers) {
    assertNameFree(spec, container.name, resource.describe, '--container-name');
    addContainer(doc, spec, 'initContainers', container);
  }
  for (const container of added.containers) {
    assertNameFree(spec, container.name, resource.describe, '--proxy-name');
    addContainer(doc, spec, 'containers', container);
  }
  const injected: Injected = {
    initContainers: added.initContainers.map((c) => c.name),
    containers: added.containers.map((c) => c.name),
  };
  writeStatus(doc, template, injected);
  notices.push(...istioInitNotice(spec, resource));
  const any = injected.initContainers.length + injected.containers.length > 0;
  return { notices, injected: any };
}

/** Which containers the pod gets: none when it opts out or shares the node's network. */
function decideContainers(
  resource: Resource,
  spec: YAMLMap,
  annotations: ReadonlyMap<string, unknown>,
  labels: ReadonlyMap<string, unknown>,
  settings: InjectSettings,
  notices: Notice[],
): { initContainers: Container[]; containers: Container[] } {
  const none = { initContainers: [], containers: [] };
  if (!wantsInjection(annotations, labels, resource.describe)) return none;
  if (spec.get('hostNetwork') === true) {
    // The init container would capture the node's own traffic.
    notices.push({
      level: 'warning',
      message: `${resource.describe}: hostNetwork is true, so the pod has no network namespace of its own to capture; nothing injected`,
    });
    return none;
  }
  const options = optionsWithAnnotations(settings.options, annotations, resource.describe);
  if (settings.init.cni) cniOptions(options);
  const config = validateConfig(options);
  // What the pod's run would log as a note (an option without effect, one that wins
  // over another), said now, at injection; annotations' origins name the resource.
  notices.push(...config.notes.map((note): Notice => ({ level: 'warning', message: note })));
  return {
    initContainers: wantsCapture(annotations) ? [buildInitContainer(config, settings.init)] : [],
    containers: settings.proxy ? [buildProxyContainer(config, settings.proxy)] : [],
  };
}

/**
 * The manifest with mesh-init's containers in every pod template, and what the
 * user should hear about it. Pure: text in, text out.
 */
export function injectManifest(text: string, settings: InjectSettings): InjectResult {
  const manifest = parseManifest(text, settings.source);
  const notices: Notice[] = [];
  const changed = new Set<number>();
  let injected = 0;
  let workloads = 0;
  manifest.documents.forEach((doc, index) => {
    const before = JSON.stringify(doc.toJS());
    for (const resource of resourcesOf(doc, index, settings.source)) {
      const workload = workloadOf(resource.node.get('apiVersion'), resource.node.get('kind'));
      if (workload === undefined) continue;
      workloads++;
      notices.push(...checkApiVersion(doc, resource, workload, settings.upgradeApi));
      const outcome = injectWorkload(doc, resource, workload, settings);
      notices.push(...outcome.notices);
      if (outcome.injected) injected++;
    }
    if (JSON.stringify(doc.toJS()) !== before) changed.add(index);
  });
  if (workloads === 0) {
    notices.push({
      level: 'warning',
      message: `${settings.source}: no Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job or CronJob in it; nothing injected`,
    });
  }
  return { output: printManifest(manifest, changed), notices, injected };
}
