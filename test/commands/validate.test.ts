/**
 * validateCapture: which probe each identity gets, the fallbacks when the pod has
 * no route for it, and what a failure says. The probe itself is faked here; the
 * kernel suite (test/kernel/validation.test.ts) runs the real one.
 */
import { describe, expect, it } from 'vitest';
import { type ValidationDeps, validateCapture } from '../../src/commands/validate.js';
import type { Family } from '../../src/config/net.js';
import type { LocalAddress } from '../../src/system/interfaces.js';
import type { Probe, ProbeOutcome } from '../../src/system/probe.js';
import { configFrom } from '../config-from.js';

const ISTIO = ['-p', '15001', '-z', '15006', '-u', '1337', '--run-validation'];
const PROXY = { uid: 1337, gid: 1337 };
const APP = { uid: 1000, gid: 1000 };

const at = (name: string, address: string, prefix: number): LocalAddress => ({
  name,
  family: address.includes(':') ? 'ipv6' : 'ipv4',
  address,
  prefix,
});
const LO = [at('lo', '127.0.0.1', 8), at('lo', '::1', 128)];
const SIX = at('lo', '::6', 128);
const ETH0 = [at('eth0', '10.244.1.7', 24), at('eth0', 'fd00:244:1::7', 64)];
const LINK_LOCAL = at('eth0', 'fe80::42:acff:fe11:2', 64);

/** A fake probe: answers by destination (landed unless told), and a clock each probe moves on. */
function fakeDeps(
  identity: { uid: number; gid: number },
  addresses: readonly LocalAddress[],
  answers: Record<string, ProbeOutcome['kind']> = {},
  probeTakesMs = 0,
) {
  const probes: Probe[] = [];
  let now = 1_000_000;
  const deps: ValidationDeps = {
    identity,
    addresses: () => addresses,
    clock: () => now,
    probe: async (probe) => {
      probes.push(probe);
      now += probeTakesMs;
      const kind = answers[probe.destination] ?? 'landed';
      return { kind, detail: `${kind} at ${probe.destination}` } as ProbeOutcome;
    },
  };
  return { deps, probes };
}

async function validate(
  argv: readonly string[],
  families: readonly Family[],
  fake: ReturnType<typeof fakeDeps>,
) {
  return validateCapture(await configFrom([...ISTIO, ...argv]), families, fake.deps);
}

describe('validateCapture: the probe each identity gets', () => {
  it('the proxy UID: from 127.0.0.1 to 127.0.0.6 over lo, landing on the inbound capture port', async () => {
    const fake = fakeDeps(PROXY, [...LO, ...ETH0]);
    const result = await validate([], ['ipv4'], fake);
    expect(fake.probes).toEqual([
      {
        family: 'ipv4',
        source: '127.0.0.1',
        destination: '127.0.0.6',
        port: 15002,
        landingPort: 15006,
        timeoutMs: 5000,
      },
    ]);
    expect(result).toEqual({
      ok: true,
      detail: 'ipv4: as uid 1337 gid 1337, landed at 127.0.0.6',
    });
  });

  it('the proxy UID over IPv6: from ::1 to ::6, which mesh-init put on lo', async () => {
    const fake = fakeDeps(PROXY, [...LO, SIX, ...ETH0]);
    const result = await validate([], ['ipv4', 'ipv6'], fake);
    expect(result.ok).toBe(true);
    expect(fake.probes.map((p) => [p.source, p.destination, p.landingPort])).toEqual([
      ['127.0.0.1', '127.0.0.6', 15006],
      ['::1', '::6', 15006],
    ]);
  });

  it('the proxy UID over IPv6 without ::6 on lo: nothing to probe, and it says why', async () => {
    const fake = fakeDeps(PROXY, [...LO, ...ETH0]);
    const result = await validate([], ['ipv6'], fake);
    expect(fake.probes).toEqual([]);
    expect(result.ok).toBe(false);
    expect(result.detail).toBe(
      'ipv6: nothing to probe as uid 1337 gid 1337, the rules these flags make capture none of: ' +
        '::6 is not on lo (mesh-init adds it when it captures IPv6); ' +
        '[2001:db8::1]:15002 (a documentation address) is not captured: traffic of the proxy itself is never redirected (no loop); ' +
        "[fd00:244:1:0:ffff:ffff:ffff:ffff]:15002 (on eth0's subnet) is not captured: traffic of the proxy itself is never redirected (no loop)",
    );
  });

  // As in Istio, nothing of a process with the proxy GID but another UID is captured:
  // over lo the UID block lets it through, elsewhere the GID's RETURN does.
  it('the proxy GID alone: nothing the rules capture, so 126 without a probe', async () => {
    const fake = fakeDeps({ uid: 1000, gid: 1337 }, [...LO, ...ETH0]);
    const result = await validate([], ['ipv4'], fake);
    expect(result.ok).toBe(false);
    expect(fake.probes).toEqual([]);
    expect(result.detail).toContain('uid 1000');
  });

  it.each([APP, { uid: 0, gid: 0 }])(
    'another identity %j: to 192.0.2.1, leaving the pod, landing on the proxy port',
    async (identity) => {
      const fake = fakeDeps(identity, [...LO, SIX, ...ETH0]);
      expect((await validate([], ['ipv4', 'ipv6'], fake)).ok).toBe(true);
      expect(fake.probes).toEqual([
        {
          family: 'ipv4',
          destination: '192.0.2.1',
          port: 15002,
          landingPort: 15001,
          timeoutMs: 5000,
        },
        {
          family: 'ipv6',
          destination: '2001:db8::1',
          port: 15002,
          landingPort: 15001,
          timeoutMs: 5000,
        },
      ]);
    },
  );

  it('another identity without a route to 192.0.2.1: an address of the pod subnet instead', async () => {
    const fake = fakeDeps(APP, [...LO, ...ETH0], {
      '192.0.2.1': 'no route',
      '2001:db8::1': 'no route',
    });
    const result = await validate([], ['ipv4', 'ipv6'], fake);
    // The families are probed at the same time; within one, in order.
    const tried = (family: Family) =>
      fake.probes.filter((p) => p.family === family).map((p) => p.destination);
    expect(tried('ipv4')).toEqual(['192.0.2.1', '10.244.1.254']);
    expect(tried('ipv6')).toEqual(['2001:db8::1', 'fd00:244:1:0:ffff:ffff:ffff:ffff']);
    expect(result).toEqual({
      ok: true,
      detail:
        'ipv4: as uid 1000 gid 1000, landed at 10.244.1.254 (first tried: no route at 192.0.2.1 (a documentation address)); ' +
        'ipv6: as uid 1000 gid 1000, landed at fd00:244:1:0:ffff:ffff:ffff:ffff (first tried: no route at 2001:db8::1 (a documentation address))',
    });
  });

  it('another identity in a pod with routes on lo only: it fails and says why', async () => {
    const fake = fakeDeps(APP, LO, { '192.0.2.1': 'no route' });
    const result = await validate([], ['ipv4'], fake);
    expect(result).toEqual({
      ok: false,
      detail:
        'ipv4: as uid 1000 gid 1000, no probe could be sent: no route at 192.0.2.1 (a documentation address) ' +
        "(a pod whose only routes are on lo has no outbound path; the proxy UID's probe needs only lo)",
    });
  });

  it('a failed probe fails the validation, with its detail; the next address is not tried', async () => {
    const fake = fakeDeps(APP, [...LO, ...ETH0], { '192.0.2.1': 'failed' });
    const result = await validate([], ['ipv4'], fake);
    expect(fake.probes).toHaveLength(1);
    expect(result).toEqual({
      ok: false,
      detail: 'ipv4: as uid 1000 gid 1000, failed at 192.0.2.1',
    });
  });

  it('one family failing fails the whole validation; both are reported', async () => {
    const fake = fakeDeps(PROXY, [...LO, SIX], { '::6': 'failed' });
    const result = await validate([], ['ipv4', 'ipv6'], fake);
    expect(result).toEqual({
      ok: false,
      detail:
        'ipv4: as uid 1337 gid 1337, landed at 127.0.0.6; ipv6: as uid 1337 gid 1337, failed at ::6',
    });
  });
});

describe('validateCapture: --probe-address', () => {
  it('is the only address tried in its family: no fallback when it has no route', async () => {
    const fake = fakeDeps(APP, [...LO, ...ETH0], { '10.0.0.9': 'no route' });
    const result = await validate(['--probe-address', '10.0.0.9'], ['ipv4', 'ipv6'], fake);
    expect(fake.probes.map((p) => p.destination)).toEqual(['10.0.0.9', '2001:db8::1']);
    expect(result.ok).toBe(false);
  });

  it('a pod address is probed over lo from the loopback address (the proxy probe)', async () => {
    const fake = fakeDeps(PROXY, [...LO, ...ETH0]);
    await validate(['--probe-address', '10.244.1.7,fd00:244:1::7'], ['ipv4', 'ipv6'], fake);
    expect(fake.probes.map((p) => [p.source, p.destination, p.landingPort])).toEqual([
      ['127.0.0.1', '10.244.1.7', 15006],
      ['::1', 'fd00:244:1::7', 15006],
    ]);
  });

  it('an address the rules do not capture for this identity is refused without probing', async () => {
    const fake = fakeDeps(APP, LO);
    const result = await validate(['--probe-address', '127.0.0.6'], ['ipv4'], fake);
    expect(fake.probes).toEqual([]);
    expect(result.detail).toBe(
      'ipv4: nothing to probe as uid 1000 gid 1000, the rules these flags make capture none of: ' +
        '127.0.0.6:15002 over lo (--probe-address) is not captured: loopback traffic inside the pod is not intercepted',
    );
  });

  it('an excluded probe port (-o) leaves nothing to probe, naming the rule', async () => {
    const fake = fakeDeps(PROXY, LO);
    const result = await validate(['-o', '15002'], ['ipv4'], fake);
    expect(fake.probes).toEqual([]);
    expect(result.detail).toContain(
      '127.0.0.6:15002 over lo (a pod address over lo) is not captured: destination port excluded by --outbound-exclude-ports',
    );
  });
});

describe('validateCapture: the pod subnet address', () => {
  const noRoute = { '192.0.2.1': 'no route', '2001:db8::1': 'no route' } as const;
  it.each<[string, LocalAddress[], string[]]>([
    ['the last host of a /24', [at('eth0', '10.244.1.7', 24)], ['10.244.1.254']],
    ['one below when the pod holds it', [at('eth0', '10.244.1.254', 24)], ['10.244.1.253']],
    ['a /30', [at('eth0', '10.0.0.1', 30)], ['10.0.0.2']],
    [
      'a /31 has none; the next interface does',
      [at('eth0', '10.0.0.1', 31), at('eth1', '10.1.0.1', 16)],
      ['10.1.255.254'],
    ],
    ['a /32 (Calico) has none', [at('eth0', '10.244.1.7', 32)], []],
    ['an IPv6 /64', [at('eth0', 'fd00::7', 64)], ['fd00::ffff:ffff:ffff:ffff']],
    [
      'one below when the pod holds it',
      [at('eth0', 'fd00::ffff:ffff:ffff:ffff', 64)],
      ['fd00::ffff:ffff:ffff:fffe'],
    ],
    ['not a link-local subnet', [LINK_LOCAL], []],
    ['not lo', [at('lo', '::6', 120)], []],
  ])('%s', async (_name, addresses, expected) => {
    const family = addresses[0]?.family ?? 'ipv4';
    const fake = fakeDeps(APP, [...LO, ...addresses], noRoute);
    await validate([], [family], fake);
    expect(fake.probes.slice(1).map((p) => p.destination)).toEqual(expected);
  });
});

describe('validateCapture: one deadline per family', () => {
  it('each probe gets what is left of --probe-timeout', async () => {
    const fake = fakeDeps(APP, [...LO, ...ETH0], { '192.0.2.1': 'no route' }, 300);
    await validate(['--probe-timeout', '1'], ['ipv4'], fake);
    expect(fake.probes.map((p) => p.timeoutMs)).toEqual([1000, 700]);
  });

  it('a spent deadline tries no further address, and says so', async () => {
    const fake = fakeDeps(APP, [...LO, ...ETH0], { '192.0.2.1': 'no route' }, 1000);
    const result = await validate(['--probe-timeout', '1'], ['ipv4'], fake);
    expect(fake.probes.map((p) => p.timeoutMs)).toEqual([1000]);
    expect(result).toEqual({
      ok: false,
      detail:
        'ipv4: as uid 1000 gid 1000, --probe-timeout (1000 ms) ran out before a probe answered: no route at 192.0.2.1 (a documentation address)',
    });
  });
});
