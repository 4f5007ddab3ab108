import ipaddr from 'ipaddr.js';
import type { GivenOption, GivenOptions } from '../cli/args.js';
import { UsageError } from '../errors.js';
import type { Cidr, Family } from './net.js';

export type PortSelection =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'only'; readonly ports: readonly number[] };

export type CidrSelection =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'only'; readonly cidrs: readonly Cidr[] };

export type Backend = 'legacy' | 'nft';

/**
 * DNS capture: off, DNS to the resolvers of /etc/resolv.conf, or all of port 53.
 * The resolvers are read by the shell (withResolvers) in both modes: those on
 * loopback need a rule of their own.
 */
export type DnsCapture =
  | { readonly capture: 'off' }
  | {
      readonly capture: 'all' | 'resolvers';
      readonly port: number;
      readonly resolvers: readonly Cidr[];
    };

/** TPROXY's packet mark and the routing table that sends marked packets to lo. */
export interface TproxyRouting {
  readonly mark: number;
  readonly routeTable: number;
}

export interface Config {
  readonly proxyPort: number;
  readonly inboundCapturePort: number;
  readonly proxyUids: readonly number[];
  readonly proxyGids: readonly number[];
  readonly inboundPorts: PortSelection;
  readonly inboundExcludePorts: readonly number[];
  readonly outboundIncludeCidrs: CidrSelection;
  readonly outboundExcludeCidrs: readonly Cidr[];
  readonly outboundExcludePorts: readonly number[];
  readonly outboundIncludePorts: readonly number[];
  /** Interfaces whose inbound TCP is treated as outbound (Istio's -k: VMs behind the pod). */
  readonly kubeVirtInterfaces: readonly string[];
  /** Interfaces whose traffic is never captured (Istio's -c). */
  readonly excludeInterfaces: readonly string[];
  /** How inbound TCP reaches the proxy: nat REDIRECT, or mangle TPROXY (destination kept on the socket). */
  readonly inboundMode: 'redirect' | 'tproxy';
  readonly tproxy: TproxyRouting;
  readonly dns: DnsCapture;
  /** Drop packets conntrack marks INVALID, which would otherwise skip NAT and reach the app directly. */
  readonly dropInvalid: boolean;
  readonly dryRun: boolean;
  readonly ipv6: 'auto' | boolean;
  readonly backend: 'auto' | Backend;
  readonly chainPrefix: string;
  /** What this run does: install the rules, remove mesh-init's, or compare live with planned. */
  readonly mode: 'apply' | 'cleanup' | 'check';
  /** Prove after applying (or instead, with skipRuleApply) that outbound TCP lands on the proxy. */
  readonly validate: boolean;
  readonly skipRuleApply: boolean;
  readonly retry: RetryPolicy;
  readonly probe: ValidationProbe;
  readonly logFormat: 'text' | 'json';
}

export interface RetryPolicy {
  /** Seconds *-restore waits for the xtables lock; 0 = do not wait. */
  readonly waitSeconds: number;
  /** Further tries after a restore that met a busy lock or table. */
  readonly maxRetries: number;
  readonly intervalMs: number;
}

/** Where --run-validation connects, and how long it may take. */
export interface ValidationProbe {
  /**
   * --probe-address, per family: where the probe connects. A family without one
   * is probed at addresses chosen at run time (see docs/validation.md).
   */
  readonly addresses: Readonly<Partial<Record<Family, string>>>;
  readonly port: number;
  readonly timeoutMs: number;
}

export const DEFAULT_PROXY_PORT = 15001;
export const DEFAULT_PROXY_ID = 1337;
export const DEFAULT_CHAIN_PREFIX = 'ISTIO_';
export const DEFAULT_DNS_PORT = 15053;
export const DEFAULT_TPROXY_MARK = 1337;
export const DEFAULT_TPROXY_ROUTE_TABLE = 133;

/** The longest owned chain suffix is DROP_INVALID; iptables caps chain names at 28 characters. */
const MAX_CHAIN_PREFIX = 28 - 'DROP_INVALID'.length;
/** The kernel's owner match takes 32-bit ids; 2^32-1 means "no id". */
const MAX_ID = 4294967294;

function invalid(option: GivenOption, expected: string, got: string = String(option.value)) {
  return new UsageError(`invalid ${option.origin}: expected ${expected}, got "${got}"`);
}

/** Splits a comma list; blanks around items and empty items (a trailing comma) are ignored. */
function items(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Plain decimal, no sign, no leading zeros (`0080` is more likely a typo than a port). */
function parseInteger(text: string): number | undefined {
  return /^(0|[1-9]\d*)$/.test(text) ? Number(text) : undefined;
}

function parsePort(option: GivenOption, text: string): number {
  const port = parseInteger(text);
  if (port === undefined || port < 1 || port > 65535) {
    throw invalid(option, 'an integer 1-65535', text);
  }
  return port;
}

function parsePortList(option: GivenOption): number[] {
  const ports = items(String(option.value)).map((item) => parsePort(option, item));
  return [...new Set(ports)];
}

function parseIdList(option: GivenOption): number[] {
  const list = items(String(option.value));
  if (list.length === 0) throw invalid(option, 'a comma list of user or group ids');
  const ids = list.map((item) => {
    const id = parseInteger(item);
    if (id === undefined || id > MAX_ID) {
      throw invalid(option, `a non-negative integer up to ${MAX_ID}`, item);
    }
    return id;
  });
  return [...new Set(ids)];
}

function parseCidr(option: GivenOption, text: string): Cidr {
  const parts = text.split('/');
  const [addressText = '', prefixText] = parts;
  if (parts.length > 2) throw invalid(option, 'an IPv4 or IPv6 CIDR such as 10.0.0.0/8', text);
  const isV4 = ipaddr.IPv4.isValidFourPartDecimal(addressText);
  const isV6 = !isV4 && ipaddr.IPv6.isValid(addressText) && !addressText.includes('%');
  if (!isV4 && !isV6) throw invalid(option, 'an IPv4 or IPv6 CIDR such as 10.0.0.0/8', text);
  const family: Family = isV4 ? 'ipv4' : 'ipv6';
  const bits = isV4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : parseInteger(prefixText);
  if (prefix === undefined || prefix > bits) {
    throw invalid(option, `a prefix length 0-${bits} after the "/"`, text);
  }
  const address = ipaddr.parse(addressText);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    throw invalid(option, 'a plain IPv4 CIDR instead of an IPv4-mapped IPv6 one', text);
  }
  const network =
    family === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addressText}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addressText}/${prefix}`);
  return { family, address: network.toString(), prefix };
}

function parseCidrList(option: GivenOption): Cidr[] {
  const seen = new Set<string>();
  const cidrs: Cidr[] = [];
  for (const item of items(String(option.value))) {
    const cidr = parseCidr(option, item);
    const key = `${cidr.address}/${cidr.prefix}`;
    if (!seen.has(key)) cidrs.push(cidr);
    seen.add(key);
  }
  return cidrs;
}

/** --probe-address: at most one IPv4 and one IPv6 address, unicast; empty = chosen at run time. */
function parseProbeAddresses(option: GivenOption): Partial<Record<Family, string>> {
  const found: Partial<Record<Family, string>> = {};
  for (const item of items(String(option.value))) {
    const isV4 = ipaddr.IPv4.isValidFourPartDecimal(item);
    const isV6 = !isV4 && ipaddr.IPv6.isValid(item) && !item.includes('%');
    const address = isV4 || isV6 ? ipaddr.parse(item) : undefined;
    const mapped = address?.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress();
    const range = address?.range();
    if (
      address === undefined ||
      mapped ||
      range === 'unspecified' ||
      range === 'multicast' ||
      range === 'broadcast'
    ) {
      throw invalid(
        option,
        'at most one IPv4 and one IPv6 unicast address, such as 192.0.2.1,2001:db8::1',
        item,
      );
    }
    const family: Family = isV4 ? 'ipv4' : 'ipv6';
    if (found[family] !== undefined) {
      throw invalid(option, `one ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address at most`, item);
    }
    found[family] = address.toString();
  }
  return found;
}

function parseBounded(option: GivenOption, max: number, min = 0): number {
  const text = String(option.value).trim();
  const value = parseInteger(text);
  if (value === undefined || value < min || value > max) {
    throw invalid(option, `an integer ${min}-${max}`, text);
  }
  return value;
}

/** A routing table of its own: not 0 (unspecified) nor default, main and local (253-255). */
function parseRouteTable(option: GivenOption): number {
  const table = parseBounded(option, 0xffffffff, 1);
  if (table >= 253 && table <= 255) {
    throw invalid(
      option,
      'a table of its own, not default (253), main (254) or local (255)',
      String(table),
    );
  }
  return table;
}

/** Decimal seconds such as 0.5, up to max; returned in milliseconds. */
function parseSeconds(option: GivenOption, max: number, allowZero: boolean): number {
  const text = String(option.value).trim();
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  const ms = Math.round(value * 1000);
  if (Number.isNaN(value) || value > max || (!allowZero && value < 0.001)) {
    throw invalid(option, `a number of seconds, ${allowZero ? '0' : '0.001'} to ${max}`, text);
  }
  return ms;
}

/** Linux interface names (at most 15 bytes, no "/" or blanks), with iptables' `+` wildcard at the end. */
function parseInterfaceList(option: GivenOption): string[] {
  const names = items(String(option.value));
  for (const name of names) {
    // The kernel's limit (15 bytes) counts iptables' wildcard too; a leading "-" would read as an option.
    const valid = name.length <= 15 && /^[A-Za-z0-9_.@][A-Za-z0-9_.@-]*\+?$/.test(name);
    if (!valid || name === '.' || name === '..') {
      throw invalid(
        option,
        'interface names such as eth1 (at most 15 characters, + as a wildcard at the end)',
        name,
      );
    }
  }
  return [...new Set(names)];
}

function parseChoice<T extends string>(option: GivenOption, choices: readonly T[]): T {
  const value = String(option.value);
  const found = choices.find((choice) => choice === value);
  if (found === undefined) {
    throw invalid(option, choices.length === 1 ? `${choices[0]}` : `one of ${choices.join(', ')}`);
  }
  return found;
}

function overlap(a: readonly number[], b: readonly number[]): number | undefined {
  return a.find((port) => b.includes(port));
}

/** The config with the pod's resolvers (from its resolv.conf) for DNS capture. */
export function withResolvers(config: Config, resolvers: readonly Cidr[]): Config {
  if (config.dns.capture === 'off') return config;
  return { ...config, dns: { ...config.dns, resolvers } };
}

/**
 * The one place where user input is checked. Every message names the flag (and the
 * variable it came from) and the bad value; the result is fully typed and trusted.
 */
export function validateConfig(options: GivenOptions): Config {
  const get = (name: string): GivenOption | undefined => options.get(name);

  const mode = get('inbound-interception-mode');
  const modeText = String(mode?.value ?? '').trim();
  // An empty -m (or an empty variable) is the default, REDIRECT.
  const chosenMode =
    mode && modeText !== ''
      ? parseChoice({ ...mode, value: modeText }, ['REDIRECT', 'TPROXY'] as const)
      : 'REDIRECT';
  const inboundMode = chosenMode === 'TPROXY' ? 'tproxy' : 'redirect';
  const markOption = get('inbound-tproxy-mark');
  const tableOption = get('inbound-tproxy-route-table');
  // They also name the rule and route that --cleanup, or a re-run without -m TPROXY,
  // removes: so they are taken without -m TPROXY too.
  const tproxy: TproxyRouting = {
    // The proxy's own traffic to its pod IP is marked mark + 1, so the mark stays below 2^32-1.
    mark: markOption ? parseBounded(markOption, 0xfffffffe, 1) : DEFAULT_TPROXY_MARK,
    routeTable: tableOption ? parseRouteTable(tableOption) : DEFAULT_TPROXY_ROUTE_TABLE,
  };

  const proxyPortOption = get('proxy-port');
  const proxyPort = proxyPortOption
    ? parsePort(proxyPortOption, String(proxyPortOption.value).trim())
    : DEFAULT_PROXY_PORT;
  const inboundPortOption = get('inbound-capture-port');
  const inboundCapturePort = inboundPortOption
    ? parsePort(inboundPortOption, String(inboundPortOption.value).trim())
    : proxyPort;

  const uidOption = get('proxy-uid');
  const proxyUids = uidOption ? parseIdList(uidOption) : [DEFAULT_PROXY_ID];
  const gidOption = get('proxy-gid');
  // Istio's injector may pass an empty -g; like Istio, that means "same as -u".
  const proxyGids =
    gidOption && items(String(gidOption.value)).length > 0 ? parseIdList(gidOption) : proxyUids;

  const inboundOption = get('inbound-ports');
  let inboundPorts: PortSelection = { kind: 'all' };
  if (inboundOption) {
    const value = String(inboundOption.value).trim();
    if (value === '*') inboundPorts = { kind: 'all' };
    else {
      const ports = parsePortList(inboundOption);
      inboundPorts = ports.length === 0 ? { kind: 'none' } : { kind: 'only', ports };
    }
  }
  const inboundExcludeOption = get('inbound-exclude-ports');
  const inboundExcludePorts = inboundExcludeOption ? parsePortList(inboundExcludeOption) : [];
  if (inboundPorts.kind === 'only' && inboundExcludeOption) {
    const port = overlap(inboundPorts.ports, inboundExcludePorts);
    if (port !== undefined) {
      throw new UsageError(
        `conflicting ${inboundOption?.origin} and ${inboundExcludeOption.origin}: port ${port} is both captured and excluded`,
      );
    }
  }

  const ipv6Option = get('ipv6');
  let ipv6: 'auto' | boolean = 'auto';
  if (ipv6Option) {
    // A bare `--ipv6` reads as "true"; an empty variable as unset.
    const value =
      String(ipv6Option.value).trim().toLowerCase() || (ipv6Option.fromEnv ? 'auto' : 'true');
    ipv6 = { auto: 'auto', true: true, false: false }[
      parseChoice({ ...ipv6Option, value }, ['auto', 'true', 'false'] as const)
    ] as 'auto' | boolean;
  }

  const cidrFamilyCheck = (option: GivenOption, cidrs: readonly Cidr[]) => {
    const v6 = cidrs.find((cidr) => cidr.family === 'ipv6');
    if (ipv6 === false && v6 !== undefined && ipv6Option) {
      throw new UsageError(
        `conflicting ${option.origin} and ${ipv6Option.origin}: IPv6 CIDR "${v6.address}/${v6.prefix}" given but IPv6 capture is off`,
      );
    }
  };

  const includeOption = get('outbound-include-cidrs');
  let outboundIncludeCidrs: CidrSelection = { kind: 'all' };
  if (includeOption) {
    const value = String(includeOption.value).trim();
    if (value === '*') outboundIncludeCidrs = { kind: 'all' };
    else {
      if (items(value).includes('*')) {
        throw invalid(includeOption, '"*" alone or a CIDR list, not both');
      }
      const cidrs = parseCidrList(includeOption);
      cidrFamilyCheck(includeOption, cidrs);
      outboundIncludeCidrs = cidrs.length === 0 ? { kind: 'none' } : { kind: 'only', cidrs };
    }
  }
  const excludeCidrOption = get('outbound-exclude-cidrs');
  const outboundExcludeCidrs = excludeCidrOption ? parseCidrList(excludeCidrOption) : [];
  if (excludeCidrOption) cidrFamilyCheck(excludeCidrOption, outboundExcludeCidrs);

  const excludePortOption = get('outbound-exclude-ports');
  const outboundExcludePorts = excludePortOption ? parsePortList(excludePortOption) : [];
  const includePortOption = get('outbound-include-ports');
  const outboundIncludePorts = includePortOption ? parsePortList(includePortOption) : [];
  if (excludePortOption && includePortOption) {
    const port = overlap(outboundIncludePorts, outboundExcludePorts);
    if (port !== undefined) {
      throw new UsageError(
        `conflicting ${includePortOption.origin} and ${excludePortOption.origin}: port ${port} is both included and excluded`,
      );
    }
  }

  const backendOption = get('iptables-backend');
  const backend = backendOption
    ? parseChoice({ ...backendOption, value: String(backendOption.value).toLowerCase() }, [
        'auto',
        'legacy',
        'nft',
      ] as const)
    : 'auto';

  const prefixOption = get('chain-prefix');
  const chainPrefix = prefixOption ? String(prefixOption.value) : DEFAULT_CHAIN_PREFIX;
  if (prefixOption && !/^[A-Za-z][A-Za-z0-9_-]*$/.test(chainPrefix)) {
    throw invalid(prefixOption, 'letters, digits, "_" or "-", starting with a letter');
  }
  if (prefixOption && chainPrefix.length > MAX_CHAIN_PREFIX) {
    throw invalid(prefixOption, `at most ${MAX_CHAIN_PREFIX} characters`);
  }

  const flag = (name: string) => get(name)?.value === true;
  const conflict = (a: string, b: string) => {
    if (flag(a) && flag(b)) {
      throw new UsageError(`conflicting ${get(a)?.origin} and ${get(b)?.origin}: choose one`);
    }
  };
  conflict('cleanup', 'check');
  conflict('check', 'dry-run');
  for (const other of ['cleanup', 'check', 'dry-run']) conflict('run-validation', other);
  if (flag('skip-rule-apply') && !flag('run-validation')) {
    throw new UsageError(
      `invalid ${get('skip-rule-apply')?.origin}: it only goes with --run-validation (there would be nothing to do)`,
    );
  }

  const waitOption = get('wait');
  const retriesOption = get('max-retries');
  const intervalOption = get('retry-interval');
  const retry: RetryPolicy = {
    waitSeconds: waitOption ? parseBounded(waitOption, 3600) : 10,
    maxRetries: retriesOption ? parseBounded(retriesOption, 100) : 3,
    intervalMs: intervalOption ? parseSeconds(intervalOption, 60, true) : 1000,
  };

  const addressOption = get('probe-address');
  const probeAddresses = addressOption ? parseProbeAddresses(addressOption) : {};
  if (addressOption && probeAddresses.ipv6 !== undefined && ipv6 === false && ipv6Option) {
    throw new UsageError(
      `conflicting ${addressOption.origin} and ${ipv6Option.origin}: IPv6 address "${probeAddresses.ipv6}" given but IPv6 capture is off`,
    );
  }
  const probePortOption = get('probe-port');
  const probeTimeoutOption = get('probe-timeout');
  const probe: ValidationProbe = {
    addresses: probeAddresses,
    port: probePortOption
      ? parsePort(probePortOption, String(probePortOption.value).trim())
      : 15002,
    timeoutMs: probeTimeoutOption ? parseSeconds(probeTimeoutOption, 300, false) : 5000,
  };
  // Without capture, a probe to the port it should land on would land there anyway.
  if (flag('run-validation') && [proxyPort, inboundCapturePort].includes(probe.port)) {
    const name = probePortOption?.origin ?? '--probe-port (default 15002)';
    const taken =
      probe.port === proxyPort
        ? (proxyPortOption?.origin ?? '--proxy-port')
        : (inboundPortOption?.origin ?? '--inbound-capture-port');
    throw new UsageError(
      `conflicting ${name} and ${taken}: the probe must connect to a port other than the one it should land on (${probe.port})`,
    );
  }

  const kubeVirtOption = get('kube-virt-interfaces');
  const kubeVirtInterfaces = kubeVirtOption ? parseInterfaceList(kubeVirtOption) : [];
  const excludeOption = get('exclude-interfaces');
  const excludeInterfaces = excludeOption ? parseInterfaceList(excludeOption) : [];
  const both = kubeVirtInterfaces.find((name) => excludeInterfaces.includes(name));
  if (both !== undefined && kubeVirtOption && excludeOption) {
    throw new UsageError(
      `conflicting ${kubeVirtOption.origin} and ${excludeOption.origin}: interface ${both} is both captured and excluded`,
    );
  }

  const nativeNftables = get('native-nftables');
  if (nativeNftables && nativeNftables.value !== false) {
    throw new UsageError(`invalid ${nativeNftables.origin}: not supported yet (see the README)`);
  }

  const dnsPortOption = get('dns-port');
  const dnsPort = dnsPortOption
    ? parsePort(dnsPortOption, String(dnsPortOption.value).trim())
    : DEFAULT_DNS_PORT;
  if (dnsPortOption && !dnsPortOption.fromEnv && !flag('redirect-dns')) {
    throw new UsageError(
      `invalid ${dnsPortOption.origin}: it only goes with --redirect-dns (no DNS is captured)`,
    );
  }
  if (flag('capture-all-dns') && !flag('redirect-dns')) {
    throw new UsageError(
      `invalid ${get('capture-all-dns')?.origin}: it only goes with --redirect-dns (there would be no DNS capture)`,
    );
  }
  if (flag('redirect-dns') && excludePortOption && outboundExcludePorts.includes(53)) {
    throw new UsageError(
      `conflicting ${get('redirect-dns')?.origin} and ${excludePortOption.origin}: port 53 is both captured and excluded`,
    );
  }
  if (flag('redirect-dns') && (dnsPort === proxyPort || dnsPort === inboundCapturePort)) {
    const tcpOption = dnsPort === proxyPort ? proxyPortOption : inboundPortOption;
    const tcp =
      tcpOption?.origin ?? (dnsPort === proxyPort ? '--proxy-port' : '--inbound-capture-port');
    const dnsName = dnsPortOption?.origin ?? `--dns-port (default ${DEFAULT_DNS_PORT})`;
    throw new UsageError(
      `conflicting ${dnsName} and ${tcp}: port ${dnsPort} cannot take both DNS and TCP capture`,
    );
  }
  const dns: DnsCapture = !flag('redirect-dns')
    ? { capture: 'off' }
    : flag('capture-all-dns')
      ? { capture: 'all', port: dnsPort, resolvers: [] }
      : { capture: 'resolvers', port: dnsPort, resolvers: [] };

  const logOption = get('log-format');
  const chosen = logOption ? parseChoice(logOption, ['text', 'json'] as const) : undefined;
  // --log_as_json is a flag: it beats MESH_INIT_LOG_FORMAT and conflicts only with --log-format.
  if (flag('log_as_json') && chosen === 'text' && !logOption?.fromEnv) {
    throw new UsageError(
      `conflicting ${get('log_as_json')?.origin} and ${logOption?.origin}: choose one`,
    );
  }
  const logFormat = flag('log_as_json') ? 'json' : (chosen ?? 'text');

  return {
    proxyPort,
    inboundCapturePort,
    proxyUids,
    proxyGids,
    inboundPorts,
    inboundExcludePorts,
    outboundIncludeCidrs,
    outboundExcludeCidrs,
    outboundExcludePorts,
    outboundIncludePorts,
    kubeVirtInterfaces,
    excludeInterfaces,
    inboundMode,
    tproxy,
    dns,
    dropInvalid: flag('drop-invalid'),
    dryRun: flag('dry-run'),
    ipv6,
    backend,
    chainPrefix,
    mode: flag('cleanup') ? 'cleanup' : flag('check') ? 'check' : 'apply',
    validate: flag('run-validation'),
    skipRuleApply: flag('skip-rule-apply'),
    retry,
    probe,
    logFormat,
  };
}
