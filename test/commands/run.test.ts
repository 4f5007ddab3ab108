import { describe, expect, it } from 'vitest';
import { findDrift } from '../../src/backends/iptables/drift.js';
import { planTransaction, planUndo } from '../../src/backends/iptables/reconcile.js';
import { renderRestore } from '../../src/backends/iptables/render.js';
import { EMPTY_STATE, parseTableState, tableSection } from '../../src/backends/iptables/state.js';
import type { Family } from '../../src/config/net.js';
import { planNat, planTables } from '../../src/plan/plan.js';
import { TABLES } from '../../src/plan/rules.js';
import type { CommandResult } from '../../src/system/exec.js';
import { configFrom, withResolvConf } from '../config-from.js';
import {
  type Answer,
  beforeC1467e4,
  type Call,
  exited,
  type FakeKernel,
  type FakeOptions,
  fixture,
  golden,
  hooksFirst,
  type IpSetup,
  LIVE_LEGACY,
  LIVE_NFT,
  notFound,
  POD_RESOLV_CONF,
  RERUN_LEGACY,
  RERUN_NFT,
  run,
  type Setup,
  SIX_ON_LO,
  success,
  type TableKey,
} from '../fake-system.js';
import { ALL_FEATURES, TPROXY_INJECTOR } from '../golden-configs.js';

/** How the kernel's table differs from the plan of argv (findDrift); [] when it holds it. */
async function driftIn(
  system: { kernel: { natText: (key: TableKey) => string } },
  key: TableKey,
  argv: string[] = [],
) {
  const family: Family = key.endsWith('ipv6') ? 'ipv6' : 'ipv4';
  const config = await configFrom(argv);
  return findDrift(planNat(config, family), stateOf(system, key), config.chainPrefix);
}

/** The `*nat … COMMIT` lines of a dump, as iptables-save printed them. */
const natLinesOf = (dump: string) => /^\*nat\n[\s\S]*?^COMMIT\n/m.exec(dump)?.[0];

const HOOK_IN =
  '-p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j ISTIO_INBOUND';
const HOOK_OUT =
  '-p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT';
/**
 * What --cleanup asks ip after the tables, per family, where TPROXY's rule and route
 * are not there: the rule is listed (no copy to delete), the route table shown (never made).
 */
const ROUTE_LOOKUPS = (...families: ('-4' | '-6')[]) =>
  families.flatMap((f) => [
    `ip ${f} rule list fwmark 1337 table 133`,
    `ip ${f} route show table 133`,
  ]);
const LOCK = (seconds: number) =>
  `Another app is currently holding the xtables lock. Stopped waiting after ${seconds}s.\n`;

/** Fails the first `times` calls with `result`, then lets the kernel answer. */
function failing(times: number, result: ReturnType<typeof exited>): Answer {
  let left = times;
  return () => {
    if (left === 0) return undefined;
    left--;
    return result;
  };
}

/** What the kernel holds for one table, read like mesh-init reads it. */
const stateOf = (system: { kernel: { natText: (key: TableKey) => string } }, key: TableKey) =>
  parseTableState(system.kernel.natText(key), 'nat');

describe('a busy xtables lock is waited for and tried again', () => {
  it.each<[string, string[], number, string, { code: number; tries: number; sleeps: number[] }]>([
    ['busy once, defaults', [], 1, LOCK(10), { code: 0, tries: 2, sleeps: [1000] }],
    [
      'busy 3 times, 3 retries every 0.25 s',
      ['--max-retries', '3', '--retry-interval', '0.25'],
      3,
      LOCK(10),
      { code: 0, tries: 4, sleeps: [250, 250, 250] },
    ],
    [
      'busy 4 times, 3 retries',
      ['--max-retries', '3', '--retry-interval', '0.25'],
      4,
      LOCK(10),
      { code: 4, tries: 4, sleeps: [250, 250, 250] },
    ],
    ['no retries', ['--max-retries', '0'], 1, LOCK(10), { code: 4, tries: 1, sleeps: [] }],
    [
      'no pause between tries',
      ['--retry-interval', '0'],
      2,
      LOCK(10),
      { code: 0, tries: 3, sleeps: [0, 0] },
    ],
    [
      "nft's busy table",
      [],
      2,
      'iptables-nft-restore: line 2 failed: Resource temporarily unavailable\n',
      { code: 0, tries: 3, sleeps: [1000, 1000] },
    ],
    [
      'a busy device',
      [],
      1,
      'iptables-restore: Device or resource busy\n',
      { code: 0, tries: 2, sleeps: [1000] },
    ],
  ])('%s', async (_name, argv, busy, stderr, expected) => {
    const result = await run(argv, LIVE_NFT, {
      answers: { 'iptables-nft-restore': failing(busy, exited(4, stderr)) },
    });
    expect(result.code).toBe(expected.code);
    const tries = result.restores();
    expect(tries).toHaveLength(expected.tries);
    // The same text each time, and nothing else runs between the tries.
    for (const t of tries) expect(t).toEqual(tries[0]);
    const first = result.calls.findIndex((c) => c.file.endsWith('-restore'));
    expect(result.calls.slice(first, first + tries.length)).toEqual(tries);
    expect(result.sleeps).toEqual(expected.sleeps);
  });

  it('gives up with exit 4, naming the lock and the flags that would help', async () => {
    const argv = ['--wait', '7', '--max-retries', '2', '--retry-interval', '0.5'];
    const result = await run(argv, LIVE_NFT, {
      answers: { 'iptables-nft-restore': exited(4, LOCK(7)) },
    });
    expect(result.code).toBe(4);
    expect(result.restores().map((c) => c.args)).toEqual([
      ['--noflush', '--wait=7'],
      ['--noflush', '--wait=7'],
      ['--noflush', '--wait=7'],
    ]);
    expect(result.sleeps).toEqual([500, 500]);
    expect(result.stderrLines().at(-1)).toBe(
      'mesh-init: iptables-nft-restore found the ipv4 tables busy 3 times (--wait 7 s, --max-retries 2, --retry-interval 0.5 s); nothing of the ipv4 rules was applied: exit 4: Another app is currently holding the xtables lock. Stopped waiting after 7s.',
    );
  });

  it.each<[string[], string[]]>([
    [[], ['--noflush', '--wait=10']],
    [
      ['--wait', '3'],
      ['--noflush', '--wait=3'],
    ],
    [['--wait', '0'], ['--noflush']],
  ])('%j: *-restore gets %j', async (argv, args) => {
    const result = await run(argv);
    expect(result.code).toBe(0);
    expect(result.restores().map((c) => c.args)).toEqual([args]);
  });

  // Line 17 is the first -A over LIVE_NFT (lines 7-16 move the hooks to the top): not
  // stale, so not read again either.
  it.each<[string, ReturnType<typeof exited>]>([
    ['a rejected rule', exited(1, 'iptables-restore: line 17 failed\n')],
    ['a parse error', exited(2, "Bad argument `--bogus'\nError occurred at line: 17\n")],
    ['a missing table', exited(1, "iptables-restore: unable to initialize table 'nat'\n")],
  ])('%s is not tried again', async (_name, answer) => {
    const result = await run([], LIVE_NFT, { answers: { 'iptables-nft-restore': answer } });
    expect(result.code).toBe(4);
    expect(result.restores()).toHaveLength(1);
    expect(result.sleeps).toEqual([]);
  });
});

describe('a jump that another run removed meanwhile', () => {
  // -b "" drops the PREROUTING hook, so the live hooks are deleted and re-added; a -D
  // that fails because another run removed that jump first is read again and retried.
  const argv = ['-b', ''];
  /** Before the first `times` restores, another run removes the PREROUTING hook. */
  const racedBy =
    (key: TableKey, times: number): Answer =>
    (call, kernel) => {
      if (times === 0 || !call.args.includes('--noflush')) return undefined;
      times--;
      kernel.change(key, (chains) => {
        const prerouting = chains.find((c) => c.name === 'PREROUTING');
        if (prerouting) prerouting.rules = [];
      });
      return undefined;
    };

  it('IPv4: read again and retried after a random pause', async () => {
    const result = await run(argv, LIVE_NFT, {
      random: 0.25,
      answers: { 'iptables-nft-restore': racedBy('nft/ipv4', 1) },
    });
    expect(result.code).toBe(0);
    const [first = '', second = ''] = result.restores().map((c) => c.input ?? '');
    expect(result.restores()).toHaveLength(2);
    expect(first).toContain(`\n-D PREROUTING ${HOOK_IN}\n`);
    // Read again: the other run left the OUTPUT hook -b "" wants, but behind Docker's
    // jump, so it is moved to the top; the PREROUTING hook already gone is not deleted.
    expect(second.split('\n').filter((l) => l.startsWith('-D '))).toEqual([
      `-D OUTPUT ${HOOK_OUT}`,
    ]);
    expect(stateOf(result, 'nft/ipv4').rules.find((r) => r.chain === 'OUTPUT')?.spec).toBe(
      HOOK_OUT,
    );
    expect(result.sleeps).toEqual([250]);
    expect(await driftIn(result, 'nft/ipv4', argv)).toEqual([]);
  });

  it('IPv6 after IPv4 was applied: retried without putting IPv4 back', async () => {
    const result = await run(argv, LIVE_NFT, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-restore': racedBy('nft/ipv6', 1) },
    });
    expect(result.code).toBe(0);
    expect(result.restores().map((c) => [c.file, ...c.args].join(' '))).toEqual([
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
    ]);
    expect(result.sleeps).toEqual([500]);
    expect(await driftIn(result, 'nft/ipv4', argv)).toEqual([]);
    expect(await driftIn(result, 'nft/ipv6', argv)).toEqual([]);
  });

  it('every time: gives up after --max-retries with exit 4 and the offending -D', async () => {
    // Another program removes the hook just before each restore that deletes it, and
    // puts it back just after, so every read sees it and every -D misses it.
    const flapping: Answer = (call, kernel) => {
      if (!call.input?.includes(`\n-D PREROUTING ${HOOK_IN}\n`)) return undefined;
      kernel.change('nft/ipv4', (chains) => {
        const prerouting = chains.find((c) => c.name === 'PREROUTING');
        if (prerouting) prerouting.rules = [];
      });
      const answer = kernel.run(call);
      kernel.append('nft/ipv4', 'PREROUTING', HOOK_IN);
      return answer;
    };
    const result = await run([...argv, '--max-retries', '2'], LIVE_NFT, {
      answers: { 'iptables-nft-restore': flapping },
    });
    expect(result.code).toBe(4);
    expect(result.restores()).toHaveLength(3);
    expect(result.sleeps).toHaveLength(2);
    expect(result.stderrLines().slice(-2)).toEqual([
      'mesh-init: iptables-nft-restore rejected the ipv4 rules (nothing of them was applied): exit 1: iptables-nft-restore: line 7 failed: Bad rule (does a matching rule exist in that chain?).',
      `  line 7: -D PREROUTING ${HOOK_IN}`,
    ]);
  });
});

describe('all or nothing across families: a later family failing puts the earlier back', () => {
  // Line 17 is the first -A of a text that moves LIVE_NFT's hooks to the top (lines
  // 7-16 unhook and recreate the chains): a rejected rule, not a stale read.
  const V6_REJECTED = 'ip6tables-restore: line 17 failed\n';

  // The exit code is the later family's own: the rollback only adds its notes.
  it.each<[string, string[], Answer, string, number]>([
    [
      'IPv6 rejected',
      [],
      exited(1, V6_REJECTED),
      'mesh-init: ip6tables-nft-restore rejected the ipv6 rules (nothing of them was applied): exit 1: ip6tables-restore: line 17 failed',
      4,
    ],
    [
      'IPv6 busy until the retries ran out',
      ['--max-retries', '1'],
      exited(4, LOCK(10)),
      'mesh-init: ip6tables-nft-restore found the ipv6 tables busy 2 times (--wait 10 s, --max-retries 1, --retry-interval 1 s); nothing of the ipv6 rules was applied: exit 4: Another app is currently holding the xtables lock. Stopped waiting after 10s.',
      4,
    ],
    [
      'ip6tables-nft-restore missing',
      [],
      notFound,
      'mesh-init: cannot run ip6tables-nft-restore: not found',
      3,
    ],
  ])(
    '%s: IPv4 restored without --noflush from its saved nat section',
    async (_name, argv, v6, v6Error, code) => {
      // -p 15002: IPv4 really changes, so putting it back is visible in the kernel.
      const result = await run(['-p', '15002', ...argv], LIVE_NFT, {
        globalIpv6: true,
        answers: { 'ip6tables-nft-restore': v6 },
      });
      expect(result.code).toBe(code);
      const ipv4 = result.restores().filter((c) => c.file === 'iptables-nft-restore');
      expect(ipv4.map((c) => c.args)).toEqual([['--noflush', '--wait=10'], ['--wait=10']]);
      // Exactly the nat section of the IPv4 dump read at the start (the whole dump of
      // the nft backend, other tables and comments left out).
      expect(ipv4[1]?.input).toBe(natLinesOf(fixture('iptables-nft-save.txt')));
      expect(stateOf(result, 'nft/ipv4')).toEqual(
        parseTableState(fixture('iptables-nft-save.txt'), 'nat'),
      );
      // The rollback is the last thing run: no read-back, no retry.
      expect(result.calls.at(-1)).toBe(ipv4[1]);
      // The note is indented under the error it follows.
      const lines = result.stderrLines();
      expect(lines.at(-1)).toBe('  ipv4 nat was put back as it was');
      expect(lines).toContain(v6Error);
      expect(lines.indexOf(v6Error)).toBeLessThan(lines.length - 1);
    },
  );

  it('with a forced backend the saved section is the `-t nat` dump', async () => {
    const result = await run(['--iptables-backend', 'legacy', '-p', '15002'], LIVE_LEGACY, {
      globalIpv6: true,
      answers: { 'ip6tables-legacy-restore': exited(1, V6_REJECTED) },
    });
    expect(result.code).toBe(4);
    const rollback = result.restores().at(-1);
    expect(rollback?.file).toBe('iptables-legacy-restore');
    expect(rollback?.args).toEqual(['--wait=10']);
    expect(rollback?.input).toBe(natLinesOf(fixture('iptables-legacy-save.txt')));
    expect(stateOf(result, 'legacy/ipv4')).toEqual(
      parseTableState(fixture('iptables-legacy-save.txt'), 'nat'),
    );
  });

  // A restore that cannot even be started exits 3 for IPv4 alone (see cli.test.ts),
  // and so it does when IPv6 is the one missing: errors.ts documents exit 3 as "the
  // system cannot do it … nothing applied", which is still true after the rollback.
  it('a later family that cannot be started still exits 3 after the rollback', async () => {
    const result = await run([], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-restore': notFound },
    });
    expect(result.stderrLines().slice(-2)).toEqual([
      'mesh-init: cannot run ip6tables-nft-restore: not found',
      '  ipv4 nat was put back as it was',
    ]);
    expect(result.code).toBe(3);
  });

  it('a forced backend on a fresh pod (nothing read): what IPv4 added is taken back', async () => {
    // Line 15 of a fresh text is its first -A (lines 7-14 recreate the chains).
    const result = await run(
      ['--iptables-backend', 'nft'],
      {},
      {
        globalIpv6: true,
        answers: { 'ip6tables-nft-restore': exited(1, 'ip6tables-restore: line 15 failed\n') },
      },
    );
    expect(result.code).toBe(4);
    expect(result.commands()).toEqual([
      'ip -6 addr replace ::6/128 dev lo',
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
      'iptables-nft-restore --noflush --wait=10',
    ]);
    const undo = result.restores()[2]?.input ?? '';
    expect(undo.split('\n').filter((l) => /^-[DX] /.test(l))).toEqual([
      `-D PREROUTING ${HOOK_IN}`,
      `-D OUTPUT ${HOOK_OUT}`,
      // Every chain mesh-init may own in nat: never read, the table may hold any of them.
      ...['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT', 'OUTPUT_DNS'].map((c) => `-X ISTIO_${c}`),
    ]);
    expect(undo).not.toMatch(/^-A /m);
    expect(stateOf(result, 'nft/ipv4')).toEqual({
      chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
      rules: [],
    });
    expect(result.stderrLines().at(-1)).toBe(
      "  ipv4 nat was put back: this run's jumps and mesh-init's chains were removed",
    );
  });

  it('the rollback failing too is reported, with both errors', async () => {
    const result = await run(['-p', '15002'], LIVE_NFT, {
      globalIpv6: true,
      answers: {
        'ip6tables-nft-restore': exited(1, V6_REJECTED),
        'iptables-nft-restore': (call) =>
          call.args.includes('--noflush')
            ? undefined
            : exited(1, 'iptables-restore: line 2 failed\n'),
      },
    });
    expect(result.code).toBe(4);
    const text = result.stderr();
    expect(text).toContain('ip6tables-nft-restore rejected the ipv6 rules');
    expect(text).toContain(
      "\n  putting ipv4 nat back failed too, it keeps this run's rules: iptables-nft-restore rejected the ipv4 rules (nothing of them was applied): exit 1: iptables-restore: line 2 failed\n      line 2: :PREROUTING ACCEPT [0:0]",
    );
    expect(text).not.toContain('was put back as it was');
    // IPv4 keeps the new rules: nothing could put it back.
    expect(await driftIn(result, 'nft/ipv4', ['-p', '15002'])).toEqual([]);
  });

  it('the first family failing needs no rollback', async () => {
    const result = await run([], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'iptables-nft-restore': exited(1, 'iptables-restore: line 17 failed\n') },
    });
    expect(result.code).toBe(4);
    expect(result.restores().map((c) => c.file)).toEqual(['iptables-nft-restore']);
  });

  it('--cleanup: IPv6 failing puts the IPv4 rules back', async () => {
    const result = await run(['--cleanup'], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-restore': exited(1, V6_REJECTED) },
    });
    expect(result.code).toBe(4);
    expect(result.stderrLines().at(-1)).toBe('  ipv4 nat was put back as it was');
    expect(stateOf(result, 'nft/ipv4')).toEqual(
      parseTableState(fixture('iptables-nft-save.txt'), 'nat'),
    );
  });
});

describe('what this run changed is put back, whatever fails after it', () => {
  // IPv6 holds mesh-init's rules, IPv4 none: with a forced backend the unread first try
  // applies IPv4 and then fails on IPv6's -X (stale), so IPv4 is changed before any read.
  const HALF: Setup = { 'nft/ipv4': '', 'nft/ipv6': fixture('ip6tables-nft-save-nat.txt') };
  const FORCED = ['--iptables-backend', 'nft'];
  const EMPTY_V4 = { chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'], rules: [] };
  const FIRST_TRY = [
    'ip -6 addr replace ::6/128 dev lo',
    'iptables-nft-restore --noflush --wait=10',
    'ip6tables-nft-restore --noflush --wait=10',
  ];
  /** Lets the kernel answer the first `times` calls, then answers `result`. */
  const kernelThen =
    (times: number, result: CommandResult): Answer =>
    () => {
      if (times === 0) return result;
      times--;
      return undefined;
    };
  /** The undo of the unread first try's IPv4 text: what it added, taken back. */
  const undoOfFirstTry = async () => {
    const config = await configFrom(FORCED);
    const fresh = planTransaction(planNat(config, 'ipv4'), EMPTY_STATE, config.chainPrefix);
    return renderRestore(planUndo(fresh));
  };

  it('the re-planned IPv6 rejected: IPv4 is undone, not restored to the table read after it', async () => {
    // Line 17: the first -A of the re-planned text, which moves the hooks to the top.
    const rejected = exited(1, 'ip6tables-restore: line 17 failed\n');
    const result = await run(FORCED, HALF, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-restore': kernelThen(1, rejected) },
    });
    expect(result.code).toBe(4);
    expect(result.commands()).toEqual([
      ...FIRST_TRY,
      'iptables-nft-save',
      'ip6tables-nft-save',
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
      'iptables-nft-restore --noflush --wait=10',
    ]);
    // The first IPv6 try failed on an -X, changing nothing: read and planned anew, at once.
    expect(result.outcomes[2]?.stderr).toContain('CHAIN_DEL failed (Device or resource busy)');
    expect(result.sleeps).toEqual([]);
    // The read came after IPv4 was changed: putting that back would keep this run's rules.
    expect(result.outcomes[3]?.stdout).toContain(':ISTIO_OUTPUT - [0:0]');
    const rollback = result.restores().at(-1);
    expect(rollback?.input).toBe(await undoOfFirstTry());
    expect(stateOf(result, 'nft/ipv4')).toEqual(EMPTY_V4);
    expect(result.kernel.natText('nft/ipv6')).toBe(HALF['nft/ipv6']);
    const lines = result.stderrLines();
    expect(lines).toContain(
      'mesh-init: ip6tables-nft-restore rejected the ipv6 rules (nothing of them was applied): exit 1: ip6tables-restore: line 17 failed',
    );
    expect(lines.at(-1)).toBe(
      "  ipv4 nat was put back: this run's jumps and mesh-init's chains were removed",
    );
  });

  it.each<[string, string]>([
    ['iptables-nft-save', 'cannot read the ipv4 tables: iptables-nft-save not found'],
    ['ip6tables-nft-save', 'cannot read the ipv6 tables: ip6tables-nft-save not found'],
  ])(
    'the re-read failing (%s cannot start) after IPv4 was applied: IPv4 undone, exit 3',
    async (save, why) => {
      const result = await run(FORCED, HALF, { globalIpv6: true, answers: { [save]: notFound } });
      expect(result.code).toBe(3);
      expect(result.commands()).toEqual([
        ...FIRST_TRY,
        'iptables-nft-save',
        ...(save.startsWith('ip6') ? ['ip6tables-nft-save'] : []),
        'iptables-nft-restore --noflush --wait=10',
      ]);
      expect(result.restores().at(-1)?.input).toBe(await undoOfFirstTry());
      expect(stateOf(result, 'nft/ipv4')).toEqual(EMPTY_V4);
      expect(result.kernel.natText('nft/ipv6')).toBe(HALF['nft/ipv6']);
      expect(result.stderrLines().slice(-2)).toEqual([
        `mesh-init: ${why}`,
        "  ipv4 nat was put back: this run's jumps and mesh-init's chains were removed",
      ]);
    },
  );

  it('backend auto, the re-read failing after IPv4 was applied: IPv4 restored as first read, exit 3', async () => {
    // -b "" deletes the live PREROUTING hook; another program removes the IPv6 one just
    // before, so IPv6 fails stale after IPv4 was applied, and then no save can start.
    const removeV6Hook: Answer = (call, kernel) => {
      kernel.change('nft/ipv6', (chains) => {
        const prerouting = chains.find((c) => c.name === 'PREROUTING');
        if (prerouting) prerouting.rules = [];
      });
      return kernel.run(call);
    };
    const result = await run(['-b', ''], LIVE_NFT, {
      globalIpv6: true,
      answers: {
        'ip6tables-nft-restore': removeV6Hook,
        'iptables-nft-save': kernelThen(1, notFound),
        'iptables-legacy-save': kernelThen(1, notFound),
      },
    });
    expect(result.code).toBe(3);
    // The re-read sticks to the backend the run chose: its nat table only.
    expect(result.commands().slice(-5)).toEqual([
      'ip -6 addr replace ::6/128 dev lo',
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
      'iptables-nft-save',
      'iptables-nft-restore --wait=10',
    ]);
    expect(result.outcomes[result.calls.length - 3]?.stderr).toContain('Bad rule');
    expect(result.sleeps).toEqual([500]);
    expect(result.restores().at(-1)?.input).toBe(natLinesOf(fixture('iptables-nft-save.txt')));
    expect(stateOf(result, 'nft/ipv4')).toEqual(
      parseTableState(fixture('iptables-nft-save.txt'), 'nat'),
    );
    expect(result.stderrLines().slice(-2)).toEqual([
      'mesh-init: cannot read the ipv4 tables: iptables-nft-save not found',
      '  ipv4 nat was put back as it was',
    ]);
  });

  it.each<[string, string[], string[]]>([
    ['auto', [], ['iptables-nft-save', 'iptables-legacy-save', 'ip6tables-nft-save']],
    ['forced', FORCED, ['iptables-nft-save', 'ip6tables-nft-save']],
  ])(
    '--cleanup (%s backend) failing on IPv6: IPv4 restored as read, without --noflush',
    async (_name, argv, reads) => {
      const result = await run(['--cleanup', ...argv], LIVE_NFT, {
        globalIpv6: true,
        answers: { 'ip6tables-nft-restore': exited(1, 'ip6tables-restore: line 9 failed\n') },
      });
      expect(result.code).toBe(4);
      // TPROXY's rule and route are looked for only after the tables: never reached.
      expect(result.commands()).toEqual([
        ...reads,
        'iptables-nft-restore --noflush --wait=10',
        'ip6tables-nft-restore --noflush --wait=10',
        'iptables-nft-restore --wait=10',
      ]);
      expect(result.restores().at(-1)?.input).toBe(natLinesOf(fixture('iptables-nft-save.txt')));
      expect(stateOf(result, 'nft/ipv4')).toEqual(
        parseTableState(fixture('iptables-nft-save.txt'), 'nat'),
      );
      expect(result.stderrLines().slice(-3)).toEqual([
        'mesh-init: ip6tables-nft-restore rejected the ipv6 rules (nothing of them was applied): exit 1: ip6tables-restore: line 9 failed',
        expect.stringMatching(/^ {2}line 9: /),
        '  ipv4 nat was put back as it was',
      ]);
      expect(result.stderr()).not.toContain("removed mesh-init's chains");
    },
  );
});

describe('planned for what is live: a first try, a re-run, runs racing each other', () => {
  const DEFAULT_V4 = () => golden('default.ipv4.golden');
  const onePerHook = (result: { kernel: { natText: (key: TableKey) => string } }, key: TableKey) =>
    stateOf(result, key)
      .rules.filter((r) => r.target?.startsWith('ISTIO_') && /^[A-Z]+$/.test(r.chain))
      .map((r) => r.chain);

  it.each<[string, Setup, string]>([
    ['nft', LIVE_NFT, 'CHAIN_DEL failed (Device or resource busy): chain ISTIO_INBOUND'],
    ['legacy', LIVE_LEGACY, 'iptables-restore: line 7 failed'],
  ])(
    'a forced backend (%s) re-run: the unread try fails on -X, changing nothing; one read, then the planned text',
    async (backend, setup, why) => {
      const result = await run(['--iptables-backend', backend], setup);
      expect(result.code).toBe(0);
      expect(result.commands()).toEqual([
        `iptables-${backend}-restore --noflush --wait=10`,
        `iptables-${backend}-save`,
        `iptables-${backend}-restore --noflush --wait=10`,
      ]);
      const [unread, planned] = result.restores();
      expect(unread?.input).toBe(DEFAULT_V4());
      expect(result.outcomes[0]?.stderr).toContain(why);
      // Not a busy lock: read at once, no pause, no second try of the same text.
      expect(result.sleeps).toEqual([]);
      // Planned from the read: the OUTPUT hook an older run left behind Docker's jump is
      // moved to the top (the rerun golden).
      expect(planned?.input).toBe(golden('rerun.ipv4.golden'));
      expect(await driftIn(result, `${backend as 'nft' | 'legacy'}/ipv4`)).toEqual([]);
    },
  );

  it('duplicated hooks left by older runs: all deleted, the chains recreated, one of each added', async () => {
    const hook = `-A PREROUTING ${HOOK_IN}`;
    const dump = fixture('iptables-nft-save.txt').replace(`${hook}\n`, `${hook}\n${hook}\n`);
    const result = await run([], { 'nft/ipv4': dump, 'legacy/ipv4': '' });
    expect(result.code).toBe(0);
    const text = result.restores()[0]?.input ?? '';
    expect(text.split('\n').filter((l) => /^-[DXN] /.test(l))).toEqual([
      `-D PREROUTING ${HOOK_IN}`,
      `-D PREROUTING ${HOOK_IN}`,
      `-D OUTPUT ${HOOK_OUT}`,
      ...['-X', '-N'].flatMap((c) =>
        ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'].map((n) => `${c} ISTIO_${n}`),
      ),
    ]);
    expect(onePerHook(result, 'nft/ipv4')).toEqual(['PREROUTING', 'OUTPUT']);
    expect(await driftIn(result, 'nft/ipv4')).toEqual([]);
  });

  it('another run applies between our read and our restore: read again, keep its hooks, no duplicates', async () => {
    let raced = false;
    const result = await run(
      [],
      {},
      {
        random: 0.3,
        answers: {
          'iptables-nft-restore': (call, kernel) => {
            if (!raced) {
              raced = true;
              // The other run read the same empty table and got there first.
              kernel.run({ ...call, input: DEFAULT_V4() });
            }
            return undefined;
          },
        },
      },
    );
    expect(result.code).toBe(0);
    // The other run's hooks head their chains: kept, the owned chains only refilled.
    expect(result.restores().map((c) => c.input)).toEqual(
      [DEFAULT_V4(), DEFAULT_V4(), golden('rerun-hooks-lead.ipv4.golden')].slice(1),
    );
    expect(result.outcomes.filter((o) => o.exitCode !== 0)).toHaveLength(1);
    expect(result.sleeps).toEqual([300]);
    expect(onePerHook(result, 'nft/ipv4')).toEqual(['PREROUTING', 'OUTPUT']);
    expect(await driftIn(result, 'nft/ipv4')).toEqual([]);
    const applied = result.stderrLines().at(-1);
    expect(applied).toMatch(/^mesh-init: applied ipv4 /);
  });

  /** Before each restore, another program adds one more jump into an owned chain. */
  const keepsJumpingIn: Answer = (call, kernel) => {
    if (call.args.includes('--noflush')) {
      const key: TableKey = call.file.startsWith('iptables-nft') ? 'nft/ipv4' : 'legacy/ipv4';
      kernel.append(key, 'INPUT', '-j ISTIO_INBOUND');
    }
    return undefined;
  };

  it.each<[string[], number, number]>([
    [['--max-retries', '0'], 1, 0],
    [['--max-retries', '1'], 2, 1],
    [[], 4, 3],
    [['--iptables-backend', 'nft', '--max-retries', '1'], 3, 1],
  ])('never the same twice, %j: exit 4 after %i restores', async (argv, restores, sleeps) => {
    const result = await run(argv, {}, { answers: { 'iptables-nft-restore': keepsJumpingIn } });
    expect(result.code).toBe(4);
    expect(result.restores()).toHaveLength(restores);
    expect(result.applied()).toEqual([]);
    expect(result.sleeps).toHaveLength(sleeps);
    // The last text deletes the jumps read so far, then fails on the one added since.
    const last = result.restores().at(-1)?.input ?? '';
    const line = last.split('\n').indexOf('-X ISTIO_INBOUND') + 1;
    expect(result.stderrLines().slice(-3)).toEqual([
      'mesh-init: iptables-nft-restore rejected the ipv4 rules (nothing of them was applied): exit 4: iptables-nft-restore v1.8.9 (nf_tables): ',
      `line ${line}: CHAIN_DEL failed (Device or resource busy): chain ISTIO_INBOUND`,
      `  line ${line}: -X ISTIO_INBOUND`,
    ]);
  });

  it('a re-run repairs owned chains another program changed, keeping the hooks', async () => {
    // Hooks that head their chains, as this version leaves them: kept.
    const dump = hooksFirst(fixture('iptables-nft-save.txt')).replace(
      '-j REDIRECT --to-ports 15001\nCOMMIT',
      '-j REDIRECT --to-ports 8080\nCOMMIT',
    );
    expect(dump).toContain('--to-ports 8080');
    const result = await run([], { 'nft/ipv4': dump, 'legacy/ipv4': '' });
    expect(result.code).toBe(0);
    expect(result.restores().map((c) => c.input)).toEqual([golden('rerun-hooks-lead.ipv4.golden')]);
    expect(result.kernel.natText('nft/ipv4')).not.toContain('8080');
    expect(await driftIn(result, 'nft/ipv4')).toEqual([]);
  });

  // Jumps that are exactly right are kept only where they head their kernel chains, in
  // plan order; the decision is the table's own.
  it("hooks that head their chains, Docker's jump after: kept, no -D, -X, -N or -I, both families", async () => {
    const setup: Setup = {
      'nft/ipv4': hooksFirst(fixture('iptables-nft-save.txt')),
      'nft/ipv6': hooksFirst(fixture('ip6tables-nft-save-nat.txt')),
      'legacy/ipv4': '',
      'legacy/ipv6': '',
    };
    const result = await run([], setup, { globalIpv6: true });
    expect(result.code).toBe(0);
    const fed = result.restores().map((c) => c.input ?? '');
    expect(fed).toEqual([
      golden('rerun-hooks-lead.ipv4.golden'),
      golden('rerun-hooks-lead.ipv6.golden'),
    ]);
    for (const text of fed) expect(text).not.toMatch(/^-[DXNI] /m);
    for (const key of ['nft/ipv4', 'nft/ipv6'] as const) {
      expect(
        stateOf(result, key)
          .rules.filter((r) => r.chain === 'OUTPUT')
          .map((r) => r.target),
      ).toEqual(['ISTIO_OUTPUT', 'DOCKER_OUTPUT']);
      expect(await driftIn(result, key)).toEqual([]);
    }
  });

  it('mangle hooks behind a foreign rule are moved to the top; nat, whose hooks lead, is kept', async () => {
    const TPROXY = ['-m', 'TPROXY'];
    const first = await run(TPROXY, LIVE_LEGACY);
    expect(first.code).toBe(0);
    const { kernel } = first;
    // As an older run left it: mesh-init's jumps appended behind the foreign MARK rule.
    kernel.change(
      'legacy/ipv4',
      (chains) => {
        const prerouting = chains.find((c) => c.name === 'PREROUTING');
        if (prerouting === undefined) throw new Error('no mangle PREROUTING');
        const foreign = prerouting.rules.filter((r) => !r.includes('mesh-init: '));
        expect(foreign).toHaveLength(1);
        prerouting.rules = [...foreign, ...prerouting.rules.filter((r) => !foreign.includes(r))];
      },
      'mangle',
    );
    const mangleHooks = (text: string) =>
      text.split('\n').filter((l) => /^-A (PREROUTING|OUTPUT) /.test(l));
    const before = mangleHooks(kernel.tableText('legacy/ipv4', 'mangle'));
    expect(before[0]).toContain('mark \\"sidecar\\" traffic');

    const again = await run(TPROXY, LIVE_LEGACY, { kernel });
    expect(again.code).toBe(0);
    const [nat = '', mangle = ''] = again.restores().map((c) => c.input ?? '');
    expect(nat).toMatch(/^# mesh-init: ipv4 nat /);
    expect(nat).not.toMatch(/^-[DXNI] /m);
    expect(mangle).toMatch(/^# mesh-init: ipv4 mangle /);
    expect(mangle).toMatch(/^-D PREROUTING .*-j ISTIO_INBOUND$/m);
    expect(mangle).toMatch(/^-X ISTIO_INBOUND$/m);
    expect(mangle).toMatch(/^-N ISTIO_INBOUND$/m);
    expect(mangle).toMatch(/^-I PREROUTING 1 .*-j ISTIO_INBOUND$/m);
    // Read from the kernel: mesh-init's jump first, the foreign rule right after.
    const after = mangleHooks(kernel.tableText('legacy/ipv4', 'mangle'));
    expect(after.filter((l) => l.startsWith('-A PREROUTING '))).toEqual([
      expect.stringMatching(/-j ISTIO_INBOUND$/),
      expect.stringContaining('mark \\"sidecar\\" traffic'),
    ]);
    expect(after).toHaveLength(before.length);
  });

  // README: "Foreign rules, chains and jumps are never touched." A foreign chain that
  // jumps into an owned chain (and no mesh-init hook yet) would make every planned
  // text fail on "-X ISTIO_OUTPUT"; planned from a read, such a chain is only emptied
  // and refilled, not recreated, and the foreign jump is left alone. A forced backend's
  // unread first try still fails on that -X, changing nothing, and is planned anew.
  it.each<[string, string[], string[]]>([
    [
      'auto',
      [],
      ['iptables-nft-save', 'iptables-legacy-save', 'iptables-nft-restore --noflush --wait=10'],
    ],
    [
      'forced',
      ['--iptables-backend', 'nft'],
      [
        'iptables-nft-restore --noflush --wait=10',
        'iptables-nft-save',
        'iptables-nft-restore --noflush --wait=10',
      ],
    ],
  ])(
    'a foreign jump into an owned chain does not stop apply (%s backend)',
    async (_name, argv, commands) => {
      const dump = [
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        ':FOREIGN - [0:0]',
        ':ISTIO_OUTPUT - [0:0]',
        '-A OUTPUT -p udp -j FOREIGN',
        '-A FOREIGN -j ISTIO_OUTPUT',
        'COMMIT',
        '',
      ].join('\n');
      const result = await run(argv, { 'nft/ipv4': dump, 'legacy/ipv4': '' });
      expect(stateOf(result, 'nft/ipv4').rules).toContainEqual(
        expect.objectContaining({ chain: 'FOREIGN', spec: '-j ISTIO_OUTPUT' }),
      );
      expect(result.code).toBe(0);
      expect(result.commands()).toEqual(commands);
      expect(result.sleeps).toEqual([]);
      const planned = result.restores().at(-1)?.input ?? '';
      expect(planned).not.toContain('-X ISTIO_OUTPUT\n');
      expect(planned).toContain(':ISTIO_OUTPUT - [0:0]\n');
      expect(await driftIn(result, 'nft/ipv4')).toEqual([]);
      // A re-run over the result keeps the hooks and the foreign jump.
      const again = await run([], {
        'nft/ipv4': result.kernel.natText('nft/ipv4'),
        'legacy/ipv4': '',
      });
      expect(again.code).toBe(0);
      expect(again.restores()).toHaveLength(1);
      expect(again.kernel.natText('nft/ipv4')).toBe(result.kernel.natText('nft/ipv4'));
    },
  );
});

describe('--check', () => {
  const legacyVaried: Setup = {
    'legacy/ipv4': fixture('iptables-legacy-save-nat-varied.txt'),
    'legacy/ipv6': fixture('ip6tables-legacy-save-nat-varied.txt'),
  };
  const nftVaried: Setup = {
    'nft/ipv4': fixture('iptables-nft-save-nat-varied.txt'),
    'nft/ipv6': fixture('ip6tables-nft-save-nat-varied.txt'),
  };
  const VARIED = [
    ...['-z', '15006', '-u', '1337,0', '-g', '1338', '-b', '8080,9090', '-d', '22'],
    ...['-o', '53,3306', '-q', '443', '-i', '10.96.0.0/12,fd00:10:96::/112'],
    ...['-x', '10.96.0.1,fd00:10:96::1', '--ipv6', 'true'],
  ];

  // As a re-run leaves the pod: the hooks first, ::6 on lo where IPv6 is captured.
  it.each<[string, string[], Setup, boolean, string]>([
    ['default, nft', [], RERUN_NFT, false, '; ipv6 not captured (no global IPv6 address)'],
    ['default, nft, both families', [], RERUN_NFT, true, ''],
    ['default, legacy chosen by auto, both families', [], RERUN_LEGACY, true, ''],
    ['varied, legacy', VARIED, legacyVaried, false, ''],
    ['varied, nft', VARIED, nftVaried, false, ''],
    ['--ipv6 false', ['--ipv6', 'false'], RERUN_NFT, true, '; ipv6 not captured (--ipv6 false)'],
  ])(
    'in sync (%s): exit 0, nothing printed, nothing changed',
    async (_name, argv, setup, globalIpv6, note) => {
      const result = await run(['--check', ...argv], setup, { globalIpv6, ip: SIX_ON_LO });
      expect(result.code).toBe(0);
      expect(result.stdout()).toBe('');
      // Only reads: the tables, and lo's addresses where IPv6 is captured.
      const ipv6 = note === '';
      expect(result.commands().filter((c) => !/^ip6?tables-\w+-save$/.test(c))).toEqual(
        ipv6 ? ['ip -6 addr show dev lo'] : [],
      );
      expect(result.stderrLines().at(-1)).toBe(
        `mesh-init: check: the live rules are the planned ones${note}`,
      );
    },
  );

  // The fixtures as an older run left them: its OUTPUT hook behind Docker's jump. A
  // re-run moves it first, so --check says it is not where a re-run puts it.
  it.each<[string, Setup, string[]]>([
    ['nft', LIVE_NFT, ['ipv4']],
    ['legacy', LIVE_LEGACY, ['ipv4']],
    ['nft, both families', LIVE_NFT, ['ipv4', 'ipv6']],
  ])(
    "the hooks behind Docker's jump (%s): exit 5, and after a re-run exit 0",
    async (_name, setup, families) => {
      const globalIpv6 = families.length === 2;
      const checked = await run(['--check'], setup, { globalIpv6, ip: SIX_ON_LO });
      expect(checked.code).toBe(5);
      expect(checked.stdout()).toBe(
        families
          .map(
            (f) =>
              `${f} nat: jumps into owned chains:\n  they do not head their chains in plan order (a re-run moves them first)\n`,
          )
          .join(''),
      );
      expect(checked.restores()).toEqual([]);
      const { kernel } = checked;
      const again = await run([], setup, { kernel, globalIpv6 });
      expect(again.code).toBe(0);
      const after = await run(['--check'], setup, { kernel, globalIpv6 });
      expect(after.code).toBe(0);
      expect(after.stdout()).toBe('');
    },
  );

  // Outside iptables: IPv6's passthrough source on lo, asked with `ip -6 addr show dev
  // lo`, which only a capture of IPv6 needs.
  it.each<[string, string[], boolean, NonNullable<FakeOptions['ip']>, string[]]>([
    [
      'IPv6 captured, ::6 missing',
      [],
      true,
      {},
      ['ipv6: ::6/128 is not on lo (the proxy cannot bind its passthrough source)'],
    ],
    [
      'IPv6 captured, another address on lo',
      [],
      true,
      { ipv6: { lo: ['::7/128'] } },
      ['ipv6: ::6/128 is not on lo (the proxy cannot bind its passthrough source)'],
    ],
    ['IPv6 captured, ::6 there', [], true, SIX_ON_LO, []],
    ['IPv6 not captured (no global address): not asked', [], false, {}, []],
    ['--ipv6 false: not asked', ['--ipv6', 'false'], true, {}, []],
  ])('%s', async (_name, argv, globalIpv6, ip, drift) => {
    const result = await run(['--check', ...argv], RERUN_NFT, { globalIpv6, ip });
    expect(result.code).toBe(drift.length === 0 ? 0 : 5);
    expect(result.stdout()).toBe(drift.map((line) => `${line}\n`).join(''));
    expect(result.commands().includes('ip -6 addr show dev lo')).toBe(
      globalIpv6 && argv.length === 0,
    );
    expect(result.restores()).toEqual([]);
    expect(result.kernel.loAddresses('ipv6')).toEqual(ip?.ipv6?.lo ?? []);
  });

  it("::6 missing comes after the tables' drift, and both count", async () => {
    const result = await run(['--check', '-p', '15002'], RERUN_NFT, { globalIpv6: true });
    expect(result.code).toBe(5);
    const lines = result.stdout().split('\n').slice(0, -1);
    expect(lines.at(0)).toBe('ipv4 nat: ISTIO_REDIRECT:');
    expect(lines.at(-1)).toBe(
      'ipv6: ::6/128 is not on lo (the proxy cannot bind its passthrough source)',
    );
    expect(result.stderrLines().at(-1)).toBe(
      `mesh-init: check: the live rules differ from the planned ones (${lines.length} lines)`,
    );
  });

  // A pod set up by the mesh-init before c1467e4 put -x's RETURN before -q's jump is
  // drift, and a re-run puts the rules in Istio's order.
  it.each<[string, Setup]>([
    [
      'legacy',
      {
        'legacy/ipv4': beforeC1467e4('iptables-legacy-save-nat-varied.txt'),
        'legacy/ipv6': beforeC1467e4('ip6tables-legacy-save-nat-varied.txt'),
      },
    ],
    [
      'nft',
      {
        'nft/ipv4': beforeC1467e4('iptables-nft-save-nat-varied.txt'),
        'nft/ipv6': beforeC1467e4('ip6tables-nft-save-nat-varied.txt'),
      },
    ],
  ])(
    'the -q/-x order before c1467e4 (%s): exit 5, and a re-run repairs it',
    async (_name, setup) => {
      const checked = await run(['--check', ...VARIED], setup, { ip: SIX_ON_LO });
      expect(checked.code).toBe(5);
      expect(checked.stdout()).toBe(
        'ipv4 nat: ISTIO_OUTPUT:\n  rules in another order\nipv6 nat: ISTIO_OUTPUT:\n  rules in another order\n',
      );
      const applied = await run(VARIED, setup);
      expect(applied.code).toBe(0);
      for (const key of Object.keys(setup) as TableKey[]) {
        expect(await driftIn(applied, key, VARIED)).toEqual([]);
      }
    },
  );

  it('drift: exit 5, the difference on stdout, nothing changed', async () => {
    const result = await run(['--check', '-p', '15002'], RERUN_NFT);
    expect(result.code).toBe(5);
    const redirect =
      '-A ISTIO_REDIRECT -p tcp -m comment --comment "mesh-init: outbound TCP goes to the proxy" -j REDIRECT --to-ports';
    const inbound =
      '-A ISTIO_IN_REDIRECT -p tcp -m comment --comment "mesh-init: inbound TCP goes to the inbound capture port" -j REDIRECT --to-ports';
    expect(result.stdout()).toBe(
      [
        'ipv4 nat: ISTIO_REDIRECT:',
        `  - ${redirect} 15001`,
        `  + ${redirect} 15002`,
        'ipv4 nat: ISTIO_IN_REDIRECT:',
        `  - ${inbound} 15001`,
        `  + ${inbound} 15002`,
        '',
      ].join('\n'),
    );
    expect(result.restores()).toEqual([]);
    expect(result.stderrLines().at(-1)).toBe(
      'mesh-init: check: the live rules differ from the planned ones (6 lines)',
    );
  });

  it('drift in both families of an empty namespace', async () => {
    const result = await run(['--check'], {}, { globalIpv6: true });
    expect(result.code).toBe(5);
    expect(result.stdout()).toContain('ipv4 nat: chain ISTIO_OUTPUT is missing\n');
    expect(result.stdout()).toContain('ipv6 nat: chain ISTIO_OUTPUT is missing\n');
    expect(result.stdout()).toMatch(/^ipv6: ::6\/128 is not on lo .*\n$/m);
    expect(result.commands().filter((c) => !c.endsWith('-save'))).toEqual([
      'ip -6 addr show dev lo',
    ]);
  });

  it('a table that cannot be read exits 3', async () => {
    const result = await run(['--check', '--iptables-backend', 'nft'], LIVE_NFT, {
      answers: { 'iptables-nft-save': notFound },
    });
    expect(result.code).toBe(3);
    expect(result.stdout()).toBe('');
  });

  // See drift.test.ts: iptables-save drops the /0 match, and so does the comparison.
  it('-i 0.0.0.0/0 over its real save is in sync', async () => {
    const result = await run(['--check', '--iptables-backend', 'legacy', '-i', '0.0.0.0/0'], {
      'legacy/ipv4': fixture('iptables-legacy-save-nat-any-cidr.txt'),
    });
    expect(result.stdout()).toBe('');
    expect(result.code).toBe(0);
    expect(result.stderrLines().at(-1)).toBe(
      'mesh-init: check: the live rules are the planned ones; ipv6 not captured (no global IPv6 address)',
    );
  });
});

describe('--cleanup', () => {
  it('one restore per family with the cleanup text; foreign rules stay', async () => {
    const result = await run(['--cleanup'], LIVE_NFT, { globalIpv6: true });
    expect(result.code).toBe(0);
    // Nothing of mesh-init's in mangle or raw: nat alone is cleaned. Then TPROXY's
    // policy route, which is not there (cleanup does not know the old flags): looked
    // up, nothing deleted.
    expect(result.commands().filter((c) => !c.endsWith('-save'))).toEqual([
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
      ...ROUTE_LOOKUPS('-4', '-6'),
    ]);
    expect(result.restores().map((c) => c.input)).toEqual([
      golden('cleanup.ipv4.golden'),
      golden('cleanup.ipv6.golden'),
    ]);
    for (const [key, save] of [
      ['nft/ipv4', 'iptables-nft-save.txt'],
      ['nft/ipv6', 'ip6tables-nft-save-nat.txt'],
    ] as const) {
      const before = parseTableState(fixture(save), 'nat');
      const after = stateOf(result, key);
      expect(after.chains).toEqual(before.chains.filter((c) => !c.startsWith('ISTIO_')));
      expect(after.rules).toEqual(
        before.rules.filter((r) => !`${r.chain} ${r.spec}`.includes('ISTIO_')),
      );
    }
    expect(result.stderrLines().at(-1)).toBe(
      "mesh-init: removed mesh-init's chains and jumps from ipv4 and ipv6",
    );
  });

  it('an empty namespace: succeeds and leaves it empty', async () => {
    const result = await run(['--cleanup', '--iptables-backend', 'nft'], {});
    expect(result.code).toBe(0);
    expect(result.restores()).toHaveLength(1);
    expect(stateOf(result, 'nft/ipv4').chains).toEqual([
      'PREROUTING',
      'INPUT',
      'OUTPUT',
      'POSTROUTING',
    ]);
  });

  it('undoes an apply, and a second cleanup changes nothing', async () => {
    const applied = await run(['-o', '53', '-q', '443'], {});
    expect(applied.code).toBe(0);
    const afterApply = applied.kernel.natText('nft/ipv4');
    expect(afterApply).toContain(':ISTIO_OUTPUT');
    const cleaned = await run(['--cleanup'], { 'nft/ipv4': afterApply });
    expect(cleaned.code).toBe(0);
    const afterCleanup = cleaned.kernel.natText('nft/ipv4');
    expect(afterCleanup).not.toContain('ISTIO_');
    const again = await run(['--cleanup'], { 'nft/ipv4': afterCleanup });
    expect(again.code).toBe(0);
    expect(again.kernel.natText('nft/ipv4')).toBe(afterCleanup);
  });

  it('with --dry-run: prints the cleanup text, runs no restore', async () => {
    const result = await run(['--cleanup', '--dry-run'], LIVE_NFT, { globalIpv6: true });
    expect(result.code).toBe(0);
    expect(result.restores()).toEqual([]);
    expect(result.stdout()).toBe(golden('cleanup.ipv4.golden') + golden('cleanup.ipv6.golden'));
  });

  it('a foreign chain jumping into an owned one: refused as one transaction, exit 4', async () => {
    const setup: Setup = {
      'nft/ipv4': `${natLinesOf(fixture('iptables-nft-save.txt'))}`.replace(
        'COMMIT\n',
        '-A DOCKER_OUTPUT -j ISTIO_OUTPUT\nCOMMIT\n',
      ),
    };
    const result = await run(['--cleanup'], setup);
    expect(result.code).toBe(4);
    expect(result.stderrLines().at(-1)).toBe('  line 13: -X ISTIO_OUTPUT');
    expect(result.kernel.natText('nft/ipv4')).toBe(setup['nft/ipv4']);
  });
});

describe('--run-validation', () => {
  const failed = { ok: false, detail: 'no answer from 192.0.2.1:15002 within 5000 ms' };

  it('validates after the rules are applied and read back', async () => {
    const result = await run(['--run-validation'], LIVE_NFT, { globalIpv6: true });
    expect(result.code).toBe(0);
    expect(result.validations).toHaveLength(1);
    // Nothing ran after the validation, and everything else ran before it.
    expect(result.validations[0]?.afterCalls).toBe(result.calls.length);
    expect(result.restores()).toHaveLength(2);
    expect(result.validations[0]?.config.validate).toBe(true);
    // Every family the run captured is validated.
    expect(result.validations[0]?.families).toEqual(['ipv4', 'ipv6']);
    expect(result.stderrLines().at(-1)).toBe(
      'mesh-init: validation passed: the probe landed on the proxy port',
    );
  });

  it('the probe settings reach deps.validate', async () => {
    const argv = [
      '--run-validation',
      '--probe-address',
      '10.0.0.1,fd00::1',
      '--probe-port',
      '8080',
    ];
    const result = await run([...argv, '--probe-timeout', '2', '-p', '15009']);
    expect(result.validations[0]?.config).toMatchObject({
      proxyPort: 15009,
      probe: { addresses: { ipv4: '10.0.0.1', ipv6: 'fd00::1' }, port: 8080, timeoutMs: 2000 },
    });
    expect(result.validations[0]?.families).toEqual(['ipv4']);
  });

  it('a failed validation exits 126 with its detail; the rules stay', async () => {
    const result = await run(['--run-validation'], LIVE_NFT, { validation: failed });
    expect(result.code).toBe(126);
    expect(result.stderrLines().at(-1)).toBe(
      'mesh-init: validation failed: no answer from 192.0.2.1:15002 within 5000 ms',
    );
    expect(result.restores().map((c) => c.args)).toEqual([['--noflush', '--wait=10']]);
  });

  it('not run when applying failed, nor without the flag', async () => {
    const rejected = await run(['--run-validation'], LIVE_NFT, {
      answers: { 'iptables-nft-restore': exited(1, 'iptables-restore: line 17 failed\n') },
    });
    expect(rejected.code).toBe(4);
    expect(rejected.validations).toEqual([]);
    const plain = await run([]);
    expect(plain.code).toBe(0);
    expect(plain.validations).toEqual([]);
  });

  it.each<[string, FakeOptions['validation'], number, string]>([
    ['passing', undefined, 0, 'mesh-init: validation passed: the probe landed on the proxy port'],
    ['failing', failed, 126, `mesh-init: validation failed: ${failed.detail}`],
  ])(
    '--skip-rule-apply, %s: runs no command at all, only validates',
    async (_name, validation, code, last) => {
      const result = await run(['--skip-rule-apply', '--run-validation'], LIVE_NFT, {
        globalIpv6: true,
        ...(validation ? { validation } : {}),
      });
      expect(result.code).toBe(code);
      expect(result.calls).toEqual([]);
      expect(result.validations).toHaveLength(1);
      expect(result.validations[0]?.families).toEqual(['ipv4', 'ipv6']);
      expect(result.stderrLines()).toEqual([expect.stringMatching(/^mesh-init: config: /), last]);
    },
  );

  it.each<[string, string[], boolean, string[]]>([
    ['a pod without a global IPv6 address', [], false, ['ipv4']],
    ['--ipv6 true without one', ['--ipv6', 'true'], false, ['ipv4', 'ipv6']],
    ['--ipv6 false with one', ['--ipv6', 'false'], true, ['ipv4']],
  ])(
    '--skip-rule-apply validates the families a run would capture: %s',
    async (_n, argv, v6, f) => {
      const result = await run(['--skip-rule-apply', '--run-validation', ...argv], LIVE_NFT, {
        globalIpv6: v6,
      });
      expect(result.validations[0]?.families).toEqual(f);
    },
  );
});

describe('TPROXY, DNS capture and --drop-invalid: nat, mangle and raw per family', () => {
  const TPROXY = [...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY']];
  const RESOLV_CONF = 'nameserver 10.96.0.10\nnameserver fd00:10:96::a\n';
  const FRESH: Setup = {};
  const FORCED = ['--iptables-backend', 'nft'];
  /** TPROXY's rule as the fake lists it: mesh-init adds it at the fixed preference 32765. */
  const RULE_V4 = '32765: fwmark 0x539 lookup 133';
  const ROUTE_V4 = 'local default dev lo table 133';
  const ADD_RULE = (flag: '-4' | '-6') => `ip ${flag} rule add fwmark 1337 lookup 133 pref 32765`;
  /** What a TPROXY run leaves outside iptables: rule and route per family, ::6 on lo. */
  const ROUTED: NonNullable<FakeOptions['ip']> = {
    ipv4: { rules: [{ mark: 1337, table: 133, pref: 32765 }], routes: [ROUTE_V4] },
    ipv6: { rules: [{ mark: 1337, table: 133, pref: 32765 }], routes: [ROUTE_V4], lo: ['::6/128'] },
  };
  /** What --check asks ip of a TPROXY config, per family (IPv6 first asks lo). */
  const ROUTING_READS = (...families: ('-4' | '-6')[]) => [
    ...(families.includes('-6') ? ['ip -6 addr show dev lo'] : []),
    ...families.flatMap((f) => [
      `ip ${f} rule list fwmark 1337 table 133`,
      `ip ${f} route show table 133`,
    ]),
  ];

  /** Every table's drift between the kernel and the plan of argv, as --check reports it. */
  const driftOfTables = async (
    system: { kernel: { saveText: (key: TableKey) => string } },
    key: TableKey,
    argv: string[],
    resolvConf = RESOLV_CONF,
  ) => {
    const family: Family = key.endsWith('ipv6') ? 'ipv6' : 'ipv4';
    const config = withResolvConf(await configFrom(argv), resolvConf);
    const dump = system.kernel.saveText(key);
    return TABLES.flatMap((table) => {
      const plan = planTables(config, family).find((p) => p.table === table) ?? {
        family,
        table,
        chains: [],
        rules: [],
      };
      return findDrift(plan, parseTableState(dump, table), config.chainPrefix);
    });
  };
  /** Which tables each restore wrote, `family table`, from its first line. */
  const tablesOf = (calls: readonly { input: string | undefined }[]) =>
    calls.map((c) => /^# mesh-init: (\w+ \w+) /.exec(c.input ?? '')?.[1]);
  const ownedIn = (text: string) => text.match(/^:ISTIO_\w+/gm) ?? [];
  /** Answers `result` for ip commands that contain all of `words`; the kernel the rest. */
  const ipFailing =
    (words: string[], result: CommandResult): Answer =>
    (call, kernel) =>
      words.every((w) => call.args.includes(w)) ? result : kernel.run(call);
  const EPERM = exited(2, 'RTNETLINK answers: Operation not permitted\n');

  describe('TPROXY: the policy route', () => {
    it('a fresh pod, both families: rule and route first, then one restore per table; the goldens', async () => {
      const result = await run([...FORCED, ...TPROXY_INJECTOR], FRESH, { globalIpv6: true });
      expect(result.code).toBe(0);
      expect(result.commands()).toEqual([
        'ip -6 addr replace ::6/128 dev lo',
        'ip -4 rule list fwmark 1337 table 133',
        ADD_RULE('-4'),
        'ip -4 route replace local default dev lo table 133',
        'ip -6 rule list fwmark 1337 table 133',
        ADD_RULE('-6'),
        'ip -6 route replace local ::/0 dev lo table 133',
        'iptables-nft-restore --noflush --wait=10',
        'iptables-nft-restore --noflush --wait=10',
        'ip6tables-nft-restore --noflush --wait=10',
        'ip6tables-nft-restore --noflush --wait=10',
      ]);
      expect(tablesOf(result.restores())).toEqual([
        'ipv4 nat',
        'ipv4 mangle',
        'ipv6 nat',
        'ipv6 mangle',
      ]);
      const fed = result.restores().map((c) => c.input ?? '');
      expect(fed.slice(0, 2).join('')).toBe(golden('tproxy.ipv4.golden'));
      expect(fed.slice(2).join('')).toBe(golden('tproxy.ipv6.golden'));
      expect(result.kernel.ipRules('ipv4')).toEqual([RULE_V4]);
      expect(result.kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
      expect(result.kernel.ipRules('ipv6')).toEqual([RULE_V4]);
      expect(result.kernel.ipRoutes('ipv6')).toEqual([ROUTE_V4]);
      expect(result.kernel.loAddresses('ipv6')).toEqual(['::6/128']);
      for (const key of ['nft/ipv4', 'nft/ipv6'] as const) {
        expect(await driftOfTables(result, key, TPROXY_INJECTOR)).toEqual([]);
      }
      // 12 nat rules (the loopback RETURN per proxy UID and GID of issue 14) and 18
      // mangle rules per family.
      expect(result.restores().map((c) => c.input?.match(/^-[AI] /gm)?.length)).toEqual([
        12, 18, 12, 18,
      ]);
      expect(result.stderrLines().at(-1)).toBe(
        'mesh-init: applied ipv4 (30 rules) and ipv6 (30 rules) with the nft backend',
      );
    });

    it('a re-run adds the ip rule once, not twice; --check is clean; --cleanup takes rule and route away', async () => {
      const first = await run(TPROXY, FRESH);
      expect(first.code).toBe(0);
      const { kernel } = first;
      const again = await run(TPROXY, FRESH, { kernel });
      expect(again.code).toBe(0);
      expect(again.commands().filter((c) => c.startsWith('ip '))).toEqual([
        'ip -4 rule list fwmark 1337 table 133',
        'ip -4 route replace local default dev lo table 133',
      ]);
      expect(kernel.ipRules('ipv4')).toEqual([RULE_V4]);
      expect(kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
      // The hooks are right: the re-run only refills the owned chains of both tables.
      expect(
        again
          .restores()
          .map((c) => c.input)
          .join(''),
      ).not.toMatch(/^-[DXN] /m);

      // --check reads rule and route too, and changes nothing.
      const checked = await run(['--check', ...TPROXY], FRESH, { kernel });
      expect(checked.code).toBe(0);
      expect(checked.commands().filter((c) => !c.endsWith('-save'))).toEqual(ROUTING_READS('-4'));

      // The iptables cleanup first, then rule and route, each only as found.
      const cleaned = await run(['--cleanup'], FRESH, { kernel });
      expect(cleaned.code).toBe(0);
      expect(cleaned.commands().filter((c) => !c.endsWith('-save'))).toEqual([
        'iptables-nft-restore --noflush --wait=10',
        'iptables-nft-restore --noflush --wait=10',
        'ip -4 rule list fwmark 1337 table 133',
        'ip -4 route show table 133',
        'ip -4 rule del fwmark 1337 lookup 133',
        'ip -4 route del local default dev lo table 133',
      ]);
      expect(tablesOf(cleaned.restores())).toEqual(['ipv4 nat', 'ipv4 mangle']);
      expect(kernel.ipRules('ipv4')).toEqual([]);
      expect(kernel.ipRoutes('ipv4')).toEqual([]);
      expect(ownedIn(kernel.saveText('nft/ipv4'))).toEqual([]);

      // Nothing left: a second cleanup only looks (rule and route already gone) and changes nothing.
      const before = kernel.saveText('nft/ipv4');
      const twice = await run(['--cleanup'], FRESH, { kernel });
      expect(twice.code).toBe(0);
      expect(twice.commands().filter((c) => c.startsWith('ip '))).toEqual(ROUTE_LOOKUPS('-4'));
      expect(tablesOf(twice.restores())).toEqual(['ipv4 nat']);
      expect(kernel.saveText('nft/ipv4')).toBe(before);
    });

    it('-t and -r: that mark and table, in the rule, the route and the mangle rules', async () => {
      const argv = [...TPROXY, '-t', '4096', '-r', '134'];
      const result = await run(argv, FRESH, { globalIpv6: true });
      expect(result.code).toBe(0);
      for (const family of ['ipv4', 'ipv6'] as const) {
        expect(result.kernel.ipRules(family)).toEqual(['32765: fwmark 0x1000 lookup 134']);
        expect(result.kernel.ipRoutes(family)).toEqual(['local default dev lo table 134']);
      }
      const mangle = result.restores().find((c) => c.input?.includes('*mangle'))?.input ?? '';
      expect(mangle).toContain('--tproxy-mark 0x1000/0xffffffff');
      expect(mangle).toContain('--set-xmark 0x1001/0xffffffff');
      // Cleanup takes away what -t and -r name, and nothing of the default rule.
      const cleaned = await run(argv.concat('--cleanup'), FRESH, {
        kernel: result.kernel,
        globalIpv6: true,
      });
      expect(cleaned.code).toBe(0);
      for (const family of ['ipv4', 'ipv6'] as const) {
        expect(result.kernel.ipRules(family)).toEqual([]);
        expect(result.kernel.ipRoutes(family)).toEqual([]);
      }
    });

    // README's flag table: "--cleanup … removes … TPROXY's ip rule and route (for the
    // -t/-r given)". As flags without -m TPROXY, -t and -r say which rule and route.
    it('--cleanup -t -r (no -m TPROXY) removes the rule and route they name', async () => {
      const applied = await run([...TPROXY, '-t', '4096', '-r', '134'], FRESH);
      expect(applied.code).toBe(0);
      expect(applied.kernel.ipRules('ipv4')).toEqual(['32765: fwmark 0x1000 lookup 134']);
      const cleaned = await run(['--cleanup', '-t', '4096', '-r', '134'], FRESH, {
        kernel: applied.kernel,
      });
      expect(cleaned.code).toBe(0);
      expect(cleaned.commands().filter((c) => c.startsWith('ip '))).toEqual([
        'ip -4 rule list fwmark 4096 table 134',
        'ip -4 route show table 134',
        'ip -4 rule del fwmark 4096 lookup 134',
        'ip -4 route del local default dev lo table 134',
      ]);
      expect(applied.kernel.ipRules('ipv4')).toEqual([]);
      expect(applied.kernel.ipRoutes('ipv4')).toEqual([]);
      expect(ownedIn(applied.kernel.saveText('nft/ipv4'))).toEqual([]);
    });

    it('copies of the rule another program added are all listed as there, and all deleted by cleanup', async () => {
      const ip = {
        ipv4: {
          rules: [
            { mark: 1337, table: 133 },
            { mark: 1337, table: 133 },
          ],
        },
      };
      const applied = await run(TPROXY, FRESH, { ip });
      expect(applied.code).toBe(0);
      expect(applied.commands().filter((c) => c.startsWith('ip -4 rule add'))).toEqual([]);
      // Added without a preference, as `ip rule add` picks it: one below the lowest.
      expect(applied.kernel.ipRules('ipv4')).toEqual(['32764: fwmark 0x539 lookup 133', RULE_V4]);
      const cleaned = await run(['--cleanup'], FRESH, { kernel: applied.kernel });
      expect(cleaned.code).toBe(0);
      // One delete per copy listed: none that fails on a copy no longer there.
      expect(cleaned.commands().filter((c) => c.startsWith('ip -4 rule '))).toEqual([
        'ip -4 rule list fwmark 1337 table 133',
        'ip -4 rule del fwmark 1337 lookup 133',
        'ip -4 rule del fwmark 1337 lookup 133',
      ]);
      expect(cleaned.outcomes.filter((o) => o.exitCode !== 0)).toEqual([]);
      expect(applied.kernel.ipRules('ipv4')).toEqual([]);
    });

    it('another mark or table of others is not taken for ours, and stays', async () => {
      const ip = {
        ipv4: {
          rules: [
            { mark: 1337, table: 200 },
            { mark: 7, table: 133 },
          ],
          routes: ['local default dev lo table 200'],
        },
      };
      const applied = await run(TPROXY, FRESH, { ip });
      expect(applied.code).toBe(0);
      expect(applied.commands()).toContain(ADD_RULE('-4'));
      // First match first: the others' rules were added without a preference (32765,
      // then 32764); ours takes the fixed 32765, behind the one already there.
      expect(applied.kernel.ipRules('ipv4')).toEqual([
        '32764: fwmark 0x7 lookup 133',
        '32765: fwmark 0x539 lookup 200',
        RULE_V4,
      ]);
      await run(['--cleanup'], FRESH, { kernel: applied.kernel });
      expect(applied.kernel.ipRules('ipv4')).toEqual([
        '32764: fwmark 0x7 lookup 133',
        '32765: fwmark 0x539 lookup 200',
      ]);
      expect(applied.kernel.ipRoutes('ipv4')).toEqual(['local default dev lo table 200']);
    });

    it.each<[string, Answer, string]>([
      [
        'ip rule list failing',
        ipFailing(['rule', 'list'], exited(1, 'Error: invalid argument\n')),
        "cannot list TPROXY's ip rule (ip -4 rule list fwmark 1337 table 133): exit 1: Error: invalid argument",
      ],
      [
        'ip rule add refused',
        ipFailing(['rule', 'add'], EPERM),
        "cannot add TPROXY's ip rule (ip -4 rule add fwmark 1337 lookup 133 pref 32765): exit 2: RTNETLINK answers: Operation not permitted",
      ],
      ['ip missing', notFound, 'cannot run ip -4 rule list fwmark 1337 table 133: not found'],
    ])('%s: exit 3 before any restore, nothing applied', async (_name, answer, message) => {
      const result = await run([...FORCED, ...TPROXY], FRESH, { answers: { ip: answer } });
      expect(result.code).toBe(3);
      expect(result.restores()).toEqual([]);
      expect(result.kernel.ipRules('ipv4')).toEqual([]);
      expect(result.stderrLines().at(-1)).toBe(`mesh-init: ${message}`);
    });

    it('IPv6 failing after IPv4 added its rule: the IPv4 rule is taken back, exit 3, no restore', async () => {
      const result = await run([...FORCED, ...TPROXY], FRESH, {
        globalIpv6: true,
        answers: { ip: ipFailing(['-6', 'rule', 'add'], EPERM) },
      });
      expect(result.code).toBe(3);
      expect(result.restores()).toEqual([]);
      expect(result.commands().filter((c) => c.startsWith('ip -4 rule'))).toEqual([
        'ip -4 rule list fwmark 1337 table 133',
        ADD_RULE('-4'),
        'ip -4 rule del fwmark 1337 lookup 133',
      ]);
      expect(result.kernel.ipRules('ipv4')).toEqual([]);
      expect(result.stderrLines().slice(-2)).toEqual([
        "mesh-init: cannot add TPROXY's ip rule (ip -6 rule add fwmark 1337 lookup 133 pref 32765): exit 2: RTNETLINK answers: Operation not permitted",
        '  the ipv4 ip rule fwmark 1337 this run added was deleted again',
      ]);
    });

    // addLocalRoute adds the rule, then the route: the rule is noted for putBack as
    // soon as it is added, so when `ip route replace` fails it is deleted again ("a run
    // that fails after adding it deletes that rule again").
    it('ip route replace failing right after the rule was added: the rule is taken back too', async () => {
      const result = await run([...FORCED, ...TPROXY], FRESH, {
        answers: { ip: ipFailing(['route', 'replace'], EPERM) },
      });
      expect(result.code).toBe(3);
      expect(result.restores()).toEqual([]);
      expect(result.commands()).toEqual([
        'ip -4 rule list fwmark 1337 table 133',
        ADD_RULE('-4'),
        'ip -4 route replace local default dev lo table 133',
        'ip -4 rule del fwmark 1337 lookup 133',
      ]);
      expect(result.kernel.ipRules('ipv4')).toEqual([]);
      expect(result.kernel.ipRoutes('ipv4')).toEqual([]);
      expect(result.stderrLines().slice(-2)).toEqual([
        "mesh-init: cannot add TPROXY's route (ip -4 route replace local default dev lo table 133): exit 2: RTNETLINK answers: Operation not permitted",
        '  the ipv4 ip rule fwmark 1337 this run added was deleted again',
      ]);
    });

    it('a table that cannot be put back keeps its TPROXY chains, so the rule it added stays too (exit 4)', async () => {
      const result = await run([...FORCED, ...TPROXY], LIVE_NFT, {
        globalIpv6: true,
        answers: {
          'ip6tables-nft-restore': exited(1, 'ip6tables-restore: line 2 failed\n'),
          'iptables-nft-restore': (call) =>
            call.args.includes('--noflush')
              ? undefined
              : exited(1, 'iptables-restore: line 2 failed\n'),
        },
      });
      expect(result.code).toBe(4);
      expect(result.kernel.ipRules('ipv4')).toEqual(['32765: fwmark 0x539 lookup 133']);
      expect(result.commands()).not.toContain('ip -4 rule del fwmark 1337 lookup 133');
      expect(result.stderr()).toContain(
        '  the ip rule and route stay as this run left them, for the rules it keeps',
      );
    });

    it('ip route replace failing where the rule was there before the run: the rule stays', async () => {
      const result = await run([...FORCED, ...TPROXY], FRESH, {
        ip: { ipv4: { rules: [{ mark: 1337, table: 133 }] } },
        answers: { ip: ipFailing(['route', 'replace'], EPERM) },
      });
      expect(result.code).toBe(3);
      expect(result.commands()).toEqual([
        'ip -4 rule list fwmark 1337 table 133',
        'ip -4 route replace local default dev lo table 133',
      ]);
      expect(result.kernel.ipRules('ipv4')).toEqual([RULE_V4]);
      expect(result.stderr()).not.toContain('deleted again');
    });

    // Runs racing in one pod both list no rule, then both add it. The rule has a fixed
    // preference, so the kernel refuses the second, identical one (File exists): that
    // run counts it as there, and not as its own, so its rollback leaves it alone.
    /** `ip`, where another run adds the same rule just before this run's `ip rule add`. */
    const racedBy =
      (other: Answer = () => undefined): Answer =>
      (call, kernel) => {
        if (call.args[1] === 'rule' && call.args[2] === 'add') {
          expect(kernel.run(call)?.exitCode).toBe(0);
        }
        return (typeof other === 'function' ? other(call, kernel) : other) ?? kernel.run(call);
      };
    const manglesRejected: Answer = (call, kernel) =>
      call.input?.includes('*mangle')
        ? exited(1, 'iptables-restore: line 30 failed\n')
        : kernel.run(call);
    it.each<[string, NonNullable<FakeOptions['answers']>, boolean, number, string[]]>([
      ['nothing else fails', { ip: racedBy() }, false, 0, []],
      [
        'a restore then failing',
        { ip: racedBy(), 'iptables-nft-restore': manglesRejected },
        false,
        4,
        ['  ipv4 nat was put back as it was'],
      ],
      [
        'the route then failing',
        { ip: racedBy(ipFailing(['route', 'replace'], EPERM)) },
        false,
        3,
        [
          "mesh-init: cannot add TPROXY's route (ip -4 route replace local default dev lo table 133): exit 2: RTNETLINK answers: Operation not permitted",
        ],
      ],
      [
        'IPv6 then failing to add its own',
        {
          ip: racedBy((call, kernel) =>
            call.args[0] === '-6' && call.args[2] === 'add' ? EPERM : kernel.run(call),
          ),
        },
        true,
        3,
        [
          "mesh-init: cannot add TPROXY's ip rule (ip -6 rule add fwmark 1337 lookup 133 pref 32765): exit 2: RTNETLINK answers: Operation not permitted",
        ],
      ],
    ])(
      'ip rule add answering File exists (a racing run added it): there, not ours; %s',
      async (_name, answers, globalIpv6, code, tail) => {
        const result = await run(TPROXY, FRESH, { globalIpv6, answers });
        expect(result.code).toBe(code);
        const add = result.commands().indexOf(ADD_RULE('-4'));
        expect(result.outcomes[add]).toEqual(exited(2, 'RTNETLINK answers: File exists\n'));
        // One rule, the other run's, whatever this run did after.
        expect(result.kernel.ipRules('ipv4')).toEqual([RULE_V4]);
        expect(result.commands().filter((c) => c.includes(' rule del '))).toEqual([]);
        expect(result.stderr()).not.toContain('deleted again');
        if (tail.length > 0) expect(result.stderrLines().slice(-tail.length)).toEqual(tail);
        if (code === 0) {
          expect(result.kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
          expect(await driftOfTables(result, 'nft/ipv4', TPROXY)).toEqual([]);
        }
      },
    );

    // README: "if a transaction then fails, the rule is deleted again when this run added it".
    it.each<[string, FakeOptions['ip'], string[], string[]]>([
      [
        'added by this run: taken back',
        {},
        [],
        [
          '  ipv4 nat was put back as it was',
          '  the ipv4 ip rule fwmark 1337 this run added was deleted again',
        ],
      ],
      [
        'there before the run: kept',
        { ipv4: { rules: [{ mark: 1337, table: 133 }] } },
        [RULE_V4],
        ['  ipv4 nat was put back as it was'],
      ],
    ])(
      'a restore failing after the rule and route were set, the rule %s; the route stays',
      async (_name, ip, rules, notes) => {
        const result = await run(TPROXY, LIVE_NFT, {
          ...(ip === undefined ? {} : { ip }),
          answers: {
            'iptables-nft-restore': (call, kernel) =>
              call.input?.includes('*mangle')
                ? exited(1, 'iptables-restore: line 30 failed\n')
                : kernel.run(call),
          },
        });
        expect(result.code).toBe(4);
        expect(result.stderrLines().slice(-notes.length)).toEqual(notes);
        expect(parseTableState(result.kernel.saveText('nft/ipv4'), 'nat')).toEqual(
          parseTableState(fixture('iptables-nft-save.txt'), 'nat'),
        );
        expect(result.kernel.tableNames('nft/ipv4')).toEqual(['filter', 'nat']);
        expect(result.kernel.ipRules('ipv4')).toEqual(rules);
        // The route alone routes nothing: it stays either way.
        expect(result.kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
        const deletes = result.commands().filter((c) => c.startsWith('ip -4 rule del'));
        expect(deletes).toHaveLength(rules.length === 0 ? 1 : 0);
        // The rule goes after the tables are put back: nothing marks packets for it then.
        if (deletes.length > 0) {
          expect(result.commands().slice(-2)).toEqual([
            'iptables-nft-restore --wait=10',
            'ip -4 rule del fwmark 1337 lookup 133',
          ]);
        }
      },
    );

    it('taking the rule back failing too is said, with the first error', async () => {
      const result = await run([...FORCED, ...TPROXY], FRESH, {
        globalIpv6: true,
        answers: {
          ip: (call, kernel) =>
            (call.args[0] === '-6' && call.args[2] === 'add') ||
            (call.args[0] === '-4' && call.args[2] === 'del')
              ? EPERM
              : kernel.run(call),
        },
      });
      expect(result.code).toBe(3);
      expect(result.stderrLines().slice(-2)).toEqual([
        "mesh-init: cannot add TPROXY's ip rule (ip -6 rule add fwmark 1337 lookup 133 pref 32765): exit 2: RTNETLINK answers: Operation not permitted",
        "  the ipv4 ip rule fwmark 1337 this run added was deleted again: failed too: cannot delete TPROXY's ip rule (ip -4 rule del fwmark 1337 lookup 133): exit 2: RTNETLINK answers: Operation not permitted",
      ]);
      expect(result.kernel.ipRules('ipv4')).toEqual([RULE_V4]);
    });

    it('--cleanup where ip cannot start (no iproute2): said, and the chains are removed, exit 0', async () => {
      const result = await run(['--cleanup'], LIVE_NFT, { answers: { ip: notFound } });
      expect(result.code).toBe(0);
      expect(result.commands().filter((c) => !c.endsWith('-save'))).toEqual([
        'iptables-nft-restore --noflush --wait=10',
        'ip -4 rule list fwmark 1337 table 133',
      ]);
      expect(result.kernel.natText('nft/ipv4')).not.toContain('ISTIO_');
      expect(result.stderrLines().slice(-2)).toEqual([
        'mesh-init: cleanup: no ip program, so no ipv4 TPROXY route to remove',
        "mesh-init: removed mesh-init's chains and jumps from ipv4",
      ]);
    });

    // Rule and route go after the chains that mark packets for them, inside the
    // rollback: a failure there puts the chains back, and adds back what was found of
    // rule and route, after the tables. Exit 3, and the pod is captured as before.
    const PUT_BACK = (...families: Family[]) =>
      families.flatMap((f) => [
        `  ${f} nat was put back as it was`,
        `  ${f} mangle was put back as it was`,
      ]);
    const ADDED_BACK = (family: Family) => `  the ${family} TPROXY rule and route were added back`;
    const ROUTE_DEL_EPERM = (flag: '-4' | '-6', any: string) =>
      `cannot delete TPROXY's route (ip ${flag} route del local ${any} dev lo table 133): exit 2: RTNETLINK answers: Operation not permitted`;
    it.each<[string, Answer, boolean, string[], string[]]>([
      [
        'the rule cannot be listed: nothing found, nothing to add back',
        ipFailing(['rule', 'list'], EPERM),
        false,
        [
          "mesh-init: cannot list TPROXY's ip rule (ip -4 rule list fwmark 1337 table 133): exit 2: RTNETLINK answers: Operation not permitted",
          ...PUT_BACK('ipv4'),
        ],
        [],
      ],
      [
        'the rule cannot be deleted: it stays, the route is made sure of',
        ipFailing(['rule', 'del'], EPERM),
        false,
        [
          "mesh-init: cannot delete TPROXY's ip rule (ip -4 rule del fwmark 1337 lookup 133): exit 2: RTNETLINK answers: Operation not permitted",
          ...PUT_BACK('ipv4'),
          ADDED_BACK('ipv4'),
        ],
        [
          'ip -4 rule list fwmark 1337 table 133',
          'ip -4 route replace local default dev lo table 133',
        ],
      ],
      [
        'the route cannot be deleted: the rule deleted before it is added back',
        ipFailing(['route', 'del'], EPERM),
        false,
        [`mesh-init: ${ROUTE_DEL_EPERM('-4', 'default')}`, ...PUT_BACK('ipv4'), ADDED_BACK('ipv4')],
        [
          'ip -4 rule list fwmark 1337 table 133',
          ADD_RULE('-4'),
          'ip -4 route replace local default dev lo table 133',
        ],
      ],
      [
        'the route cannot be deleted nor replaced: adding back failing too is said',
        (call, kernel) =>
          call.args.includes('route') && ['del', 'replace'].includes(call.args[2] ?? '')
            ? EPERM
            : kernel.run(call),
        false,
        [
          `mesh-init: ${ROUTE_DEL_EPERM('-4', 'default')}`,
          ...PUT_BACK('ipv4'),
          `${ADDED_BACK('ipv4')}: failed too: cannot add TPROXY's route (ip -4 route replace local default dev lo table 133): exit 2: RTNETLINK answers: Operation not permitted`,
        ],
        [
          'ip -4 rule list fwmark 1337 table 133',
          ADD_RULE('-4'),
          'ip -4 route replace local default dev lo table 133',
        ],
      ],
      [
        "IPv6's route cannot be deleted: IPv4's rule and route, already gone, are added back too",
        ipFailing(['-6', 'route', 'del'], EPERM),
        true,
        [
          `mesh-init: ${ROUTE_DEL_EPERM('-6', '::/0')}`,
          ...PUT_BACK('ipv4', 'ipv6'),
          ADDED_BACK('ipv4'),
          ADDED_BACK('ipv6'),
        ],
        [
          'ip -4 rule list fwmark 1337 table 133',
          ADD_RULE('-4'),
          'ip -4 route replace local default dev lo table 133',
          'ip -6 rule list fwmark 1337 table 133',
          ADD_RULE('-6'),
          'ip -6 route replace local ::/0 dev lo table 133',
        ],
      ],
    ])(
      '--cleanup where %s: exit 3, chains, rule and route as before',
      async (_name, answer, globalIpv6, stderr, addedBack) => {
        const applied = await run(TPROXY, FRESH, { globalIpv6 });
        expect(applied.code).toBe(0);
        const { kernel } = applied;
        const keys = globalIpv6 ? (['nft/ipv4', 'nft/ipv6'] as const) : (['nft/ipv4'] as const);
        const before = keys.map((key) => kernel.saveText(key));
        const cleaned = await run(['--cleanup'], FRESH, {
          kernel,
          globalIpv6,
          answers: { ip: answer },
        });
        expect(cleaned.code).toBe(3);
        expect(cleaned.stderrLines().slice(-stderr.length)).toEqual(stderr);
        // The tables were cleaned (nat and mangle of each family), then put back as read
        // (without --noflush) ...
        const tables = keys.length * 2;
        expect(cleaned.restores().map((c) => c.args.includes('--noflush'))).toEqual([
          ...Array<boolean>(tables).fill(true),
          ...Array<boolean>(tables).fill(false),
        ]);
        expect(keys.map((key) => kernel.saveText(key))).toEqual(before);
        for (const key of keys) expect(await driftOfTables(cleaned, key, TPROXY)).toEqual([]);
        // ... and then rule and route added back where something of them was removed.
        const commands = cleaned.commands();
        const lastRestore = commands.map((c) => c.includes('-restore')).lastIndexOf(true);
        expect(commands.slice(lastRestore + 1)).toEqual(addedBack);
        for (const family of globalIpv6 ? (['ipv4', 'ipv6'] as const) : (['ipv4'] as const)) {
          expect(kernel.ipRules(family)).toEqual([RULE_V4]);
          expect(kernel.ipRoutes(family)).toEqual([ROUTE_V4]);
        }
        // Nothing was lost: a cleanup that works takes it all away.
        const again = await run(['--cleanup'], FRESH, { kernel, globalIpv6 });
        expect(again.code).toBe(0);
        expect(kernel.ipRules('ipv4')).toEqual([]);
        expect(kernel.ipRoutes('ipv4')).toEqual([]);
        expect(ownedIn(kernel.saveText('nft/ipv4'))).toEqual([]);
      },
    );

    it.each<[string, FakeOptions['ip'], boolean]>([
      [
        'the rule without the route (deleted by hand)',
        { ipv4: { rules: [{ mark: 1337, table: 133 }] } },
        false,
      ],
      ['the route without the rule', { ipv4: { routes: [ROUTE_V4] } }, true],
    ])(
      '--cleanup, %s: the route is deleted only when ip route show lists it',
      async (_name, ip, listed) => {
        const result = await run(['--cleanup'], LIVE_NFT, { ...(ip === undefined ? {} : { ip }) });
        expect(result.code).toBe(0);
        expect(result.commands().includes('ip -4 route del local default dev lo table 133')).toBe(
          listed,
        );
        // Nothing is run that fails, but the lookup of a table never made.
        expect(result.outcomes.filter((o) => o.exitCode !== 0).map((o) => o.stderr)).toEqual(
          listed ? [] : ['Error: ipv4: FIB table does not exist.\nDump terminated\n'],
        );
        expect(result.kernel.ipRules('ipv4')).toEqual([]);
        expect(result.kernel.ipRoutes('ipv4')).toEqual([]);
      },
    );

    it('REDIRECT mode and -b "": no policy route at all', async () => {
      for (const [argv, env] of [
        [[], {}],
        // As flags -t and -r need -m TPROXY; Istio's variables may be set anyway.
        [[], { INBOUND_TPROXY_MARK: '7', INBOUND_TPROXY_ROUTE_TABLE: '77' }],
        [['-m', 'TPROXY', '-b', ''], {}],
      ] as const) {
        const result = await run([...argv], FRESH, { env });
        expect(result.code).toBe(0);
        expect(result.calls.filter((c) => c.file === 'ip')).toEqual([]);
        expect(tablesOf(result.restores())).toEqual(['ipv4 nat']);
      }
    });
  });

  describe('TPROXY, then a re-run without it: the policy route goes', () => {
    const REMOVED = 'mesh-init: removed the ipv4 TPROXY route: TPROXY is no longer used';

    it.each<[string, string[], Record<string, string>]>([
      ['REDIRECT', [], {}],
      ['-m REDIRECT', ['-m', 'REDIRECT'], {}],
      ['-m TPROXY -b "" (nothing inbound to capture)', ['-m', 'TPROXY', '-b', ''], {}],
      ['REDIRECT with --drop-invalid (mangle stays)', ['--drop-invalid'], {}],
    ])('%s: the rule and route removed after the tables, and said', async (_name, argv, env) => {
      const first = await run(TPROXY, FRESH);
      expect(first.code).toBe(0);
      const { kernel } = first;
      const again = await run(argv, FRESH, { kernel, env });
      expect(again.code).toBe(0);
      expect(kernel.ipRules('ipv4')).toEqual([]);
      expect(kernel.ipRoutes('ipv4')).toEqual([]);
      expect(ownedIn(kernel.saveText('nft/ipv4'))).not.toContain(':ISTIO_TPROXY');
      // Once the TPROXY chains are gone: after the last restore.
      const commands = again.commands();
      const lastRestore = commands
        .map((c) => c.endsWith('-restore --noflush --wait=10'))
        .lastIndexOf(true);
      expect(commands.slice(lastRestore + 1)).toEqual([
        'ip -4 rule list fwmark 1337 table 133',
        'ip -4 route show table 133',
        'ip -4 rule del fwmark 1337 lookup 133',
        'ip -4 route del local default dev lo table 133',
      ]);
      expect(again.stderrLines().slice(-2)).toEqual([
        expect.stringMatching(/^mesh-init: applied ipv4 /),
        REMOVED,
      ]);
      // And a third run has nothing to remove: mangle no longer holds ISTIO_TPROXY.
      const third = await run(argv, FRESH, { kernel, env });
      expect(third.code).toBe(0);
      expect(third.calls.filter((c) => c.file === 'ip')).toEqual([]);
    });

    it('both families, another mark and table: from the variables, which wait for the mode', async () => {
      const first = await run([...TPROXY, '-t', '4096', '-r', '134'], FRESH, { globalIpv6: true });
      expect(first.code).toBe(0);
      const env = { INBOUND_TPROXY_MARK: '4096', INBOUND_TPROXY_ROUTE_TABLE: '134' };
      const again = await run([], FRESH, { kernel: first.kernel, env, globalIpv6: true });
      expect(again.code).toBe(0);
      for (const family of ['ipv4', 'ipv6'] as const) {
        expect(first.kernel.ipRules(family)).toEqual([]);
        expect(first.kernel.ipRoutes(family)).toEqual([]);
      }
      expect(again.stderrLines().slice(-2)).toEqual([
        REMOVED,
        'mesh-init: removed the ipv6 TPROXY route: TPROXY is no longer used',
      ]);
    });

    it('a forced backend: the first try is unread, the one that applies has read mangle', async () => {
      const first = await run([...FORCED, ...TPROXY], FRESH);
      expect(first.code).toBe(0);
      const again = await run(FORCED, FRESH, { kernel: first.kernel });
      expect(again.code).toBe(0);
      expect(first.kernel.ipRules('ipv4')).toEqual([]);
      expect(again.stderrLines().at(-1)).toBe(REMOVED);
    });

    it('rule and route already gone (removed by hand): nothing deleted, nothing said', async () => {
      const first = await run(TPROXY, FRESH);
      expect(first.code).toBe(0);
      const { kernel } = first;
      kernel.run({
        file: 'ip',
        args: ['-4', 'rule', 'del', 'fwmark', '1337', 'lookup', '133'],
        input: undefined,
      });
      kernel.run({
        file: 'ip',
        args: ['-4', 'route', 'del', 'local', 'default', 'dev', 'lo', 'table', '133'],
        input: undefined,
      });
      const again = await run([], FRESH, { kernel });
      expect(again.code).toBe(0);
      expect(again.commands().filter((c) => c.startsWith('ip '))).toEqual(ROUTE_LOOKUPS('-4'));
      expect(again.stderr()).not.toContain('TPROXY route');
    });

    it('never TPROXY before (no ISTIO_TPROXY in mangle): ip is not run', async () => {
      for (const setup of [FRESH, LIVE_NFT, LIVE_LEGACY]) {
        const result = await run(['--drop-invalid'], setup);
        expect(result.code).toBe(0);
        expect(result.calls.filter((c) => c.file === 'ip')).toEqual([]);
      }
    });

    // The tables are applied and right when the route cannot be removed: only a route
    // no rule uses any more is left. An error line says so, and the pod still starts:
    // no rollback, exit 0.
    const STAYS =
      "mesh-init: the ipv4 TPROXY rule and route are no longer used, and removing them failed (what is left stays): cannot delete TPROXY's ip rule (ip -4 rule del fwmark 1337 lookup 133): exit 2: RTNETLINK answers: Operation not permitted";

    it('removing the route failing: said as an error, the tables stay applied, exit 0', async () => {
      const first = await run(TPROXY, FRESH);
      expect(first.code).toBe(0);
      const { kernel } = first;
      const again = await run(['--run-validation'], FRESH, {
        kernel,
        answers: { ip: ipFailing(['rule', 'del'], EPERM) },
      });
      expect(again.code).toBe(0);
      // The new rules, not those put back: no TPROXY chain left, nothing restored after.
      expect(await driftOfTables(again, 'nft/ipv4', [])).toEqual([]);
      expect(ownedIn(kernel.saveText('nft/ipv4'))).not.toContain(':ISTIO_TPROXY');
      expect(again.commands().filter((c) => c.endsWith('-restore --wait=10'))).toEqual([]);
      expect(kernel.ipRules('ipv4')).toEqual([RULE_V4]);
      expect(kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
      const lines = again.stderrLines();
      expect(lines.slice(-2)).toEqual([
        STAYS,
        'mesh-init: validation passed: the probe landed on the proxy port',
      ]);
      expect(lines.indexOf(STAYS)).toBeGreaterThan(
        lines.findIndex((l) => l.startsWith('mesh-init: applied ipv4 ')),
      );
      expect(again.stderr()).not.toContain('put back');
    });

    // Whatever step fails, the message says rule and route, and what was not reached stays.
    const STALE = (why: string) =>
      `mesh-init: the ipv4 TPROXY rule and route are no longer used, and removing them failed (what is left stays): ${why}`;
    it.each<[string, string[], string, string[], string[]]>([
      [
        'the rule cannot be listed: both stay',
        ['rule', 'list'],
        "cannot list TPROXY's ip rule (ip -4 rule list fwmark 1337 table 133): exit 2: RTNETLINK answers: Operation not permitted",
        [RULE_V4],
        [ROUTE_V4],
      ],
      [
        'the rule cannot be deleted: both stay',
        ['rule', 'del'],
        "cannot delete TPROXY's ip rule (ip -4 rule del fwmark 1337 lookup 133): exit 2: RTNETLINK answers: Operation not permitted",
        [RULE_V4],
        [ROUTE_V4],
      ],
      [
        'the route cannot be deleted: the rule is gone, the route stays',
        ['route', 'del'],
        "cannot delete TPROXY's route (ip -4 route del local default dev lo table 133): exit 2: RTNETLINK answers: Operation not permitted",
        [],
        [ROUTE_V4],
      ],
    ])('a stale rule and route where %s; exit 0', async (_name, words, why, rules, routes) => {
      const first = await run(TPROXY, FRESH);
      expect(first.code).toBe(0);
      const { kernel } = first;
      const again = await run([], FRESH, { kernel, answers: { ip: ipFailing(words, EPERM) } });
      expect(again.code).toBe(0);
      expect(again.stderrLines().at(-1)).toBe(STALE(why));
      expect(kernel.ipRules('ipv4')).toEqual(rules);
      expect(kernel.ipRoutes('ipv4')).toEqual(routes);
      expect(ownedIn(kernel.saveText('nft/ipv4'))).not.toContain(':ISTIO_TPROXY');
    });

    it('removing the route failing: an error-level JSON line', async () => {
      const first = await run(TPROXY, FRESH);
      const again = await run(['--log-format', 'json'], FRESH, {
        kernel: first.kernel,
        answers: { ip: ipFailing(['rule', 'del'], EPERM) },
      });
      expect(again.code).toBe(0);
      const last = JSON.parse(again.stderrLines().at(-1) ?? '{}');
      expect(last).toMatchObject({ level: 'error', msg: STAYS.replace(/^mesh-init: /, '') });
    });

    it('removing the IPv4 route failing: the IPv6 one is still removed', async () => {
      const first = await run(TPROXY, FRESH, { globalIpv6: true });
      expect(first.code).toBe(0);
      const { kernel } = first;
      const again = await run([], FRESH, {
        kernel,
        globalIpv6: true,
        answers: { ip: ipFailing(['-4', 'rule', 'del'], EPERM) },
      });
      expect(again.code).toBe(0);
      expect(kernel.ipRules('ipv4')).toEqual([RULE_V4]);
      expect(kernel.ipRules('ipv6')).toEqual([]);
      expect(kernel.ipRoutes('ipv6')).toEqual([]);
      expect(again.stderrLines().slice(-2)).toEqual([
        STAYS,
        'mesh-init: removed the ipv6 TPROXY route: TPROXY is no longer used',
      ]);
    });
  });

  describe('a re-run with fewer features removes what it no longer plans', () => {
    const MANGLE_FOREIGN =
      '-A PREROUTING -p tcp -m comment --comment "mark \\"sidecar\\" traffic" -j MARK --set-xmark 0x539/0xffffffff';

    it('--drop-invalid, then without: the mangle chain and its jump go, foreign mangle rules stay', async () => {
      const first = await run(['--drop-invalid'], LIVE_LEGACY);
      expect(first.code).toBe(0);
      const { kernel } = first;
      expect(kernel.tableText('legacy/ipv4', 'mangle')).toContain(':ISTIO_DROP_INVALID - [0:0]');
      expect(kernel.tableText('legacy/ipv4', 'mangle')).toContain('-j ISTIO_DROP_INVALID');

      const second = await run([], LIVE_LEGACY, { kernel });
      expect(second.code).toBe(0);
      expect(tablesOf(second.restores())).toEqual(['ipv4 nat', 'ipv4 mangle']);
      const cleanup = second.restores()[1]?.input ?? '';
      expect(cleanup).toMatch(/^# mesh-init: ipv4 mangle cleanup /);
      expect(cleanup.split('\n').filter((l) => /^-[DX] /.test(l))).toEqual([
        '-D PREROUTING -m comment --comment "mesh-init: invalid packets are dropped (--drop-invalid)" -j ISTIO_DROP_INVALID',
        ...['DROP_INVALID', 'DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT'].map((c) => `-X ISTIO_${c}`),
      ]);
      const mangle = kernel.tableText('legacy/ipv4', 'mangle');
      expect(mangle).not.toContain('ISTIO_');
      expect(mangle).toContain(MANGLE_FOREIGN);
      expect(await driftOfTables(second, 'legacy/ipv4', [])).toEqual([]);

      // A third run has nothing of mesh-init's in mangle: it leaves mangle alone.
      const third = await run([], LIVE_LEGACY, { kernel });
      expect(tablesOf(third.restores())).toEqual(['ipv4 nat']);
    });

    it('all features, then none: mangle and raw emptied of mesh-init, ISTIO_OUTPUT_DNS gone from nat', async () => {
      const setup: Setup = {
        'legacy/ipv4': fixture('iptables-legacy-save-all-features.txt'),
        'legacy/ipv6': fixture('ip6tables-legacy-save-all-features.txt'),
        'nft/ipv4': '',
      };
      const result = await run(['-z', '15006'], setup, { globalIpv6: true });
      expect(result.code).toBe(0);
      expect(tablesOf(result.restores())).toEqual([
        'ipv4 nat',
        'ipv4 mangle',
        'ipv4 raw',
        'ipv6 nat',
        'ipv6 mangle',
        'ipv6 raw',
      ]);
      for (const key of ['legacy/ipv4', 'legacy/ipv6'] as const) {
        const dump = result.kernel.saveText(key);
        expect(ownedIn(dump).sort()).toEqual(
          [':ISTIO_INBOUND', ':ISTIO_IN_REDIRECT', ':ISTIO_OUTPUT', ':ISTIO_REDIRECT'].sort(),
        );
        expect(parseTableState(dump, 'mangle').rules).toEqual([]);
        expect(parseTableState(dump, 'raw').rules).toEqual([]);
        expect(await driftOfTables(result, key, ['-z', '15006'])).toEqual([]);
      }
      // Only mesh-init's DNS chain left nat; ISTIO_OUTPUT's jump into it went with its refill.
      expect(result.restores()[0]?.input?.trimEnd().split('\n').slice(-2)).toEqual([
        '-X ISTIO_OUTPUT_DNS',
        'COMMIT',
      ]);
    });

    it('--check before the re-run: the stale chains are drift, "is not planned"', async () => {
      const setup: Setup = {
        'legacy/ipv4': fixture('iptables-legacy-save-all-features.txt'),
        'nft/ipv4': '',
      };
      const inSync = await run(['--check', ...ALL_FEATURES], setup, {
        resolvConf: RESOLV_CONF,
        ip: ROUTED,
      });
      expect(inSync.stdout()).toBe('');
      expect(inSync.code).toBe(0);
      const without = ALL_FEATURES.filter((a) => a !== '--drop-invalid' && a !== '--redirect-dns');
      const result = await run(['--check', ...without], setup, { ip: ROUTED });
      expect(result.code).toBe(5);
      const out = result.stdout();
      expect(out).toContain('ipv4 nat: chain ISTIO_OUTPUT_DNS is not planned\n');
      expect(out).toContain('ipv4 mangle: chain ISTIO_DROP_INVALID is not planned\n');
      expect(out).toContain(
        'ipv4 raw: chain ISTIO_OUTPUT_DNS is not planned\nipv4 raw: chain ISTIO_INBOUND is not planned\n',
      );
      expect(out).not.toContain('ipv4 mangle: chain ISTIO_TPROXY');
      expect(
        out
          .split('\n')
          .filter((l) => /^ipv4 \w+: /.test(l))
          .map((l) => l.split(':')[0]),
      ).toEqual(expect.arrayContaining(['ipv4 nat', 'ipv4 mangle', 'ipv4 raw']));
      expect(out).not.toContain('ipv4: ');
      expect(result.restores()).toEqual([]);
      expect(result.commands().filter((c) => !c.endsWith('-save'))).toEqual(ROUTING_READS('-4'));
    });
  });

  describe('--check in mangle and raw', () => {
    const setup: Setup = {
      'nft/ipv4': fixture('iptables-nft-save-all-features.txt'),
      'nft/ipv6': fixture('ip6tables-nft-save-all-features.txt'),
      'legacy/ipv4': '',
    };

    it.each<[string, string[], Setup, string[]]>([
      ['in sync, both families', ALL_FEATURES, setup, []],
      [
        'another TPROXY mark: mangle drift in both families, and no rule for that mark',
        [...ALL_FEATURES, '-t', '1338'],
        setup,
        [
          'ipv4 mangle: ISTIO_DIVERT:',
          'ipv4 mangle: ISTIO_TPROXY:',
          'ipv4 mangle: ISTIO_INBOUND:',
          'ipv4 mangle: ISTIO_OUTPUT:',
          'ipv6 mangle: ISTIO_DIVERT:',
          'ipv6 mangle: ISTIO_TPROXY:',
          'ipv6 mangle: ISTIO_INBOUND:',
          'ipv6 mangle: ISTIO_OUTPUT:',
          'ipv4: ip rule "fwmark 1338 lookup 133" is missing',
          'ipv6: ip rule "fwmark 1338 lookup 133" is missing',
        ],
      ],
      [
        'another DNS port: nat and raw drift',
        [...ALL_FEATURES, '--dns-port', '15054'],
        setup,
        [
          'ipv4 nat: ISTIO_OUTPUT_DNS:',
          'ipv4 raw: ISTIO_OUTPUT_DNS:',
          'ipv6 nat: ISTIO_OUTPUT_DNS:',
          'ipv6 raw: ISTIO_OUTPUT_DNS:',
        ],
      ],
      [
        'a mangle rule another program deleted',
        ALL_FEATURES,
        {
          ...setup,
          'nft/ipv4': fixture('iptables-nft-save-all-features.txt').replace(
            /^-A ISTIO_DROP_INVALID .*\n/m,
            '',
          ),
        },
        ['ipv4 mangle: ISTIO_DROP_INVALID:'],
      ],
      [
        'a raw hook another program deleted',
        ALL_FEATURES,
        {
          ...setup,
          'nft/ipv6': fixture('ip6tables-nft-save-all-features.txt').replace(
            /^-A OUTPUT -p udp .*-j ISTIO_OUTPUT_DNS\n/m,
            '',
          ),
        },
        ['ipv6 raw: jumps into owned chains:'],
      ],
    ])('%s', async (_name, argv, live, headers) => {
      const result = await run(['--check', ...argv], live, {
        globalIpv6: true,
        resolvConf: RESOLV_CONF,
        ip: ROUTED,
      });
      expect(result.code).toBe(headers.length === 0 ? 0 : 5);
      const out = result.stdout().split('\n');
      expect(out.filter((line) => line !== '' && !line.startsWith('  '))).toEqual(headers);
      expect(result.restores()).toEqual([]);
      // Rule and route are read for the mark and table of the config; nothing is changed.
      const mark = argv.includes('-t') ? '1338' : '1337';
      expect(result.commands().filter((c) => c.startsWith('ip '))).toEqual(
        ROUTING_READS('-4', '-6').map((c) => c.replace('fwmark 1337', `fwmark ${mark}`)),
      );
      expect(result.kernel.ipRules('ipv4')).toEqual([RULE_V4]);
    });

    // What a TPROXY run needs outside iptables, one piece gone at a time: each is drift
    // (exit 5) until a re-run puts it back.
    const RULE_GONE = (f: Family) => `${f}: ip rule "fwmark 1337 lookup 133" is missing`;
    const ROUTE_GONE = (f: Family) => `${f}: route "local default dev lo table 133" is missing`;
    /** ROUTED with some of each family's pieces replaced. */
    const routedWith = (ipv4: IpSetup, ipv6: IpSetup = {}) => ({
      ipv4: { ...ROUTED.ipv4, ...ipv4 },
      ipv6: { ...ROUTED.ipv6, ...ipv6 },
    });
    it.each<[string, NonNullable<FakeOptions['ip']>, string[]]>([
      ['all there', ROUTED, []],
      ['the IPv4 rule gone', routedWith({ rules: [] }), [RULE_GONE('ipv4')]],
      ['the IPv6 route gone', routedWith({}, { routes: [] }), [ROUTE_GONE('ipv6')]],
      [
        'rule and route gone in both families (a fresh namespace but for ::6)',
        { ipv6: { lo: ['::6/128'] } },
        [RULE_GONE('ipv4'), ROUTE_GONE('ipv4'), RULE_GONE('ipv6'), ROUTE_GONE('ipv6')],
      ],
      [
        'the rule of another table, a route in another table',
        routedWith({
          rules: [{ mark: 1337, table: 134 }],
          routes: ['local default dev lo table 134'],
        }),
        [RULE_GONE('ipv4'), ROUTE_GONE('ipv4')],
      ],
      [
        'a copy of the rule at another preference is the rule',
        routedWith({ rules: [{ mark: 1337, table: 133, pref: 100 }] }),
        [],
      ],
      [
        '::6 gone from lo',
        routedWith({}, { lo: [] }),
        ['ipv6: ::6/128 is not on lo (the proxy cannot bind its passthrough source)'],
      ],
    ])('TPROXY outside iptables, %s', async (_name, ip, drift) => {
      const result = await run(['--check', ...ALL_FEATURES], setup, {
        globalIpv6: true,
        resolvConf: RESOLV_CONF,
        ip,
      });
      expect(result.stdout()).toBe(drift.map((line) => `${line}\n`).join(''));
      expect(result.code).toBe(drift.length === 0 ? 0 : 5);
      if (drift.length === 0) return;
      expect(result.stderrLines().at(-1)).toBe(
        `mesh-init: check: the live rules differ from the planned ones (${drift.length} lines)`,
      );
      // A re-run puts back what is gone, and --check agrees.
      const { kernel } = result;
      const again = await run(ALL_FEATURES, setup, {
        kernel,
        globalIpv6: true,
        resolvConf: RESOLV_CONF,
      });
      expect(again.code).toBe(0);
      const after = await run(['--check', ...ALL_FEATURES], setup, {
        kernel,
        globalIpv6: true,
        resolvConf: RESOLV_CONF,
      });
      expect(after.stdout()).toBe('');
      expect(after.code).toBe(0);
    });

    it('TPROXY not planned: --check does not look at ip rules or routes', async () => {
      const without = ALL_FEATURES.filter((a) => a !== 'TPROXY' && a !== '-m');
      const result = await run(
        ['--check', ...without],
        { 'nft/ipv4': '', 'legacy/ipv4': '' },
        {
          resolvConf: RESOLV_CONF,
        },
      );
      expect(result.code).toBe(5);
      expect(result.commands().filter((c) => c.startsWith('ip '))).toEqual([]);
      expect(result.stdout()).not.toMatch(/ip rule|route "/);
    });
  });

  describe('rollback per table: a later table failing puts the earlier ones back', () => {
    /** Fails every restore of the raw table; the kernel answers the others. */
    const rawRejected: Answer = (call, kernel) =>
      call.input?.includes('\n*raw\n') && call.args.includes('--noflush')
        ? exited(1, 'iptables-restore: line 9 failed\n')
        : kernel.run(call);

    it('backend auto: nat and mangle restored as read, without --noflush, in that order', async () => {
      const result = await run(ALL_FEATURES, LIVE_LEGACY, {
        resolvConf: RESOLV_CONF,
        answers: { 'iptables-legacy-restore': rawRejected },
      });
      expect(result.code).toBe(4);
      const restores = result.restores();
      expect(
        restores.map((c) => [c.args.join(' '), tablesOf([c])[0] ?? c.input?.split('\n')[0]]),
      ).toEqual([
        ['--noflush --wait=10', 'ipv4 nat'],
        ['--noflush --wait=10', 'ipv4 mangle'],
        ['--noflush --wait=10', 'ipv4 raw'],
        ['--wait=10', '*nat'],
        ['--wait=10', '*mangle'],
      ]);
      // Each table's section of the dump read at the start, the foreign MARK rule too.
      const dump = fixture('iptables-legacy-save.txt');
      expect(restores[3]?.input).toBe(tableSection(dump, 'nat'));
      expect(restores[4]?.input).toBe(tableSection(dump, 'mangle'));
      for (const table of ['nat', 'mangle', 'raw'] as const) {
        expect(parseTableState(result.kernel.saveText('legacy/ipv4'), table)).toEqual(
          parseTableState(dump, table),
        );
      }
      expect(result.stderrLines().slice(-5)).toEqual([
        'mesh-init: iptables-legacy-restore rejected the ipv4 rules (nothing of them was applied): exit 1: iptables-restore: line 9 failed',
        expect.stringMatching(/^ {2}line 9: /),
        '  ipv4 nat was put back as it was',
        '  ipv4 mangle was put back as it was',
        '  the ipv4 ip rule fwmark 1337 this run added was deleted again',
      ]);
      // The tables first, so nothing marks packets for the rule this run added, which
      // goes then; the route stays (see README).
      expect(result.kernel.ipRules('ipv4')).toEqual([]);
      expect(result.kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
      expect(result.commands().slice(-3)).toEqual([
        'iptables-legacy-restore --wait=10',
        'iptables-legacy-restore --wait=10',
        'ip -4 rule del fwmark 1337 lookup 133',
      ]);
      expect(result.calls.at(-2)).toBe(restores[4]);
    });

    it('a table the dump did not have (legacy loads raw only in use) is put back empty', async () => {
      const result = await run(ALL_FEATURES, LIVE_LEGACY, {
        globalIpv6: true,
        resolvConf: RESOLV_CONF,
        answers: {
          'ip6tables-legacy-restore': (call, kernel) =>
            call.input?.includes('\n*raw\n')
              ? exited(1, 'ip6tables-restore: line 9 failed\n')
              : kernel.run(call),
        },
      });
      expect(result.code).toBe(4);
      const rollback = result.restores().filter((c) => !c.args.includes('--noflush'));
      // IPv4 all three tables, then IPv6 nat and mangle: each put back.
      expect(rollback.map((c) => c.file)).toEqual([
        ...Array(3).fill('iptables-legacy-restore'),
        ...Array(2).fill('ip6tables-legacy-restore'),
      ]);
      expect(rollback[2]?.input).toBe('*raw\nCOMMIT\n');
      expect(rollback[4]?.input).toBe('*mangle\nCOMMIT\n');
      for (const key of ['legacy/ipv4', 'legacy/ipv6'] as const) {
        expect(
          ownedIn(result.kernel.saveText(key)).filter((c) => !/INBOUND|OUTPUT|REDIRECT/.test(c)),
        ).toEqual([]);
      }
      expect(parseTableState(result.kernel.saveText('legacy/ipv6'), 'nat')).toEqual(
        parseTableState(fixture('ip6tables-nft-save-nat.txt'), 'nat'),
      );
      expect(result.stderrLines().slice(-7)).toEqual([
        '  ipv4 nat was put back as it was',
        '  ipv4 mangle was put back as it was',
        '  ipv4 raw was put back as it was',
        '  ipv6 nat was put back as it was',
        '  ipv6 mangle was put back as it was',
        '  the ipv4 ip rule fwmark 1337 this run added was deleted again',
        '  the ipv6 ip rule fwmark 1337 this run added was deleted again',
      ]);
    });

    it('a forced backend on a fresh pod (nothing read): what nat and mangle added is taken back', async () => {
      const result = await run([...FORCED, ...ALL_FEATURES], FRESH, {
        resolvConf: RESOLV_CONF,
        answers: { 'iptables-nft-restore': rawRejected },
      });
      expect(result.code).toBe(4);
      const undo = result.restores().slice(3);
      expect(tablesOf(undo)).toEqual(['ipv4 nat', 'ipv4 mangle']);
      expect(undo.map((c) => c.args)).toEqual([
        ['--noflush', '--wait=10'],
        ['--noflush', '--wait=10'],
      ]);
      expect(undo[1]?.input?.split('\n').filter((l) => /^-[DX] /.test(l))).toEqual([
        expect.stringMatching(/^-D PREROUTING .* -j ISTIO_DROP_INVALID$/),
        expect.stringMatching(/^-D PREROUTING -p tcp .* -j ISTIO_INBOUND$/),
        expect.stringMatching(/^-D OUTPUT -p tcp .* -j ISTIO_OUTPUT$/),
        ...['DROP_INVALID', 'DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT'].map((c) => `-X ISTIO_${c}`),
      ]);
      expect(ownedIn(result.kernel.saveText('nft/ipv4'))).toEqual([]);
      expect(result.stderrLines().slice(-3)).toEqual([
        "  ipv4 nat was put back: this run's jumps and mesh-init's chains were removed",
        "  ipv4 mangle was put back: this run's jumps and mesh-init's chains were removed",
        '  the ipv4 ip rule fwmark 1337 this run added was deleted again',
      ]);
    });
  });

  describe('dry-run', () => {
    it('prints every table of each family, and the ip commands apply would also run', async () => {
      const dry = await run(['--dry-run', ...ALL_FEATURES], FRESH, {
        globalIpv6: true,
        resolvConf: RESOLV_CONF,
      });
      expect(dry.code).toBe(0);
      expect(dry.stdout()).toBe(
        golden('all-features.ipv4.golden') + golden('all-features.ipv6.golden'),
      );
      expect(dry.calls.every((c) => c.file.endsWith('-save'))).toBe(true);
      expect(dry.stderrLines().slice(1)).toEqual([
        'mesh-init: dns: capturing DNS to 10.96.0.10, fd00:10:96::a (from /etc/resolv.conf)',
        'mesh-init: backend: nft (no rules in either backend, nft preferred)',
        'mesh-init: dry-run: would also run: ip -6 addr replace ::6/128 dev lo',
        'mesh-init: dry-run: would also run: ip -4 rule add fwmark 1337 lookup 133 pref 32765 (unless listed)',
        'mesh-init: dry-run: would also run: ip -4 route replace local default dev lo table 133',
        'mesh-init: dry-run: would also run: ip -6 rule add fwmark 1337 lookup 133 pref 32765 (unless listed)',
        'mesh-init: dry-run: would also run: ip -6 route replace local ::/0 dev lo table 133',
        'mesh-init: dry-run: printed the ipv4 and ipv6 text; nothing applied',
      ]);
      // And apply feeds exactly that, table by table.
      const apply = await run(ALL_FEATURES, FRESH, { globalIpv6: true, resolvConf: RESOLV_CONF });
      expect(apply.code).toBe(0);
      expect(
        apply
          .applied()
          .map((c) => c.input)
          .join(''),
      ).toBe(dry.stdout());
    });

    // Apply removes TPROXY's rule and route when it re-runs without TPROXY over its
    // chains (dropStaleLocalRoute); the dry-run of that run names both, and runs neither.
    it('a dry-run of a re-run without TPROXY names the rule and route apply would remove', async () => {
      const first = await run(TPROXY, FRESH);
      expect(first.code).toBe(0);
      const { kernel } = first;
      const dry = await run(['--dry-run'], FRESH, { kernel });
      expect(dry.code).toBe(0);
      expect(dry.stderrLines().filter((l) => l.includes('would also run'))).toEqual([
        'mesh-init: dry-run: would also run: ip -4 rule del fwmark 1337 lookup 133 (each one listed)',
        'mesh-init: dry-run: would also run: ip -4 route del local default dev lo table 133 (if there)',
      ]);
      expect(dry.calls.every((c) => c.file.endsWith('-save'))).toBe(true);
      expect(kernel.ipRules('ipv4')).toEqual([RULE_V4]);
      expect(kernel.ipRoutes('ipv4')).toEqual([ROUTE_V4]);
      // Apply then feeds the text printed and deletes what was named.
      const again = await run([], FRESH, { kernel });
      expect(again.code).toBe(0);
      expect(
        again
          .applied()
          .map((c) => c.input)
          .join(''),
      ).toBe(dry.stdout());
      expect(again.commands().filter((c) => / (rule|route) del /.test(c))).toEqual([
        'ip -4 rule del fwmark 1337 lookup 133',
        'ip -4 route del local default dev lo table 133',
      ]);
    });

    it('a dry-run of a re-run without TPROXY, -t/-r as flags, both families: that mark and table', async () => {
      const first = await run([...TPROXY, '-t', '4096', '-r', '134'], FRESH, { globalIpv6: true });
      expect(first.code).toBe(0);
      const dry = await run(['--dry-run', '-t', '4096', '-r', '134'], FRESH, {
        kernel: first.kernel,
        globalIpv6: true,
      });
      expect(dry.code).toBe(0);
      expect(
        dry.stderrLines().filter((l) => /would also run: ip -[46] (rule|route) /.test(l)),
      ).toEqual([
        'mesh-init: dry-run: would also run: ip -4 rule del fwmark 4096 lookup 134 (each one listed)',
        'mesh-init: dry-run: would also run: ip -4 route del local default dev lo table 134 (if there)',
        'mesh-init: dry-run: would also run: ip -6 rule del fwmark 4096 lookup 134 (each one listed)',
        'mesh-init: dry-run: would also run: ip -6 route del local ::/0 dev lo table 134 (if there)',
      ]);
    });

    it('a dry-run of a re-run without TPROXY where TPROXY never ran: no ip command named', async () => {
      for (const setup of [FRESH, LIVE_NFT]) {
        const dry = await run(['--dry-run', '--drop-invalid'], setup, { globalIpv6: true });
        expect(dry.code).toBe(0);
        expect(dry.stderrLines().filter((l) => l.includes('would also run: ip -4'))).toEqual([]);
        expect(dry.stderr()).not.toMatch(/would also run: ip -6 (rule|route)/);
      }
    });

    it('--cleanup --dry-run: the cleanup of every table holding mesh-init, and the ip commands', async () => {
      const setup: Setup = {
        'legacy/ipv4': fixture('iptables-legacy-save-all-features.txt'),
        'nft/ipv4': '',
      };
      const dry = await run(['--cleanup', '--dry-run', '-m', 'TPROXY', '-t', '7'], setup);
      expect(dry.code).toBe(0);
      expect(dry.stdout().match(/^# mesh-init: .*$/gm)).toEqual([
        '# mesh-init: ipv4 nat cleanup for iptables-restore --noflush',
        '# mesh-init: ipv4 mangle cleanup for iptables-restore --noflush',
        '# mesh-init: ipv4 raw cleanup for iptables-restore --noflush',
      ]);
      expect(dry.stderrLines().filter((l) => l.includes('would also run'))).toEqual([
        'mesh-init: dry-run: would also run: ip -4 rule del fwmark 7 lookup 133 (each one listed)',
        'mesh-init: dry-run: would also run: ip -4 route del local default dev lo table 133 (if there)',
      ]);
      expect(dry.calls.every((c) => c.file.endsWith('-save'))).toBe(true);
      expect(dry.resolvConfReads()).toBe(0);
    });
  });

  describe('DNS capture: the resolvers of /etc/resolv.conf', () => {
    it.each<[string, string[]]>([
      ['apply', ['--redirect-dns']],
      ['dry-run', ['--redirect-dns', '--dry-run']],
      ['check', ['--redirect-dns', '--check']],
    ])('unreadable (%s): exit 3, naming the file, before anything runs', async (_name, argv) => {
      const error = Object.assign(new Error("EACCES: permission denied, open '/etc/resolv.conf'"), {
        code: 'EACCES',
      });
      const result = await run(argv, LIVE_NFT, { resolvConf: error });
      expect(result.code).toBe(3);
      expect(result.calls).toEqual([]);
      expect(result.stdout()).toBe('');
      expect(result.stderrLines().at(-1)).toBe(
        "mesh-init: cannot read /etc/resolv.conf for DNS capture: EACCES: permission denied, open '/etc/resolv.conf'",
      );
    });

    it.each<[string, string[]]>([
      ['--cleanup', ['--redirect-dns', '--cleanup']],
      ['no DNS capture', []],
    ])('%s: resolv.conf is not read (it would not matter)', async (_name, argv) => {
      const result = await run(argv, FRESH, { resolvConf: new Error('must not be read') });
      expect(result.code).toBe(0);
      expect(result.resolvConfReads()).toBe(0);
    });

    it.each<[string, string]>([
      ['no nameserver line', 'search default.svc.cluster.local\noptions ndots:5\n'],
      ['an empty file', ''],
      ['only comments', '# nameserver 10.0.0.1\n; nameserver 10.0.0.2\n'],
    ])(
      '%s: logged, and no DNS is captured (no DNS chain, no raw table)',
      async (_name, resolvConf) => {
        const result = await run(['--redirect-dns'], FRESH, { resolvConf, globalIpv6: true });
        expect(result.code).toBe(0);
        expect(result.resolvConfReads()).toBe(1);
        expect(result.stderrLines()).toContain(
          'mesh-init: dns: /etc/resolv.conf names no nameserver; no DNS is captured (--capture-all-dns captures all)',
        );
        expect(tablesOf(result.restores())).toEqual(['ipv4 nat', 'ipv6 nat']);
        expect(
          result
            .restores()
            .map((c) => c.input)
            .join(''),
        ).not.toContain('OUTPUT_DNS');
        expect(result.restores().map((c) => c.input)).toEqual([
          golden('default.ipv4.golden'),
          golden('default.ipv6.golden'),
        ]);
      },
    );

    it('the resolvers of each family: DNS to them captured, a log line naming them', async () => {
      const resolvConf = 'nameserver 10.96.0.10\nnameserver 10.96.0.11\nnameserver fd00::a\n';
      const result = await run(['--redirect-dns', '--log-format', 'json'], FRESH, {
        resolvConf,
        globalIpv6: true,
      });
      expect(result.code).toBe(0);
      const dns = result
        .stderrLines()
        .map((l) => JSON.parse(l))
        .find((l) => l.event === 'dns');
      expect(dns).toMatchObject({
        msg: 'dns: capturing DNS to 10.96.0.10, 10.96.0.11, fd00::a (from /etc/resolv.conf)',
        resolvers: ['10.96.0.10', '10.96.0.11', 'fd00::a'],
      });
      expect(tablesOf(result.restores())).toEqual(['ipv4 nat', 'ipv4 raw', 'ipv6 nat', 'ipv6 raw']);
      const [v4nat = '', , v6nat = ''] = result.restores().map((c) => c.input ?? '');
      expect(
        v4nat.match(/^-A ISTIO_OUTPUT_DNS .*$/gm)?.map((l) => / -d (\S+) /.exec(l)?.[1]),
      ).toEqual(['10.96.0.10/32', '10.96.0.10/32', '10.96.0.11/32', '10.96.0.11/32']);
      expect(v6nat.match(/ -d fd00::a\/128 /g)).toHaveLength(2);
      for (const key of ['nft/ipv4', 'nft/ipv6'] as const) {
        expect(await driftOfTables(result, key, ['--redirect-dns'], resolvConf)).toEqual([]);
      }
    });

    // A nameserver with a zone id (fe80::1%eth0) is valid for the C library, so the
    // apps do send DNS there: its address is captured, the zone dropped (ip6tables
    // matches the address on any interface).
    it('a nameserver with a zone id: its address captured and named', async () => {
      const result = await run(['--redirect-dns'], FRESH, {
        resolvConf: 'nameserver fe80::1%eth0\n',
        globalIpv6: true,
      });
      expect(result.code).toBe(0);
      expect(result.stderrLines()).toContain(
        'mesh-init: dns: capturing DNS to fe80::1 (from /etc/resolv.conf)',
      );
      // DNS is captured in the pod, so the proxy's own IPv4 DNS gets its conntrack zones
      // too, as in Istio (issue 14), though no IPv4 resolver is captured.
      expect(tablesOf(result.restores())).toEqual(['ipv4 nat', 'ipv4 raw', 'ipv6 nat', 'ipv6 raw']);
      const v4raw = result.restores()[1]?.input ?? '';
      expect(
        v4raw.match(/^-A ISTIO_OUTPUT_DNS .* --(uid|gid)-owner 1337 .* -j CT --zone [12]$/gm),
      ).toHaveLength(4);
      expect(v4raw).not.toMatch(/ -[sd] |ISTIO_INBOUND/);
      const v6nat = result.restores()[2]?.input ?? '';
      expect(
        v6nat.match(/^-A ISTIO_OUTPUT_DNS -p (tcp|udp) --dport 53 -d fe80::1\/128 /gm),
      ).toHaveLength(2);
      expect(v6nat).not.toContain('%');
    });

    it.each<[string, string, string[], string, string[]]>([
      [
        'one value no address, next to a resolver',
        'nameserver 10.96.0.10#53\nnameserver 10.96.0.11\n',
        ['--redirect-dns'],
        'mesh-init: dns: capturing DNS to 10.96.0.11 (from /etc/resolv.conf); not an address, ignored: "10.96.0.10#53"',
        ['10.96.0.11'],
      ],
      [
        'only values that are no address',
        'nameserver dns.example\nnameserver 10.0.0.1#x\n',
        ['--redirect-dns'],
        'mesh-init: dns: /etc/resolv.conf names no nameserver; no DNS is captured (--capture-all-dns captures all); not an address, ignored: "dns.example", "10.0.0.1#x"',
        [],
      ],
      [
        '--capture-all-dns',
        'nameserver 10.0.0.1#x\nnameserver 10.96.0.10\n',
        ['--redirect-dns', '--capture-all-dns'],
        'mesh-init: dns: capturing DNS to any address (--capture-all-dns); /etc/resolv.conf names 10.96.0.10; not an address, ignored: "10.0.0.1#x"',
        ['10.96.0.10'],
      ],
      [
        'inet_aton and IPv4-mapped forms, named as the address they are',
        'nameserver 010.0.0.1\nnameserver ::ffff:10.96.0.10\n',
        ['--redirect-dns'],
        'mesh-init: dns: capturing DNS to 8.0.0.1, 10.96.0.10 (from /etc/resolv.conf)',
        ['8.0.0.1', '10.96.0.10'],
      ],
    ])(
      '%s: what is skipped is logged, never dropped silently',
      async (_name, resolvConf, argv, line, resolvers) => {
        const text = await run(argv, FRESH, { resolvConf });
        expect(text.code).toBe(0);
        expect(text.stderrLines()).toContain(line);
        const json = await run([...argv, '--log-format', 'json'], FRESH, { resolvConf });
        const dns = json
          .stderrLines()
          .map((l) => JSON.parse(l))
          .find((l) => l.event === 'dns');
        expect(dns).toMatchObject({ msg: line.replace(/^mesh-init: /, ''), resolvers });
        expect(dns.skipped).toEqual([...line.matchAll(/"([^"]+)"/g)].map((m) => m[1]));
      },
    );

    it('an IPv4-mapped nameserver is captured in the ipv4 table, as the C library sends IPv4', async () => {
      const result = await run(['--redirect-dns'], FRESH, {
        resolvConf: 'nameserver ::ffff:10.96.0.10\n',
        globalIpv6: true,
      });
      expect(result.code).toBe(0);
      // The ipv6 tables capture no resolver; the proxy's IPv6 DNS still gets its zones.
      expect(tablesOf(result.restores())).toEqual(['ipv4 nat', 'ipv4 raw', 'ipv6 nat', 'ipv6 raw']);
      expect(result.restores()[0]?.input).toContain(' -d 10.96.0.10/32 ');
      expect(result.restores()[2]?.input).not.toContain('ffff');
      expect(result.restores()[2]?.input).not.toContain('ISTIO_OUTPUT_DNS');
      expect(result.restores()[3]?.input).not.toMatch(/ -[sd] |ffff/);
    });
  });

  describe('--capture-all-dns reads resolv.conf too (for a resolver on lo)', () => {
    it.each<[string, string, string]>([
      ['a cluster resolver', POD_RESOLV_CONF, 'names 10.96.0.10'],
      ['no nameserver', 'search cluster.local\n', 'names no nameserver'],
    ])('%s: read once, logged, and all DNS captured anyway', async (_name, resolvConf, names) => {
      const result = await run(['--redirect-dns', '--capture-all-dns'], FRESH, { resolvConf });
      expect(result.code).toBe(0);
      expect(result.resolvConfReads()).toBe(1);
      expect(result.stderrLines()).toContain(
        `mesh-init: dns: capturing DNS to any address (--capture-all-dns); /etc/resolv.conf ${names}`,
      );
      // A resolver off lo changes nothing: the text is the one of a resolv.conf naming none.
      const none = await run(['--redirect-dns', '--capture-all-dns'], FRESH, { resolvConf: '' });
      expect(result.restores().map((c) => c.input)).toEqual(none.restores().map((c) => c.input));
      expect(tablesOf(result.restores())).toEqual(['ipv4 nat', 'ipv4 raw']);
      expect(result.restores()[1]?.input).not.toMatch(/ -[sd] /);
    });

    // Until 1e8ab27 --capture-all-dns never read the file; now a pod without one fails.
    it('unreadable: exit 3 before anything runs, as with --redirect-dns alone', async () => {
      const error = Object.assign(
        new Error("ENOENT: no such file or directory, open '/etc/resolv.conf'"),
        {
          code: 'ENOENT',
        },
      );
      const result = await run(['--redirect-dns', '--capture-all-dns'], LIVE_NFT, {
        resolvConf: error,
      });
      expect(result.code).toBe(3);
      expect(result.calls).toEqual([]);
      expect(result.stderrLines().at(-1)).toBe(
        "mesh-init: cannot read /etc/resolv.conf for DNS capture: ENOENT: no such file or directory, open '/etc/resolv.conf'",
      );
    });
  });

  describe("a resolver on lo (Docker's 127.0.0.11): its answers to the proxy in zone 1, capture ahead of Docker's DNAT", () => {
    /** A Docker container's nat table before mesh-init: Docker's DNS redirect, a CNI rule. */
    const DOCKER: Setup = {
      'nft/ipv4': fixture('iptables-nft-save.txt')
        .split('\n')
        .filter((l) => !l.includes('ISTIO_'))
        .join('\n'),
      'legacy/ipv4': '',
    };
    const DOCKER_RESOLV_CONF = 'nameserver 127.0.0.11\noptions ndots:0\n';
    const LO_ZONE =
      '-A ISTIO_OUTPUT_DNS -p udp -s 127.0.0.11/32 -m comment --comment "mesh-init: answers of a resolver on lo to the proxy are in zone 1" -j CT --zone 1';

    it.each<[string, string[]]>([
      ['--redirect-dns', ['--redirect-dns']],
      ['--capture-all-dns', ['--redirect-dns', '--capture-all-dns']],
    ])('%s: the zone-1 rule in raw, and mesh-init first in nat OUTPUT', async (_name, argv) => {
      const result = await run(argv, DOCKER, { resolvConf: DOCKER_RESOLV_CONF });
      expect(result.code).toBe(0);
      const raw = result.kernel.tableText('nft/ipv4', 'raw');
      const dnsRules = raw.split('\n').filter((l) => l.startsWith('-A ISTIO_OUTPUT_DNS '));
      // After the proxy's own rules (by uid and by gid) and after the apps' zone-2 rule
      // (an app on lo's own address asking a resolver there has its source too): the
      // first CT a packet meets wins.
      expect(dnsRules.map((l) => /--zone (\d)/.exec(l)?.[1])).toEqual([
        '1',
        '2',
        '1',
        '2',
        '2',
        '1',
      ]);
      expect(dnsRules[5]).toBe(LO_ZONE);
      const output = result.kernel
        .natText('nft/ipv4')
        .split('\n')
        .filter((l) => l.startsWith('-A OUTPUT '));
      expect(output).toEqual([
        '-A OUTPUT -m comment --comment "mesh-init: outbound traffic is checked for capture" -j ISTIO_OUTPUT',
        '-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT',
      ]);
      // Docker's chains are untouched.
      expect(result.kernel.natText('nft/ipv4')).toContain(
        '-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:35915',
      );
      expect(await driftOfTables(result, 'nft/ipv4', argv, DOCKER_RESOLV_CONF)).toEqual([]);
    });

    it('a resolver off lo next to it gets no such rule; ::1 gets one in ip6tables', async () => {
      const result = await run(['--redirect-dns'], FRESH, {
        resolvConf: 'nameserver 10.96.0.10\nnameserver 127.0.0.53\nnameserver ::1\n',
        globalIpv6: true,
      });
      expect(result.code).toBe(0);
      const [, v4raw = '', , v6raw = ''] = result.restores().map((c) => c.input ?? '');
      expect(v4raw.match(/ -s \S+ .*zone 1$/gm)?.map((l) => / -s (\S+) /.exec(l)?.[1])).toEqual([
        '127.0.0.53/32',
        // The resolvers' answers arriving from outside, in ISTIO_INBOUND.
        '10.96.0.10/32',
        '127.0.0.53/32',
      ]);
      expect(v6raw).toContain(
        '-A ISTIO_OUTPUT_DNS -p udp -s ::1/128 -m comment --comment "mesh-init: answers of a resolver on lo to the proxy are in zone 1" -j CT --zone 1',
      );
    });

    // The hooks an older mesh-init appended behind Docker's are exactly right but do not
    // head OUTPUT: Docker's DNAT of DNS to 127.0.0.11 comes first, and a DNATed packet
    // never reaches them. A re-run deletes them and inserts them at the top again.
    it("a re-run over hooks an older run appended behind Docker's jump moves them ahead of it", async () => {
      const result = await run([], LIVE_NFT);
      expect(result.code).toBe(0);
      const text = result.restores()[0]?.input ?? '';
      expect(text.split('\n').filter((l) => /^-[DI] /.test(l))).toEqual([
        `-D PREROUTING ${HOOK_IN}`,
        `-D OUTPUT ${HOOK_OUT}`,
        `-I PREROUTING 1 ${HOOK_IN}`,
        `-I OUTPUT 1 ${HOOK_OUT}`,
      ]);
      // Unhooked, the owned chains are recreated: a jump not read makes the -X fail.
      expect(text.split('\n').filter((l) => /^-[XN] /.test(l))).toEqual(
        ['-X', '-N'].flatMap((c) =>
          ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'].map((n) => `${c} ISTIO_${n}`),
        ),
      );
      // What the kernel holds now, as iptables-save prints it.
      const nat = result.kernel.natText('nft/ipv4');
      const targets = (chain: string) =>
        nat
          .split('\n')
          .filter((l) => l.startsWith(`-A ${chain} `))
          .map((l) => /-j (\S+)/.exec(l)?.[1]);
      expect(targets('OUTPUT')).toEqual(['ISTIO_OUTPUT', 'DOCKER_OUTPUT']);
      expect(targets('PREROUTING')).toEqual(['ISTIO_INBOUND']);
      expect(targets('POSTROUTING')).toEqual(['DOCKER_POSTROUTING', 'MASQUERADE']);
      expect(nat).toContain(
        '-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:35915',
      );
      expect(await driftIn(result, 'nft/ipv4')).toEqual([]);

      // Now they lead: the next re-run keeps them and only refills the owned chains.
      const again = await run([], LIVE_NFT, { kernel: result.kernel });
      expect(again.code).toBe(0);
      expect(again.restores().map((c) => c.input)).toEqual([
        golden('rerun-hooks-lead.ipv4.golden'),
      ]);
      expect(result.kernel.natText('nft/ipv4')).toBe(nat);
    });
  });
});

// Istio's --network-namespace (issue 14): every program runs in that namespace through
// nsenter, and --ipv6 auto asks that namespace for its addresses, not our own.
describe('--network-namespace: every program runs in that namespace', () => {
  const NS = '/var/run/netns/pod';
  const SHOW_V6 = 'ip -o addr show scope global';
  type Inner = { file: string; args: string[]; input: string | undefined };
  const line = (c: Inner) => [c.file, ...c.args].join(' ');
  /** nsenter, as the fake system answers it: the program after `--` runs on the fake kernel. */
  const nsenter =
    (globalIpv6: boolean, seen: Inner[] = []) =>
    (call: Call, kernel: FakeKernel): CommandResult | undefined => {
      const [net, dashes, file = '', ...args] = call.args;
      if (net !== `--net=${NS}` || dashes !== '--') return exited(1, 'nsenter: bad call\n');
      const inner = { file, args, input: call.input };
      seen.push(inner);
      if (line(inner) === SHOW_V6) {
        return success(globalIpv6 ? '2: eth0    inet6 fd00::5/64 scope global \\\n' : '');
      }
      return kernel.run(inner);
    };
  const restoresIn = (seen: Inner[]) => seen.filter((c) => c.file.endsWith('-restore'));

  it.each<[string, boolean, Family[]]>([
    ['no global IPv6 address in it: IPv4 only', false, ['ipv4']],
    ['a global IPv6 address in it: both families', true, ['ipv4', 'ipv6']],
  ])('%s, whatever our own namespace has', async (_name, globalIpv6, families) => {
    const seen: Inner[] = [];
    // Our own namespace says the opposite: only the pod's counts.
    const result = await run(['--network-namespace', NS], LIVE_NFT, {
      globalIpv6: !globalIpv6,
      answers: { nsenter: nsenter(globalIpv6, seen) },
    });
    expect(result.code).toBe(0);
    expect(result.calls.map((c) => c.file).every((file) => file === 'nsenter')).toBe(true);
    expect(seen.map(line)[0]).toBe(SHOW_V6);
    expect(restoresIn(seen).map(line)).toEqual(
      families.map(
        (f) => `${f === 'ipv4' ? 'iptables' : 'ip6tables'}-nft-restore --noflush --wait=10`,
      ),
    );
    // What it applied is what a run inside the pod applies.
    const inside = await run([], LIVE_NFT, { globalIpv6 });
    expect(restoresIn(seen).map((c) => c.input)).toEqual(inside.restores().map((c) => c.input));
    expect(result.stderrLines().at(-1)).toBe(inside.stderrLines().at(-1));
  });

  it("--redirect-dns there captures all of port 53: this /etc/resolv.conf is not the pod's", async () => {
    const result = await run(
      ['--network-namespace', NS, '--redirect-dns', '--ipv6', 'false', '--dry-run'],
      LIVE_NFT,
      { answers: { nsenter: nsenter(false) }, resolvConf: 'nameserver 10.96.0.10\n' },
    );
    expect(result.code).toBe(0);
    expect(result.stdout()).toContain('-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m comment');
    expect(result.stdout()).not.toContain('10.96.0.10');
    expect(result.stderrLines()).toContain(
      "mesh-init: dns: capturing DNS to any address: the pod's /etc/resolv.conf cannot be read from outside its namespace (as with --capture-all-dns)",
    );
  });

  it('--ipv6 true asks nothing about addresses', async () => {
    const seen: Inner[] = [];
    const result = await run(['--network-namespace', NS, '--ipv6', 'true'], LIVE_NFT, {
      answers: { nsenter: nsenter(false, seen) },
    });
    expect(result.code).toBe(0);
    expect(seen.map(line)).not.toContain(SHOW_V6);
    expect(restoresIn(seen).map((c) => c.input?.split('\n')[0])).toEqual([
      '# mesh-init: ipv4 nat rules for iptables-restore --noflush',
      '# mesh-init: ipv6 nat rules for ip6tables-restore --noflush',
    ]);
  });

  it('the addresses of the namespace cannot be read: exit 3, nothing applied', async () => {
    const seen: Inner[] = [];
    const result = await run(['--network-namespace', NS], LIVE_NFT, {
      answers: {
        nsenter: (call, kernel) =>
          call.args.includes('addr')
            ? exited(1, `nsenter: cannot open ${NS}: No such file or directory\n`)
            : nsenter(false, seen)(call, kernel),
      },
    });
    expect(result.code).toBe(3);
    expect(restoresIn(seen)).toEqual([]);
    expect(result.stderr()).toContain(`cannot open ${NS}: No such file or directory`);
  });

  it('an empty --network-namespace is our own namespace: no nsenter', async () => {
    const result = await run(['--network-namespace', ''], LIVE_NFT);
    expect(result.code).toBe(0);
    expect(result.calls.map((c) => c.file)).not.toContain('nsenter');
    expect(result.restores().map((c) => c.input)).toEqual(
      (await run([], LIVE_NFT)).restores().map((c) => c.input),
    );
  });
});

// Istio's choice of families (issue 14): IPv6 where the pod is IPv6-only, or where
// --dual-stack (ISTIO_DUAL_STACK) says the proxies serve both families.
describe('--ipv6 auto decides as Istio does', () => {
  const restored = (result: Awaited<ReturnType<typeof run>>) =>
    result.restores().map((c) => c.file);
  it.each<[string, string[], { globalIpv4: boolean; globalIpv6: boolean }, string[], string]>([
    [
      'an IPv4-only pod',
      [],
      { globalIpv4: true, globalIpv6: false },
      ['iptables-nft-restore'],
      'no global IPv6 address',
    ],
    [
      'a dual-stack pod without --dual-stack',
      [],
      { globalIpv4: true, globalIpv6: true },
      ['iptables-nft-restore'],
      'the pod has IPv4 too and --dual-stack is off, as in Istio',
    ],
    [
      'a dual-stack pod with --dual-stack',
      ['--dual-stack'],
      { globalIpv4: true, globalIpv6: true },
      ['iptables-nft-restore', 'ip6tables-nft-restore'],
      '',
    ],
    [
      'a dual-stack pod with ISTIO_DUAL_STACK (through its variable)',
      [],
      { globalIpv4: true, globalIpv6: true },
      ['iptables-nft-restore', 'ip6tables-nft-restore'],
      '',
    ],
    [
      'an IPv6-only pod: both families, as Istio',
      [],
      { globalIpv4: false, globalIpv6: true },
      ['iptables-nft-restore', 'ip6tables-nft-restore'],
      '',
    ],
    [
      '--ipv6 true on an IPv4-only pod',
      ['--ipv6', 'true'],
      { globalIpv4: true, globalIpv6: false },
      ['iptables-nft-restore', 'ip6tables-nft-restore'],
      '',
    ],
  ])('%s', async (name, argv, families, restores, why) => {
    const env: Record<string, string> = name.includes('ISTIO_DUAL_STACK')
      ? { ISTIO_DUAL_STACK: 'true' }
      : {};
    const result = await run(['--iptables-backend', 'nft', ...argv], {}, { ...families, env });
    expect(result.code).toBe(0);
    expect(restored(result)).toEqual(restores);
    const applied = result.stderrLines().find((l) => l.includes(': applied '));
    expect(applied?.endsWith(why === '' ? 'backend' : `; ipv6 not captured (${why})`)).toBe(true);
  });
});

describe('group names of the owner-group filters', () => {
  it('are resolved from /etc/group: the rules hold GIDs', async () => {
    const result = await run(['--dry-run', '--outbound-owner-groups', 'adm,202'], {}, {});
    expect(result.code).toBe(0);
    expect(result.stdout()).toContain(
      '-m owner ! --gid-owner 4 -m owner ! --gid-owner 202 -m comment --comment "mesh-init: only the groups of --outbound-owner-groups are captured" -j RETURN',
    );
  });

  it('an unknown name exits 2 before anything runs', async () => {
    const result = await run(['--outbound-owner-groups', 'java'], {}, {});
    expect(result.code).toBe(2);
    expect(result.calls).toEqual([]);
    expect(result.stderrLines().at(-1)).toBe(
      `mesh-init: invalid --outbound-owner-groups: group "java" is not in the init container's /etc/group; give its GID`,
    );
  });
});

describe('group names and families where only part of a run happens', () => {
  it('--skip-rule-apply --run-validation: the validation gets the groups as GIDs', async () => {
    const result = await run(
      ['--run-validation', '--skip-rule-apply', '--outbound-owner-groups', 'adm'],
      {},
      {},
    );
    expect(result.code).toBe(0);
    expect(result.validations.map((v) => v.config.ownerGroups)).toEqual([
      { kind: 'only', groups: [4] },
    ]);
  });

  it('--cleanup on a dual-stack pod without --dual-stack cleans IPv6 too (an earlier run may have had it)', async () => {
    const result = await run(['--cleanup', '--iptables-backend', 'nft'], LIVE_NFT, {
      globalIpv4: true,
      globalIpv6: true,
    });
    expect(result.code).toBe(0);
    expect(result.restores().map((c) => c.file)).toEqual([
      'iptables-nft-restore',
      'ip6tables-nft-restore',
    ]);
  });
});
