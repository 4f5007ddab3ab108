/**
 * The docs against the code, so that they cannot drift:
 *
 * - every flag of FLAGS (src/config/flags.ts), with its letter, its other names and
 *   its variables, has its row in docs/flags.md, and that table names no flag the
 *   program does not have;
 * - every fenced code block in README.md and docs/*.md directly after a line
 *   `<!-- sample: ARGS -->` is what main() prints on stdout for ARGS (split on
 *   spaces) in a fresh pod of the fake system: the block's lines, verbatim and
 *   whole, somewhere in stdout (a block may be an excerpt).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/cli.js';
import { FLAGS, type FlagSpec } from '../src/config/flags.js';
import { fakeSystem } from './fake-system.js';

const ROOT = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');

/** README.md and docs/*.md, as paths from the repository's root. */
function markdownFiles(): string[] {
  const docs = readdirSync(new URL('docs/', ROOT))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return [...(existsSync(new URL('README.md', ROOT)) ? ['README.md'] : []), ...docs];
}

// ---------------------------------------------------------------------------------
// Samples

interface Sample {
  /** `docs/rules.md:12`: the marker's line. */
  readonly where: string;
  readonly args: readonly string[];
  /** The block's lines, without the fences. */
  readonly block: string;
}

const MARKER = /^<!-- sample: (.*) -->\s*$/;

/**
 * The marked blocks of one markdown text. A marker that is not directly followed by
 * a fenced block, or whose block is not closed, is an error: it would check nothing.
 */
function samplesIn(file: string, text: string): Sample[] {
  const lines = text.split('\n');
  const samples: Sample[] = [];
  lines.forEach((line, i) => {
    const marker = MARKER.exec(line);
    if (marker === null) return;
    const where = `${file}:${i + 1}`;
    const fence = /^(`{3,}|~{3,})/.exec(lines[i + 1] ?? '')?.[1];
    if (fence === undefined) {
      throw new Error(`${where}: the sample marker is not directly followed by a fenced block`);
    }
    const closing = new RegExp(`^${fence[0]}{${fence.length},}\\s*$`);
    const end = lines.findIndex((candidate, j) => j > i + 1 && closing.test(candidate));
    if (end < 0) throw new Error(`${where}: the sample's block is not closed`);
    const args = (marker[1] ?? '').split(' ').filter((arg) => arg !== '');
    samples.push({ where, args, block: lines.slice(i + 2, end).join('\n') });
  });
  return samples;
}

/** main() in a fresh pod of the fake system: no live rules, no global address, no variables. */
async function runMain(args: readonly string[]) {
  const system = fakeSystem({});
  const readInput = (name: string) => readFile(new URL(name, ROOT), 'utf8');
  const code = await main(args, {}, { ...system.deps, readInput });
  return { code, stdout: system.stdout(), stderr: system.stderr() };
}

/** Why a sample is not what mesh-init prints; undefined when it is. */
async function checkSample(sample: Sample): Promise<string | undefined> {
  const { code, stdout, stderr } = await runMain(sample.args);
  // Whole lines only: an excerpt starts and ends at line breaks of the output.
  if (`\n${stdout}`.includes(`\n${sample.block}\n`)) return undefined;
  return [
    `${sample.where}: the block is not in the output of \`mesh-init ${sample.args.join(' ')}\` (exit ${code}).`,
    '--- stdout ---',
    stdout,
    '--- stderr ---',
    stderr,
  ].join('\n');
}

const SAMPLES = markdownFiles().flatMap((file) => samplesIn(file, read(file)));

describe('samples in README.md and docs/*.md are what mesh-init prints', () => {
  it('docs/rules.md shows the default rules as a sample', () => {
    expect(SAMPLES.some((s) => s.where.startsWith('docs/rules.md:'))).toBe(true);
  });

  it.each(SAMPLES.map((s) => [s.where, s] as const))('%s', async (_where, sample) => {
    expect(await checkSample(sample)).toBeUndefined();
  });

  const ARGS = '--dry-run -p 15001 -u 1337 --ipv6 false --iptables-backend nft';
  const doc = (block: string) =>
    ['Text.', '', `<!-- sample: ${ARGS} -->`, '```', block, '```', ''].join('\n');
  const REDIRECT =
    '-A ISTIO_REDIRECT -p tcp -m comment --comment "mesh-init: outbound TCP goes to the proxy" -j REDIRECT --to-ports';

  it('passes a block that is in the output (the control for the next test)', async () => {
    const [sample] = samplesIn('memory.md', doc(`*nat\n:ISTIO_INBOUND - [0:0]`));
    expect(sample?.args).toEqual(ARGS.split(' '));
    expect(sample && (await checkSample(sample))).toBeUndefined();
    const [line] = samplesIn('memory.md', doc(`${REDIRECT} 15001`));
    expect(line && (await checkSample(line))).toBeUndefined();
  });

  it('fails a block whose output changed (another port), and one that cuts a line', async () => {
    const [changed] = samplesIn('memory.md', doc(`${REDIRECT} 15002`));
    expect(changed && (await checkSample(changed))).toMatch(
      /^memory\.md:3: the block is not in the output of `mesh-init --dry-run -p 15001/,
    );
    const [cut] = samplesIn('memory.md', doc(REDIRECT));
    expect(cut && (await checkSample(cut))).toBeDefined();
  });

  it('refuses a marker without a fenced block right after it, and an unclosed block', () => {
    expect(() => samplesIn('memory.md', `<!-- sample: ${ARGS} -->\n\n\`\`\`\nx\n\`\`\`\n`)).toThrow(
      'memory.md:1: the sample marker is not directly followed by a fenced block',
    );
    expect(() => samplesIn('memory.md', `<!-- sample: ${ARGS} -->\n\`\`\`\nx\n`)).toThrow(
      'not closed',
    );
  });
});

// ---------------------------------------------------------------------------------
// docs/flags.md

/** A table row's cells; `\|` inside a cell is a pipe, not a border. */
const cellsOf = (row: string) =>
  row
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());

/** The names in a row's first cell: `` `--cleanup`, `--cleanup-only` `` → both. */
const namesOf = (cell: string) => [...cell.matchAll(/`(--?[^`]+)`/g)].map((m) => m[1] ?? '');

/** Not in FLAGS: yargs' own options, which args.ts adds. */
const BUILT_IN = ['--help', '--version'];

/**
 * What docs/flags.md lacks or has too much: each flag's row (its long names in the
 * first cell, its letter in the second, every variable in the row), and no row for
 * a flag the program does not have.
 */
function flagsDocProblems(text: string, flags: readonly FlagSpec[]): string[] {
  const rows = text
    .split('\n')
    .filter((line) => line.trim().startsWith('|'))
    .map(cellsOf)
    .filter((cells) => namesOf(cells[0] ?? '').some((name) => name.startsWith('--')));
  const problems: string[] = [];
  for (const flag of flags) {
    const row = rows.find((cells) => namesOf(cells[0] ?? '').includes(`--${flag.name}`));
    if (row === undefined) {
      problems.push(`--${flag.name}: no row`);
      continue;
    }
    for (const alias of flag.aliases ?? []) {
      if (!namesOf(row[0] ?? '').includes(`--${alias}`)) {
        problems.push(`--${flag.name}: its other name --${alias} is not in its row`);
      }
    }
    const letter = flag.short === undefined ? '' : `\`-${flag.short}\``;
    if ((row[1] ?? '') !== letter) {
      problems.push(`--${flag.name}: letter cell "${row[1]}", expected "${letter}"`);
    }
    for (const variable of flag.env) {
      if (!row.some((cell) => cell.includes(`\`${variable}\``))) {
        problems.push(`--${flag.name}: variable ${variable} is not in its row`);
      }
    }
  }
  const known = new Set([
    ...BUILT_IN,
    ...flags.flatMap((f) => [`--${f.name}`, ...(f.aliases ?? []).map((a) => `--${a}`)]),
  ]);
  for (const row of rows) {
    for (const name of namesOf(row[0] ?? '').filter((n) => n.startsWith('--'))) {
      if (!known.has(name)) problems.push(`${name}: a row for a flag mesh-init does not have`);
    }
  }
  return problems;
}

describe('docs/flags.md', () => {
  const text = read('docs/flags.md');

  it('has a row for every flag of FLAGS, with its letter, other names and variables', () => {
    expect(flagsDocProblems(text, FLAGS)).toEqual([]);
  });

  it('is found lacking when a flag or a variable is missing (the check checks)', () => {
    const [first] = FLAGS;
    if (first === undefined) throw new Error('FLAGS is empty');
    const extraVariable: FlagSpec = { ...first, env: [...first.env, 'MESH_INIT_NOT_DOCUMENTED'] };
    expect(flagsDocProblems(text, [extraVariable])).toContain(
      `--${first.name}: variable MESH_INIT_NOT_DOCUMENTED is not in its row`,
    );
    const newFlag: FlagSpec = { ...first, name: 'not-documented', short: 'Z', env: [] };
    expect(flagsDocProblems(text, [...FLAGS, newFlag])).toContain('--not-documented: no row');
    expect(flagsDocProblems(text, FLAGS.slice(1))).toContain(
      `--${first.name}: a row for a flag mesh-init does not have`,
    );
  });
});
