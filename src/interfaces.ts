import type { NetworkInterfaceInfo } from 'node:os';

/** True when some interface has an IPv6 address that is not loopback and not link-local (fe80::/10). */
export function hasGlobalIpv6(
  interfaces: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>,
): boolean {
  return Object.values(interfaces).some((addresses) =>
    (addresses ?? []).some(
      (a) => a.family === 'IPv6' && !a.internal && !/^fe[89ab]/i.test(a.address),
    ),
  );
}
