/**
 * The fake kernel the apply tests run against: it must refuse what the kernel
 * refuses, or those tests would pass on texts a real pod rejects. The ip answers
 * are the ones Linux 6.18 and iproute2 gave in a throw-away network namespace.
 */
import { describe, expect, it } from 'vitest';
import { type Call, FakeKernel, type FakeOptions, fixture, type Setup } from './fake-system.js';

const restore = (file: string, input: string, args = ['--noflush']): Call => ({
  file,
  args,
  input,
});
const ip = (...args: string[]): Call => ({ file: 'ip', args, input: undefined });
const lines = (...text: string[]) => `${text.join('\n')}\n`;

describe('fake kernel: *-restore', () => {
  const MANGLE = ['*mangle', ':ISTIO_TPROXY - [0:0]', ':ISTIO_INBOUND - [0:0]'];

  it.each<[string, string, string]>([
    [
      'REDIRECT outside nat',
      lines(...MANGLE, '-A ISTIO_INBOUND -p tcp -j REDIRECT --to-ports 1', 'COMMIT'),
      'line 4 failed',
    ],
    [
      'TPROXY outside mangle',
      lines('*nat', '-A PREROUTING -p tcp -j TPROXY --on-port 1', 'COMMIT'),
      'line 2 failed',
    ],
    ['CT outside raw', lines('*mangle', '-A OUTPUT -j CT --zone 1', 'COMMIT'), 'line 2 failed'],
    ['DROP in nat', lines('*nat', '-A OUTPUT -j DROP', 'COMMIT'), 'line 2 failed'],
    ['a chain raw does not have', lines('*raw', '-A INPUT -j ACCEPT', 'COMMIT'), 'line 2 failed'],
    ['declaring it', lines('*raw', ':INPUT ACCEPT [0:0]', 'COMMIT'), 'line 2 failed'],
    [
      'a jump to a kernel chain',
      lines('*nat', '-A OUTPUT -j PREROUTING', 'COMMIT'),
      'line 2 failed',
    ],
    ['an unknown table', lines('*bogus', 'COMMIT'), 'line 1 failed'],
    ['no COMMIT', lines('*nat', ':ISTIO_OUTPUT - [0:0]'), 'line 3 failed'],
    [
      'TPROXY reached from OUTPUT (the kernel checks the hooks when the table is replaced)',
      lines(
        ...MANGLE,
        '-A ISTIO_TPROXY -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff',
        '-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY',
        '-A OUTPUT -p tcp -j ISTIO_INBOUND',
        'COMMIT',
      ),
      'line 7 failed',
    ],
    [
      'REDIRECT reached from POSTROUTING',
      lines(
        '*nat',
        ':X - [0:0]',
        '-A X -p tcp -j REDIRECT --to-ports 1',
        '-A POSTROUTING -j X',
        'COMMIT',
      ),
      'line 5 failed',
    ],
  ])('refuses %s, changing nothing', (_name, input, why) => {
    const kernel = new FakeKernel({ 'legacy/ipv4': '' });
    const answer = kernel.run(restore('iptables-legacy-restore', input));
    expect(answer?.exitCode).toBe(1);
    expect(answer?.stderr).toContain(why);
    expect(kernel.saveText('legacy/ipv4')).toBe('');
  });

  it('takes TPROXY reached from PREROUTING only, and REDIRECT from OUTPUT', () => {
    const kernel = new FakeKernel({});
    const mangle = lines(
      ...MANGLE,
      '-A ISTIO_TPROXY -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff',
      '-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      'COMMIT',
    );
    expect(kernel.run(restore('iptables-nft-restore', mangle))?.exitCode).toBe(0);
    const nat = lines(
      '*nat',
      ':X - [0:0]',
      '-A X -p tcp -j REDIRECT --to-ports 1',
      '-A OUTPUT -j X',
      'COMMIT',
    );
    expect(kernel.run(restore('iptables-nft-restore', nat))?.exitCode).toBe(0);
    expect(kernel.tableNames('nft/ipv4')).toEqual(['mangle', 'nat']);
  });

  it('one transaction per table: an earlier COMMIT stays when a later table fails', () => {
    const kernel = new FakeKernel({});
    const input = lines(
      '*nat',
      ':A - [0:0]',
      'COMMIT',
      '*mangle',
      ':B - [0:0]',
      '-A B -j NOWHERE',
      'COMMIT',
    );
    expect(kernel.run(restore('iptables-nft-restore', input))).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'iptables-nft-restore: line 6 failed: No chain/target/match by that name.\n',
    });
    expect(kernel.tableText('nft/ipv4', 'nat')).toContain(':A - [0:0]');
    expect(kernel.tableText('nft/ipv4', 'mangle')).toBe('');
  });

  it('without --noflush a table starts from its empty kernel chains; the others stay', () => {
    const kernel = new FakeKernel({ 'legacy/ipv4': fixture('iptables-legacy-save.txt') });
    expect(
      kernel.run(restore('iptables-legacy-restore', lines('*mangle', 'COMMIT'), []))?.exitCode,
    ).toBe(0);
    expect(kernel.tableText('legacy/ipv4', 'mangle')).toBe(
      lines(
        '*mangle',
        ...['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].map(
          (c) => `:${c} ACCEPT [0:0]`,
        ),
        'COMMIT',
      ),
    );
    // nat and filter were not changed: still their text as set up.
    const nat = /^\*nat\n[\s\S]*?^COMMIT\n/m.exec(fixture('iptables-legacy-save.txt'))?.[0];
    expect(kernel.natText('legacy/ipv4')).toBe(nat);
    // In the order of the fixture (legacy lists tables as the kernel loaded them): kept.
    expect(kernel.tableNames('legacy/ipv4')).toEqual(['nat', 'filter', 'mangle']);
    // The first table too is replaced where it is, not moved behind the others.
    expect(
      kernel.run(restore('iptables-legacy-restore', lines('*nat', 'COMMIT'), []))?.exitCode,
    ).toBe(0);
    expect(kernel.natText('legacy/ipv4')).not.toContain('ISTIO_');
    expect(kernel.tableNames('legacy/ipv4')).toEqual(['nat', 'filter', 'mangle']);
  });

  // What iptables 1.8.9 did in a throw-away namespace, on both backends.
  describe('-I CHAIN N: insert at a place, as iptables-restore does', () => {
    const NAT = (...rules: string[]) =>
      lines(
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        ...rules,
        'COMMIT',
      );
    const DOCKER_DNS =
      '-A OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:43210';
    const outputOf = (kernel: FakeKernel, key: 'legacy/ipv4' | 'nft/ipv4') =>
      kernel
        .tableText(key, 'nat')
        .split('\n')
        .filter((l) => l.startsWith('-A OUTPUT '));

    it.each<[string, string[], string[], string[]]>([
      [
        'at 1 and 2 in one transaction: first, in that order, ahead of what was there',
        [DOCKER_DNS],
        ['-I OUTPUT 1 -p tcp -j RETURN', '-I OUTPUT 2 -p udp -j RETURN'],
        ['-A OUTPUT -p tcp -j RETURN', '-A OUTPUT -p udp -j RETURN', DOCKER_DNS],
      ],
      [
        'into an empty chain at 1',
        [],
        ['-I OUTPUT 1 -p tcp -j RETURN'],
        ['-A OUTPUT -p tcp -j RETURN'],
      ],
      [
        'just past the last rule (length + 1)',
        [DOCKER_DNS],
        ['-I OUTPUT 2 -p tcp -j RETURN'],
        [DOCKER_DNS, '-A OUTPUT -p tcp -j RETURN'],
      ],
      [
        'counted after a -D earlier in the same transaction',
        [DOCKER_DNS, '-A OUTPUT -p tcp -m comment --comment old -j RETURN'],
        [
          '-D OUTPUT -p tcp -m comment --comment old -j RETURN',
          '-I OUTPUT 1 -p tcp -j RETURN',
          '-I OUTPUT 2 -p udp -j RETURN',
        ],
        ['-A OUTPUT -p tcp -j RETURN', '-A OUTPUT -p udp -j RETURN', DOCKER_DNS],
      ],
      [
        'counted after an -A earlier in the same transaction',
        [],
        ['-A OUTPUT -p tcp -j RETURN', '-I OUTPUT 2 -p udp -j RETURN'],
        ['-A OUTPUT -p tcp -j RETURN', '-A OUTPUT -p udp -j RETURN'],
      ],
      [
        'without N: first',
        [DOCKER_DNS],
        ['-I OUTPUT -p tcp -j RETURN'],
        ['-A OUTPUT -p tcp -j RETURN', DOCKER_DNS],
      ],
    ])('%s', (_name, before, input, after) => {
      for (const key of ['legacy/ipv4', 'nft/ipv4'] as const) {
        const kernel = new FakeKernel({ [key]: NAT(...before) });
        const file = key === 'nft/ipv4' ? 'iptables-nft-restore' : 'iptables-legacy-restore';
        expect(kernel.run(restore(file, lines('*nat', ...input, 'COMMIT')))?.exitCode).toBe(0);
        expect(outputOf(kernel, key)).toEqual(after);
      }
    });

    it.each<[string, string, string]>([
      ['legacy/ipv4', 'iptables-legacy-restore', 'iptables-restore: line 3 failed\n'],
      [
        'nft/ipv4',
        'iptables-nft-restore',
        'iptables-nft-restore: line 3 failed: Index of insertion too big.\n',
      ],
    ])(
      '%s: N past length + 1 is "Index of insertion too big.", nothing changed',
      (key, file, stderr) => {
        const setup = NAT(DOCKER_DNS);
        const kernel = new FakeKernel({ [key]: setup });
        const input = lines(
          '*nat',
          '-I OUTPUT 1 -p tcp -j RETURN',
          '-I OUTPUT 4 -p udp -j RETURN',
          'COMMIT',
        );
        expect(kernel.run(restore(file, input))).toEqual({ exitCode: 1, stdout: '', stderr });
        expect(kernel.saveText(key as 'legacy/ipv4')).toBe(setup);
        // An empty chain takes 1 only.
        const empty = lines('*nat', '-I PREROUTING 2 -p tcp -j RETURN', 'COMMIT');
        expect(kernel.run(restore(file, empty))?.exitCode).toBe(1);
      },
    );

    it.each<[string, string, string]>([
      ['legacy/ipv4', 'iptables-legacy-restore', 'iptables-restore v1.8.9 (legacy)'],
      ['nft/ipv4', 'iptables-nft-restore', 'iptables-nft-restore v1.8.9 (nf_tables)'],
    ])('%s: N = 0 is a parameter problem (exit 2), not an insertion', (key, file, program) => {
      const kernel = new FakeKernel({ [key]: NAT() });
      expect(
        kernel.run(restore(file, lines('*nat', '-I OUTPUT 0 -p tcp -j RETURN', 'COMMIT'))),
      ).toEqual({
        exitCode: 2,
        stdout: '',
        stderr: `${program}: Invalid rule number \`0'\nError occurred at line: 2\n`,
      });
    });

    it('-I checks the target as -A does: the table is left as it was', () => {
      const kernel = new FakeKernel({});
      for (const input of [
        lines('*nat', '-I OUTPUT 1 -p tcp -j NOWHERE', 'COMMIT'),
        lines('*raw', '-I OUTPUT 1 -p udp -j REDIRECT --to-ports 1', 'COMMIT'),
      ]) {
        expect(kernel.run(restore('iptables-nft-restore', input))?.exitCode).not.toBe(0);
      }
      expect(kernel.tableNames('nft/ipv4')).toEqual([]);
    });
  });

  it.each<[string, string[]]>([
    ['an option it does not know', ['--noflush', '--table=nat']],
    ['--test', ['--test']],
  ])('%s: throws, never takes it silently', (_name, args) => {
    const kernel = new FakeKernel({});
    expect(() =>
      kernel.run(restore('iptables-nft-restore', lines('*nat', 'COMMIT'), args)),
    ).toThrow(/does not know/);
  });
});

describe('fake kernel: *-save', () => {
  const SETUP: Setup = { 'legacy/ipv4': fixture('iptables-legacy-save.txt') };

  it('prints every table without -t, one with -t, the setup verbatim until a table changes', () => {
    const kernel = new FakeKernel(SETUP);
    expect(kernel.run({ file: 'iptables-legacy-save', args: [], input: undefined })?.stdout).toBe(
      SETUP['legacy/ipv4'],
    );
    expect(
      kernel.run({ file: 'iptables-legacy-save', args: ['-t', 'raw'], input: undefined })?.stdout,
    ).toBe('');
    kernel.append('legacy/ipv4', 'OUTPUT', '-j ACCEPT', 'filter');
    const dump =
      kernel.run({ file: 'iptables-legacy-save', args: [], input: undefined })?.stdout ?? '';
    // Every table in the setup's order, the changed one in its place.
    expect(dump.match(/^\*\w+$/gm)).toEqual(['*nat', '*filter', '*mangle']);
    expect(dump).toContain('-A OUTPUT -j ACCEPT\nCOMMIT\n');
    expect(dump).not.toContain('# Generated');
  });

  it('an unknown option throws', () => {
    const kernel = new FakeKernel(SETUP);
    expect(() =>
      kernel.run({ file: 'iptables-legacy-save', args: ['-c'], input: undefined }),
    ).toThrow();
  });
});

describe('fake kernel: ip, as Linux answers', () => {
  it('rule list/add/del: duplicates allowed, the newest first, a missing one is ENOENT', () => {
    const kernel = new FakeKernel({});
    expect(kernel.run(ip('-4', 'rule', 'list', 'fwmark', '1337', 'table', '133'))?.stdout).toBe('');
    expect(kernel.run(ip('-4', 'rule', 'add', 'fwmark', '1337', 'lookup', '133'))?.exitCode).toBe(
      0,
    );
    expect(kernel.run(ip('-4', 'rule', 'add', 'fwmark', '0x539', 'lookup', '133'))?.exitCode).toBe(
      0,
    );
    expect(kernel.run(ip('-4', 'rule', 'list'))?.stdout).toBe(
      [
        '0:\tfrom all lookup local',
        '32764:\tfrom all fwmark 0x539 lookup 133',
        '32765:\tfrom all fwmark 0x539 lookup 133',
        '32766:\tfrom all lookup main',
        '32767:\tfrom all lookup default',
        '',
      ].join('\n'),
    );
    expect(kernel.run(ip('-4', 'rule', 'list', 'fwmark', '1338', 'table', '133'))?.stdout).toBe('');
    expect(kernel.ipRules('ipv6')).toEqual([]);
    kernel.run(ip('-4', 'rule', 'del', 'fwmark', '1337', 'lookup', '133'));
    kernel.run(ip('-4', 'rule', 'del', 'fwmark', '1337', 'lookup', '133'));
    expect(kernel.run(ip('-4', 'rule', 'del', 'fwmark', '1337', 'lookup', '133'))).toEqual({
      exitCode: 2,
      stdout: '',
      stderr: 'RTNETLINK answers: No such file or directory\n',
    });
  });

  // Seen in a throw-away namespace (Linux 6.x, iproute2 6.1): `ip rule add` refuses a
  // rule identical to one there (NLM_F_EXCL), preference included; without `pref` the
  // kernel picks one below the lowest non-zero one, so that copy is never identical.
  const FILE_EXISTS = { exitCode: 2, stdout: '', stderr: 'RTNETLINK answers: File exists\n' };
  const OK = { exitCode: 0, stdout: '', stderr: '' };
  it.each<[string, string[][], string[], typeof OK, string[]]>([
    [
      'pref into an empty list: that preference',
      [],
      ['fwmark', '1337', 'lookup', '133', 'pref', '32765'],
      OK,
      ['32765: fwmark 0x539 lookup 133'],
    ],
    [
      'the same rule and pref again: File exists, nothing added',
      [['fwmark', '1337', 'lookup', '133', 'pref', '32765']],
      ['fwmark', '0x539', 'lookup', '133', 'pref', '32765'],
      FILE_EXISTS,
      ['32765: fwmark 0x539 lookup 133'],
    ],
    [
      'a copy without pref over it (what ip picked itself): File exists too',
      [['fwmark', '1337', 'lookup', '133']],
      ['fwmark', '1337', 'lookup', '133', 'pref', '32765'],
      FILE_EXISTS,
      ['32765: fwmark 0x539 lookup 133'],
    ],
    [
      'the same rule without pref: a copy just ahead',
      [['fwmark', '1337', 'lookup', '133', 'pref', '32765']],
      ['fwmark', '1337', 'lookup', '133'],
      OK,
      ['32764: fwmark 0x539 lookup 133', '32765: fwmark 0x539 lookup 133'],
    ],
    [
      'the same rule at another pref: a copy',
      [['fwmark', '1337', 'lookup', '133', 'pref', '32765']],
      ['fwmark', '1337', 'lookup', '133', 'pref', '100'],
      OK,
      ['100: fwmark 0x539 lookup 133', '32765: fwmark 0x539 lookup 133'],
    ],
    [
      'another table at the same pref: added after the one there',
      [['fwmark', '1337', 'lookup', '133', 'pref', '32765']],
      ['fwmark', '1337', 'lookup', '134', 'pref', '32765'],
      OK,
      ['32765: fwmark 0x539 lookup 133', '32765: fwmark 0x539 lookup 134'],
    ],
    [
      'another mark at the same pref: added after the one there',
      [['fwmark', '1337', 'lookup', '133', 'pref', '32765']],
      ['fwmark', '1338', 'lookup', '133', 'pref', '32765'],
      OK,
      ['32765: fwmark 0x539 lookup 133', '32765: fwmark 0x53a lookup 133'],
    ],
    [
      'a preference that is no number',
      [],
      ['fwmark', '1337', 'lookup', '133', 'pref', 'high'],
      {
        exitCode: 1,
        stdout: '',
        stderr:
          'Error: argument "fwmark 1337 lookup 133 pref high" is wrong: invalid fwmark, table or preference\n',
      },
      [],
    ],
  ])('rule add: %s', (_name, before, args, answer, rules) => {
    const kernel = new FakeKernel({});
    for (const added of before) expect(kernel.run(ip('-4', 'rule', 'add', ...added))).toEqual(OK);
    expect(kernel.run(ip('-4', 'rule', 'add', ...args))).toEqual(answer);
    expect(kernel.ipRules('ipv4')).toEqual(rules);
    expect(kernel.ipRules('ipv6')).toEqual([]);
  });

  it('rule list: a pref given lists only that preference, del with it deletes only that one', () => {
    const kernel = new FakeKernel({});
    kernel.run(ip('-6', 'rule', 'add', 'fwmark', '1337', 'lookup', '133', 'pref', '32765'));
    kernel.run(ip('-6', 'rule', 'add', 'fwmark', '1337', 'lookup', '133'));
    expect(kernel.run(ip('-6', 'rule', 'list'))?.stdout).toBe(
      lines(
        '0:\tfrom all lookup local',
        '32764:\tfrom all fwmark 0x539 lookup 133',
        '32765:\tfrom all fwmark 0x539 lookup 133',
        '32766:\tfrom all lookup main',
      ),
    );
    expect(kernel.run(ip('-6', 'rule', 'list', 'fwmark', '1337', 'pref', '32765'))?.stdout).toBe(
      lines('32765:\tfrom all fwmark 0x539 lookup 133'),
    );
    kernel.run(ip('-6', 'rule', 'del', 'fwmark', '1337', 'lookup', '133', 'pref', '32765'));
    expect(kernel.ipRules('ipv6')).toEqual(['32764: fwmark 0x539 lookup 133']);
  });

  it('a seed of the same rule at the same pref twice is a mistake in the test', () => {
    const rule = { mark: 1337, table: 133, pref: 32765 };
    expect(() => new FakeKernel({}, { ipv4: { rules: [rule, rule] } })).toThrow(/twice/);
  });

  // iproute2 6.1 in a throw-away namespace with lo up: `ip -6 addr show dev lo`, then
  // again after `ip -6 addr replace ::6/128 dev lo`.
  const LO_HEADER =
    '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000';
  const LOOPBACK = [
    '    inet6 ::1/128 scope host ',
    '       valid_lft forever preferred_lft forever',
  ];
  const SIX = ['    inet6 ::6/128 scope global ', '       valid_lft forever preferred_lft forever'];
  it.each<[string, FakeOptions['ip'], string[][], string]>([
    ['a fresh namespace: ::1 only', {}, [], lines(LO_HEADER, ...LOOPBACK)],
    [
      '::6 added: the newest first',
      {},
      [['-6', 'addr', 'replace', '::6/128', 'dev', 'lo']],
      lines(LO_HEADER, ...SIX, ...LOOPBACK),
    ],
    [
      '::6 added twice: listed once',
      {},
      [
        ['-6', 'addr', 'replace', '::6/128', 'dev', 'lo'],
        ['-6', 'addr', 'replace', '::6/128', 'dev', 'lo'],
      ],
      lines(LO_HEADER, ...SIX, ...LOOPBACK),
    ],
    ['::6 seeded', { ipv6: { lo: ['::6/128'] } }, [], lines(LO_HEADER, ...SIX, ...LOOPBACK)],
  ])('addr show dev lo (ipv6): %s', (_name, seed, before, shown) => {
    const kernel = new FakeKernel({}, seed);
    for (const args of before) expect(kernel.run(ip(...args))?.exitCode).toBe(0);
    expect(kernel.run(ip('-6', 'addr', 'show', 'dev', 'lo'))).toEqual({
      exitCode: 0,
      stdout: shown,
      stderr: '',
    });
  });

  it.each<['ipv4' | 'ipv6', string, string, string]>([
    ['ipv4', '-4', 'default', 'No such process'],
    ['ipv6', '-6', '::/0', 'No such file or directory'],
  ])(
    'route replace/del (%s): a table never made, then a route not there',
    (family, flag, any, gone) => {
      const kernel = new FakeKernel({});
      const route = [flag, 'route', '', 'local', any, 'dev', 'lo', 'table', '133'];
      const as = (command: string) => ip(...route.map((a) => (a === '' ? command : a)));
      expect(kernel.run(as('del'))?.stderr).toBe('Error: FIB table does not exist.\n');
      expect(kernel.run(as('replace'))?.exitCode).toBe(0);
      expect(kernel.run(as('replace'))?.exitCode).toBe(0);
      expect(kernel.ipRoutes(family)).toEqual(['local default dev lo table 133']);
      expect(kernel.run(as('del'))?.exitCode).toBe(0);
      expect(kernel.run(as('del'))).toEqual({
        exitCode: 2,
        stdout: '',
        stderr: `RTNETLINK answers: ${gone}\n`,
      });
    },
  );

  it.each<['ipv4' | 'ipv6', string, string, string]>([
    ['ipv4', '-4', 'default', 'local default dev lo scope host \n'],
    ['ipv6', '-6', '::/0', 'local default dev lo metric 1024 pref medium\n'],
  ])(
    'route show table (%s): a table never made is an error, an emptied one shows nothing',
    (family, flag, any, shown) => {
      const kernel = new FakeKernel({});
      const show = (table: string) => ip(flag, 'route', 'show', 'table', table);
      const route = (command: string, table = '133') =>
        ip(flag, 'route', command, 'local', any, 'dev', 'lo', 'table', table);
      expect(kernel.run(show('133'))).toEqual({
        exitCode: 2,
        stdout: '',
        stderr: `Error: ${family}: FIB table does not exist.\nDump terminated\n`,
      });
      kernel.run(route('replace'));
      kernel.run(route('replace', '134'));
      expect(kernel.run(show('133'))).toEqual({ exitCode: 0, stdout: shown, stderr: '' });
      kernel.run(route('del'));
      // The kernel keeps a table once made: empty now, not missing.
      expect(kernel.run(show('133'))).toEqual({ exitCode: 0, stdout: '', stderr: '' });
      expect(kernel.run(show('134'))?.stdout).toBe(shown);
    },
  );

  it.each([['main'], ['local'], ['default'], ['254']])(
    "route show table %s: the kernel's own tables are not faked, so it throws",
    (table) => {
      expect(() => new FakeKernel({}).run(ip('-4', 'route', 'show', 'table', table))).toThrow(
        /the fake ip does not know/,
      );
    },
  );

  it('an address of the other family is refused', () => {
    const kernel = new FakeKernel({});
    expect(
      kernel.run(ip('-4', 'route', 'replace', 'local', '::/0', 'dev', 'lo', 'table', '133')),
    ).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'Error: inet prefix is expected rather than "::/0".\n',
    });
    expect(() => kernel.run(ip('-4', 'addr', 'replace', '::6/128', 'dev', 'lo'))).toThrow();
  });

  it.each([
    [['rule', 'add', 'fwmark', '1', 'lookup', '2']],
    [['-4', 'rule', 'add', 'fwmark', '1', 'lookup', '2', 'priority', '5']],
    [['-4', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '133']],
    [['-4', 'link', 'set', 'lo', 'up']],
    [['-4', 'route', 'show']],
    [['-4', 'route', 'show', 'table', '133', 'dev', 'lo']],
    [['-6', 'addr', 'add', '::6/128', 'dev', 'lo']],
    [['-6', 'addr', 'show']],
    [['-6', 'addr', 'show', 'dev', 'eth0']],
    // mesh-init only asks about IPv6's ::6: IPv4 has all of 127/8 on lo.
    [['-4', 'addr', 'show', 'dev', 'lo']],
  ])('%j: a command it does not know throws', (args) => {
    expect(() => new FakeKernel({}).run(ip(...args))).toThrow(/the fake ip does not know/);
  });
});
