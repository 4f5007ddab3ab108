import type { NetworkInterfaceInfo } from 'node:os';
import ipaddr from 'ipaddr.js';

/** True when some interface has an IPv6 address that is not loopback and not link-local (fe80::/10). */
export function hasGlobalIpv6(
  interfaces: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>,
): boolean {
  return Object.values(interfaces).some((addresses) =>
    (addresses ?? []).some(
      (a) =>
        a.family === 'IPv6' &&
        !a.internal &&
        ipaddr.IPv6.isValid(a.address.split('%')[0] ?? '') &&
        !['linkLocal', 'loopback'].includes(
          ipaddr.IPv6.parse(a.address.split('%')[0] ?? '').range(),
        ),
    ),
  );
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
