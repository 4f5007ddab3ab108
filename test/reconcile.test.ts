/**
 * Reconciliation: which live rules a run deletes (only mesh-init's hooks in the
 * kernel's chains) and in which order the planned rules are appended.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../src/args.js';
import { type Config, validateConfig } from '../src/config.js';
import { planRules } from '../src/plan.js';
import { chainName, planTransaction } from '../src/reconcile.js';
import { renderRestore } from '../src/render.js';
import { EMPTY_STATE, type NatState, parseNatState } from '../src/state.js';

async function configFrom(argv: readonly string[]): Promise<Config> {
  const parsed = await parseCommandLine(argv, {});
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`);
  return validateConfig(parsed.options);
}

/** A nat table as iptables-save prints it, from `-A` lines. */
function natState(...rules: string[]): NatState {
  const chains = [...new Set(rules.map((r) => r.split(' ')[1]))];
  return parseNatState(
    ['*nat', ...chains.map((c) => `:${c} - [0:0]`), ...rules, 'COMMIT', ''].join('\n'),
  );
}

const DEFAULT = await configFrom([]);

const unhooked = (state: NatState, prefix = 'ISTIO_') =>
  planTransaction(planRules(DEFAULT, 'ipv4'), state, prefix).unhook.map(
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
    expect(planTransaction(planRules(DEFAULT, 'ipv4'), EMPTY_STATE, 'ISTIO_').unhook).toEqual([]);
  });

  it('a re-run over its own result deletes exactly its own hooks', async () => {
    for (const argv of [[], ['-o', '22'], ['-b', ''], ['--chain-prefix', 'MESH_']]) {
      const config = await configFrom(argv);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const plan = planRules(config, family);
        const first = renderRestore(planTransaction(plan, EMPTY_STATE, config.chainPrefix));
        // The restore text reads like iptables-save output of the first run's result.
        const live = parseNatState(first);
        const again = planTransaction(plan, live, config.chainPrefix);
        const hooks = first.split('\n').filter((l) => /^-A (PREROUTING|OUTPUT) /.test(l));
        expect(again.unhook.map((r) => `-A ${r.chain} ${r.spec}`)).toEqual(hooks);
        expect(again.rules).toEqual(planTransaction(plan, EMPTY_STATE, config.chainPrefix).rules);
      }
    }
  });
});

describe('order of the planned rules', () => {
  it('rules of owned chains first, hooks last, each group in plan order', async () => {
    for (const argv of [[], ['-b', '8080', '-o', '22', '-q', '443'], ['-b', '']]) {
      const plan = planRules(await configFrom(argv), 'ipv6');
      const tx = planTransaction(plan, EMPTY_STATE, 'ISTIO_');
      const owned = plan.rules.filter((r) => r.chain.kind === 'owned');
      const hooks = plan.rules.filter((r) => r.chain.kind === 'builtin');
      expect(hooks.length).toBeGreaterThan(0);
      expect(tx.rules).toEqual([...owned, ...hooks]);
      expect(tx.plan).toBe(plan);
      expect(tx.prefix).toBe('ISTIO_');
    }
  });

  it('the plan puts a hook before owned rules, so the reordering is needed', async () => {
    // Guards the test above against passing only because the plan is already ordered.
    const plan = planRules(await configFrom([]), 'ipv4');
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
