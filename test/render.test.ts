/**
 * Rules as data → iptables-restore text. Each match and target alone, the layout
 * of a whole transaction, and goldens of re-runs over real iptables-save output
 * (test/fixtures, captured from iptables 1.8.9 in a throw-away network namespace
 * after applying mesh-init's default rules on top of Docker-style DNS rules).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { planRules } from '../src/plan.js';
import { planCleanup, planTransaction } from '../src/reconcile.js';
import { renderRestore, renderRule, restoreCommandFor, ruleSpec } from '../src/render.js';
import { type Cidr, type Family, type Match, OWNED_CHAINS, type Rule } from '../src/rules.js';
import { EMPTY_STATE, parseNatState } from '../src/state.js';
import { configFrom } from './config-from.js';

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

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

describe('ruleSpec', () => {
  it('is the rendered rule split as iptables-save output is read: chain, then the rest', async () => {
    for (const argv of [
      [],
      ['-o', '53', '-q', '443', '--chain-prefix', 'MESH_'],
      ['-k', 'eth1,veth+', '-c', 'a@b', '-i', '10.96.0.0/12,fd00::/64'],
    ]) {
      const config = await configFrom(argv);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const plan = planRules(config, family);
        const live = parseNatState(
          renderRestore(planTransaction(plan, EMPTY_STATE, config.chainPrefix)),
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
    const state = parseNatState(
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
    );
    for (const family of ['ipv4', 'ipv6'] as const) {
      const tx = planTransaction(planRules(config, family), state, 'MESH_');
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
      expect(lines.slice(16, -1)).toEqual(tx.rules.map((r) => renderRule(r, 'MESH_', family)));
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
    const planned = () => planTransaction(planRules(config, 'ipv4'), EMPTY_STATE, 'ISTIO_');
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
  const HOOKS = [
    '-A PREROUTING -p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j ISTIO_INBOUND',
    '-A OUTPUT -p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT',
  ];
  const cases: {
    name: string;
    argv: string[];
    family: Family;
    save: string;
    deleted: string[];
    /** Hooks appended anew. */
    hooked: string[];
    /** Hooks left in place: those of a fresh text that this one does not append. */
    kept: string[];
  }[] = [
    {
      // Same config again: the live hooks are already right and stay where they are
      // (a re-run never deletes a jump another run may have removed a moment ago);
      // only the owned chains are refilled, not recreated. Docker's jump in OUTPUT and
      // the CNI rule in POSTROUTING stay.
      name: 'rerun',
      argv: ['-p', '15001', '-u', '1337'],
      family: 'ipv4',
      save: 'iptables-nft-save-nat.txt',
      deleted: [],
      hooked: [],
      kept: HOOKS,
    },
    {
      name: 'rerun',
      argv: ['-p', '15001', '-u', '1337'],
      family: 'ipv6',
      save: 'ip6tables-nft-save-nat.txt',
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
      deleted: HOOKS.map((hook) => hook.replace(/^-A /, '-D ')),
      hooked: [
        '-A OUTPUT -m comment --comment "mesh-init: outbound traffic is checked for capture" -j ISTIO_OUTPUT',
      ],
      kept: [],
    },
  ];

  it.each(cases)(
    '$name ($family) over $save',
    async ({ name, argv, family, save, deleted, hooked, kept }) => {
      const config = await configFrom(argv);
      const state = parseNatState(fixture(save));
      const text = renderRestore(planTransaction(planRules(config, family), state, 'ISTIO_'));
      await expect(text).toMatchFileSnapshot(`./golden/${name}.${family}.golden`);

      const lines = text.split('\n');
      expect(lines.filter((l) => l.startsWith('-D '))).toEqual(deleted);
      expect(lines.filter((l) => /^-A (PREROUTING|INPUT|OUTPUT|POSTROUTING) /.test(l))).toEqual(
        hooked,
      );
      expect(text).not.toContain('DOCKER');
      expect(text).not.toContain('MASQUERADE');
      // Deleting comes before recreating and appending, so the new hooks are not
      // deleted again and nothing jumps to a chain when it is recreated.
      const lastDelete = lines.map((l) => l.startsWith('-D ')).lastIndexOf(true);
      const firstChange = lines.findIndex((l) => /^-[AXN] /.test(l));
      expect(lastDelete).toBeLessThan(firstChange);
      const recreated = lines.filter((l) => /^-[XN] /.test(l));
      expect(recreated).toEqual(
        kept.length > 0
          ? []
          : [...NAT_CHAINS.map((c) => `-X ISTIO_${c}`), ...NAT_CHAINS.map((c) => `-N ISTIO_${c}`)],
      );
      // Apart from the deletions, and the hooks it keeps with the chains it then need
      // not recreate, it is the text for an empty namespace.
      const fresh = renderRestore(
        planTransaction(planRules(config, family), EMPTY_STATE, 'ISTIO_'),
      );
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
    const text = renderRestore(planCleanup(family, 'nat', parseNatState(fixture(save)), 'ISTIO_'));
    await expect(text).toMatchFileSnapshot(`./golden/cleanup.${family}.golden`);

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
