/**
 * Issue 5's features with --native-nftables on a real kernel, IPv4 and IPv6:
 * TPROXY (a transparent listener sees the original destination and the client's
 * address), DNS capture (real lookups through resolv.conf, conntrack zones) and
 * --drop-invalid (a SYN+FIN segment counted by the drop rule).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDRESSES, type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const FAMILIES: Family[] = ['ipv4', 'ipv6'];
const app = { uid: 1000 };
const proxy = { uid: PROXY_UID };
const at = (family: Family, host: string, port: number | string) =>
  family === 'ipv4' ? `${host}:${port}` : `[${host}]:${port}`;

kernelSuite('native nftables: TPROXY', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
    // A TPROXY proxy needs IP_TRANSPARENT, so it has CAP_NET_ADMIN: here it runs as root.
    await net.serve('pod', 'proxy-inbound', 'tcp-transparent', [15006]);
    await net.serve('pod', 'proxy-outbound', 'tcp', [15001], proxy);
    await net.serve('pod', 'app', 'tcp', [8080, 9090], app);
    await net.serve('peer', 'peer', 'tcp', [80]);
  });
  afterAll(async () => net?.destroy());

  const args = [
    ...['--native-nftables', '-p', '15001', '-z', '15006', '-u', String(PROXY_UID)],
    ...['-m', 'TPROXY', '-d', '9090', '--ipv6', 'true'],
  ];
  const init = async (...extra: string[]) => {
    const result = await net.meshInit([...args, ...extra]);
    expect(result.exitCode, result.stderr).toBe(0);
    return result;
  };

  it('applies with the policy route; a re-run adds no second ip rule; --check agrees', async () => {
    await init();
    await init();
    for (const ip of ['-4', '-6']) {
      const rules = await net.exec('pod', ['ip', ip, 'rule', 'list']);
      expect(rules.match(/fwmark 0x539 lookup 133/g)).toHaveLength(1);
    }
    const check = await net.meshInit([...args, '--check']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
  });

  it.each(FAMILIES)(
    '%s: inbound TCP lands on the transparent listener, destination and source kept',
    async (family) => {
      const a = ADDRESSES[family];
      const report = await net.connect('peer', 'tcp', a.pod, 8080);
      expect(report.server).toBe('proxy-inbound');
      expect(report.local).toBe(at(family, a.pod, 8080));
      expect(report.peer?.startsWith(at(family, a.peer, ''))).toBe(true);
      expect(report.original).toBe(report.local);
    },
  );

  it.each(FAMILIES)(
    '%s: excluded ports, localhost and the pod itself stay direct',
    async (family) => {
      const a = ADDRESSES[family];
      expect((await net.connect('peer', 'tcp', a.pod, 9090)).server).toBe('app');
      expect((await net.connect('pod', 'tcp', a.loopback, 8080, app)).server).toBe('app');
      expect((await net.connect('pod', 'tcp', a.pod, 8080, app)).server).toBe('app');
    },
  );

  it.each(FAMILIES)(
    '%s: outbound TCP still goes to the proxy; the proxy own is not',
    async (family) => {
      const a = ADDRESSES[family];
      expect((await net.connect('pod', 'tcp', a.peer, 80, app)).server).toBe('proxy-outbound');
      expect((await net.connect('pod', 'tcp', a.peer, 80, proxy)).server).toBe('peer');
    },
  );

  it('later packets of a proxied connection take the established fast path', async () => {
    const fastPath = 'packets of established connections go straight to their socket';
    const before = await net.nftPackets('istio-proxy-mangle', fastPath);
    await net.connect('peer', 'tcp', ADDRESSES.ipv6.pod, 8080);
    expect(await net.nftPackets('istio-proxy-mangle', fastPath)).toBeGreaterThan(before);
  });

  it('a re-run without TPROXY replaces the tables without it and removes the route', async () => {
    const result = await net.meshInit([
      ...['--native-nftables', '-p', '15001', '-z', '15006', '--ipv6', 'true'],
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('an earlier run used TPROXY');
    expect(await net.nftRuleset()).not.toContain('istio-proxy-mangle');
    for (const ip of ['-4', '-6']) {
      expect(await net.exec('pod', ['ip', ip, 'rule', 'list'])).not.toContain('lookup 133');
    }
    // REDIRECT now: the connection is NATed to the port, its destination in conntrack.
    const report = await net.connect('peer', 'tcp', ADDRESSES.ipv4.pod, 8080);
    expect(report.server).toBe('proxy-inbound');
    expect(report.local).toBe(at('ipv4', ADDRESSES.ipv4.pod, 15006));
    expect(report.original).toBe(at('ipv4', ADDRESSES.ipv4.pod, 8080));
  });

  it('--cleanup removes the tables, the ip rule and the route', async () => {
    await init();
    const result = await net.meshInit([...args, '--cleanup']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(await net.nftRuleset()).not.toContain('istio-proxy');
    for (const ip of ['-4', '-6']) {
      expect(await net.exec('pod', ['ip', ip, 'rule', 'list'])).not.toContain('lookup 133');
      expect(await net.exec('pod', ['ip', ip, 'route', 'show', 'table', '133'])).toBe('');
    }
    expect((await net.connect('peer', 'tcp', ADDRESSES.ipv4.pod, 8080)).server).toBe('app');
  });
});

const UPSTREAM = '192.0.2.53'; // what the resolver on the peer answers
const PROXY_ANSWER = '192.0.2.15'; // what the proxy's DNS server answers
const OTHER = { ipv4: '10.200.1.3', ipv6: 'fd00:200:1::3' }; // not in resolv.conf

kernelSuite('native nftables: DNS capture', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
    for (const [family, address] of Object.entries(OTHER)) {
      const prefix = family === 'ipv4' ? '24' : '64';
      await net.exec('peer', ['ip', 'addr', 'add', `${address}/${prefix}`, 'dev', 'eth0', 'nodad']);
    }
    await net.serve('peer', 'resolver', { dns: UPSTREAM }, [53]);
    await net.serve('peer', 'resolver-tcp', 'tcp', [53]);
    await net.serve('pod', 'proxy-dns', { dns: PROXY_ANSWER, loopback: true }, [15053], proxy);
    await net.serve('pod', 'proxy-dns-tcp', 'tcp', [15053], proxy);
    await net.serve('pod', 'proxy-outbound', 'tcp', [15001], proxy);
  });
  afterAll(async () => net?.destroy());

  const args = ['--native-nftables', '-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'];

  for (const family of FAMILIES) {
    describe(family, () => {
      const resolver = ADDRESSES[family].peer;
      beforeAll(async () => {
        net.setResolvConf(`nameserver ${resolver}\noptions timeout:1 attempts:1\n`);
        const result = await net.meshInit([...args, '--redirect-dns']);
        expect(result.exitCode, result.stderr).toBe(0);
      });

      it("an app's lookup is answered by the proxy; the proxy's own reaches the resolver", async () => {
        expect(await net.probe('pod', 'resolve', ['svc.test'], app)).toEqual({
          addresses: [PROXY_ANSWER],
        });
        expect(await net.probe('pod', 'query', [resolver, 'svc.test'], proxy)).toEqual({
          addresses: [UPSTREAM],
        });
      });

      it('DNS over TCP to the resolver goes to the DNS port too', async () => {
        expect((await net.connect('pod', 'tcp', resolver, 53, app)).server).toBe('proxy-dns-tcp');
      });

      it('queries and answers are kept in their conntrack zones', async () => {
        const zone = (why: string) => net.nftPackets('istio-proxy-raw', why);
        const apps = await zone("the apps' DNS queries are in zone 2");
        const upstream = await zone("the proxy's upstream DNS queries are in zone 1");
        const answers = await zone('answers of the resolvers to the proxy are in zone 1');
        await net.probe('pod', 'query', [resolver, 'svc.test'], app);
        await net.probe('pod', 'query', [resolver, 'svc.test'], proxy);
        expect(await zone("the apps' DNS queries are in zone 2")).toBeGreaterThan(apps);
        expect(await zone("the proxy's upstream DNS queries are in zone 1")).toBeGreaterThan(
          upstream,
        );
        expect(await zone('answers of the resolvers to the proxy are in zone 1')).toBeGreaterThan(
          answers,
        );
      });

      it('--check agrees; only the resolvers are captured, unless --capture-all-dns', async () => {
        const check = await net.meshInit([...args, '--redirect-dns', '--check']);
        expect(check.exitCode, check.stdout + check.stderr).toBe(0);
        const other = OTHER[family];
        expect(await net.probe('pod', 'query', [other, 'svc.test'], app)).toEqual({
          addresses: [UPSTREAM],
        });
        const all = await net.meshInit([...args, '--redirect-dns', '--capture-all-dns']);
        expect(all.exitCode, all.stderr).toBe(0);
        expect(await net.probe('pod', 'query', [other, 'svc.test'], app)).toEqual({
          addresses: [PROXY_ANSWER],
        });
      });

      it('a re-run without --redirect-dns takes DNS capture away, raw table and all', async () => {
        const result = await net.meshInit(args);
        expect(result.exitCode, result.stderr).toBe(0);
        expect(await net.probe('pod', 'resolve', ['svc.test'], app)).toEqual({
          addresses: [UPSTREAM],
        });
        const ruleset = await net.nftRuleset();
        expect(ruleset).not.toContain('istio-proxy-raw');
        expect(ruleset).not.toContain('istio-output-dns');
      });
    });
  }
});

kernelSuite('native nftables: --drop-invalid', () => {
  const DROPPED = 'a packet conntrack cannot place would skip NAT and so the proxy';
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
    await net.serve('pod', 'proxy', 'tcp', [15001], proxy);
    await net.serve('pod', 'app', 'tcp', [8080], app);
  });
  afterAll(async () => net?.destroy());

  const init = async (...extra: string[]) => {
    const result = await net.meshInit([
      ...['--native-nftables', '-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'],
      ...extra,
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
  };

  it.each(FAMILIES)(
    '%s: an INVALID segment is dropped, a connection is still captured',
    async (family) => {
      const a = ADDRESSES[family];
      await init('--drop-invalid');
      const before = await net.nftPackets('istio-proxy-mangle', DROPPED);
      expect(await net.probe('peer', 'invalid', [a.peer, a.pod, '8080'])).toEqual({ sent: 1 });
      await expect.poll(() => net.nftPackets('istio-proxy-mangle', DROPPED)).toBe(before + 1);
      expect((await net.connect('peer', 'tcp', a.pod, 8080)).server).toBe('proxy');
    },
  );

  it('a re-run without --drop-invalid removes the mangle table', async () => {
    await init('--drop-invalid');
    await init();
    expect(await net.nftRuleset()).not.toContain('istio-proxy-mangle');
  });
});

// Docker's embedded DNS (127.0.0.11) has a NAT rule of its own in the pod, put there
// by iptables (either backend) before mesh-init runs, that sends queries to another
// port. Capture must come first, and the answer must meet the proxy's query in its
// conntrack zone.
kernelSuite('native nftables: DNS with a resolver on lo behind its own DNAT', () => {
  for (const backend of ['legacy', 'nft'] as const) {
    describe(`the DNAT rule in iptables-${backend}`, () => {
      const LOCAL_ANSWER = '192.0.2.11';
      let net: Pod;
      beforeAll(async () => {
        net = await Pod.create();
        net.setResolvConf('nameserver 127.0.0.11\noptions timeout:1 attempts:1\n');
        await net.serve('pod', 'local-resolver', { dns: LOCAL_ANSWER }, [5353]);
        await net.serve('pod', 'proxy-dns', { dns: PROXY_ANSWER, loopback: true }, [15053], proxy);
        const dnat =
          '-A OUTPUT -d 127.0.0.11/32 -p udp --dport 53 -j DNAT --to-destination 127.0.0.11:5353';
        await net.restoreForeign(backend, 'ipv4', ['*nat', dnat, 'COMMIT', ''].join('\n'));
        // Twice: a re-run makes its tables anew, hooks and all, and must still come first.
        for (let run = 0; run < 2; run++) {
          const result = await net.meshInit([
            ...['--native-nftables', '-u', String(PROXY_UID), '--ipv6', 'false', '--redirect-dns'],
          ]);
          expect(result.exitCode, result.stderr).toBe(0);
        }
      });
      afterAll(async () => net?.destroy());

      it("an app's lookup is answered by the proxy", async () => {
        expect(await net.probe('pod', 'resolve', ['svc.test'], app)).toEqual({
          addresses: [PROXY_ANSWER],
        });
      });

      it("the proxy's own query gets the local resolver's answer", async () => {
        expect(await net.probe('pod', 'query', ['127.0.0.11', 'svc.test'], proxy)).toEqual({
          addresses: [LOCAL_ANSWER],
        });
      });
    });
  }
});
