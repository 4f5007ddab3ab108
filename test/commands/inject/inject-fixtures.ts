import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { type InjectResult, injectManifest } from '../../../src/commands/inject/inject.js';
import { parseInjectCommandLine } from '../../../src/commands/inject/options.js';

/**
 * A pod as `kubectl get -o json` prints it (4 spaces). Made here rather than kept
 * as a file, which the formatter would re-indent.
 */
const POD_JSON = `${JSON.stringify(
  {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'json-pod', labels: { app: 'json' } },
    spec: { containers: [{ name: 'app', image: 'app:1' }] },
  },
  null,
  4,
)}\n`;

/** A file of test/fixtures/inject (apps.yaml is the seed's, verbatim), or pod.json. */
export function fixture(name: string): string {
  if (name === 'pod.json') return POD_JSON;
  return readFileSync(new URL(`../../fixtures/inject/${name}`, import.meta.url), 'utf8');
}

/** `mesh-init inject -f <source> ARGV…` on a text, as the command runs it, without the shell. */
export async function inject(
  text: string,
  argv: readonly string[] = [],
  source = 'apps.yaml',
): Promise<InjectResult> {
  const parsed = await parseInjectCommandLine(['-f', source, ...argv]);
  if (parsed.kind !== 'inject') throw new Error('expected an inject command line');
  return injectManifest(text, parsed.settings);
}

/** Every Kubernetes object of a manifest (YAML or JSON), List items on their own. */
export function objectsOf(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text as string)
    .flatMap((doc) => {
      const value = doc.toJS() as Record<string, unknown> | null;
      if (value === null) return [];
      return String(value.kind).endsWith('List') && Array.isArray(value.items)
        ? (value.items as Record<string, unknown>[])
        : [value];
    })
    .filter((value) => typeof value === 'object');
}

// biome-ignore lint/suspicious/noExplicitAny: walking plain parsed YAML
type Any = any;

/** The pod spec of a workload object (the Pod's own spec, a template's, a CronJob's job template's). */
export function podSpecOf(object: Record<string, unknown>): Any {
  const o = object as Any;
  if (o.kind === 'Pod') return o.spec;
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template?.spec;
  return o.spec?.template?.spec;
}
