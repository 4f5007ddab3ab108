/**
 * `--run-validation --skip-rule-apply` on a real kernel, run as CNI mode runs it:
 * unprivileged (no capability in any set, not root), as the proxy UID or another
 * UID, after an init run that captured (exit 0) or none (126), in pods with and
 * without a default route, IPv4 alone and dual-stack. Never 2, never a hang.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Family, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

/**
 * How each backend applies the rules the validation then probes. The validation
 * itself reads no rules, so a backend is one entry here.
 */
const BACKENDS: Readonly<Record<string, readonly string[]>> = {
  legacy: ['--iptables-backend', 'legacy'],
  nft: ['--iptables-backend', 'nft'],
  'native-nft': ['--native-nftables'],
};

const OUT = 15001;
const IN = 15006;
const FLAGS = ['-p', String(OUT), '-z', String(IN), '-u', String(PROXY_UID)];
const TIMEOUT_S = 1;
/** Node's start, the probe's bounded wait, and slack for 2 busy cores. */
const BOUND_MS = TIMEOUT_S * 1000 + 4000;

const PROXY = { uid: PROXY_UID, gid: PROXY_UID };
const APP = { uid: 1000, gid: 1000 };
const IDENTITIES = [
  ['the proxy UID', PROXY, `was accepted on port ${IN}`],
  ['another UID', APP, `was accepted on port ${OUT}`],
] as const;
const STACKS: readonly (readonly Family[])[] = [['ipv4'], ['ipv4', 'ipv6']];

const ipv6Flag = (families: readonly Family[]) => ['--ipv6', String(families.includes('ipv6'))];

for (const [backend, backendFlags] of Object.entries(BACKENDS)) {
  kernelSuite(`validation with the ${backend} backend`, () => {
    let net: Pod;
    beforeEach(async () => {
      net = await Pod.create();
    });
    afterEach(async () => net?.destroy());

    /** The init container's run: root, NET_ADMIN, the rules applied. */
    async function capture(families: readonly Family[], extra: readonly string[] = []) {
      const result = await net.meshInit([
        ...FLAGS,
        ...backendFlags,
        ...ipv6Flag(families),
        ...extra,
      ]);
      expect(result.exitCode, result.stderr).toBe(0);
    }

    /** The validation container's run: unprivileged, the same flags, bounded in time. */
    async function validate(
      as: { uid: number; gid: number },
      families: readonly Family[],
      extra: readonly string[] = [],
    ) {
      const started = Date.now();
      const result = await net.meshInitUnprivileged(as, [
        ...FLAGS,
        ...['--run-validation', '--skip-rule-apply', '--probe-timeout', String(TIMEOUT_S)],
        ...ipv6Flag(families),
        ...extra,
      ]);
      expect(Date.now() - started, 'validation took too long').toBeLessThan(BOUND_MS);
      expect([0, 126], result.stderr).toContain(result.exitCode);
      return result;
    }

    it('runs with no capability in any set', async () => {
      const caps = await net.capabilitiesOf(PROXY);
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
        expect(caps).toMatch(new RegExp(`^${set}:\\s+0+$`, 'm'));
      }
    });

    for (const [who, as, landing] of IDENTITIES) {
      for (const route of ['a default route', 'no default route'] as const) {
        for (const families of STACKS) {
          const name = `${who}, ${route}, ${families.join(' and ')}`;
          const setUp = async () => {
            if (route === 'a default route') await net.addDefaultRoute(families);
          };

          it(`${name}: after a capturing run, exit 0`, async () => {
            await setUp();
            await capture(families);
            const result = await validate(as, families);
            expect(result.exitCode, result.stderr).toBe(0);
            for (const family of families) {
              expect(result.stderr).toMatch(new RegExp(`${family}: as uid ${as.uid} .*${landing}`));
            }
          });

          it(`${name}: without a capturing run, exit 126`, async () => {
            await setUp();
            const result = await validate(as, families);
            expect(result.exitCode, result.stderr).toBe(126);
            expect(result.stderr).toContain('validation failed');
            for (const family of families) expect(result.stderr).toContain(`${family}: `);
          });
        }
      }

      it(`${who}: IPv6 is probed on its own: IPv4 captured alone is 126 for a dual-stack validation`, async () => {
        await net.addDefaultRoute(['ipv4', 'ipv6']);
        await capture(['ipv4']);
        expect((await validate(as, ['ipv4'])).exitCode).toBe(0);
        const result = await validate(as, ['ipv4', 'ipv6']);
        expect(result.exitCode, result.stderr).toBe(126);
        expect(result.stderr).toMatch(
          /validation failed: ipv4: as uid \d+ gid \d+, \S+ → \S+ was accepted/,
        );
        expect(result.stderr).toMatch(/; ipv6: .*(::6 is not on lo|not redirected)/);
      });
    }

    it('the proxy already running on the inbound port: it answers, exit 0', async () => {
      await capture(['ipv4', 'ipv6']);
      await net.serve('pod', 'proxy-inbound', 'tcp', [IN], PROXY);
      const result = await validate(PROXY, ['ipv4', 'ipv6']);
      expect(result.exitCode, result.stderr).toBe(0);
      // The test proxy answers and closes at once: its socket may have no owner left to name.
      expect(result.stderr).toMatch(
        new RegExp(
          `was accepted on port ${IN}, where a listener was already running \\((uid ${PROXY_UID}|it answered and closed the connection);`,
        ),
      );
    });

    it('a listener on the inbound port but no capture: exit 126, and the port in use is named', async () => {
      await net.serve('pod', 'proxy-inbound', 'tcp', [IN], PROXY);
      const result = await validate(PROXY, ['ipv4']);
      expect(result.exitCode, result.stderr).toBe(126);
      expect(result.stderr).toContain(
        `port ${IN} is in use by another listener, which did not get it`,
      );
    });

    it('the listener is released: the proxy can bind the inbound port right after', async () => {
      await capture(['ipv4']);
      expect((await validate(PROXY, ['ipv4'])).exitCode).toBe(0);
      await net.serve('pod', 'proxy-inbound', 'tcp', [IN], PROXY);
      const report = await net.connect('pod', 'tcp', '127.0.0.6', 8080, PROXY);
      expect(report.server).toBe('proxy-inbound');
    });

    it('TPROXY mode: the proxy UID probe lands on the inbound port through nat', async () => {
      await capture(['ipv4', 'ipv6'], ['-m', 'TPROXY']);
      const result = await validate(PROXY, ['ipv4', 'ipv6'], ['-m', 'TPROXY']);
      expect(result.exitCode, result.stderr).toBe(0);
    });

    it('a --probe-address the rules let go is 126, naming the rule, without probing', async () => {
      await capture(['ipv4']);
      const result = await validate(APP, ['ipv4'], ['--probe-address', '127.0.0.6']);
      expect(result.exitCode).toBe(126);
      expect(result.stderr).toContain('loopback traffic inside the pod is not intercepted');
    });

    describe('--probe-address over IPv6', () => {
      it('another UID to a chosen IPv6 address with a default route', async () => {
        await net.addDefaultRoute(['ipv4', 'ipv6']);
        await capture(['ipv4', 'ipv6']);
        const address = ['--probe-address', '192.0.2.9,2001:db8::9'];
        const result = await validate(APP, ['ipv4', 'ipv6'], address);
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stderr).toContain('→ [2001:db8::9]:15002 was accepted');
      });
    });
  });
}
