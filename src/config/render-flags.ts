import {
  type CidrSelection,
  type Config,
  DEFAULT_DNS_PORT,
  type PortSelection,
  validateConfig,
} from './config.js';
import { FLAGS } from './flags.js';
import type { Cidr } from './net.js';

/**
 * A Config written back as mesh-init's own flags: what `inject` puts in an init
 * container's `args`. Parsing and validating the result gives the same Config (a
 * unit test proves it), so the pod runs exactly what was validated at injection.
 */

/** What validateConfig makes of no flags at all: "default" is whatever it says. */
const DEFAULTS: Config = validateConfig(new Map());

/** A flag's text (`true` for a bare boolean flag), or undefined to leave it out. */
type Rendered = string | true | undefined;

const list = (items: readonly (number | string)[]) => items.join(',');
const cidrList = (cidrs: readonly Cidr[]) => list(cidrs.map((c) => `${c.address}/${c.prefix}`));
const sameList = (a: readonly unknown[], b: readonly unknown[]) =>
  a.length === b.length && a.every((item, i) => item === b[i]);
const unlessDefault = <T>(value: T, fallback: T, text: string): Rendered =>
  value === fallback ? undefined : text;
const nonEmpty = (items: readonly (number | string)[]): Rendered =>
  items.length === 0 ? undefined : list(items);
/** Seconds as validateConfig reads them back (it keeps milliseconds). */
const seconds = (ms: number) => String(ms / 1000);

function portSelection(selection: PortSelection): Rendered {
  if (selection.kind === 'all') return undefined;
  return selection.kind === 'none' ? '' : list(selection.ports);
}

function cidrSelection(selection: CidrSelection): Rendered {
  if (selection.kind === 'all') return undefined;
  return selection.kind === 'none' ? '' : cidrList(selection.cidrs);
}

/**
 * One entry per flag that carries a choice of the Config. The port and the UID are
 * always written, as in every injected pod since the seed (`-p 15001 -u 1337`): a
 * reader of the pod spec sees where traffic goes and whose traffic is spared.
 */
const RENDER: Readonly<Record<string, (config: Config) => Rendered>> = {
  'proxy-port': (c) => String(c.proxyPort),
  'inbound-capture-port': (c) =>
    unlessDefault(c.inboundCapturePort, c.proxyPort, String(c.inboundCapturePort)),
  'inbound-tunnel-port': (c) =>
    unlessDefault(c.inboundTunnelPort, DEFAULTS.inboundTunnelPort, String(c.inboundTunnelPort)),
  'proxy-uid': (c) => list(c.proxyUids),
  'proxy-gid': (c) => (sameList(c.proxyGids, c.proxyUids) ? undefined : list(c.proxyGids)),
  'inbound-interception-mode': (c) => (c.inboundMode === 'tproxy' ? 'TPROXY' : undefined),
  'inbound-tproxy-mark': (c) =>
    unlessDefault(c.tproxy.mark, DEFAULTS.tproxy.mark, String(c.tproxy.mark)),
  'inbound-tproxy-route-table': (c) =>
    unlessDefault(c.tproxy.routeTable, DEFAULTS.tproxy.routeTable, String(c.tproxy.routeTable)),
  'inbound-ports': (c) => portSelection(c.inboundPorts),
  'inbound-exclude-ports': (c) => nonEmpty(c.inboundExcludePorts),
  'outbound-include-cidrs': (c) => cidrSelection(c.outboundIncludeCidrs),
  'outbound-exclude-cidrs': (c) =>
    c.outboundExcludeCidrs.length === 0 ? undefined : cidrList(c.outboundExcludeCidrs),
  'outbound-exclude-ports': (c) => nonEmpty(c.outboundExcludePorts),
  'outbound-include-ports': (c) => nonEmpty(c.outboundIncludePorts),
  'outbound-owner-groups': (c) =>
    c.ownerGroups.kind === 'all' ? undefined : list(c.ownerGroups.groups),
  'outbound-owner-groups-exclude': (c) =>
    c.ownerGroups.kind === 'all' ? nonEmpty(c.ownerGroups.except) : undefined,
  'ipv4-loopback-cidr': (c) =>
    unlessDefault(
      cidrList([c.ipv4LoopbackCidr]),
      cidrList([DEFAULTS.ipv4LoopbackCidr]),
      cidrList([c.ipv4LoopbackCidr]),
    ),
  'network-namespace': (c) => c.networkNamespace,
  'dual-stack': (c) => (c.dualStack ? true : undefined),
  'dry-run': (c) => (c.dryRun ? true : undefined),
  ipv6: (c) => unlessDefault(c.ipv6, DEFAULTS.ipv6, String(c.ipv6)),
  'iptables-backend': (c) => unlessDefault(c.backend, DEFAULTS.backend, c.backend),
  wait: (c) =>
    unlessDefault(c.retry.waitSeconds, DEFAULTS.retry.waitSeconds, String(c.retry.waitSeconds)),
  'max-retries': (c) =>
    unlessDefault(c.retry.maxRetries, DEFAULTS.retry.maxRetries, String(c.retry.maxRetries)),
  'retry-interval': (c) =>
    unlessDefault(c.retry.intervalMs, DEFAULTS.retry.intervalMs, seconds(c.retry.intervalMs)),
  cleanup: (c) => (c.mode === 'cleanup' ? true : undefined),
  check: (c) => (c.mode === 'check' ? true : undefined),
  'run-validation': (c) => (c.validate ? true : undefined),
  'skip-rule-apply': (c) => (c.skipRuleApply ? true : undefined),
  'probe-address': (c) =>
    nonEmpty([c.probe.addresses.ipv4, c.probe.addresses.ipv6].flatMap((a) => a ?? [])),
  'probe-port': (c) => unlessDefault(c.probe.port, DEFAULTS.probe.port, String(c.probe.port)),
  'probe-timeout': (c) =>
    unlessDefault(c.probe.timeoutMs, DEFAULTS.probe.timeoutMs, seconds(c.probe.timeoutMs)),
  'log-format': (c) => unlessDefault(c.logFormat, DEFAULTS.logFormat, c.logFormat),
  'kube-virt-interfaces': (c) => nonEmpty(c.kubeVirtInterfaces),
  'exclude-interfaces': (c) => nonEmpty(c.excludeInterfaces),
  'redirect-dns': (c) => (c.dns.capture === 'off' ? undefined : true),
  'capture-all-dns': (c) => (c.dns.capture === 'all' ? true : undefined),
  'dns-port': (c) =>
    c.dns.capture === 'off' || c.dns.port === DEFAULT_DNS_PORT ? undefined : String(c.dns.port),
  'drop-invalid': (c) => (c.dropInvalid ? true : undefined),
  'chain-prefix': (c) => unlessDefault(c.chainPrefix, DEFAULTS.chainPrefix, c.chainPrefix),
};

/**
 * Flags that carry no choice of their own: Istio's spellings (--log_as_json is
 * --log-format json, --force-iptables-binary is --iptables-backend; --log_output_level,
 * --force-apply, --reconcile and --cni-mode have no effect) and the refused
 * --native-nftables. They are never written.
 */
export const UNRENDERED_FLAGS: readonly string[] = [
  'log_as_json',
  'log_output_level',
  'native-nftables',
  'force-apply',
  'force-iptables-binary',
  'reconcile',
  'cni-mode',
];

/**
 * The Config as argv, in the order of the flag table: the short letter where the
 * flag has one (Istio's letters), else the long name; only choices that differ
 * from the defaults, except -p and -u.
 */
export function renderFlags(config: Config): string[] {
  const args: string[] = [];
  for (const flag of FLAGS) {
    const value = RENDER[flag.name]?.(config);
    if (value === undefined) continue;
    const name = flag.short ? `-${flag.short}` : `--${flag.name}`;
    if (value === true) args.push(name);
    else args.push(name, value);
  }
  return args;
}
