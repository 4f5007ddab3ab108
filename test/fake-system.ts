/**
 * A fake of everything mesh-init's deps reach, for tests through main(): it records
 * every program started (file, args, stdin) and keeps one nat table per backend and
 * family that `*-restore` changes the way iptables-restore does and `*-save` prints:
 *
 * - one transaction per `*nat … COMMIT`: a failing line changes nothing;
 * - `--noflush` keeps what is there; without it `*nat` starts from empty kernel chains;
 * - declaring an existing user chain empties it; `-A` needs the chain and a known
 *   target; `-D` needs the rule (same text); `-X` needs an empty, unreferenced chain;
 *   `-N` a chain that does not exist;
 * - failures read like iptables 1.8.9's: legacy says `iptables-restore: line N failed`
 *   (exit 1), nft names the reason (exit 1, or 4 for a chain in use or already there).
 *
 * Until a restore changed a table, `*-save` prints the (real) text it was set up with,
 * verbatim; afterwards it prints the table in iptables-save's layout, each rule in the
 * spelling it was appended with.
 */
import { readFileSync } from 'node:fs';
import type { Deps } from '../src/apply.js';
import { main } from '../src/cli.js';
import type { Backend, Config } from '../src/config.js';
import type { CommandResult } from '../src/iptables.js';
import type { Family } from '../src/rules.js';
import type { ValidationResult } from '../src/validate.js';

export const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

export type TableKey = `${Backend}/${Family}`;
/** Text each table starts with, as `*-save` (whole dump or `-t nat`) printed it. */
export type Setup = Partial<Record<TableKey, string>>;

export interface Call {
  readonly file: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
}

/** Overrides the kernel for one program; `undefined` lets the kernel answer. */
export type Answer =
  | CommandResult
  | ((call: Call, kernel: FakeKernel) => CommandResult | undefined);

export const success = (stdout = ''): CommandResult => ({ exitCode: 0, stdout, stderr: '' });
export const exited = (exitCode: number, stderr: string): CommandResult => ({
  exitCode,
  stdout: '',
  stderr,
});
export const notFound: CommandResult = {
  exitCode: undefined,
  stdout: '',
  stderr: '',
  startError: 'not found',
};

const KERNEL_CHAINS = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];
const KERNEL_TARGETS = ['RETURN', 'ACCEPT', 'DROP', 'REDIRECT', 'DNAT', 'SNAT', 'MASQUERADE'];

interface Chain {
  readonly name: string;
  policy: string;
  rules: string[];
}

interface Table {
  /** What the setup said, printed as long as no restore changed the table. */
  original: string | undefined;
  /** Every line of the original outside its `*nat` section (other tables of a whole dump). */
  other: string;
  nat: Chain[] | undefined;
}

const emptyNat = (): Chain[] =>
  KERNEL_CHAINS.map((name) => ({ name, policy: 'ACCEPT', rules: [] }));

function natSectionOf(text: string): string | undefined {
  return /^\*nat\n[\s\S]*?^COMMIT\n/m.exec(text)?.[0];
}

function parseTable(text: string): Table {
  const chains: Chain[] = [];
  const other: string[] = [];
  let inNat = false;
  let sawNat = false;
  for (const line of text.split('\n')) {
    if (line === '*nat') {
      inNat = true;
      sawNat = true;
      continue;
    }
    if (!inNat) {
      if (line !== '') other.push(line);
      continue;
    }
    if (line === 'COMMIT') inNat = false;
    else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(' ');
      chains.push({ name, policy, rules: [] });
    } else if (line.startsWith('-A ')) {
      const [, chain = '', spec = ''] = /^-A (\S+) (.*)$/.exec(line) ?? [];
      const found = chains.find((c) => c.name === chain);
      if (found === undefined) throw new Error(`fake kernel: setup appends to unknown ${chain}`);
      found.rules.push(spec);
    }
  }
  return {
    original: text,
    other: other.length > 0 ? `${other.join('\n')}\n` : '',
    nat: sawNat ? chains : undefined,
  };
}

/** The target of a rule: the word after its last `-j`, quoted text left out. */
function targetOf(spec: string): string | undefined {
  const unquoted = spec.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const jumps = [...unquoted.matchAll(/(?:^| )-j (\S+)/g)];
  return jumps.at(-1)?.[1];
}

export class FakeKernel {
  private readonly tables = new Map<TableKey, Table>();

  constructor(setup: Setup) {
    for (const [key, text] of Object.entries(setup) as [TableKey, string][]) {
      this.tables.set(key, parseTable(text));
    }
  }

  private table(key: TableKey): Table {
    let table = this.tables.get(key);
    if (table === undefined) {
      table = { original: undefined, other: '', nat: undefined };
      this.tables.set(key, table);
    }
    return table;
  }

  /** The nat table as `*-save -t nat` prints it now ('' when it was never set up). */
  natText(key: TableKey): string {
    const table = this.table(key);
    if (table.original !== undefined) {
      const otherTables = /^\*(?!nat$)/m.test(table.original);
      return otherTables ? (natSectionOf(table.original) ?? '') : table.original;
    }
    if (table.nat === undefined) return '';
    const lines = [
      '*nat',
      ...table.nat.map((c) => `:${c.name} ${c.policy} [0:0]`),
      ...table.nat.flatMap((c) => c.rules.map((spec) => `-A ${c.name} ${spec}`)),
      'COMMIT',
    ];
    return `${lines.join('\n')}\n`;
  }

  /** What a racing program does: changes one table outside any restore mesh-init runs. */
  change(key: TableKey, edit: (chains: Chain[]) => void): void {
    const table = this.table(key);
    const chains = structuredClone(table.nat ?? emptyNat());
    edit(chains);
    table.nat = chains;
    table.original = undefined;
  }

  /** Appends a rule as `iptables -t nat -A` would. */
  append(key: TableKey, chain: string, spec: string): void {
    this.change(key, (chains) => {
      const found = chains.find((c) => c.name === chain);
      if (found === undefined) throw new Error(`fake kernel: no chain ${chain} in ${key}`);
      found.rules.push(spec);
    });
  }

  /** Answers a `*-save` or `*-restore` call; undefined for any other program. */
  run(call: Call): CommandResult | undefined {
    const match = /^(ip6?)tables-(legacy|nft)-(save|restore)$/.exec(call.file);
    if (match === null) return undefined;
    const key: TableKey = `${match[2] as Backend}/${match[1] === 'ip6' ? 'ipv6' : 'ipv4'}`;
    if (match[3] === 'save') return success(this.save(key, call.args.includes('nat')));
    return this.restore(key, call);
  }

  private save(key: TableKey, natOnly: boolean): string {
    const table = this.table(key);
    if (table.original !== undefined && !natOnly) return table.original;
    return natOnly ? this.natText(key) : `${table.other}${this.natText(key)}`;
  }

  private restore(key: TableKey, call: Call): CommandResult {
    const table = this.table(key);
    const noflush = call.args.includes('--noflush');
    const lines = (call.input ?? '').split('\n');
    // What iptables 1.8.9 says: legacy only "line N failed"; nft names the reason, and
    // refuses to delete a chain in use or create one twice with exit 4.
    const nft = key.startsWith('nft/');
    const tool = key.endsWith('ipv6') ? 'ip6tables-restore' : 'iptables-restore';
    const failed = (n: number, nftReason?: string, nftChainError?: string) => {
      if (!nft) return exited(1, `${tool}: line ${n} failed\n`);
      if (nftChainError !== undefined) {
        return exited(4, `${call.file} v1.8.9 (nf_tables): \nline ${n}: ${nftChainError}\n`);
      }
      return exited(1, `${call.file}: line ${n} failed${nftReason ? `: ${nftReason}` : ''}\n`);
    };
    let work: Chain[] | undefined;
    for (const [i, line] of lines.entries()) {
      const n = i + 1;
      if (line.trim() === '' || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        if (line !== '*nat' || work !== undefined) return failed(n);
        work = noflush ? structuredClone(table.nat ?? emptyNat()) : emptyNat();
        continue;
      }
      if (work === undefined) return failed(n);
      const chains: Chain[] = work;
      const find = (name: string) => chains.find((c) => c.name === name);
      if (line === 'COMMIT') {
        table.nat = chains;
        table.original = undefined;
        work = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const [name = '', policy = '-'] = line.slice(1).split(' ');
        const chain = find(name);
        if (KERNEL_CHAINS.includes(name)) {
          if (chain !== undefined) chain.policy = policy;
        } else if (chain !== undefined) chain.rules = [];
        else chains.push({ name, policy: '-', rules: [] });
        continue;
      }
      const [, command, name = '', spec = ''] = /^-([ADXN]) (\S+)(?: (.*))?$/.exec(line) ?? [];
      const chain = find(name);
      if (command === 'N') {
        if (chain !== undefined) {
          return failed(n, undefined, `CHAIN_USER_ADD failed (File exists): chain ${name}`);
        }
        chains.push({ name, policy: '-', rules: [] });
        continue;
      }
      if (chain === undefined) return failed(n, 'No chain/target/match by that name.');
      if (command === 'A') {
        const target = targetOf(spec);
        if (target !== undefined && !KERNEL_TARGETS.includes(target) && !find(target)) {
          return failed(n);
        }
        chain.rules.push(spec);
      } else if (command === 'D') {
        const at = chain.rules.indexOf(spec);
        if (at < 0) return failed(n, 'Bad rule (does a matching rule exist in that chain?).');
        chain.rules.splice(at, 1);
      } else if (command === 'X') {
        const referenced = chains.some((c) => c.rules.some((r) => targetOf(r) === name));
        if (KERNEL_CHAINS.includes(name) || chain.rules.length > 0 || referenced) {
          return failed(n, undefined, `CHAIN_DEL failed (Device or resource busy): chain ${name}`);
        }
        chains.splice(chains.indexOf(chain), 1);
      } else return failed(n);
    }
    if (work !== undefined) return failed(lines.length);
    return success();
  }
}

/**
 * A pod whose nft backend already holds mesh-init's default rules next to Docker's
 * (real iptables-nft-save output) and whose legacy backend is empty.
 */
export const LIVE_NFT: Setup = {
  'nft/ipv4': fixture('iptables-nft-save.txt'),
  'nft/ipv6': fixture('ip6tables-nft-save-nat.txt'),
  'legacy/ipv4': '',
  'legacy/ipv6': '',
};

/** The same pod on the legacy backend. */
export const LIVE_LEGACY: Setup = {
  'nft/ipv4': '',
  'legacy/ipv4': fixture('iptables-legacy-save.txt'),
  'legacy/ipv6': fixture('ip6tables-nft-save-nat.txt'),
};

/** A fixed clock, so JSON log lines can be compared. */
export const NOW = new Date('2026-11-26T00:00:00.000Z');

export interface FakeOptions {
  readonly globalIpv6?: boolean;
  readonly answers?: Readonly<Record<string, Answer>>;
  /** What deps.validate answers (--run-validation). */
  readonly validation?: ValidationResult;
  /** What deps.random answers; 0.5 unless given. */
  readonly random?: number;
}

export function fakeSystem(setup: Setup, options: FakeOptions = {}) {
  const kernel = new FakeKernel(setup);
  const calls: Call[] = [];
  /** What each call answered, by the index of the call. */
  const outcomes: CommandResult[] = [];
  const sleeps: number[] = [];
  const validations: { config: Config; afterCalls: number }[] = [];
  let stdout = '';
  let stderr = '';
  const deps: Deps = {
    run: async (file, args, input) => {
      const call: Call = { file, args: [...args], input };
      calls.push(call);
      const answer = options.answers?.[file];
      const result =
        (typeof answer === 'function' ? answer(call, kernel) : answer) ??
        kernel.run(call) ??
        (file === 'ip' ? success() : undefined);
      if (result === undefined) throw new Error(`the fake system has no program ${file}`);
      outcomes[calls.length - 1] = result;
      return result;
    },
    hasGlobalIpv6: () => options.globalIpv6 ?? false,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    now: () => NOW,
    random: () => options.random ?? 0.5,
    validate: async (config) => {
      validations.push({ config, afterCalls: calls.length });
      return options.validation ?? { ok: true, detail: 'the probe landed on the proxy port' };
    },
  };
  return {
    deps,
    kernel,
    calls,
    sleeps,
    validations,
    outcomes,
    restores: () => calls.filter((c) => c.file.endsWith('-restore')),
    /** The restores that succeeded: what the kernel took. */
    applied: () =>
      calls.filter((c, i) => c.file.endsWith('-restore') && outcomes[i]?.exitCode === 0),
    /** Each call as one line: `file args…`. */
    commands: () => calls.map(({ file, args }) => [file, ...args].join(' ')),
    stdout: () => stdout,
    stderr: () => stderr,
    stderrLines: () => stderr.split('\n').slice(0, -1),
  };
}

export type FakeSystem = ReturnType<typeof fakeSystem>;

/** main() against a fresh fake system: its exit code and everything the fake saw. */
export async function run(
  argv: string[],
  setup: Setup = LIVE_NFT,
  options: FakeOptions & { env?: Record<string, string> } = {},
) {
  const system = fakeSystem(setup, options);
  const code = await main(argv, options.env ?? {}, system.deps);
  return { code, ...system };
}

export const golden = (name: string) =>
  readFileSync(new URL(`./golden/${name}`, import.meta.url), 'utf8');

/**
 * A varied save as the mesh-init before c1467e4 left it: in ISTIO_OUTPUT the -q jump came
 * just before the -x RETURN (the fixtures hold today's order, -x first, as in Istio).
 */
export function beforeC1467e4(name: string): string {
  const save = fixture(name);
  const old = save.replace(
    /^(-A ISTIO_OUTPUT -d \S+ -m comment --comment "mesh-init: destination excluded by --outbound-exclude-cidrs" -j RETURN\n)(-A ISTIO_OUTPUT -p tcp -m tcp --dport 443 -m comment --comment "mesh-init: destination port listed in --outbound-include-ports" -j ISTIO_REDIRECT\n)/m,
    '$2$1',
  );
  if (old === save) throw new Error(`${name}: the -x RETURN is not just before the -q jump`);
  return old;
}
