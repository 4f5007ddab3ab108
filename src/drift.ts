import { isHook, liveHooks } from './reconcile.js';
import { ruleSpec } from './render.js';
import { chainName, type NatPlan } from './rules.js';
import { canonicalRule, type NatState, tokenize } from './state.js';

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
function bypasses(live: NatState, prefix: string, plan: NatPlan): string[] {
  const hooks = liveHooks(live, prefix, plan.chains);
  const found: string[] = [];
  for (const hook of hooks) {
    const chainRules = live.rules.filter((rule) => rule.chain === hook.chain);
    for (const rule of chainRules.slice(0, chainRules.indexOf(hook))) {
      const tokens = tokenize(rule.spec);
      const at = tokens.indexOf('--comment');
      if (at > 1 && tokens[at - 1] === 'comment') tokens.splice(at - 2, 4);
      // `-m tcp` is what iptables-save adds to `-p tcp` by itself.
      const what = tokens.join(' ').replace(/^-p tcp -m tcp /, '-p tcp ');
      if (/^(-p (tcp|all) )?-j (RETURN|ACCEPT)$/.test(what)) {
        found.push(`  ! -A ${rule.chain} ${rule.spec}   (ahead of the jump into ${hook.target})`);
      }
    }
  }
  return found.length === 0
    ? []
    : [`${plan.family}: rules that let all TCP bypass capture:`, ...found];
}

/**
 * What differs between one family's live nat table and the plan, as `-` (live
 * only) and `+` (planned only) lines, and `!` for rules of others that make the
 * capture moot; empty when they agree, order included.
 */
export function findDrift(plan: NatPlan, live: NatState, prefix: string): string[] {
  const planned = (rules: NatPlan['rules']): Line[] =>
    rules.map((rule) => {
      const { chain, spec } = ruleSpec(rule, prefix);
      return { canonical: canonicalRule(chain, spec), text: `-A ${chain} ${spec}` };
    });
  const liveLine = (rule: { chain: string; spec: string }): Line => ({
    canonical: canonicalRule(rule.chain, rule.spec),
    text: `-A ${rule.chain} ${rule.spec}`,
  });

  const groups: { name: string; live: Line[]; planned: Line[] }[] = [
    {
      name: 'jumps into owned chains',
      live: liveHooks(live, prefix, plan.chains).map(liveLine),
      planned: planned(plan.rules.filter(isHook)),
    },
    ...plan.chains.map((chain) => {
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
    if (!live.chains.includes(name)) drift.push(`${plan.family}: chain ${name} is missing`);
  }
  for (const group of groups) {
    const gone = without(group.live, group.planned);
    const missing = without(group.planned, group.live);
    const sameOrder =
      group.live.map((line) => line.canonical).join('\n') ===
      group.planned.map((line) => line.canonical).join('\n');
    if (gone.length === 0 && missing.length === 0 && (sameOrder || group === groups[0])) continue;
    drift.push(`${plan.family}: ${group.name}:`);
    if (gone.length === 0 && missing.length === 0) drift.push('  rules in another order');
    for (const line of gone) drift.push(`  - ${line.text}`);
    for (const line of missing) drift.push(`  + ${line.text}`);
  }
  drift.push(...bypasses(live, prefix, plan));
  return drift;
}
