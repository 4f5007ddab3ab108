/**
 * The pod's resolvers, read from /etc/resolv.conf the way the C library reads it:
 * DNS capture sends queries to them to the proxy's DNS port. Pure; the shell reads
 * the file.
 */
import ipaddr from 'ipaddr.js';
import type { Cidr } from './net.js';

export interface Resolvers {
  /** Where the C library sends queries, as host CIDRs of the family it uses. */
  readonly resolvers: readonly Cidr[];
  /** `nameserver` values no address could be made of, for the log. */
  readonly skipped: readonly string[];
}

/** An IPv6 text with its trailing dotted quad (inet_pton takes only four decimal parts) as two hex groups. */
export function withoutDottedQuad(text: string): string | undefined {
  const at = text.lastIndexOf(':');
  const quad = text.slice(at + 1);
  if (!quad.includes('.')) return text;
  if (!ipaddr.IPv4.isValidFourPartDecimal(quad)) return undefined;
  const [a = 0, b = 0, c = 0, d = 0] = quad.split('.').map(Number);
  const hex = (n: number) => n.toString(16);
  return `${text.slice(0, at + 1)}${hex(a * 256 + b)}:${hex(c * 256 + d)}`;
}

/** A nameserver value the way the C library reads it (inet_aton / inet_pton, zone ignored). */
function nameserverAddress(value: string): Cidr | undefined {
  if (ipaddr.IPv4.isValid(value)) {
    // inet_aton's forms too: 010.0.0.1 is 8.0.0.1, as the C library reads it.
    return { family: 'ipv4', address: ipaddr.IPv4.parse(value).toString(), prefix: 32 };
  }
  // Only IPv6 has zones (fe80::1%eth0); the address alone still matches.
  const [host = ''] = value.split('%');
  // ipaddr.js reads every embedded dotted quad (::127.0.0.1) as IPv4-mapped: the
  // quad is written as its two hex groups first, so only ::ffff:0:0/96 is mapped.
  const plain = withoutDottedQuad(host);
  if (plain === undefined || !ipaddr.IPv6.isValid(plain)) return undefined;
  const v6 = ipaddr.IPv6.parse(plain);
  if (v6.isIPv4MappedAddress()) {
    return { family: 'ipv4', address: v6.toIPv4Address().toString(), prefix: 32 };
  }
  return { family: 'ipv6', address: v6.toString(), prefix: 128 };
}

/** The `nameserver` lines of a resolv.conf. A link-local address's zone is dropped: its address still matches. */
export function parseResolvConf(text: string): Resolvers {
  const resolvers: Cidr[] = [];
  const skipped: string[] = [];
  for (const line of text.split('\n')) {
    const [keyword, value = ''] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver') continue;
    const cidr = nameserverAddress(value);
    if (cidr === undefined) skipped.push(value);
    else if (!resolvers.some((r) => r.address === cidr.address)) resolvers.push(cidr);
  }
  return { resolvers, skipped };
}
