/**
 * The nat plan of each meaningful configuration, pinned as the exact restore text
 * (golden files under test/golden, `npm run update-golden` rewrites them), plus the
 * properties of the plan data that a golden cannot state clearly.
 */
import { describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { planRules } from '../src/plan.js';
import { planTransaction } from '../src/reconcile.js';
import { renderRestore, renderRule } from '../src/render.js';
import {
  type Cidr,
  chainName,
  type Family,
  type Match,
  type NatPlan,
  OWNED_CHAINS,
  type Rule,
} from '../src/rules.js';
import { EMPTY_STATE } from '../src/state.js';
import { configFrom } from './config-from.js';

const textFor = (config: Config, family: Family) =>
  renderRestore(planTransaction(planRules(config, family), EMPTY_STATE, config.chainPrefix));

const ISTIO_INJECTOR = [
  ...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT'],
  ...['-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'],
];

/** One golden per meaningful configuration and family: test/golden/<name>.<family>.golden */
const GOLDEN: readonly { name: string; argv: string[]; families: Family[] }[] = [
  { name: 'default', argv: ['-p', '15001', '-u', '1337'], families: ['ipv4', 'ipv6'] },
  { name: 'istio-injector', argv: ISTIO_INJECTOR, families: ['ipv4', 'ipv6'] },
  { name: 'inbound-ports', argv: ['-b', '8080,9090'], families: ['ipv4'] },
  { name: 'inbound-ports-with-exclude', argv: ['-b', '*', '-d', '22,15090'], families: ['ipv4'] },
  { name: 'no-inbound', argv: ['-b', ''], families: ['ipv4'] },
  {
    name: 'outbound-include-cidrs',
    argv: ['-i', '10.96.0.0/12,fd00:10:96::/112', '-x', '10.96.0.1/32'],
    families: ['ipv4', 'ipv6'],
  },
  {
    name: 'outbound-only-ipv6-cidrs',
    argv: ['-i', 'fd00:10:96::/112', '-x', 'fd00:10:96::1'],
    families: ['ipv4', 'ipv6'],
  },
  { name: 'no-outbound', argv: ['-i', ''], families: ['ipv4'] },
  { name: 'outbound-exclude-ports', argv: ['-o', '22,3306'], families: ['ipv4', 'ipv6'] },
  { name: 'outbound-include-ports', argv: ['-q', '443'], families: ['ipv4'] },
  {
    name: 'outbound-include-ports-no-outbound',
    argv: ['-i', '', '-q', '443,8443'],
    families: ['ipv4'],
  },
  // Istio's order: the -x RETURN before the -q jump, so an excluded destination stays
  // excluded on an included port.
  {
    name: 'outbound-exclude-cidrs-include-ports',
    argv: ['-x', '10.96.0.1/32,fd00:10:96::1', '-q', '443'],
    families: ['ipv4', 'ipv6'],
  },
  { name: 'owners', argv: ['-u', '1337,0', '-g', '1337,1338'], families: ['ipv4', 'ipv6'] },
  { name: 'chain-prefix', argv: ['--chain-prefix', 'MESH_'], families: ['ipv4'] },
  // Istio's -c: an excluded interface RETURNs first in both owned chains.
  { name: 'exclude-interfaces', argv: ['-c', 'eth1'], families: ['ipv4', 'ipv6'] },
  // Istio's -k: TCP arriving on a VM's interface is outbound traffic of the VM.
  { name: 'kube-virt-interfaces', argv: ['-k', 'eth1'], families: ['ipv4', 'ipv6'] },
  {
    name: 'kube-virt-interfaces-include-cidrs',
    argv: ['-k', 'eth1', '-i', '10.96.0.0/12,fd00::/64'],
    families: ['ipv4', 'ipv6'],
  },
  // No inbound capture, yet PREROUTING stays hooked for the VM's traffic.
  { name: 'kube-virt-interfaces-no-inbound', argv: ['-k', 'eth1', '-b', ''], families: ['ipv4'] },
];

describe('golden restore text per configuration', () => {
  const cases = GOLDEN.flatMap(({ name, argv, families }) =>
    families.map((family) => ({ name, argv, family })),
  );
  it.each(cases)('$name ($family): $argv', async ({ name, argv, family }) => {
    const text = textFor(await configFrom(argv), family);
    await expect(text).toMatchFileSnapshot(`./golden/${name}.${family}.golden`);
  });
});

/** Configurations that exercise every branch of the planner, for the property tests. */
const VARIED: readonly string[][] = [
  [],
  ISTIO_INJECTOR,
  ['-b', '8080,9090', '-d', '22'],
  ['-b', ''],
  ['-i', '10.96.0.0/12,fd00:10:96::/112', '-x', '10.96.0.1/32,fd00:10:96::1'],
  ['-i', ''],
  ['-o', '22,3306', '-q', '443'],
  ['-i', '', '-x', '10.96.0.0/12,fd00:10:96::/112', '-q', '443,8443'],
  ['-u', '1337,0', '-g', '1337,1338'],
  ['--chain-prefix', 'MESH_'],
  ['--chain-prefix', 'ABCDEFGHIJKLMNOPQ'],
  ['-c', 'eth1,veth+', '-d', '22'],
  ['-c', 'eth1', '-b', ''],
  ['-k', 'eth1,eth2', '-c', 'eth3', '-b', '8080', '-d', '22'],
  ['-k', 'eth1', '-i', '10.96.0.0/12,fd00::/64', '-c', 'eth2', '-o', '53'],
  ['-k', 'eth1', '-b', ''],
  ['-k', 'veth+', '-i', ''],
];
const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];
const everyPlan = async (): Promise<{ argv: string[]; config: Config; plan: NatPlan }[]> => {
  const plans = [];
  for (const argv of VARIED) {
    const config = await configFrom(argv);
    for (const family of FAMILIES) plans.push({ argv, config, plan: planRules(config, family) });
  }
  return plans;
};

function cidrsOf(rule: Rule): Cidr[] {
  return rule.matches.flatMap((m) =>
    m.kind === 'source' || m.kind === 'destination' ? [m.cidr] : [],
  );
}

const ownedRules = (plan: NatPlan, chain: string) =>
  plan.rules.filter((r) => r.chain.kind === 'owned' && r.chain.name === chain);
const isProtocol = (m: Match, proto: string) => m.kind === 'protocol' && m.proto === proto;

describe('plan properties', () => {
  it('IPv4 CIDRs never appear in the ipv6 plan, nor IPv6 CIDRs in the ipv4 plan', async () => {
    const config = await configFrom([
      ...['-i', '10.96.0.0/12,fd00:10:96::/112,192.168.0.0/16'],
      ...['-x', '10.96.0.1,fd00:10:96::1,fd00:10:96::2'],
    ]);
    for (const family of FAMILIES) {
      const plan = planRules(config, family);
      const cidrs = plan.rules.flatMap(cidrsOf);
      expect(cidrs.length).toBeGreaterThan(2);
      for (const cidr of cidrs) expect(cidr.family).toBe(family);
      const text = textFor(config, family);
      if (family === 'ipv6') expect(text).not.toMatch(/-[sd] \d+\.\d+\.\d+\.\d+/);
      else expect(text).not.toMatch(/-[sd] [0-9a-f]*:/);
    }
    // Each family keeps all of its own CIDRs, in order.
    expect(planRules(config, 'ipv4').rules.flatMap(cidrsOf)).toEqual(
      expect.arrayContaining([
        { family: 'ipv4', address: '10.96.0.0', prefix: 12 },
        { family: 'ipv4', address: '192.168.0.0', prefix: 16 },
        { family: 'ipv4', address: '10.96.0.1', prefix: 32 },
      ]),
    );
    expect(planRules(config, 'ipv6').rules.flatMap(cidrsOf)).toEqual(
      expect.arrayContaining([
        { family: 'ipv6', address: 'fd00:10:96::', prefix: 112 },
        { family: 'ipv6', address: 'fd00:10:96::1', prefix: 128 },
        { family: 'ipv6', address: 'fd00:10:96::2', prefix: 128 },
      ]),
    );
  });

  it('the family picks loopback and the inbound passthrough source', async () => {
    const config = await configFrom([]);
    const addresses = (family: Family) =>
      planRules(config, family)
        .rules.flatMap(cidrsOf)
        .map((c) => `${c.address}/${c.prefix}`);
    expect(new Set(addresses('ipv4'))).toEqual(new Set(['127.0.0.1/32', '127.0.0.6/32']));
    expect(new Set(addresses('ipv6'))).toEqual(new Set(['::1/128', '::6/128']));
  });

  it('the family is a parameter: both plans have the same shape', async () => {
    for (const argv of VARIED) {
      const config = await configFrom(argv);
      if (config.outboundIncludeCidrs.kind === 'only' || config.outboundExcludeCidrs.length > 0)
        continue;
      const shape = (family: Family) =>
        planRules(config, family).rules.map((r) => ({
          ...r,
          matches: r.matches.map((m) => ('cidr' in m ? { ...m, cidr: 'X' } : m)),
        }));
      expect(shape('ipv6')).toEqual(shape('ipv4'));
    }
  });

  it('every rule has a non-empty why, rendered as its mesh-init comment', async () => {
    for (const { config, plan } of await everyPlan()) {
      for (const rule of plan.rules) {
        expect(rule.why.trim()).not.toBe('');
        // render.ts puts why between double quotes without escaping.
        expect(rule.why).not.toMatch(/["\\\n]/);
        expect(renderRule(rule, config.chainPrefix)).toContain(
          ` -m comment --comment "mesh-init: ${rule.why}" -j `,
        );
      }
      const lines = textFor(config, plan.family)
        .split('\n')
        .filter((l) => l.startsWith('-A '));
      expect(lines).toHaveLength(plan.rules.length);
      for (const line of lines) expect(line).toMatch(/ -m comment --comment "mesh-init: [^"]+" /);
    }
  });

  it('owned chains all share the prefix; only PREROUTING and OUTPUT are hooked', async () => {
    for (const { config, plan } of await everyPlan()) {
      const prefix = config.chainPrefix;
      expect([...plan.chains].sort()).toEqual([...OWNED_CHAINS].sort());
      const text = textFor(config, plan.family);
      const declared = text
        .split('\n')
        .filter((l) => l.startsWith(':'))
        .map((l) => l.slice(1).split(' ')[0] ?? '');
      expect(declared).toEqual(OWNED_CHAINS.map((c) => `${prefix}${c}`));
      for (const name of declared) expect(name.length).toBeLessThanOrEqual(28);
      for (const rule of plan.rules) {
        const chain = chainName(prefix, rule.chain);
        if (rule.chain.kind === 'builtin') expect(['PREROUTING', 'OUTPUT']).toContain(chain);
        else expect(chain.startsWith(prefix)).toBe(true);
        if (rule.target.kind === 'jump') expect(plan.chains).toContain(rule.target.chain);
      }
      // Nothing is appended to a chain mesh-init neither owns nor hooks.
      const appended = new Set(text.match(/^-A \S+/gm)?.map((a) => a.slice(3)));
      for (const chain of appended) {
        expect(declared.includes(chain) || chain === 'PREROUTING' || chain === 'OUTPUT').toBe(true);
      }
    }
  });

  it('the proxy port and the inbound capture port are the redirect targets', async () => {
    const plan = planRules(await configFrom(['-p', '15001', '-z', '15006']), 'ipv4');
    expect(ownedRules(plan, 'REDIRECT').map((r) => r.target)).toEqual([
      { kind: 'redirect', toPort: 15001 },
    ]);
    expect(ownedRules(plan, 'IN_REDIRECT').map((r) => r.target)).toEqual([
      { kind: 'redirect', toPort: 15006 },
    ]);
    // Only those two rules redirect; everything else returns or jumps.
    expect(plan.rules.filter((r) => r.target.kind === 'redirect')).toHaveLength(2);
  });

  it('every --dport match has a protocol before it', async () => {
    for (const { plan } of await everyPlan()) {
      for (const rule of plan.rules) {
        rule.matches.forEach((m, i) => {
          if (m.kind === 'destinationPort') {
            expect(rule.matches.slice(0, i).some((p) => p.kind === 'protocol')).toBe(true);
          }
        });
      }
    }
  });

  it('inbound: PREROUTING is hooked for TCP only, and not at all with -b ""', async () => {
    const hooks = async (argv: string[]) =>
      planRules(await configFrom(argv), 'ipv4').rules.filter(
        (r) => r.chain.kind === 'builtin' && r.chain.name === 'PREROUTING',
      );
    expect(await hooks([])).toEqual([
      expect.objectContaining({
        matches: [{ kind: 'protocol', proto: 'tcp' }],
        target: { kind: 'jump', chain: 'INBOUND' },
      }),
    ]);
    expect(await hooks(['-b', ''])).toEqual([]);
    expect(await hooks(['-b', '', '-d', '22'])).toEqual([]);
    const none = planRules(await configFrom(['-b', '', '-d', '22']), 'ipv4');
    expect(ownedRules(none, 'INBOUND')).toEqual([]);
  });

  it('inbound: excluded ports return before anything is captured', async () => {
    for (const argv of [
      ['-d', '22,15090'],
      ['-b', '8080,9090', '-d', '22,15090'],
    ]) {
      const rules = ownedRules(planRules(await configFrom(argv), 'ipv4'), 'INBOUND');
      const firstJump = rules.findIndex((r) => r.target.kind === 'jump');
      const returns = rules.flatMap((r, i) => (r.target.kind === 'return' ? [i] : []));
      expect(returns).toHaveLength(2);
      expect(firstJump).toBeGreaterThan(Math.max(...returns));
    }
  });

  it('inbound: a port list captures only those ports, "*" captures all TCP', async () => {
    const only = ownedRules(planRules(await configFrom(['-b', '8080,9090']), 'ipv4'), 'INBOUND');
    expect(only.map((r) => r.matches)).toEqual([
      [
        { kind: 'protocol', proto: 'tcp' },
        { kind: 'destinationPort', port: 8080 },
      ],
      [
        { kind: 'protocol', proto: 'tcp' },
        { kind: 'destinationPort', port: 9090 },
      ],
    ]);
    const all = ownedRules(planRules(await configFrom(['-b', '*']), 'ipv4'), 'INBOUND');
    expect(all.map((r) => r.matches)).toEqual([[{ kind: 'protocol', proto: 'tcp' }]]);
  });

  it("outbound: the proxy's own traffic returns before any capture of outbound traffic", async () => {
    for (const { config, plan } of await everyPlan()) {
      const rules = ownedRules(plan, 'OUTPUT');
      const toRedirect = rules.flatMap((r, i) =>
        r.target.kind === 'jump' && r.target.chain === 'REDIRECT' ? [i] : [],
      );
      const ownerReturns = rules.flatMap((r, i) =>
        r.target.kind === 'return' && r.matches.some((m) => m.kind === 'owner') ? [i] : [],
      );
      expect(ownerReturns).toHaveLength(config.proxyUids.length + config.proxyGids.length);
      if (toRedirect.length > 0) {
        expect(Math.min(...toRedirect)).toBeGreaterThan(Math.max(...ownerReturns));
      }
    }
  });

  // As in Istio: an excluded destination stays excluded even on an included port.
  it('outbound: -x CIDRs are excluded before -q ports are captured', async () => {
    const rules = ownedRules(
      planRules(await configFrom(['-x', '10.0.0.0/8', '-q', '443']), 'ipv4'),
      'OUTPUT',
    );
    const exclude = rules.findIndex(
      (r) =>
        r.target.kind === 'return' &&
        r.matches.some((m) => m.kind === 'destination' && m.cidr.address === '10.0.0.0'),
    );
    const include = rules.findIndex(
      (r) =>
        r.target.kind === 'jump' &&
        r.target.chain === 'REDIRECT' &&
        r.matches.some((m) => m.kind === 'destinationPort' && m.port === 443),
    );
    expect(exclude).toBeGreaterThanOrEqual(0);
    expect(include).toBeGreaterThanOrEqual(0);
    expect(exclude).toBeLessThan(include);
  });

  it('outbound: in every plan, every -x RETURN comes before every -q jump', async () => {
    let both = 0;
    for (const { config, plan } of await everyPlan()) {
      const rules = ownedRules(plan, 'OUTPUT');
      const excludes = rules.flatMap((r, i) =>
        r.target.kind === 'return' && r.matches.some((m) => m.kind === 'destination' && !m.negate)
          ? [i]
          : [],
      );
      const includes = rules.flatMap((r, i) =>
        r.target.kind === 'jump' && r.matches.some((m) => m.kind === 'destinationPort') ? [i] : [],
      );
      expect(includes).toHaveLength(config.outboundIncludePorts.length);
      if (excludes.length > 0 && includes.length > 0) {
        both++;
        expect(Math.max(...excludes)).toBeLessThan(Math.min(...includes));
      }
    }
    // Guards the loop against passing only because no plan had both.
    expect(both).toBeGreaterThan(0);
  });

  it('outbound: -i "" leaves no rule that captures outbound traffic', async () => {
    const plan = planRules(await configFrom(['-i', '']), 'ipv4');
    expect(
      ownedRules(plan, 'OUTPUT').filter(
        (r) => r.target.kind === 'jump' && r.target.chain === 'REDIRECT',
      ),
    ).toEqual([]);
  });

  it('outbound: the OUTPUT hook is TCP-only unless a rule is about UDP', async () => {
    for (const { config, plan } of await everyPlan()) {
      const hooks = plan.rules.filter(
        (r) => r.chain.kind === 'builtin' && r.chain.name === 'OUTPUT',
      );
      expect(hooks).toHaveLength(1);
      const udp = plan.rules.some((r) => r.matches.some((m) => isProtocol(m, 'udp')));
      expect(udp).toBe(config.outboundExcludePorts.length > 0);
      expect(hooks[0]?.matches).toEqual(udp ? [] : [{ kind: 'protocol', proto: 'tcp' }]);
      expect(hooks[0]?.target).toEqual({ kind: 'jump', chain: 'OUTPUT' });
    }
  });

  it('outbound: each -o port returns for both TCP and UDP', async () => {
    const rules = ownedRules(planRules(await configFrom(['-o', '22,3306']), 'ipv6'), 'OUTPUT');
    const excluded = rules
      .filter(
        (r) => r.target.kind === 'return' && r.matches.some((m) => m.kind === 'destinationPort'),
      )
      .map((r) =>
        r.matches.map((m) => (m.kind === 'protocol' ? m.proto : 'port' in m ? m.port : '')),
      );
    expect(excluded).toEqual([
      ['tcp', 22],
      ['udp', 22],
      ['tcp', 3306],
      ['udp', 3306],
    ]);
  });

  it('pure: the same config gives the same plan, and the config is not changed', async () => {
    const config = await configFrom(['-o', '22', '-i', '10.0.0.0/8,fd00::/8', '-u', '1,2']);
    const before = structuredClone(config);
    for (const family of FAMILIES) {
      expect(planRules(config, family)).toEqual(planRules(config, family));
      expect(planRules(config, family).family).toBe(family);
    }
    expect(config).toEqual(before);
  });
});

describe('plan properties: interfaces (-c, -k)', () => {
  const RETURN = { kind: 'return' } as const;
  const toRedirect = { kind: 'jump', chain: 'REDIRECT' } as const;
  const onIn = (name: string): Match => ({ kind: 'inInterface', name });
  const onOut = (name: string): Match => ({ kind: 'outInterface', name });
  const interfaceOf = (rule: Rule) =>
    rule.matches.flatMap((m) => (m.kind === 'inInterface' ? [m.name] : []))[0];
  const withoutInterfaces = (argv: string[]) => {
    const out: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '-k' || argv[i] === '-c') i++;
      else out.push(argv[i] ?? '');
    }
    return out;
  };

  it('excluded interfaces RETURN first in ISTIO_OUTPUT, and in ISTIO_INBOUND right after the -k rules (as in Istio, -k wins)', async () => {
    let inbound = 0;
    for (const { config, plan } of await everyPlan()) {
      const names = config.excludeInterfaces;
      const out = ownedRules(plan, 'OUTPUT');
      expect(out.slice(0, names.length).map((r) => [r.matches, r.target])).toEqual(
        names.map((name) => [[onOut(name)], RETURN]),
      );
      const into = ownedRules(plan, 'INBOUND');
      if (into.length === 0) continue;
      if (names.length > 0) inbound++;
      const virt = into.filter((r) =>
        r.matches.some(
          (m) => m.kind === 'inInterface' && config.kubeVirtInterfaces.includes(m.name),
        ),
      ).length;
      expect(into.slice(0, virt).every((r) => r.why.includes('--kube-virt-interfaces'))).toBe(true);
      expect(into.slice(virt, virt + names.length).map((r) => [r.matches, r.target])).toEqual(
        names.map((name) => [[onIn(name)], RETURN]),
      );
      // No other rule is about an excluded interface.
      for (const rule of plan.rules.slice()) {
        const named = rule.matches.flatMap((m) =>
          m.kind === 'inInterface' || m.kind === 'outInterface' ? [m.name] : [],
        );
        if (named.some((name) => names.includes(name))) {
          expect(rule.target).toEqual(RETURN);
          expect(rule.matches).toHaveLength(1);
        }
      }
    }
    // Guards the loop against passing only because no plan excluded an interface inbound.
    expect(inbound).toBeGreaterThan(0);
  });

  it('-c only adds those RETURNs: the rest of the plan is the plan without it', async () => {
    for (const argv of VARIED.filter((a) => a.includes('-c'))) {
      const config = await configFrom(argv);
      const plain = await configFrom(withoutInterfaces(argv));
      const n = config.excludeInterfaces.length;
      expect(n).toBeGreaterThan(0);
      for (const family of FAMILIES) {
        const withC = planRules({ ...config, kubeVirtInterfaces: [] }, family);
        const without = planRules(plain, family);
        expect(ownedRules(withC, 'OUTPUT').slice(n)).toEqual(ownedRules(without, 'OUTPUT'));
        const inbound = ownedRules(without, 'INBOUND');
        expect(ownedRules(withC, 'INBOUND').slice(inbound.length > 0 ? n : 0)).toEqual(inbound);
        // The hooks are the same: an excluded interface alone needs no PREROUTING hook.
        const hooks = (p: NatPlan) => p.rules.filter((r) => r.chain.kind === 'builtin');
        expect(hooks(withC)).toEqual(hooks(without));
      }
    }
  });

  it('-c with -b "": nothing inbound to exclude from, so no PREROUTING hook', async () => {
    const plan = planRules(await configFrom(['-c', 'eth1', '-b', '']), 'ipv4');
    expect(ownedRules(plan, 'INBOUND')).toEqual([]);
    expect(plan.rules.filter((r) => r.chain.kind === 'builtin').map((r) => r.chain)).toEqual([
      { kind: 'builtin', name: 'OUTPUT' },
    ]);
  });

  it('-k: the RETURN comes after its REDIRECT jumps and before any inbound rule', async () => {
    let seen = 0;
    for (const { config, plan } of await everyPlan()) {
      const rules = ownedRules(plan, 'INBOUND');
      const excluded = config.excludeInterfaces.length;
      const inboundAt = rules.flatMap((r, i) =>
        i >= excluded && interfaceOf(r) === undefined ? [i] : [],
      );
      for (const name of config.kubeVirtInterfaces) {
        seen++;
        const jumps = rules.flatMap((r, i) =>
          interfaceOf(r) === name && r.target.kind === 'jump' ? [i] : [],
        );
        const returns = rules.flatMap((r, i) =>
          interfaceOf(r) === name && r.target.kind === 'return' ? [i] : [],
        );
        expect(returns).toHaveLength(1);
        const [ret = -1] = returns;
        expect(rules[ret]?.matches).toEqual([onIn(name)]);
        for (const at of jumps) {
          expect(rules[at]?.target).toEqual(toRedirect);
          expect(at).toBeLessThan(ret);
        }
        // Excluded inbound ports and inbound capture never see the VM's traffic.
        if (inboundAt.length > 0) expect(ret).toBeLessThan(Math.min(...inboundAt));
        // And -c, which RETURNs first, is never about a -k interface.
        expect(ret).toBeGreaterThanOrEqual(excluded);
      }
      // Nothing of -k is sent to the inbound capture port.
      for (const rule of rules) {
        if (interfaceOf(rule) !== undefined) {
          expect(rule.target).not.toEqual({ kind: 'jump', chain: 'IN_REDIRECT' });
        }
      }
    }
    expect(seen).toBeGreaterThan(0);
  });

  it('-k follows -i: all TCP, only the CIDRs of the plan family, or none', async () => {
    const jumps = async (argv: string[], family: Family) =>
      ownedRules(planRules(await configFrom(['-k', 'eth1', ...argv]), family), 'INBOUND')
        .filter((r) => r.target.kind === 'jump' && r.target.chain === 'REDIRECT')
        .map((r) => r.matches);
    const tcp: Match = { kind: 'protocol', proto: 'tcp' };
    const to = (cidr: Cidr): Match => ({ kind: 'destination', cidr });
    for (const family of FAMILIES) {
      expect(await jumps([], family)).toEqual([[tcp, onIn('eth1')]]);
      expect(await jumps(['-i', '*'], family)).toEqual([[tcp, onIn('eth1')]]);
      expect(await jumps(['-i', ''], family)).toEqual([]);
    }
    const cidrs = ['-i', '10.96.0.0/12,fd00::/64,192.168.0.0/16'];
    expect(await jumps(cidrs, 'ipv4')).toEqual([
      [tcp, onIn('eth1'), to({ family: 'ipv4', address: '10.96.0.0', prefix: 12 })],
      [tcp, onIn('eth1'), to({ family: 'ipv4', address: '192.168.0.0', prefix: 16 })],
    ]);
    expect(await jumps(cidrs, 'ipv6')).toEqual([
      [tcp, onIn('eth1'), to({ family: 'ipv6', address: 'fd00::', prefix: 64 })],
    ]);
    // Only IPv4 CIDRs: the ipv6 plan has nothing of the VM's to capture, only the RETURN.
    const v6 = planRules(await configFrom(['-k', 'eth1', '-i', '10.96.0.0/12']), 'ipv6');
    expect(ownedRules(v6, 'INBOUND').map((r) => [r.matches, r.target])).toEqual([
      [[onIn('eth1')], RETURN],
      [[tcp], { kind: 'jump', chain: 'IN_REDIRECT' }],
    ]);
  });

  it('-k with -b "": PREROUTING stays hooked, ISTIO_INBOUND holds only the -k rules', async () => {
    for (const family of FAMILIES) {
      for (const argv of [
        ['-k', 'eth1', '-b', ''],
        ['-k', 'eth1', '-b', '', '-d', '22'],
        ['-k', 'eth1', '-b', '', '-i', '10.96.0.0/12'],
      ]) {
        const plan = planRules(await configFrom(argv), family);
        expect(
          plan.rules.filter((r) => r.chain.kind === 'builtin' && r.chain.name === 'PREROUTING'),
        ).toEqual([
          expect.objectContaining({
            matches: [{ kind: 'protocol', proto: 'tcp' }],
            target: { kind: 'jump', chain: 'INBOUND' },
          }),
        ]);
        const rules = ownedRules(plan, 'INBOUND');
        expect(rules.length).toBeGreaterThan(0);
        for (const rule of rules) expect(interfaceOf(rule)).toBe('eth1');
        expect(rules.at(-1)?.target).toEqual(RETURN);
      }
    }
  });

  // The kernel refuses -i in a chain reached from OUTPUT and -o in one reached from
  // PREROUTING (the whole restore would fail), so each stays on its side.
  it('-i only in the inbound path, -o only in the outbound path', async () => {
    for (const { plan } of await everyPlan()) {
      for (const rule of plan.rules) {
        const inbound = rule.chain.name === 'INBOUND' || rule.chain.name === 'PREROUTING';
        const outbound = rule.chain.name === 'OUTPUT';
        for (const match of rule.matches) {
          if (match.kind === 'inInterface') expect(inbound).toBe(true);
          if (match.kind === 'outInterface') expect(outbound).toBe(true);
        }
      }
    }
  });

  it('-k adds nothing to ISTIO_OUTPUT nor to the OUTPUT hook', async () => {
    for (const argv of VARIED.filter((a) => a.includes('-k'))) {
      const config = await configFrom(argv);
      for (const family of FAMILIES) {
        const withK = planRules(config, family);
        const withoutK = planRules({ ...config, kubeVirtInterfaces: [] }, family);
        const outbound = (p: NatPlan) =>
          p.rules.filter(
            (r) =>
              r.chain.name === 'OUTPUT' ||
              (r.chain.kind === 'owned' && r.chain.name === 'REDIRECT'),
          );
        expect(outbound(withK)).toEqual(outbound(withoutK));
      }
    }
  });
});
