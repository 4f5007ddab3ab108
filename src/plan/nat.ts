/**
 * The nat table: REDIRECT capture of inbound and outbound TCP, and DNS capture's
 * redirect. The order of the rules is Istio's (tools/istio-iptables capture), so
 * that every packet goes where it goes with Istio's init container.
 */
import ipaddr from 'ipaddr.js';
import type { Config } from '../config/config.js';
import type { Cidr, Family } from '../config/net.js';
import {
  arrivingOn,
  builtin,
  capturesDns,
  DNS_PORT,
  dnsTargets,
  dport,
  EXCLUDED_INTERFACE,
  INBOUND_PASSTHROUGH,
  jump,
  leavingOn,
  loopbackOf,
  type Owner,
  ofFamily,
  owned,
  ownedBy,
  proxyOwners,
  RETURN,
  tcp,
  toLo,
} from './matches.js';
import type { Match, OwnedChain, Rule, TablePlan } from './rules.js';

const KUBE_VIRT = 'TCP from a --kube-virt-interfaces interface is outbound traffic';

/** What arrives on a -c interface is never captured: first in an inbound chain (nat's, or mangle's). */
export function excludedInterfacesIn(config: Config, chain: OwnedChain): Rule[] {
  return config.excludeInterfaces.map(
    (name): Rule => ({
      chain: owned(chain),
      matches: [arrivingOn(name)],
      target: RETURN,
      why: EXCLUDED_INTERFACE,
    }),
  );
}

/** The -d ports are never captured inbound; as in Istio, only where all inbound TCP is. */
export function excludedPortsIn(config: Config, chain: OwnedChain): Rule[] {
  if (config.inboundPorts.kind !== 'all') return [];
  return config.inboundExcludePorts.map(
    (port): Rule => ({
      chain: owned(chain),
      matches: dport('tcp', port),
      target: RETURN,
      why: 'inbound port excluded by --inbound-exclude-ports',
    }),
  );
}

/** VMs behind the pod (Istio's -k) send through it: their TCP is outbound traffic, and never inbound. */
function kubeVirtRules(config: Config, family: Family): Rule[] {
  const chain = owned('INBOUND');
  const include = config.outboundIncludeCidrs;
  return config.kubeVirtInterfaces.flatMap((name): Rule[] => [
    ...(include.kind === 'all'
      ? [{ chain, matches: [tcp, arrivingOn(name)], target: jump('REDIRECT'), why: KUBE_VIRT }]
      : include.kind === 'only'
        ? ofFamily(include.cidrs, family).map(
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
}

function inboundRules(config: Config, family: Family): Rule[] {
  const chain = owned('INBOUND');
  const selection = config.inboundPorts;
  // With TPROXY the mangle table captures inbound TCP; nat keeps only the -k rules.
  const capture: Rule[] =
    selection.kind === 'none' || config.inboundMode === 'tproxy'
      ? []
      : selection.kind === 'all'
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
          );
  const virt = kubeVirtRules(config, family);
  if (virt.length === 0 && capture.length === 0) return [];
  // As in Istio, a -k interface wins over a -c one that matches it too (eth+ and eth1).
  return [
    ...virt,
    ...excludedInterfacesIn(config, 'INBOUND'),
    ...(capture.length === 0
      ? []
      : [
          {
            chain,
            matches: dport('tcp', config.inboundTunnelPort),
            target: RETURN,
            why: 'the tunnel port (HBONE) reaches the proxy as it is',
          },
          ...excludedPortsIn(config, 'INBOUND'),
          ...capture,
        ]),
    {
      chain: builtin('PREROUTING'),
      matches: [tcp],
      target: jump('INBOUND'),
      why: 'inbound TCP is checked for capture',
    },
  ];
}

/**
 * One proxy identity's rules, as Istio writes them for each UID and then each GID:
 * its calls to the pod's own addresses over lo are inbound traffic; everyone else's
 * traffic over lo is not captured; its own traffic never is.
 */
function ownerRules(
  config: Config,
  family: Family,
  owner: Owner,
  loopbackIncluded: boolean,
): Rule[] {
  const chain = owned('OUTPUT');
  const dns = capturesDns(config);
  const tunnel = config.inboundTunnelPort;
  // With DNS capture the proxy's TCP DNS to a resolver on lo is not inbound traffic
  // (only for UIDs, as in Istio).
  const notTo: Match =
    dns && owner.by === 'uid'
      ? { kind: 'destinationPorts', ports: [...new Set([DNS_PORT, tunnel])], negate: true }
      : { kind: 'destinationPort', port: tunnel, negate: true };
  return [
    {
      chain,
      matches: [
        toLo,
        { kind: 'destination', cidr: loopbackOf(config, family), negate: true },
        tcp,
        notTo,
        ownedBy(owner),
      ],
      target: jump('IN_REDIRECT'),
      why: 'proxy calling its own pod IP is inbound traffic',
    },
    // An app's TCP DNS to a resolver on lo is captured, so it is not let through here.
    ...(loopbackIncluded
      ? []
      : [
          {
            chain,
            matches: [
              toLo,
              ...(dns
                ? [tcp, { kind: 'destinationPort', port: DNS_PORT, negate: true } as const]
                : []),
              ownedBy(owner, true),
            ],
            target: RETURN,
            why: 'loopback traffic inside the pod is not intercepted',
          },
        ]),
    {
      chain,
      matches: [ownedBy(owner)],
      target: RETURN,
      why: 'traffic of the proxy itself is never redirected (no loop)',
    },
  ];
}

/** Istio's owner-group filter: capture only the processes of some groups, or all but some. */
function ownerGroupRules(config: Config): Rule[] {
  const chain = owned('OUTPUT');
  const groups = config.ownerGroups;
  if (groups.kind === 'all') {
    return groups.except.map(
      (id): Rule => ({
        chain,
        matches: [{ kind: 'owner', by: 'gid', id }],
        target: RETURN,
        why: 'group excluded by --outbound-owner-groups-exclude',
      }),
    );
  }
  return [
    {
      chain,
      matches: groups.groups.map((id): Match => ({ kind: 'owner', by: 'gid', id, negate: true })),
      target: RETURN,
      why: 'only the groups of --outbound-owner-groups are captured',
    },
  ];
}

function outboundRules(config: Config, family: Family, dnsChain: boolean): Rule[] {
  const chain = owned('OUTPUT');
  const include = config.outboundIncludeCidrs;
  // Where -i names a loopback range the apps' traffic over lo is not let through.
  const loopbackIncluded =
    include.kind === 'only' && include.cidrs.some((cidr) => isLoopback(cidr));
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
    ...proxyOwners(config).flatMap((owner) => ownerRules(config, family, owner, loopbackIncluded)),
    ...ownerGroupRules(config),
    ...(dnsChain
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
      // Containers of one pod talk over localhost without the proxy, by design.
      chain,
      matches: [{ kind: 'destination', cidr: loopbackOf(config, family) }],
      target: RETURN,
      why: 'localhost traffic inside the pod is not intercepted',
    },
    // As in Istio, an excluded destination stays excluded even on an included port.
    ...ofFamily(config.outboundExcludeCidrs, family).map(
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
        ? ofFamily(include.cidrs, family).map(
            (cidr): Rule => ({
              chain,
              matches: [{ kind: 'destination', cidr }],
              target: jump('REDIRECT'),
              why: 'destination listed in --outbound-include-cidrs',
            }),
          )
        : []),
  ];
  return [...rules, outputHook(rules)];
}

/** The jump from OUTPUT: TCP only, unless a rule of the chain is about UDP. */
function outputHook(rules: readonly Rule[]): Rule {
  const seesUdp = rules.some((rule) =>
    rule.target.kind === 'jump' && rule.target.chain === 'OUTPUT_DNS'
      ? true
      : rule.matches.some((match) => match.kind === 'protocol' && match.proto === 'udp'),
  );
  return {
    chain: builtin('OUTPUT'),
    matches: seesUdp ? [] : [tcp],
    target: jump('OUTPUT'),
    why: seesUdp
      ? 'outbound traffic is checked for capture'
      : 'outbound TCP is checked for capture',
  };
}

/** As Istio decides it: by the range's own address (127.1.2.3/32, ::1/128). */
function isLoopback(cidr: Cidr): boolean {
  return ipaddr.parse(cidr.address).range() === 'loopback';
}

/**
 * DNS capture: queries of the apps, UDP and TCP to port 53 of the pod's resolvers
 * (or of any address with --capture-all-dns), go to the proxy's DNS port. The
 * proxy's own queries never get here: its traffic returned before the jump.
 */
function dnsRules(config: Config, family: Family): Rule[] {
  const { dns } = config;
  if (dns.capture === 'off') return [];
  return dnsTargets(config, family).flatMap((cidr) =>
    (['tcp', 'udp'] as const).map(
      (proto): Rule => ({
        chain: owned('OUTPUT_DNS'),
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

/** The nat table of one IP family. Pure: the family only picks addresses and filters CIDRs. */
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
      ...outboundRules(config, family, dns.length > 0),
    ],
  };
}
