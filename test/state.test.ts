/**
 * Reading iptables-save output. The fixtures are real iptables 1.8.9 output (see
 * render.test.ts); the nft one ends with the `# Warning:` line that iptables-nft-save
 * 1.8.4-1.8.7 print on stdout when legacy tables exist (1.8.8+ print it on stderr).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { countRules, EMPTY_STATE, parseNatState, tokenize } from '../src/state.js';

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

/** The nat table every fixture holds: Docker's DNS rules, a CNI rule and mesh-init's default rules. */
const NAT_CHAINS = [
  'PREROUTING',
  'INPUT',
  'OUTPUT',
  'POSTROUTING',
  'DOCKER_OUTPUT',
  'DOCKER_POSTROUTING',
  'ISTIO_INBOUND',
  'ISTIO_IN_REDIRECT',
  'ISTIO_OUTPUT',
  'ISTIO_REDIRECT',
];

describe('parseNatState', () => {
  it.each([['iptables-legacy-save.txt'], ['iptables-nft-save.txt'], ['iptables-nft-save-nat.txt']])(
    'reads only the nat table of %s',
    (name) => {
      const state = parseNatState(fixture(name));
      expect(state.chains).toEqual(NAT_CHAINS);
      expect(state.rules).toHaveLength(19);
      // The filter and mangle tables have rules in INPUT/OUTPUT/PREROUTING; none leak in.
      expect(state.rules.map((r) => r.target)).not.toContain('ACCEPT');
      expect(state.rules.map((r) => r.target)).not.toContain('MARK');
      expect(state.rules.filter((r) => r.chain === 'PREROUTING' || r.chain === 'OUTPUT')).toEqual([
        {
          chain: 'PREROUTING',
          spec: '-p tcp -m comment --comment "mesh-init: inbound TCP is checked for capture" -j ISTIO_INBOUND',
          target: 'ISTIO_INBOUND',
        },
        { chain: 'OUTPUT', spec: '-d 127.0.0.11/32 -j DOCKER_OUTPUT', target: 'DOCKER_OUTPUT' },
        {
          chain: 'OUTPUT',
          spec: '-p tcp -m comment --comment "mesh-init: outbound TCP is checked for capture" -j ISTIO_OUTPUT',
          target: 'ISTIO_OUTPUT',
        },
      ]);
    },
  );

  it('keeps a spec exactly as printed, escaped quotes included, for a later -D', () => {
    const state = parseNatState(fixture('iptables-legacy-save.txt'));
    expect(state.rules).toContainEqual({
      chain: 'POSTROUTING',
      spec: '-s 10.244.0.0/16 -m comment --comment "cni: masquerade \\"pod\\" traffic" -j MASQUERADE',
      target: 'MASQUERADE',
    });
    expect(state.rules).toContainEqual({
      chain: 'DOCKER_OUTPUT',
      spec: '-d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:35915',
      target: 'DNAT',
    });
  });

  it('the target is the token after the last -j, outside quotes', () => {
    const state = parseNatState(
      [
        '*nat',
        ':OUTPUT ACCEPT [0:0]',
        '-A OUTPUT -m comment --comment "was: -j ISTIO_OUTPUT" -j ACCEPT',
        '-A OUTPUT -m comment --comment "counts only"',
        '-A OUTPUT -p tcp -j REDIRECT --to-ports 15001',
        'COMMIT',
      ].join('\n'),
    );
    expect(state.rules.map((r) => r.target)).toEqual(['ACCEPT', undefined, 'REDIRECT']);
  });

  it('ignores tables other than nat, whatever their order, and # lines', () => {
    const save = [
      '# Warning: iptables-legacy tables present, use iptables-legacy-save to see them',
      '*raw',
      ':OUTPUT ACCEPT [0:0]',
      '-A OUTPUT -j CT --notrack',
      'COMMIT',
      '*nat',
      ':OUTPUT ACCEPT [0:0]',
      "# Table `nat' is incompatible, use 'nft' tool.",
      '-A OUTPUT -j ISTIO_OUTPUT',
      'COMMIT',
      '*filter',
      ':OUTPUT ACCEPT [0:0]',
      ':ISTIO_OUTPUT - [0:0]',
      '-A OUTPUT -j ISTIO_OUTPUT',
      'COMMIT',
      '# Warning: iptables-legacy tables present, use iptables-legacy-save to see them',
    ].join('\n');
    expect(parseNatState(save)).toEqual({
      chains: ['OUTPUT'],
      rules: [{ chain: 'OUTPUT', spec: '-j ISTIO_OUTPUT', target: 'ISTIO_OUTPUT' }],
    });
  });

  it('nothing to read is the empty state', () => {
    expect(parseNatState('')).toEqual(EMPTY_STATE);
    expect(parseNatState(fixture('iptables-legacy-save.txt').split('*nat')[0] ?? '')).toEqual(
      EMPTY_STATE,
    );
  });
});

describe('tokenize', () => {
  it.each<[string, string[]]>([
    ['', []],
    ['   ', []],
    ['-A OUTPUT -j RETURN', ['-A', 'OUTPUT', '-j', 'RETURN']],
    ['  -A   OUTPUT\t-j  RETURN  ', ['-A', 'OUTPUT', '-j', 'RETURN']],
    ['--comment "two words"', ['--comment', 'two words']],
    ['--comment "tab\tinside"', ['--comment', 'tab\tinside']],
    ['--comment "say \\"hi\\" twice"', ['--comment', 'say "hi" twice']],
    ['--comment ""', ['--comment', '']],
    ['--comment "a"b" c"', ['--comment', 'ab c']],
    ['a\\ b c', ['a b', 'c']],
    ['back\\\\slash', ['back\\slash']],
    ['trailing\\', ['trailing\\']],
    [
      '-A POSTROUTING -m comment --comment "cni: masquerade \\"pod\\" traffic" -j MASQUERADE',
      [
        '-A',
        'POSTROUTING',
        '-m',
        'comment',
        '--comment',
        'cni: masquerade "pod" traffic',
        '-j',
        'MASQUERADE',
      ],
    ],
  ])('%j', (line, tokens) => {
    expect(tokenize(line)).toEqual(tokens);
  });
});

describe('countRules', () => {
  it.each([
    ['iptables-legacy-save.txt', 22],
    ['iptables-nft-save.txt', 20],
    ['iptables-nft-save-nat.txt', 19],
    ['ip6tables-nft-save-nat.txt', 14],
  ])('%s holds %i rules in all its tables', (name, rules) => {
    expect(countRules(fixture(name))).toBe(rules);
  });

  it('counts only -A lines', () => {
    expect(countRules('')).toBe(0);
    expect(
      countRules(
        [
          '# -A commented out',
          '*nat',
          ':OUTPUT ACCEPT [0:0]',
          '-A OUTPUT -j RETURN',
          ' -A indented is not iptables-save output',
          'COMMIT',
        ].join('\n'),
      ),
    ).toBe(1);
  });
});
