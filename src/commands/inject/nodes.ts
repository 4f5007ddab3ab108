import {
  type Document,
  isMap,
  isNode,
  isScalar,
  isSeq,
  type Pair,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';

/** Small edits of yaml nodes that keep everything around them as it was. */

/** Puts a key before another one (where a reader expects it), or last. */
export function insertBefore(map: YAMLMap, before: string, pair: Pair): void {
  const at = map.items.findIndex((item) => isScalar(item.key) && item.key.value === before);
  map.items.splice(at < 0 ? map.items.length : at, 0, pair);
}

/** The map under `key`, made (before `before`, or last) when it is missing or null. */
export function mapAt(doc: Document, parent: YAMLMap, key: string, before?: string): YAMLMap {
  const found = parent.get(key, true);
  if (isMap(found)) return found;
  const made = doc.createNode({}) as YAMLMap;
  if (parent.has(key)) parent.set(key, made);
  else insertBefore(parent, before ?? '', doc.createPair(key, made));
  return made;
}

/** The sequence under `key`, made (before `before`, or last) when it is missing or null. */
export function seqAt(doc: Document, parent: YAMLMap, key: string, before?: string): YAMLSeq {
  const found = parent.get(key, true);
  if (isSeq(found)) {
    // `initContainers: []` would otherwise take the container in flow style, on one line.
    if (found.items.length === 0) found.flow = false;
    return found;
  }
  const made = doc.createNode([]) as YAMLSeq;
  if (parent.has(key)) parent.set(key, made);
  else insertBefore(parent, before ?? '', doc.createPair(key, made));
  return made;
}

/** A map's entries as plain values (labels and annotations), empty when it is not a map. */
export function entriesOf(node: unknown): Map<string, unknown> {
  if (!isMap(node)) return new Map();
  return new Map(
    node.items.map((pair) => [
      String(isScalar(pair.key) ? pair.key.value : pair.key),
      isScalar(pair.value)
        ? pair.value.value
        : isNode(pair.value)
          ? pair.value.toJSON()
          : (pair.value ?? null),
    ]),
  );
}

/** The `name` of each item of a container list. */
export function namesOf(seq: YAMLSeq): (string | undefined)[] {
  return seq.items.map((item) => {
    const name = isMap(item) ? item.get('name') : undefined;
    return typeof name === 'string' ? name : undefined;
  });
}
