/**
 * The plan of each meaningful configuration, pinned as the exact restore text of
 * every table it writes (golden files under test/golden/iptables, `npm run update-golden`
 * rewrites them), plus the properties of the plan data that a golden cannot state
 * clearly: the nat table's, then those of mangle (TPROXY, --drop-invalid) and raw
 * (the conntrack zones of DNS capture).
 */
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { planTransaction } from '../../src/backends/iptables/reconcile.js';
import { renderRestore, renderRule } from '../../src/backends/iptables/render.js';
import { EMPTY_STATE } from '../../src/backends/iptables/state.js';
import type { Config } from '../../src/config/config.js';
import type { Cidr, Family } from '../../src/config/net.js';
import { planMangle, planNat, planRaw, planTables } from '../../src/plan/plan.js';
import {
  chainName,
  type Match,
  OWNED_CHAINS,
  type OwnedChain,
  type Rule,
  TABLES,
  type TablePlan,
} from '../../src/plan/rules.js';
import { configFrom, type Env, withResolvConf } from '../config-from.js';
import { GOLDEN_CONFIGS, ISTIO_INJECTOR, RESOLV_CONF } from '../golden-configs.js';

const textFor = (config: Config, family: Family) =>
  renderRestore(planTransaction(planNat(config, family), EMPTY_STATE, config.chainPrefix));

/** What dry-run prints for a fresh namespace: the text of every table the plan writes. */
const tablesTextFor = (config: Config, family: Family) =>
  planTables(config, family)
    .map((plan) => renderRestore(planTransaction(plan, EMPTY_STATE, config.chainPrefix)))
    .join('');

/** argv → Config, with the resolvers of RESOLV_CONF as the shell gives them to --redirect-dns. */
const configOf = async (argv: readonly string[], resolvConf = RESOLV_CONF) =>
  withResolvConf(await configFrom(argv), resolvConf);

/** The nat chains of a plan without DNS capture, in declaration order. */
const NAT_CHAINS: readonly OwnedChain[] = ['INBOUND', 'REDIRECT', 'IN_REDIRECT', 'OUTPUT'];

describe('golden restore text per configuration', () => {
  const cases = GOLDEN_CONFIGS.flatMap(({ name, argv, families, resolvConf }) =>
    families.map((family) => ({ name, argv, family, resolvConf })),
  );
  it.each(cases)('$name ($family): $argv', async ({ name, argv, family, resolvConf }) => {
    const text = tablesTextFor(await configOf(argv, resolvConf ?? ''), family);
    await expect(text).toMatchFileSnapshot(`../golden/iptables/${name}.${family}.golden`);
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
  ['--chain-prefix', 'ABCDEFGHIJKLMNOP'],
  ['-c', 'eth1,veth+', '-d', '22'],
  ['-c', 'eth1', '-b', ''],
  ['-k', 'eth1,eth2', '-c', 'eth3', '-b', '8080', '-d', '22'],
  ['-k', 'eth1', '-i', '10.96.0.0/12,fd00::/64', '-c', 'eth2', '-o', '53'],
  ['-k', 'eth1', '-b', ''],
  ['-k', 'veth+', '-i', ''],
  // Issue 5: the nat properties hold with TPROXY and DNS capture too.
  ['-m', 'TPROXY', '-z', '15006', '-d', '22'],
  ['-m', 'TPROXY', '-k', 'eth1', '-c', 'eth2', '-b', '8080'],
  ['-m', 'TPROXY', '-b', ''],
  ['--redirect-dns'],
  ['--redirect-dns', '--capture-all-dns', '-u', '1337,0', '-o', '22'],
  [
    '--drop-invalid',
    '-m',
    'TPROXY',
    '--redirect-dns',
    '-c',
    'eth1',
    '--chain-prefix',
    'ABCDEFGHIJKLMNOP',
  ],
  // Issue 14: Istio's tunnel port, loopback range, owner groups, a loopback range in -i.
  ['-e', '15009', '--ipv4-loopback-cidr', '127.0.0.1/8', '-z', '15006'],
  ['--outbound-owner-groups', '1001,istio-app', '-u', '1337,0'],
  ['--outbound-owner-groups-exclude', '888', '--redirect-dns', '-g', '1338'],
  ['-i', '127.1.2.3/32,10.96.0.0/12', '-x', '10.96.0.1', '--redirect-dns'],
  ['-m', 'TPROXY', '-b', '8080,9090', '-c', 'eth2', '--drop-invalid', '-e', '15009'],
];
const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];
const everyPlan = async (): Promise<{ argv: string[]; config: Config; plan: TablePlan }[]> => {
  const plans = [];
  for (const argv of VARIED) {
    const config = await configOf(argv);
    for (const family of FAMILIES) plans.push({ argv, config, plan: planNat(config, family) });
  }
  return plans;
};

function cidrsOf(rule: Rule): Cidr[] {
  return rule.matches.flatMap((m) =>
    m.kind === 'source' || m.kind === 'destination' ? [m.cidr] : [],
  );
}

/** Restore text with every `-I CHAIN N` written as `-A CHAIN`, to find a rendered rule in it. */
const asAppended = (text: string) => text.replace(/^-I (\S+) \d+ /gm, '-A $1 ');

const ownedRules = (plan: TablePlan, chain: string) =>
  plan.rules.filter((r) => r.chain.kind === 'owned' && r.chain.name === chain);
const isProtocol = (m: Match, proto: string) => m.kind === 'protocol' && m.proto === proto;

describe('plan properties', () => {
  it('IPv4 CIDRs never appear in the ipv6 plan, nor IPv6 CIDRs in the ipv4 plan', async () => {
    const config = await configFrom([
      ...['-i', '10.96.0.0/12,fd00:10:96::/112,192.168.0.0/16'],
      ...['-x', '10.96.0.1,fd00:10:96::1,fd00:10:96::2'],
    ]);
    for (const family of FAMILIES) {
      const plan = planNat(config, family);
      const cidrs = plan.rules.flatMap(cidrsOf);
      expect(cidrs.length).toBeGreaterThan(2);
      for (const cidr of cidrs) expect(cidr.family).toBe(family);
      const text = textFor(config, family);
      if (family === 'ipv6') expect(text).not.toMatch(/-[sd] \d+\.\d+\.\d+\.\d+/);
      else expect(text).not.toMatch(/-[sd] [0-9a-f]*:/);
    }
    // Each family keeps all of its own CIDRs, in order.
    expect(planNat(config, 'ipv4').rules.flatMap(cidrsOf)).toEqual(
      expect.arrayContaining([
        { family: 'ipv4', address: '10.96.0.0', prefix: 12 },
        { family: 'ipv4', address: '192.168.0.0', prefix: 16 },
        { family: 'ipv4', address: '10.96.0.1', prefix: 32 },
      ]),
    );
    expect(planNat(config, 'ipv6').rules.flatMap(cidrsOf)).toEqual(
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
      planNat(config, family)
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
        planNat(config, family).rules.map((r) => ({
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
        expect(renderRule(rule, config.chainPrefix, plan.family)).toContain(
          ` -m comment --comment "mesh-init: ${rule.why}" -j `,
        );
      }
      // Rules of owned chains are appended, the jumps from the kernel's chains inserted.
      const lines = textFor(config, plan.family)
        .split('\n')
        .filter((l) => l.startsWith('-A ') || l.startsWith('-I '));
      expect(lines).toHaveLength(plan.rules.length);
      for (const line of lines) expect(line).toMatch(/ -m comment --comment "mesh-init: [^"]+" /);
    }
  });

  it('owned chains all share the prefix; only PREROUTING and OUTPUT are hooked', async () => {
    for (const { config, plan } of await everyPlan()) {
      const prefix = config.chainPrefix;
      // ISTIO_OUTPUT_DNS only where this family has DNS to capture.
      const dns = plan.rules.some((r) => r.chain.name === 'OUTPUT_DNS');
      const chains = dns ? [...NAT_CHAINS, 'OUTPUT_DNS'] : NAT_CHAINS;
      expect(plan.chains).toEqual(chains);
      expect(OWNED_CHAINS.nat).toEqual(expect.arrayContaining([...plan.chains]));
      const text = textFor(config, plan.family);
      const declared = text
        .split('\n')
        .filter((l) => l.startsWith(':'))
        .map((l) => l.slice(1).split(' ')[0] ?? '');
      expect(declared).toEqual(chains.map((c) => `${prefix}${c}`));
      for (const name of declared) expect(name.length).toBeLessThanOrEqual(28);
      for (const rule of plan.rules) {
        const chain = chainName(prefix, rule.chain);
        if (rule.chain.kind === 'builtin') expect(['PREROUTING', 'OUTPUT']).toContain(chain);
        else expect(chain.startsWith(prefix)).toBe(true);
        if (rule.target.kind === 'jump') expect(plan.chains).toContain(rule.target.chain);
      }
      // Only the owned chains are appended to, and only PREROUTING and OUTPUT inserted into.
      const appended = new Set(text.match(/^-A \S+/gm)?.map((a) => a.slice(3)));
      for (const chain of appended) expect(declared).toContain(chain);
      const inserted = new Set(text.match(/^-I \S+/gm)?.map((a) => a.slice(3)));
      expect(['PREROUTING', 'OUTPUT']).toEqual(expect.arrayContaining([...inserted]));
      expect(inserted.size).toBeGreaterThan(0);
    }
  });

  it('the proxy port and the inbound capture port are the redirect targets', async () => {
    const plan = planNat(await configFrom(['-p', '15001', '-z', '15006']), 'ipv4');
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
      planNat(await configFrom(argv), 'ipv4').rules.filter(
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
    const none = planNat(await configFrom(['-b', '', '-d', '22']), 'ipv4');
    expect(ownedRules(none, 'INBOUND')).toEqual([]);
  });

  // The tunnel port first (issue 14), then -d; as in Istio, -d only where all inbound
  // TCP is captured: beside a port list it has no effect (config notes it).
  it.each<[string[], number[]]>([
    [
      ['-d', '22,15090'],
      [15008, 22, 15090],
    ],
    [
      ['-b', '*', '-d', '22', '-e', '15009'],
      [15009, 22],
    ],
    [['-b', '8080,9090', '-d', '22,15090'], [15008]],
    [['-b', '8080,9090'], [15008]],
  ])(
    'inbound %j: the ports %j return, in order, before anything is captured',
    async (argv, ports) => {
      const rules = ownedRules(planNat(await configFrom(argv), 'ipv4'), 'INBOUND');
      const firstJump = rules.findIndex((r) => r.target.kind === 'jump');
      const returns = rules.flatMap((r, i) => (r.target.kind === 'return' ? [i] : []));
      expect(returns.map((i) => rules[i]?.matches)).toEqual(
        ports.map((port) => [
          { kind: 'protocol', proto: 'tcp' },
          { kind: 'destinationPort', port },
        ]),
      );
      expect(firstJump).toBeGreaterThan(Math.max(...returns));
    },
  );

  it('inbound: a port list captures only those ports, "*" captures all TCP', async () => {
    const tcp = { kind: 'protocol', proto: 'tcp' } as const;
    const capture = { kind: 'jump', chain: 'IN_REDIRECT' } as const;
    const tunnel = [[tcp, { kind: 'destinationPort', port: 15008 }], { kind: 'return' }];
    const only = ownedRules(planNat(await configFrom(['-b', '8080,9090']), 'ipv4'), 'INBOUND');
    expect(only.map((r) => [r.matches, r.target])).toEqual([
      tunnel,
      [[tcp, { kind: 'destinationPort', port: 8080 }], capture],
      [[tcp, { kind: 'destinationPort', port: 9090 }], capture],
    ]);
    const all = ownedRules(planNat(await configFrom(['-b', '*']), 'ipv4'), 'INBOUND');
    expect(all.map((r) => [r.matches, r.target])).toEqual([tunnel, [[tcp], capture]]);
  });

  it("outbound: the proxy's own traffic returns before any capture of outbound traffic", async () => {
    for (const { config, plan } of await everyPlan()) {
      const rules = ownedRules(plan, 'OUTPUT');
      // DNS capture too: the proxy's own queries go upstream, not back to itself.
      const toRedirect = rules.flatMap((r, i) =>
        r.target.kind === 'jump' && ['REDIRECT', 'OUTPUT_DNS'].includes(r.target.chain) ? [i] : [],
      );
      const proxy = (m: Match) =>
        m.kind === 'owner' &&
        typeof m.id === 'number' &&
        (m.by === 'uid' ? config.proxyUids : config.proxyGids).includes(m.id);
      const ownerReturns = rules.flatMap((r, i) =>
        r.target.kind === 'return' &&
        r.matches.length === 1 &&
        r.matches.some((m) => proxy(m) && !('negate' in m && m.negate))
          ? [i]
          : [],
      );
      // Each proxy UID and GID: a RETURN for its own traffic, and (issue 14) one before
      // it for everyone else's over lo, unless -i names a loopback range (as in Istio).
      expect(ownerReturns).toHaveLength(config.proxyUids.length + config.proxyGids.length);
      const include = config.outboundIncludeCidrs;
      const loopbackIncluded =
        include.kind === 'only' &&
        include.cidrs.some((c) => ipaddr.parse(c.address).range() === 'loopback');
      const loReturns = rules.filter(
        (r) =>
          r.target.kind === 'return' &&
          r.matches.some((m) => proxy(m) && 'negate' in m && m.negate),
      );
      expect(loReturns).toHaveLength(
        loopbackIncluded ? 0 : config.proxyUids.length + config.proxyGids.length,
      );
      if (toRedirect.length > 0) {
        expect(Math.min(...toRedirect)).toBeGreaterThan(Math.max(...ownerReturns));
      }
    }
  });

  // As in Istio: an excluded destination stays excluded even on an included port.
  it('outbound: -x CIDRs are excluded before -q ports are captured', async () => {
    const rules = ownedRules(
      planNat(await configFrom(['-x', '10.0.0.0/8', '-q', '443']), 'ipv4'),
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
      // (The proxy's jump to its own pod IP skips port 53 with DNS capture: no -q jump.)
      const includes = rules.flatMap((r, i) =>
        r.target.kind === 'jump' &&
        r.target.chain === 'REDIRECT' &&
        r.matches.some((m) => m.kind === 'destinationPort')
          ? [i]
          : [],
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
    const plan = planNat(await configFrom(['-i', '']), 'ipv4');
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
      const dns = ownedRules(plan, 'OUTPUT_DNS').length > 0;
      expect(udp).toBe(config.outboundExcludePorts.length > 0 || dns);
      expect(hooks[0]?.matches).toEqual(udp ? [] : [{ kind: 'protocol', proto: 'tcp' }]);
      expect(hooks[0]?.target).toEqual({ kind: 'jump', chain: 'OUTPUT' });
    }
  });

  it('outbound: each -o port returns for both TCP and UDP', async () => {
    const rules = ownedRules(planNat(await configFrom(['-o', '22,3306']), 'ipv6'), 'OUTPUT');
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
      expect(planNat(config, family)).toEqual(planNat(config, family));
      expect(planNat(config, family).family).toBe(family);
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
        const withC = planNat({ ...config, kubeVirtInterfaces: [] }, family);
        const without = planNat(plain, family);
        expect(ownedRules(withC, 'OUTPUT').slice(n)).toEqual(ownedRules(without, 'OUTPUT'));
        const inbound = ownedRules(without, 'INBOUND');
        expect(ownedRules(withC, 'INBOUND').slice(inbound.length > 0 ? n : 0)).toEqual(inbound);
        // The hooks are the same: an excluded interface alone needs no PREROUTING hook.
        const hooks = (p: TablePlan) => p.rules.filter((r) => r.chain.kind === 'builtin');
        expect(hooks(withC)).toEqual(hooks(without));
      }
    }
  });

  it('-c with -b "": nothing inbound to exclude from, so no PREROUTING hook', async () => {
    const plan = planNat(await configFrom(['-c', 'eth1', '-b', '']), 'ipv4');
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
      ownedRules(planNat(await configFrom(['-k', 'eth1', ...argv]), family), 'INBOUND')
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
    const v6 = planNat(await configFrom(['-k', 'eth1', '-i', '10.96.0.0/12']), 'ipv6');
    expect(ownedRules(v6, 'INBOUND').map((r) => [r.matches, r.target])).toEqual([
      [[onIn('eth1')], RETURN],
      [[tcp, { kind: 'destinationPort', port: 15008 }], RETURN],
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
        const plan = planNat(await configFrom(argv), family);
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
        const withK = planNat(config, family);
        const withoutK = planNat({ ...config, kubeVirtInterfaces: [] }, family);
        const outbound = (p: TablePlan) =>
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

describe('plan properties: every table (TPROXY, DNS capture, --drop-invalid)', () => {
  const everyTable = async () => {
    const plans: { argv: string[]; config: Config; plan: TablePlan }[] = [];
    for (const argv of VARIED) {
      const config = await configOf(argv);
      for (const family of FAMILIES) {
        for (const plan of planTables(config, family)) plans.push({ argv, config, plan });
      }
    }
    return plans;
  };
  const hooks = (plan: TablePlan | undefined) =>
    plan?.rules.filter((r) => r.chain.kind === 'builtin') ?? [];
  const jumpsTo = (plan: TablePlan, chain: OwnedChain) =>
    plan.rules.filter((r) => r.target.kind === 'jump' && r.target.chain === chain);

  it('nat always, mangle for TPROXY (with inbound capture) or --drop-invalid, raw for DNS to capture', async () => {
    const seen = new Set<string>();
    for (const argv of VARIED) {
      const config = await configOf(argv);
      for (const family of FAMILIES) {
        const tables = planTables(config, family).map((p) => p.table);
        seen.add(tables.join(','));
        const tproxy = config.inboundMode === 'tproxy' && config.inboundPorts.kind !== 'none';
        // DNS capture is decided once for the pod (issue 14): raw in both families.
        const dns =
          config.dns.capture === 'all' ||
          (config.dns.capture === 'resolvers' && config.dns.resolvers.length > 0);
        expect(tables).toEqual(
          TABLES.filter(
            (t) =>
              t === 'nat' ||
              (t === 'mangle' && (tproxy || config.dropInvalid)) ||
              (t === 'raw' && dns),
          ),
        );
        // planTables is planNat, planMangle and planRaw, in TABLES order.
        expect(planTables(config, family)).toEqual(
          [planNat(config, family), planMangle(config, family), planRaw(config, family)].filter(
            (p) => p !== undefined,
          ),
        );
      }
    }
    // Guards the loop against passing with fewer kinds of plans than it claims.
    expect(seen).toEqual(new Set(['nat', 'nat,mangle', 'nat,raw', 'nat,mangle,raw']));
  });

  it("owned chains: only the table's own, in its order; every jump and rule stays inside the plan", async () => {
    for (const { config, plan } of await everyTable()) {
      const prefix = config.chainPrefix;
      const order = OWNED_CHAINS[plan.table];
      expect(plan.chains.map((c) => order.indexOf(c))).toEqual(
        plan.chains.map((c) => order.indexOf(c)).sort((a, b) => a - b),
      );
      expect(order).toEqual(expect.arrayContaining([...plan.chains]));
      for (const chain of plan.chains)
        expect(chainName(prefix, chain).length).toBeLessThanOrEqual(28);
      for (const rule of plan.rules) {
        if (rule.chain.kind === 'builtin')
          expect(['PREROUTING', 'OUTPUT']).toContain(rule.chain.name);
        else expect(plan.chains).toContain(rule.chain.name);
        if (rule.target.kind === 'jump') expect(plan.chains).toContain(rule.target.chain);
      }
    }
  });

  it('mangle and raw: every owned chain holds rules and is reached from a hook', async () => {
    let tables = 0;
    for (const { plan } of await everyTable()) {
      if (plan.table === 'nat') continue;
      tables++;
      const reached = new Set<OwnedChain>();
      const visit = (chain: OwnedChain) => {
        if (reached.has(chain)) return;
        reached.add(chain);
        for (const rule of plan.rules) {
          if (
            rule.chain.name === chain &&
            rule.chain.kind === 'owned' &&
            rule.target.kind === 'jump'
          ) {
            visit(rule.target.chain);
          }
        }
      };
      for (const hook of hooks(plan)) if (hook.target.kind === 'jump') visit(hook.target.chain);
      expect([...reached].sort()).toEqual([...plan.chains].sort());
      for (const chain of plan.chains) {
        expect(plan.rules.some((r) => r.chain.kind === 'owned' && r.chain.name === chain)).toBe(
          true,
        );
      }
    }
    expect(tables).toBeGreaterThan(4);
  });

  it('every rule of every table: a why, a protocol before its ports, rendered as its comment', async () => {
    for (const { config, plan } of await everyTable()) {
      const text = tablesTextFor(config, plan.family);
      for (const rule of plan.rules) {
        expect(rule.why).not.toMatch(/^\s*$|["\\\n]/);
        rule.matches.forEach((m, i) => {
          if (m.kind === 'destinationPort' || m.kind === 'sourcePort') {
            expect(rule.matches.slice(0, i).some((p) => p.kind === 'protocol')).toBe(true);
          }
        });
        // A jump from a kernel chain is inserted: its line is -I CHAIN N and the same rest.
        expect(asAppended(text)).toContain(
          `${renderRule(rule, config.chainPrefix, plan.family)}\n`,
        );
      }
    }
  });

  // The kernel refuses -i in a chain reached from OUTPUT and -o in one reached from
  // PREROUTING: the whole restore would fail.
  it('-i only in the inbound path, -o only in the outbound path, in mangle and raw too', async () => {
    for (const { plan } of await everyTable()) {
      // Owned and kernel chains share names (OUTPUT): kernel ones are keyed by name alone.
      const key = (chain: TablePlan['rules'][number]['chain']) =>
        chain.kind === 'builtin' ? chain.name : `owned ${chain.name}`;
      const fromHook = (hook: 'PREROUTING' | 'OUTPUT') => {
        const chains = new Set<string>([hook]);
        for (let grew = true; grew; ) {
          grew = false;
          for (const rule of plan.rules) {
            const target = rule.target.kind === 'jump' ? `owned ${rule.target.chain}` : undefined;
            if (chains.has(key(rule.chain)) && target !== undefined && !chains.has(target)) {
              chains.add(target);
              grew = true;
            }
          }
        }
        return chains;
      };
      const inbound = fromHook('PREROUTING');
      const outbound = fromHook('OUTPUT');
      for (const rule of plan.rules) {
        for (const match of rule.matches) {
          if (match.kind === 'inInterface') {
            expect(inbound.has(key(rule.chain)) && !outbound.has(key(rule.chain))).toBe(true);
          }
          if (match.kind === 'outInterface') {
            expect(outbound.has(key(rule.chain)) && !inbound.has(key(rule.chain))).toBe(true);
          }
        }
      }
    }
  });

  describe('TPROXY', () => {
    it.each<[string[], number, number, number]>([
      [['-m', 'TPROXY'], 15001, 1337, 133],
      [['-m', 'TPROXY', '-z', '15006', '-t', '4096', '-r', '7'], 15006, 4096, 7],
      [['-m', 'TPROXY', '-p', '15009', '-t', '4294967294'], 15009, 4294967294, 133],
    ])(
      '%j: TPROXY to the inbound capture port with the mark, mark + 1 for the proxy',
      async (argv, port, mark) => {
        const config = await configOf(argv);
        for (const family of FAMILIES) {
          const plan = planMangle(config, family);
          if (plan === undefined) throw new Error('expected a mangle plan');
          const targets = plan.rules.map((r) => r.target);
          expect(targets).toContainEqual({ kind: 'tproxy', toPort: port, mark });
          // DIVERT marks with the mark; the proxy's own calls to its pod IP get mark + 1.
          expect(ownedRules(plan, 'DIVERT').map((r) => r.target)).toEqual([
            { kind: 'setMark', mark },
            { kind: 'accept' },
          ]);
          expect(
            ownedRules(plan, 'OUTPUT').filter((r) => r.target.kind === 'setMark'),
          ).toHaveLength(config.proxyUids.length + config.proxyGids.length);
          for (const rule of ownedRules(plan, 'OUTPUT').filter(
            (r) => r.target.kind === 'setMark',
          )) {
            expect(rule.target).toEqual({ kind: 'setMark', mark: mark + 1 });
          }
          expect(ownedRules(plan, 'INBOUND').flatMap((r) => r.matches)).toContainEqual({
            kind: 'mark',
            mark: mark + 1,
            negate: true,
          });
          // Marks are rendered as iptables-save prints them, so --check compares them exactly.
          const text = tablesTextFor(config, family);
          expect(text).toContain(`--tproxy-mark 0x${mark.toString(16)}/0xffffffff`);
          expect(text).toContain(`--set-xmark 0x${(mark + 1).toString(16)}/0xffffffff`);
          expect(text).not.toMatch(/--(set-x|tproxy-)?mark (?!0x)/);
        }
      },
    );

    it('only PREROUTING reaches the TPROXY target (the kernel allows it nowhere else)', async () => {
      for (const { plan } of (await everyTable()).filter((p) => p.plan.table === 'mangle')) {
        if (!plan.chains.includes('TPROXY')) continue;
        expect(
          jumpsTo(plan, 'TPROXY').every(
            (r) => r.chain.name === 'INBOUND' && r.chain.kind === 'owned',
          ),
        ).toBe(true);
        expect(jumpsTo(plan, 'INBOUND').map((r) => r.chain)).toEqual([
          { kind: 'builtin', name: 'PREROUTING' },
        ]);
        expect(
          plan.rules.filter((r) => r.target.kind === 'tproxy').map((r) => r.chain.name),
        ).toEqual(['TPROXY']);
      }
    });

    it('inbound capture leaves nat: no ISTIO_INBOUND rule but the -k ones, PREROUTING only for -k', async () => {
      for (const argv of [
        ['-m', 'TPROXY'],
        ['-m', 'TPROXY', '-b', '8080', '-d', '22'],
        ['-m', 'TPROXY', '-k', 'eth1', '-c', 'eth2'],
      ]) {
        const config = await configOf(argv);
        for (const family of FAMILIES) {
          const nat = planNat(config, family);
          const inbound = ownedRules(nat, 'INBOUND');
          expect(
            inbound.every((r) => r.target.kind !== 'jump' || r.target.chain !== 'IN_REDIRECT'),
          ).toBe(true);
          const virt = config.kubeVirtInterfaces.length > 0;
          expect(inbound.length > 0).toBe(virt);
          expect(hooks(nat).filter((r) => r.chain.name === 'PREROUTING')).toHaveLength(
            virt ? 1 : 0,
          );
          // The outbound side is REDIRECT's, unchanged.
          const redirect = planNat({ ...config, inboundMode: 'redirect' }, family);
          expect(ownedRules(nat, 'OUTPUT')).toEqual(ownedRules(redirect, 'OUTPUT'));
        }
      }
    });

    it('-d RETURNs in mangle with -b "*": excluded ports first, then the capture', async () => {
      const plan = planMangle(await configOf(['-m', 'TPROXY', '-b', '*', '-d', '15090']), 'ipv4');
      if (plan === undefined) throw new Error('expected a mangle plan');
      const rules = ownedRules(plan, 'INBOUND');
      const excluded = rules.findIndex((r) =>
        r.matches.some((m) => m.kind === 'destinationPort' && m.port === 15090),
      );
      const captured = rules.flatMap((r, i) =>
        r.target.kind === 'jump' && ['TPROXY', 'DIVERT'].includes(r.target.chain) ? [i] : [],
      );
      expect(rules[excluded]?.target).toEqual({ kind: 'return' });
      expect(captured).toHaveLength(2);
      expect(excluded).toBeLessThan(Math.min(...captured));
    });

    // As in Istio (issue 14): -d beside a port list has no effect; each listed port gets
    // its ESTABLISHED jump and its TPROXY jump, and no other port is marked.
    it('-b list in mangle: per port, ESTABLISHED to DIVERT then TPROXY; -d ignored', async () => {
      const plan = planMangle(
        await configOf(['-m', 'TPROXY', '-b', '8080,9090', '-d', '15090']),
        'ipv4',
      );
      if (plan === undefined) throw new Error('expected a mangle plan');
      const rules = ownedRules(plan, 'INBOUND');
      expect(
        rules.some((r) => r.matches.some((m) => m.kind === 'destinationPort' && m.port === 15090)),
      ).toBe(false);
      const tcp = { kind: 'protocol', proto: 'tcp' } as const;
      const established = { kind: 'ctstate', states: ['RELATED', 'ESTABLISHED'] } as const;
      const jumps = rules.filter(
        (r) => r.target.kind === 'jump' && ['TPROXY', 'DIVERT'].includes(r.target.chain),
      );
      expect(jumps.map((r) => [r.matches, r.target])).toEqual(
        [8080, 9090].flatMap((port) => [
          [
            [tcp, { kind: 'destinationPort', port }, established],
            { kind: 'jump', chain: 'DIVERT' },
          ],
          [[tcp, { kind: 'destinationPort', port }], { kind: 'jump', chain: 'TPROXY' }],
        ]),
      );
    });

    // -t and -r as flags need -m TPROXY; from their variables they wait for it.
    it.each<[string[], Env]>([
      [[], { INBOUND_TPROXY_MARK: '7', INBOUND_TPROXY_ROUTE_TABLE: '77' }],
      [['-m', 'TPROXY', '-b', ''], {}],
      [['-m', 'TPROXY', '-b', '', '-t', '7', '-r', '77'], {}],
      [['-m', 'REDIRECT'], { MESH_INIT_INBOUND_TPROXY_MARK: '7' }],
    ])('%j %j: no TPROXY rules, so no mangle table', async (argv, env) => {
      const config = await configFrom(argv, env);
      for (const family of FAMILIES) {
        expect(planMangle(config, family)).toBeUndefined();
        expect(planTables(config, family).map((p) => p.table)).toEqual(['nat']);
      }
    });
  });

  describe('DNS capture', () => {
    const tcp: Match = { kind: 'protocol', proto: 'tcp' };
    const udp: Match = { kind: 'protocol', proto: 'udp' };
    const port53: Match = { kind: 'destinationPort', port: 53 };

    it.each<[string, string, Family, string[]]>([
      ['one resolver per family', RESOLV_CONF, 'ipv4', ['10.96.0.10/32']],
      ['one resolver per family', RESOLV_CONF, 'ipv6', ['fd00:10:96::a/128']],
      [
        'two of one family, kept in order',
        'nameserver 10.0.0.2\nnameserver 10.0.0.1\n',
        'ipv4',
        ['10.0.0.2/32', '10.0.0.1/32'],
      ],
      ['a local resolver (systemd-resolved)', 'nameserver 127.0.0.53\n', 'ipv4', ['127.0.0.53/32']],
    ])(
      '%s (%s): TCP and UDP to each resolver go to the DNS port',
      async (_name, resolvConf, family, resolvers) => {
        const config = await configOf(['--redirect-dns', '--dns-port', '15054'], resolvConf);
        const rules = ownedRules(planNat(config, family), 'OUTPUT_DNS');
        expect(rules.map((r) => [r.matches, r.target])).toEqual(
          resolvers.flatMap((cidr) => {
            const [address = '', prefix = ''] = cidr.split('/');
            const to: Match = {
              kind: 'destination',
              cidr: { family, address, prefix: Number(prefix) },
            };
            return [
              [[tcp, port53, to], { kind: 'redirect', toPort: 15054 }],
              [[udp, port53, to], { kind: 'redirect', toPort: 15054 }],
            ];
          }),
        );
      },
    );

    it.each<[string, string]>([
      ['no nameserver at all', 'search cluster.local\n'],
      ['an empty resolv.conf', ''],
      ['only values that are no address', 'nameserver dns.example\n'],
    ])(
      '%s: nothing to capture, so both plans are exactly the plans without DNS capture, and no raw table',
      async (_name, resolvConf) => {
        const config = await configOf(['--redirect-dns'], resolvConf);
        const off = { ...config, dns: { capture: 'off' } as const };
        for (const family of FAMILIES) {
          expect(planNat(config, family)).toEqual(planNat(off, family));
          expect(planRaw(config, family)).toBeUndefined();
        }
      },
    );

    // Istio decides DNS capture once for the pod (issue 14): with resolvers of one family
    // only, the other family captures no DNS of the apps, yet the proxy's rules are those
    // of DNS capture (its TCP to 53 over lo is not inbound; its UDP DNS has its zones).
    it.each<[string, string, Family]>([
      ['IPv4 resolvers only', 'nameserver 10.96.0.10\n', 'ipv6'],
      ['IPv6 resolvers only', 'nameserver fd00:10:96::a\n', 'ipv4'],
    ])(
      '%s: the %s plan is shaped for DNS capture, without capturing any',
      async (_name, resolvConf, family) => {
        const config = await configOf(['--redirect-dns'], resolvConf);
        const off = { ...config, dns: { capture: 'off' } as const };
        const nat = planNat(config, family);
        expect(nat.chains).toEqual(NAT_CHAINS);
        expect(jumpsTo(nat, 'OUTPUT_DNS')).toEqual([]);
        // Only the proxy's owner rules differ from the plan without DNS capture.
        const differ = nat.rules.filter(
          (r, i) => JSON.stringify(r) !== JSON.stringify(planNat(off, family).rules[i]),
        );
        expect(differ.map((r) => r.why)).toEqual([
          'proxy calling its own pod IP is inbound traffic',
          'loopback traffic inside the pod is not intercepted',
          'loopback traffic inside the pod is not intercepted',
        ]);
        const raw = planRaw(config, family);
        if (raw === undefined) throw new Error('expected a raw plan');
        expect(raw.chains).toEqual(['OUTPUT_DNS']);
        expect(raw.rules.map((r) => r.why)).toEqual([
          "the proxy's upstream DNS queries are in zone 1",
          "the proxy's DNS answers to the apps are in zone 2",
          "the proxy's upstream DNS queries are in zone 1",
          "the proxy's DNS answers to the apps are in zone 2",
          'outbound DNS gets its conntrack zone',
        ]);
      },
    );

    it('--capture-all-dns: port 53 to any address, in both families, whatever resolv.conf says', async () => {
      const config = await configOf(['--redirect-dns', '--capture-all-dns'], '');
      for (const family of FAMILIES) {
        const rules = ownedRules(planNat(config, family), 'OUTPUT_DNS');
        expect(rules.map((r) => r.matches)).toEqual([
          [tcp, port53],
          [udp, port53],
        ]);
        expect(planRaw(config, family)).toBeDefined();
      }
    });

    it("the jump to ISTIO_OUTPUT_DNS: after the proxy's owner rules, before localhost's RETURN (a resolver on lo is captured)", async () => {
      let seen = 0;
      for (const { config, plan } of await everyPlan()) {
        const rules = ownedRules(plan, 'OUTPUT');
        const at = rules.findIndex(
          (r) => r.target.kind === 'jump' && r.target.chain === 'OUTPUT_DNS',
        );
        if (!plan.chains.includes('OUTPUT_DNS')) {
          expect(at).toBe(-1);
          continue;
        }
        seen++;
        const owners = rules.flatMap((r, i) =>
          r.matches.some((m) => m.kind === 'owner') ? [i] : [],
        );
        const localhost = rules.findIndex(
          (r) =>
            r.target.kind === 'return' &&
            r.matches.length === 1 &&
            r.matches[0]?.kind === 'destination' &&
            !r.matches[0].negate,
        );
        // Per UID and GID: the jump to its own pod IP, others' lo RETURN (unless -i names a
        // loopback range), its own RETURN; then the owner-group filter.
        const include = config.outboundIncludeCidrs;
        const perOwner =
          include.kind === 'only' &&
          include.cidrs.some((c) => ipaddr.parse(c.address).range() === 'loopback')
            ? 2
            : 3;
        const groups = config.ownerGroups.kind === 'all' ? config.ownerGroups.except.length : 1;
        expect(owners).toHaveLength(
          perOwner * (config.proxyUids.length + config.proxyGids.length) + groups,
        );
        expect(at).toBeGreaterThan(Math.max(...owners));
        expect(at).toBeLessThan(localhost);
        expect(rules[at]?.matches).toEqual([]);
        // The apps' TCP to 53 over lo is not let through by the lo RETURNs: it reaches the jump.
        for (const rule of rules.filter(
          (r) => r.why === 'loopback traffic inside the pod is not intercepted',
        )) {
          expect(rule.matches).toContainEqual({ kind: 'destinationPort', port: 53, negate: true });
        }
        // The proxy's UIDs calling its own pod IP on port 53 (its DNS upstream on lo) is
        // not inbound; as in Istio, its GIDs' rule keeps port 53.
        for (const rule of rules.filter(
          (r) => r.target.kind === 'jump' && r.target.chain === 'IN_REDIRECT',
        )) {
          const owner = rule.matches.find((m) => m.kind === 'owner');
          expect(rule.matches).toContainEqual(
            owner?.by === 'uid'
              ? { kind: 'destinationPorts', ports: [53, config.inboundTunnelPort], negate: true }
              : { kind: 'destinationPort', port: config.inboundTunnelPort, negate: true },
          );
        }
      }
      expect(seen).toBeGreaterThan(2);
    });

    it("raw: the proxy upstream in zone 1, its answers and the apps in zone 2, the resolvers' answers in zone 1", async () => {
      const config = await configOf([
        '--redirect-dns',
        '-u',
        '1337,0',
        '-g',
        '1338',
        '--dns-port',
        '5353',
      ]);
      const plan = planRaw(config, 'ipv4');
      if (plan === undefined) throw new Error('expected a raw plan');
      const zoneOf = (chain: OwnedChain) =>
        ownedRules(plan, chain).map((r) => [
          r.matches.map((m) =>
            m.kind === 'protocol'
              ? m.proto
              : m.kind === 'owner'
                ? `${m.by} ${m.id}`
                : m.kind === 'destinationPort'
                  ? `dport ${m.port}`
                  : m.kind === 'sourcePort'
                    ? `sport ${m.port}`
                    : `${m.kind} ${'cidr' in m ? m.cidr.address : ''}`,
          ),
          r.target,
        ]);
      const zone = (n: number) => ({ kind: 'conntrackZone', zone: n });
      expect(zoneOf('OUTPUT_DNS')).toEqual([
        ...['uid 1337', 'uid 0', 'gid 1338'].flatMap((owner) => [
          [['udp', 'dport 53', owner], zone(1)],
          [['udp', 'sport 5353', owner], zone(2)],
        ]),
        [['udp', 'dport 53', 'destination 10.96.0.10'], zone(2)],
      ]);
      expect(zoneOf('INBOUND')).toEqual([[['udp', 'sport 53', 'source 10.96.0.10'], zone(1)]]);
      expect(hooks(plan).map((r) => [r.chain.name, r.matches, r.target])).toEqual([
        ['OUTPUT', [udp], { kind: 'jump', chain: 'OUTPUT_DNS' }],
        ['PREROUTING', [udp], { kind: 'jump', chain: 'INBOUND' }],
      ]);
    });
  });

  describe('a resolver on lo: its answers to the proxy in zone 1, in both DNS modes', () => {
    const MODES: readonly [string, string[]][] = [
      ['--redirect-dns', ['--redirect-dns']],
      ['--capture-all-dns', ['--redirect-dns', '--capture-all-dns']],
    ];
    const LO_WHY = 'answers of a resolver on lo to the proxy are in zone 1';
    const loRules = (plan: TablePlan | undefined) =>
      plan?.rules.filter((r) => r.why === LO_WHY) ?? [];

    it.each(
      MODES.flatMap(([mode, argv]) =>
        (
          [
            ["Docker's 127.0.0.11", 'nameserver 127.0.0.11\n', 'ipv4', ['127.0.0.11/32']],
            [
              'systemd-resolved next to a cluster resolver',
              'nameserver 10.96.0.10\nnameserver 127.0.0.53\n',
              'ipv4',
              ['127.0.0.53/32'],
            ],
            ['anywhere in 127/8', 'nameserver 127.1.2.3\n', 'ipv4', ['127.1.2.3/32']],
            [
              'an IPv4-mapped 127.0.0.11',
              'nameserver ::ffff:127.0.0.11\n',
              'ipv4',
              ['127.0.0.11/32'],
            ],
            ['::1, in ip6tables', 'nameserver ::1\n', 'ipv6', ['::1/128']],
            ['::1 is not IPv4', 'nameserver ::1\n', 'ipv4', []],
            ['127.0.0.11 is not IPv6', 'nameserver 127.0.0.11\n', 'ipv6', []],
            ['a cluster resolver only', 'nameserver 10.96.0.10\nnameserver fd00::a\n', 'ipv4', []],
            ['a link-local one is not on lo', 'nameserver fe80::1%eth0\n', 'ipv6', []],
          ] as const
        ).map(([name, resolvConf, family, sources]) => ({
          mode,
          argv,
          name,
          resolvConf,
          family,
          sources,
        })),
      ),
    )('$mode, $name ($family): $sources', async ({ argv, resolvConf, family, sources }) => {
      const config = await configOf(argv, resolvConf);
      const plan = planRaw(config, family);
      const rules = loRules(plan);
      expect(rules.map((r) => r.matches)).toEqual(
        sources.map((source) => {
          const [address = '', prefix = ''] = source.split('/');
          return [
            { kind: 'protocol', proto: 'udp' },
            { kind: 'source', cidr: { family, address, prefix: Number(prefix) } },
          ];
        }),
      );
      for (const rule of rules) {
        expect(rule.chain).toEqual({ kind: 'owned', name: 'OUTPUT_DNS' });
        expect(rule.target).toEqual({ kind: 'conntrackZone', zone: 1 });
      }
      if (plan === undefined || rules.length === 0) return;
      // After every rule of the proxy's own (matched by owner) and after the apps' zone 2:
      // an app on lo's own address asking a resolver there has the resolver's source too.
      const out = ownedRules(plan, 'OUTPUT_DNS');
      const first = out.indexOf(rules[0] as Rule);
      const owners = out.flatMap((r, i) => (r.matches.some((m) => m.kind === 'owner') ? [i] : []));
      const apps = out.flatMap((r, i) =>
        r.why === "the apps' DNS queries are in zone 2" ? [i] : [],
      );
      expect(apps.length).toBeGreaterThan(0);
      expect(first).toBeGreaterThan(Math.max(...owners, ...apps));
      // The lo rules close the chain, in resolv.conf's order.
      expect(out.slice(first)).toEqual(rules);
    });

    it('--capture-all-dns with no resolver on lo: the raw table without such a rule', async () => {
      for (const resolvConf of ['', 'nameserver 10.96.0.10\n']) {
        const config = await configOf(MODES[1]?.[1] ?? [], resolvConf);
        for (const family of FAMILIES) {
          expect(planRaw(config, family)).toBeDefined();
          expect(loRules(planRaw(config, family))).toEqual([]);
        }
      }
    });

    it('the rule is rendered as the README shows it', async () => {
      const config = await configOf(['--redirect-dns'], 'nameserver 127.0.0.11\n');
      const plan = planRaw(config, 'ipv4');
      expect(tablesTextFor(config, 'ipv4')).toContain(
        '\n-A ISTIO_OUTPUT_DNS -p udp -s 127.0.0.11/32 -m comment --comment "mesh-init: answers of a resolver on lo to the proxy are in zone 1" -j CT --zone 1\n',
      );
      expect(loRules(plan)).toHaveLength(1);
    });
  });

  /**
   * Which conntrack zone raw gives each packet of a captured DNS exchange: the first CT
   * target it meets wins (the kernel ignores later ones once a packet has its entry).
   * The app's query and the proxy's answer to it must share a zone, or the answer never
   * meets the query's NAT entry and the app gets it from the DNS port; the proxy's query
   * upstream and the resolver's answer must share the other one.
   */
  describe('conntrack zones of a whole DNS exchange, raw rule by raw rule', () => {
    interface Packet {
      readonly src: string;
      readonly dst: string;
      readonly sport: number;
      readonly dport: number;
      /** The sending socket's owner (its gid is the same number); none from the network. */
      readonly uid: number | undefined;
    }
    const inCidr = (address: string, cidr: Cidr) => {
      const parsed = ipaddr.parse(address);
      const range = ipaddr.parse(cidr.address);
      return parsed.kind() === range.kind() && parsed.match(range, cidr.prefix);
    };
    const holds = (m: Match, p: Packet): boolean => {
      const not = (b: boolean, negate?: boolean) => b !== Boolean(negate);
      switch (m.kind) {
        case 'protocol':
          return m.proto === 'udp';
        case 'source':
          return not(inCidr(p.src, m.cidr), m.negate);
        case 'destination':
          return not(inCidr(p.dst, m.cidr), m.negate);
        case 'destinationPort':
          return not(p.dport === m.port, m.negate);
        case 'sourcePort':
          return p.sport === m.port;
        case 'owner':
          return not(p.uid === m.id, m.negate);
        default:
          throw new Error(`raw has no ${m.kind} match`);
      }
    };
    /** The zone raw gives a UDP packet entering through `hook`; 0 if no CT target. */
    const zoneOf = (plan: TablePlan, hook: 'OUTPUT' | 'PREROUTING', p: Packet): number => {
      const walk = (chain: TablePlan['rules'][number]['chain']): number | 'return' => {
        for (const rule of plan.rules) {
          if (rule.chain.kind !== chain.kind || rule.chain.name !== chain.name) continue;
          if (!rule.matches.every((m) => holds(m, p))) continue;
          const { target } = rule;
          if (target.kind === 'conntrackZone') return target.zone;
          if (target.kind === 'return') return 'return';
          if (target.kind === 'jump') {
            const zone = walk({ kind: 'owned', name: target.chain });
            if (zone !== 'return') return zone;
          } else throw new Error(`raw has no ${target.kind} target`);
        }
        return 'return';
      };
      const zone = walk({ kind: 'builtin', name: hook });
      return zone === 'return' ? 0 : zone;
    };

    const APP = 1000;
    const PROXY = 1337;
    const RESOLVER = 0;
    /**
     * The four packets of one exchange in a pod whose address is `pod`: an app asks the
     * resolver; nat sends that to the proxy on lo, which asks the resolver itself and
     * answers the app from the loopback address.
     */
    const exchange = (resolver: string, pod: string) => {
      const lo = resolver.includes(':') ? '::1' : '127.0.0.1';
      // A resolver on lo is reached from lo's address; one off lo from the pod's.
      const from = ipaddr.parse(resolver).range() === 'loopback' ? lo : pod;
      return {
        appQuery: { src: from, dst: resolver, sport: 40000, dport: 53, uid: APP },
        proxyQuery: { src: from, dst: resolver, sport: 41000, dport: 53, uid: PROXY },
        // On lo, through OUTPUT (Docker's sits behind a DNAT: another source port).
        resolverAnswer: { src: resolver, dst: from, sport: 35915, dport: 41000, uid: RESOLVER },
        proxyAnswer: { src: lo, dst: from, sport: 15053, dport: 40000, uid: PROXY },
      };
    };
    const zonesOf = async (argv: string[], resolver: string, pod: string) => {
      const family = resolver.includes(':') ? 'ipv6' : 'ipv4';
      const config = await configOf(argv, `nameserver ${resolver}\n`);
      const plan = planRaw(config, family);
      if (plan === undefined) throw new Error('expected a raw plan');
      const p = exchange(resolver, pod);
      const onLo = ipaddr.parse(resolver).range() === 'loopback';
      return {
        appQuery: zoneOf(plan, 'OUTPUT', p.appQuery),
        proxyQuery: zoneOf(plan, 'OUTPUT', p.proxyQuery),
        // Off lo the answer comes in from the network, with source port 53.
        resolverAnswer: onLo
          ? zoneOf(plan, 'OUTPUT', p.resolverAnswer)
          : zoneOf(plan, 'PREROUTING', { ...p.resolverAnswer, sport: 53, uid: undefined }),
        proxyAnswer: zoneOf(plan, 'OUTPUT', p.proxyAnswer),
      };
    };
    const PAIRED = { appQuery: 2, proxyQuery: 1, resolverAnswer: 1, proxyAnswer: 2 };
    const MODES_FOR_ZONES: readonly [string, string[]][] = [
      ['--redirect-dns', ['--redirect-dns']],
      ['--capture-all-dns', ['--redirect-dns', '--capture-all-dns']],
    ];
    const cases = (resolvers: readonly [string, string][]) =>
      MODES_FOR_ZONES.flatMap(([mode, argv]) =>
        resolvers.map(([resolver, pod]) => ({ mode, argv, resolver, pod })),
      );

    it.each(
      cases([
        ['10.96.0.10', '10.244.0.5'],
        ['fd00:10:96::a', 'fd00:10:244::5'],
        ['127.0.0.11', '10.244.0.5'],
        ['127.0.0.53', '10.244.0.5'],
      ]),
    )(
      '$mode, resolver $resolver: query and answer share their zone',
      async ({ argv, resolver, pod }) => {
        expect(await zonesOf(argv, resolver, pod)).toEqual(PAIRED);
      },
    );

    // Why the rule exists: without it, a resolver's answer on lo gets no zone, meets no
    // query of the proxy's, and its DNAT (Docker's) is never undone.
    it.each(cases([['127.0.0.11', '10.244.0.5']]))(
      '$mode, resolver $resolver, without the rule for a resolver on lo: its answer in no zone',
      async ({ argv, resolver, pod }) => {
        const config = await configOf(argv, `nameserver ${resolver}\n`);
        const plan = planRaw(config, 'ipv4');
        if (plan === undefined) throw new Error('expected a raw plan');
        const without = {
          ...plan,
          rules: plan.rules.filter(
            (r) => r.why !== 'answers of a resolver on lo to the proxy are in zone 1',
          ),
        };
        expect(without.rules).toHaveLength(plan.rules.length - 1);
        expect(zoneOf(without, 'OUTPUT', exchange(resolver, pod).resolverAnswer)).toBe(0);
      },
    );

    // A resolver at lo's own address: the app's query leaves from that very address, so
    // were the rule for the resolver's answers (-s RESOLVER, zone 1) ahead of the apps'
    // zone-2 rule, it would take the query, while the proxy's answer is in zone 2: the
    // REDIRECT is never undone and the app times out. Seen on Linux 6.18 in a namespace
    // (resolver on 127.0.0.1:53, a proxy as uid 1337 on 15053, an app as uid 1000, the
    // rules of --redirect-dns and of --capture-all-dns): the app's query timed out with
    // the rule first, and is answered with it after the apps' zone-2 rule.
    it.each(
      cases([
        ['127.0.0.1', '10.244.0.5'],
        ['::1', 'fd00:10:244::5'],
      ]),
    )(
      "$mode, resolver $resolver (lo's own address): query and answer share their zone",
      async ({ argv, resolver, pod }) => {
        expect(await zonesOf(argv, resolver, pod)).toEqual(PAIRED);
      },
    );

    // Why the lo rule comes after the apps' rule: moved ahead of it (the order before),
    // it takes the app's query from lo's own address into zone 1.
    it.each(
      cases([
        ['127.0.0.1', '10.244.0.5'],
        ['::1', 'fd00:10:244::5'],
      ]),
    )(
      "$mode, resolver $resolver (lo's own address), the lo rule ahead of the apps': the app's query in zone 1",
      async ({ argv, resolver, pod }) => {
        const family = resolver.includes(':') ? 'ipv6' : 'ipv4';
        const config = await configOf(argv, `nameserver ${resolver}\n`);
        const plan = planRaw(config, family);
        if (plan === undefined) throw new Error('expected a raw plan');
        const isLo = (r: Rule) =>
          r.why === 'answers of a resolver on lo to the proxy are in zone 1';
        const isApps = (r: Rule) => r.why === "the apps' DNS queries are in zone 2";
        const apps = plan.rules.findIndex(isApps);
        const lo = plan.rules.filter(isLo);
        expect(lo).toHaveLength(1);
        const rest = plan.rules.filter((r) => !isLo(r));
        const before = { ...plan, rules: [...rest.slice(0, apps), ...lo, ...rest.slice(apps)] };
        const p = exchange(resolver, pod);
        expect(zoneOf(before, 'OUTPUT', p.appQuery)).toBe(1);
        expect(zoneOf(before, 'OUTPUT', p.proxyAnswer)).toBe(2);
        expect(zoneOf(plan, 'OUTPUT', p.appQuery)).toBe(2);
      },
    );
  });

  describe('--drop-invalid', () => {
    it.each([
      [['--drop-invalid']],
      [['--drop-invalid', '-m', 'TPROXY', '-d', '22']],
      [['--drop-invalid', '-b', '']],
    ])('%j: INVALID is dropped, whatever the protocol, by the first mangle hook', async (argv) => {
      const config = await configOf(argv);
      for (const family of FAMILIES) {
        const plan = planMangle(config, family);
        if (plan === undefined) throw new Error('expected a mangle plan');
        expect(plan.chains[0]).toBe('DROP_INVALID');
        expect(ownedRules(plan, 'DROP_INVALID').map((r) => [r.matches, r.target])).toEqual([
          [[{ kind: 'ctstate', states: ['INVALID'] }], { kind: 'drop' }],
        ]);
        expect(hooks(plan)[0]).toMatchObject({
          chain: { kind: 'builtin', name: 'PREROUTING' },
          matches: [],
          target: { kind: 'jump', chain: 'DROP_INVALID' },
        });
        // With TPROXY as well, the two features' rules are the union of each alone.
        const alone = planMangle({ ...config, dropInvalid: false }, family);
        const rest = plan.rules.filter(
          (r) =>
            r.chain.name !== 'DROP_INVALID' &&
            !(r.target.kind === 'jump' && r.target.chain === 'DROP_INVALID'),
        );
        expect(rest).toEqual(alone?.rules ?? []);
      }
    });
  });

  it('pure: the same config gives the same tables, and the config is not changed', async () => {
    const config = await configOf(['-m', 'TPROXY', '--redirect-dns', '--drop-invalid']);
    const before = structuredClone(config);
    for (const family of FAMILIES)
      expect(planTables(config, family)).toEqual(planTables(config, family));
    expect(config).toEqual(before);
  });
});

/**
 * Issue 14, item by item: the shape of each rule Istio's capture writes, pinned as plan
 * data (the goldens pin the text). Each case is one difference the issue found, with
 * mesh-init's rules now as Istio orders and shapes them.
 */
describe('Istio parity (issue 14): each rule shape, as data', () => {
  const tcp: Match = { kind: 'protocol', proto: 'tcp' };
  const udp: Match = { kind: 'protocol', proto: 'udp' };
  const lo: Match = { kind: 'outInterface', name: 'lo' };
  const v4 = (address: string, prefix: number): Cidr => ({ family: 'ipv4', address, prefix });
  const v6 = (address: string, prefix: number): Cidr => ({ family: 'ipv6', address, prefix });
  const to = (cidr: Cidr): Match => ({ kind: 'destination', cidr });
  const notTo = (cidr: Cidr): Match => ({ kind: 'destination', cidr, negate: true });
  const port = (p: number): Match => ({ kind: 'destinationPort', port: p });
  const notPort = (p: number): Match => ({ kind: 'destinationPort', port: p, negate: true });
  const notPorts = (...ports: number[]): Match => ({
    kind: 'destinationPorts',
    ports,
    negate: true,
  });
  const uid = (id: number, negate = false): Match => ({
    kind: 'owner',
    by: 'uid',
    id,
    ...(negate ? { negate } : {}),
  });
  const gid = (id: number | string, negate = false): Match => ({
    kind: 'owner',
    by: 'gid',
    id,
    ...(negate ? { negate } : {}),
  });
  const RETURN = { kind: 'return' } as const;
  const jump = (chain: OwnedChain) => ({ kind: 'jump', chain }) as const;
  const shapes = (rules: readonly Rule[]) => rules.map((r) => [r.matches, r.target]);
  const natOutput = async (argv: string[], family: Family = 'ipv4', resolvConf = RESOLV_CONF) =>
    shapes(ownedRules(planNat(await configOf(argv, resolvConf), family), 'OUTPUT'));
  const PASSTHROUGH_V4 = [[lo, { kind: 'source', cidr: v4('127.0.0.6', 32) }], RETURN];
  const LOCALHOST_V4 = [[to(v4('127.0.0.1', 32))], RETURN];
  const CAPTURE = [[], jump('REDIRECT')];

  /** One proxy identity's block, as Istio writes it for each UID, then each GID. */
  const block = (owner: (id: number, negate?: boolean) => Match, id: number, dns = false) => [
    [
      [
        lo,
        notTo(v4('127.0.0.1', 32)),
        tcp,
        dns && owner === uid ? notPorts(53, 15008) : notPort(15008),
        owner(id),
      ],
      jump('IN_REDIRECT'),
    ],
    [[lo, ...(dns ? [tcp, notPort(53)] : []), owner(id, true)], RETURN],
    [[owner(id)], RETURN],
  ];

  it('1, 2: the default ISTIO_OUTPUT, block by block: UID, then GID, then localhost', async () => {
    expect(await natOutput([])).toEqual([
      PASSTHROUGH_V4,
      ...block(uid, 1337),
      ...block(gid, 1337),
      LOCALHOST_V4,
      CAPTURE,
    ]);
  });

  it('1: the tunnel port is not captured inbound, nor sent inbound by the proxy over lo', async () => {
    const config = await configFrom(['-e', '15009']);
    const inbound = ownedRules(planNat(config, 'ipv4'), 'INBOUND');
    expect(shapes(inbound)[0]).toEqual([[tcp, port(15009)], RETURN]);
    const toInbound = ownedRules(planNat(config, 'ipv4'), 'OUTPUT').filter(
      (r) => r.target.kind === 'jump' && r.target.chain === 'IN_REDIRECT',
    );
    expect(toInbound).toHaveLength(2);
    for (const rule of toInbound) expect(rule.matches).toContainEqual(notPort(15009));
  });

  it('1: without inbound capture in nat (-b "", TPROXY) there is no tunnel RETURN in nat, nor in mangle (as in Istio)', async () => {
    for (const argv of [
      ['-b', ''],
      ['-m', 'TPROXY'],
    ]) {
      const config = await configFrom(argv);
      for (const family of FAMILIES) {
        expect(ownedRules(planNat(config, family), 'INBOUND')).toEqual([]);
        const mangle = planMangle(config, family);
        expect(
          mangle?.rules.some((r) => r.matches.some((m) => m.kind === 'destinationPort')) ?? false,
        ).toBe(false);
      }
    }
  });

  it("3: with DNS capture, the UIDs' rule skips 53 and the tunnel port (multiport), the GIDs' only the tunnel port; lo RETURNs let TCP 53 through to the DNS jump", async () => {
    expect(await natOutput(['--redirect-dns', '-u', '3,4', '-g', '1,2'])).toEqual([
      PASSTHROUGH_V4,
      ...block(uid, 3, true),
      ...block(uid, 4, true),
      ...block(gid, 1, true),
      ...block(gid, 2, true),
      [[], jump('OUTPUT_DNS')],
      LOCALHOST_V4,
      CAPTURE,
    ]);
  });

  it('3: the multiport match renders as Istio writes it', async () => {
    const text = tablesTextFor(await configOf(['--redirect-dns', '-e', '15009']), 'ipv4');
    expect(asAppended(text)).toContain(
      '\n-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15009 -m owner --uid-owner 1337 ',
    );
    expect(asAppended(text)).toContain(
      '\n-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15009 -m owner --gid-owner 1337 ',
    );
  });

  it.each<[string, string[], boolean]>([
    ['an IPv4 loopback range in -i', ['-i', '127.1.2.3/32'], false],
    ['all of 127/8 in -i', ['-i', '127.0.0.0/8,10.0.0.0/8'], false],
    // Istio looks at both families' ranges for either family's rules.
    ['::1 in -i, for the ipv4 rules too', ['-i', '::1/128,10.0.0.0/8'], false],
    ['no loopback range in -i', ['-i', '10.0.0.0/8'], true],
    ['-i "*"', ['-i', '*'], true],
  ])('7: %s (%j): a lo RETURN per proxy owner: %s', async (_name, argv, loReturns) => {
    for (const family of FAMILIES) {
      const rules = ownedRules(planNat(await configFrom(argv), family), 'OUTPUT');
      const lo = rules.filter((r) =>
        r.matches.some((m) => m.kind === 'owner' && 'negate' in m && m.negate),
      );
      expect(lo).toHaveLength(loReturns ? 2 : 0);
    }
  });

  it('7: a loopback range in -i is captured after the localhost RETURN, not let through over lo', async () => {
    expect(await natOutput(['-i', '127.1.2.3/32'])).toEqual([
      PASSTHROUGH_V4,
      ...block(uid, 1337).filter((_, i) => i !== 1),
      ...block(gid, 1337).filter((_, i) => i !== 1),
      LOCALHOST_V4,
      [[to(v4('127.1.2.3', 32))], jump('REDIRECT')],
    ]);
  });

  it("--ipv4-loopback-cidr: the pod's loopback in every IPv4 rule that names it; IPv6 keeps ::1", async () => {
    const config = await configFrom(['--ipv4-loopback-cidr', '127.0.0.1/8', '-m', 'TPROXY']);
    const range = v4('127.0.0.0', 8);
    const cidrs = (plan: TablePlan | undefined) =>
      (plan?.rules ?? []).flatMap(cidrsOf).filter((c) => !['127.0.0.6', '::6'].includes(c.address));
    const v4nat = planNat(config, 'ipv4');
    expect(shapes(ownedRules(v4nat, 'OUTPUT')).at(-2)).toEqual([[to(range)], RETURN]);
    expect(cidrs(v4nat)).toEqual([range, range, range]);
    // TPROXY's ! -d, and the proxy's mark + 1 to its own pod IP.
    expect(cidrs(planMangle(config, 'ipv4'))).toEqual([range, range, range]);
    expect(cidrs(planNat(config, 'ipv6'))).toEqual([
      v6('::1', 128),
      v6('::1', 128),
      v6('::1', 128),
    ]);
  });

  it.each<[string, string[], unknown[][]]>([
    [
      'only some groups: one RETURN for all others',
      ['--outbound-owner-groups', '1001,istio-app'],
      [[[gid(1001, true), gid('istio-app', true)], RETURN]],
    ],
    [
      'all but some: one RETURN per excluded group',
      ['--outbound-owner-groups-exclude', '888,wheel'],
      [
        [[gid(888)], RETURN],
        [[gid('wheel')], RETURN],
      ],
    ],
    // As in Istio: an empty list captures no group, so all outbound TCP returns.
    ['no group', ['--outbound-owner-groups', ''], [[[], RETURN]]],
    ['every group (the default)', [], []],
  ])(
    'owner groups, %s: after the proxy blocks, before DNS and localhost',
    async (_name, argv, filter) => {
      expect(await natOutput(argv)).toEqual([
        PASSTHROUGH_V4,
        ...block(uid, 1337),
        ...block(gid, 1337),
        ...filter,
        LOCALHOST_V4,
        CAPTURE,
      ]);
      const dns = await natOutput([...argv, '--redirect-dns']);
      const at = dns.findIndex(
        ([, target]) => JSON.stringify(target) === JSON.stringify(jump('OUTPUT_DNS')),
      );
      expect(dns.slice(at - filter.length, at)).toEqual(filter);
    },
  );

  it('owner groups render as iptables takes them, names and GIDs alike', async () => {
    const text = tablesTextFor(
      await configOf(['--outbound-owner-groups', '1001,istio-app']),
      'ipv4',
    );
    expect(text).toContain(
      '\n-A ISTIO_OUTPUT -m owner ! --gid-owner 1001 -m owner ! --gid-owner istio-app -m comment --comment "mesh-init: only the groups of --outbound-owner-groups are captured" -j RETURN\n',
    );
  });

  it('4: IPv4 resolvers only: the IPv6 raw table zones the proxy, captures no app', async () => {
    const config = await configOf(
      ['--redirect-dns', '-u', '1337', '-g', '1338'],
      'nameserver 10.96.0.10\n',
    );
    const raw = planRaw(config, 'ipv6');
    if (raw === undefined) throw new Error('expected a raw plan');
    const dns53 = [udp, port(53)];
    const fromDnsPort: Match[] = [udp, { kind: 'sourcePort', port: 15053 }];
    const zone = (n: number) => ({ kind: 'conntrackZone', zone: n });
    expect(raw.chains).toEqual(['OUTPUT_DNS']);
    expect(raw.rules.map((r) => [r.chain.name, r.matches, r.target])).toEqual([
      ['OUTPUT_DNS', [...dns53, uid(1337)], zone(1)],
      ['OUTPUT_DNS', [...fromDnsPort, uid(1337)], zone(2)],
      ['OUTPUT_DNS', [...dns53, gid(1338)], zone(1)],
      ['OUTPUT_DNS', [...fromDnsPort, gid(1338)], zone(2)],
      ['OUTPUT', [udp], jump('OUTPUT_DNS')],
    ]);
    // And its nat: the proxy's rules of DNS capture, no jump to capture any.
    const nat = shapes(ownedRules(planNat(config, 'ipv6'), 'OUTPUT'));
    expect(nat).toContainEqual([
      [lo, notTo(v6('::1', 128)), tcp, notPorts(53, 15008), uid(1337)],
      jump('IN_REDIRECT'),
    ]);
    expect(nat).toContainEqual([[lo, tcp, notPort(53), gid(1338, true)], RETURN]);
    expect(nat).not.toContainEqual([[], jump('OUTPUT_DNS')]);
  });

  it('5: TPROXY with a port list: ESTABLISHED goes to DIVERT for those ports only', async () => {
    const plan = planMangle(await configFrom(['-m', 'TPROXY', '-b', '8080,9090']), 'ipv4');
    const established = { kind: 'ctstate', states: ['RELATED', 'ESTABLISHED'] };
    const divert = (plan?.rules ?? []).filter(
      (r) => r.target.kind === 'jump' && r.target.chain === 'DIVERT',
    );
    expect(divert.map((r) => r.matches)).toEqual([
      [tcp, port(8080), established],
      [tcp, port(9090), established],
    ]);
    // With "*", one for all TCP, as before.
    const all = planMangle(await configFrom(['-m', 'TPROXY']), 'ipv4');
    expect(
      (all?.rules ?? [])
        .filter((r) => r.target.kind === 'jump' && r.target.chain === 'DIVERT')
        .map((r) => r.matches),
    ).toEqual([[tcp, established]]);
  });

  it('6: TPROXY with -c: the interface RETURNs first in mangle OUTPUT, INBOUND and DROP_INVALID', async () => {
    const config = await configFrom(['-m', 'TPROXY', '-c', 'eth2,veth+', '--drop-invalid']);
    const plan = planMangle(config, 'ipv4');
    if (plan === undefined) throw new Error('expected a mangle plan');
    const first2 = (chain: OwnedChain) => shapes(ownedRules(plan, chain)).slice(0, 2);
    expect(first2('OUTPUT')).toEqual([
      [[{ kind: 'outInterface', name: 'eth2' }], RETURN],
      [[{ kind: 'outInterface', name: 'veth+' }], RETURN],
    ]);
    for (const chain of ['INBOUND', 'DROP_INVALID'] as const) {
      expect(first2(chain)).toEqual([
        [[{ kind: 'inInterface', name: 'eth2' }], RETURN],
        [[{ kind: 'inInterface', name: 'veth+' }], RETURN],
      ]);
    }
    expect(shapes(ownedRules(plan, 'DROP_INVALID')).slice(2)).toEqual([
      [[{ kind: 'ctstate', states: ['INVALID'] }], { kind: 'drop' }],
    ]);
    // The connmark restore, which sent -c's packets to lo before, comes after them.
    const out = ownedRules(plan, 'OUTPUT');
    expect(out.findIndex((r) => r.target.kind === 'restoreMark')).toBeGreaterThan(1);
  });

  it('6: --drop-invalid without TPROXY: -c is not let through before the DROP (as in Istio)', async () => {
    const plan = planMangle(await configFrom(['-c', 'eth2', '--drop-invalid']), 'ipv4');
    expect(shapes(plan?.rules ?? [])).toEqual([
      [[{ kind: 'ctstate', states: ['INVALID'] }], { kind: 'drop' }],
      [[], jump('DROP_INVALID')],
    ]);
  });

  it('TPROXY with -k: mangle has no rule for the VM interface (nat keeps the -k rules)', async () => {
    const config = await configFrom(['-m', 'TPROXY', '-k', 'eth1']);
    for (const family of FAMILIES) {
      const mangle = planMangle(config, family);
      expect(mangle?.rules.length).toBeGreaterThan(0);
      expect(
        mangle?.rules.some((r) =>
          r.matches.some(
            (m) => (m.kind === 'inInterface' || m.kind === 'outInterface') && m.name === 'eth1',
          ),
        ),
      ).toBe(false);
      expect(ownedRules(planNat(config, family), 'INBOUND').map((r) => r.target)).toEqual([
        jump('REDIRECT'),
        RETURN,
      ]);
    }
  });

  it('-o 53 with DNS capture: the RETURNs for 53 come before the jump to the DNS chain (exclusion wins)', async () => {
    const rules = await natOutput(['--redirect-dns', '-o', '53']);
    const returns = rules.flatMap(([matches, target], i) =>
      JSON.stringify(target) === JSON.stringify(RETURN) &&
      JSON.stringify(matches).includes('"port":53}') &&
      !JSON.stringify(matches).includes('"negate":true')
        ? [i]
        : [],
    );
    const dnsJump = rules.findIndex(
      ([, target]) => JSON.stringify(target) === JSON.stringify(jump('OUTPUT_DNS')),
    );
    expect(returns).toHaveLength(2);
    expect(dnsJump).toBeGreaterThan(Math.max(...returns));
  });
});
