import { chainName, type TablePlan } from '../../plan/rules.js';
import { hooksLead, isHook, liveHooks, liveOwnedChains } from './reconcile.js';
import { ruleSpec } from './render.js';
import { canonicalRule, type TableState, tokenize } from './state.js';

interface Line {
  readonly canonical: string;
  readonly text: string;
}

function without(lines: readonly Line[], others: readonly Line[]): Line[] {
  const left = others.map((line) => line.canonical);
  return lines.filter((line) => {
    const at = left.indexOf(line.canonical);
    if (at < 0) return true;
    left.splice(at, 1);
    return false;
  });
}

/**
 * Rules of others, ahead of a jump into an owned chain in the same kernel chain,
 * that let all TCP skip it: `-A OUTPUT -p tcp -j RETURN` and the like. The owned
 * chains can be exactly right and still capture nothing.
 */
function bypasses(live: TableState, prefix: string, plan: TablePlan): string[] {
  // raw's jumps are about UDP (the DNS zones); nat's and mangle's about TCP.
  const proto = plan.table === 'raw' ? 'udp' : 'tcp';
  const hooks = liveHooks(live, prefix, plan.chains);
  const found: string[] = [];
  for (const hook of hooks) {
    const chainRules = live.rules.filter((rule) => rule.chain === hook.chain);
    for (const rule of chainRules.slice(0, chainRules.indexOf(hook))) {
      const tokens = tokenize(rule.spec);
      const at = tokens.indexOf('--comment');
      if (at > 1 && tokens[at - 1] === 'comment') tokens.splice(at - 2, 4);
      // `-m tcp` is what iptables-save adds to `-p tcp` by itself.
      const what = tokens.join(' ').replace(/^-p (tcp|udp) -m (tcp|udp) /, '-p $1 ');
      if (new RegExp(`^(-p (${proto}|all) )?-j (RETURN|ACCEPT)$`).test(what)) {
        found.push(`  ! -A ${rule.chain} ${rule.spec}   (ahead of the jump into ${hook.target})`);
      }
    }
  }
  const skipped = plan.table === 'raw' ? 'all UDP bypass the DNS zones' : 'all TCP bypass capture';
  return found.length === 0
    ? []
    : [`${plan.family} ${plan.table}: rules that let ${skipped}:`, ...found];
}

/**
 * What differs between one live table of one family and the plan, as `-` (live
 * only) and `+` (planned only) lines, and `!` for rules of others that make the
 * capture moot; empty when they agree, order included.
 */
export function findDrift(plan: TablePlan, live: TableState, prefix: string): string[] {
  const where = `${plan.family} ${plan.table}`;
  const planned = (rules: TablePlan['rules']): Line[] =>
    rules.map((rule) => {
      const { chain, spec } = ruleSpec(rule, prefix, plan.family);
      return { canonical: canonicalRule(chain, spec), text: `-A ${chain} ${spec}` };
    });
  const liveLine = (rule: { chain: string; spec: string }): Line => ({
    canonical: canonicalRule(rule.chain, rule.spec),
    text: `-A ${rule.chain} ${rule.spec}`,
  });

  // Owned chains live from a run with other flags, which a run with these would remove.
  const stale = liveOwnedChains(live, prefix, plan.table).filter(
    (chain) => !plan.chains.includes(chain),
  );
  const groups: { name: string; live: Line[]; planned: Line[] }[] = [
    {
      name: 'jumps into owned chains',
      live: liveHooks(live, prefix, [...plan.chains, ...stale]).map(liveLine),
      planned: planned(plan.rules.filter(isHook)),
    },
    ...[...plan.chains, ...stale].map((chain) => {
      const name = chainName(prefix, chain);
      return {
        name,
        live: live.rules.filter((rule) => rule.chain === name).map(liveLine),
        planned: planned(
          plan.rules.filter((rule) => !isHook(rule) && chainName(prefix, rule.chain) === name),
        ),
      };
    }),
  ];

  const drift: string[] = [];
  for (const chain of plan.chains) {
    const name = chainName(prefix, chain);
    if (!live.chains.includes(name)) drift.push(`${where}: chain ${name} is missing`);
  }
  for (const chain of stale)
    drift.push(`${where}: chain ${chainName(prefix, chain)} is not planned`);
  for (const group of groups) {
    const gone = without(group.live, group.planned);
    const missing = without(group.planned, group.live);
    // The jumps must head their kernel chains in plan order, as a re-run leaves them;
    // the owned chains' rules must be in plan order.
    const jumps = group === groups[0];
    const sameOrder = jumps
      ? hooksLead(plan.rules.filter(isHook), live, prefix, plan.family)
      : group.live.map((line) => line.canonical).join('\n') ===
        group.planned.map((line) => line.canonical).join('\n');
    if (gone.length === 0 && missing.length === 0 && sameOrder) continue;
    drift.push(`${where}: ${group.name}:`);
    if (gone.length === 0 && missing.length === 0) {
      drift.push(
        jumps
          ? '  they do not head their chains in plan order (a re-run moves them first)'
          : '  rules in another order',
      );
    }
    for (const line of gone) drift.push(`  - ${line.text}`);
    for (const line of missing) drift.push(`  + ${line.text}`);
  }
  drift.push(...bypasses(live, prefix, plan));
  return drift;
}
