import type { Table } from '../../plan/rules.js';

/**
 * What is live in one table of one family, read from `iptables-save` output.
 * Only the parts reconciliation needs: which chains exist and which rules jump where.
 */

export interface LiveRule {
  readonly chain: string;
  /** The rule exactly as iptables-save printed it, without the leading `-A CHAIN`. */
  readonly spec: string;
  readonly target: string | undefined;
}

export interface TableState {
  readonly chains: readonly string[];
  readonly rules: readonly LiveRule[];
}

export const EMPTY_STATE: TableState = { chains: [], rules: [] };

/** Splits like iptables-restore does: blanks separate, double quotes group, backslash escapes. */
export function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
      started = true;
    } else if (c === '"') {
      quoted = !quoted;
      started = true;
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (started) tokens.push(current);
      current = '';
      started = false;
    } else {
      current += c;
      started = true;
    }
  }
  if (started) tokens.push(current);
  return tokens;
}

/** Reads one table's section of iptables-save output (the whole dump or `-t TABLE`). */
export function parseTableState(save: string, table: Table): TableState {
  const chains: string[] = [];
  const rules: LiveRule[] = [];
  let inTable = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) {
      inTable = line.trim() === `*${table}`;
      continue;
    }
    if (!inTable) continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ', 1)[0];
      if (name) chains.push(name);
    } else if (line.startsWith('-A ')) {
      const tokens = tokenize(line);
      const chain = tokens[1];
      if (chain === undefined) continue;
      const at = tokens.lastIndexOf('-j');
      const target = at >= 0 ? tokens[at + 1] : undefined;
      const spec = line.slice(`-A ${chain}`.length).trim();
      rules.push({ chain, spec, target });
    } else if (line.startsWith('COMMIT')) {
      inTable = false;
    }
  }
  return { chains, rules };
}

/**
 * One table's section of a dump, to restore it as it was (without --noflush); an
 * empty table where the dump had none.
 */
export function tableSection(dump: string, table: Table): string {
  const lines = dump.split('\n');
  const start = lines.findIndex((line) => line.trim() === `*${table}`);
  if (start < 0) return `*${table}\nCOMMIT\n`;
  const end = lines.findIndex(
    (line, i) => i > start && (line.trim() === 'COMMIT' || line.startsWith('*')),
  );
  const section = lines.slice(start, end < 0 ? undefined : end).filter((line) => line.trim());
  return `${[...section, 'COMMIT'].join('\n')}\n`;
}

/** How many rules a dump holds in all its tables; picks the backend in use. */
export function countRules(save: string): number {
  return save.split('\n').filter((line) => line.startsWith('-A ')).length;
}

/**
 * A rule in a form that does not depend on how it was written: iptables-save adds
 * the implicit `-m tcp`, moves `-s`/`-d` ahead of `-o`, and drops quotes. The
 * option groups (`! -d 127.0.0.1/32`, `--uid-owner 1337`, …) are sorted.
 */
export function canonicalRule(chain: string, spec: string): string {
  const tokens = tokenize(spec);
  const groups: string[][] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] ?? '';
    if (token === '-m' && (tokens[i + 1] === 'tcp' || tokens[i + 1] === 'udp')) {
      i++;
      continue;
    }
    const last = groups.at(-1);
    const startsGroup = token === '!' || (token.startsWith('-') && last?.at(-1) !== '!');
    if (startsGroup || last === undefined) groups.push([token]);
    else last.push(token);
  }
  // iptables-save leaves out an address match that matches everything.
  const everything = /^-[sd] (0\.0\.0\.0|::)\/0$/;
  return [
    chain,
    ...groups
      .map((group) => group.join(' '))
      .filter((group) => !everything.test(group))
      .sort(),
  ].join(' ');
}
