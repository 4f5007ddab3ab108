/**
 * Rules as data → iptables-restore text. Each match and target alone, the layout
 * of a whole transaction, and goldens of re-runs over real iptables-save output
 * (test/fixtures, captured from iptables 1.8.9 in a throw-away network namespace
 * after applying mesh-init's default rules on top of Docker-style DNS rules).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  planCleanup,
  planTransaction,
  planUndo,
} from '../../../src/backends/iptables/reconcile.js';
import {
  renderRestore,
  renderRule,
  restoreCommandFor,
  ruleSpec,
} from '../../../src/backends/iptables/render.js';
import { EMPTY_STATE, parseTableState } from '../../../src/backends/iptables/state.js';
import type { Transaction } from '../../../src/backends/iptables/transaction.js';
import type { Cidr, Family } from '../../../src/config/net.js';
import { planMangle, planNat, planRaw } from '../../../src/plan/plan.js';
import { type Match, OWNED_CHAINS, type Rule } from '../../../src/plan/rules.js';
import { configFrom, withResolvConf } from '../../config-from.js';
import { FakeKernel, hooksFirst } from '../../fake-system.js';

/** Restore text with every `-I CHAIN N` written as `-A CHAIN`, as iptables-save lists the rule. */
const asAppended = (text: string) => text.replace(/^-I (\S+) \d+ /gm, '-A $1 ');

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/iptables/${name}`, import.meta.url), 'utf8');

/** The nat chains of every plan without DNS capture, in declaration order. */
const NAT_CHAINS = ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'] as const;

const net: Cidr = { family: 'ipv4', address: '10.96.0.0', prefix: 12 };
const net6: Cidr = { family: 'ipv6', address: 'fd00:10:96::', prefix: 112 };
const tcp: Match = { kind: 'protocol', proto: 'tcp' };
const rule = (matches: Match[], overrides: Partial<Rule> = {}): Rule => ({
  chain: { kind: 'owned', name: 'OUTPUT' },
  matches,
  target: { kind: 'return' },
  why: 'a reason',
  ...overrides,
});

describe('renderRule', () => {
  it.each<[string, Match[], string]>([
    ['no match', [], ''],
    ['protocol tcp', [tcp], '-p tcp '],
    ['protocol udp', [{ kind: 'protocol', proto: 'udp' }], '-p udp '],
    ['in interface', [{ kind: 'inInterface', name: 'eth1' }], '-i eth1 '],
    ['in interface wildcard', [{ kind: 'inInterface', name: 'veth+' }], '-i veth+ '],
    ['out interface', [{ kind: 'outInterface', name: 'lo' }], '-o lo '],
    ['out interface, dash and dot', [{ kind: 'outInterface', name: 'br-01.2' }], '-o br-01.2 '],
    ['source', [{ kind: 'source', cidr: net }], '-s 10.96.0.0/12 '],
    ['negated source', [{ kind: 'source', cidr: net, negate: true }], '! -s 10.96.0.0/12 '],
    ['destination', [{ kind: 'destination', cidr: net6 }], '-d fd00:10:96::/112 '],
    [
      'negated destination',
      [{ kind: 'destination', cidr: net, negate: true }],
      '! -d 10.96.0.0/12 ',
    ],
    [
      'destination, negate false',
      [{ kind: 'destination', cidr: net, negate: false }],
      '-d 10.96.0.0/12 ',
    ],
    ['port after protocol', [tcp, { kind: 'destinationPort', port: 443 }], '-p tcp --dport 443 '],
    ['uid owner', [{ kind: 'owner', by: 'uid', id: 1337 }], '-m owner --uid-owner 1337 '],
    ['gid owner', [{ kind: 'owner', by: 'gid', id: 0 }], '-m owner --gid-owner 0 '],
    [
      'negated owner',
      [{ kind: 'owner', by: 'uid', id: 1337, negate: true }],
      '-m owner ! --uid-owner 1337 ',
    ],
    [
      'matches keep their order',
      [{ kind: 'outInterface', name: 'lo' }, { kind: 'source', cidr: net }, tcp],
      '-o lo -s 10.96.0.0/12 -p tcp ',
    ],
    [
      'a kube-virt jump: protocol, in interface, destination',
      [tcp, { kind: 'inInterface', name: 'eth1' }, { kind: 'destination', cidr: net }],
      '-p tcp -i eth1 -d 10.96.0.0/12 ',
    ],
  ])('%s', (_name, matches, rendered) => {
    expect(renderRule(rule(matches), 'ISTIO_', 'ipv4')).toBe(
      `-A ISTIO_OUTPUT ${rendered}-m comment --comment "mesh-init: a reason" -j RETURN`,
    );
  });

  it.each<[string, Partial<Rule>, string]>([
    [
      'return',
      { target: { kind: 'return' } },
      '-A P_OUTPUT -p tcp -m comment --comment "mesh-init: a reason" -j RETURN',
    ],
    [
      'jump into an owned chain gets the prefix',
      { target: { kind: 'jump', chain: 'IN_REDIRECT' } },
      '-A P_OUTPUT -p tcp -m comment --comment "mesh-init: a reason" -j P_IN_REDIRECT',
    ],
    [
      'redirect',
      { target: { kind: 'redirect', toPort: 15006 } },
      '-A P_OUTPUT -p tcp -m comment --comment "mesh-init: a reason" -j REDIRECT --to-ports 15006',
    ],
    [
      'a built-in chain keeps its name',
      {
        chain: { kind: 'builtin', name: 'PREROUTING' },
        target: { kind: 'jump', chain: 'INBOUND' },
      },
      '-A PREROUTING -p tcp -m comment --comment "mesh-init: a reason" -j P_INBOUND',
    ],
    [
      'the why is the comment',
      { why: 'inbound passthrough from the proxy goes straight to the app' },
      '-A P_OUTPUT -p tcp -m comment --comment "mesh-init: inbound passthrough from the proxy goes straight to the app" -j RETURN',
    ],
  ])('%s', (_name, overrides, rendered) => {
    expect(renderRule(rule([tcp], overrides), 'P_', 'ipv4')).toBe(rendered);
  });

  it('throws for a destinationPort match with no protocol before it', () => {
    expect(() =>
      renderRule(rule([{ kind: 'destinationPort', port: 22 }]), 'ISTIO_', 'ipv4'),
    ).toThrow(/destinationPort match needs a protocol/);
    expect(() =>
      renderRule(
        rule([
          { kind: 'outInterface', name: 'lo' },
          { kind: 'destinationPort', port: 22 },
        ]),
        'ISTIO_',
        'ipv4',
      ),
    ).toThrow(/needs a protocol/);
    // After is too late: iptables rejects --dport unless -p came first.
    expect(() =>
      renderRule(rule([{ kind: 'destinationPort', port: 22 }, tcp]), 'ISTIO_', 'ipv4'),
    ).toThrow(/needs a protocol/);
  });
});

describe('renderRule: a place in the chain', () => {
  const hook = (name: 'PREROUTING' | 'OUTPUT'): Rule =>
    rule([tcp], { chain: { kind: 'builtin', name }, target: { kind: 'jump', chain: 'INBOUND' } });
  const REST = '-p tcp -m comment --comment "mesh-init: a reason" -j P_INBOUND';

  it.each<[string, Rule, number | undefined, string]>([
    ['no place: appended', hook('PREROUTING'), undefined, `-A PREROUTING ${REST}`],
    ['place 1: inserted first', hook('PREROUTING'), 1, `-I PREROUTING 1 ${REST}`],
    ['place 2', hook('OUTPUT'), 2, `-I OUTPUT 2 ${REST}`],
    [
      'an owned chain takes a place too',
      rule([tcp], { target: { kind: 'jump', chain: 'INBOUND' } }),
      3,
      `-I P_OUTPUT 3 ${REST}`,
    ],
  ])('%s', (_name, r, position, rendered) => {
    expect(renderRule(r, 'P_', 'ipv4', position)).toBe(rendered);
  });

  it('the place is not part of the rule: ruleSpec (what -D and drift use) is the same', () => {
    const spec = ruleSpec(hook('OUTPUT'), 'P_', 'ipv4');
    expect(spec).toEqual({ chain: 'OUTPUT', spec: REST });
    for (const position of [undefined, 1, 7]) {
      const rendered = renderRule(hook('OUTPUT'), 'P_', 'ipv4', position);
      expect(rendered.endsWith(` ${spec.spec}`)).toBe(true);
    }
  });
});

describe('renderRestore: the jumps from the kernel chains are inserted first, in plan order', () => {
  const jump = (name: 'PREROUTING' | 'OUTPUT', to: 'INBOUND' | 'OUTPUT' | 'DROP_INVALID'): Rule =>
    rule([], { chain: { kind: 'builtin', name }, target: { kind: 'jump', chain: to }, why: to });
  const ownedRule = rule([tcp], { why: 'owned' });
  const tx = (rules: Rule[]): Transaction => ({
    family: 'ipv4',
    table: 'mangle',
    purpose: 'rules',
    prefix: 'P_',
    declare: [],
    unhook: [],
    recreate: [],
    rules,
    remove: [],
  });
  /** The rule lines of the text, each as `-A CHAIN` or `-I CHAIN N` and its why. */
  const placed = (text: string) =>
    text
      .split('\n')
      .filter((l) => /^-[AI] /.test(l))
      .map((l) => `${/^-[AI] \S+(?: \d+)?/.exec(l)?.[0]} ${/"mesh-init: ([^"]+)"/.exec(l)?.[1]}`);

  it.each<[string, Rule[], string[]]>([
    [
      'one into each chain: 1 each',
      [jump('PREROUTING', 'INBOUND'), jump('OUTPUT', 'OUTPUT')],
      ['-I PREROUTING 1 INBOUND', '-I OUTPUT 1 OUTPUT'],
    ],
    [
      'two into one chain: 1 then 2, so they keep their order',
      [jump('PREROUTING', 'DROP_INVALID'), jump('PREROUTING', 'INBOUND')],
      ['-I PREROUTING 1 DROP_INVALID', '-I PREROUTING 2 INBOUND'],
    ],
    [
      'each chain counts for itself, interleaved',
      [
        jump('OUTPUT', 'OUTPUT'),
        jump('PREROUTING', 'DROP_INVALID'),
        jump('OUTPUT', 'INBOUND'),
        jump('PREROUTING', 'INBOUND'),
      ],
      [
        '-I OUTPUT 1 OUTPUT',
        '-I PREROUTING 1 DROP_INVALID',
        '-I OUTPUT 2 INBOUND',
        '-I PREROUTING 2 INBOUND',
      ],
    ],
    [
      "the owned chains' rules are appended and not counted",
      [ownedRule, jump('OUTPUT', 'OUTPUT'), ownedRule, jump('OUTPUT', 'INBOUND')],
      ['-A P_OUTPUT owned', '-I OUTPUT 1 OUTPUT', '-A P_OUTPUT owned', '-I OUTPUT 2 INBOUND'],
    ],
    ['no hooks, no -I', [ownedRule], ['-A P_OUTPUT owned']],
  ])('%s', (_name, rules, expected) => {
    const text = renderRestore(tx(rules));
    expect(placed(text)).toEqual(expected);
    // The places start from 1 in every text: rendering twice gives the same.
    expect(renderRestore(tx(rules))).toBe(text);
  });

  it.each<[string, string[], 'mangle' | 'raw', string[]]>([
    [
      '--drop-invalid with TPROXY: the INVALID drop first, then capture; OUTPUT counts apart',
      ['-m', 'TPROXY', '--drop-invalid'],
      'mangle',
      [
        '-I PREROUTING 1 -j P_DROP_INVALID',
        '-I PREROUTING 2 -p tcp -j P_INBOUND',
        '-I OUTPUT 1 -p tcp -j P_OUTPUT',
      ],
    ],
    [
      'DNS capture: one jump into each of OUTPUT and PREROUTING',
      ['--redirect-dns'],
      'raw',
      ['-I OUTPUT 1 -p udp -j P_OUTPUT_DNS', '-I PREROUTING 1 -p udp -j P_INBOUND'],
    ],
  ])('%s (%s)', async (_name, argv, table, hooks) => {
    const config = withResolvConf(
      await configFrom([...argv, '--chain-prefix', 'P_']),
      'nameserver 10.96.0.10\n',
    );
    const plan = table === 'mangle' ? planMangle(config, 'ipv4') : planRaw(config, 'ipv4');
    if (plan === undefined) throw new Error(`expected a ${table} plan`);
    const text = renderRestore(planTransaction(plan, EMPTY_STATE, 'P_'));
    const inserted = text
      .split('\n')
      .filter((l) => l.startsWith('-I '))
      .map((l) => l.replace(/ -m comment --comment "[^"]*"/, ''));
    expect(inserted).toEqual(hooks);
    expect(text).not.toMatch(/^-A (PREROUTING|OUTPUT) /m);
  });

  it('applied over foreign rules, the jumps land first and in plan order; the foreign ones follow', async () => {
    const key = 'nft/ipv4';
    const mangle = [
      '*mangle',
      ...['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].map(
        (c) => `:${c} ACCEPT [0:0]`,
      ),
      '-A PREROUTING -p tcp -m comment --comment foreign -j MARK --set-xmark 0x1/0xffffffff',
      'COMMIT',
      '',
    ].join('\n');
    const kernel = new FakeKernel({ [key]: mangle });
    const plan = planMangle(await configFrom(['-m', 'TPROXY', '--drop-invalid']), 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const text = renderRestore(planTransaction(plan, EMPTY_STATE, 'ISTIO_'));
    const fed = kernel.run({ file: 'iptables-nft-restore', args: ['--noflush'], input: text });
    expect(fed?.exitCode).toBe(0);
    const prerouting = kernel
      .tableText(key, 'mangle')
      .split('\n')
      .filter((l) => l.startsWith('-A PREROUTING '))
      .map((l) => /-j (\S+)/.exec(l)?.[1]);
    expect(prerouting).toEqual(['ISTIO_DROP_INVALID', 'ISTIO_INBOUND', 'MARK']);
  });

  it('deletions and undo stay -D by the rule, whatever place it was inserted at', async () => {
    const config = await configFrom(['-m', 'TPROXY', '--drop-invalid']);
    const plan = planMangle(config, 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const applied = planTransaction(plan, EMPTY_STATE, 'ISTIO_');
    const inserted = renderRestore(applied)
      .split('\n')
      .filter((l) => l.startsWith('-I '));
    const undo = renderRestore(planUndo(applied));
    expect(undo.split('\n').filter((l) => l.startsWith('-D '))).toEqual(
      inserted.map((l) => l.replace(/^-I (\S+) \d+ /, '-D $1 ')),
    );
    expect(undo).not.toMatch(/^-[AI] /m);
  });
});

describe('ruleSpec', () => {
  it('is the rendered rule split as iptables-save output is read: chain, then the rest', async () => {
    for (const argv of [
      [],
      ['-o', '53', '-q', '443', '--chain-prefix', 'MESH_'],
      ['-k', 'eth1,veth+', '-c', 'a@b', '-i', '10.96.0.0/12,fd00::/64'],
    ]) {
      const config = await configFrom(argv);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const plan = planNat(config, family);
        // iptables-save lists an inserted rule as -A too, in its place.
        const live = parseTableState(
          asAppended(renderRestore(planTransaction(plan, EMPTY_STATE, config.chainPrefix))),
          'nat',
        );
        const specs = plan.rules.map((r) => ruleSpec(r, config.chainPrefix, family));
        for (const [i, rule] of plan.rules.entries()) {
          const { chain, spec } = specs[i] ?? { chain: '', spec: '' };
          expect(`-A ${chain} ${spec}`).toBe(renderRule(rule, config.chainPrefix, family));
        }
        expect(live.rules.map(({ chain, spec }) => ({ chain, spec }))).toEqual(
          expect.arrayContaining(specs),
        );
        expect(live.rules).toHaveLength(specs.length);
      }
    }
  });
});

describe('restoreCommandFor', () => {
  it.each<[Family, string]>([
    ['ipv4', 'iptables-restore'],
    ['ipv6', 'ip6tables-restore'],
  ])('%s → %s', (family, command) => {
    expect(restoreCommandFor(family)).toBe(command);
  });
});

describe('renderRestore layout', () => {
  it('header, *nat, the owned chains, deletions, recreation, rules, COMMIT, one final newline', async () => {
    const config = await configFrom(['--chain-prefix', 'MESH_']);
    const state = parseTableState(
      [
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':MESH_INBOUND - [0:0]',
        ':MESH_OUTPUT - [0:0]',
        '-A PREROUTING -p tcp -j MESH_INBOUND',
        '-A OUTPUT -j MESH_OUTPUT',
        'COMMIT',
        '',
      ].join('\n'),
      'nat',
    );
    for (const family of ['ipv4', 'ipv6'] as const) {
      const tx = planTransaction(planNat(config, family), state, 'MESH_');
      const text = renderRestore(tx);
      expect(text.endsWith('COMMIT\n')).toBe(true);
      expect(text.endsWith('\n\n')).toBe(false);
      const lines = text.slice(0, -1).split('\n');
      expect(lines[0]).toBe(
        `# mesh-init: ${family} nat rules for ${restoreCommandFor(family)} --noflush`,
      );
      expect(lines[1]).toBe('*nat');
      expect(lines.slice(2, 6)).toEqual(NAT_CHAINS.map((c) => `:MESH_${c} - [0:0]`));
      expect(lines.slice(6, 8)).toEqual([
        '-D PREROUTING -p tcp -j MESH_INBOUND',
        '-D OUTPUT -j MESH_OUTPUT',
      ]);
      // Emptied and unhooked, each owned chain is deleted and created again: -X fails,
      // and with it the whole transaction, if something not read still jumps to it.
      expect(lines.slice(8, 12)).toEqual(NAT_CHAINS.map((c) => `-X MESH_${c}`));
      expect(lines.slice(12, 16)).toEqual(NAT_CHAINS.map((c) => `-N MESH_${c}`));
      // The owned chains' rules appended, then the jumps inserted first in their chains.
      const owned = tx.rules.filter((r) => r.chain.kind === 'owned');
      expect(lines.slice(16, 16 + owned.length)).toEqual(
        owned.map((r) => renderRule(r, 'MESH_', family)),
      );
      expect(lines.slice(16 + owned.length, -1)).toEqual([
        '-I PREROUTING 1 -p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j MESH_INBOUND',
        '-I OUTPUT 1 -p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j MESH_OUTPUT',
      ]);
      expect(lines.at(-1)).toBe('COMMIT');
      // Exactly one table, no flush or policy change of anyone's chains, and only owned
      // chains deleted or created.
      expect(lines.filter((l) => l.startsWith('*'))).toEqual(['*nat']);
      expect(text).not.toMatch(/^-(F|P|Z) /m);
      expect(text).not.toMatch(/^-[XN] (?!MESH_)/m);
      expect(text).not.toMatch(/^:(PREROUTING|INPUT|OUTPUT|POSTROUTING) /m);
    }
  });

  // Dry-run and apply each render the text once, from a transaction of their own: the
  // text may depend on nothing but the transaction (no clock, counter or mutation).
  it('renders the same text for equal transactions and changes neither', async () => {
    const config = await configFrom(['-o', '22', '-i', '10.0.0.0/8']);
    const planned = () => planTransaction(planNat(config, 'ipv4'), EMPTY_STATE, 'ISTIO_');
    const tx = planned();
    const before = structuredClone(tx);
    const deepFreeze = (value: unknown): void => {
      if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
      Object.freeze(value);
      for (const child of Object.values(value)) deepFreeze(child);
    };
    deepFreeze(tx);
    const text = renderRestore(tx);
    expect(text).toContain('--dport 22 ');
    expect(text).toContain('-d 10.0.0.0/8 ');
    expect(renderRestore(planned())).toBe(text);
    expect(renderRestore(before)).toBe(text);
    expect(tx).toEqual(before);
  });
});

describe('re-run over live rules (golden)', () => {
  /** The hooks of the default config, as a fresh text inserts them. */
  const HOOKS = [
    '-I PREROUTING 1 -p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j ISTIO_INBOUND',
    '-I OUTPUT 1 -p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT',
  ];
  const cases: {
    name: string;
    argv: string[];
    family: Family;
    save: string;
    /** The save as this version leaves it (hooks first), not as an older run did. */
    lead?: boolean;
    deleted: string[];
    /** Hooks inserted anew. */
    hooked: string[];
    /** Hooks left in place: those of a fresh text that this one does not insert. */
    kept: string[];
  }[] = [
    {
      // Same config again over what an older run left: its OUTPUT hook is exactly right
      // but was appended behind Docker's DNS jump, so it does not lead its chain. Every
      // hook is deleted and inserted at the top again, the owned chains recreated in
      // between. Docker's jump in OUTPUT and the CNI rule in POSTROUTING stay.
      name: 'rerun',
      argv: ['-p', '15001', '-u', '1337'],
      family: 'ipv4',
      save: 'iptables-nft-save-nat.txt',
      deleted: HOOKS.map((hook) => hook.replace(/^-I (\S+) 1 /, '-D $1 ')),
      hooked: HOOKS,
      kept: [],
    },
    {
      name: 'rerun',
      argv: ['-p', '15001', '-u', '1337'],
      family: 'ipv6',
      save: 'ip6tables-nft-save-nat.txt',
      deleted: HOOKS.map((hook) => hook.replace(/^-I (\S+) 1 /, '-D $1 ')),
      hooked: HOOKS,
      kept: [],
    },
    {
      // Same config again over what this version leaves: the live hooks are right and
      // head PREROUTING and OUTPUT, so they stay where they are (a re-run never deletes
      // a jump another run may have removed a moment ago); only the owned chains are
      // refilled, not recreated.
      name: 'rerun-hooks-lead',
      argv: ['-p', '15001', '-u', '1337'],
      family: 'ipv4',
      save: 'iptables-nft-save-nat.txt',
      lead: true,
      deleted: [],
      hooked: [],
      kept: HOOKS,
    },
    {
      name: 'rerun-hooks-lead',
      argv: ['-p', '15001', '-u', '1337'],
      family: 'ipv6',
      save: 'ip6tables-nft-save-nat.txt',
      lead: true,
      deleted: [],
      hooked: [],
      kept: HOOKS,
    },
    {
      // A changed config: the old TCP-only OUTPUT hook goes, the new one sees UDP, and
      // with -b "" nothing hooks PREROUTING any more. Once unhooked, the owned chains
      // are recreated (-X/-N), which fails if a jump not read meanwhile appeared.
      name: 'rerun-changed-config',
      argv: ['-p', '15001', '-u', '1337', '-b', '', '-o', '53'],
      family: 'ipv4',
      save: 'iptables-legacy-save.txt',
      deleted: HOOKS.map((hook) => hook.replace(/^-I (\S+) 1 /, '-D $1 ')),
      // First in OUTPUT again, ahead of Docker's jump for its DNS that an older run
      // appended after.
      hooked: [
        '-I OUTPUT 1 -m comment --comment "mesh-init: outbound traffic is checked for capture" -j ISTIO_OUTPUT',
      ],
      kept: [],
    },
  ];

  it.each(cases)(
    '$name ($family) over $save',
    async ({ name, argv, family, save, lead, deleted, hooked, kept }) => {
      const config = await configFrom(argv);
      const state = parseTableState(lead ? hooksFirst(fixture(save)) : fixture(save), 'nat');
      const text = renderRestore(planTransaction(planNat(config, family), state, 'ISTIO_'));
      await expect(text).toMatchFileSnapshot(`../../golden/iptables/${name}.${family}.golden`);

      const lines = text.split('\n');
      expect(lines.filter((l) => l.startsWith('-D '))).toEqual(deleted);
      expect(lines.filter((l) => /^-[AI] (PREROUTING|INPUT|OUTPUT|POSTROUTING) /.test(l))).toEqual(
        hooked,
      );
      expect(text).not.toContain('DOCKER');
      expect(text).not.toContain('MASQUERADE');
      // Deleting comes before recreating, appending and inserting, so the new hooks are
      // not deleted again and nothing jumps to a chain when it is recreated.
      const lastDelete = lines.map((l) => l.startsWith('-D ')).lastIndexOf(true);
      const firstChange = lines.findIndex((l) => /^-[AIXN] /.test(l));
      expect(lastDelete).toBeLessThan(firstChange);
      const recreated = lines.filter((l) => /^-[XN] /.test(l));
      expect(recreated).toEqual(
        kept.length > 0
          ? []
          : [...NAT_CHAINS.map((c) => `-X ISTIO_${c}`), ...NAT_CHAINS.map((c) => `-N ISTIO_${c}`)],
      );
      // Apart from the deletions, and the hooks it keeps with the chains it then need
      // not recreate, it is the text for an empty namespace.
      const fresh = renderRestore(planTransaction(planNat(config, family), EMPTY_STATE, 'ISTIO_'));
      expect(lines.filter((l) => !l.startsWith('-D '))).toEqual(
        fresh
          .split('\n')
          .filter((l) => !kept.includes(l) && (kept.length === 0 || !/^-[XN] /.test(l))),
      );
    },
  );
});

describe('cleanup over live rules (golden)', () => {
  it.each<[Family, string]>([
    ['ipv4', 'iptables-legacy-save.txt'],
    ['ipv6', 'ip6tables-nft-save-nat.txt'],
  ])('cleanup (%s) over %s', async (family, save) => {
    const text = renderRestore(
      planCleanup(family, 'nat', parseTableState(fixture(save), 'nat'), 'ISTIO_'),
    );
    await expect(text).toMatchFileSnapshot(`../../golden/iptables/cleanup.${family}.golden`);

    const lines = text.slice(0, -1).split('\n');
    expect(lines[0]).toBe(
      `# mesh-init: ${family} nat cleanup for ${restoreCommandFor(family)} --noflush`,
    );
    expect(lines[1]).toBe('*nat');
    // Declaring empties each owned chain (and creates a missing one), so nothing jumps
    // between them any more; then the hooks go, then the chains. Every chain mesh-init
    // may own in nat is named, ISTIO_OUTPUT_DNS of --redirect-dns too.
    expect(OWNED_CHAINS.nat).toEqual([...NAT_CHAINS, 'OUTPUT_DNS']);
    expect(lines.slice(2, 7)).toEqual(OWNED_CHAINS.nat.map((c) => `:ISTIO_${c} - [0:0]`));
    expect(lines.slice(7, 9)).toEqual([
      '-D PREROUTING -p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j ISTIO_INBOUND',
      '-D OUTPUT -p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT',
    ]);
    expect(lines.slice(9, -1)).toEqual(OWNED_CHAINS.nat.map((c) => `-X ISTIO_${c}`));
    expect(lines.at(-1)).toBe('COMMIT');
    // Foreign rules and chains are not named at all, and nothing is appended or flushed.
    expect(text).not.toMatch(/DOCKER|MASQUERADE|cni/);
    expect(text).not.toMatch(/^-(A|F|P|Z) /m);
    expect(text).not.toMatch(/^:(PREROUTING|INPUT|OUTPUT|POSTROUTING) /m);
  });
});
