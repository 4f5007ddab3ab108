import type { Config } from './config/config.js';

/** One line per event on stderr: `mesh-init: <message>`, or a JSON object per line. */
export interface Logger {
  info(event: string, message: string, fields?: Readonly<Record<string, unknown>>): void;
  error(event: string, message: string, fields?: Readonly<Record<string, unknown>>): void;
}

export function createLogger(
  format: 'text' | 'json',
  write: (line: string) => void,
  now: () => Date,
): Logger {
  const emit =
    (level: 'info' | 'error') =>
    (event: string, message: string, fields: Readonly<Record<string, unknown>> = {}) => {
      if (format === 'text') write(`mesh-init: ${message}\n`);
      else {
        const line = { time: now().toISOString(), level, event, msg: message, ...fields };
        write(`${JSON.stringify(line)}\n`);
      }
    };
  return { info: emit('info'), error: emit('error') };
}

const list = (items: readonly (number | string)[]) => items.join(',');

/** The effective configuration, as the flags a user would write. */
export function describeConfig(config: Config): Record<string, string> {
  const ports = (s: Config['inboundPorts']) =>
    s.kind === 'all' ? '*' : s.kind === 'none' ? '' : list(s.ports);
  const include = config.outboundIncludeCidrs;
  const cidrs = (items: readonly { address: string; prefix: number }[]) =>
    list(items.map((c) => `${c.address}/${c.prefix}`));
  return {
    mode: config.skipRuleApply
      ? 'validate only'
      : config.dryRun
        ? `${config.mode} (dry-run)`
        : config.mode,
    'proxy-port': String(config.proxyPort),
    'inbound-capture-port': String(config.inboundCapturePort),
    'inbound-tunnel-port': String(config.inboundTunnelPort),
    'proxy-uid': list(config.proxyUids),
    'proxy-gid': list(config.proxyGids),
    'inbound-ports': ports(config.inboundPorts),
    'inbound-exclude-ports': list(config.inboundExcludePorts),
    'outbound-include-cidrs':
      include.kind === 'all' ? '*' : include.kind === 'none' ? '' : cidrs(include.cidrs),
    'outbound-exclude-cidrs': cidrs(config.outboundExcludeCidrs),
    'outbound-exclude-ports': list(config.outboundExcludePorts),
    'outbound-include-ports': list(config.outboundIncludePorts),
    'outbound-owner-groups':
      config.ownerGroups.kind === 'all' ? '*' : list(config.ownerGroups.groups),
    ...(config.ownerGroups.kind === 'all' && config.ownerGroups.except.length > 0
      ? { 'outbound-owner-groups-exclude': list(config.ownerGroups.except) }
      : {}),
    'ipv4-loopback-cidr': `${config.ipv4LoopbackCidr.address}/${config.ipv4LoopbackCidr.prefix}`,
    'kube-virt-interfaces': list(config.kubeVirtInterfaces),
    'exclude-interfaces': list(config.excludeInterfaces),
    'inbound-interception-mode': config.inboundMode === 'tproxy' ? 'TPROXY' : 'REDIRECT',
    ...(config.inboundMode === 'tproxy'
      ? {
          'inbound-tproxy-mark': String(config.tproxy.mark),
          'inbound-tproxy-route-table': String(config.tproxy.routeTable),
        }
      : {}),
    'redirect-dns': String(config.dns.capture !== 'off'),
    ...(config.dns.capture === 'off'
      ? {}
      : {
          'capture-all-dns': String(config.dns.capture === 'all'),
          'dns-port': String(config.dns.port),
        }),
    'drop-invalid': String(config.dropInvalid),
    ipv6: String(config.ipv6),
    'dual-stack': String(config.dualStack),
    // Native nftables uses no iptables backend: it is named in the backend's place.
    ...(config.nativeNftables
      ? { 'native-nftables': 'true' }
      : { 'iptables-backend': config.backend }),
    'chain-prefix': config.chainPrefix,
    ...(config.networkNamespace === undefined
      ? {}
      : { 'network-namespace': config.networkNamespace }),
    wait: String(config.retry.waitSeconds),
    'max-retries': String(config.retry.maxRetries),
    'retry-interval': String(config.retry.intervalMs / 1000),
    'run-validation': String(config.validate),
    ...(config.validate
      ? {
          'probe-address': list(
            [config.probe.addresses.ipv4, config.probe.addresses.ipv6].flatMap((a) => a ?? []),
          ),
          'probe-port': String(config.probe.port),
          'probe-timeout': String(config.probe.timeoutMs / 1000),
        }
      : {}),
  };
}

export function formatConfig(config: Config): string {
  return Object.entries(describeConfig(config))
    .map(([key, value]) => `${key}=${value === '' ? '""' : value}`)
    .join(' ');
}
