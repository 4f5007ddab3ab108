/**
 * Rules as data. The planner builds these; only render.ts turns them into
 * iptables-restore text, so nothing else ever handles rule strings.
 */

export type Family = 'ipv4' | 'ipv6';
export type Protocol = 'tcp' | 'udp';

/** A validated network, already reduced to its network address (10.1.2.3/8 → 10.0.0.0/8). */
export interface Cidr {
  readonly family: Family;
  readonly address: string;
  readonly prefix: number;
}

/** Kernel chains of the nat table that mesh-init hooks into but never owns. */
export type BuiltinChain = 'PREROUTING' | 'OUTPUT';

/** Chains mesh-init creates; their names are the chain prefix + this suffix. */
export type OwnedChain = 'INBOUND' | 'IN_REDIRECT' | 'OUTPUT' | 'REDIRECT';

/** Declaration order of the owned chains (Istio's order, so `iptables-save` diffs stay small). */
export const OWNED_CHAINS: readonly OwnedChain[] = ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'];

export type ChainRef =
  | { readonly kind: 'builtin'; readonly name: BuiltinChain }
  | { readonly kind: 'owned'; readonly name: OwnedChain };

export type Match =
  | { readonly kind: 'protocol'; readonly proto: Protocol }
  | { readonly kind: 'inInterface'; readonly name: string }
  | { readonly kind: 'outInterface'; readonly name: string }
  | { readonly kind: 'source'; readonly cidr: Cidr; readonly negate?: boolean }
  | { readonly kind: 'destination'; readonly cidr: Cidr; readonly negate?: boolean }
  /** Needs a `protocol` match before it in the same rule. */
  | { readonly kind: 'destinationPort'; readonly port: number }
  | {
      readonly kind: 'owner';
      readonly by: 'uid' | 'gid';
      readonly id: number;
      readonly negate?: boolean;
    };

export type Target =
  | { readonly kind: 'return' }
  | { readonly kind: 'jump'; readonly chain: OwnedChain }
  | { readonly kind: 'redirect'; readonly toPort: number };

export interface Rule {
  readonly chain: ChainRef;
  readonly matches: readonly Match[];
  readonly target: Target;
  /** Why the rule exists; rendered as an iptables comment so a live `iptables-save` explains itself. */
  readonly why: string;
}

/** Everything mesh-init wants in one family's nat table. */
export interface NatPlan {
  readonly family: Family;
  readonly chains: readonly OwnedChain[];
  readonly rules: readonly Rule[];
}

/** The kernel's name of a chain: built-in chains as they are, owned ones behind the prefix. */
export function chainName(prefix: string, chain: ChainRef | OwnedChain): string {
  if (typeof chain === 'string') return `${prefix}${chain}`;
  return chain.kind === 'builtin' ? chain.name : `${prefix}${chain.name}`;
}
