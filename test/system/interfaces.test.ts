/** When --ipv6 auto captures IPv6: the pod has an IPv6 address that is neither loopback nor link-local. */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { hasGlobalIpv6, localAddresses } from '../../src/system/interfaces.js';

const v4 = (address: string, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: '255.255.255.0',
  family: 'IPv4',
  mac: '02:42:ac:11:00:02',
  internal,
  cidr: `${address}/24`,
});
const v6 = (address: string, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: 'ffff:ffff:ffff:ffff::',
  family: 'IPv6',
  mac: '02:42:ac:11:00:02',
  internal,
  cidr: `${address}/64`,
  scopeid: address.startsWith('fe80') ? 2 : 0,
});

type Interfaces = Record<string, NetworkInterfaceInfo[] | undefined>;
const lo = [v4('127.0.0.1', true), v6('::1', true)];

describe('hasGlobalIpv6', () => {
  it.each<[string, Interfaces, boolean]>([
    ['no interfaces', {}, false],
    ['loopback only', { lo }, false],
    ['IPv4-only pod', { lo, eth0: [v4('10.244.1.7')] }, false],
    [
      'IPv4 pod with a link-local IPv6',
      { lo, eth0: [v4('10.244.1.7'), v6('fe80::42:acff:fe11:2')] },
      false,
    ],
    ['link-local upper case', { eth0: [v6('FE80::1')] }, false],
    ['link-local fe9x', { eth0: [v6('fe90::1')] }, false],
    ['link-local febf (top of fe80::/10)', { eth0: [v6('febf::1')] }, false],
    ['an interface with no address list', { eth0: undefined }, false],
    ['dual-stack pod (ULA)', { lo, eth0: [v4('10.244.1.7'), v6('fd00:10:244:1::7')] }, true],
    ['IPv6-only pod (global)', { lo, eth0: [v6('2001:db8::7')] }, true],
    ['site-local fec0::/10 is not link-local', { eth0: [v6('fec0::1')] }, true],
    [
      'global address on a second interface',
      { lo, eth0: [v4('10.0.0.2')], net1: [v6('2001:db8:1::2')] },
      true,
    ],
    ['internal non-loopback IPv6 is ignored', { dummy: [v6('fd00::1', true)] }, false],
  ])('%s → %s', (_name, interfaces, expected) => {
    expect(hasGlobalIpv6(interfaces)).toBe(expected);
  });

  // src/interfaces.ts tests the text with /^fe[89ab]/, which also matches compressed
  // addresses whose first group is only three digits, e.g. fe8::1 = 0fe8::1, not in fe80::/10.
  it('0fe8::1 written fe8::1 is not link-local', () => {
    expect(hasGlobalIpv6({ eth0: [v6('fe8::1')] })).toBe(true);
  });
});

describe('localAddresses', () => {
  it('flattens every interface, lo included, with prefix lengths and without zone ids', () => {
    const linkLocal = { ...v6('fe80::1'), address: 'fe80::1%eth0', cidr: 'fe80::1/64' };
    expect(
      localAddresses({
        lo: [...lo, { ...v6('::6', true), cidr: '::6/128' }],
        eth0: [v4('10.244.1.7'), linkLocal],
        eth1: undefined,
      }),
    ).toEqual([
      { name: 'lo', family: 'ipv4', address: '127.0.0.1', prefix: 24 },
      { name: 'lo', family: 'ipv6', address: '::1', prefix: 64 },
      { name: 'lo', family: 'ipv6', address: '::6', prefix: 128 },
      { name: 'eth0', family: 'ipv4', address: '10.244.1.7', prefix: 24 },
      { name: 'eth0', family: 'ipv6', address: 'fe80::1', prefix: 64 },
    ]);
  });

  it('skips what it cannot read: no cidr (old Node), no address', () => {
    expect(
      localAddresses({
        eth0: [
          { ...v4('10.0.0.1'), cidr: null },
          { ...v4(''), cidr: '/24' },
        ],
      }),
    ).toEqual([]);
  });
});
