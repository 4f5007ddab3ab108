import type { ChainRef, NatPlan, OwnedChain, Rule } from './rules.js';
import type { LiveRule, NatState } from './state.js';

/** Chains of the nat table that the kernel provides; jumps from them into owned chains are mesh-init's. */
const KERNEL_CHAINS: readonly string[] = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];

/**
 * One family's change, as a single iptables-restore transaction that converges:
 * declaring an owned chain creates it or (with --noflush) empties it, the old jumps
 * into owned chains are deleted, and the planned rules are appended. Running it on
 * its own result gives the same rules again; rules of others are never touched.
 */
export interface Transaction {
  readonly plan: NatPlan;
  readonly prefix: string;
  /** Jumps into owned chains found live in the kernel's chains, deleted before re-adding. */
  readonly unhook: readonly LiveRule[];
  /** Rules of owned chains first, then the jumps into them, so the hooks land last. */
  readonly rules: readonly Rule[];
}

export function chainName(prefix: string, chain: ChainRef | OwnedChain): string {
  if (typeof chain === 'string') return `${prefix}${chain}`;
  return chain.kind === 'builtin' ? chain.name : `${prefix}${chain.name}`;
}

export function planTransaction(plan: NatPlan, live: NatState, prefix: string): Transaction {
  const owned = new Set(plan.chains.map((chain) => chainName(prefix, chain)));
  const unhook = live.rules.filter(
    (rule) =>
      KERNEL_CHAINS.includes(rule.chain) && rule.target !== undefined && owned.has(rule.target),
  );
  const isHook = (rule: Rule) => rule.chain.kind === 'builtin';
  return {
    plan,
    prefix,
    unhook,
    rules: [...plan.rules.filter((rule) => !isHook(rule)), ...plan.rules.filter(isHook)],
  };
}
