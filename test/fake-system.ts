/**
 * A fake of everything mesh-init's deps reach, for tests through main(): it records
 * every program started (file, args, stdin) and keeps, per backend and family, every
 * table (nat, mangle, raw, filter) that `*-restore` changes the way iptables-restore
 * does and `*-save` prints:
 *
 * - one transaction per `*TABLE … COMMIT`: a failing line changes nothing of that
 *   table (tables committed earlier in the same input stay, as with iptables 1.8.9);
 * - `--noflush` keeps what is there; without it `*TABLE` starts from the table's empty
 *   kernel chains;
 * - declaring an existing user chain empties it; `-A` needs the chain and a target
 *   the table knows (REDIRECT only in nat, TPROXY and MARK only in mangle, CT only in
 *   raw) or a chain of the table; `-I CHAIN N` the same and a place 1 to length + 1
 *   (counted after the lines before it; no N is 1); `-D` needs the rule (same text);
 *   `-X` needs an empty, unreferenced chain; `-N` a chain that does not exist; a table
 *   has only its own kernel chains (raw has no INPUT);
 * - at COMMIT, REDIRECT must be reachable only from PREROUTING or OUTPUT and TPROXY
 *   only from PREROUTING, as the kernel checks when the table is replaced;
 * - failures read like iptables 1.8.9's: legacy says `iptables-restore: line N failed`
 *   (exit 1), nft names the reason (exit 1, or 4 for a chain in use or already there).
 *
 * Until a restore changed a table, `*-save` prints its section of the (real) text it
 * was set up with, verbatim (and the whole text, comments included, while no table
 * changed); afterwards it prints that table in iptables-save's layout, each rule in
 * the spelling it was appended with. `*-save` without `-t` prints every table.
 *
 * It also fakes the `ip` commands mesh-init runs: `ip -6 addr replace ADDR/128 dev lo`,
 * `ip -6 addr show dev lo` (iproute2 6.1's layout, `::1/128` always there), and
 * TPROXY's policy routing (`ip -4|-6 rule list|add|del fwmark M table|lookup T [pref
 * P]`, `ip -4|-6 route replace|del local default|::/0 dev lo table T`, `ip -4|-6 route
 * show table T`), keeping the rules and routes per family with the kernel's answers
 * to a missing one. As Linux does, `rule add` without `pref` takes the lowest non-zero
 * preference there less one (so copies pile up), and a rule identical to one there
 * (same pref, mark and table) is refused with `RTNETLINK answers: File exists`. Anything
 * else it does not know throws: a fake that accepts anything would hide a wrong command.
 */
import { readFileSync } from 'node:fs';
import { main } from '../src/cli/cli.js';
import type { Deps } from '../src/commands/run.js';
import type { Backend, Config } from '../src/config/config.js';
import type { Family } from '../src/config/net.js';
import type { CommandResult } from '../src/system/exec.js';
import type { ValidationResult } from '../src/system/probe.js';

export const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/iptables/${name}`, import.meta.url), 'utf8');

export type TableKey = `${Backend}/${Family}`;
/** Text each backend and family starts with, as `*-save` printed it (any tables). */
export type Setup = Partial<Record<TableKey, string>>;
/** The tables the fake kernel knows. */
export type TableName = 'nat' | 'mangle' | 'raw' | 'filter';

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

/** The kernel's chains of each table. */
const KERNEL_CHAINS: Readonly<Record<TableName, readonly string[]>> = {
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
};
/** The targets each table takes (the nat table refuses DROP; REDIRECT is nat's, TPROXY mangle's, CT raw's). */
const KERNEL_TARGETS: Readonly<Record<TableName, readonly string[]>> = {
  nat: ['RETURN', 'ACCEPT', 'REDIRECT', 'DNAT', 'SNAT', 'MASQUERADE', 'LOG'],
  mangle: ['RETURN', 'ACCEPT', 'DROP', 'MARK', 'CONNMARK', 'TPROXY', 'LOG'],
  raw: ['RETURN', 'ACCEPT', 'DROP', 'CT', 'NOTRACK', 'LOG'],
  filter: ['RETURN', 'ACCEPT', 'DROP', 'REJECT', 'LOG'],
};
/** Targets the kernel allows only from some hooks, directly or through user chains. */
const TARGET_HOOKS: Readonly<Record<string, readonly string[]>> = {
  REDIRECT: ['PREROUTING', 'OUTPUT'],
  TPROXY: ['PREROUTING'],
};
const isTableName = (name: string): name is TableName => name in KERNEL_CHAINS;

export interface Chain {
  readonly name: string;
  policy: string;
  rules: string[];
}

interface TableState {
  readonly name: TableName;
  /** Its `*TABLE … COMMIT` section of the setup, printed as long as no restore changed it. */
  original: string | undefined;
  chains: Chain[];
}

interface Dump {
  /** What the setup said, printed whole as long as no restore changed any table. */
  original: string | undefined;
  /** In the order `*-save` prints them: the setup's, then those created since. */
  tables: TableState[];
}

const emptyTable = (name: TableName): Chain[] =>
  KERNEL_CHAINS[name].map((chain) => ({ name: chain, policy: 'ACCEPT', rules: [] }));

function parseDump(text: string): Dump {
  const tables: TableState[] = [];
  let current: { table: TableState; lines: string[] } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (!isTableName(name)) throw new Error(`fake kernel: setup has unknown table ${name}`);
      if (current !== undefined) throw new Error(`fake kernel: setup's ${name} starts in another`);
      current = { table: { name, original: undefined, chains: [] }, lines: [line] };
      continue;
    }
    if (current === undefined) continue;
    current.lines.push(line);
    const { chains } = current.table;
    if (line === 'COMMIT') {
      current.table.original = `${current.lines.join('\n')}\n`;
      tables.push(current.table);
      current = undefined;
    } else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(' ');
      chains.push({ name, policy, rules: [] });
    } else if (line.startsWith('-A ')) {
      const [, chain = '', spec = ''] = /^-A (\S+) (.*)$/.exec(line) ?? [];
      const found = chains.find((c) => c.name === chain);
      if (found === undefined) throw new Error(`fake kernel: setup appends to unknown ${chain}`);
      found.rules.push(spec);
    }
  }
  if (current !== undefined)
    throw new Error(`fake kernel: setup's ${current.table.name} has no COMMIT`);
  // A setup of one table alone is that table's text, comments included (`*-save -t nat`).
  const [only] = tables;
  if (only !== undefined && tables.length === 1) only.original = text;
  return { original: text, tables };
}

function renderTable(table: TableState): string {
  if (table.original !== undefined) return table.original;
  const lines = [
    `*${table.name}`,
    ...table.chains.map((c) => `:${c.name} ${c.policy} [0:0]`),
    ...table.chains.flatMap((c) => c.rules.map((spec) => `-A ${c.name} ${spec}`)),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** The target of a rule: the word after its last `-j`, quoted text left out. */
function targetOf(spec: string): string | undefined {
  const unquoted = spec.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const jumps = [...unquoted.matchAll(/(?:^| )-j (\S+)/g)];
  return jumps.at(-1)?.[1];
}

/** The kernel chains of `name` from which packets can reach chain `chain`. */
function hooksReaching(chains: readonly Chain[], name: TableName, chain: string): Set<string> {
  const hooks = new Set<string>();
  const seen = new Set<string>();
  const visit = (target: string) => {
    if (seen.has(target)) return;
    seen.add(target);
    if (KERNEL_CHAINS[name].includes(target)) hooks.add(target);
    for (const c of chains) if (c.rules.some((r) => targetOf(r) === target)) visit(c.name);
  };
  visit(chain);
  return hooks;
}

// ---- ip (iproute2) ----

/** One policy-routing rule as `ip rule add fwmark M lookup T` makes it. */
export interface IpRule {
  readonly pref: number;
  readonly mark: number;
  readonly table: number;
}

interface IpState {
  rules: IpRule[];
  /** `local default dev lo table 133`, in the order they were added. */
  routes: string[];
  /** Addresses added to lo (`ip addr replace`). */
  lo: string[];
  /** Routing tables that ever held a route: the kernel keeps them once made. */
  tables: Set<number>;
}

/** What an `ip` command may be seeded with: rules, routes and lo's addresses before mesh-init runs. */
export interface IpSetup {
  /** Added in this order, as `ip rule add` would (with `pref` when given). */
  readonly rules?: readonly {
    readonly mark: number;
    readonly table: number;
    readonly pref?: number;
  }[];
  readonly routes?: readonly string[];
  /** Addresses on lo besides `::1/128` (IPv6 only), as `::6/128`. */
  readonly lo?: readonly string[];
}

const TABLE_NAMES: Readonly<Record<string, number>> = { default: 253, main: 254, local: 255 };
const number = (text: string | undefined): number | undefined =>
  text !== undefined && /^(0x[0-9a-f]+|0|[1-9]\d*)$/i.test(text) && Number(text) <= 0xffffffff
    ? Number(text)
    : undefined;
const hex = (n: number) => `0x${n.toString(16)}`;
const tableName = (n: number) =>
  Object.entries(TABLE_NAMES).find(([, v]) => v === n)?.[0] ?? String(n);

class FakeIp {
  private readonly state: Record<Family, IpState> = {
    ipv4: { rules: [], routes: [], lo: [], tables: new Set() },
    ipv6: { rules: [], routes: [], lo: [], tables: new Set() },
  };

  seed(family: Family, setup: IpSetup): void {
    for (const { mark, table, pref } of setup.rules ?? []) {
      if (!this.addRule(family, mark, table, pref)) {
        throw new Error(`fake ip: seed rule ${pref} fwmark ${mark} lookup ${table} is there twice`);
      }
    }
    for (const address of setup.lo ?? []) this.state[family].lo.push(address);
    for (const route of setup.routes ?? []) {
      const table = /table (\d+)$/.exec(route)?.[1];
      if (table === undefined) throw new Error(`fake ip: seed route without a table: ${route}`);
      this.state[family].routes.push(route);
      this.state[family].tables.add(Number(table));
    }
  }

  rules(family: Family): string[] {
    return this.state[family].rules.map(
      (r) => `${r.pref}: fwmark ${hex(r.mark)} lookup ${tableName(r.table)}`,
    );
  }

  routes(family: Family): string[] {
    return [...this.state[family].routes];
  }

  lo(family: Family): string[] {
    return [...this.state[family].lo];
  }

  /** Adds a rule where the kernel does; false (nothing added) when an identical one is there. */
  private addRule(family: Family, mark: number, table: number, given?: number): boolean {
    const { rules } = this.state[family];
    // Without a preference the kernel puts the rule just ahead of the first one after
    // 0 (local): main's 32766 in a fresh namespace.
    const pref = given ?? Math.min(32766, ...rules.map((r) => r.pref)) - 1;
    if (rules.some((r) => r.pref === pref && r.mark === mark && r.table === table)) return false;
    // Kept in the kernel's order: by preference, a new one after those of the same.
    const at = rules.findIndex((r) => r.pref > pref);
    rules.splice(at < 0 ? rules.length : at, 0, { pref, mark, table });
    return true;
  }

  run(args: readonly string[]): CommandResult {
    const unknown = () => new Error(`the fake ip does not know: ip ${args.join(' ')}`);
    const [flag, object, command, ...rest] = args;
    const family: Family | undefined = flag === '-4' ? 'ipv4' : flag === '-6' ? 'ipv6' : undefined;
    if (family === undefined) throw unknown();
    const state = this.state[family];
    /** `key value` pairs, each key at most once, only the known keys. */
    const options = (known: readonly string[]) => {
      const found = new Map<string, string>();
      for (let i = 0; i < rest.length; i += 2) {
        const key = rest[i] ?? '';
        const value = rest[i + 1];
        const name = key === 'lookup' ? 'table' : key;
        if (!known.includes(name) || value === undefined || found.has(name)) throw unknown();
        found.set(name, value);
      }
      return found;
    };
    const tableOf = (text: string | undefined) =>
      text === undefined ? undefined : (TABLE_NAMES[text] ?? number(text));

    if (object === 'addr' && command === 'replace') {
      const [address = '', dev, name] = rest;
      const v6 = address.includes(':');
      if (dev !== 'dev' || name !== 'lo' || rest.length !== 3 || v6 !== (family === 'ipv6')) {
        throw unknown();
      }
      if (!state.lo.includes(address)) state.lo.push(address);
      return success();
    }

    if (object === 'addr' && command === 'show') {
      if (family !== 'ipv6' || rest.join(' ') !== 'dev lo') throw unknown();
      // As iproute2 6.1 prints it (each `scope` ends with a blank): the newest first.
      const address = (cidr: string, scope: string) => [
        `    inet6 ${cidr} scope ${scope} \n`,
        '       valid_lft forever preferred_lft forever\n',
      ];
      return success(
        [
          '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n',
          ...[...state.lo].reverse().flatMap((cidr) => address(cidr, 'global')),
          ...address('::1/128', 'host'),
        ].join(''),
      );
    }

    if (object === 'rule') {
      const given = options(['fwmark', 'table', 'pref']);
      const mark = given.has('fwmark') ? number(given.get('fwmark')) : undefined;
      const table = given.has('table') ? tableOf(given.get('table')) : undefined;
      const pref = given.has('pref') ? number(given.get('pref')) : undefined;
      if (
        (given.has('fwmark') && mark === undefined) ||
        (given.has('table') && !table) ||
        (given.has('pref') && pref === undefined)
      ) {
        return exited(
          1,
          `Error: argument "${rest.join(' ')}" is wrong: invalid fwmark, table or preference\n`,
        );
      }
      const matches = (r: IpRule) =>
        (mark === undefined || r.mark === mark) &&
        (table === undefined || r.table === table) &&
        (pref === undefined || r.pref === pref);
      if (command === 'list' || command === 'show') {
        // IPv6 has no rule for the default table.
        const defaults = [
          { pref: 0, text: 'from all lookup local' },
          { pref: 32766, text: 'from all lookup main' },
          ...(family === 'ipv4' ? [{ pref: 32767, text: 'from all lookup default' }] : []),
        ].filter(() => given.size === 0);
        const lines = [
          ...defaults,
          ...state.rules.filter(matches).map((r) => ({
            pref: r.pref,
            text: `from all fwmark ${hex(r.mark)} lookup ${tableName(r.table)}`,
          })),
        ]
          .sort((a, b) => a.pref - b.pref)
          .map((r) => `${r.pref}:\t${r.text}\n`);
        return success(lines.join(''));
      }
      if (mark === undefined || table === undefined) throw unknown();
      if (command === 'add') {
        // The kernel refuses a rule identical to one there (NLM_F_EXCL).
        if (!this.addRule(family, mark, table, pref)) {
          return exited(2, 'RTNETLINK answers: File exists\n');
        }
        return success();
      }
      if (command === 'del') {
        const at = state.rules.findIndex(matches);
        if (at < 0) return exited(2, 'RTNETLINK answers: No such file or directory\n');
        state.rules.splice(at, 1);
        return success();
      }
      throw unknown();
    }

    if (object === 'route' && command === 'show') {
      if (rest[0] !== 'table' || rest.length !== 2) throw unknown();
      const table = tableOf(rest[1]);
      // The kernel's own tables (default, main, local) always exist: not faked.
      if (table !== undefined && table >= 253 && table <= 255) throw unknown();
      // As Linux 6.18 answers for a table never made.
      if (!table || !state.tables.has(table)) {
        return exited(2, `Error: ${family}: FIB table does not exist.\nDump terminated\n`);
      }
      // iproute2 6.1 ends an IPv4 route's line with a blank.
      const suffix = family === 'ipv4' ? ' scope host ' : ' metric 1024 pref medium';
      const shown = state.routes
        .filter((route) => route.endsWith(` table ${tableName(table)}`))
        .map((route) => `${route.replace(/ table \S+$/, '')}${suffix}\n`);
      return success(shown.join(''));
    }

    if (object === 'route' && (command === 'replace' || command === 'del')) {
      const [type, destination = '', ...more] = rest;
      const anyV4 = destination === 'default' || destination === '0.0.0.0/0';
      const anyV6 = destination === 'default' || destination === '::/0';
      if (type !== 'local' || more[0] !== 'dev' || more[2] !== 'table' || more.length !== 4) {
        throw unknown();
      }
      if (family === 'ipv4' ? !anyV4 : !anyV6) {
        return exited(
          1,
          `Error: ${family === 'ipv4' ? 'inet' : 'inet6'} prefix is expected rather than "${destination}".\n`,
        );
      }
      const table = tableOf(more[3]);
      if (!table)
        return exited(1, `Error: argument "${more[3]}" is wrong: "table" value is invalid\n`);
      const route = `local default dev ${more[1]} table ${tableName(table)}`;
      const at = state.routes.indexOf(route);
      if (command === 'replace') {
        if (at < 0) state.routes.push(route);
        state.tables.add(table);
        return success();
      }
      // As Linux 6.x answers: a table never made, then a route not there (IPv4 and IPv6 differ).
      if (!state.tables.has(table)) return exited(2, 'Error: FIB table does not exist.\n');
      if (at < 0) {
        const why = family === 'ipv4' ? 'No such process' : 'No such file or directory';
        return exited(2, `RTNETLINK answers: ${why}\n`);
      }
      state.routes.splice(at, 1);
      return success();
    }
    throw unknown();
  }
}

export class FakeKernel {
  private readonly dumps = new Map<TableKey, Dump>();
  private readonly ip = new FakeIp();

  constructor(setup: Setup, ip: Partial<Record<Family, IpSetup>> = {}) {
    for (const [key, text] of Object.entries(setup) as [TableKey, string][]) {
      this.dumps.set(key, parseDump(text));
    }
    for (const [family, seed] of Object.entries(ip) as [Family, IpSetup][]) {
      this.ip.seed(family, seed);
    }
  }

  private dump(key: TableKey): Dump {
    let dump = this.dumps.get(key);
    if (dump === undefined) {
      dump = { original: undefined, tables: [] };
      this.dumps.set(key, dump);
    }
    return dump;
  }

  private table(key: TableKey, name: TableName): TableState | undefined {
    return this.dump(key).tables.find((t) => t.name === name);
  }

  /** One table as `*-save -t TABLE` prints it now ('' when the table is not there). */
  tableText(key: TableKey, name: TableName): string {
    const table = this.table(key, name);
    return table === undefined ? '' : renderTable(table);
  }

  /** The nat table as `*-save -t nat` prints it now ('' when it was never set up). */
  natText(key: TableKey): string {
    return this.tableText(key, 'nat');
  }

  /** Every table, as `*-save` without `-t` prints them now. */
  saveText(key: TableKey): string {
    const dump = this.dump(key);
    if (dump.original !== undefined) return dump.original;
    return dump.tables.map(renderTable).join('');
  }

  /** Names of the tables there, in the order `*-save` prints them. */
  tableNames(key: TableKey): TableName[] {
    return this.dump(key).tables.map((t) => t.name);
  }

  /** TPROXY's policy rules of a family, as `32765: fwmark 0x539 lookup 133`, first match first. */
  ipRules(family: Family): string[] {
    return this.ip.rules(family);
  }

  /** Routes added with `ip route replace`, as `local default dev lo table 133`. */
  ipRoutes(family: Family): string[] {
    return this.ip.routes(family);
  }

  /** Addresses added to lo with `ip addr replace`. */
  loAddresses(family: Family): string[] {
    return this.ip.lo(family);
  }

  /** What a racing program does: changes one table outside any restore mesh-init runs. */
  change(key: TableKey, edit: (chains: Chain[]) => void, name: TableName = 'nat'): void {
    const dump = this.dump(key);
    let table = this.table(key, name);
    if (table === undefined) {
      table = { name, original: undefined, chains: emptyTable(name) };
      dump.tables.push(table);
    }
    const chains = structuredClone(table.chains);
    edit(chains);
    table.chains = chains;
    table.original = undefined;
    dump.original = undefined;
  }

  /** Appends a rule as `iptables -t TABLE -A` would. */
  append(key: TableKey, chain: string, spec: string, name: TableName = 'nat'): void {
    this.change(
      key,
      (chains) => {
        const found = chains.find((c) => c.name === chain);
        if (found === undefined)
          throw new Error(`fake kernel: no chain ${chain} in ${key} ${name}`);
        found.rules.push(spec);
      },
      name,
    );
  }

  /** Answers a `*-save`, `*-restore` or `ip` call; undefined for any other program. */
  run(call: Call): CommandResult | undefined {
    if (call.file === 'ip') return this.ip.run(call.args);
    const match = /^(ip6?)tables-(legacy|nft)-(save|restore)$/.exec(call.file);
    if (match === null) return undefined;
    const key: TableKey = `${match[2] as Backend}/${match[1] === 'ip6' ? 'ipv6' : 'ipv4'}`;
    if (match[3] === 'save') return this.save(key, call);
    return this.restore(key, call);
  }

  private save(key: TableKey, call: Call): CommandResult {
    if (call.args.length === 0) return success(this.saveText(key));
    const [flag, name = ''] = call.args;
    if (flag !== '-t' || call.args.length !== 2) {
      throw new Error(`the fake kernel does not know: ${call.file} ${call.args.join(' ')}`);
    }
    if (!isTableName(name)) {
      return exited(1, `${call.file}: Table does not exist (do you need to insmod?)\n`);
    }
    return success(this.tableText(key, name));
  }

  private restore(key: TableKey, call: Call): CommandResult {
    const dump = this.dump(key);
    const known = ['--noflush', ...call.args.filter((a) => /^--wait=\d+$/.test(a))];
    const unknownArg = call.args.find((a) => !known.includes(a));
    if (unknownArg !== undefined) {
      throw new Error(`the fake kernel does not know ${call.file} ${unknownArg}`);
    }
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
    let work: { name: TableName; chains: Chain[] } | undefined;
    for (const [i, line] of lines.entries()) {
      const n = i + 1;
      if (line.trim() === '' || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        const name = line.slice(1);
        if (!isTableName(name) || work !== undefined) return failed(n);
        const live = this.table(key, name);
        work = {
          name,
          chains: noflush && live !== undefined ? structuredClone(live.chains) : emptyTable(name),
        };
        continue;
      }
      if (work === undefined) return failed(n);
      const { name: tableName, chains } = work;
      const find = (name: string) => chains.find((c) => c.name === name);
      const kernelChain = (name: string) => KERNEL_CHAINS[tableName].includes(name);
      if (line === 'COMMIT') {
        for (const chain of chains) {
          for (const rule of chain.rules) {
            const allowed = TARGET_HOOKS[targetOf(rule) ?? ''];
            if (allowed === undefined) continue;
            const hooks = [...hooksReaching(chains, tableName, chain.name)];
            if (hooks.some((hook) => !allowed.includes(hook))) return failed(n, 'Invalid argument');
          }
        }
        let table = this.table(key, tableName);
        if (table === undefined) {
          table = { name: tableName, original: undefined, chains };
          dump.tables.push(table);
        }
        table.chains = chains;
        table.original = undefined;
        dump.original = undefined;
        work = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const [name = '', policy = '-'] = line.slice(1).split(' ');
        const chain = find(name);
        if (kernelChain(name)) {
          if (chain !== undefined) chain.policy = policy;
        } else if (['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].includes(name)) {
          return failed(n, 'No chain/target/match by that name.');
        } else if (chain !== undefined) chain.rules = [];
        else chains.push({ name, policy: '-', rules: [] });
        continue;
      }
      // `-I CHAIN [N] spec`: N counts from 1, and without it the rule goes first.
      const inserted = /^-I (\S+)(?: (\d+))? (-.*)$/.exec(line);
      const [, command, name = '', spec = ''] = inserted
        ? ['', 'I', inserted[1], inserted[3]]
        : (/^-([ADXN]) (\S+)(?: (.*))?$/.exec(line) ?? []);
      if (inserted?.[2] !== undefined && Number(inserted[2]) < 1) {
        // A parameter problem: iptables stops reading, whatever the backend.
        const version = nft ? 'v1.8.9 (nf_tables)' : 'v1.8.9 (legacy)';
        return exited(
          2,
          `${nft ? call.file : tool} ${version}: Invalid rule number \`${inserted[2]}'\nError occurred at line: ${n}\n`,
        );
      }
      const chain = find(name);
      if (command === 'N') {
        if (chain !== undefined) {
          return failed(n, undefined, `CHAIN_USER_ADD failed (File exists): chain ${name}`);
        }
        chains.push({ name, policy: '-', rules: [] });
        continue;
      }
      if (chain === undefined) return failed(n, 'No chain/target/match by that name.');
      if (command === 'A' || command === 'I') {
        const target = targetOf(spec);
        const known =
          target === undefined ||
          KERNEL_TARGETS[tableName].includes(target) ||
          (find(target) !== undefined && !kernelChain(target));
        if (!known) return failed(n, 'No chain/target/match by that name.');
        const position = command === 'A' ? chain.rules.length + 1 : Number(inserted?.[2] ?? 1);
        // iptables numbers rules from 1 and inserts at most just past the last one.
        if (position > chain.rules.length + 1) {
          return failed(n, 'Index of insertion too big.');
        }
        chain.rules.splice(position - 1, 0, spec);
      } else if (command === 'D') {
        const at = chain.rules.indexOf(spec);
        if (at < 0) return failed(n, 'Bad rule (does a matching rule exist in that chain?).');
        chain.rules.splice(at, 1);
      } else if (command === 'X') {
        const referenced = chains.some((c) => c.rules.some((r) => targetOf(r) === name));
        if (kernelChain(name) || chain.rules.length > 0 || referenced) {
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

/**
 * LIVE_NFT and LIVE_LEGACY as this mesh-init's re-run leaves them: its hooks ahead of
 * Docker's jump (the fixtures hold an older run's order, which --check calls drift).
 */
export const RERUN_NFT: Setup = {
  ...LIVE_NFT,
  'nft/ipv4': hooksFirst(fixture('iptables-nft-save.txt')),
  'nft/ipv6': hooksFirst(fixture('ip6tables-nft-save-nat.txt')),
};
export const RERUN_LEGACY: Setup = {
  ...LIVE_LEGACY,
  'legacy/ipv4': hooksFirst(fixture('iptables-legacy-save.txt')),
  'legacy/ipv6': hooksFirst(fixture('ip6tables-nft-save-nat.txt')),
};

/** lo as an applying run with IPv6 leaves it: `::6/128` added (--check looks for it). */
export const SIX_ON_LO: NonNullable<FakeOptions['ip']> = { ipv6: { lo: ['::6/128'] } };

/** A pod's /etc/resolv.conf as Kubernetes writes it (ClusterFirst DNS). */
export const POD_RESOLV_CONF = [
  'search default.svc.cluster.local svc.cluster.local cluster.local',
  'nameserver 10.96.0.10',
  'options ndots:5',
  '',
].join('\n');

/** A fixed clock, so JSON log lines can be compared. */
export const NOW = new Date('2026-11-26T00:00:00.000Z');

export interface FakeOptions {
  readonly globalIpv6?: boolean;
  /** The pod has a global IPv4 address too (so --ipv6 auto needs --dual-stack, as in Istio). */
  readonly globalIpv4?: boolean;
  /** The init container's /etc/group. */
  readonly groupFile?: string;
  readonly answers?: Readonly<Record<string, Answer>>;
  /** What deps.validate answers (--run-validation). */
  readonly validation?: ValidationResult;
  /** What deps.random answers; 0.5 unless given. */
  readonly random?: number;
  /** What deps.readResolvConf answers (an Error is thrown); POD_RESOLV_CONF unless given. */
  readonly resolvConf?: string | Error;
  /** Policy rules and routes the pod has before the run. */
  readonly ip?: Partial<Record<Family, IpSetup>>;
  /** A kernel to run on instead of a fresh one from the setup: a re-run in the same pod. */
  readonly kernel?: FakeKernel;
}

export function fakeSystem(setup: Setup, options: FakeOptions = {}) {
  const kernel = options.kernel ?? new FakeKernel(setup, options.ip);
  const calls: Call[] = [];
  /** What each call answered, by the index of the call. */
  const outcomes: CommandResult[] = [];
  const sleeps: number[] = [];
  const validations: { config: Config; families: readonly Family[]; afterCalls: number }[] = [];
  let resolvConfReads = 0;
  let stdout = '';
  let stderr = '';
  const deps: Deps = {
    run: async (file, args, input) => {
      const call: Call = { file, args: [...args], input };
      calls.push(call);
      const answer = options.answers?.[file];
      const result =
        (typeof answer === 'function' ? answer(call, kernel) : answer) ?? kernel.run(call);
      if (result === undefined) throw new Error(`the fake system has no program ${file}`);
      outcomes[calls.length - 1] = result;
      return result;
    },
    addressFamilies: () => ({
      ipv4: options.globalIpv4 ?? false,
      ipv6: options.globalIpv6 ?? false,
    }),
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
    validate: async (config, families) => {
      validations.push({ config, families, afterCalls: calls.length });
      return options.validation ?? { ok: true, detail: 'the probe landed on the proxy port' };
    },
    readGroupFile: async () => options.groupFile ?? 'root:x:0:\nadm:x:4:\n',
    readResolvConf: async () => {
      resolvConfReads++;
      const answer = options.resolvConf ?? POD_RESOLV_CONF;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  return {
    deps,
    kernel,
    calls,
    sleeps,
    validations,
    outcomes,
    /** How often the run read /etc/resolv.conf. */
    resolvConfReads: () => resolvConfReads,
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

/** main() against a fake system (fresh, or options.kernel): its exit code and everything the fake saw. */
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
  readFileSync(new URL(`./golden/iptables/${name}`, import.meta.url), 'utf8');

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

/**
 * A save as this mesh-init leaves it: its OUTPUT hook heads the chain, Docker's DNS jump
 * after it. The fixtures hold what an older run left: the hook appended behind Docker's.
 */
export function hooksFirst(save: string): string {
  const moved = save.replace(
    /^(-A OUTPUT -d \S+ -j DOCKER_OUTPUT\n)((?:-A OUTPUT .*"mesh-init: .*\n)+)/m,
    '$2$1',
  );
  if (moved === save) throw new Error('no mesh-init hook behind a Docker jump in OUTPUT');
  return moved;
}
