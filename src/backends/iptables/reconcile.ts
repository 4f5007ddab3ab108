import type { Family } from '../../config/net.js';
import {
  chainName,
  OWNED_CHAINS,
  type OwnedChain,
  type Rule,
  type Table,
  type TablePlan,
} from '../../plan/rules.js';
import { ruleSpec } from './render.js';
import { canonicalRule, EMPTY_STATE, type LiveRule, type TableState } from './state.js';
import type { Transaction } from './transaction.js';

/** Chains the kernel provides in every table mesh-init writes; jumps from them into owned chains are mesh-init's. */
const KERNEL_CHAINS: readonly string[] = [
  'PREROUTING',
  'INPUT',
  'FORWARD',
  'OUTPUT',
  'POSTROUTING',
];

/** The live jumps from the kernel's chains into the given owned chains. */
export function liveHooks(
  live: TableState,
  prefix: string,
  chains: readonly OwnedChain[],
): LiveRule[] {
  const owned = new Set(chains.map((chain) => chainName(prefix, chain)));
  return live.rules.filter(
    (rule) =>
      KERNEL_CHAINS.includes(rule.chain) && rule.target !== undefined && owned.has(rule.target),
  );
}

/** Owned chains of the table that exist live. */
export function liveOwnedChains(live: TableState, prefix: string, table: Table): OwnedChain[] {
  return OWNED_CHAINS[table].filter((chain) => live.chains.includes(chainName(prefix, chain)));
}

export const isHook = (rule: Rule): boolean => rule.chain.kind === 'builtin';

/** Both lists hold the same rules, whatever their order and spelling. */
function sameRules(
  planned: readonly Rule[],
  live: readonly LiveRule[],
  prefix: string,
  family: Family,
): boolean {
  const want = planned
    .map((rule) => {
      const { chain, spec } = ruleSpec(rule, prefix, family);
      return canonicalRule(chain, spec);
    })
    .sort();
  const have = live.map((rule) => canonicalRule(rule.chain, rule.spec)).sort();
  return want.length === have.length && want.every((rule, i) => rule === have[i]);
}

/**
 * The planned jumps head their kernel chains, in plan order: jumps an older run
 * appended behind someone else's rules (Docker's DNS redirect) are not "right".
 */
export function hooksLead(
  hooks: readonly Rule[],
  live: TableState,
  prefix: string,
  family: Family,
): boolean {
  const chains = [...new Set(hooks.map((rule) => chainName(prefix, rule.chain)))];
  return chains.every((chain) => {
    const want = hooks
      .map((rule) => ruleSpec(rule, prefix, family))
      .filter((rule) => rule.chain === chain)
      .map((rule) => canonicalRule(rule.chain, rule.spec));
    const have = live.rules
      .filter((rule) => rule.chain === chain)
      .slice(0, want.length)
      .map((rule) => canonicalRule(rule.chain, rule.spec));
    return want.every((rule, i) => rule === have[i]);
  });
}

export function planTransaction(plan: TablePlan, live: TableState, prefix: string): Transaction {
  const hooks = plan.rules.filter(isHook);
  // Owned chains of this table left from an earlier run with other flags go away.
  const stale = liveOwnedChains(live, prefix, plan.table).filter(
    (chain) => !plan.chains.includes(chain),
  );
  const liveJumps = liveHooks(live, prefix, [...plan.chains, ...stale]);
  // Jumps that are already exactly right stay where they are: a re-run then only
  // refills the owned chains. Otherwise every jump is deleted and added again, and
  // the owned chains are recreated, which fails if the table holds jumps not read.
  const keepHooks =
    liveJumps.length > 0 &&
    sameRules(hooks, liveJumps, prefix, plan.family) &&
    hooksLead(hooks, live, prefix, plan.family);
  // A chain of someone else's that jumps into an owned chain would make -X fail on
  // every try: such owned chains are only emptied and refilled.
  const owned = new Set([...plan.chains, ...stale].map((chain) => chainName(prefix, chain)));
  const foreignTargets = new Set(
    live.rules
      .filter((rule) => !KERNEL_CHAINS.includes(rule.chain) && !owned.has(rule.chain))
      .flatMap((rule) => (rule.target === undefined ? [] : [rule.target])),
  );
  return {
    family: plan.family,
    table: plan.table,
    purpose: 'rules',
    prefix,
    declare: [...plan.chains, ...stale],
    unhook: keepHooks ? [] : liveJumps,
    recreate: keepHooks
      ? []
      : plan.chains.filter((chain) => !foreignTargets.has(chainName(prefix, chain))),
    rules: [...plan.rules.filter((rule) => !isHook(rule)), ...(keepHooks ? [] : hooks)],
    // Declared, so emptied; removed unless a chain of someone else's still jumps to it.
    remove: stale.filter((chain) => !foreignTargets.has(chainName(prefix, chain))),
  };
}

/**
 * Removes every owned chain of the table and every jump into one. Declaring a chain
 * that does not exist creates it just before it is removed, so on a clean namespace
 * the transaction succeeds and changes nothing.
 */
export function planCleanup(
  family: Family,
  table: Table,
  live: TableState,
  prefix: string,
): Transaction {
  const chains = OWNED_CHAINS[table];
  return {
    family,
    table,
    purpose: 'cleanup',
    prefix,
    declare: chains,
    unhook: liveHooks(live, prefix, chains),
    recreate: [],
    rules: [],
    remove: chains,
  };
}

/**
 * Takes back what an applied transaction added, without having read the table:
 * its jumps (deleted by the spec they were added with) and the owned chains.
 */
export function planUndo(applied: Transaction): Transaction {
  const { prefix, family } = applied;
  return {
    ...planCleanup(family, applied.table, EMPTY_STATE, prefix),
    unhook: applied.rules
      .filter(isHook)
      .map((rule) => ({ ...ruleSpec(rule, prefix, family), target: undefined })),
  };
}
