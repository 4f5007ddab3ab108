/**
 * --check for native nftables: the live inet tables against the planned ones, in
 * the terms the script writes. Pure.
 *
 * nft lists a rule without the dependencies it adds by itself, so the comparison
 * leaves them out on both sides: `meta l4proto tcp` before a `tcp dport` match,
 * `meta nfproto ipv4` beside an `ip` address. Counters are not compared.
 * Unlike iptables, no rule of another table can let packets skip these chains (an
 * accept ends only its own base chain), so there are no bypasses to look for.
 */
import type { NftChain, NftPlan, NftRule } from './render.js';
import type { LiveBase, LiveChain, LiveTable } from './state.js';

const NETWORK: Readonly<Record<string, string>> = { ipv4: 'ip', ipv6: 'ip6' };

/** A rule's matches without those nft implies by the others. */
function withoutImplied(matches: readonly string[]): string[] {
  return matches.filter((term) => {
    const protocol = /^meta l4proto (\w+)$/.exec(term)?.[1];
    if (protocol !== undefined) {
      return !matches.some(
        (m) => m.startsWith(`${protocol} sport `) || m.startsWith(`${protocol} dport `),
      );
    }
    const family = /^meta nfproto (\w+)$/.exec(term)?.[1];
    const network = family === undefined ? undefined : NETWORK[family];
    if (network !== undefined) {
      return !matches.some(
        (m) => m.startsWith(`${network} saddr `) || m.startsWith(`${network} daddr `),
      );
    }
    return true;
  });
}

/** A rule in the form both sides are compared in, which is also how drift shows it. */
export function canonicalRule(rule: NftRule): string {
  const comment = rule.comment === '' ? [] : [`comment "${rule.comment}"`];
  return [...withoutImplied(rule.matches), ...rule.actions, ...comment].join(' ');
}

/** Each of `lines` not matched one for one by a line of `others`. */
function without(lines: readonly string[], others: readonly string[]): string[] {
  const left = [...others];
  return lines.filter((line) => {
    const at = left.indexOf(line);
    if (at < 0) return true;
    left.splice(at, 1);
    return false;
  });
}

const baseText = (base: LiveBase | undefined) =>
  base === undefined
    ? 'no hook'
    : `type ${base.type} hook ${base.hook} priority ${base.priority} policy ${base.policy}`;

function chainDrift(where: string, planned: NftChain | undefined, live: LiveChain | undefined) {
  const name = planned?.name ?? live?.name ?? '';
  if (live === undefined) return [`${where}: chain ${name} is missing`];
  const drift: string[] = [];
  if (planned === undefined) drift.push(`${where}: chain ${name} is not planned`);
  else {
    const want = baseText(planned.base && { ...planned.base, policy: 'accept' });
    const got = baseText(live.base);
    if (want !== got) drift.push(`${where}: chain ${name}: ${got}, planned ${want}`);
  }
  const plannedRules = (planned?.rules ?? []).map(canonicalRule);
  const liveRules = live.rules.map(canonicalRule);
  const gone = without(liveRules, plannedRules);
  const missing = without(plannedRules, liveRules);
  if (
    gone.length === 0 &&
    missing.length === 0 &&
    liveRules.join('\n') === plannedRules.join('\n')
  ) {
    return drift;
  }
  drift.push(`${where} ${name}:`);
  if (gone.length === 0 && missing.length === 0) drift.push('  rules in another order');
  for (const line of gone) drift.push(`  - ${line}`);
  for (const line of missing) drift.push(`  + ${line}`);
  return drift;
}

/**
 * What differs between mesh-init's live inet tables and the plan: tables and chains
 * missing or not planned, hooks, and per chain `-` (live only) and `+` (planned only)
 * rules, or rules in another order; empty when they agree.
 */
export function findDrift(plan: NftPlan, live: readonly LiveTable[]): string[] {
  const drift: string[] = [];
  for (const table of plan.tables) {
    const where = `inet ${table.name}`;
    const found = live.find((t) => t.name === table.name);
    if (found === undefined) {
      drift.push(`${where}: table is missing`);
      continue;
    }
    for (const chain of table.chains) {
      drift.push(
        ...chainDrift(
          where,
          chain,
          found.chains.find((c) => c.name === chain.name),
        ),
      );
    }
    for (const chain of found.chains.filter((c) => !table.chains.some((p) => p.name === c.name))) {
      drift.push(...chainDrift(where, undefined, chain));
    }
  }
  for (const { name } of plan.removed) {
    if (live.some((t) => t.name === name)) {
      drift.push(`inet ${name}: table is not planned (a run with these flags deletes it)`);
    }
  }
  return drift;
}
