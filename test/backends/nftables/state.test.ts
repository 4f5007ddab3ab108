/**
 * Reading `nft -j list ruleset inet` as data, from real output (nft 1.0.6, a
 * network namespace): the fixtures under test/fixtures/nftables were captured after
 * applying a config with the bundle, next to a foreign inet table ("foreign") and
 * an iptables-nft rule (an ip-family table, which `list ruleset inet` leaves out);
 * scripts/fixtures.mjs retakes them so:
 *
 * - all-features.json: `--native-nftables --ipv6 true` + Istio's TPROXY injector
 *   argv, `--redirect-dns --drop-invalid`, resolv.conf with 10.96.0.10 and fd00:10:96::a;
 * - ipv6-resolver-interfaces.json: then `--redirect-dns -c veth+ -o 22 -u 1337,0 -k
 *   eth1 -i 10.96.0.0/12,fd00::/64`, resolv.conf `nameserver ::127.0.0.53`;
 * - drifted.json: that, after `nft delete rule` (IPv4's localhost RETURN, `ip daddr
 *   127.0.0.1 return`), `nft insert rule … istio-output tcp dport 9 return`, `nft add
 *   chain … extra` and `nft add table inet istio-proxy-mangle`;
 * - trixie-tproxy-interfaces.json: nft 1.1.3 in the image (`docker run --network none`,
 *   IPv6 on),
 *   `--native-nftables --ipv6 true -m TPROXY --drop-invalid -c veth+ -k eth1
 *   -i 10.0.0.0/8,fd00::/8 -d 22 -o 53 -q 443`.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalRule, findDrift } from '../../../src/backends/nftables/drift.js';
import { planInet } from '../../../src/backends/nftables/render.js';
import { parseRuleset } from '../../../src/backends/nftables/state.js';
import type { Family } from '../../../src/config/net.js';
import { configFrom, withResolvConf } from '../../config-from.js';
import { ALL_FEATURES as ALL_FEATURES_ARGV } from '../../golden-configs.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/nftables/${name}`, import.meta.url), 'utf8');
const OURS = ['istio-proxy-nat', 'istio-proxy-mangle', 'istio-proxy-raw'];
const BOTH: Family[] = ['ipv4', 'ipv6'];

const ALL_FEATURES = {
  argv: ALL_FEATURES_ARGV,
  resolvConf: 'nameserver 10.96.0.10\nnameserver fd00:10:96::a\nnameserver 10.96.0.11#53\n',
};
const INTERFACES = {
  argv: [
    ...['--redirect-dns', '-c', 'veth+', '-o', '22', '-u', '1337,0', '-k', 'eth1'],
    ...['-i', '10.96.0.0/12,fd00::/64'],
  ],
  resolvConf: 'nameserver ::127.0.0.53\n',
};
const planOf = async ({ argv, resolvConf }: { argv: string[]; resolvConf: string }) =>
  planInet(withResolvConf(await configFrom(argv), resolvConf), BOTH);

describe('parseRuleset over real nft -j output', () => {
  it('finds only the tables asked for, in the order nft lists them', () => {
    const live = parseRuleset(fixture('all-features.json'), OURS);
    expect(live.map((t) => t.name)).toEqual(OURS);
    expect(parseRuleset(fixture('all-features.json'), ['foreign']).map((t) => t.name)).toEqual([
      'foreign',
    ]);
  });

  it('reads base chains with their hook, priority and policy; other chains without', () => {
    const [nat] = parseRuleset(fixture('all-features.json'), ['istio-proxy-nat']);
    expect(nat?.chains.map((c) => [c.name, c.base])).toEqual([
      ['output', { type: 'nat', hook: 'output', priority: -100, policy: 'accept' }],
      ['istio-inbound', undefined],
      ['istio-redirect', undefined],
      ['istio-in-redirect', undefined],
      ['istio-output', undefined],
      ['istio-output-dns', undefined],
    ]);
    const [mangle] = parseRuleset(fixture('all-features.json'), ['istio-proxy-mangle']);
    expect(mangle?.chains.find((c) => c.name === 'output')?.base).toEqual({
      type: 'route',
      hook: 'output',
      priority: -150,
      policy: 'accept',
    });
  });

  it("reads each expression in the script's terms (counters left out)", () => {
    const rules = parseRuleset(fixture('all-features.json'), OURS).flatMap((t) =>
      t.chains.flatMap((c) => c.rules.map((r) => `${c.name}: ${canonicalRule(r)}`)),
    );
    expect(rules).toEqual(
      expect.arrayContaining([
        'istio-drop: ct state invalid drop comment "mesh-init: a packet conntrack cannot place would skip NAT and so the proxy"',
        'istio-tproxy: ip daddr != 127.0.0.1 meta l4proto tcp tproxy ip to :15006 meta mark set 1337 accept comment "mesh-init: inbound TCP goes to the inbound capture port, destination kept"',
        'istio-inbound: meta l4proto tcp ct state established,related jump istio-divert comment "mesh-init: packets of established connections go straight to their socket"',
        'istio-inbound: meta l4proto tcp meta mark 1337 ct mark set meta mark comment "mesh-init: the proxy\'s connection to the app: replies must come back to the proxy"',
        'istio-output: meta l4proto tcp ct mark 1337 meta mark set ct mark comment "mesh-init: replies of the app to the proxy\'s connection go back to the proxy"',
        'istio-output-dns: udp sport 15053 meta skgid 1337 ct zone set 2 comment "mesh-init: the proxy\'s DNS answers to the apps are in zone 2"',
        'istio-output-dns: udp dport 53 ip6 daddr fd00:10:96::a redirect to :15053 comment "mesh-init: DNS to a resolver of /etc/resolv.conf goes to the DNS port"',
      ]),
    );
    expect(rules.join('\n')).not.toMatch(/counter|json /);
  });

  it('reads wildcards, prefixes and dotted-quad IPv6 addresses as the plan writes them', () => {
    const rules = parseRuleset(fixture('ipv6-resolver-interfaces.json'), OURS).flatMap((t) =>
      t.chains.flatMap((c) => c.rules.map(canonicalRule)),
    );
    expect(rules).toEqual(
      expect.arrayContaining([
        'oifname "veth*" return comment "mesh-init: interface excluded by --exclude-interfaces"',
        // nft prints ::127.0.0.53; ipaddr.js, and so the plan, ::7f00:35.
        'udp dport 53 ip6 daddr ::7f00:35 redirect to :15053 comment "mesh-init: DNS to a resolver of /etc/resolv.conf goes to the DNS port"',
        'meta l4proto tcp iifname "eth1" ip6 daddr fd00::/64 jump istio-redirect comment "mesh-init: TCP from a --kube-virt-interfaces interface is outbound traffic"',
      ]),
    );
  });

  it('keeps what it does not know, spelled as JSON, instead of dropping it', () => {
    const text = JSON.stringify({
      nftables: [
        { table: { family: 'inet', name: 'istio-proxy-nat', handle: 1 } },
        { chain: { family: 'inet', table: 'istio-proxy-nat', name: 'istio-output', handle: 2 } },
        {
          rule: {
            family: 'inet',
            table: 'istio-proxy-nat',
            chain: 'istio-output',
            handle: 3,
            expr: [
              { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
              { log: { prefix: 'x' } },
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: 'tcp', field: 'dport' } },
                  right: { set: [15008, 53] },
                },
              },
              { match: { op: '<', left: { meta: { key: 'mark' } }, right: 5 } },
              { accept: null },
            ],
          },
        },
      ],
    });
    const [table] = parseRuleset(text, OURS);
    expect(table?.chains[0]?.rules[0]).toEqual({
      matches: ['meta l4proto tcp', 'tcp dport { 53, 15008 }', 'meta mark < 5'],
      actions: ['json {"log":{"prefix":"x"}}', 'accept'],
      comment: '',
    });
  });

  it.each(['', '{}', '[]', '{"nftables": {}}'])('throws on what is not nft JSON: %j', (text) => {
    expect(() => parseRuleset(text, OURS)).toThrow();
  });
});

describe('findDrift', () => {
  const TRIXIE = {
    argv: [
      ...['-m', 'TPROXY', '--drop-invalid', '-c', 'veth+', '-k', 'eth1'],
      ...['-i', '10.0.0.0/8,fd00::/8', '-d', '22', '-o', '53', '-q', '443'],
    ],
    resolvConf: '',
  };

  it.each([
    ['all-features.json', ALL_FEATURES],
    ['ipv6-resolver-interfaces.json', INTERFACES],
    ['trixie-tproxy-interfaces.json', TRIXIE],
  ])('%s reads back exactly as planned: no drift', async (file, config) => {
    expect(findDrift(await planOf(config), parseRuleset(fixture(file), OURS))).toEqual([]);
  });

  it('a rule gone, a foreign rule, a chain and a table not planned are drift', async () => {
    expect(
      findDrift(await planOf(INTERFACES), parseRuleset(fixture('drifted.json'), OURS)),
    ).toEqual([
      'inet istio-proxy-nat istio-output:',
      '  - tcp dport 9 return',
      '  + ip daddr 127.0.0.1 return comment "mesh-init: localhost traffic inside the pod is not intercepted"',
      'inet istio-proxy-nat: chain extra is not planned',
      'inet istio-proxy-mangle: table is not planned (a run with these flags deletes it)',
    ]);
  });

  it('another config over the same tables: the difference, chain by chain', async () => {
    const plan = await planOf({
      argv: ALL_FEATURES.argv.filter((a) => a !== '--drop-invalid'),
      resolvConf: ALL_FEATURES.resolvConf,
    });
    const drift = findDrift(plan, parseRuleset(fixture('all-features.json'), OURS));
    expect(drift).toEqual([
      'inet istio-proxy-mangle prerouting:',
      '  - jump istio-drop comment "mesh-init: invalid packets are dropped (--drop-invalid)"',
      'inet istio-proxy-mangle: chain istio-drop is not planned',
      'inet istio-proxy-mangle istio-drop:',
      '  - ct state invalid drop comment "mesh-init: a packet conntrack cannot place would skip NAT and so the proxy"',
    ]);
  });

  it('missing tables and chains, other hooks and rules in another order', async () => {
    const plan = await planOf(ALL_FEATURES);
    const live = parseRuleset(fixture('all-features.json'), OURS)
      .filter((t) => t.name !== 'istio-proxy-raw')
      .map((t) => ({
        ...t,
        chains: t.chains
          .filter((c) => c.name !== 'istio-divert')
          .map((c) =>
            c.name === 'output' && t.name === 'istio-proxy-mangle'
              ? { ...c, base: { type: 'filter', hook: 'output', priority: 0, policy: 'accept' } }
              : c.name === 'istio-output' && t.name === 'istio-proxy-nat'
                ? { ...c, rules: [...c.rules].reverse() }
                : c,
          ),
      }));
    expect(findDrift(plan, live)).toEqual([
      'inet istio-proxy-nat istio-output:',
      '  rules in another order',
      'inet istio-proxy-mangle: chain output: type filter hook output priority 0 policy accept, planned type route hook output priority -150 policy accept',
      'inet istio-proxy-mangle: chain istio-divert is missing',
      'inet istio-proxy-raw: table is missing',
    ]);
  });

  it("nft's implied matches are no drift: l4proto before a port, nfproto beside an address", () => {
    const rule = (matches: string[]) => ({ matches, actions: ['return'], comment: 'c' });
    expect(canonicalRule(rule(['meta l4proto tcp', 'tcp dport 53']))).toBe(
      canonicalRule(rule(['tcp dport 53'])),
    );
    expect(canonicalRule(rule(['meta nfproto ipv6', 'ip6 daddr ::1']))).toBe(
      canonicalRule(rule(['ip6 daddr ::1'])),
    );
    // Without the port or the address it says something of its own.
    expect(canonicalRule(rule(['meta l4proto tcp']))).not.toBe(canonicalRule(rule([])));
    expect(canonicalRule(rule(['meta nfproto ipv4', 'ip6 daddr ::1']))).toContain('nfproto');
  });
});
