/**
 * Reading iptables-save output. The fixtures are real iptables 1.8.9 output (see
 * render.test.ts); the nft one ends with the `# Warning:` line that iptables-nft-save
 * 1.8.4-1.8.7 print on stdout when legacy tables exist (1.8.8+ print it on stderr).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  countRules,
  EMPTY_STATE,
  parseTableState,
  tableSection,
  tokenize,
} from '../../../src/backends/iptables/state.js';
import type { Table } from '../../../src/plan/rules.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/iptables/${name}`, import.meta.url), 'utf8');

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

describe('parseTableState: nat', () => {
  it.each([['iptables-legacy-save.txt'], ['iptables-nft-save.txt'], ['iptables-nft-save-nat.txt']])(
    'reads only the nat table of %s',
    (name) => {
      const state = parseTableState(fixture(name), 'nat');
      expect(state.chains).toEqual(NAT_CHAINS);
      // Docker's and the CNI's 7, and mesh-init's 15 of its default plan (issue 14: the
      // tunnel port's RETURN, and a loopback RETURN per proxy UID and GID).
      expect(state.rules).toHaveLength(22);
      expect(state.rules.filter((r) => r.spec.includes('"mesh-init: '))).toHaveLength(15);
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
    const state = parseTableState(fixture('iptables-legacy-save.txt'), 'nat');
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
    const state = parseTableState(
      [
        '*nat',
        ':OUTPUT ACCEPT [0:0]',
        '-A OUTPUT -m comment --comment "was: -j ISTIO_OUTPUT" -j ACCEPT',
        '-A OUTPUT -m comment --comment "counts only"',
        '-A OUTPUT -p tcp -j REDIRECT --to-ports 15001',
        'COMMIT',
      ].join('\n'),
      'nat',
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
    expect(parseTableState(save, 'nat')).toEqual({
      chains: ['OUTPUT'],
      rules: [{ chain: 'OUTPUT', spec: '-j ISTIO_OUTPUT', target: 'ISTIO_OUTPUT' }],
    });
  });

  it('nothing to read is the empty state', () => {
    expect(parseTableState('', 'nat')).toEqual(EMPTY_STATE);
    expect(
      parseTableState(fixture('iptables-legacy-save.txt').split('*nat')[0] ?? '', 'nat'),
    ).toEqual(EMPTY_STATE);
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

describe('parseTableState', () => {
  it.each<[string, Table, string[], number]>([
    [
      'iptables-legacy-save-all-features.txt',
      'mangle',
      [
        ...['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
        ...['ISTIO_DIVERT', 'ISTIO_DROP_INVALID', 'ISTIO_INBOUND', 'ISTIO_OUTPUT', 'ISTIO_TPROXY'],
      ],
      20,
    ],
    [
      'iptables-nft-save-all-features.txt',
      'raw',
      ['PREROUTING', 'OUTPUT', 'ISTIO_INBOUND', 'ISTIO_OUTPUT_DNS'],
      8,
    ],
    [
      'ip6tables-legacy-save-all-features.txt',
      'nat',
      [
        ...['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
        ...[
          'ISTIO_INBOUND',
          'ISTIO_IN_REDIRECT',
          'ISTIO_OUTPUT',
          'ISTIO_OUTPUT_DNS',
          'ISTIO_REDIRECT',
        ],
      ],
      15,
    ],
    // Legacy lists a table only once it is in use: no raw table here.
    ['iptables-legacy-save.txt', 'raw', [], 0],
    [
      'iptables-legacy-save.txt',
      'mangle',
      ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
      1,
    ],
  ])('%s: the %s table alone', (name, table, chains, rules) => {
    const state = parseTableState(fixture(name), table);
    expect(state.chains).toEqual(chains);
    expect(state.rules).toHaveLength(rules);
  });

  it('the same chain name in two tables is two chains: each table reads only its own', () => {
    const dump = fixture('iptables-legacy-save-all-features.txt');
    const targets = (table: Table) =>
      parseTableState(dump, table)
        .rules.filter((r) => r.chain === 'ISTIO_INBOUND')
        .map((r) => r.target);
    expect(new Set(targets('nat'))).toEqual(new Set());
    expect(new Set(targets('mangle'))).toEqual(
      new Set(['CONNMARK', 'RETURN', 'ISTIO_DIVERT', 'ISTIO_TPROXY']),
    );
    expect(new Set(targets('raw'))).toEqual(new Set(['CT']));
  });
});

describe('tableSection', () => {
  /** The `*TABLE … COMMIT` lines of a dump, as iptables-save printed them. */
  const linesOf = (dump: string, table: Table) =>
    new RegExp(`^\\*${table}\\n[\\s\\S]*?^COMMIT\\n`, 'm').exec(dump)?.[0];

  it('takes one table out of a whole dump, without comments or other tables', () => {
    const dump = [
      '# Generated by iptables-save v1.8.9 on Thu Nov 26 00:04:24 2026',
      '*mangle',
      ':PREROUTING ACCEPT [0:0]',
      '-A PREROUTING -j ISTIO_DROP_INVALID',
      'COMMIT',
      '# Completed on Thu Nov 26 00:04:24 2026',
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':ISTIO_OUTPUT - [0:0]',
      '-A PREROUTING -j ISTIO_OUTPUT',
      'COMMIT',
      '# Completed on Thu Nov 26 00:04:24 2026',
      '*filter',
      ':INPUT ACCEPT [0:0]',
      '-A INPUT -j ACCEPT',
      'COMMIT',
      '',
    ].join('\n');
    expect(tableSection(dump, 'nat')).toBe(
      '*nat\n:PREROUTING ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n-A PREROUTING -j ISTIO_OUTPUT\nCOMMIT\n',
    );
    expect(tableSection(dump, 'mangle')).toBe(
      '*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ISTIO_DROP_INVALID\nCOMMIT\n',
    );
    expect(tableSection(dump, 'raw')).toBe('*raw\nCOMMIT\n');
  });

  const REAL: readonly [string, Table][] = [
    ['iptables-legacy-save.txt', 'nat'],
    ['iptables-legacy-save.txt', 'mangle'],
    ['iptables-nft-save.txt', 'nat'],
    ['iptables-nft-save-nat.txt', 'nat'],
    ['ip6tables-nft-save-nat.txt', 'nat'],
    ['iptables-legacy-save-nat-varied.txt', 'nat'],
    ...(['nat', 'mangle', 'raw'] as const).flatMap((table): [string, Table][] => [
      ['iptables-legacy-save-all-features.txt', table],
      ['ip6tables-nft-save-all-features.txt', table],
    ]),
  ];
  it.each(REAL)('over the real %s: exactly its *%s … COMMIT lines', (name, table) => {
    const dump = fixture(name);
    const section = tableSection(dump, table);
    expect(section).toBe(linesOf(dump, table));
    expect(section.match(/^COMMIT$/gm)).toHaveLength(1);
    expect(section).not.toMatch(new RegExp(`^[#]|^\\*(?!${table}$)`, 'm'));
    expect(parseTableState(section, table)).toEqual(parseTableState(dump, table));
  });

  // A section cut off before its COMMIT is closed, not dropped: restoring an empty
  // text would put nothing back while the rollback says it did.
  it.each([
    ['at the end of the dump', '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ISTIO_OUTPUT\n'],
    ['without a last newline', '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ISTIO_OUTPUT'],
    [
      'after another table',
      '*mangle\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ISTIO_OUTPUT\n\n',
    ],
    [
      'before another table',
      '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ISTIO_OUTPUT\n*raw\nCOMMIT\n',
    ],
  ])('a section without COMMIT (%s) is closed with one', (_name, dump) => {
    const section = tableSection(dump, 'nat');
    expect(section).toBe('*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ISTIO_OUTPUT\nCOMMIT\n');
    expect(parseTableState(section, 'nat')).toEqual(parseTableState(dump, 'nat'));
  });

  // Restoring it without --noflush empties the table: it was empty (or not there) when read.
  it.each<[string, string, Table]>([
    ['an empty dump', '', 'nat'],
    ['a dump of the filter table only', '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', 'nat'],
    ['only a warning', '# Warning: iptables-legacy tables present\n', 'nat'],
    ['a legacy dump without raw', fixture('iptables-legacy-save.txt'), 'raw'],
    ['an nft dump without mangle', fixture('iptables-nft-save.txt'), 'mangle'],
  ])('%s: an empty %s table', (_name, dump, table) => {
    expect(tableSection(dump, table)).toBe(`*${table}\nCOMMIT\n`);
  });
});

describe('countRules', () => {
  it.each([
    ['iptables-legacy-save.txt', 25],
    ['iptables-nft-save.txt', 23],
    ['iptables-nft-save-nat.txt', 22],
    ['ip6tables-nft-save-nat.txt', 17],
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
