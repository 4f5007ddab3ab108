/**
 * How --native-nftables applies on a real kernel: one transaction that a rule the
 * kernel rejects leaves without a trace, re-runs and racing runs that end in one
 * state, tables of others untouched, dry-run output that is what apply feeds, a
 * missing nft, and --check.
 */
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

/**
 * Tables of others: an inet table, an ip table that happens to be called as
 * mesh-init's nat table (another family, so not mesh-init's), and iptables-nft's nat.
 */
const FOREIGN_NFT = `add table inet foreign
add chain inet foreign output { type filter hook output priority 0; policy accept; }
add rule inet foreign output meta l4proto udp udp dport 9999 counter return comment "someone else's"
add table ip istio-proxy-nat
add chain ip istio-proxy-nat keep
add rule ip istio-proxy-nat keep tcp dport 9998 counter accept
`;
const FOREIGN_IPTABLES = '*nat\n-A OUTPUT -p udp --dport 9997 -j RETURN\nCOMMIT\n';

const NATIVE = ['--native-nftables', '-u', String(PROXY_UID), '--ipv6', 'true'];
const FULL = [
  ...NATIVE,
  ...['-p', '15001', '-z', '15006', '-m', 'TPROXY', '--redirect-dns', '--drop-invalid'],
  ...['-k', 'eth9', '-c', 'veth+', '-i', '10.96.0.0/12,fd00::/64', '-x', '10.96.0.1'],
];

kernelSuite('native nftables: apply', () => {
  let net: Pod;
  let dir: string;
  beforeEach(async () => {
    net = await Pod.create();
    net.setResolvConf('nameserver 10.96.0.10\nnameserver fd00:10:96::a\n');
    dir = await mkdtemp(join(tmpdir(), 'mesh-init-nft-'));
    await net.nftForeign(FOREIGN_NFT);
    await net.restoreForeign('nft', 'ipv4', FOREIGN_IPTABLES);
  });
  afterEach(async () => {
    await net?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const apply = async (args: string[], env: Record<string, string> = {}) => {
    const result = await net.meshInit(args, env);
    expect(result.stderr).not.toContain('internal error');
    return result;
  };
  /** The tables of others, each as nft lists it. */
  const foreign = async () => [
    await net.exec('pod', ['nft', 'list', 'table', 'inet', 'foreign']),
    await net.exec('pod', ['nft', 'list', 'table', 'ip', 'istio-proxy-nat']),
    await net.natTable('nft', 'ipv4'),
  ];
  const fwmarkRules = async () =>
    (await net.exec('pod', ['ip', '-4', 'rule', 'list'])) +
    (await net.exec('pod', ['ip', '-6', 'rule', 'list']));

  it('a rule the kernel rejects, at the end of the script: the ruleset stays exactly as it was', async () => {
    // A fake nft ahead of the real one: it adds a rule the kernel refuses (TPROXY
    // outside prerouting) after everything mesh-init feeds, then runs nft.
    const fake = join(dir, 'nft');
    await writeFile(
      fake,
      [
        '#!/bin/sh',
        'if [ "$1" = "-f" ]; then',
        '  { cat; echo "add rule inet istio-proxy-nat output meta l4proto tcp tproxy to :1"; } | /usr/sbin/nft "$@"',
        '  exit $?',
        'fi',
        'exec /usr/sbin/nft "$@"',
        '',
      ].join('\n'),
    );
    await chmod(fake, 0o755);
    const env = { PATH: `${dir}:${process.env.PATH}` };
    for (const before of ['fresh', 'applied']) {
      if (before === 'applied') expect((await apply(NATIVE)).exitCode).toBe(0);
      const ruleset = await net.nftRuleset();
      const result = await apply(FULL, env);
      expect(result.exitCode, before).toBe(4);
      expect(result.stderr).toContain('Operation not supported');
      // nft names the line; it is not mesh-init's, so only nft's own message shows it.
      expect(result.stderr).toContain(
        'add rule inet istio-proxy-nat output meta l4proto tcp tproxy to :1',
      );
      expect(await net.nftRuleset(), before).toBe(ruleset);
      // TPROXY's ip rule was added before the transaction: it is taken back too.
      expect(await fwmarkRules()).not.toContain('lookup 133');
    }
  });

  it('10 re-runs leave exactly the ruleset of the first', async () => {
    expect((await apply(FULL)).exitCode).toBe(0);
    const first = await net.nftRuleset();
    expect(first.match(/^table inet istio-proxy-nat \{$/gm)).toHaveLength(1);
    for (let run = 0; run < 10; run++) {
      expect((await apply(FULL)).exitCode).toBe(0);
      expect(await net.nftRuleset()).toBe(first);
    }
    expect((await fwmarkRules()).match(/lookup 133/g)).toHaveLength(2);
  });

  it('8 runs at once end in the state of one run', async () => {
    const runs = await Promise.all(Array.from({ length: 8 }, () => apply(FULL)));
    for (const run of runs) expect(run.exitCode, run.stderr).toBe(0);
    const raced = await net.nftRuleset();
    expect((await apply(FULL)).exitCode).toBe(0);
    expect(await net.nftRuleset()).toBe(raced);
    expect((await fwmarkRules()).match(/lookup 133/g)).toHaveLength(2);
    expect((await apply([...FULL, '--check'])).exitCode).toBe(0);
  });

  it('tables of others stay as they are through apply, re-apply with other flags, and cleanup', async () => {
    const before = await foreign();
    for (const args of [FULL, FULL, NATIVE, [...NATIVE, '--cleanup']]) {
      expect((await apply(args)).exitCode).toBe(0);
      expect(await foreign()).toEqual(before);
    }
    expect(await net.nftRuleset()).not.toMatch(/table inet istio-proxy/);
  });

  it('--cleanup deletes exactly the tables; on a clean pod it changes nothing', async () => {
    expect((await apply(FULL)).exitCode).toBe(0);
    const clean = [...FULL, '--cleanup'];
    expect((await apply(clean)).exitCode).toBe(0);
    const after = await net.nftRuleset();
    expect(after).not.toContain('istio-proxy-mangle');
    expect(await fwmarkRules()).not.toContain('lookup 133');
    expect((await apply(clean)).exitCode).toBe(0);
    expect(await net.nftRuleset()).toBe(after);
  });

  it('piping --dry-run into nft -f is the same as applying', async () => {
    const dry = await apply([...FULL, '--dry-run']);
    expect(dry.exitCode).toBe(0);
    const other = await Pod.create();
    try {
      await other.nftForeign(FOREIGN_NFT);
      await other.restoreForeign('nft', 'ipv4', FOREIGN_IPTABLES);
      await execa('ip', ['netns', 'exec', other.pod, 'nft', '-f', '-'], { input: dry.stdout });
      expect((await apply(FULL)).exitCode).toBe(0);
      expect(await other.nftRuleset()).toBe(await net.nftRuleset());
    } finally {
      await other.destroy();
    }
  });

  it('without nft: exit 3 naming it, and nothing applied (TPROXY rule taken back)', async () => {
    // Only ip on PATH.
    await symlink('/usr/sbin/ip', join(dir, 'ip'));
    const ruleset = await net.nftRuleset();
    const result = await apply(FULL, { PATH: dir });
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain(
      "cannot run nft: not found; --native-nftables needs the nft program (Debian's nftables package)",
    );
    expect(await net.nftRuleset()).toBe(ruleset);
    expect(await fwmarkRules()).not.toContain('lookup 133');
  });

  it('--check sees a rule of others in an owned chain; a re-run mends it', async () => {
    expect((await apply(NATIVE)).exitCode).toBe(0);
    await net.exec('pod', [
      ...['nft', 'insert', 'rule', 'inet', 'istio-proxy-nat', 'istio-output'],
      ...['tcp', 'dport', '9', 'return'],
    ]);
    const drift = await apply([...NATIVE, '--check']);
    expect(drift.exitCode).toBe(5);
    expect(drift.stdout).toBe('inet istio-proxy-nat istio-output:\n  - tcp dport 9 return\n');
    expect((await apply(NATIVE)).exitCode).toBe(0);
    expect((await apply([...NATIVE, '--check'])).exitCode).toBe(0);
  });
});
