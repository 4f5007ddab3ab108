/**
 * Conntrack zones for DNS capture (raw). A query of an app, redirected to the proxy,
 * and the proxy's own query upstream can share a 5-tuple once NAT is undone; in
 * separate zones their replies never meet the wrong entry (as Istio does).
 */
import type { Config } from '../config/config.js';
import type { Family } from '../config/net.js';
import {
  builtin,
  capturesDns,
  DNS_PORT,
  dnsTargets,
  dport,
  jump,
  loopbackResolvers,
  owned,
  ownedBy,
  proxyOwners,
  udp,
} from './matches.js';
import type { Rule, TablePlan, Target } from './rules.js';

const zone = (n: 1 | 2): Target => ({ kind: 'conntrackZone', zone: n });

/**
 * The proxy's own DNS gets its zones in every family once DNS is captured at all
 * (as in Istio: a dual-stack pod with IPv4 resolvers only still zones the proxy's
 * IPv6 queries); the apps' queries and the answers, where the family has resolvers.
 */
export function planRaw(config: Config, family: Family): TablePlan | undefined {
  if (!capturesDns(config) || config.dns.capture === 'off') return undefined;
  const { port } = config.dns;
  const out = owned('OUTPUT_DNS');
  const targets = dnsTargets(config, family);
  const rules: Rule[] = [
    ...proxyOwners(config).flatMap((owner): Rule[] => [
      {
        chain: out,
        matches: [...dport('udp', DNS_PORT), ownedBy(owner)],
        target: zone(1),
        why: "the proxy's upstream DNS queries are in zone 1",
      },
      {
        chain: out,
        matches: [udp, { kind: 'sourcePort', port }, ownedBy(owner)],
        target: zone(2),
        why: "the proxy's DNS answers to the apps are in zone 2",
      },
    ]),
    ...targets.map(
      (cidr): Rule => ({
        chain: out,
        matches: [
          ...dport('udp', DNS_PORT),
          ...(cidr === undefined ? [] : [{ kind: 'destination', cidr } as const]),
        ],
        target: zone(2),
        why: "the apps' DNS queries are in zone 2",
      }),
    ),
    // Not in Istio: a resolver on lo answers through OUTPUT, and from behind a NAT of
    // its own where it is Docker's 127.0.0.11: the answer must meet the proxy's query
    // in zone 1. Only for resolvers that are on lo. After the apps' rule: an app on
    // 127.0.0.1 asking a resolver on 127.0.0.1 has that source too, and its query
    // belongs in zone 2.
    ...loopbackResolvers(config, family).map(
      (cidr): Rule => ({
        chain: out,
        matches: [udp, { kind: 'source', cidr }],
        target: zone(1),
        why: 'answers of a resolver on lo to the proxy are in zone 1',
      }),
    ),
    ...targets.map(
      (cidr): Rule => ({
        chain: owned('INBOUND'),
        matches: [
          udp,
          { kind: 'sourcePort', port: DNS_PORT },
          ...(cidr === undefined ? [] : [{ kind: 'source', cidr } as const]),
        ],
        target: zone(1),
        why: 'answers of the resolvers to the proxy are in zone 1',
      }),
    ),
    {
      chain: builtin('OUTPUT'),
      matches: [udp],
      target: jump('OUTPUT_DNS'),
      why: 'outbound DNS gets its conntrack zone',
    },
    ...(targets.length === 0
      ? []
      : [
          {
            chain: builtin('PREROUTING'),
            matches: [udp],
            target: jump('INBOUND'),
            why: 'DNS answers get their conntrack zone',
          },
        ]),
  ];
  return {
    family,
    table: 'raw',
    chains: targets.length === 0 ? ['OUTPUT_DNS'] : ['OUTPUT_DNS', 'INBOUND'],
    rules,
  };
}
