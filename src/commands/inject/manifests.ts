import { type Document, Parser, parseAllDocuments, type ToStringOptions } from 'yaml';
import { UsageError } from '../../errors.js';

/**
 * A manifest file as the yaml package's Documents, and back to text. Documents
 * that inject leaves alone are written back byte for byte from the input; the
 * ones it changes are printed by the yaml package in the style the input uses
 * (indentation, `- ` under or beside its key), keeping comments, key order,
 * quoting, flow or block style and blank lines.
 */

export interface Manifest {
  readonly text: string;
  readonly format: 'yaml' | 'json';
  readonly documents: readonly Document.Parsed[];
}

/** Reads YAML (one or more documents) or JSON; a syntax error names the input and the line. */
export function parseManifest(text: string, source: string): Manifest {
  const documents = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(documents) ? documents : [];
  for (const doc of list) {
    const error = doc.errors[0];
    if (error !== undefined) {
      throw new UsageError(`invalid ${source}: it is not YAML or JSON: ${error.message}`);
    }
  }
  const format = /^\s*[{[]/.test(text) ? 'json' : 'yaml';
  return { text, format, documents: list };
}

/**
 * Each document's text in the input, with what comes before it (comments, `---`):
 * the yaml package gives those to the document that follows, so a reprinted
 * document must replace them too. The parser's tokens tell where each begins.
 */
function segments(manifest: Manifest): string[] {
  const starts: number[] = [];
  let prelude: number | undefined = 0;
  for (const token of new Parser().parse(manifest.text)) {
    if (token.type === 'document') {
      starts.push(prelude ?? token.offset);
      prelude = undefined;
    } else if (token.type !== 'doc-end' && prelude === undefined) {
      prelude = token.offset;
    }
  }
  if (starts.length !== manifest.documents.length) {
    throw new Error(`${starts.length} document tokens for ${manifest.documents.length} documents`);
  }
  return starts.map((start, i) =>
    manifest.text.slice(start, starts[i + 1] ?? manifest.text.length),
  );
}

/**
 * How the input indents, so that a reprinted document looks like its neighbours:
 * the narrowest indentation of a nested line, and whether sequences under a key
 * are indented (`key:\n  - a`) or not (`key:\n- a`, as kubectl prints them).
 */
function styleOf(text: string): ToStringOptions {
  const lines = text.split('\n');
  let indent: number | undefined;
  let indented = 0;
  let compact = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const spaces = /^( *)\S/.exec(line)?.[1]?.length ?? 0;
    if (spaces > 0 && !line.trimStart().startsWith('#'))
      indent = Math.min(indent ?? spaces, spaces);
    const key = /^( *)(- )?[^\s#-][^#]*:$/.exec(line);
    const next = /^( *)- /.exec(lines[i + 1] ?? '');
    if (key && next) {
      const keyColumn = (key[1]?.length ?? 0) + (key[2]?.length ?? 0);
      if ((next[1]?.length ?? 0) > keyColumn) indented++;
      else compact++;
    }
  }
  return {
    indent: indent !== undefined && indent <= 8 ? indent : 2,
    indentSeq: indented > compact,
    // Long strings (a list of CIDRs in args) stay on one line rather than being folded.
    lineWidth: 0,
    flowCollectionPadding: false,
  };
}

/** The JSON indentation of the input (kubectl prints 4 spaces, most tools 2). */
function jsonIndent(text: string): number {
  const spaces = /\n( +)"/.exec(text)?.[1]?.length;
  return spaces !== undefined && spaces <= 8 ? spaces : 2;
}

/**
 * The manifest as text, with the documents `changed` names reprinted. JSON in gives
 * JSON out. Nothing changed: the input itself.
 */
export function printManifest(manifest: Manifest, changed: ReadonlySet<number>): string {
  if (changed.size === 0) return manifest.text;
  if (manifest.format === 'json') {
    const indent = jsonIndent(manifest.text);
    return manifest.documents
      .map((doc) => `${JSON.stringify(doc.toJS(), null, indent)}\n`)
      .join('');
  }
  return segments(manifest)
    .map((segment, i) => {
      const doc = manifest.documents[i];
      return doc !== undefined && changed.has(i) ? doc.toString(styleOf(segment)) : segment;
    })
    .join('');
}
