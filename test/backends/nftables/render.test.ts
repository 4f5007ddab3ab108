/**
 * The nft script of each meaningful configuration, pinned as golden files under
 * test/golden/nftables (both families in one script; `npm run update-golden`
 * rewrites them), and what a golden cannot state clearly: each family sees exactly
 * its own plan in the merged inet chains, names, qualifiers, the TPROXY check.
 */
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergeFamilies } from '../../../src/backends/nftables/merge.js';
import { namesFor } from '../../../src/backends/nftables/names.js';
import {
  type NftRule,
  type NftTable,
  planInet,
  renderRule,
  renderScript,
} from '../../../src/backends/nftables/render.js';
import type { Config } from '../../../src/config/config.js';
import type { Family } from '../../../src/config/net.js';
import { planTables } from '../../../src/plan/plan.js';
import { chainName } from '../../../src/plan/rules.js';
import { configFrom, withResolvConf } from '../../config-from.js';
import {
  GOLDEN_CONFIGS,
  type GoldenConfig,
  ISTIO_INJECTOR,
  RESOLV_CONF,
  TPROXY_INJECTOR,
} from '../../golden-configs.js';

const configOf = async (argv: readonly string[], resolvConf = '') =>
  withResolvConf(await configFrom(argv), resolvConf);

/**
 * The configurations of the iptables goldens, each as one script for the families
 * its iptables goldens have (test/golden/nftables/<name>.golden), and two of nft's own.
 */
const NFT_GOLDEN: readonly GoldenConfig[] = [
  ...GOLDEN_CONFIGS,
  // Native nftables only: the single-stack pod's IPv6 is left alone, as with iptables.
  {
    name: 'all-features-ipv4-only',
    argv: [...TPROXY_INJECTOR, '--redirect-dns', '--drop-invalid', '-k', 'eth1', '-c', 'eth2+'],
    families: ['ipv4'],
    resolvConf: RESOLV_CONF,
  },
  // Only an IPv4 resolver in a dual-stack pod: the DNS rules are IPv4's alone.
  {
    name: 'dns-ipv4-resolver-dual-stack',
    argv: ['--redirect-dns', '-i', '10.96.0.0/12', '-x', 'fd00::/8'],
    families: ['ipv4', 'ipv6'],
    resolvConf: 'nameserver 10.96.0.10\n',
  },
];

const scriptOf = async (argv: readonly string[], families: readonly Family[], resolvConf = '') =>
  renderScript(planInet(await configOf(argv, resolvConf), families));

describe('golden nft script per configuration', () => {
  it.each(NFT_GOLDEN)('$name ($families): $argv', async ({ name, argv, families, resolvConf }) => {
    const script = await scriptOf(argv, families, resolvConf);
    await expect(script).toMatchFileSnapshot(`../../golden/nftables/${name}.golden`);
  });

  it('covers every configuration of the iptables goldens, with the same families', () => {
    const dir = new URL('../../golden/iptables/', import.meta.url);
    // Re-runs and cleanups over a live table are iptables' own: the nft script does
    // not depend on what is live (cleanup has its golden below).
    const fresh = readdirSync(dir).filter(
      (file) => file.endsWith('.golden') && !/^(rerun|cleanup)/.test(file),
    );
    const families = new Map<string, Family[]>();
    for (const file of fresh) {
      const [, name = '', family] = /^(.*)\.(ipv4|ipv6)\.golden$/.exec(file) ?? [];
      families.set(name, [...(families.get(name) ?? []), family as Family].sort());
    }
    expect(families.size).toBeGreaterThan(25);
    for (const [name, wanted] of families) {
      expect(NFT_GOLDEN.find((c) => c.name === name)?.families, name).toEqual(wanted);
    }
  });
});

/** Which family a rendered rule is limited to, by its own matches; undefined when none. */
function limitedTo(rule: NftRule): Family | undefined {
  for (const term of rule.matches) {
    if (/^meta nfproto ipv4$|^ip (saddr|daddr) /.test(term)) return 'ipv4';
    if (/^meta nfproto ipv6$|^ip6 (saddr|daddr) /.test(term)) return 'ipv6';
  }
  return undefined;
}

/** The rule without the limit to its family, and with nft's family-free tproxy: what a family "sees". */
const seen = (rule: NftRule) =>
  JSON.stringify({
    matches: rule.matches.filter((m) => !m.startsWith('meta nfproto ')),
    actions: rule.actions.map((a) => a.replace(/^tproxy ip6? to/, 'tproxy to')),
    comment: rule.comment,
  });

/**
 * What packets of one family go through in an inet table: from the base chains,
 * the rules not limited to the other family, following their jumps.
 */
function walk(table: NftTable, family: Family): Map<string, string[]> {
  const reached = new Map<string, string[]>();
  const visit = (name: string) => {
    if (reached.has(name)) return;
    const chain = table.chains.find((c) => c.name === name);
    const rules = (chain?.rules ?? []).filter((r) => (limitedTo(r) ?? family) === family);
    reached.set(name, rules.map(seen));
    for (const rule of rules) {
      for (const action of rule.actions) if (action.startsWith('jump ')) visit(action.slice(5));
    }
  };
  for (const chain of table.chains.filter((c) => c.base !== undefined)) visit(chain.name);
  return reached;
}

/** What the family's own plan says, chain by chain, walked the same way. */
function walkPlan(config: Config, family: Family, table: string): Map<string, string[]> {
  const names = namesFor(config.chainPrefix);
  const plan = planTables(config, family).find((p) => names.table(p.table) === table);
  const chains = new Map<string, string[]>();
  const nftName = (key: string) => key.replace(/^builtin:(.*)$/, (_, b: string) => b.toLowerCase());
  for (const rule of plan?.rules ?? []) {
    const key =
      rule.chain.kind === 'builtin' ? `builtin:${rule.chain.name}` : names.chain(rule.chain.name);
    const name = nftName(key);
    chains.set(name, [...(chains.get(name) ?? []), seen(renderRule(rule, names, undefined))]);
  }
  const reached = new Map<string, string[]>();
  const visit = (name: string) => {
    if (reached.has(name)) return;
    reached.set(name, chains.get(name) ?? []);
    for (const rule of plan?.rules ?? []) {
      const from =
        rule.chain.kind === 'builtin'
          ? rule.chain.name.toLowerCase()
          : names.chain(rule.chain.name);
      if (from === name && rule.target.kind === 'jump') visit(names.chain(rule.target.chain));
    }
  };
  for (const name of ['prerouting', 'output']) if (chains.has(name)) visit(name);
  return reached;
}

const nonEmpty = (chains: Map<string, string[]>) =>
  new Map([...chains].filter(([, rules]) => rules.length > 0));

describe('both families in one inet table', () => {
  it.each(NFT_GOLDEN)(
    '$name: each family goes through exactly its own plan, in order',
    async ({ argv, resolvConf }) => {
      const config = await configOf(argv, resolvConf);
      for (const families of [['ipv4'], ['ipv4', 'ipv6']] as Family[][]) {
        const plan = planInet(config, families);
        for (const family of ['ipv4', 'ipv6'] as Family[]) {
          const captured = families.includes(family);
          for (const table of plan.tables) {
            const got = walk(table, family);
            if (!captured) {
              // Not captured: the base chains let it through untouched.
              expect([...got.values()].flat(), `${table.name} ${family}`).toEqual([]);
              continue;
            }
            expect(nonEmpty(got), `${table.name} ${family}`).toEqual(
              nonEmpty(walkPlan(config, family, table.name)),
            );
          }
        }
      }
    },
  );

  it('mergeFamilies keeps each list in its order, shared items once (property)', () => {
    const list = fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { maxLength: 12 });
    fc.assert(
      fc.property(list, list, (ipv4, ipv6) => {
        const merged = mergeFamilies(ipv4, ipv6, (x) => x);
        const of = (family: Family) =>
          merged.filter((m) => m.family === 'both' || m.family === family).map((m) => m.item);
        expect(of('ipv4')).toEqual(ipv4);
        expect(of('ipv6')).toEqual(ipv6);
        // Shared as much as can be: the longest common subsequence.
        const shared = merged.filter((m) => m.family === 'both').length;
        expect(merged.length).toBe(ipv4.length + ipv6.length - shared);
      }),
      { numRuns: 500 },
    );
  });

  it("between shared rules, one family's rule and the other's take turns (Istio's look)", () => {
    const merged = mergeFamilies(['p4', 'u4', 'x'], ['p6', 'u6', 'x'], (s) => s);
    expect(merged).toEqual([
      { item: 'p4', family: 'ipv4' },
      { item: 'p6', family: 'ipv6' },
      { item: 'u4', family: 'ipv4' },
      { item: 'u6', family: 'ipv6' },
      { item: 'x', family: 'both' },
    ]);
  });

  it('a single-stack pod limits only the jumps from the base chains to its family', async () => {
    const script = await scriptOf(ISTIO_INJECTOR, ['ipv4']);
    const limited = script.split('\n').filter((line) => line.includes('meta nfproto'));
    expect(limited).toEqual([
      'add rule inet istio-proxy-nat prerouting meta nfproto ipv4 meta l4proto tcp counter jump istio-inbound comment "mesh-init: inbound TCP is checked for capture"',
      'add rule inet istio-proxy-nat output meta nfproto ipv4 meta l4proto tcp counter jump istio-output comment "mesh-init: outbound TCP is checked for capture"',
    ]);
  });

  it('a rule of one family in a chain both reach is limited to it; one with an address needs nothing more', async () => {
    const script = await scriptOf(['--redirect-dns'], ['ipv4', 'ipv6'], 'nameserver 10.96.0.10\n');
    expect(script).toContain(
      'add rule inet istio-proxy-nat istio-output meta nfproto ipv4 counter jump istio-output-dns comment',
    );
    expect(script).toContain(
      'add rule inet istio-proxy-nat istio-output-dns meta l4proto udp udp dport 53 ip daddr 10.96.0.10 counter redirect to :15053',
    );
    // IPv6 has no resolver: its OUTPUT jump stays TCP only.
    expect(script).toContain(
      'add rule inet istio-proxy-nat output meta nfproto ipv6 meta l4proto tcp counter jump istio-output comment',
    );
  });
});

describe('names, hooks and terms', () => {
  it("the default prefix gives Istio's tables, chains, hooks and priorities", async () => {
    const script = await scriptOf(
      [...TPROXY_INJECTOR, '--redirect-dns', '--drop-invalid'],
      ['ipv4', 'ipv6'],
      RESOLV_CONF,
    );
    const chains = script.split('\n').filter((line) => line.startsWith('add chain '));
    // Inbound capture is mangle's with TPROXY: nat's prerouting has nothing to do.
    expect(chains).toEqual([
      'add chain inet istio-proxy-nat output { type nat hook output priority -100; policy accept; }',
      'add chain inet istio-proxy-nat istio-inbound',
      'add chain inet istio-proxy-nat istio-redirect',
      'add chain inet istio-proxy-nat istio-in-redirect',
      'add chain inet istio-proxy-nat istio-output',
      'add chain inet istio-proxy-nat istio-output-dns',
      'add chain inet istio-proxy-mangle prerouting { type filter hook prerouting priority -150; policy accept; }',
      'add chain inet istio-proxy-mangle output { type route hook output priority -150; policy accept; }',
      'add chain inet istio-proxy-mangle istio-drop',
      'add chain inet istio-proxy-mangle istio-divert',
      'add chain inet istio-proxy-mangle istio-tproxy',
      'add chain inet istio-proxy-mangle istio-inbound',
      'add chain inet istio-proxy-mangle istio-output',
      'add chain inet istio-proxy-raw prerouting { type filter hook prerouting priority -300; policy accept; }',
      'add chain inet istio-proxy-raw output { type filter hook output priority -300; policy accept; }',
      'add chain inet istio-proxy-raw istio-output-dns',
      'add chain inet istio-proxy-raw istio-inbound',
    ]);
  });

  it.each([
    ['MESH_', 'mesh-proxy-nat', 'mesh-in-redirect'],
    ['ABCDEFGHIJKLMNOP', 'abcdefghijklmnopproxy-nat', 'abcdefghijklmnopin-redirect'],
    ['m-', 'm-proxy-nat', 'm-in-redirect'],
  ])('--chain-prefix %s names the table %s and a chain %s', (prefix, table, chain) => {
    const names = namesFor(prefix);
    expect(names.table('nat')).toBe(table);
    expect(names.chain('IN_REDIRECT')).toBe(chain);
    // The same prefix as the iptables chains, nft's way.
    expect(chainName(prefix, 'IN_REDIRECT').toLowerCase().replaceAll('_', '-')).toBe(chain);
  });

  it("a base chain exists only where a jump needs it, as in Istio's", async () => {
    const script = await scriptOf(['-b', ''], ['ipv4']);
    expect(script).not.toContain('istio-proxy-nat prerouting');
    expect(script).toContain('add chain inet istio-proxy-nat output {');
  });

  it('interface wildcards are nft\'s: eth+ is "eth*"', async () => {
    const script = await scriptOf(['-c', 'veth+,eth0'], ['ipv4']);
    expect(script).toContain('oifname "veth*" counter return');
    expect(script).toContain('oifname "eth0" counter return');
  });

  it('every comment fits nft (at most 128 bytes, no double quote)', async () => {
    const script = await scriptOf(
      [...TPROXY_INJECTOR, '--redirect-dns', '--drop-invalid', '-k', 'eth1', '-c', 'eth2'],
      ['ipv4', 'ipv6'],
      RESOLV_CONF,
    );
    const comments = [...script.matchAll(/ comment "([^"]*)"$/gm)].map((m) => m[1] ?? '');
    expect(comments.length).toBe(script.split('\n').filter((l) => l.startsWith('add rule')).length);
    for (const comment of comments) expect(Buffer.byteLength(comment)).toBeLessThanOrEqual(128);
  });
});

describe('replacing the tables in one transaction', () => {
  it('each table is added, deleted and made anew; the unplanned ones only deleted', async () => {
    const lines = (await scriptOf(['--drop-invalid'], ['ipv4'])).split('\n');
    const tables = lines.filter((l) =>
      /^(add|delete|create) (table|chain inet \S+ istio-tproxy)/.test(l),
    );
    expect(tables).toEqual([
      'add table inet istio-proxy-nat',
      'delete table inet istio-proxy-nat',
      'add table inet istio-proxy-nat',
      'add table inet istio-proxy-mangle',
      'create chain inet istio-proxy-mangle istio-tproxy',
      'delete table inet istio-proxy-mangle',
      'add table inet istio-proxy-mangle',
      'add table inet istio-proxy-raw',
      'delete table inet istio-proxy-raw',
    ]);
    // Nothing but mesh-init's own tables is named.
    expect(
      lines.filter(
        (l) => /^(add|delete|create) /.test(l) && !/ inet istio-proxy-(nat|mangle|raw)\b/.test(l),
      ),
    ).toEqual([]);
  });

  it('checks for an earlier TPROXY chain only where the plan has none, and never in cleanup', async () => {
    expect(await scriptOf(['-m', 'TPROXY'], ['ipv4'])).not.toContain('create chain');
    expect(await scriptOf(['-m', 'TPROXY', '-b', ''], ['ipv4'])).toContain(
      'create chain inet istio-proxy-mangle istio-tproxy',
    );
    const plan = planInet(await configOf([]), ['ipv4']);
    expect(renderScript(plan, false)).toBe(
      renderScript(plan)
        .split('\n')
        .filter((l) => !l.startsWith('create chain') && !l.startsWith('# fails'))
        .join('\n'),
    );
  });

  it('cleanup deletes exactly the three tables (golden)', async () => {
    const script = await scriptOf(
      ['--cleanup', '-m', 'TPROXY', '--redirect-dns'],
      ['ipv4', 'ipv6'],
    );
    await expect(script).toMatchFileSnapshot('../../golden/nftables/cleanup.golden');
    expect(script.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual(
      ['nat', 'mangle', 'raw'].flatMap((t) => [
        `add table inet istio-proxy-${t}`,
        `delete table inet istio-proxy-${t}`,
      ]),
    );
  });
});
