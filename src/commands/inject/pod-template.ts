import type { Container } from 'kubernetes-types/core/v1.js';
import { type Document, isMap, isScalar, isSeq, type YAMLMap } from 'yaml';
import { STATUS_ANNOTATION } from '../../config/annotations.js';
import { UsageError } from '../../errors.js';
import { mapAt, namesOf, seqAt } from './nodes.js';

/**
 * Edits of one pod template (`metadata` + `spec`): the containers inject adds,
 * and the status annotation that lets the next run replace them.
 */

/** The containers a run of inject added, by name: what the next run removes first. */
export interface Injected {
  readonly initContainers: readonly string[];
  readonly containers: readonly string[];
}

const NOTHING_INJECTED: Injected = { initContainers: [], containers: [] };

type ContainerList = keyof Injected;

/** The status annotation's record; malformed, it is an error rather than a guess. */
export function readStatus(annotations: ReadonlyMap<string, unknown>, resource: string): Injected {
  const value = annotations.get(STATUS_ANNOTATION);
  if (value === undefined) return NOTHING_INJECTED;
  const invalid = () =>
    new UsageError(
      `invalid annotation ${STATUS_ANNOTATION} on ${resource}: expected what mesh-init inject writes there ({"initContainers":[…],"containers":[…]}), got ${JSON.stringify(value)}`,
    );
  if (typeof value !== 'string') throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw invalid();
  }
  const names = (list: unknown) =>
    Array.isArray(list) && list.every((name) => typeof name === 'string') ? list : undefined;
  const record = parsed as Record<string, unknown> | null;
  const initContainers = names(record?.initContainers ?? []);
  const containers = names(record?.containers ?? []);
  if (initContainers === undefined || containers === undefined) throw invalid();
  return { initContainers, containers };
}

/** Takes out the containers a previous run added; an init container list left empty goes too. */
export function removeInjected(spec: YAMLMap, injected: Injected): void {
  for (const list of ['initContainers', 'containers'] as const) {
    const seq = spec.get(list, true);
    if (!isSeq(seq)) continue;
    const names = namesOf(seq);
    seq.items = seq.items.filter((_, i) => !injected[list].includes(names[i] ?? ''));
    if (list === 'initContainers' && seq.items.length === 0) spec.delete(list);
  }
}

/**
 * A container that inject did not add but that has the name it would give its own:
 * two containers of one name make an invalid pod, and taking over the user's is
 * not inject's call.
 */
export function assertNameFree(
  spec: YAMLMap,
  name: string,
  resource: string,
  nameFlag: string,
): void {
  for (const list of ['initContainers', 'containers'] as const) {
    const seq = spec.get(list, true);
    if (isSeq(seq) && namesOf(seq).includes(name)) {
      throw new UsageError(
        `${resource} already has a container named ${name} in ${list} that mesh-init inject did not add (no ${STATUS_ANNOTATION} annotation names it): rename or remove it, or pass another ${nameFlag}`,
      );
    }
  }
}

/** The container's yaml node, with short lists (args, capabilities) on one line, as the seed wrote them. */
function containerNode(doc: Document, container: Container): YAMLMap {
  const node = doc.createNode(container) as YAMLMap;
  const oneLine = [
    ['args'],
    ['securityContext', 'capabilities', 'add'],
    ['securityContext', 'capabilities', 'drop'],
  ];
  for (const path of oneLine) {
    const seq = node.getIn(path, true);
    if (!isSeq(seq)) continue;
    seq.flow = true;
    for (const item of seq.items) if (isScalar(item)) item.type = 'QUOTE_DOUBLE';
  }
  return node;
}

/** Adds a container: init containers first of all (they run in order), others last. */
export function addContainer(
  doc: Document,
  spec: YAMLMap,
  list: ContainerList,
  container: Container,
): void {
  const seq = seqAt(doc, spec, list, list === 'initContainers' ? 'containers' : undefined);
  const node = containerNode(doc, container);
  if (list === 'initContainers') seq.items.unshift(node);
  else seq.items.push(node);
}

/** Records what was added (or, with nothing added, takes the record away). */
export function writeStatus(doc: Document, template: YAMLMap, injected: Injected): void {
  const nothing = injected.initContainers.length === 0 && injected.containers.length === 0;
  const annotations = template.getIn(['metadata', 'annotations'], true);
  if (nothing) {
    if (isMap(annotations) && annotations.has(STATUS_ANNOTATION)) {
      annotations.delete(STATUS_ANNOTATION);
      // An annotations map (and metadata) inject made for its record alone goes with it.
      if (annotations.items.length === 0) template.deleteIn(['metadata', 'annotations']);
      const metadata = template.get('metadata', true);
      if (isMap(metadata) && metadata.items.length === 0) template.delete('metadata');
    }
    return;
  }
  const metadata = mapAt(doc, template, 'metadata', 'spec');
  const map = mapAt(doc, metadata, 'annotations');
  map.set(STATUS_ANNOTATION, JSON.stringify(injected));
}
