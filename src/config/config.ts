import ipaddr from 'ipaddr.js';
import { UsageError } from '../errors.js';
import type { GivenOption, GivenOptions } from './given.js';
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

/** Whose outbound TCP is captured, by group: all but some, or only some (Istio's owner-group filter). */
export type OwnerGroups =
  | { readonly kind: 'all'; readonly except: readonly (number | string)[] }
  | { readonly kind: 'only'; readonly groups: readonly (number | string)[] };

export interface Config {
  readonly proxyPort: number;
  readonly inboundCapturePort: number;
  /** The proxy's tunnel port (HBONE, 15008): inbound TCP to it is never captured. */
  readonly inboundTunnelPort: number;
  readonly proxyUids: readonly number[];
  readonly proxyGids: readonly number[];
  readonly inboundPorts: PortSelection;
  readonly inboundExcludePorts: readonly number[];
  readonly outboundIncludeCidrs: CidrSelection;
  readonly outboundExcludeCidrs: readonly Cidr[];
  readonly outboundExcludePorts: readonly number[];
  readonly outboundIncludePorts: readonly number[];
  readonly ownerGroups: OwnerGroups;
  /** The pod's IPv4 loopback (127.0.0.1/32): never captured; ::1 for IPv6. */
  readonly ipv4LoopbackCidr: Cidr;
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
  /** Istio's --dual-stack: with --ipv6 auto, a pod with both families gets IPv6 captured too. */
  readonly dualStack: boolean;
  /** The iptables backend; unused with nativeNftables. */
  readonly backend: 'auto' | Backend;
  /** Native nftables (Istio's --native-nftables): nft and inet tables instead of iptables. */
  readonly nativeNftables: boolean;
  readonly chainPrefix: string;
  /** What this run does: install the rules, remove mesh-init's, or compare live with planned. */
  readonly mode: 'apply' | 'cleanup' | 'check';
  /** Prove after applying (or instead, with skipRuleApply) that outbound TCP lands on the proxy. */
  readonly validate: boolean;
  readonly skipRuleApply: boolean;
  readonly retry: RetryPolicy;
  readonly probe: ValidationProbe;
  readonly logFormat: 'text' | 'json';
  /** Apply in this network namespace (a path) instead of the program's own. */
  readonly networkNamespace: string | undefined;
  /** What the log says of options taken without effect, or where one overrides another as in Istio. */
  readonly notes: readonly string[];
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

const DEFAULT_PROXY_PORT = 15001;
const DEFAULT_PROXY_ID = 1337;
const DEFAULT_CHAIN_PREFIX = 'ISTIO_';
export const DEFAULT_DNS_PORT = 15053;
const DEFAULT_TPROXY_MARK = 1337;
const DEFAULT_TPROXY_ROUTE_TABLE = 133;
const DEFAULT_TUNNEL_PORT = 15008;
/** More `! --gid-owner` matches than this in one rule, and the kernel tools refuse it (Istio's limit). */
const MAX_OWNER_GROUPS = 64;

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

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

/** Plain seconds (0.5), or a Go duration as Istio takes them (5s, 500ms, 1m30s); undefined if neither. */
function durationSeconds(text: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  // As Go's time.ParseDuration: "1.5s", ".5s" and "5.s" are all durations.
  const parts = [...text.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  return parts.reduce(
    (sum, [, n, unit]) => sum + Number(n) * (DURATION_UNITS[unit ?? 's'] ?? 1),
    0,
  );
}

/** Seconds such as 0.5 or a duration such as 5s, up to max; returned in milliseconds. */
function parseSeconds(option: GivenOption, max: number, allowZero: boolean): number {
  const text = String(option.value).trim();
  const value = durationSeconds(text);
  if (value === undefined || value > max || (!allowZero && value < 0.001)) {
    throw invalid(
      option,
      `a number of seconds or a duration such as 5s, ${allowZero ? '0' : '0.001'} to ${max} s`,
      text,
    );
  }
  return Math.round(value * 1000);
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

/** The options as given, and the notes validation leaves for the log. */
class Given {
  readonly notes: string[] = [];
  constructor(private readonly options: GivenOptions) {}

  get(name: string): GivenOption | undefined {
    return this.options.get(name);
  }

  /** A boolean flag that is set (true). */
  flag(name: string): boolean {
    return this.options.get(name)?.value === true;
  }

  /** How the message names an option: as given, or by its flag with the default it has. */
  name(option: string, fallback: string): string {
    return this.get(option)?.origin ?? fallback;
  }

  note(text: string): void {
    this.notes.push(text);
  }
}

const text = (option: GivenOption) => String(option.value).trim();

function port(given: Given, name: string, fallback: number): number {
  const option = given.get(name);
  return option ? parsePort(option, text(option)) : fallback;
}

function ports(given: Given) {
  const proxyPort = port(given, 'proxy-port', DEFAULT_PROXY_PORT);
  return {
    proxyPort,
    inboundCapturePort: port(given, 'inbound-capture-port', proxyPort),
    inboundTunnelPort: port(given, 'inbound-tunnel-port', DEFAULT_TUNNEL_PORT),
  };
}

function owners(given: Given) {
  const uidOption = given.get('proxy-uid');
  // Empty, as Istio takes it: the default proxy user.
  const proxyUids =
    uidOption && items(String(uidOption.value)).length > 0
      ? parseIdList(uidOption)
      : [DEFAULT_PROXY_ID];
  const gidOption = given.get('proxy-gid');
  // Istio's injector may pass an empty -g; like Istio, that means "same as -u".
  const proxyGids =
    gidOption && items(String(gidOption.value)).length > 0 ? parseIdList(gidOption) : proxyUids;
  return { proxyUids, proxyGids, ownerGroups: ownerGroups(given) };
}

/** A group name as the C library takes it, or a GID. */
function parseGroupList(option: GivenOption): (number | string)[] {
  const groups = items(String(option.value)).map((item) => {
    const id = parseInteger(item);
    if (id !== undefined && id <= MAX_ID) return id;
    if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(item)) {
      throw invalid(option, 'group names or GIDs', item);
    }
    return item;
  });
  return [...new Set(groups)];
}

function ownerGroups(given: Given): OwnerGroups {
  const include = given.get('outbound-owner-groups');
  const exclude = given.get('outbound-owner-groups-exclude');
  if (include === undefined || text(include) === '*') {
    return { kind: 'all', except: exclude ? parseGroupList(exclude) : [] };
  }
  const groups = parseGroupList(include);
  if (groups.length > MAX_OWNER_GROUPS) {
    throw invalid(include, `at most ${MAX_OWNER_GROUPS} groups`, String(groups.length));
  }
  // Checked though unused: a typo there is still a typo.
  if (exclude && parseGroupList(exclude).length > 0) {
    given.note(`${exclude.origin} has no effect with a list in ${include.origin} (as in Istio)`);
  }
  // An empty list captures no group at all, as in Istio.
  return { kind: 'only', groups };
}

function inbound(given: Given) {
  const mode = given.get('inbound-interception-mode');
  // An empty -m (or an empty variable) is the default, REDIRECT.
  const chosen =
    mode && text(mode) !== ''
      ? parseChoice({ ...mode, value: text(mode) }, ['REDIRECT', 'TPROXY'] as const)
      : 'REDIRECT';
  const markOption = given.get('inbound-tproxy-mark');
  const tableOption = given.get('inbound-tproxy-route-table');
  const option = given.get('inbound-ports');
  let inboundPorts: PortSelection = { kind: 'all' };
  if (option && text(option) !== '*') {
    const list = parsePortList(option);
    inboundPorts = list.length === 0 ? { kind: 'none' } : { kind: 'only', ports: list };
  }
  const excludeOption = given.get('inbound-exclude-ports');
  const inboundExcludePorts = excludeOption ? parsePortList(excludeOption) : [];
  if (inboundPorts.kind === 'only' && inboundExcludePorts.length > 0 && excludeOption) {
    given.note(
      `${excludeOption.origin} has no effect with a port list in ${option?.origin} (as in Istio: only the listed ports are captured)`,
    );
  }
  return {
    inboundMode: chosen === 'TPROXY' ? ('tproxy' as const) : ('redirect' as const),
    // They also name the rule and route that --cleanup, or a re-run without -m TPROXY,
    // removes: so they are taken without -m TPROXY too. The proxy's own traffic to its
    // pod IP is marked mark + 1, so the mark stays below 2^32-1.
    tproxy: {
      mark: markOption ? parseBounded(markOption, 0xfffffffe, 1) : DEFAULT_TPROXY_MARK,
      routeTable: tableOption ? parseRouteTable(tableOption) : DEFAULT_TPROXY_ROUTE_TABLE,
    },
    inboundPorts,
    inboundExcludePorts,
  };
}

function families(given: Given): 'auto' | boolean {
  const option = given.get('ipv6');
  if (option === undefined) return 'auto';
  // A bare `--ipv6` reads as "true"; an empty variable as unset.
  const value = text(option).toLowerCase() || (option.fromEnv ? 'auto' : 'true');
  const choice = parseChoice({ ...option, value }, ['auto', 'true', 'false'] as const);
  return choice === 'auto' ? 'auto' : choice === 'true';
}

function outbound(given: Given, ipv6: 'auto' | boolean) {
  const cidrFamilyCheck = (option: GivenOption, cidrs: readonly Cidr[]) => {
    const v6 = cidrs.find((cidr) => cidr.family === 'ipv6');
    const ipv6Option = given.get('ipv6');
    if (ipv6 === false && v6 !== undefined && ipv6Option) {
      throw new UsageError(
        `conflicting ${option.origin} and ${ipv6Option.origin}: IPv6 CIDR "${v6.address}/${v6.prefix}" given but IPv6 capture is off`,
      );
    }
  };
  const includeOption = given.get('outbound-include-cidrs');
  let outboundIncludeCidrs: CidrSelection = { kind: 'all' };
  if (includeOption && text(includeOption) !== '*') {
    if (items(text(includeOption)).includes('*')) {
      throw invalid(includeOption, '"*" alone or a CIDR list, not both');
    }
    const cidrs = parseCidrList(includeOption);
    cidrFamilyCheck(includeOption, cidrs);
    outboundIncludeCidrs = cidrs.length === 0 ? { kind: 'none' } : { kind: 'only', cidrs };
  }
  const excludeCidrOption = given.get('outbound-exclude-cidrs');
  const outboundExcludeCidrs = excludeCidrOption ? parseCidrList(excludeCidrOption) : [];
  if (excludeCidrOption) cidrFamilyCheck(excludeCidrOption, outboundExcludeCidrs);

  const excludePortOption = given.get('outbound-exclude-ports');
  const outboundExcludePorts = excludePortOption ? parsePortList(excludePortOption) : [];
  const includePortOption = given.get('outbound-include-ports');
  const outboundIncludePorts = includePortOption ? parsePortList(includePortOption) : [];
  const both = overlap(outboundIncludePorts, outboundExcludePorts);
  if (both !== undefined) {
    given.note(
      `port ${both} is in ${includePortOption?.origin} and ${excludePortOption?.origin}: it is not captured (as in Istio, exclusion wins)`,
    );
  }
  return {
    outboundIncludeCidrs,
    outboundExcludeCidrs,
    outboundExcludePorts,
    outboundIncludePorts,
    ipv4LoopbackCidr: loopbackCidr(given),
  };
}

/** Istio's ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: an IPv4 loopback range, prefix 8 to 32. */
function loopbackCidr(given: Given): Cidr {
  const option = given.get('ipv4-loopback-cidr');
  if (option === undefined) return { family: 'ipv4', address: '127.0.0.1', prefix: 32 };
  const cidr = parseCidr(option, text(option));
  const loopback = cidr.family === 'ipv4' && ipaddr.parse(cidr.address).range() === 'loopback';
  if (!loopback || cidr.prefix < 8 || !text(option).includes('/')) {
    throw invalid(option, 'an IPv4 loopback CIDR with a prefix 8-32, such as 127.0.0.1/32');
  }
  return cidr;
}

function interfaces(given: Given) {
  const kubeVirtOption = given.get('kube-virt-interfaces');
  const kubeVirtInterfaces = kubeVirtOption ? parseInterfaceList(kubeVirtOption) : [];
  const excludeOption = given.get('exclude-interfaces');
  const excludeInterfaces = excludeOption ? parseInterfaceList(excludeOption) : [];
  const both = kubeVirtInterfaces.find((name) => excludeInterfaces.includes(name));
  if (both !== undefined) {
    given.note(
      `interface ${both} is in ${kubeVirtOption?.origin} and ${excludeOption?.origin}: its inbound TCP is outbound traffic, its outbound is not captured (as in Istio)`,
    );
  }
  return { kubeVirtInterfaces, excludeInterfaces };
}

function dns(given: Given, tcpPorts: ReturnType<typeof ports>, excluded: readonly number[]) {
  const redirect = given.flag('redirect-dns');
  const portOption = given.get('dns-port');
  const dnsPort = portOption ? parsePort(portOption, text(portOption)) : DEFAULT_DNS_PORT;
  if (portOption && !portOption.fromEnv && !redirect) {
    throw new UsageError(
      `invalid ${portOption.origin}: it only goes with --redirect-dns (no DNS is captured)`,
    );
  }
  if (given.flag('capture-all-dns') && !redirect) {
    given.note(
      `${given.get('capture-all-dns')?.origin} has no effect without --redirect-dns (as in Istio)`,
    );
  }
  if (!redirect) return { capture: 'off' } as const;
  if (excluded.includes(53)) {
    given.note(
      `${given.get('outbound-exclude-ports')?.origin} holds 53: DNS is not captured (as in Istio, exclusion wins)`,
    );
  }
  const { proxyPort, inboundCapturePort } = tcpPorts;
  if (dnsPort === proxyPort || dnsPort === inboundCapturePort) {
    const tcp =
      dnsPort === proxyPort
        ? given.name('proxy-port', '--proxy-port')
        : given.name('inbound-capture-port', '--inbound-capture-port');
    const dnsName = portOption?.origin ?? `--dns-port (default ${DEFAULT_DNS_PORT})`;
    throw new UsageError(
      `conflicting ${dnsName} and ${tcp}: port ${dnsPort} cannot take both DNS and TCP capture`,
    );
  }
  const capture = given.flag('capture-all-dns') ? 'all' : 'resolvers';
  return { capture, port: dnsPort, resolvers: [] } as const;
}

/** Native nftables, or an iptables backend: a backend asked for beside native nftables conflicts. */
function engine(given: Given): { backend: 'auto' | Backend; nativeNftables: boolean } {
  const chosen = backend(given);
  const nativeNftables = given.flag('native-nftables');
  if (nativeNftables && chosen !== 'auto') {
    const asked = given.get('iptables-backend') ?? given.get('force-iptables-binary');
    throw new UsageError(
      `conflicting ${given.get('native-nftables')?.origin} and ${asked?.origin}: native nftables uses no iptables backend`,
    );
  }
  const wait = given.get('wait');
  if (nativeNftables && wait !== undefined) {
    given.note(`${wait.origin} has no effect with native nftables: nft takes no xtables lock`);
  }
  return { backend: chosen, nativeNftables };
}

function backend(given: Given): 'auto' | Backend {
  const option = given.get('iptables-backend');
  const chosen = option
    ? parseChoice({ ...option, value: String(option.value).toLowerCase() }, [
        'auto',
        'legacy',
        'nft',
      ] as const)
    : 'auto';
  // Istio's break-glass spelling; empty means "not set".
  const forced = given.get('force-iptables-binary');
  if (forced === undefined || text(forced) === '') return chosen;
  const binary = parseChoice({ ...forced, value: text(forced) }, ['legacy', 'nft'] as const);
  if (option && chosen !== 'auto' && chosen !== binary) {
    throw new UsageError(`conflicting ${option.origin} and ${forced.origin}: choose one`);
  }
  return binary;
}

function chainPrefix(given: Given): string {
  const option = given.get('chain-prefix');
  if (option === undefined) return DEFAULT_CHAIN_PREFIX;
  const prefix = String(option.value);
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(prefix)) {
    throw invalid(option, 'letters, digits, "_" or "-", starting with a letter');
  }
  if (prefix.length > MAX_CHAIN_PREFIX)
    throw invalid(option, `at most ${MAX_CHAIN_PREFIX} characters`);
  return prefix;
}

function modes(given: Given) {
  const conflict = (a: string, b: string) => {
    if (given.flag(a) && given.flag(b)) {
      throw new UsageError(
        `conflicting ${given.get(a)?.origin} and ${given.get(b)?.origin}: choose one`,
      );
    }
  };
  conflict('cleanup', 'check');
  conflict('check', 'dry-run');
  for (const other of ['cleanup', 'check', 'dry-run']) conflict('run-validation', other);
  if (given.flag('skip-rule-apply') && !given.flag('run-validation')) {
    throw new UsageError(
      `invalid ${given.get('skip-rule-apply')?.origin}: it only goes with --run-validation (there would be nothing to do)`,
    );
  }
  const nsOption = given.get('network-namespace');
  const networkNamespace = nsOption && text(nsOption) !== '' ? text(nsOption) : undefined;
  if (nsOption && networkNamespace !== undefined && !networkNamespace.startsWith('/')) {
    throw invalid(nsOption, 'an absolute path such as /var/run/netns/pod');
  }
  if (networkNamespace !== undefined && given.flag('run-validation')) {
    throw new UsageError(
      `conflicting ${nsOption?.origin} and ${given.get('run-validation')?.origin}: the validation probes the namespace mesh-init runs in`,
    );
  }
  for (const [flag, why] of [
    ['force-apply', 'mesh-init always reconciles'],
    ['reconcile', 'mesh-init always replaces what an earlier run left'],
    ['cni-mode', 'mesh-init waits for the xtables lock in every mode'],
  ] as const) {
    if (given.flag(flag))
      given.note(`${given.get(flag)?.origin} is accepted without effect: ${why}`);
  }
  return {
    dryRun: given.flag('dry-run'),
    mode: given.flag('cleanup') ? 'cleanup' : given.flag('check') ? 'check' : 'apply',
    validate: given.flag('run-validation'),
    skipRuleApply: given.flag('skip-rule-apply'),
    networkNamespace,
  } as const;
}

function retry(given: Given): RetryPolicy {
  const waitOption = given.get('wait');
  const retriesOption = given.get('max-retries');
  const intervalOption = given.get('retry-interval');
  return {
    waitSeconds: waitOption ? parseBounded(waitOption, 3600) : 10,
    maxRetries: retriesOption ? parseBounded(retriesOption, 100) : 3,
    intervalMs: intervalOption ? parseSeconds(intervalOption, 60, true) : 1000,
  };
}

function probe(
  given: Given,
  ipv6: 'auto' | boolean,
  tcpPorts: ReturnType<typeof ports>,
): ValidationProbe {
  const addressOption = given.get('probe-address');
  const addresses = addressOption ? parseProbeAddresses(addressOption) : {};
  const ipv6Option = given.get('ipv6');
  if (addressOption && addresses.ipv6 !== undefined && ipv6 === false && ipv6Option) {
    throw new UsageError(
      `conflicting ${addressOption.origin} and ${ipv6Option.origin}: IPv6 address "${addresses.ipv6}" given but IPv6 capture is off`,
    );
  }
  const timeoutOption = given.get('probe-timeout');
  const probePort = port(given, 'probe-port', 15002);
  // Without capture, a probe to the port it should land on would land there anyway.
  const { proxyPort, inboundCapturePort } = tcpPorts;
  if (given.flag('run-validation') && [proxyPort, inboundCapturePort].includes(probePort)) {
    const name = given.name('probe-port', '--probe-port (default 15002)');
    const taken =
      probePort === proxyPort
        ? given.name('proxy-port', '--proxy-port')
        : given.name('inbound-capture-port', '--inbound-capture-port');
    throw new UsageError(
      `conflicting ${name} and ${taken}: the probe must connect to a port other than the one it should land on (${probePort})`,
    );
  }
  return {
    addresses,
    port: probePort,
    timeoutMs: timeoutOption ? parseSeconds(timeoutOption, 300, false) : 5000,
  };
}

function logFormat(given: Given): 'text' | 'json' {
  const option = given.get('log-format');
  const chosen = option ? parseChoice(option, ['text', 'json'] as const) : undefined;
  // --log_as_json is a flag: it beats MESH_INIT_LOG_FORMAT and conflicts only with --log-format.
  if (given.flag('log_as_json') && chosen === 'text' && !option?.fromEnv) {
    throw new UsageError(
      `conflicting ${given.get('log_as_json')?.origin} and ${option?.origin}: choose one`,
    );
  }
  return given.flag('log_as_json') ? 'json' : (chosen ?? 'text');
}

/**
 * The one place where user input is checked. Every message names the flag (and the
 * variable it came from) and the bad value; the result is fully typed and trusted.
 * Where Istio accepts an option without effect, or lets one win over another, so
 * does mesh-init, and the config carries a note that the log shows.
 */
export function validateConfig(options: GivenOptions): Config {
  const given = new Given(options);
  const inboundConfig = inbound(given);
  const tcpPorts = ports(given);
  const ipv6 = families(given);
  const outboundConfig = outbound(given, ipv6);
  const config: Config = {
    ...tcpPorts,
    ...owners(given),
    ...inboundConfig,
    ...outboundConfig,
    ...interfaces(given),
    ...modes(given),
    dns: dns(given, tcpPorts, outboundConfig.outboundExcludePorts),
    dropInvalid: given.flag('drop-invalid'),
    ipv6,
    dualStack: given.flag('dual-stack'),
    ...engine(given),
    chainPrefix: chainPrefix(given),
    retry: retry(given),
    probe: probe(given, ipv6, tcpPorts),
    logFormat: logFormat(given),
    notes: given.notes,
  };
  return config;
}
