/**
 * The mangle table: --drop-invalid, and inbound capture with TPROXY, which keeps
 * the original destination on the socket (and the source, as REDIRECT does) and
 * needs the policy route `fwmark MARK lookup TABLE` → `local default dev lo`.
 * The order of the rules is Istio's.
 */
import type { Config } from '../config/config.js';
import type { Family } from '../config/net.js';
import {
  builtin,
  EXCLUDED_INTERFACE,
  fromLo,
  INBOUND_PASSTHROUGH,
  jump,
  leavingOn,
  loopbackOf,
  owned,
  ownedBy,
  proxyOwners,
  RETURN,
  tcp,
  toLo,
  usesTproxy,
} from './matches.js';
import { excludedInterfacesIn, excludedPortsIn } from './nat.js';
import type { Match, OwnedChain, Rule, TablePlan } from './rules.js';

/**
 * Packets conntrack cannot place would skip NAT and so the proxy. As in Istio, with
 * TPROXY the -c interfaces are let through before this check.
 */
function dropInvalidRules(config: Config): Rule[] {
  return [
    ...(config.inboundMode === 'tproxy' ? excludedInterfacesIn(config, 'DROP_INVALID') : []),
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
  ];
}

/** Inbound TCP of the selected ports to TPROXY; packets of established connections straight to their socket. */
function tproxyCapture(config: Config): Rule[] {
  const chain = owned('INBOUND');
  const selection = config.inboundPorts;
  const established: Match = { kind: 'ctstate', states: ['RELATED', 'ESTABLISHED'] };
  const byPort = (ports: Match[], why: string): Rule[] => [
    {
      chain,
      matches: [tcp, ...ports, established],
      target: jump('DIVERT'),
      why: 'packets of established connections go straight to their socket',
    },
    { chain, matches: [tcp, ...ports], target: jump('TPROXY'), why },
  ];
  if (selection.kind === 'all') {
    return [...excludedPortsIn(config, 'INBOUND'), ...byPort([], 'capture all other inbound TCP')];
  }
  if (selection.kind === 'none') return [];
  return selection.ports.flatMap((port) =>
    byPort([{ kind: 'destinationPort', port }], 'inbound port listed in --inbound-ports'),
  );
}

function tproxyRules(config: Config, family: Family): Rule[] {
  const { mark } = config.tproxy;
  // The proxy marks what it sends to its own pod IP over lo with mark + 1, so that
  // it comes back in as inbound traffic (as Istio does).
  const selfMark = mark + 1;
  const inbound = owned('INBOUND');
  const out = owned('OUTPUT');
  const notLoopback: Match = {
    kind: 'destination',
    cidr: loopbackOf(config, family),
    negate: true,
  };
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
    ...excludedInterfacesIn(config, 'INBOUND'),
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
    ...tproxyCapture(config),
    ...config.excludeInterfaces.map(
      (name): Rule => ({
        chain: out,
        matches: [leavingOn(name)],
        target: RETURN,
        why: EXCLUDED_INTERFACE,
      }),
    ),
    {
      chain: out,
      matches: [tcp, toLo, { kind: 'mark', mark }],
      target: RETURN,
      why: "the proxy's connection to the app keeps its mark",
    },
    ...proxyOwners(config).map(
      (owner): Rule => ({
        chain: out,
        matches: [notLoopback, tcp, toLo, ownedBy(owner)],
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

/**
 * With -m TPROXY and no inbound ports (-b ""), Istio still writes its marking rules
 * but no route for them, so they deliver no packet differently: mesh-init writes
 * none (see docs/istio-parity.md).
 */
export function planMangle(config: Config, family: Family): TablePlan | undefined {
  const chains: OwnedChain[] = [];
  const rules: Rule[] = [];
  if (config.dropInvalid) {
    chains.push('DROP_INVALID');
    rules.push(...dropInvalidRules(config));
  }
  if (usesTproxy(config)) {
    chains.push('DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT');
    rules.push(...tproxyRules(config, family));
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
