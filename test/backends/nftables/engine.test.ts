/**
 * The native nftables backend through main(argv, env, deps): a fake `nft` that
 * records each script and answers as nft 1.0.6 does, on the fake system of the
 * iptables tests (its `ip` keeps TPROXY's rules and routes).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CommandResult } from '../../../src/system/exec.js';
import {
  type Call,
  exited,
  type FakeOptions,
  LIVE_NFT,
  notFound,
  run,
  SIX_ON_LO,
  success,
} from '../../fake-system.js';
import { TPROXY_INJECTOR } from '../../golden-configs.js';

const golden = (name: string) =>
  readFileSync(new URL(`../../golden/nftables/${name}`, import.meta.url), 'utf8');
const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/nftables/${name}`, import.meta.url), 'utf8');

const NATIVE = '--native-nftables';
const POD_RESOLV_CONF =
  'nameserver 10.96.0.10\nnameserver fd00:10:96::a\nnameserver 10.96.0.11#53\n';

/** nft's message for a failing line of `-f -`, as 1.0.6 prints it. */
const failedAt = (line: number, reason: string, text = '...') =>
  `/dev/stdin:${line}:1-10: Error: Could not process rule: ${reason}\n${text}\n^^^^^^^^^^\n`;

type Answer = CommandResult | ((script: string) => CommandResult);

/** A fake nft: `-f -` takes the script (or gives the answers in turn), `-j list` the ruleset. */
function fakeNft(options: { answers?: Answer[]; ruleset?: string } = {}) {
  const answers = [...(options.answers ?? [])];
  const scripts: string[] = [];
  const answer = (call: Call): CommandResult => {
    if (call.args.join(' ') === '-f -') {
      const script = call.input ?? '';
      scripts.push(script);
      const next = answers.shift() ?? success();
      return typeof next === 'function' ? next(script) : next;
    }
    if (call.args.join(' ') === '-j list ruleset inet') {
      return success(options.ruleset ?? '{"nftables": [{"metainfo": {}}]}');
    }
    throw new Error(`the fake nft does not know: nft ${call.args.join(' ')}`);
  };
  return { answer, scripts };
}

const runNative = (
  argv: string[],
  nft = fakeNft(),
  options: FakeOptions & { env?: Record<string, string> } = {},
) => run([NATIVE, ...argv], {}, { ...options, answers: { nft: nft.answer, ...options.answers } });

describe('apply and dry-run', () => {
  it.each<[string, string[], boolean, string]>([
    ['default.golden', ['-p', '15001', '-u', '1337'], true, ''],
    ['inbound-ports.golden', ['-b', '8080,9090'], false, ''],
    [
      'all-features.golden',
      [...TPROXY_INJECTOR, '--redirect-dns', '--drop-invalid'],
      true,
      POD_RESOLV_CONF,
    ],
  ])(
    '%s: apply feeds one nft -f, byte for byte what dry-run prints',
    async (name, argv, globalIpv6, resolvConf) => {
      const nft = fakeNft();
      const apply = await runNative(argv, nft, { globalIpv6, resolvConf });
      expect(apply.code, apply.stderr()).toBe(0);
      expect(nft.scripts).toEqual([golden(name)]);
      expect(apply.commands().filter((c) => c.startsWith('nft'))).toEqual(['nft -f -']);
      // Neither mode reads the ruleset; dry-run starts no program at all.
      const dry = await runNative([...argv, '--dry-run'], fakeNft(), { globalIpv6, resolvConf });
      expect(dry.code).toBe(0);
      expect(dry.stdout()).toBe(nft.scripts[0]);
      expect(dry.calls).toEqual([]);
    },
  );

  it('a fresh dual-stack pod: ::6 on lo, then one program for both families', async () => {
    const apply = await runNative([], fakeNft(), { globalIpv6: true });
    expect(apply.commands()).toEqual(['ip -6 addr replace ::6/128 dev lo', 'nft -f -']);
    expect(apply.stderrLines().slice(1)).toEqual([
      'mesh-init: backend: native nftables (set by --native-nftables)',
      'mesh-init: applied ipv4 (15 rules) and ipv6 (15 rules) with the native nftables backend',
    ]);
  });

  it('NATIVE_NFTABLES=true, as Istio sets it, is the same', async () => {
    const nft = fakeNft();
    const result = await run(
      [],
      {},
      { env: { NATIVE_NFTABLES: 'true' }, answers: { nft: nft.answer } },
    );
    expect(result.code).toBe(0);
    expect(nft.scripts).toHaveLength(1);
  });

  it('TPROXY: the policy route is in place before the one transaction', async () => {
    const apply = await runNative(['-m', 'TPROXY'], fakeNft(), { globalIpv6: true });
    expect(apply.code, apply.stderr()).toBe(0);
    expect(apply.commands().at(-1)).toBe('nft -f -');
    expect(apply.commands()).toContain('ip -4 rule add fwmark 1337 lookup 133 pref 32765');
    expect(apply.commands()).toContain('ip -6 route replace local ::/0 dev lo table 133');
  });

  it('--iptables-backend auto never picks native nftables: no nft is started', async () => {
    for (const argv of [[], ['--iptables-backend', 'auto']]) {
      const result = await run(argv, LIVE_NFT, {
        answers: {
          nft: () => {
            throw new Error('nft started');
          },
        },
      });
      expect(result.code).toBe(0);
      expect(result.commands().some((c) => c.startsWith('nft'))).toBe(false);
    }
  });

  it('--native-nftables with an iptables backend: exit 2, nothing started', async () => {
    const result = await runNative(['--iptables-backend', 'nft']);
    expect(result.code).toBe(2);
    expect(result.stderr()).toBe(
      'mesh-init: conflicting --native-nftables and --iptables-backend: native nftables uses no iptables backend\n',
    );
    expect(result.calls).toEqual([]);
  });
});

describe('failures change nothing', () => {
  it("a rejected script: exit 4 with nft's message and the line it names; no second try", async () => {
    const nft = fakeNft({ answers: [exited(1, failedAt(12, 'Operation not supported'))] });
    const result = await runNative(['-p', '15001'], nft);
    expect(result.code).toBe(4);
    const line = nft.scripts[0]?.split('\n')[11];
    expect(result.stderr()).toContain(
      'mesh-init: nft rejected the rules; nothing of them was applied: exit 1: /dev/stdin:12:1-10: Error: Could not process rule: Operation not supported',
    );
    expect(result.stderr()).toContain(`  line 12: ${line}`);
    expect(nft.scripts).toHaveLength(1);
  });

  it('a rejected script with TPROXY: the ip rule this run added is taken back', async () => {
    const nft = fakeNft({ answers: [exited(1, failedAt(3, 'No such file or directory'))] });
    const result = await runNative(['-m', 'TPROXY'], nft);
    expect(result.code).toBe(4);
    expect(result.commands()).toContain('ip -4 rule del fwmark 1337 lookup 133');
    expect(result.kernel.ipRules('ipv4')).toEqual([]);
  });

  it("no nft program: exit 3 naming what is missing, and TPROXY's rule taken back", async () => {
    const result = await runNative(['-m', 'TPROXY'], fakeNft(), { answers: { nft: notFound } });
    expect(result.code).toBe(3);
    expect(result.stderr()).toContain(
      "mesh-init: cannot run nft: not found; --native-nftables needs the nft program (Debian's nftables package)",
    );
    expect(result.kernel.ipRules('ipv4')).toEqual([]);
  });

  it('a busy kernel is waited for (--retry-interval) and tried again (--max-retries)', async () => {
    const busy = exited(
      1,
      'netlink: Error: Could not process rule: Resource temporarily unavailable\n',
    );
    const nft = fakeNft({ answers: [busy, busy] });
    const result = await runNative(['--retry-interval', '0.5'], nft);
    expect(result.code).toBe(0);
    expect(nft.scripts).toHaveLength(3);
    expect(result.sleeps).toEqual([500, 500]);
    const never = fakeNft({ answers: [busy, busy, busy] });
    const gaveUp = await runNative(['--max-retries', '2'], never);
    expect(gaveUp.code).toBe(4);
    expect(gaveUp.stderr()).toContain('the kernel stayed busy through 3 tries');
  });
});

describe('an earlier run that used TPROXY', () => {
  const guard = (script: string) =>
    script.split('\n').indexOf('create chain inet istio-proxy-mangle istio-tproxy') + 1;

  it('shows in the first try failing on its check alone; the tables are replaced without it and the route goes', async () => {
    const nft = fakeNft({
      answers: [(script) => exited(1, failedAt(guard(script), 'File exists', 'create chain …'))],
    });
    const result = await runNative([], nft, {
      ip: {
        ipv4: { rules: [{ mark: 1337, table: 133 }], routes: ['local default dev lo table 133'] },
      },
    });
    expect(result.code, result.stderr()).toBe(0);
    const dry = await runNative(['--dry-run'], fakeNft());
    expect(nft.scripts).toEqual([
      dry.stdout(),
      dry
        .stdout()
        .split('\n')
        .filter((l) => !l.startsWith('create chain') && !l.startsWith('# fails'))
        .join('\n'),
    ]);
    expect(guard(dry.stdout())).toBeGreaterThan(0);
    expect(result.stderr()).toContain('an earlier run used TPROXY');
    expect(result.stderr()).toContain('removed the ipv4 TPROXY route: TPROXY is no longer used');
    expect(result.kernel.ipRules('ipv4')).toEqual([]);
    expect(result.kernel.ipRoutes('ipv4')).toEqual([]);
  });

  it('another failure beside the check is a rejection', async () => {
    const nft = fakeNft({
      answers: [exited(1, failedAt(30, 'File exists') + failedAt(12, 'Operation not supported'))],
    });
    const result = await runNative([], nft);
    expect(result.code).toBe(4);
    expect(nft.scripts).toHaveLength(1);
  });
});

describe('cleanup and check', () => {
  it('--cleanup: one transaction deletes the three tables, then TPROXY route goes', async () => {
    const nft = fakeNft();
    const result = await runNative(['--cleanup', '-m', 'TPROXY', '--redirect-dns'], nft, {
      globalIpv6: true,
      ip: {
        ipv4: { rules: [{ mark: 1337, table: 133 }], routes: ['local default dev lo table 133'] },
      },
    });
    expect(result.code, result.stderr()).toBe(0);
    expect(nft.scripts).toEqual([golden('cleanup.golden')]);
    expect(result.commands()[0]).toBe('nft -f -');
    expect(result.kernel.ipRules('ipv4')).toEqual([]);
  });

  it('--check reads nft -j once: the live tables as planned is exit 0', async () => {
    const argv = [
      ...['--redirect-dns', '-c', 'veth+', '-o', '22', '-u', '1337,0', '-k', 'eth1'],
      ...['-i', '10.96.0.0/12,fd00::/64', '--check'],
    ];
    const options = { globalIpv6: true, ip: SIX_ON_LO, resolvConf: 'nameserver ::127.0.0.53\n' };
    const clean = await runNative(
      argv,
      fakeNft({ ruleset: fixture('ipv6-resolver-interfaces.json') }),
      options,
    );
    expect(clean.code, clean.stdout()).toBe(0);
    expect(clean.commands().filter((c) => c.startsWith('nft'))).toEqual([
      'nft -j list ruleset inet',
    ]);

    const drifted = await runNative(argv, fakeNft({ ruleset: fixture('drifted.json') }), options);
    expect(drifted.code).toBe(5);
    expect(drifted.stdout()).toBe(
      [
        'inet istio-proxy-nat istio-output:',
        '  - tcp dport 9 return',
        '  + ip daddr 127.0.0.1 return comment "mesh-init: localhost traffic inside the pod is not intercepted"',
        'inet istio-proxy-nat: chain extra is not planned',
        'inet istio-proxy-mangle: table is not planned (a run with these flags deletes it)',
        '',
      ].join('\n'),
    );
  });

  it('--check in a pod without mesh-init tables: each table is missing', async () => {
    const result = await runNative(['--check'], fakeNft());
    expect(result.code).toBe(5);
    expect(result.stdout()).toBe('inet istio-proxy-nat: table is missing\n');
  });

  it('--check without nft is exit 3; with output that is not JSON too', async () => {
    expect((await runNative(['--check'], fakeNft(), { answers: { nft: notFound } })).code).toBe(3);
    const garbled = await runNative(['--check'], fakeNft({ ruleset: 'table inet x {' }));
    expect(garbled.code).toBe(3);
    expect(garbled.stderr()).toContain('cannot read the nft ruleset');
  });
});
