import type { Config } from './config.js';
import {
  type ChainRef,
  type Cidr,
  type Family,
  type Match,
  type NatPlan,
  OWNED_CHAINS,
  type OwnedChain,
  type Protocol,
  type Rule,
  type Target,
} from './rules.js';

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
const KUBE_VIRT = 'TCP from a --kube-virt-interfaces interface is outbound traffic';
const EXCLUDED_INTERFACE = 'interface excluded by --exclude-interfaces';
const jump = (chain: OwnedChain): Target => ({ kind: 'jump', chain });
const RETURN: Target = { kind: 'return' };
const tcp: Match = { kind: 'protocol', proto: 'tcp' };
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
  const on = (name: string): Match => ({ kind: 'inInterface', name });
  const include = config.outboundIncludeCidrs;
  // VMs behind the pod (Istio's -k) send through it: their TCP is outbound traffic,
  // captured by the outbound rules' -i choice, and never inbound.
  const virt = config.kubeVirtInterfaces.flatMap((name): Rule[] => [
    ...(include.kind === 'all'
      ? [{ chain, matches: [tcp, on(name)], target: jump('REDIRECT'), why: KUBE_VIRT }]
      : include.kind === 'only'
        ? include.cidrs
            .filter((cidr) => cidr.family === family)
            .map(
              (cidr): Rule => ({
                chain,
                matches: [tcp, on(name), { kind: 'destination', cidr }],
                target: jump('REDIRECT'),
                why: KUBE_VIRT,
              }),
            )
        : []),
    {
      chain,
      matches: [on(name)],
      target: RETURN,
      why: 'a --kube-virt-interfaces interface is not inbound',
    },
  ]);
  const inbound: Rule[] =
    selection.kind === 'none'
      ? []
      : [
          ...config.inboundExcludePorts.map(
            (port): Rule => ({
              chain,
              matches: dport('tcp', port),
              target: RETURN,
              why: 'inbound port excluded by --inbound-exclude-ports',
            }),
          ),
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
  return [
    ...virt,
    ...config.excludeInterfaces.map(
      (name): Rule => ({ chain, matches: [on(name)], target: RETURN, why: EXCLUDED_INTERFACE }),
    ),
    ...inbound,
    {
      chain: { kind: 'builtin', name: 'PREROUTING' },
      matches: [tcp],
      target: jump('INBOUND'),
      why: 'inbound TCP is checked for capture',
    },
  ];
}

function outboundRules(config: Config, family: Family): Rule[] {
  const chain = owned('OUTPUT');
  const lo: Match = { kind: 'outInterface', name: 'lo' };
  const owners = proxyOwners(config);
  const ofFamily = (cidrs: readonly Cidr[]) => cidrs.filter((cidr) => cidr.family === family);
  const include = config.outboundIncludeCidrs;

  const rules: Rule[] = [
    ...config.excludeInterfaces.map(
      (name): Rule => ({
        chain,
        matches: [{ kind: 'outInterface', name }],
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
      matches: [lo, { kind: 'source', cidr: INBOUND_PASSTHROUGH[family] }],
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
          lo,
          { kind: 'destination', cidr: LOOPBACK[family], negate: true },
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
    {
      // Containers of one pod talk over localhost (or their own pod IP) without the proxy, by design.
      chain,
      matches: [lo],
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

  // UDP only needs to enter the chain when a rule there is about UDP.
  const seesUdp = rules.some((rule) =>
    rule.matches.some((match) => match.kind === 'protocol' && match.proto === 'udp'),
  );
  rules.push({
    chain: { kind: 'builtin', name: 'OUTPUT' },
    matches: seesUdp ? [] : [tcp],
    target: jump('OUTPUT'),
    why: seesUdp
      ? 'outbound traffic is checked for capture'
      : 'outbound TCP is checked for capture',
  });
  return rules;
}

/**
 * The whole nat-table plan of one IP family. Pure: the same config gives the same
 * plan, and the family only picks addresses and filters CIDRs.
 */
export function planRules(config: Config, family: Family): NatPlan {
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
  return {
    family,
    chains: OWNED_CHAINS,
    rules: [...redirects, ...inboundRules(config, family), ...outboundRules(config, family)],
  };
}
