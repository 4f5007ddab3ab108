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
