import {
  type ChainRef,
  type Family,
  type NatPlan,
  OWNED_CHAINS,
  type OwnedChain,
  type Rule,
} from './rules.js';
import type { LiveRule, NatState } from './state.js';

/** Chains of the nat table that the kernel provides; jumps from them into owned chains are mesh-init's. */
const KERNEL_CHAINS: readonly string[] = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];

/**
 * One family's change, as a single iptables-restore --noflush transaction:
 * declaring an owned chain creates it or (with --noflush) empties it, the old jumps
 * into owned chains are deleted, the planned rules appended, and chains to remove
 * deleted last. Applying it to its own result changes nothing; rules of others are
 * never touched.
 */
export interface Transaction {
  readonly family: Family;
  readonly purpose: 'rules' | 'cleanup';
  readonly prefix: string;
  readonly declare: readonly OwnedChain[];
  /** Jumps into owned chains found live in the kernel's chains, deleted before re-adding. */
  readonly unhook: readonly LiveRule[];
  /** Rules of owned chains first, then the jumps into them, so the hooks land last. */
  readonly rules: readonly Rule[];
  readonly remove: readonly OwnedChain[];
}

export function chainName(prefix: string, chain: ChainRef | OwnedChain): string {
  if (typeof chain === 'string') return `${prefix}${chain}`;
  return chain.kind === 'builtin' ? chain.name : `${prefix}${chain.name}`;
}

/** The live jumps from the kernel's chains into the given owned chains. */
export function liveHooks(
  live: NatState,
  prefix: string,
  chains: readonly OwnedChain[],
): LiveRule[] {
  const owned = new Set(chains.map((chain) => chainName(prefix, chain)));
  return live.rules.filter(
    (rule) =>
      KERNEL_CHAINS.includes(rule.chain) && rule.target !== undefined && owned.has(rule.target),
  );
}

export const isHook = (rule: Rule): boolean => rule.chain.kind === 'builtin';

export function planTransaction(plan: NatPlan, live: NatState, prefix: string): Transaction {
  return {
    family: plan.family,
    purpose: 'rules',
    prefix,
    declare: plan.chains,
    unhook: liveHooks(live, prefix, plan.chains),
    rules: [...plan.rules.filter((rule) => !isHook(rule)), ...plan.rules.filter(isHook)],
    remove: [],
  };
}

/**
 * Removes every owned chain and every jump into one. Declaring a chain that does
 * not exist creates it just before it is removed, so on a clean namespace the
 * transaction succeeds and changes nothing.
 */
export function planCleanup(family: Family, live: NatState, prefix: string): Transaction {
  return {
    family,
    purpose: 'cleanup',
    prefix,
    declare: OWNED_CHAINS,
    unhook: liveHooks(live, prefix, OWNED_CHAINS),
    rules: [],
    remove: OWNED_CHAINS,
  };
}
