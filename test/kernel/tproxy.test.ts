/**
 * -m TPROXY on a real kernel: inbound TCP reaches a transparent listener on the
 * inbound port with the original destination on its socket and the client's real
 * source address, through mangle rules and the fwmark policy route.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDRESSES, type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const FAMILIES: Family[] = ['ipv4', 'ipv6'];

kernelSuite('TPROXY inbound capture', () => {
  for (const backend of ['legacy', 'nft'] as const) {
    describe(backend, () => {
      let net: Pod;
      beforeAll(async () => {
        net = await Pod.create();
        // A TPROXY proxy needs IP_TRANSPARENT, so it has CAP_NET_ADMIN: here it runs as root.
        await net.serve('pod', 'proxy-inbound', 'tcp-transparent', [15006]);
        await net.serve('pod', 'proxy-outbound', 'tcp', [15001], { uid: PROXY_UID });
        await net.serve('pod', 'app', 'tcp', [8080, 9090], { uid: 1000 });
        await net.serve('peer', 'peer', 'tcp', [80]);
      });
      afterAll(async () => net?.destroy());

      const args = [
        ...['-p', '15001', '-z', '15006', '-u', String(PROXY_UID), '-m', 'TPROXY'],
        ...['-d', '9090', '--ipv6', 'true', '--iptables-backend', backend],
      ];
      const init = async (...extra: string[]) => {
        const result = await net.meshInit([...args, ...extra]);
        expect(result.exitCode, result.stderr).toBe(0);
        return result;
      };

      it('applies, sets up the policy route, and reads back as planned', async () => {
        await init();
        await init(); // a re-run changes nothing and adds no second ip rule
        for (const ip of ['-4', '-6']) {
          const rules = await net.exec('pod', ['ip', ip, 'rule', 'list']);
          expect(rules.match(/fwmark 0x539 lookup 133/g)).toHaveLength(1);
          const routes = await net.exec('pod', ['ip', ip, 'route', 'show', 'table', '133']);
          expect(routes).toMatch(/^local (default|::\/0) dev lo/);
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
          const at = (host: string, port: number | string) =>
            family === 'ipv4' ? `${host}:${port}` : `[${host}]:${port}`;
          expect(report.local).toBe(at(a.pod, 8080));
          expect(report.peer).toMatch(
            new RegExp(`^${at(a.peer, '\\d+').replace(/[[\].]/g, '\\$&')}$`),
          );
          expect(report.original).toBe(report.local); // no NAT was involved
        },
      );

      it.each(FAMILIES)(
        '%s: excluded ports, loopback and the pod itself stay direct',
        async (family) => {
          const a = ADDRESSES[family];
          expect((await net.connect('peer', 'tcp', a.pod, 9090)).server).toBe('app');
          expect((await net.connect('pod', 'tcp', a.loopback, 8080, { uid: 1000 })).server).toBe(
            'app',
          );
          expect((await net.connect('pod', 'tcp', a.pod, 8080, { uid: 1000 })).server).toBe('app');
        },
      );

      it.each(FAMILIES)('%s: outbound TCP is still redirected to the proxy', async (family) => {
        const a = ADDRESSES[family];
        const report = await net.connect('pod', 'tcp', a.peer, 80, { uid: 1000 });
        expect(report.server).toBe('proxy-outbound');
      });

      it.each(FAMILIES)(
        '%s: later packets of a proxied connection take the socket-match fast path',
        async (family) => {
          const fastPath = 'packets of established connections go straight to their socket';
          const before = await net.packets(backend, family, 'mangle', fastPath);
          await net.connect('peer', 'tcp', ADDRESSES[family].pod, 8080);
          expect(await net.packets(backend, family, 'mangle', fastPath)).toBeGreaterThan(before);
        },
      );

      it('--check sees a missing rule or route and a foreign ACCEPT ahead; a re-run mends both', async () => {
        const check = () => net.meshInit([...args, '--check']);
        await net.exec('pod', ['ip', '-4', 'rule', 'del', 'fwmark', '1337', 'lookup', '133']);
        await net.exec('pod', [
          'ip',
          '-6',
          'route',
          'del',
          'local',
          '::/0',
          'dev',
          'lo',
          'table',
          '133',
        ]);
        const missing = await check();
        expect(missing.exitCode).toBe(5);
        expect(missing.stdout).toContain('ipv4: ip rule "fwmark 1337 lookup 133" is missing');
        expect(missing.stdout).toContain('ipv6: route "local default dev lo table 133" is missing');
        await init();
        expect((await check()).exitCode).toBe(0);

        const save = `${backend === 'legacy' ? 'iptables-legacy' : 'iptables-nft'}-restore`;
        await net.exec('pod', [
          'sh',
          '-c',
          `printf '*mangle\\n-I PREROUTING 1 -p tcp -j ACCEPT\\nCOMMIT\\n' | ${save} --noflush`,
        ]);
        const bypassed = await check();
        expect(bypassed.exitCode).toBe(5);
        expect(bypassed.stdout).toContain('ipv4 mangle: rules that let all TCP bypass capture:');
        expect((await net.connect('peer', 'tcp', ADDRESSES.ipv4.pod, 8080)).server).toBe('app');
        await init(); // the jumps move back to the top, ahead of the ACCEPT
        expect((await check()).exitCode).toBe(0);
        expect((await net.connect('peer', 'tcp', ADDRESSES.ipv4.pod, 8080)).server).toBe(
          'proxy-inbound',
        );
      });

      it('--cleanup removes the mangle chains, the ip rule and the route', async () => {
        const result = await net.meshInit([...args, '--cleanup']);
        expect(result.exitCode, result.stderr).toBe(0);
        for (const family of FAMILIES) {
          expect(await net.table(backend, family, 'mangle')).not.toContain('ISTIO_');
        }
        for (const ip of ['-4', '-6']) {
          expect(await net.exec('pod', ['ip', ip, 'rule', 'list'])).not.toContain('lookup 133');
          expect(await net.exec('pod', ['ip', ip, 'route', 'show', 'table', '133'])).toBe('');
        }
        expect((await net.connect('peer', 'tcp', ADDRESSES.ipv4.pod, 8080)).server).toBe('app');
      });
    });
  }
});

kernelSuite('TPROXY runs racing in one pod', () => {
  it('8 runs at once leave one ip rule per family and one set of jumps', async () => {
    const net = await Pod.create();
    try {
      const args = [
        '-m',
        'TPROXY',
        '-z',
        '15006',
        '--ipv6',
        'true',
        '--iptables-backend',
        'legacy',
      ];
      const runs = await Promise.all(Array.from({ length: 8 }, () => net.meshInit(args)));
      for (const run of runs) expect(run.exitCode, run.stderr).toBe(0);
      for (const ip of ['-4', '-6']) {
        const rules = await net.exec('pod', ['ip', ip, 'rule', 'list']);
        expect(rules.match(/fwmark 0x539 lookup 133/g)).toHaveLength(1);
      }
      const mangle = await net.table('legacy', 'ipv4', 'mangle');
      expect(mangle.match(/-A PREROUTING .*-j ISTIO_INBOUND/g)).toHaveLength(1);
      expect((await net.meshInit([...args, '--check'])).exitCode).toBe(0);
    } finally {
      await net.destroy();
    }
  });
});
