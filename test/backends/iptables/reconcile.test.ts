/**
 * Reconciliation: which live rules a run deletes (only mesh-init's hooks in the
 * kernel's chains) and in which order the planned rules are written. Where a test
 * needs the table a text leaves, it applies the text to the fake kernel and reads
 * its save: the jumps are inserted (-I), so the text itself no longer reads like one.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  liveHooks,
  planCleanup,
  planTransaction,
  planUndo,
} from '../../../src/backends/iptables/reconcile.js';
import { renderRestore } from '../../../src/backends/iptables/render.js';
import {
  EMPTY_STATE,
  parseTableState,
  type TableState,
} from '../../../src/backends/iptables/state.js';
import type { Family } from '../../../src/config/net.js';
import { planMangle, planNat, planTables } from '../../../src/plan/plan.js';
import {
  chainName,
  OWNED_CHAINS,
  type OwnedChain,
  TABLES,
  type Table,
  type TablePlan,
} from '../../../src/plan/rules.js';
import { configFrom, withResolvConf } from '../../config-from.js';
import { FakeKernel, hooksFirst } from '../../fake-system.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/iptables/${name}`, import.meta.url), 'utf8');

/** A nat table as iptables-save prints it, from `-A` lines. */
function natState(...rules: string[]): TableState {
  return tableState('nat', ...rules);
}

/** One table as iptables-save prints it, from `-A` lines (each chain they name is declared). */
function tableState(table: Table, ...rules: string[]): TableState {
  const chains = [...new Set(rules.map((r) => r.split(' ')[1]))];
  return parseTableState(
    [`*${table}`, ...chains.map((c) => `:${c} - [0:0]`), ...rules, 'COMMIT', ''].join('\n'),
    table,
  );
}

/**
 * What iptables-save lists once restore texts are applied, in order, to a fresh
 * namespace of the fake kernel (nft backend).
 */
function savedAfter(...texts: string[]): string {
  const family =
    /^# mesh-init: (ipv4|ipv6) /.exec(texts[0] ?? '')?.[1] === 'ipv6' ? 'ipv6' : 'ipv4';
  const kernel = new FakeKernel({});
  const file = family === 'ipv6' ? 'ip6tables-nft-restore' : 'iptables-nft-restore';
  for (const input of texts) {
    const answer = kernel.run({ file, args: ['--noflush'], input });
    if (answer?.exitCode !== 0) throw new Error(`the fake kernel refused: ${answer?.stderr}`);
  }
  return kernel.saveText(`nft/${family}`);
}

/**
 * What iptables-save lists once restore texts are applied, in order, to a kernel that
 * holds `save` (nft backend).
 */
function savedOver(save: string, family: Family, ...texts: string[]): string {
  const kernel = new FakeKernel({ [`nft/${family}`]: save });
  const file = family === 'ipv6' ? 'ip6tables-nft-restore' : 'iptables-nft-restore';
  for (const input of texts) {
    const answer = kernel.run({ file, args: ['--noflush'], input });
    if (answer?.exitCode !== 0) throw new Error(`the fake kernel refused: ${answer?.stderr}`);
  }
  return kernel.saveText(`nft/${family}`);
}

/** The nat chains of a plan without DNS capture, in declaration order. */
const NAT_CHAINS: readonly OwnedChain[] = ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'];

const DEFAULT = await configFrom([]);

/** The config of the `*-varied.txt` fixtures (see drift.test.ts). */
const VARIED = [
  ...['-z', '15006', '-u', '1337,0', '-g', '1338', '-b', '8080,9090', '-d', '22'],
  ...['-o', '53,3306', '-q', '443', '-i', '10.96.0.0/12,fd00:10:96::/112'],
  ...['-x', '10.96.0.1,fd00:10:96::1', '--ipv6', 'true'],
];

const unhooked = (state: TableState, prefix = 'ISTIO_') =>
  planTransaction(planNat(DEFAULT, 'ipv4'), state, prefix).unhook.map(
    (r) => `-A ${r.chain} ${r.spec}`,
  );

describe('unhook', () => {
  it.each([
    ['-A PREROUTING -p tcp -j ISTIO_INBOUND'],
    ['-A INPUT -j ISTIO_INBOUND'],
    ['-A OUTPUT -p tcp -j ISTIO_OUTPUT'],
    ['-A OUTPUT -j ISTIO_OUTPUT'],
    ['-A POSTROUTING -j ISTIO_REDIRECT'],
    ['-A OUTPUT -d 10.0.0.0/8 -j ISTIO_IN_REDIRECT'],
    ['-A PREROUTING -p tcp -m comment --comment "old \\"hook\\" here" -j ISTIO_INBOUND'],
  ])('a jump from a kernel chain into an owned chain is deleted: %s', (rule) => {
    expect(unhooked(natState(rule))).toEqual([rule]);
  });

  it.each([
    ['a foreign jump in OUTPUT', '-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT'],
    ['a foreign rule', '-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE'],
    ['a jump from a foreign chain into an owned chain', '-A DOCKER_OUTPUT -j ISTIO_OUTPUT'],
    ['a jump between owned chains', '-A ISTIO_OUTPUT -j ISTIO_REDIRECT'],
    ['an owned chain that mesh-init does not use', '-A PREROUTING -p tcp -j ISTIO_DIVERT'],
    ['a chain of another prefix', '-A OUTPUT -j MESH_OUTPUT'],
    [
      'an owned name only in a comment',
      '-A OUTPUT -m comment --comment "-j ISTIO_OUTPUT" -j ACCEPT',
    ],
    ['a rule without a target', '-A OUTPUT -p tcp -m comment --comment "ISTIO_OUTPUT"'],
    ['a kernel target', '-A OUTPUT -p tcp -j REDIRECT --to-ports 15001'],
  ])('%s is left alone', (_name, rule) => {
    expect(unhooked(natState(rule))).toEqual([]);
  });

  it('the prefix decides what is owned', () => {
    const state = natState('-A OUTPUT -j ISTIO_OUTPUT', '-A OUTPUT -j MESH_OUTPUT');
    expect(unhooked(state, 'MESH_')).toEqual(['-A OUTPUT -j MESH_OUTPUT']);
    expect(unhooked(state, 'ISTIO_')).toEqual(['-A OUTPUT -j ISTIO_OUTPUT']);
  });

  it('every hook goes, duplicates too, in live order, and nothing else', () => {
    const state = natState(
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A DOCKER_OUTPUT -p udp --dport 53 -j DNAT --to-destination 127.0.0.11:35915',
      '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
    );
    expect(unhooked(state)).toEqual([
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
    ]);
  });

  it('an empty namespace has nothing to unhook', () => {
    expect(planTransaction(planNat(DEFAULT, 'ipv4'), EMPTY_STATE, 'ISTIO_').unhook).toEqual([]);
  });

  it('a re-run over its own result keeps its hooks and refills only the owned chains', async () => {
    for (const argv of [[], ['-o', '22'], ['-b', ''], ['--chain-prefix', 'MESH_']]) {
      const config = await configFrom(argv);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const plan = planNat(config, family);
        const first = renderRestore(planTransaction(plan, EMPTY_STATE, config.chainPrefix));
        const live = parseTableState(savedAfter(first), 'nat');
        const again = planTransaction(plan, live, config.chainPrefix);
        expect(again.unhook).toEqual([]);
        expect(again.recreate).toEqual([]);
        expect(again.rules).toEqual(plan.rules.filter((r) => r.chain.kind === 'owned'));
        expect(again.declare).toEqual(plan.chains);
      }
    }
  });
});

describe('order of the planned rules', () => {
  it('rules of owned chains first, hooks last, each group in plan order', async () => {
    for (const argv of [[], ['-b', '8080', '-o', '22', '-q', '443'], ['-b', '']]) {
      const plan = planNat(await configFrom(argv), 'ipv6');
      const tx = planTransaction(plan, EMPTY_STATE, 'ISTIO_');
      const owned = plan.rules.filter((r) => r.chain.kind === 'owned');
      const hooks = plan.rules.filter((r) => r.chain.kind === 'builtin');
      expect(hooks.length).toBeGreaterThan(0);
      expect(tx.rules).toEqual([...owned, ...hooks]);
      expect(tx.family).toBe(plan.family);
      expect(tx.purpose).toBe('rules');
      expect(tx.table).toBe('nat');
      expect(tx.declare).toEqual(plan.chains);
      // Nothing live to keep: every owned chain is recreated, guarding against jumps
      // the plan did not know of.
      expect(tx.recreate).toEqual(plan.chains);
      expect(tx.remove).toEqual([]);
      expect(tx.prefix).toBe('ISTIO_');
    }
  });

  it('the plan puts a hook before owned rules, so the reordering is needed', async () => {
    // Guards the test above against passing only because the plan is already ordered.
    const plan = planNat(await configFrom([]), 'ipv4');
    const firstHook = plan.rules.findIndex((r) => r.chain.kind === 'builtin');
    const lastOwned = plan.rules.map((r) => r.chain.kind === 'owned').lastIndexOf(true);
    expect(firstHook).toBeLessThan(lastOwned);
  });
});

describe('chainName', () => {
  it.each([
    [{ kind: 'builtin', name: 'PREROUTING' } as const, 'PREROUTING'],
    [{ kind: 'builtin', name: 'OUTPUT' } as const, 'OUTPUT'],
    [{ kind: 'owned', name: 'OUTPUT' } as const, 'P_OUTPUT'],
    ['IN_REDIRECT' as const, 'P_IN_REDIRECT'],
  ])('%j → %s', (chain, name) => {
    expect(chainName('P_', chain)).toBe(name);
  });
});

describe('planCleanup', () => {
  const hooksOf = (state: TableState, prefix = 'ISTIO_') =>
    planCleanup('ipv4', 'nat', state, prefix).unhook.map((r) => `-A ${r.chain} ${r.spec}`);

  it.each([
    ['iptables-legacy-save.txt'],
    ['iptables-nft-save.txt'],
    ['ip6tables-nft-save-nat.txt'],
    ['iptables-legacy-save-nat-varied.txt'],
    ['ip6tables-nft-save-nat-varied.txt'],
  ])(
    'over %s: declares every owned chain, unhooks every live hook, removes every owned chain',
    (name) => {
      const state = parseTableState(fixture(name), 'nat');
      const family = name.startsWith('ip6') ? 'ipv6' : 'ipv4';
      const tx = planCleanup(family, 'nat', state, 'ISTIO_');
      expect(tx).toEqual({
        family,
        table: 'nat',
        purpose: 'cleanup',
        prefix: 'ISTIO_',
        declare: OWNED_CHAINS.nat,
        unhook: liveHooks(state, 'ISTIO_', OWNED_CHAINS.nat),
        recreate: [],
        rules: [],
        remove: OWNED_CHAINS.nat,
      });
      // The fixtures hold mesh-init's two hooks, next to Docker's jump in OUTPUT.
      expect(tx.unhook.map((r) => `${r.chain} -> ${r.target}`)).toEqual([
        'PREROUTING -> ISTIO_INBOUND',
        'OUTPUT -> ISTIO_OUTPUT',
      ]);
    },
  );

  it('unhooks every jump into an owned chain from any kernel chain, duplicates too, and nothing else', () => {
    const state = natState(
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A INPUT -j ISTIO_IN_REDIRECT',
      '-A POSTROUTING -j ISTIO_REDIRECT',
      '-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE',
      '-A DOCKER_OUTPUT -j ISTIO_OUTPUT',
      '-A OUTPUT -j MESH_OUTPUT',
      '-A PREROUTING -j ISTIO_DIVERT',
    );
    expect(hooksOf(state)).toEqual([
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A INPUT -j ISTIO_IN_REDIRECT',
      '-A POSTROUTING -j ISTIO_REDIRECT',
    ]);
    expect(hooksOf(state, 'MESH_')).toEqual(['-A OUTPUT -j MESH_OUTPUT']);
  });

  it('an empty namespace: declare then remove, nothing to unhook', () => {
    const tx = planCleanup('ipv6', 'nat', EMPTY_STATE, 'MESH_');
    expect(tx.unhook).toEqual([]);
    expect(renderRestore(tx)).toBe(
      [
        '# mesh-init: ipv6 nat cleanup for ip6tables-restore --noflush',
        '*nat',
        ':MESH_INBOUND - [0:0]',
        ':MESH_REDIRECT - [0:0]',
        ':MESH_IN_REDIRECT - [0:0]',
        ':MESH_OUTPUT - [0:0]',
        ':MESH_OUTPUT_DNS - [0:0]',
        '-X MESH_INBOUND',
        '-X MESH_REDIRECT',
        '-X MESH_IN_REDIRECT',
        '-X MESH_OUTPUT',
        '-X MESH_OUTPUT_DNS',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it.each<[Table, string[]]>([
    ['mangle', ['DROP_INVALID', 'DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT']],
    ['raw', ['OUTPUT_DNS', 'INBOUND']],
  ])('an empty namespace, %s: declare then remove %j', (table, chains) => {
    const tx = planCleanup('ipv4', table, EMPTY_STATE, 'ISTIO_');
    expect(renderRestore(tx)).toBe(
      [
        `# mesh-init: ipv4 ${table} cleanup for iptables-restore --noflush`,
        `*${table}`,
        ...chains.map((c) => `:ISTIO_${c} - [0:0]`),
        ...chains.map((c) => `-X ISTIO_${c}`),
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it("unhooks only the table's own owned chains: ISTIO_DIVERT is mangle's, not nat's", () => {
    const rules = [
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A PREROUTING -j ISTIO_DROP_INVALID',
      '-A PREROUTING -j ISTIO_DIVERT',
      '-A OUTPUT -p udp -j ISTIO_OUTPUT_DNS',
    ];
    const unhookedFrom = (table: Table) =>
      planCleanup('ipv4', table, tableState(table, ...rules), 'ISTIO_').unhook.map(
        (r) => `-A ${r.chain} ${r.spec}`,
      );
    expect(unhookedFrom('nat')).toEqual([rules[0], rules[3]]);
    expect(unhookedFrom('mangle')).toEqual([rules[0], rules[1], rules[2]]);
    expect(unhookedFrom('raw')).toEqual([rules[0], rules[3]]);
  });

  it('cleans up whatever the config was: every planned chain of every table is removed', async () => {
    const RESOLVERS = 'nameserver 10.96.0.10\nnameserver fd00::a\n';
    let tables = 0;
    for (const argv of [
      [],
      ['-b', ''],
      ['-i', ''],
      ['-o', '53'],
      ['-m', 'TPROXY'],
      ['--redirect-dns'],
      ['--redirect-dns', '--capture-all-dns'],
      ['--drop-invalid'],
      ['-m', 'TPROXY', '--redirect-dns', '--drop-invalid'],
    ]) {
      const config = withResolvConf(await configFrom(argv), RESOLVERS);
      for (const family of ['ipv4', 'ipv6'] as const) {
        for (const plan of planTables(config, family)) {
          tables++;
          const cleanup = planCleanup(family, plan.table, EMPTY_STATE, 'X_');
          expect(cleanup.declare).toEqual(expect.arrayContaining([...plan.chains]));
          expect(cleanup.remove).toEqual(cleanup.declare);
        }
      }
    }
    expect(tables).toBeGreaterThan(18 + 8);
  });
});

describe('hooks that are already right and head their chains stay in place', () => {
  const HOOK_IN =
    '-A PREROUTING -p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j ISTIO_INBOUND';
  const HOOK_OUT =
    '-A OUTPUT -p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT';
  const DOCKER = '-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT';
  const hooksOf = (plan: TablePlan) => plan.rules.filter((r) => r.chain.kind === 'builtin');
  /** Each kernel chain's targets, in order, as a save lists them. */
  const targetsIn = (state: TableState, chain: string) =>
    state.rules.filter((r) => r.chain === chain).map((r) => r.target);

  // The Docker fixtures hold what an older run left: the OUTPUT hook behind Docker's
  // jump. hooksFirst gives the same save as this version leaves it.
  it.each([
    ['default', [], 'iptables-legacy-save.txt', 'ipv4', true],
    ['default', [], 'iptables-nft-save-nat.txt', 'ipv4', true],
    ['default', [], 'ip6tables-nft-save-nat.txt', 'ipv6', true],
    ['varied', VARIED, 'iptables-legacy-save-nat-varied.txt', 'ipv4', false],
    ['varied', VARIED, 'iptables-nft-save-nat-varied.txt', 'ipv4', false],
    ['varied', VARIED, 'ip6tables-legacy-save-nat-varied.txt', 'ipv6', false],
  ] as const)(
    '%s config %j over %s (%s): nothing to unhook, no hook inserted',
    async (_n, argv, save, family, docker) => {
      const plan = planNat(await configFrom(argv), family);
      const text = docker ? hooksFirst(fixture(save)) : fixture(save);
      const tx = planTransaction(plan, parseTableState(text, 'nat'), 'ISTIO_');
      expect(tx.unhook).toEqual([]);
      expect(tx.recreate).toEqual([]);
      expect(tx.rules).toEqual(plan.rules.filter((r) => r.chain.kind === 'owned'));
      expect(renderRestore(tx)).not.toMatch(/^-[DXNI] /m);
    },
  );

  it.each([
    ['iptables-legacy-save.txt', 'ipv4', 'DOCKER_OUTPUT'],
    ['iptables-nft-save-nat.txt', 'ipv4', 'DOCKER_OUTPUT'],
    ['ip6tables-nft-save-nat.txt', 'ipv6', 'DOCKER_OUTPUT'],
  ] as const)(
    "hooks an older run appended behind Docker's jump (%s, %s): moved to the top",
    (save, family, docker) => {
      const plan = planNat(DEFAULT, family);
      const live = parseTableState(fixture(save), 'nat');
      expect(targetsIn(live, 'OUTPUT')).toEqual([docker, 'ISTIO_OUTPUT']);
      const tx = planTransaction(plan, live, 'ISTIO_');
      // Exactly right, and yet all deleted, the chains recreated, the hooks inserted.
      expect(tx.unhook.map((r) => `-A ${r.chain} ${r.spec}`)).toEqual([HOOK_IN, HOOK_OUT]);
      expect(tx.recreate).toEqual(NAT_CHAINS);
      expect(hooksOf({ ...plan, rules: tx.rules })).toEqual(hooksOf(plan));
      // The table the text leaves, read back: mesh-init's jump first, Docker's after.
      const after = parseTableState(savedOver(fixture(save), family, renderRestore(tx)), 'nat');
      expect(targetsIn(after, 'OUTPUT')).toEqual(['ISTIO_OUTPUT', docker]);
      expect(targetsIn(after, 'PREROUTING')).toEqual(['ISTIO_INBOUND']);
      expect(
        after.rules.filter((r) => !r.chain.startsWith('ISTIO_') && r.chain !== 'OUTPUT'),
      ).toEqual(live.rules.filter((r) => !r.chain.startsWith('ISTIO_') && r.chain !== 'OUTPUT'));
      // Now they lead: the next run keeps them.
      const next = planTransaction(plan, after, 'ISTIO_');
      expect(next.unhook).toEqual([]);
      expect(next.recreate).toEqual([]);
    },
  );

  it.each<[string, string[], boolean]>([
    ['behind a foreign rule in OUTPUT', [HOOK_IN, DOCKER, HOOK_OUT], false],
    ['behind a foreign rule in PREROUTING', ['-A PREROUTING -j FOREIGN', HOOK_IN, HOOK_OUT], false],
    ['foreign rules after them', [HOOK_IN, HOOK_OUT, DOCKER, '-A PREROUTING -j FOREIGN'], true],
    [
      'a foreign rule in a chain without hooks',
      ['-A POSTROUTING -j FOREIGN', HOOK_OUT, HOOK_IN],
      true,
    ],
  ])('right hooks %s: kept only where they lead', (_name, rules, kept) => {
    const plan = planNat(DEFAULT, 'ipv4');
    const tx = planTransaction(plan, natState(...rules), 'ISTIO_');
    expect(tx.unhook.map((r) => `-A ${r.chain} ${r.spec}`)).toEqual(
      kept ? [] : [HOOK_IN, HOOK_OUT],
    );
    expect(tx.recreate).toEqual(kept ? [] : NAT_CHAINS);
    expect(hooksOf({ ...plan, rules: tx.rules })).toEqual(kept ? [] : hooksOf(plan));
  });

  it('two hooks of one chain: kept in plan order only, with nothing between them', async () => {
    const plan = planMangle(await configFrom(['-m', 'TPROXY', '--drop-invalid']), 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const hooks = renderRestore(planTransaction(plan, EMPTY_STATE, 'ISTIO_'))
      .split('\n')
      .filter((l) => l.startsWith('-I '))
      .map((l) => l.replace(/^-I (\S+) \d+ /, '-A $1 '));
    const [drop = '', inbound = '', output = ''] = hooks;
    expect(hooks).toHaveLength(3);
    expect([drop, inbound, output].map((l) => l.split(' ')[1])).toEqual([
      'PREROUTING',
      'PREROUTING',
      'OUTPUT',
    ]);
    const keeps = (...rules: string[]) =>
      planTransaction(plan, tableState('mangle', ...rules), 'ISTIO_').unhook.length === 0;
    const foreign = '-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff';
    expect(keeps(drop, inbound, output)).toBe(true);
    expect(keeps(drop, inbound, foreign, output)).toBe(true);
    expect(keeps(inbound, drop, output)).toBe(false);
    expect(keeps(drop, foreign, inbound, output)).toBe(false);
    expect(keeps(foreign, drop, inbound, output)).toBe(false);
  });

  it('kept in the other order, around a foreign rule', () => {
    const tx = planTransaction(
      planNat(DEFAULT, 'ipv4'),
      natState(HOOK_OUT, DOCKER, HOOK_IN),
      'ISTIO_',
    );
    expect(tx.unhook).toEqual([]);
    expect(hooksOf({ ...planNat(DEFAULT, 'ipv4'), rules: tx.rules })).toEqual([]);
  });

  it.each<[string, string[]]>([
    ['one hook missing', [HOOK_IN]],
    ['a duplicated hook', [HOOK_IN, HOOK_OUT, HOOK_IN]],
    ['a hook changed', [HOOK_IN, HOOK_OUT.replace('-p tcp ', '')]],
    ['a hook from another kernel chain too', [HOOK_IN, HOOK_OUT, '-A INPUT -j ISTIO_INBOUND']],
    ['a hook without its comment', [HOOK_IN, '-A OUTPUT -p tcp -j ISTIO_OUTPUT']],
  ])('replaced, all of them: %s', (_name, rules) => {
    const plan = planNat(DEFAULT, 'ipv4');
    const tx = planTransaction(plan, natState(DOCKER, ...rules), 'ISTIO_');
    expect(tx.unhook.map((r) => `-A ${r.chain} ${r.spec}`)).toEqual(rules);
    expect(tx.recreate).toEqual(NAT_CHAINS);
    expect(hooksOf({ ...plan, rules: tx.rules })).toEqual(hooksOf(plan));
  });

  it('a changed config replaces hooks that no longer fit', async () => {
    const plan = planNat(await configFrom(['-o', '53']), 'ipv4');
    const tx = planTransaction(plan, natState(HOOK_IN, HOOK_OUT), 'ISTIO_');
    expect(tx.unhook.map((r) => `-A ${r.chain} ${r.spec}`)).toEqual([HOOK_IN, HOOK_OUT]);
    expect(hooksOf({ ...plan, rules: tx.rules })).toEqual(hooksOf(plan));
  });
});

describe('an owned chain a foreign chain jumps into', () => {
  const HOOK_OUT =
    '-A OUTPUT -p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT';
  const others = NAT_CHAINS.filter((chain) => chain !== 'OUTPUT');

  // -X fails while anything jumps to a chain: such a chain is emptied and refilled.
  it.each<[string, string[]]>([
    ['no hooks yet', ['-A FOREIGN -j ISTIO_OUTPUT']],
    ['hooks to replace', ['-A FOREIGN -j ISTIO_OUTPUT', HOOK_OUT]],
    ['a foreign chain of another prefix', ['-A MESH_OUTPUT -p udp -j ISTIO_OUTPUT']],
  ])('is declared and refilled, not recreated: %s', (_name, rules) => {
    const plan = planNat(DEFAULT, 'ipv4');
    const tx = planTransaction(plan, natState(...rules), 'ISTIO_');
    expect(tx.recreate).toEqual(others);
    expect(tx.declare).toEqual(plan.chains);
    expect(tx.rules).toEqual([
      ...plan.rules.filter((r) => r.chain.kind === 'owned'),
      ...plan.rules.filter((r) => r.chain.kind === 'builtin'),
    ]);
    const text = renderRestore(tx);
    expect(text).toContain(':ISTIO_OUTPUT - [0:0]\n');
    expect(text).not.toMatch(/^-[XN] ISTIO_OUTPUT$/m);
    // The foreign jump is never touched.
    expect(text).not.toContain('FOREIGN');
    expect(text).not.toContain('MESH_OUTPUT');
  });

  it.each<[string, string[]]>([
    ['a jump from a kernel chain (a hook)', ['-A INPUT -j ISTIO_OUTPUT']],
    ['a jump within the owned chains', ['-A ISTIO_INBOUND -j ISTIO_OUTPUT']],
    ['a foreign chain jumping elsewhere', ['-A FOREIGN -j RETURN', '-A FOREIGN -j DOCKER_OUTPUT']],
  ])('%s: every owned chain is still recreated', (_name, rules) => {
    const tx = planTransaction(planNat(DEFAULT, 'ipv4'), natState(...rules), 'ISTIO_');
    expect(tx.recreate).toEqual(NAT_CHAINS);
  });
});

describe('planUndo: takes back an applied transaction without reading the table', () => {
  it.each([[[]], [['-b', '', '-o', '53']], [['--chain-prefix', 'MESH_', '-i', '']]])(
    '%j: deletes the hooks it added, by the spec it added them with, and every owned chain',
    async (argv) => {
      const config = await configFrom(argv);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const applied = planTransaction(planNat(config, family), EMPTY_STATE, config.chainPrefix);
        const undo = planUndo(applied);
        expect(undo).toEqual({
          ...planCleanup(family, 'nat', EMPTY_STATE, config.chainPrefix),
          unhook: undo.unhook,
        });
        // Inserted as -I CHAIN N, deleted by the rule alone.
        const added = renderRestore(applied)
          .split('\n')
          .filter((l) => /^-I (PREROUTING|OUTPUT) \d+ /.test(l))
          .map((l) => l.replace(/^-I (\S+) \d+ /, '$1 '));
        expect(added.length).toBeGreaterThan(0);
        expect(undo.unhook.map((r) => `${r.chain} ${r.spec}`)).toEqual(added);
      }
    },
  );

  it('deletes exactly the hooks a read of the applied table would find', () => {
    const applied = planTransaction(planNat(DEFAULT, 'ipv4'), EMPTY_STATE, 'ISTIO_');
    const live = parseTableState(savedAfter(renderRestore(applied)), 'nat');
    expect(planUndo(applied).unhook.map((r) => `${r.chain} ${r.spec}`)).toEqual(
      liveHooks(live, 'ISTIO_', OWNED_CHAINS.nat).map((r) => `${r.chain} ${r.spec}`),
    );
  });

  it.each([
    [['--drop-invalid']],
    [['-m', 'TPROXY']],
    [['-m', 'TPROXY', '--drop-invalid', '--chain-prefix', 'MESH_']],
  ])('%j: the mangle table is undone the same way', async (argv) => {
    const config = await configFrom(argv);
    for (const family of ['ipv4', 'ipv6'] as const) {
      const plan = planMangle(config, family);
      if (plan === undefined) throw new Error('expected a mangle plan');
      const applied = planTransaction(plan, EMPTY_STATE, config.chainPrefix);
      const undo = planUndo(applied);
      expect(undo.table).toBe('mangle');
      expect(undo.remove).toEqual(OWNED_CHAINS.mangle);
      const live = parseTableState(savedAfter(renderRestore(applied)), 'mangle');
      expect(live.rules.length).toBeGreaterThan(0);
      expect(undo.unhook.map((r) => `${r.chain} ${r.spec}`)).toEqual(
        liveHooks(live, config.chainPrefix, OWNED_CHAINS.mangle).map((r) => `${r.chain} ${r.spec}`),
      );
    }
  });
});

describe('a re-run with fewer features: chains no longer planned go', () => {
  const prefix = 'ISTIO_';
  /** The text that applied --drop-invalid and -m TPROXY to mangle. */
  const bothApplied = async () => {
    const config = await configFrom(['--drop-invalid', '-m', 'TPROXY']);
    const plan = planMangle(config, 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    return renderRestore(planTransaction(plan, EMPTY_STATE, prefix));
  };

  it('TPROXY dropped: its chains are declared (emptied), unhooked and removed; DROP_INVALID stays', async () => {
    const first = await bothApplied();
    const live = parseTableState(savedAfter(first), 'mangle');
    const plan = planMangle(await configFrom(['--drop-invalid']), 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const tx = planTransaction(plan, live, prefix);
    const stale: OwnedChain[] = ['DIVERT', 'TPROXY', 'INBOUND', 'OUTPUT'];
    expect(tx.declare).toEqual(['DROP_INVALID', ...stale]);
    expect(tx.remove).toEqual(stale);
    // Every jump into the owned chains goes, the stale ones' too; DROP_INVALID is recreated.
    expect(tx.unhook.map((r) => `${r.chain} -> ${r.target}`)).toEqual([
      'PREROUTING -> ISTIO_DROP_INVALID',
      'PREROUTING -> ISTIO_INBOUND',
      'OUTPUT -> ISTIO_OUTPUT',
    ]);
    expect(tx.recreate).toEqual(['DROP_INVALID']);
    const text = renderRestore(tx);
    const lines = text.split('\n');
    // The stale chains are removed last, after everything that jumped into them is gone.
    expect(lines.slice(-7, -2)).toEqual([
      expect.stringMatching(/^-I PREROUTING 1 .* -j ISTIO_DROP_INVALID$/),
      ...stale.map((c) => `-X ISTIO_${c}`),
    ]);
    const after = parseTableState(savedAfter(first, text), 'mangle');
    expect(after.chains.filter((c) => c.startsWith('ISTIO_'))).toEqual(['ISTIO_DROP_INVALID']);
    expect(after.rules.map((r) => r.chain)).toEqual(['PREROUTING', 'ISTIO_DROP_INVALID']);
  });

  it('a stale chain a foreign chain jumps to is emptied, not removed (-X would fail every run)', async () => {
    const foreign = ':FOREIGN - [0:0]\n-A FOREIGN -j ISTIO_DIVERT\nCOMMIT\n';
    const live = parseTableState(
      savedAfter((await bothApplied()).replace('COMMIT\n', foreign)),
      'mangle',
    );
    expect(live.rules).toContainEqual(expect.objectContaining({ chain: 'FOREIGN' }));
    const plan = planMangle(await configFrom(['--drop-invalid']), 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const tx = planTransaction(plan, live, prefix);
    expect(tx.declare).toContain('DIVERT');
    expect(tx.remove).toEqual(['TPROXY', 'INBOUND', 'OUTPUT']);
    expect(renderRestore(tx)).not.toContain('FOREIGN');
  });

  it('nothing live to remove: no stale chain, nothing extra declared', async () => {
    const plan = planMangle(await configFrom(['--drop-invalid']), 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const tx = planTransaction(plan, EMPTY_STATE, prefix);
    expect(tx.declare).toEqual(['DROP_INVALID']);
    expect(tx.remove).toEqual([]);
  });

  it('DNS capture dropped: ISTIO_OUTPUT_DNS leaves nat with its jump', async () => {
    const withDns = withResolvConf(await configFrom(['--redirect-dns']), 'nameserver 10.0.0.10\n');
    const live = parseTableState(
      savedAfter(renderRestore(planTransaction(planNat(withDns, 'ipv4'), EMPTY_STATE, prefix))),
      'nat',
    );
    expect(live.chains).toContain('ISTIO_OUTPUT_DNS');
    const tx = planTransaction(planNat(DEFAULT, 'ipv4'), live, prefix);
    expect(tx.declare).toEqual([...NAT_CHAINS, 'OUTPUT_DNS']);
    expect(tx.remove).toEqual(['OUTPUT_DNS']);
    // The jump into it is in ISTIO_OUTPUT, which is emptied by its declaration.
    expect(renderRestore(tx)).not.toContain('-j ISTIO_OUTPUT_DNS');
    expect(renderRestore(tx).trimEnd().split('\n').slice(-2)).toEqual([
      '-X ISTIO_OUTPUT_DNS',
      'COMMIT',
    ]);
  });

  it('every table mesh-init may write is one of TABLES, nat first', () => {
    expect(TABLES).toEqual(['nat', 'mangle', 'raw']);
    expect(Object.keys(OWNED_CHAINS).sort()).toEqual([...TABLES].sort());
  });
});
