import { type Document, isMap, isSeq, type YAMLMap } from 'yaml';

/** The Kubernetes objects of one document: the document itself, or the items of a List. */

export interface Resource {
  readonly node: YAMLMap;
  /** For messages: `Deployment shop/service-one (apps.yaml, document 2)`. */
  readonly describe: string;
}

function stringAt(node: YAMLMap, path: readonly string[]): string | undefined {
  const value = node.getIn(path);
  return typeof value === 'string' ? value : undefined;
}

function describe(node: YAMLMap, where: string): string {
  const kind = stringAt(node, ['kind']) ?? 'object without a kind';
  const namespace = stringAt(node, ['metadata', 'namespace']);
  const name =
    stringAt(node, ['metadata', 'name']) ??
    (stringAt(node, ['metadata', 'generateName']) !== undefined
      ? `${stringAt(node, ['metadata', 'generateName'])}…`
      : '(unnamed)');
  return `${kind} ${namespace !== undefined ? `${namespace}/` : ''}${name} (${where})`;
}

/**
 * `kind: List` (kubectl's) and typed lists such as `DeploymentList` hold their
 * objects under `items`; anything else is one object.
 */
export function resourcesOf(doc: Document, index: number, source: string): Resource[] {
  const root = doc.contents;
  if (!isMap(root)) return [];
  const where = `${source}, document ${index + 1}`;
  const kind = stringAt(root, ['kind']);
  const items = root.get('items');
  if (kind?.endsWith('List') && isSeq(items)) {
    return items.items.flatMap((item, i) =>
      isMap(item) ? [{ node: item, describe: describe(item, `${where}, item ${i + 1}`) }] : [],
    );
  }
  return [{ node: root, describe: describe(root, where) }];
}
