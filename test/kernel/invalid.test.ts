/**
 * --drop-invalid on a real kernel: a TCP segment that conntrack cannot place (SYN and
 * FIN together) is dropped in mangle PREROUTING, before NAT could be skipped; normal
 * connections are still captured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDRESSES, type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const DROPPED = 'a packet conntrack cannot place would skip NAT and so the proxy';

kernelSuite('--drop-invalid', () => {
  for (const backend of ['legacy', 'nft'] as const) {
    describe(backend, () => {
      let net: Pod;
      beforeAll(async () => {
        net = await Pod.create();
        await net.serve('pod', 'proxy', 'tcp', [15001], { uid: PROXY_UID });
        await net.serve('pod', 'app', 'tcp', [8080], { uid: 1000 });
      });
      afterAll(async () => net?.destroy());

      const init = async (...extra: string[]) => {
        const result = await net.meshInit([
          ...['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'],
          ...['--iptables-backend', backend, ...extra],
        ]);
        expect(result.exitCode, result.stderr).toBe(0);
      };

      it.each(['ipv4', 'ipv6'] as Family[])(
        '%s: an INVALID segment is dropped, a connection is still captured',
        async (family) => {
          const a = ADDRESSES[family];
          await init('--drop-invalid');
          const before = await net.packets(backend, family, 'mangle', DROPPED);
          expect(await net.probe('peer', 'invalid', [a.peer, a.pod, '8080'])).toEqual({ sent: 1 });
          await expect.poll(() => net.packets(backend, family, 'mangle', DROPPED)).toBe(before + 1);
          expect((await net.connect('peer', 'tcp', a.pod, 8080)).server).toBe('proxy');
          expect(await net.packets(backend, family, 'mangle', DROPPED)).toBe(before + 1);
        },
      );

      it('a re-run without --drop-invalid removes the chain and its jump', async () => {
        await init('--drop-invalid');
        await init();
        for (const family of ['ipv4', 'ipv6'] as Family[]) {
          expect(await net.table(backend, family, 'mangle')).not.toContain('ISTIO_');
        }
      });
    });
  }
});
