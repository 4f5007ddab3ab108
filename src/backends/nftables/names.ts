/**
 * What mesh-init's nftables objects are called and where they hook in: Istio's
 * names (tables `istio-proxy-nat`, chains `istio-inbound` …) for the default
 * chain prefix, and Istio's base chains, hooks and priorities.
 */
import type { BuiltinChain, OwnedChain, Table } from '../../plan/rules.js';

/** nft's names for what iptables calls a table: one inet table each, both families in it. */
const TABLE_SUFFIX: Readonly<Record<Table, string>> = {
  nat: 'proxy-nat',
  mangle: 'proxy-mangle',
  raw: 'proxy-raw',
};

/** Istio's nftables chain names, behind the prefix (`istio-` for ISTIO_). */
const CHAIN_SUFFIX: Readonly<Record<OwnedChain, string>> = {
  INBOUND: 'inbound',
  IN_REDIRECT: 'in-redirect',
  OUTPUT: 'output',
  REDIRECT: 'redirect',
  OUTPUT_DNS: 'output-dns',
  DIVERT: 'divert',
  TPROXY: 'tproxy',
  DROP_INVALID: 'drop',
};

export interface BaseChain {
  readonly name: string;
  readonly type: 'nat' | 'filter' | 'route';
  readonly hook: 'prerouting' | 'output';
  readonly priority: number;
}

/**
 * The base chains that stand for iptables' kernel chains, as Istio declares them:
 * nat at dstnat (-100), mangle at -150 (output as a route chain, so that a mark set
 * there re-routes the packet, as iptables' mangle OUTPUT does), raw at -300 (before
 * conntrack, which the zones need).
 */
export const BASE_CHAINS: Readonly<Record<Table, Readonly<Record<BuiltinChain, BaseChain>>>> = {
  nat: {
    PREROUTING: { name: 'prerouting', type: 'nat', hook: 'prerouting', priority: -100 },
    OUTPUT: { name: 'output', type: 'nat', hook: 'output', priority: -100 },
  },
  mangle: {
    PREROUTING: { name: 'prerouting', type: 'filter', hook: 'prerouting', priority: -150 },
    OUTPUT: { name: 'output', type: 'route', hook: 'output', priority: -150 },
  },
  raw: {
    PREROUTING: { name: 'prerouting', type: 'filter', hook: 'prerouting', priority: -300 },
    OUTPUT: { name: 'output', type: 'filter', hook: 'output', priority: -300 },
  },
};

/** The base chains in the order a table declares them. */
export const BUILTIN_ORDER: readonly BuiltinChain[] = ['PREROUTING', 'OUTPUT'];

/**
 * nft's spelling of the chain prefix: `ISTIO_` is Istio's `istio-`. Lower case with
 * dashes, as nft names are usually written; a prefix is a letter, then letters,
 * digits, `_` or `-`, which nft takes as a name as it is.
 */
function nftPrefix(chainPrefix: string): string {
  return chainPrefix.toLowerCase().replaceAll('_', '-');
}

export interface Names {
  readonly table: (table: Table) => string;
  readonly chain: (chain: OwnedChain) => string;
}

/** The names of one run's tables and owned chains (all three tables, planned or not). */
export function namesFor(chainPrefix: string): Names {
  const prefix = nftPrefix(chainPrefix);
  return {
    table: (table) => `${prefix}${TABLE_SUFFIX[table]}`,
    chain: (chain) => `${prefix}${CHAIN_SUFFIX[chain]}`,
  };
}
