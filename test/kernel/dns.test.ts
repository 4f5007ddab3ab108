/**
 * --redirect-dns and --capture-all-dns on a real kernel: names resolved through the
 * C library and /etc/resolv.conf, with a resolver on the peer and the proxy's DNS
 * server on port 15053 in the pod.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDRESSES, type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const UPSTREAM = '192.0.2.53'; // what the resolver on the peer answers
const PROXY = '192.0.2.15'; // what the proxy's DNS server answers
const OTHER = { ipv4: '10.200.1.3', ipv6: 'fd00:200:1::3' }; // a peer address not in resolv.conf
const app = { uid: 1000 };
const proxy = { uid: PROXY_UID };

kernelSuite('DNS capture', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
    for (const [family, address] of Object.entries(OTHER)) {
      const prefix = family === 'ipv4' ? '24' : '64';
      await net.exec('peer', ['ip', 'addr', 'add', `${address}/${prefix}`, 'dev', 'eth0', 'nodad']);
    }
    await net.serve('peer', 'resolver', { dns: UPSTREAM }, [53]);
    await net.serve('peer', 'resolver-tcp', 'tcp', [53]);
    await net.serve('pod', 'proxy-dns', { dns: PROXY, loopback: true }, [15053], proxy);
    await net.serve('pod', 'proxy-dns-tcp', 'tcp', [15053], proxy);
    await net.serve('pod', 'proxy-outbound', 'tcp', [15001], proxy);
  });
  afterAll(async () => net?.destroy());

  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    describe(family, () => {
      const resolver = ADDRESSES[family].peer;
      const init = async (...extra: string[]) => {
        const result = await net.meshInit([
          ...['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'],
          ...['--iptables-backend', 'legacy', '--redirect-dns', ...extra],
        ]);
        expect(result.exitCode, result.stderr).toBe(0);
        return result;
      };

      beforeAll(async () => {
        net.setResolvConf(`nameserver ${resolver}\noptions timeout:1 attempts:1\n`);
        const result = await init();
        expect(result.stderr).toContain(`capturing DNS to ${resolver} (from /etc/resolv.conf)`);
      });

      it("an app's lookup through resolv.conf is answered by the proxy's DNS server", async () => {
        expect(await net.probe('pod', 'resolve', ['svc.test'], app)).toEqual({
          addresses: [PROXY],
        });
      });

      it('--check reads the nat and raw rules back as planned', async () => {
        const check = await net.meshInit([
          ...['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'],
          ...['--iptables-backend', 'legacy', '--redirect-dns', '--check'],
        ]);
        expect(check.exitCode, check.stdout + check.stderr).toBe(0);
      });

      it("the proxy's own queries reach the resolver", async () => {
        expect(await net.probe('pod', 'query', [resolver, 'svc.test'], proxy)).toEqual({
          addresses: [UPSTREAM],
        });
      });

      it('DNS over TCP to the resolver goes to the DNS port too', async () => {
        const report = await net.connect('pod', 'tcp', resolver, 53, app);
        expect(report.server).toBe('proxy-dns-tcp');
      });

      it('UDP flows of apps and proxy are kept in their conntrack zones', async () => {
        const zone = (why: string) => net.packets('legacy', family, 'raw', why);
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

      it('only the resolvers are captured, unless --capture-all-dns', async () => {
        const other = OTHER[family];
        expect(await net.probe('pod', 'query', [other, 'svc.test'], app)).toEqual({
          addresses: [UPSTREAM],
        });
        await init('--capture-all-dns');
        expect(await net.probe('pod', 'query', [other, 'svc.test'], app)).toEqual({
          addresses: [PROXY],
        });
        expect(await net.probe('pod', 'query', [other, 'svc.test'], proxy)).toEqual({
          addresses: [UPSTREAM],
        });
      });

      it('without --redirect-dns a re-run takes DNS capture away again', async () => {
        const result = await net.meshInit([
          ...['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'],
          ...['--iptables-backend', 'legacy'],
        ]);
        expect(result.exitCode, result.stderr).toBe(0);
        expect(await net.probe('pod', 'resolve', ['svc.test'], app)).toEqual({
          addresses: [UPSTREAM],
        });
        expect(await net.table('legacy', family, 'raw')).not.toContain('ISTIO_');
        expect(await net.table('legacy', family, 'nat')).not.toContain('OUTPUT_DNS');
      });
    });
  }
});

// Resolvers on lo. Docker's embedded DNS (127.0.0.11) has a NAT rule of its own, put
// there before mesh-init runs, that sends queries to another port: mesh-init's jump
// must come first, and the answer, which leaves through OUTPUT, must meet the
// proxy's query in its conntrack zone. A resolver on 127.0.0.1 shares its address
// with the apps that ask it: their queries must stay in the apps' zone.
const LOOPBACK_RESOLVERS = [
  { name: '127.0.0.11 behind its own DNAT rule (Docker)', address: '127.0.0.11', port: 5353 },
  { name: '127.0.0.1, the address the apps ask from', address: '127.0.0.1', port: 53 },
] as const;

kernelSuite('DNS capture with a resolver on lo', () => {
  for (const backend of ['legacy', 'nft'] as const) {
    describe.each(LOOPBACK_RESOLVERS)(`${backend}: $name`, ({ address, port }) => {
      const LOCAL_ANSWER = '192.0.2.11';
      let net: Pod;
      beforeAll(async () => {
        net = await Pod.create();
        net.setResolvConf(`nameserver ${address}\noptions timeout:1 attempts:1\n`);
        await net.serve('pod', 'local-resolver', { dns: LOCAL_ANSWER }, [port]);
        await net.serve('pod', 'proxy-dns', { dns: PROXY, loopback: true }, [15053], proxy);
        if (port !== 53) {
          const dnat = `-A OUTPUT -d ${address}/32 -p udp --dport 53 -j DNAT --to-destination ${address}:${port}`;
          await net.restoreForeign(backend, 'ipv4', ['*nat', dnat, 'COMMIT', ''].join('\n'));
        }
        const result = await net.meshInit([
          ...['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'false'],
          ...['--iptables-backend', backend, '--redirect-dns'],
        ]);
        expect(result.exitCode, result.stderr).toBe(0);
      });
      afterAll(async () => net?.destroy());

      it("an app's lookup is answered by the proxy", async () => {
        expect(await net.probe('pod', 'resolve', ['svc.test'], app)).toEqual({
          addresses: [PROXY],
        });
      });

      it("the proxy's own query gets the local resolver's answer", async () => {
        expect(await net.probe('pod', 'query', [address, 'svc.test'], proxy)).toEqual({
          addresses: [LOCAL_ANSWER],
        });
      });
    });
  }
});
