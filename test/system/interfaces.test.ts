/** What --ipv6 auto reads: the families of the pod's addresses that are neither loopback nor link-local. */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { addressFamilies, localAddresses } from '../../src/system/interfaces.js';

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

describe('addressFamilies', () => {
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
  ])('%s: IPv6 %s', (_name, interfaces, expected) => {
    expect(addressFamilies(interfaces).ipv6).toBe(expected);
  });

  it.each<[string, Interfaces, boolean]>([
    ['loopback only', { lo }, false],
    ['IPv6-only pod', { lo, eth0: [v6('2001:db8::7')] }, false],
    ['IPv4 link-local only (169.254/16)', { eth0: [v4('169.254.1.2')] }, false],
    ['internal non-loopback IPv4 is ignored', { dummy: [v4('10.9.9.9', true)] }, false],
    ['IPv4 pod', { lo, eth0: [v4('10.244.1.7')] }, true],
    ['dual-stack pod', { lo, eth0: [v4('10.244.1.7'), v6('fd00:10:244:1::7')] }, true],
  ])('%s: IPv4 %s', (_name, interfaces, expected) => {
    expect(addressFamilies(interfaces).ipv4).toBe(expected);
  });

  // An earlier version tested the text with /^fe[89ab]/, which also matches compressed
  // addresses whose first group is only three digits, e.g. fe8::1 = 0fe8::1, not in fe80::/10.
  it('0fe8::1 written fe8::1 is not link-local', () => {
    expect(addressFamilies({ eth0: [v6('fe8::1')] }).ipv6).toBe(true);
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
