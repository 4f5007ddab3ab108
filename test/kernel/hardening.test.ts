/**
 * Faults and races on a real kernel: a failing second family, a held xtables lock,
 * concurrent runs, many re-runs, cleanup, --check and --run-validation.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

/** Foreign rules in every kernel chain of nat, plus a foreign chain. */
const FOREIGN = `*nat
:FOREIGN - [0:0]
-A FOREIGN -p udp --dport 9999 -j RETURN
-A PREROUTING -p udp -j FOREIGN
-A INPUT -p udp --dport 9997 -j RETURN
-A OUTPUT -p udp --dport 9998 -j RETURN
-A POSTROUTING -p udp --dport 9996 -j RETURN
COMMIT
`;

for (const backend of ['legacy', 'nft'] as const) {
  kernelSuite(`hardening with the ${backend} backend`, () => {
    let net: Pod;
    let dir: string;
    beforeEach(async () => {
      net = await Pod.create();
      dir = await mkdtemp(join(tmpdir(), 'mesh-init-test-'));
      await net.restoreForeign(backend, 'ipv4', FOREIGN);
      await net.restoreForeign(backend, 'ipv6', FOREIGN);
    });
    afterEach(async () => {
      await net?.destroy();
      await rm(dir, { recursive: true, force: true });
    });

    const run = (args: string[], env: Record<string, string> = {}) =>
      net.meshInit([...args, '--iptables-backend', backend], env);
    const tables = async () => [
      await net.natTable(backend, 'ipv4'),
      await net.natTable(backend, 'ipv6'),
    ];

    it('when IPv6 fails after IPv4 applied, IPv4 is put back exactly as it was', async () => {
      const before = await tables();
      // A fake ip6tables-restore ahead of the real one on PATH.
      const fake = join(dir, `ip6tables-${backend}-restore`);
      await writeFile(
        fake,
        '#!/bin/sh\ncat >/dev/null\necho "ip6tables-restore: line 5 failed" >&2\nexit 1\n',
      );
      await chmod(fake, 0o755);
      const result = await run(['--ipv6', 'true'], { PATH: `${dir}:${process.env.PATH}` });
      expect(result.exitCode).toBe(4);
      expect(result.stderr).toContain('line 5 failed');
      // Never read (a forced backend's first try): put back by removing what was added.
      expect(result.stderr).toContain(
        "ipv4 nat was put back: this run's jumps and mesh-init's chains were removed",
      );
      expect(await tables()).toEqual(before);
    });

    // nft has no xtables lock (its transactions serialise in the kernel): legacy only.
    if (backend === 'legacy') {
      it('waits for a held xtables lock, then applies; fails clearly past the bound', async () => {
        const lock = join(dir, 'xtables.lock');
        const env = { XTABLES_LOCKFILE: lock };
        const holder = execa('flock', [lock, 'sleep', '2']);
        await new Promise((resolve) => setTimeout(resolve, 200));
        const started = Date.now();
        const waited = await run(
          ['--wait', '1', '--max-retries', '5', '--retry-interval', '0.5'],
          env,
        );
        expect(waited.exitCode, waited.stderr).toBe(0);
        expect(Date.now() - started).toBeGreaterThan(1000);
        await holder;

        const before = await tables();
        const long = execa('flock', [lock, 'sleep', '8']);
        await new Promise((resolve) => setTimeout(resolve, 200));
        const failed = await run(
          ['-p', '15002', '--wait', '1', '--max-retries', '1', '--retry-interval', '0.2'],
          env,
        );
        long.kill();
        await long.catch(() => undefined);
        expect(failed.exitCode).toBe(4);
        expect(failed.stderr).toMatch(/busy 2 times.*xtables lock/s);
        expect(await tables()).toEqual(before);
      });
    }

    it('8 runs at once end in the same state as one run', async () => {
      const args = ['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'];
      const results = await Promise.all(Array.from({ length: 8 }, () => run(args)));
      for (const result of results) expect(result.exitCode, result.stderr).toBe(0);
      const together = await tables();
      const alone = await Pod.create();
      try {
        await alone.restoreForeign(backend, 'ipv4', FOREIGN);
        await alone.restoreForeign(backend, 'ipv6', FOREIGN);
        const single = await alone.meshInit([...args, '--iptables-backend', backend]);
        expect(single.exitCode).toBe(0);
        expect(together).toEqual([
          await alone.natTable(backend, 'ipv4'),
          await alone.natTable(backend, 'ipv6'),
        ]);
      } finally {
        await alone.destroy();
      }
    });

    it('10 re-runs leave an identical iptables-save', async () => {
      expect((await run(['--ipv6', 'true'])).exitCode).toBe(0);
      const first = await tables();
      for (let i = 0; i < 10; i++) {
        expect((await run(['--ipv6', 'true'])).exitCode).toBe(0);
        expect(await tables()).toEqual(first);
      }
    });

    it('foreign rules survive apply, re-apply and cleanup; cleanup restores the table exactly', async () => {
      const before = await tables();
      expect((await run(['--ipv6', 'true'])).exitCode).toBe(0);
      expect((await run(['--ipv6', 'true', '-b', '8080'])).exitCode).toBe(0);
      const applied = await tables();
      for (const [i, table] of before.entries()) {
        for (const line of table.split('\n').filter((l) => l.startsWith('-A'))) {
          expect(applied[i]).toContain(line);
        }
      }
      const cleaned = await run(['--cleanup', '--ipv6', 'true']);
      expect(cleaned.exitCode, cleaned.stderr).toBe(0);
      expect(await tables()).toEqual(before);
    });

    it('cleanup on a namespace without mesh-init rules succeeds and changes nothing', async () => {
      const before = await tables();
      const result = await run(['--cleanup', '--ipv6', 'true']);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(await tables()).toEqual(before);
    });

    it('--check is quiet in sync and prints the drift (exit 5) after a change by hand', async () => {
      expect((await run(['-p', '15001'])).exitCode).toBe(0);
      const inSync = await run(['--check', '-p', '15001']);
      expect(inSync.exitCode, inSync.stderr).toBe(0);
      expect(inSync.stdout).toBe('');
      const otherPort = await run(['--check', '-p', '15009']);
      expect(otherPort.exitCode).toBe(5);
      expect(otherPort.stdout).toContain('+ -A ISTIO_REDIRECT');
      expect(otherPort.stdout).toContain('--to-ports 15009');
      const flush = ['-t', 'nat', '-F', 'ISTIO_OUTPUT'];
      await execa('ip', ['netns', 'exec', net.pod, `iptables-${backend}`, ...flush]);
      const edited = await run(['--check', '-p', '15001']);
      expect(edited.exitCode).toBe(5);
      expect(edited.stdout).toContain('ipv4 nat: ISTIO_OUTPUT:\n  + -A ISTIO_OUTPUT');
      expect(edited.stdout).not.toContain('ipv6:');

      expect((await run(['-p', '15001'])).exitCode).toBe(0);
      const bypass = ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-j', 'RETURN'];
      await execa('ip', ['netns', 'exec', net.pod, `iptables-${backend}`, ...bypass]);
      const bypassed = await run(['--check', '-p', '15001']);
      expect(bypassed.exitCode).toBe(5);
      expect(bypassed.stdout).toContain('ipv4 nat: rules that let all TCP bypass capture:');
    });
  });
}

kernelSuite('validation', () => {
  let net: Pod;
  beforeEach(async () => {
    net = await Pod.create();
    await net.addDefaultRoute();
  });
  afterEach(async () => net?.destroy());
  const run = (...args: string[]) =>
    net.meshInit(['--ipv6', 'false', '--probe-timeout', '1', ...args]);

  it('--run-validation passes when outbound TCP lands on the proxy port', async () => {
    const result = await run('--run-validation');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('validation passed');
  });

  it('--run-validation exits 126 when the rules do not capture the probe', async () => {
    const result = await run('--run-validation', '-i', '');
    expect(result.exitCode).toBe(126);
    expect(result.stderr).toContain('validation failed');
  });

  it('--skip-rule-apply --run-validation only validates what is there', async () => {
    expect((await run('--skip-rule-apply', '--run-validation')).exitCode).toBe(126);
    expect((await run()).exitCode).toBe(0);
    expect((await run('--skip-rule-apply', '--run-validation')).exitCode).toBe(0);
  });

  it('--log-format json writes one JSON object per line: config, backend, outcome', async () => {
    const result = await run('--log-format', 'json');
    expect(result.exitCode).toBe(0);
    const events = result.stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; level: string });
    expect(events.map((e) => e.event)).toEqual(['config', 'backend', 'applied']);
  });
});
