/**
 * The plan as nft sees it: each table of both families' plans as one inet table,
 * and the `nft -f` script that replaces mesh-init's tables in one transaction. The
 * only code that writes nft rule text; dry-run prints the script, apply feeds it.
 */
import type { Config } from '../../config/config.js';
import type { Cidr, Family } from '../../config/net.js';
import { planTables } from '../../plan/plan.js';
import {
  type ChainRef,
  type Match,
  type Rule,
  TABLES,
  type Table,
  type TablePlan,
  type Target,
} from '../../plan/rules.js';
import { mergeFamilies } from './merge.js';
import { BASE_CHAINS, type BaseChain, BUILTIN_ORDER, type Names, namesFor } from './names.js';

/** One rule as nft terms: the same spelling the script writes and --check reads back. */
export interface NftRule {
  /** The matches, in the plan's order (`meta l4proto tcp`, `ip daddr != 127.0.0.1` …). */
  readonly matches: readonly string[];
  /** What the rule does, after its counter: statements, then the verdict. */
  readonly actions: readonly string[];
  readonly comment: string;
}

export interface NftChain {
  readonly name: string;
  /** Base chains hook into the kernel; the others are reached by jumps. */
  readonly base?: BaseChain;
  readonly rules: readonly NftRule[];
}

export interface NftTable {
  readonly table: Table;
  readonly name: string;
  readonly chains: readonly NftChain[];
}

/** What one run wants of mesh-init's inet tables. */
export interface NftPlan {
  readonly purpose: 'apply' | 'cleanup';
  readonly families: readonly Family[];
  /** The tables the plan has, each replaced whole. */
  readonly tables: readonly NftTable[];
  /** mesh-init's other tables: deleted where an earlier run left them. */
  readonly removed: readonly { readonly table: Table; readonly name: string }[];
  /**
   * Where the plan has no TPROXY: the chain an earlier TPROXY run would have left,
   * which the script checks for (its policy route must go too).
   */
  readonly tproxyGuard?: { readonly table: string; readonly chain: string };
}

/** nft takes at most 128 bytes of comment. */
const MAX_COMMENT = 128;

const IP: Readonly<Record<Family, 'ip' | 'ip6'>> = { ipv4: 'ip', ipv6: 'ip6' };
const FULL_PREFIX: Readonly<Record<Family, number>> = { ipv4: 32, ipv6: 128 };

/** A host as nft lists it (no /32, /128); a network with its prefix. */
const address = (cidr: Cidr) =>
  cidr.prefix === FULL_PREFIX[cidr.family] ? cidr.address : `${cidr.address}/${cidr.prefix}`;
const not = (negate: boolean | undefined) => (negate ? '!= ' : '');
/** iptables' `eth+` wildcard is nft's `eth*`. */
const interfaceName = (name: string) => `"${name.endsWith('+') ? `${name.slice(0, -1)}*` : name}"`;

function renderMatch(match: Match, previous: readonly Match[]): string {
  switch (match.kind) {
    case 'protocol':
      return `meta l4proto ${match.proto}`;
    case 'inInterface':
      return `iifname ${interfaceName(match.name)}`;
    case 'outInterface':
      return `oifname ${interfaceName(match.name)}`;
    case 'source':
      return `${IP[match.cidr.family]} saddr ${not(match.negate)}${address(match.cidr)}`;
    case 'destination':
      return `${IP[match.cidr.family]} daddr ${not(match.negate)}${address(match.cidr)}`;
    case 'destinationPort':
    case 'sourcePort': {
      const protocol = [...previous].reverse().find((m) => m.kind === 'protocol');
      if (protocol?.kind !== 'protocol') {
        throw new Error(`a ${match.kind} match needs a protocol match before it`);
      }
      return match.kind === 'sourcePort'
        ? `${protocol.proto} sport ${match.port}`
        : `${protocol.proto} dport ${not(match.negate)}${match.port}`;
    }
    case 'destinationPorts': {
      const protocol = [...previous].reverse().find((m) => m.kind === 'protocol');
      if (protocol?.kind !== 'protocol') {
        throw new Error('a destinationPorts match needs a protocol match before it');
      }
      return `${protocol.proto} dport ${not(match.negate)}{ ${match.ports.join(', ')} }`;
    }
    case 'owner':
      return `meta sk${match.by} ${not(match.negate)}${match.id}`;
    case 'mark':
      return `meta mark ${not(match.negate)}${match.mark}`;
    case 'connmark':
      return `ct mark ${match.mark}`;
    case 'ctstate':
      return `ct state ${match.states
        .map((state) => state.toLowerCase())
        .sort()
        .join(',')}`;
  }
}

/** What a target does in nft. `family` is the rule's, where only one family has it. */
function renderTarget(target: Target, names: Names, family: Family | undefined): string[] {
  switch (target.kind) {
    case 'return':
    case 'accept':
    case 'drop':
      return [target.kind];
    case 'jump':
      return [`jump ${names.chain(target.chain)}`];
    case 'redirect':
      return [`redirect to :${target.toPort}`];
    case 'tproxy':
      // iptables' TPROXY marks and accepts by itself; nft's statement only diverts.
      return [
        `tproxy ${family === undefined ? '' : `${IP[family]} `}to :${target.toPort}`,
        `meta mark set ${target.mark}`,
        'accept',
      ];
    case 'setMark':
      return [`meta mark set ${target.mark}`];
    case 'saveMark':
      return ['ct mark set meta mark'];
    case 'restoreMark':
      return ['meta mark set ct mark'];
    case 'conntrackZone':
      return [`ct zone set ${target.zone}`];
  }
}

const hasAddress = (rule: Rule) =>
  rule.matches.some((m) => m.kind === 'source' || m.kind === 'destination');

/**
 * One plan rule in nft terms. `family` is set for a rule of one family only; with
 * `qualify` it is limited to that family (`meta nfproto`) unless an address match
 * already limits it.
 */
export function renderRule(
  rule: Rule,
  names: Names,
  family: Family | undefined,
  qualify = false,
): NftRule {
  const comment = `mesh-init: ${rule.why}`;
  if (comment.includes('"') || Buffer.byteLength(comment) > MAX_COMMENT) {
    throw new Error(`comment cannot be written for nft: ${comment}`);
  }
  const qualifier =
    qualify && family !== undefined && !hasAddress(rule) ? [`meta nfproto ${family}`] : [];
  return {
    matches: [
      ...qualifier,
      ...rule.matches.map((m, i) => renderMatch(m, rule.matches.slice(0, i))),
    ],
    actions: renderTarget(rule.target, names, family),
    comment,
  };
}

const refKey = (ref: ChainRef) => `${ref.kind}:${ref.name}`;

/** Rules are the same in both families when nft would read them the same. */
function ruleKey(rule: Rule, names: Names): string {
  return JSON.stringify([refKey(rule.chain), renderRule(rule, names, undefined)]);
}

const otherFamily = (family: Family): Family => (family === 'ipv4' ? 'ipv6' : 'ipv4');

/**
 * One table of both families' plans as one inet table. Each chain merges the two
 * families' rules (mergeFamilies); a rule of one family only is limited to it where
 * packets of the other family can reach its chain at all (the base chains, and
 * chains jumped to by rules that family passes through); elsewhere it needs nothing.
 */
function inetTable(table: Table, plans: readonly TablePlan[], names: Names): NftTable {
  const v4 = plans.find((p) => p.family === 'ipv4');
  const v6 = plans.find((p) => p.family === 'ipv6');
  const rulesOf = (plan: TablePlan | undefined, ref: ChainRef) =>
    (plan?.rules ?? []).filter((rule) => refKey(rule.chain) === refKey(ref));
  const owned = [...new Set(plans.flatMap((p) => p.chains))];
  const refs: ChainRef[] = [
    ...BUILTIN_ORDER.map((name): ChainRef => ({ kind: 'builtin', name })).filter((ref) =>
      plans.some((p) => rulesOf(p, ref).length > 0),
    ),
    ...owned.map((name): ChainRef => ({ kind: 'owned', name })),
  ];
  const merged = refs.map((ref) => ({
    ref,
    rules: mergeFamilies(rulesOf(v4, ref), rulesOf(v6, ref), (rule) => ruleKey(rule, names)),
  }));

  const reachedBy = (family: Family): Set<string> => {
    const reached = new Set(refs.filter((ref) => ref.kind === 'builtin').map(refKey));
    for (let grown = true; grown; ) {
      grown = false;
      for (const { ref, rules } of merged) {
        if (!reached.has(refKey(ref))) continue;
        for (const { item, family: of } of rules) {
          const target = item.target;
          if ((of === 'both' || of === family) && target.kind === 'jump') {
            const key = refKey({ kind: 'owned', name: target.chain });
            grown ||= !reached.has(key);
            reached.add(key);
          }
        }
      }
    }
    return reached;
  };
  const reached = { ipv4: reachedBy('ipv4'), ipv6: reachedBy('ipv6') };

  return {
    table,
    name: names.table(table),
    chains: merged.map(({ ref, rules }) => ({
      name: ref.kind === 'builtin' ? BASE_CHAINS[table][ref.name].name : names.chain(ref.name),
      ...(ref.kind === 'builtin' ? { base: BASE_CHAINS[table][ref.name] } : {}),
      rules: rules.map(({ item, family }) =>
        family === 'both'
          ? renderRule(item, names, undefined)
          : renderRule(item, names, family, reached[otherFamily(family)].has(refKey(ref))),
      ),
    })),
  };
}

/** Config → what this run wants of mesh-init's inet tables (nothing, for cleanup). Pure. */
export function planInet(config: Config, families: readonly Family[]): NftPlan {
  const names = namesFor(config.chainPrefix);
  const plans = config.mode === 'cleanup' ? [] : families.flatMap((f) => planTables(config, f));
  const of = (table: Table) => plans.filter((plan) => plan.table === table);
  const tables = TABLES.filter((table) => of(table).length > 0).map((table) =>
    inetTable(table, of(table), names),
  );
  const tproxy = plans.some((plan) => plan.chains.includes('TPROXY'));
  return {
    purpose: config.mode === 'cleanup' ? 'cleanup' : 'apply',
    families,
    tables,
    removed: TABLES.filter((table) => of(table).length === 0).map((table) => ({
      table,
      name: names.table(table),
    })),
    ...(config.mode === 'cleanup' || tproxy
      ? {}
      : { tproxyGuard: { table: names.table('mangle'), chain: names.chain('TPROXY') } }),
  };
}

/** A chain's line of the script: a base chain with its hook, a regular one bare. */
function chainLine(table: string, chain: NftChain): string {
  const line = `add chain inet ${table} ${chain.name}`;
  const { base } = chain;
  if (base === undefined) return line;
  return `${line} { type ${base.type} hook ${base.hook} priority ${base.priority}; policy accept; }`;
}

/** A rule as the script writes it: its counter between what it matches and what it does. */
function ruleText(rule: NftRule): string {
  return [...rule.matches, 'counter', ...rule.actions, `comment "${rule.comment}"`].join(' ');
}

/**
 * The exact input of `nft -f -`: one transaction for every table of both families.
 * Each table of mesh-init's is added (a no-op where it is), deleted and, where
 * planned, made anew; so the result is the same whatever was there, and a failing
 * line changes nothing at all. Dry-run prints this string and apply feeds it.
 * `guard` adds the check for an earlier run's TPROXY chain (NftPlan.tproxyGuard).
 */
export function renderScript(plan: NftPlan, guard = true): string {
  const families = plan.families.join(' and ');
  const lines = [
    plan.purpose === 'cleanup'
      ? `# mesh-init: delete mesh-init's inet tables (${families}) in one nft -f transaction`
      : `# mesh-init: ${families} capture in inet tables, one nft -f transaction`,
  ];
  const replace = (name: string) => {
    lines.push(`add table inet ${name}`);
    const tproxy = plan.tproxyGuard;
    if (guard && tproxy?.table === name) {
      lines.push(
        "# fails (File exists) where an earlier run left TPROXY's chain: its policy route goes too",
        `create chain inet ${name} ${tproxy.chain}`,
      );
    }
    lines.push(`delete table inet ${name}`);
  };
  for (const table of TABLES) {
    const planned = plan.tables.find((t) => t.table === table);
    const removed = plan.removed.find((t) => t.table === table);
    if (removed !== undefined) replace(removed.name);
    if (planned === undefined) continue;
    replace(planned.name);
    lines.push(`add table inet ${planned.name}`);
    for (const chain of planned.chains) lines.push(chainLine(planned.name, chain));
    for (const chain of planned.chains) {
      for (const rule of chain.rules) {
        lines.push(`add rule inet ${planned.name} ${chain.name} ${ruleText(rule)}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}
