import { chainName, isHook, liveHooks } from './reconcile.js';
import { renderRule } from './render.js';
import type { NatPlan } from './rules.js';
import { type NatState, tokenize } from './state.js';

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
  return [chain, ...groups.map((group) => group.join(' ')).sort()].join(' ');
}

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
 * What differs between one family's live nat table and the plan, as `-` (live
 * only) and `+` (planned only) lines; empty when they agree, order included.
 */
export function findDrift(plan: NatPlan, live: NatState, prefix: string): string[] {
  const planned = (rules: NatPlan['rules']): Line[] =>
    rules.map((rule) => {
      const text = renderRule(rule, prefix);
      const chain = chainName(prefix, rule.chain);
      return { canonical: canonicalRule(chain, text.slice(`-A ${chain} `.length)), text };
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
  return drift;
}
