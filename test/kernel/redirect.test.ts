/**
 * Behaviours 1-7 of the capture, checked with real TCP/UDP connections in a pod
 * namespace wired to a peer namespace, on both iptables backends.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDRESSES, type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const OUT = 15001;
const IN = 15006;
const APP = 8080;
const EXCLUDED = 8081;
const ep = (family: Family, host: string, port: number) =>
  family === 'ipv4' ? `${host}:${port}` : `[${host}]:${port}`;

for (const backend of ['legacy', 'nft'] as const) {
  kernelSuite(`capture with the ${backend} backend`, () => {
    let net: Pod;

    beforeAll(async () => {
      net = await Pod.create();
      await net.serve('pod', 'proxy-outbound', 'tcp', [OUT], { uid: PROXY_UID });
      await net.serve('pod', 'proxy-inbound', 'tcp', [IN], { uid: PROXY_UID });
      await net.serve('pod', 'app', 'tcp', [APP, EXCLUDED], { uid: 1000 });
      await net.serve('peer', 'peer', 'tcp', [80, APP]);
      await net.serve('peer', 'peer-udp', 'udp', [5353]);
      const result = await net.meshInit([
        ...['-p', String(OUT), '-z', String(IN), '-u', String(PROXY_UID)],
        ...['-d', String(EXCLUDED), '--ipv6', 'true', '--iptables-backend', backend],
      ]);
      expect(result.stderr).toContain(`with the ${backend} backend`);
      expect(result.exitCode).toBe(0);
    });
    afterAll(async () => net?.destroy());

    for (const family of ['ipv4', 'ipv6'] as const) {
      const a = ADDRESSES[family];

      it(`${family}: an app's outbound TCP lands on the proxy, which sees the original destination`, async () => {
        const report = await net.connect('pod', 'tcp', a.peer, 80, { uid: 1000 });
        expect(report.server).toBe('proxy-outbound');
        expect(report.original).toBe(ep(family, a.peer, 80));
        const asRoot = await net.connect('pod', 'tcp', a.peer, APP);
        expect(asRoot.server).toBe('proxy-outbound');
        expect(asRoot.original).toBe(ep(family, a.peer, APP));
      });

      it(`${family}: inbound TCP to any pod port lands on the inbound port, except excluded ports`, async () => {
        const inbound = await net.connect('peer', 'tcp', a.pod, APP);
        expect(inbound.server).toBe('proxy-inbound');
        expect(inbound.original).toBe(ep(family, a.pod, APP));
        const excluded = await net.connect('peer', 'tcp', a.pod, EXCLUDED);
        expect(excluded.server).toBe('app');
        expect(excluded.original).toBe(excluded.local);
      });

      it(`${family}: traffic of the proxy UID or GID is never redirected`, async () => {
        const byUid = await net.connect('pod', 'tcp', a.peer, 80, { uid: PROXY_UID });
        expect(byUid.server).toBe('peer');
        const byGid = await net.connect('pod', 'tcp', a.peer, 80, { uid: 1000, gid: PROXY_UID });
        expect(byGid.server).toBe('peer');
      });

      it(`${family}: loopback traffic between the pod's containers is not intercepted`, async () => {
        const report = await net.connect('pod', 'tcp', a.loopback, APP, { uid: 1000 });
        expect(report.server).toBe('app');
        expect(report.original).toBe(report.local);
      });

      it(`${family}: the proxy calling its own pod IP goes to the inbound port; the app calling it does not`, async () => {
        const proxy = await net.connect('pod', 'tcp', a.pod, APP, { uid: PROXY_UID });
        expect(proxy.server).toBe('proxy-inbound');
        expect(proxy.original).toBe(ep(family, a.pod, APP));
        const app = await net.connect('pod', 'tcp', a.pod, APP, { uid: 1000 });
        expect(app.server).toBe('app');
      });

      it(`${family}: the proxy's inbound passthrough from ${a.passthrough} reaches the app`, async () => {
        const report = await net.connect('pod', 'tcp', a.pod, APP, {
          uid: PROXY_UID,
          source: a.passthrough,
        });
        expect(report.server).toBe('app');
        expect(report.peer?.startsWith(ep(family, a.passthrough, 0).replace(/:0$/, ':'))).toBe(
          true,
        );
      });

      it(`${family}: UDP is untouched`, async () => {
        const report = await net.connect('pod', 'udp', a.peer, 5353, { uid: 1000 });
        expect(report.server).toBe('peer-udp');
      });
    }
  });
}
