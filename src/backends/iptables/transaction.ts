import type { Family } from '../../config/net.js';
import type { OwnedChain, Rule, Table } from '../../plan/rules.js';
import type { LiveRule } from './state.js';

/**
 * One table's change in one family, as a single iptables-restore --noflush
 * transaction: declaring an owned chain creates it or (with --noflush) empties it,
 * the old jumps into owned chains are deleted, the planned rules appended, and
 * chains to remove deleted last. Applying it to its own result changes nothing;
 * rules of others are never touched.
 */
export interface Transaction {
  readonly family: Family;
  readonly table: Table;
  readonly purpose: 'rules' | 'cleanup';
  readonly prefix: string;
  readonly declare: readonly OwnedChain[];
  /** Jumps into owned chains found live in the kernel's chains, deleted before re-adding. */
  readonly unhook: readonly LiveRule[];
  /**
   * Owned chains deleted (-X) and created (-N) again once emptied and unhooked. -X
   * fails while anything still jumps to a chain, so the whole transaction fails,
   * changing nothing, when a jump exists that mesh-init did not know of: the table
   * changed since it was read (another run), or it was never read (the first try).
   */
  readonly recreate: readonly OwnedChain[];
  /** Rules of owned chains first, then the jumps into them, so the hooks land last. */
  readonly rules: readonly Rule[];
  readonly remove: readonly OwnedChain[];
}
