/**
 * Rules as data. The planner builds these; only render.ts turns them into
 * iptables-restore text, so nothing else ever handles rule strings.
 */

import type { Cidr, Family } from '../config/net.js';

export type Protocol = 'tcp' | 'udp';

/**
 * The tables mesh-init writes: nat for REDIRECT capture, mangle for TPROXY and
 * --drop-invalid, raw for the conntrack zones of DNS capture.
 */
export type Table = 'nat' | 'mangle' | 'raw';

/** The order transactions run in: capture itself first, so a failure there leaves nothing applied. */
export const TABLES: readonly Table[] = ['nat', 'mangle', 'raw'];

/** Kernel chains that mesh-init hooks into but never owns. */
export type BuiltinChain = 'PREROUTING' | 'OUTPUT';

/** Chains mesh-init creates; their names are the chain prefix + this suffix. */
export type OwnedChain =
  | 'INBOUND'
  | 'IN_REDIRECT'
  | 'OUTPUT'
  | 'REDIRECT'
  | 'OUTPUT_DNS'
  | 'DIVERT'
  | 'TPROXY'
  | 'DROP_INVALID';

/**
 * Every chain mesh-init may own in each table, in declaration order (Istio's order
 * where Istio has the chain, so `iptables-save` diffs stay small). Cleanup removes these.
 */
export const OWNED_CHAINS: Readonly<Record<Table, readonly OwnedChain[]>> = {
  nat: ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT', 'OUTPUT_DNS'],
  mangle: ['DROP_INVALID', 'DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT'],
  raw: ['OUTPUT_DNS', 'INBOUND'],
};

export type ChainRef =
  | { readonly kind: 'builtin'; readonly name: BuiltinChain }
  | { readonly kind: 'owned'; readonly name: OwnedChain };

/** A packet or connection mark, as a 32-bit number. */
export type Mark = number;

export type Match =
  | { readonly kind: 'protocol'; readonly proto: Protocol }
  | { readonly kind: 'inInterface'; readonly name: string }
  | { readonly kind: 'outInterface'; readonly name: string }
  | { readonly kind: 'source'; readonly cidr: Cidr; readonly negate?: boolean }
  | { readonly kind: 'destination'; readonly cidr: Cidr; readonly negate?: boolean }
  /** Port matches need a `protocol` match before them in the same rule. */
  | { readonly kind: 'destinationPort'; readonly port: number; readonly negate?: boolean }
  /** Several destination ports in one match (iptables' multiport). */
  | {
      readonly kind: 'destinationPorts';
      readonly ports: readonly number[];
      readonly negate?: boolean;
    }
  | { readonly kind: 'sourcePort'; readonly port: number }
  | {
      readonly kind: 'owner';
      readonly by: 'uid' | 'gid';
      /** A number, or a group name (Istio's owner-group filters take names), resolved by the kernel tools. */
      readonly id: number | string;
      readonly negate?: boolean;
    }
  | { readonly kind: 'mark'; readonly mark: Mark; readonly negate?: boolean }
  | { readonly kind: 'connmark'; readonly mark: Mark }
  | {
      readonly kind: 'ctstate';
      readonly states: readonly ('INVALID' | 'RELATED' | 'ESTABLISHED')[];
    };

export type Target =
  | { readonly kind: 'return' }
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'jump'; readonly chain: OwnedChain }
  | { readonly kind: 'redirect'; readonly toPort: number }
  | { readonly kind: 'tproxy'; readonly toPort: number; readonly mark: Mark }
  | { readonly kind: 'setMark'; readonly mark: Mark }
  | { readonly kind: 'saveMark' }
  | { readonly kind: 'restoreMark' }
  | { readonly kind: 'conntrackZone'; readonly zone: number };

export interface Rule {
  readonly chain: ChainRef;
  readonly matches: readonly Match[];
  readonly target: Target;
  /** Why the rule exists; rendered as an iptables comment so a live `iptables-save` explains itself. */
  readonly why: string;
}

/** Everything mesh-init wants in one table of one family. */
export interface TablePlan {
  readonly family: Family;
  readonly table: Table;
  readonly chains: readonly OwnedChain[];
  readonly rules: readonly Rule[];
}

/** The kernel's name of a chain: built-in chains as they are, owned ones behind the prefix. */
export function chainName(prefix: string, chain: ChainRef | OwnedChain): string {
  if (typeof chain === 'string') return `${prefix}${chain}`;
  return chain.kind === 'builtin' ? chain.name : `${prefix}${chain.name}`;
}
