import ipaddr from 'ipaddr.js';
import type { Config } from '../config/config.js';
import type { Cidr, Family } from '../config/net.js';
import {
  type ChainRef,
  type Match,
  type OwnedChain,
  type Protocol,
  type Rule,
  TABLES,
  type Table,
  type TablePlan,
  type Target,
} from './rules.js';

/** What arrives on a -c interface is never captured: first in an inbound chain (nat's, or mangle's). */
function excludedInterfacesIn(config: Config, chain: ChainRef): Rule[] {
  return config.excludeInterfaces.map(
    (name): Rule => ({
      chain,
      matches: [arrivingOn(name)],
      target: RETURN,
      why: EXCLUDED_INTERFACE,
    }),
  );
}

/** The -d ports are never captured inbound: ahead of the inbound capture rules. */
function excludedPortsIn(config: Config, chain: ChainRef): Rule[] {
  return config.inboundExcludePorts.map(
    (port): Rule => ({
      chain,
      matches: dport('tcp', port),
      target: RETURN,
      why: 'inbound port excluded by --inbound-exclude-ports',
    }),
  );
}

/** Addresses that differ between the families; everything else in the plan is shared. */
const LOOPBACK: Record<Family, Cidr> = {
  ipv4: { family: 'ipv4', address: '127.0.0.1', prefix: 32 },
  ipv6: { family: 'ipv6', address: '::1', prefix: 128 },
};
/** The source address Istio's proxy binds for inbound passthrough to the app. */
export const INBOUND_PASSTHROUGH: Record<Family, Cidr> = {
  ipv4: { family: 'ipv4', address: '127.0.0.6', prefix: 32 },
  ipv6: { family: 'ipv6', address: '::6', prefix: 128 },
};

const owned = (name: OwnedChain): ChainRef => ({ kind: 'owned', name });
const builtin = (name: 'PREROUTING' | 'OUTPUT'): ChainRef => ({ kind: 'builtin', name });
const KUBE_VIRT = 'TCP from a --kube-virt-interfaces interface is outbound traffic';
const EXCLUDED_INTERFACE = 'interface excluded by --exclude-interfaces';
const jump = (chain: OwnedChain): Target => ({ kind: 'jump', chain });
const RETURN: Target = { kind: 'return' };
const tcp: Match = { kind: 'protocol', proto: 'tcp' };
const udp: Match = { kind: 'protocol', proto: 'udp' };
const arrivingOn = (name: string): Match => ({ kind: 'inInterface', name });
const leavingOn = (name: string): Match => ({ kind: 'outInterface', name });
const fromLo = arrivingOn('lo');
const toLo = leavingOn('lo');
const DNS_PORT = 53;
const dport = (proto: Protocol, port: number): Match[] => [
  { kind: 'protocol', proto },
  { kind: 'destinationPort', port },
];

function proxyOwners(config: Config): { by: 'uid' | 'gid'; id: number }[] {
  return [
    ...config.proxyUids.map((id) => ({ by: 'uid' as const, id })),
    ...config.proxyGids.map((id) => ({ by: 'gid' as const, id })),
  ];
}

function inboundRules(config: Config, family: Family): Rule[] {
  const chain = owned('INBOUND');
  const selection = config.inboundPorts;
  const include = config.outboundIncludeCidrs;
  // VMs behind the pod (Istio's -k) send through it: their TCP is outbound traffic,
  // captured by the outbound rules' -i choice, and never inbound.
  const virt = config.kubeVirtInterfaces.flatMap((name): Rule[] => [
    ...(include.kind === 'all'
      ? [{ chain, matches: [tcp, arrivingOn(name)], target: jump('REDIRECT'), why: KUBE_VIRT }]
      : include.kind === 'only'
        ? include.cidrs
            .filter((cidr) => cidr.family === family)
            .map(
              (cidr): Rule => ({
                chain,
                matches: [tcp, arrivingOn(name), { kind: 'destination', cidr }],
                target: jump('REDIRECT'),
                why: KUBE_VIRT,
              }),
            )
        : []),
    {
      chain,
      matches: [arrivingOn(name)],
      target: RETURN,
      why: 'a --kube-virt-interfaces interface is not inbound',
    },
  ]);
  // With TPROXY the mangle table captures inbound TCP; nat keeps only the -k rules.
  const inbound: Rule[] =
    selection.kind === 'none' || config.inboundMode === 'tproxy'
      ? []
      : [
          ...(selection.kind === 'all'
            ? [
                {
                  chain,
                  matches: [tcp],
                  target: jump('IN_REDIRECT'),
                  why: 'capture all other inbound TCP',
                },
              ]
            : selection.ports.map(
                (port): Rule => ({
                  chain,
                  matches: dport('tcp', port),
                  target: jump('IN_REDIRECT'),
                  why: 'inbound port listed in --inbound-ports',
                }),
              )),
        ];
  if (virt.length === 0 && inbound.length === 0) return [];
  // As in Istio, a -k interface wins over a -c one that matches it too (eth+ and eth1).
  // Without inbound capture there is nothing for -d to exclude.
  return [
    ...virt,
    ...excludedInterfacesIn(config, chain),
    ...(inbound.length > 0 ? excludedPortsIn(config, chain) : []),
    ...inbound,
    {
      chain: builtin('PREROUTING'),
      matches: [tcp],
      target: jump('INBOUND'),
      why: 'inbound TCP is checked for capture',
    },
  ];
}

function outboundRules(config: Config, family: Family, dns: readonly Rule[]): Rule[] {
  const chain = owned('OUTPUT');
  const owners = proxyOwners(config);
  const ofFamily = (cidrs: readonly Cidr[]) => cidrs.filter((cidr) => cidr.family === family);
  const include = config.outboundIncludeCidrs;

  const rules: Rule[] = [
    ...config.excludeInterfaces.map(
      (name): Rule => ({
        chain,
        matches: [leavingOn(name)],
        target: RETURN,
        why: EXCLUDED_INTERFACE,
      }),
    ),
    ...config.outboundExcludePorts.flatMap((port) =>
      (['tcp', 'udp'] as const).map(
        (proto): Rule => ({
          chain,
          matches: dport(proto, port),
          target: RETURN,
          why: 'destination port excluded by --outbound-exclude-ports',
        }),
      ),
    ),
    {
      // The proxy hands inbound connections to the app from this source address;
      // they are already proxied and must not be captured again.
      chain,
      matches: [toLo, { kind: 'source', cidr: INBOUND_PASSTHROUGH[family] }],
      target: RETURN,
      why: 'inbound passthrough from the proxy goes straight to the app',
    },
    // The proxy calling its own pod IP leaves through lo. That is inbound traffic for
    // this pod (app -> service VIP -> same pod), so it goes to the inbound port; the
    // proxy's calls to localhost stay untouched.
    ...owners.map(
      ({ by, id }): Rule => ({
        chain,
        matches: [
          toLo,
          { kind: 'destination', cidr: LOOPBACK[family], negate: true },
          // The proxy's own DNS queries to a resolver on lo (127.0.0.53) are not inbound.
          ...(dns.length > 0
            ? [tcp, { kind: 'destinationPort', port: DNS_PORT, negate: true } as const]
            : []),
          { kind: 'owner', by, id },
        ],
        target: jump('IN_REDIRECT'),
        why: 'proxy calling its own pod IP is inbound traffic',
      }),
    ),
    // Everything else the proxy sends is already proxied: redirecting it would loop.
    ...owners.map(
      ({ by, id }): Rule => ({
        chain,
        matches: [{ kind: 'owner', by, id }],
        target: RETURN,
        why: 'traffic of the proxy itself is never redirected (no loop)',
      }),
    ),
    // Before the loopback rule: a pod's resolver is often on lo (127.0.0.53, 127.0.0.11).
    ...(dns.length > 0
      ? [
          {
            chain,
            matches: [],
            target: jump('OUTPUT_DNS'),
            why: 'DNS queries of the apps go to the DNS port',
          },
        ]
      : []),
    {
      // Containers of one pod talk over localhost (or their own pod IP) without the proxy, by design.
      chain,
      matches: [toLo],
      target: RETURN,
      why: 'loopback traffic inside the pod is not intercepted',
    },
    // As in Istio, an excluded destination stays excluded even on an included port.
    ...ofFamily(config.outboundExcludeCidrs).map(
      (cidr): Rule => ({
        chain,
        matches: [{ kind: 'destination', cidr }],
        target: RETURN,
        why: 'destination excluded by --outbound-exclude-cidrs',
      }),
    ),
    ...config.outboundIncludePorts.map(
      (port): Rule => ({
        chain,
        matches: dport('tcp', port),
        target: jump('REDIRECT'),
        why: 'destination port listed in --outbound-include-ports',
      }),
    ),
    ...(include.kind === 'all'
      ? [{ chain, matches: [], target: jump('REDIRECT'), why: 'capture all other outbound TCP' }]
      : include.kind === 'only'
        ? ofFamily(include.cidrs).map(
            (cidr): Rule => ({
              chain,
              matches: [{ kind: 'destination', cidr }],
              target: jump('REDIRECT'),
              why: 'destination listed in --outbound-include-cidrs',
            }),
          )
        : []),
  ];

  // UDP only needs to enter the chain when a rule there (or in the DNS chain) is about UDP.
  const seesUdp = [...rules, ...dns].some((rule) =>
    rule.matches.some((match) => match.kind === 'protocol' && match.proto === 'udp'),
  );
  rules.push({
    chain: builtin('OUTPUT'),
    matches: seesUdp ? [] : [tcp],
    target: jump('OUTPUT'),
    why: seesUdp
      ? 'outbound traffic is checked for capture'
      : 'outbound TCP is checked for capture',
  });
  return rules;
}

/**
 * DNS capture (nat): queries of the apps, UDP and TCP to port 53 of the pod's
 * resolvers (or of any address with --capture-all-dns), go to the proxy's DNS port.
 * The proxy's own queries never get here: its traffic returned before the jump.
 */
function dnsRules(config: Config, family: Family): Rule[] {
  const { dns } = config;
  if (dns.capture === 'off') return [];
  const chain = owned('OUTPUT_DNS');
  const to = resolversOf(config, family);
  return to.flatMap((cidr) =>
    (['tcp', 'udp'] as const).map(
      (proto): Rule => ({
        chain,
        matches: [
          ...dport(proto, DNS_PORT),
          ...(cidr === undefined ? [] : [{ kind: 'destination', cidr } as const]),
        ],
        target: { kind: 'redirect', toPort: dns.port },
        why:
          cidr === undefined
            ? 'DNS to any address goes to the DNS port (--capture-all-dns)'
            : 'DNS to a resolver of /etc/resolv.conf goes to the DNS port',
      }),
    ),
  );
}

/** Where captured DNS goes to: the family's resolvers, or anywhere (`undefined`). */
function resolversOf(config: Config, family: Family): (Cidr | undefined)[] {
  if (config.dns.capture === 'all') return [undefined];
  if (config.dns.capture === 'off') return [];
  return config.dns.resolvers.filter((cidr) => cidr.family === family);
}

/** Resolvers on the pod's loopback (127.0.0.53, Docker's 127.0.0.11): their answers leave through OUTPUT. */
function loopbackResolvers(config: Config, family: Family): Cidr[] {
  if (config.dns.capture === 'off') return [];
  return config.dns.resolvers.filter(
    (cidr) => cidr.family === family && ipaddr.parse(cidr.address).range() === 'loopback',
  );
}

/**
 * The nat table of one IP family: REDIRECT capture, and DNS capture's redirect. Pure: the same config gives the same
 * plan, and the family only picks addresses and filters CIDRs.
 */
export function planNat(config: Config, family: Family): TablePlan {
  const redirects: Rule[] = [
    {
      chain: owned('REDIRECT'),
      matches: [tcp],
      target: { kind: 'redirect', toPort: config.proxyPort },
      why: 'outbound TCP goes to the proxy',
    },
    {
      chain: owned('IN_REDIRECT'),
      matches: [tcp],
      target: { kind: 'redirect', toPort: config.inboundCapturePort },
      why: 'inbound TCP goes to the inbound capture port',
    },
  ];
  const dns = dnsRules(config, family);
  const chains: OwnedChain[] = ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'];
  return {
    family,
    table: 'nat',
    chains: dns.length > 0 ? [...chains, 'OUTPUT_DNS'] : chains,
    rules: [
      ...redirects,
      ...dns,
      ...inboundRules(config, family),
      ...outboundRules(config, family, dns),
    ],
  };
}

/**
 * Conntrack zones for DNS capture (raw). A query of an app, redirected to the proxy,
 * and the proxy's own query upstream can share a 5-tuple once NAT is undone;
 * in separate zones their replies never meet the wrong entry (as Istio does).
 */
export function planRaw(config: Config, family: Family): TablePlan | undefined {
  const to = resolversOf(config, family);
  if (to.length === 0 || config.dns.capture === 'off') return undefined;
  const { port } = config.dns;
  const out = owned('OUTPUT_DNS');
  const zone = (n: 1 | 2): Target => ({ kind: 'conntrackZone', zone: n });
  const rules: Rule[] = [
    ...proxyOwners(config).flatMap(({ by, id }): Rule[] => [
      {
        chain: out,
        matches: [...dport('udp', DNS_PORT), { kind: 'owner', by, id }],
        target: zone(1),
        why: "the proxy's upstream DNS queries are in zone 1",
      },
      {
        chain: out,
        matches: [udp, { kind: 'sourcePort', port }, { kind: 'owner', by, id }],
        target: zone(2),
        why: "the proxy's DNS answers to the apps are in zone 2",
      },
    ]),
    ...to.map(
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
    // A resolver on lo answers through OUTPUT, often from behind a NAT of its own
    // (Docker's 127.0.0.11): the answer must meet the proxy's query in zone 1. After
    // the apps' rule: an app on 127.0.0.1 asking a resolver on 127.0.0.1 has that
    // source too, and its query belongs in zone 2.
    ...loopbackResolvers(config, family).map(
      (cidr): Rule => ({
        chain: out,
        matches: [udp, { kind: 'source', cidr }],
        target: zone(1),
        why: 'answers of a resolver on lo to the proxy are in zone 1',
      }),
    ),
    ...to.map(
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
    {
      chain: builtin('PREROUTING'),
      matches: [udp],
      target: jump('INBOUND'),
      why: 'DNS answers get their conntrack zone',
    },
  ];
  return { family, table: 'raw', chains: ['OUTPUT_DNS', 'INBOUND'], rules };
}

/**
 * The mangle table: --drop-invalid, and inbound capture with TPROXY, which keeps
 * the original destination on the socket (and the source, as REDIRECT does) and
 * needs the policy route `fwmark MARK lookup TABLE` → `local default dev lo`.
 */
export function planMangle(config: Config, family: Family): TablePlan | undefined {
  const chains: OwnedChain[] = [];
  const rules: Rule[] = [];
  if (config.dropInvalid) {
    chains.push('DROP_INVALID');
    rules.push(
      {
        chain: owned('DROP_INVALID'),
        matches: [{ kind: 'ctstate', states: ['INVALID'] }],
        target: { kind: 'drop' },
        why: 'a packet conntrack cannot place would skip NAT and so the proxy',
      },
      {
        chain: builtin('PREROUTING'),
        matches: [],
        target: jump('DROP_INVALID'),
        why: 'invalid packets are dropped (--drop-invalid)',
      },
    );
  }
  const tproxy = tproxyRules(config, family);
  if (tproxy.length > 0) {
    chains.push('DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT');
    rules.push(...tproxy);
  }
  if (chains.length === 0) return undefined;
  // Rules of owned chains first, hooks last and in this order: --drop-invalid first.
  return {
    family,
    table: 'mangle',
    chains,
    rules: [
      ...rules.filter((r) => r.chain.kind === 'owned'),
      ...rules.filter((r) => r.chain.kind === 'builtin'),
    ],
  };
}

function tproxyRules(config: Config, family: Family): Rule[] {
  const selection = config.inboundPorts;
  if (config.inboundMode !== 'tproxy' || selection.kind === 'none') return [];
  const { mark } = config.tproxy;
  // The proxy marks what it sends to its own pod IP over lo with mark + 1, so that
  // it comes back in as inbound traffic (as Istio does).
  const selfMark = mark + 1;
  const inbound = owned('INBOUND');
  const out = owned('OUTPUT');
  const notLoopback: Match = { kind: 'destination', cidr: LOOPBACK[family], negate: true };
  const capture = (extra: Match[], why: string): Rule => ({
    chain: inbound,
    matches: [tcp, ...extra],
    target: jump('TPROXY'),
    why,
  });
  return [
    {
      chain: owned('DIVERT'),
      matches: [],
      target: { kind: 'setMark', mark },
      why: 'marked packets take the local route to the proxy',
    },
    {
      chain: owned('DIVERT'),
      matches: [],
      target: { kind: 'accept' },
      why: 'a packet of a proxied connection needs nothing more',
    },
    {
      chain: owned('TPROXY'),
      matches: [notLoopback, tcp],
      target: { kind: 'tproxy', toPort: config.inboundCapturePort, mark },
      why: 'inbound TCP goes to the inbound capture port, destination kept',
    },
    {
      chain: inbound,
      matches: [tcp, { kind: 'mark', mark }],
      target: { kind: 'saveMark' },
      why: "the proxy's connection to the app: replies must come back to the proxy",
    },
    {
      chain: inbound,
      matches: [tcp, { kind: 'mark', mark }],
      target: RETURN,
      why: "the proxy's connection to the app is not captured again",
    },
    {
      chain: inbound,
      matches: [tcp, fromLo, { kind: 'source', cidr: INBOUND_PASSTHROUGH[family] }],
      target: RETURN,
      why: 'inbound passthrough from the proxy goes straight to the app',
    },
    {
      chain: inbound,
      matches: [tcp, fromLo, { kind: 'mark', mark: selfMark, negate: true }],
      target: RETURN,
      why: 'loopback traffic inside the pod is not intercepted',
    },
    // -k interfaces carry a VM's outbound traffic, which nat redirects.
    ...config.kubeVirtInterfaces.map(
      (name): Rule => ({
        chain: inbound,
        matches: [arrivingOn(name)],
        target: RETURN,
        why: 'a --kube-virt-interfaces interface is not inbound',
      }),
    ),
    ...excludedInterfacesIn(config, inbound),
    ...excludedPortsIn(config, inbound),
    // Conntrack state, as Istio has it now: a socket match would miss the replies to
    // the proxy's own connections over lo (marked below), which TPROXY then drops.
    {
      chain: inbound,
      matches: [tcp, { kind: 'ctstate', states: ['RELATED', 'ESTABLISHED'] }],
      target: jump('DIVERT'),
      why: 'packets of established connections go straight to their socket',
    },
    ...(selection.kind === 'all'
      ? [capture([], 'capture all other inbound TCP')]
      : selection.ports.map((port) =>
          capture([{ kind: 'destinationPort', port }], 'inbound port listed in --inbound-ports'),
        )),
    {
      chain: out,
      matches: [tcp, toLo, { kind: 'mark', mark }],
      target: RETURN,
      why: "the proxy's connection to the app keeps its mark",
    },
    ...proxyOwners(config).map(
      ({ by, id }): Rule => ({
        chain: out,
        matches: [notLoopback, tcp, toLo, { kind: 'owner', by, id }],
        target: { kind: 'setMark', mark: selfMark },
        why: 'proxy calling its own pod IP is inbound traffic',
      }),
    ),
    {
      chain: out,
      matches: [tcp, { kind: 'connmark', mark }],
      target: { kind: 'restoreMark' },
      why: "replies of the app to the proxy's connection go back to the proxy",
    },
    {
      chain: builtin('PREROUTING'),
      matches: [tcp],
      target: jump('INBOUND'),
      why: 'inbound TCP is checked for capture',
    },
    {
      chain: builtin('OUTPUT'),
      matches: [tcp],
      target: jump('OUTPUT'),
      why: 'marks of proxied connections follow their packets',
    },
  ];
}

/** Every table's plan for one family; nat always, mangle and raw when a feature needs them. */
export function planTables(config: Config, family: Family): TablePlan[] {
  const plans: Record<Table, TablePlan | undefined> = {
    nat: planNat(config, family),
    mangle: planMangle(config, family),
    raw: planRaw(config, family),
  };
  return TABLES.flatMap((table) => plans[table] ?? []);
}
