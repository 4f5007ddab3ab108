import type { NetworkInterfaceInfo } from 'node:os';
import ipaddr from 'ipaddr.js';

/** Which families the pod has an address of that is neither loopback nor link-local. */
export interface AddressFamilies {
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

/** What the address is, once any zone (`fe80::1%eth0`) is dropped. */
function rangeOf(address: string): string | undefined {
  const plain = address.split('%')[0] ?? '';
  return ipaddr.isValid(plain) ? ipaddr.parse(plain).range() : undefined;
}

/** The families of the interfaces' global addresses (not loopback, not link-local). */
export function addressFamilies(
  interfaces: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>,
): AddressFamilies {
  const global = Object.values(interfaces)
    .flatMap((addresses) => addresses ?? [])
    .filter(
      (a) => !a.internal && !['linkLocal', 'loopback', undefined].includes(rangeOf(a.address)),
    );
  return {
    ipv4: global.some((a) => a.family === 'IPv4'),
    ipv6: global.some((a) => a.family === 'IPv6'),
  };
}

/** One address of the pod, with the interface that holds it and its prefix length. */
export interface LocalAddress {
  readonly name: string;
  readonly family: 'ipv4' | 'ipv6';
  readonly address: string;
  readonly prefix: number;
}

/** Every address of every interface (lo included), as os.networkInterfaces() reports them. */
export function localAddresses(
  interfaces: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>,
): LocalAddress[] {
  return Object.entries(interfaces).flatMap(([name, addresses]) =>
    (addresses ?? []).flatMap((a): LocalAddress[] => {
      const address = a.address.split('%')[0] ?? '';
      const prefix = Number(a.cidr?.split('/')[1]);
      if (!ipaddr.isValid(address) || !Number.isInteger(prefix)) return [];
      return [{ name, family: a.family === 'IPv4' ? 'ipv4' : 'ipv6', address, prefix }];
    }),
  );
}
