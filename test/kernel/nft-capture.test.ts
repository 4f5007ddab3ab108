/**
 * --native-nftables on a real kernel: where real TCP/UDP connections land, for
 * IPv4 and IPv6 in one inet ruleset; the capture options; -c and -k with a second
 * peer behind the pod's eth1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDRESSES, type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const OUT = 15001;
const IN = 15006;
const APP = 8080;
const EXCLUDED = 8081;
const FAMILIES: Family[] = ['ipv4', 'ipv6'];
const ep = (family: Family, host: string, port: number) =>
  family === 'ipv4' ? `${host}:${port}` : `[${host}]:${port}`;
const app = { uid: 1000 };

kernelSuite('native nftables: capture', () => {
  let net: Pod;

  beforeAll(async () => {
    net = await Pod.create();
    await net.serve('pod', 'proxy-outbound', 'tcp', [OUT], { uid: PROXY_UID });
    await net.serve('pod', 'proxy-inbound', 'tcp', [IN], { uid: PROXY_UID });
    await net.serve('pod', 'app', 'tcp', [APP, EXCLUDED], app);
    await net.serve('peer', 'peer', 'tcp', [80, APP]);
    await net.serve('peer', 'peer-udp', 'udp', [5353]);
    const result = await net.meshInit([
      ...['--native-nftables', '-p', String(OUT), '-z', String(IN), '-u', String(PROXY_UID)],
      ...['-d', String(EXCLUDED), '--ipv6', 'true'],
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('with the native nftables backend');
  });
  afterAll(async () => net?.destroy());

  it('one inet table holds both families; no iptables table was touched', async () => {
    expect(await net.nftRuleset()).toMatch(/^table inet istio-proxy-nat \{$/m);
    expect(await net.natTable('nft', 'ipv4')).not.toContain('ISTIO');
    expect(await net.natTable('legacy', 'ipv6')).not.toContain('ISTIO');
  });

  for (const family of FAMILIES) {
    const a = ADDRESSES[family];

    it(`${family}: an app's outbound TCP lands on the proxy, which sees the original destination`, async () => {
      const report = await net.connect('pod', 'tcp', a.peer, 80, app);
      expect(report.server).toBe('proxy-outbound');
      expect(report.original).toBe(ep(family, a.peer, 80));
    });

    it(`${family}: inbound TCP lands on the inbound port, except excluded ports`, async () => {
      const inbound = await net.connect('peer', 'tcp', a.pod, APP);
      expect(inbound.server).toBe('proxy-inbound');
      expect(inbound.original).toBe(ep(family, a.pod, APP));
      const excluded = await net.connect('peer', 'tcp', a.pod, EXCLUDED);
      expect(excluded.server).toBe('app');
      expect(excluded.original).toBe(excluded.local);
    });

    it(`${family}: traffic of the proxy UID or GID is never redirected`, async () => {
      expect((await net.connect('pod', 'tcp', a.peer, 80, { uid: PROXY_UID })).server).toBe('peer');
      const byGid = await net.connect('pod', 'tcp', a.peer, 80, { uid: 1000, gid: PROXY_UID });
      expect(byGid.server).toBe('peer');
    });

    it(`${family}: localhost between the pod's containers is not captured`, async () => {
      const report = await net.connect('pod', 'tcp', a.loopback, APP, app);
      expect(report.server).toBe('app');
      expect(report.original).toBe(report.local);
    });

    it(`${family}: the proxy calling its own pod IP goes to the inbound port; the app calling it does not`, async () => {
      const proxy = await net.connect('pod', 'tcp', a.pod, APP, { uid: PROXY_UID });
      expect(proxy.server).toBe('proxy-inbound');
      expect(proxy.original).toBe(ep(family, a.pod, APP));
      expect((await net.connect('pod', 'tcp', a.pod, APP, app)).server).toBe('app');
    });

    it(`${family}: the proxy's passthrough from ${a.passthrough} reaches the app`, async () => {
      const report = await net.connect('pod', 'tcp', a.pod, APP, {
        uid: PROXY_UID,
        source: a.passthrough,
      });
      expect(report.server).toBe('app');
    });

    it(`${family}: UDP is untouched`, async () => {
      expect((await net.connect('pod', 'udp', a.peer, 5353, app)).server).toBe('peer-udp');
    });
  }

  it('--check reads the live tables back as planned', async () => {
    const check = await net.meshInit([
      ...['--native-nftables', '-p', String(OUT), '-z', String(IN), '-u', String(PROXY_UID)],
      ...['-d', String(EXCLUDED), '--ipv6', 'true', '--check'],
    ]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
  });
});

kernelSuite('native nftables: a single-stack pod', () => {
  it("captures IPv4 and leaves the pod's IPv6 alone, as the iptables backends do", async () => {
    const net = await Pod.create();
    try {
      await net.serve('pod', 'proxy', 'tcp', [OUT], { uid: PROXY_UID });
      await net.serve('peer', 'peer', 'tcp', [80]);
      const result = await net.meshInit(['--native-nftables', '--ipv6', 'false']);
      expect(result.exitCode, result.stderr).toBe(0);
      expect((await net.connect('pod', 'tcp', ADDRESSES.ipv4.peer, 80, app)).server).toBe('proxy');
      expect((await net.connect('pod', 'tcp', ADDRESSES.ipv6.peer, 80, app)).server).toBe('peer');
    } finally {
      await net.destroy();
    }
  });
});

kernelSuite('native nftables: capture options', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
    await net.serve('pod', 'proxy', 'tcp', [OUT], { uid: PROXY_UID });
    await net.serve('pod', 'app', 'tcp', [APP, EXCLUDED], app);
    await net.serve('peer', 'peer', 'tcp', [80, 443, APP]);
  });
  afterAll(async () => net?.destroy());

  const init = async (...args: string[]) => {
    const result = await net.meshInit(['--native-nftables', '--ipv6', 'true', ...args]);
    expect(result.exitCode, result.stderr).toBe(0);
  };
  const landsOn = async (from: 'pod' | 'peer', host: string, port: number) =>
    (await net.connect(from, 'tcp', host, port, from === 'pod' ? app : {})).server;

  it.each(FAMILIES)('%s: -b with a port list captures only those inbound ports', async (family) => {
    await init('-b', String(APP));
    expect(await landsOn('peer', ADDRESSES[family].pod, APP)).toBe('proxy');
    expect(await landsOn('peer', ADDRESSES[family].pod, EXCLUDED)).toBe('app');
  });

  it.each(FAMILIES)('%s: -i with a CIDR list captures only those; -x excludes', async (family) => {
    const a = ADDRESSES[family];
    const subnet = family === 'ipv4' ? '10.200.1.0/24' : 'fd00:200:1::/64';
    const other = family === 'ipv4' ? '10.99.0.0/16' : 'fd00:99::/64';
    await init('-i', subnet, '-x', a.peer);
    expect(await landsOn('pod', a.peer, 80)).toBe('peer');
    await init('-i', subnet);
    expect(await landsOn('pod', a.peer, 80)).toBe('proxy');
    await init('-i', other);
    expect(await landsOn('pod', a.peer, 80)).toBe('peer');
  });

  it.each(FAMILIES)(
    '%s: -o excludes ports; -q includes them even when -i captures nothing',
    async (family) => {
      const a = ADDRESSES[family];
      await init('-o', '443');
      expect(await landsOn('pod', a.peer, 443)).toBe('peer');
      expect(await landsOn('pod', a.peer, 80)).toBe('proxy');
      await init('-i', '', '-q', '443');
      expect(await landsOn('pod', a.peer, 443)).toBe('proxy');
      expect(await landsOn('pod', a.peer, 80)).toBe('peer');
    },
  );
});

describe('native nftables: interfaces', () => {
  const ETH1 = {
    ipv4: { pod: '10.200.2.1', peer2: '10.200.2.2' },
    ipv6: { pod: 'fd00:200:2::1', peer2: 'fd00:200:2::2' },
  } as const;

  kernelSuite('-c and -k with a second peer behind eth1', () => {
    let net: Pod;
    beforeAll(async () => {
      net = await Pod.create();
      await net.addSecondPeer();
      await net.exec('pod', ['ip', 'addr', 'add', `${ETH1.ipv6.pod}/64`, 'dev', 'eth1', 'nodad']);
      await net.exec('peer2', [
        'ip',
        'addr',
        'add',
        `${ETH1.ipv6.peer2}/64`,
        'dev',
        'eth0',
        'nodad',
      ]);
      await net.serve('pod', 'proxy-outbound', 'tcp', [OUT], { uid: PROXY_UID });
      await net.serve('pod', 'proxy-inbound', 'tcp', [IN], { uid: PROXY_UID });
      await net.serve('pod', 'app', 'tcp', [APP], app);
      await net.serve('peer', 'peer', 'tcp', [80]);
      await net.serve('peer2', 'peer2', 'tcp', [80]);
    });
    afterAll(async () => net?.destroy());

    const init = async (...args: string[]) => {
      const result = await net.meshInit([
        ...['--native-nftables', '-p', String(OUT), '-z', String(IN), '--ipv6', 'true'],
        ...args,
      ]);
      expect(result.exitCode, result.stderr).toBe(0);
    };

    it.each(FAMILIES)(
      '%s -c: nothing in or out of an excluded interface is captured',
      async (family) => {
        await init('-c', 'eth1');
        const e = ETH1[family];
        expect((await net.connect('peer2', 'tcp', e.pod, APP)).server).toBe('app');
        expect((await net.connect('pod', 'tcp', e.peer2, 80, app)).server).toBe('peer2');
        const a = ADDRESSES[family];
        expect((await net.connect('peer', 'tcp', a.pod, APP)).server).toBe('proxy-inbound');
        expect((await net.connect('pod', 'tcp', a.peer, 80, app)).server).toBe('proxy-outbound');
      },
    );

    it.each(FAMILIES)(
      '%s -k: TCP from a VM interface is outbound, with its destination',
      async (family) => {
        await init('-k', 'eth1+');
        const e = ETH1[family];
        const vm = await net.connect('peer2', 'tcp', e.pod, APP);
        expect(vm.server).toBe('proxy-outbound');
        expect(vm.original).toBe(ep(family, e.pod, APP));
      },
    );

    it('--check reads -k, -c and wildcards back as planned', async () => {
      const args = ['-k', 'eth1', '-c', 'veth+', '-i', '10.200.2.0/24,fd00:200:2::/64'];
      await init(...args);
      const check = await net.meshInit([
        ...['--native-nftables', '-p', String(OUT), '-z', String(IN), '--ipv6', 'true'],
        ...args,
        '--check',
      ]);
      expect(check.exitCode, check.stdout).toBe(0);
    });
  });
});
