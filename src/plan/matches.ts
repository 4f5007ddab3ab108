/**
 * The small vocabulary the planners share: matches, targets and chain references,
 * and the facts of a config that more than one table needs.
 */
import ipaddr from 'ipaddr.js';
import type { Config } from '../config/config.js';
import type { Cidr, Family } from '../config/net.js';
import type { ChainRef, Match, OwnedChain, Protocol, Target } from './rules.js';

export const owned = (name: OwnedChain): ChainRef => ({ kind: 'owned', name });
export const builtin = (name: 'PREROUTING' | 'OUTPUT'): ChainRef => ({ kind: 'builtin', name });
export const jump = (chain: OwnedChain): Target => ({ kind: 'jump', chain });
export const RETURN: Target = { kind: 'return' };
export const tcp: Match = { kind: 'protocol', proto: 'tcp' };
export const udp: Match = { kind: 'protocol', proto: 'udp' };
export const arrivingOn = (name: string): Match => ({ kind: 'inInterface', name });
export const leavingOn = (name: string): Match => ({ kind: 'outInterface', name });
export const fromLo = arrivingOn('lo');
export const toLo = leavingOn('lo');
export const DNS_PORT = 53;
export const dport = (proto: Protocol, port: number): Match[] => [
  { kind: 'protocol', proto },
  { kind: 'destinationPort', port },
];
export const EXCLUDED_INTERFACE = 'interface excluded by --exclude-interfaces';

/** The source address Istio's proxy binds for inbound passthrough to the app. */
export const INBOUND_PASSTHROUGH: Record<Family, Cidr> = {
  ipv4: { family: 'ipv4', address: '127.0.0.6', prefix: 32 },
  ipv6: { family: 'ipv6', address: '::6', prefix: 128 },
};

/** The pod's own loopback: `--ipv4-loopback-cidr` (127.0.0.1/32), and ::1 for IPv6. */
export function loopbackOf(config: Config, family: Family): Cidr {
  return family === 'ipv4'
    ? config.ipv4LoopbackCidr
    : { family: 'ipv6', address: '::1', prefix: 128 };
}

export interface Owner {
  readonly by: 'uid' | 'gid';
  readonly id: number;
}

/** The proxy's identities, UIDs first, as Istio lists them. */
export function proxyOwners(config: Config): Owner[] {
  return [
    ...config.proxyUids.map((id) => ({ by: 'uid' as const, id })),
    ...config.proxyGids.map((id) => ({ by: 'gid' as const, id })),
  ];
}

export const ownedBy = ({ by, id }: Owner, negate = false): Match => ({
  kind: 'owner',
  by,
  id,
  ...(negate ? { negate } : {}),
});

export const ofFamily = (cidrs: readonly Cidr[], family: Family) =>
  cidrs.filter((cidr) => cidr.family === family);

/**
 * Whether DNS is captured at all: Istio decides once for the pod (DNS to the
 * resolvers needs at least one, of either family), and then shapes the proxy's
 * rules of both families for it.
 */
export function capturesDns(config: Config): boolean {
  const { dns } = config;
  return dns.capture === 'all' || (dns.capture === 'resolvers' && dns.resolvers.length > 0);
}

/** Where the apps' DNS of one family is captured: the family's resolvers, or anywhere (`undefined`). */
export function dnsTargets(config: Config, family: Family): (Cidr | undefined)[] {
  if (!capturesDns(config)) return [];
  if (config.dns.capture === 'all') return [undefined];
  return config.dns.capture === 'resolvers' ? ofFamily(config.dns.resolvers, family) : [];
}

/** Resolvers on the pod's loopback (127.0.0.53, Docker's 127.0.0.11): their answers leave through OUTPUT. */
export function loopbackResolvers(config: Config, family: Family): Cidr[] {
  if (!capturesDns(config) || config.dns.capture === 'off') return [];
  return ofFamily(config.dns.resolvers, family).filter(
    (cidr) => ipaddr.parse(cidr.address).range() === 'loopback',
  );
}

/** TPROXY marks inbound packets that a policy route then delivers to lo. */
export function usesTproxy(config: Config): boolean {
  return config.inboundMode === 'tproxy' && config.inboundPorts.kind !== 'none';
}
