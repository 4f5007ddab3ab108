/**
 * The whole program through main(argv, env, deps), with a fake command runner that
 * records every program started (file, args, stdin) and answers like iptables would.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/cli.js';
import type { Deps } from '../../src/commands/run.js';
import { FLAGS } from '../../src/config/flags.js';
import { VERSION } from '../../src/version.js';
import {
  exited,
  FakeKernel,
  type FakeOptions,
  fakeSystem,
  fixture,
  golden,
  hooksFirst,
  LIVE_LEGACY,
  LIVE_NFT,
  NOW,
  notFound,
  RERUN_NFT,
  run,
  type Setup,
} from '../fake-system.js';
import { ISTIO_INJECTOR } from '../golden-configs.js';

/** Every run that gets past validation logs its effective configuration first. */
const CONFIG_LINE = expect.stringMatching(
  /^mesh-init: config: mode=[a-z]+( \(dry-run\))? proxy-port=/,
);
const DEFAULT_CONFIG_LINE =
  'mesh-init: config: mode=apply proxy-port=15001 inbound-capture-port=15001 inbound-tunnel-port=15008 proxy-uid=1337 proxy-gid=1337 inbound-ports=* inbound-exclude-ports="" outbound-include-cidrs=* outbound-exclude-cidrs="" outbound-exclude-ports="" outbound-include-ports="" outbound-owner-groups=* ipv4-loopback-cidr=127.0.0.1/32 kube-virt-interfaces="" exclude-interfaces="" inbound-interception-mode=REDIRECT redirect-dns=false drop-invalid=false ipv6=auto dual-stack=false iptables-backend=auto chain-prefix=ISTIO_ wait=10 max-retries=3 retry-interval=1 run-validation=false';

const RESTORE_ARGS = ['--noflush', '--wait=10'];

describe('dry-run prints exactly what apply feeds to *-restore', () => {
  it.each<[string, string[], Setup, boolean]>([
    ['default, ipv4', ['-p', '15001', '-u', '1337'], LIVE_NFT, false],
    ['default, ipv4 and ipv6', ['-p', '15001', '-u', '1337'], LIVE_NFT, true],
    ["Istio's injector argv, both families", ISTIO_INJECTOR, LIVE_NFT, true],
    ['legacy backend chosen by auto', ['-o', '22,3306', '-q', '443'], LIVE_LEGACY, true],
    [
      'backend forced, no rules of that prefix yet',
      ['--iptables-backend', 'legacy', '--chain-prefix', 'MESH_'],
      LIVE_LEGACY,
      true,
    ],
    [
      'backend forced, a re-run with a changed config',
      ['--iptables-backend', 'legacy', '-o', '53'],
      LIVE_LEGACY,
      true,
    ],
    ['no live rules at all', ['-i', '10.96.0.0/12,fd00:10:96::/112'], {}, true],
    [
      'interfaces excluded and VM interfaces, a re-run',
      ['-c', 'eth2', '-k', 'eth1', '-i', '10.96.0.0/12,fd00:10:96::/112'],
      LIVE_NFT,
      true,
    ],
  ])('%s', async (_name, argv, setup, globalIpv6) => {
    const apply = await run(argv, setup, { globalIpv6 });
    expect(apply.code).toBe(0);
    expect(apply.stdout()).toBe('');
    const fed = apply.applied().map((c) => c.input);
    expect(fed).toHaveLength(globalIpv6 ? 2 : 1);
    // A forced backend first tries a text planned without reading; on a pod with rules
    // it fails (changing nothing) before anything is read. Dry-run prints what then
    // succeeds.
    const firstRead = apply.calls.findIndex((c) => c.file.endsWith('-save'));
    for (const failed of apply.restores().filter((c) => !apply.applied().includes(c))) {
      expect(apply.calls.indexOf(failed)).toBeLessThan(firstRead);
    }

    const dry = await run([...argv, '--dry-run'], setup, { globalIpv6 });
    expect(dry.code).toBe(0);
    expect(dry.restores()).toEqual([]);
    // The backend line is the one apply logs: dry-run read the tables the same way.
    const backend = apply.stderrLines()[1];
    expect(backend).toMatch(/^mesh-init: backend: (nft|legacy) \(.+\)$/);
    expect(dry.stderrLines()).toEqual([
      expect.stringMatching(/^mesh-init: config: mode=apply \(dry-run\) /),
      backend,
      ...(globalIpv6
        ? ['mesh-init: dry-run: would also run: ip -6 addr replace ::6/128 dev lo']
        : []),
      `mesh-init: dry-run: printed the ${globalIpv6 ? 'ipv4 and ipv6' : 'ipv4'} text; nothing applied`,
    ]);
    expect(dry.stdout()).toBe(fed.join(''));
    // Dry-run reads the same live state as apply does (when apply reads at all: a
    // forced backend's unread first try may just succeed).
    const applyReads = apply.calls.filter((c) => c.file.endsWith('-save'));
    if (applyReads.length > 0) expect(dry.calls).toEqual(applyReads);
    else expect(dry.calls.every((c) => c.file.endsWith('-save'))).toBe(true);
  });

  it('a forced backend on a fresh pod: one restore per family, nothing read', async () => {
    const argv = ['--iptables-backend', 'nft', '-p', '15001', '-u', '1337'];
    const apply = await run(argv, {}, { globalIpv6: true });
    expect(apply.code).toBe(0);
    expect(apply.commands()).toEqual([
      'ip -6 addr replace ::6/128 dev lo',
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
    ]);
    const fed = apply.restores().map((c) => c.input);
    expect(fed).toEqual([golden('default.ipv4.golden'), golden('default.ipv6.golden')]);
    // Dry-run needs to read to know the pod is fresh, and then prints the same texts.
    const dry = await run([...argv, '--dry-run'], {}, { globalIpv6: true });
    expect(dry.stdout()).toBe(fed.join(''));
  });

  it("the fed text moves hooks an older run left behind Docker's to the top and is the re-run golden", async () => {
    const apply = await run(['-p', '15001', '-u', '1337'], LIVE_NFT, { globalIpv6: true });
    const [v4, v6] = apply.restores().map((c) => c.input);
    expect(v4).toBe(golden('rerun.ipv4.golden'));
    expect(v6).toBe(golden('rerun.ipv6.golden'));
    expect(v4).toMatch(/^-D OUTPUT /m);
    expect(v4).toMatch(/^-I OUTPUT 1 /m);
  });

  it('the fed text keeps hooks that are already right and lead, and is the hooks-lead golden', async () => {
    const setup: Setup = {
      'nft/ipv4': hooksFirst(fixture('iptables-nft-save.txt')),
      'nft/ipv6': hooksFirst(fixture('ip6tables-nft-save-nat.txt')),
      'legacy/ipv4': '',
      'legacy/ipv6': '',
    };
    const argv = ['-p', '15001', '-u', '1337'];
    const apply = await run(argv, setup, { globalIpv6: true });
    const [v4, v6] = apply.restores().map((c) => c.input);
    expect(v4).toBe(golden('rerun-hooks-lead.ipv4.golden'));
    expect(v6).toBe(golden('rerun-hooks-lead.ipv6.golden'));
    expect(v4).not.toMatch(/^-[DXNI] /m);
    const dry = await run([...argv, '--dry-run'], setup, { globalIpv6: true });
    expect(dry.stdout()).toBe(`${v4}${v6}`);
  });

  it('the fed text deletes live hooks that changed and is the changed-config golden', async () => {
    const argv = [
      '-p',
      '15001',
      '-u',
      '1337',
      '-b',
      '',
      '-o',
      '53',
      '--iptables-backend',
      'legacy',
    ];
    const apply = await run(argv, LIVE_LEGACY);
    expect(apply.applied().map((c) => c.input)).toEqual([
      golden('rerun-changed-config.ipv4.golden'),
    ]);
    expect(apply.applied()[0]?.input).toContain('\n-D PREROUTING ');
  });

  it('MESH_INIT_DRY_RUN=1 is a dry-run, and the env sets the rules', async () => {
    const dry = await run([], LIVE_NFT, { env: { MESH_INIT_DRY_RUN: '1', ENVOY_PORT: '15002' } });
    expect(dry.code).toBe(0);
    expect(dry.restores()).toEqual([]);
    expect(dry.stdout()).toContain('-j REDIRECT --to-ports 15002\n');
  });
});

describe("Istio's injector argv as it writes it", () => {
  const INJECTED = ['istio-iptables', ...ISTIO_INJECTOR, '--log_output_level=default:info'];

  it('applies what the argv without the program name and the log level applies', async () => {
    const injected = await run(INJECTED, LIVE_NFT, { globalIpv6: true });
    const plain = await run(ISTIO_INJECTOR, LIVE_NFT, { globalIpv6: true });
    expect(injected.code).toBe(0);
    expect(injected.calls).toEqual(plain.calls);
    expect(injected.applied()).toHaveLength(2);
    expect(injected.stderrLines()).toEqual(plain.stderrLines());
    expect(injected.stderrLines()[0]).toMatch(
      /^mesh-init: config: mode=apply proxy-port=15001 inbound-capture-port=15006 /,
    );
  });

  it('with --log_as_json every stderr line is one JSON object', async () => {
    const result = await run([...INJECTED, '--log_as_json'], LIVE_NFT);
    expect(result.code).toBe(0);
    const lines = result.stderrLines().map((line) => JSON.parse(line));
    expect(lines.map((line) => line.event)).toEqual(['config', 'backend', 'applied']);
    expect(lines[0].config).toMatchObject({ 'inbound-capture-port': '15006' });
  });

  it('--log_as_json with --log-format text: exit 2, nothing run', async () => {
    const result = await run([...INJECTED, '--log_as_json', '--log-format', 'text'], LIVE_NFT);
    expect(result.code).toBe(2);
    expect(result.calls).toEqual([]);
    expect(result.stderr()).toContain('conflicting --log_as_json and --log-format: choose one');
  });

  it('istio-iptables anywhere but first is an unknown argument', async () => {
    const result = await run([...ISTIO_INJECTOR, 'istio-iptables'], LIVE_NFT);
    expect(result.code).toBe(2);
    expect(result.calls).toEqual([]);
    expect(result.stderrLines()).toEqual(['mesh-init: Unknown argument: istio-iptables']);
  });
});

describe('apply', () => {
  it('auto, IPv4 only: one whole dump per backend, then one restore', async () => {
    const { code, calls, stderrLines } = await run([]);
    expect(code).toBe(0);
    expect(calls.slice(0, 2)).toEqual(
      expect.arrayContaining([
        { file: 'iptables-nft-save', args: [], input: undefined },
        { file: 'iptables-legacy-save', args: [], input: undefined },
      ]),
    );
    expect(calls.slice(2).map(({ file, args }) => ({ file, args }))).toEqual([
      { file: 'iptables-nft-restore', args: RESTORE_ARGS },
    ]);
    expect(stderrLines()).toEqual([
      DEFAULT_CONFIG_LINE,
      'mesh-init: backend: nft (its tables already hold 23 rules)',
      expect.stringMatching(
        /^mesh-init: applied ipv4 \(\d+ rules\) with the nft backend; ipv6 not captured \(no global IPv6 address\)$/,
      ),
    ]);
  });

  // Istio's default since issue 14: the tunnel port's RETURN, and a loopback RETURN per
  // proxy UID and GID in place of one for all of lo.
  it('the applied line counts the rules of the plan: 15 by default', async () => {
    const { code, stderrLines } = await run([], {});
    expect(code).toBe(0);
    expect(stderrLines().at(-1)).toBe(
      'mesh-init: applied ipv4 (15 rules) with the nft backend; ipv6 not captured (no global IPv6 address)',
    );
  });

  // The count is of the rules in place, not of the rules this run appended: a re-run
  // keeps the hooks that are already right (its text appends only 13 rules), and the
  // pod holds the same 15 rules as after the first run.
  it('a re-run that keeps its hooks still reports the 15 rules in place', async () => {
    const { code, restores, stderrLines } = await run([]);
    expect(code).toBe(0);
    expect(restores()[0]?.input?.match(/^-A /gm)).toHaveLength(13);
    expect(stderrLines().at(-1)).toMatch(/^mesh-init: applied ipv4 \(15 rules\) /);
  });

  it('auto with IPv6: the IPv6 tables are read with the chosen backend, then two restores', async () => {
    const { code, calls, commands, stderrLines } = await run([], LIVE_NFT, { globalIpv6: true });
    expect(code).toBe(0);
    expect([...commands()].sort()).toEqual(
      [
        'iptables-nft-save',
        'iptables-legacy-save',
        'ip6tables-nft-save',
        'iptables-nft-restore --noflush --wait=10',
        'ip -6 addr replace ::6/128 dev lo',
        'ip6tables-nft-restore --noflush --wait=10',
      ].sort(),
    );
    // Everything is read before anything is applied; lo gets ::6 (the proxy's inbound
    // passthrough source) before any restore, then IPv4 is applied first.
    expect(commands().slice(-3)).toEqual([
      'ip -6 addr replace ::6/128 dev lo',
      'iptables-nft-restore --noflush --wait=10',
      'ip6tables-nft-restore --noflush --wait=10',
    ]);
    expect(calls[5]?.input).toMatch(/^# mesh-init: ipv6 nat rules/);
    expect(stderrLines().at(-1)).toMatch(
      /^mesh-init: applied ipv4 \(\d+ rules\) and ipv6 \(\d+ rules\) with the nft backend$/,
    );
  });

  it('auto picks the backend that holds the rules, for both families', async () => {
    const { code, restores, calls } = await run([], LIVE_LEGACY, { globalIpv6: true });
    expect(code).toBe(0);
    expect(calls.map((c) => c.file)).toContain('ip6tables-legacy-save');
    expect(restores().map((c) => c.file)).toEqual([
      'iptables-legacy-restore',
      'ip6tables-legacy-restore',
    ]);
  });

  it.each<[string, string[], string[]]>([
    [
      // The pod's rules are in legacy: the unread first try fails, then the tables of
      // that backend alone are read and the plan made anew.
      'legacy',
      ['--iptables-backend', 'legacy'],
      [
        'iptables-legacy-restore --noflush --wait=10',
        'iptables-legacy-save',
        'iptables-legacy-restore --noflush --wait=10',
      ],
    ],
    // Nothing of mesh-init's in nft: the unread first try is all it takes.
    ['nft', ['--iptables-backend', 'nft'], ['iptables-nft-restore --noflush --wait=10']],
    [
      'legacy with IPv6',
      ['--iptables-backend', 'legacy', '--ipv6', 'true'],
      [
        'ip -6 addr replace ::6/128 dev lo',
        'iptables-legacy-restore --noflush --wait=10',
        'iptables-legacy-save',
        'ip6tables-legacy-save',
        'iptables-legacy-restore --noflush --wait=10',
        'ip6tables-legacy-restore --noflush --wait=10',
      ],
    ],
  ])(
    '--iptables-backend %s reads only that backend (every table), and only when needed',
    async (_name, argv, expected) => {
      const { code, calls, commands } = await run(argv, LIVE_LEGACY);
      expect(code).toBe(0);
      expect(commands()).toEqual(expected);
      for (const call of calls) {
        if (call.file.endsWith('-restore')) {
          expect(call.input).toMatch(/^# mesh-init: .*\n\*nat\n[\s\S]*\nCOMMIT\n$/);
        } else expect(call.input).toBeUndefined();
      }
    },
  );

  it.each<[string, boolean, string[], Record<string, string>, string[]]>([
    ['auto with a global IPv6 address', true, [], {}, ['ipv4', 'ipv6']],
    ['auto without one', false, [], {}, ['ipv4']],
    ['--ipv6 auto with one', true, ['--ipv6', 'auto'], {}, ['ipv4', 'ipv6']],
    ['--ipv6 true without one', false, ['--ipv6', 'true'], {}, ['ipv4', 'ipv6']],
    ['--ipv6 false with one', true, ['--ipv6', 'false'], {}, ['ipv4']],
    ['--no-ipv6 with one', true, ['--no-ipv6'], {}, ['ipv4']],
    ['MESH_INIT_IPV6=false with one', true, [], { MESH_INIT_IPV6: 'false' }, ['ipv4']],
  ])('%s → %j', async (_name, globalIpv6, argv, env, families) => {
    const { code, restores, calls } = await run(argv, LIVE_NFT, { globalIpv6, env });
    expect(code).toBe(0);
    expect(restores().map((c) => (c.file.startsWith('ip6') ? 'ipv6' : 'ipv4'))).toEqual(families);
    const ipv6Reads = calls.filter(
      (c) => c.file.startsWith('ip6tables-') && c.file.endsWith('-save'),
    );
    expect(ipv6Reads).toHaveLength(families.includes('ipv6') ? 1 : 0);
    expect(calls.filter((c) => c.file === 'ip')).toHaveLength(families.includes('ipv6') ? 1 : 0);
  });
});

describe('failures', () => {
  it.each<[string[], Record<string, string>, RegExp]>([
    [
      ['-p', '70000'],
      {},
      /^mesh-init: invalid --proxy-port: expected an integer 1-65535, got "70000"\n$/,
    ],
    [['--bogus'], {}, /^mesh-init: Unknown argument: bogus\n$/],
    [
      ['-m', 'TPROXIED'],
      {},
      /^mesh-init: invalid --inbound-interception-mode: expected one of REDIRECT, TPROXY, got "TPROXIED"\n$/,
    ],
    [
      ['-m', 'TPROXY', '-r', '254'],
      {},
      /^mesh-init: invalid --inbound-tproxy-route-table: expected a table of its own, not default \(253\), main \(254\) or local \(255\), got "254"\n$/,
    ],
    [
      ['-m', 'TPROXY'],
      { INBOUND_TPROXY_MARK: '0' },
      /^mesh-init: invalid --inbound-tproxy-mark \(from INBOUND_TPROXY_MARK\): expected an integer 1-4294967294, got "0"\n$/,
    ],
    [['-p', '1', '-p', '2'], {}, /^mesh-init: invalid --proxy-port: given more than once\n$/],
    [['--dry-run', '-u', '-1'], {}, /^mesh-init: invalid --proxy-uid: /],
    [[], { ENVOY_PORT: '0' }, /^mesh-init: invalid --proxy-port \(from ENVOY_PORT\): /],
    [
      [],
      { MESH_INIT_DRY_RUN: 'yes' },
      /^mesh-init: invalid --dry-run \(from MESH_INIT_DRY_RUN\): /,
    ],
    [
      ['-k', 'eth1,a/b'],
      {},
      /^mesh-init: invalid --kube-virt-interfaces: expected interface names such as eth1 .*, got "a\/b"\n$/,
    ],
    // DNS capture asked for wrongly: refused before anything runs (resolv.conf not even read).
    [
      ['--redirect-dns', '--dns-port', '0'],
      {},
      /^mesh-init: invalid --dns-port: expected an integer 1-65535, got "0"\n$/,
    ],
    [
      [],
      { ISTIO_META_DNS_CAPTURE: 'yes' },
      /^mesh-init: invalid --redirect-dns \(from ISTIO_META_DNS_CAPTURE\): expected true, false, 1, 0, t or f, got "yes"\n$/,
    ],
    [
      ['--native-nftables', '--iptables-backend', 'legacy'],
      {},
      /^mesh-init: conflicting --native-nftables and --iptables-backend: native nftables uses no iptables backend\n$/,
    ],
    [['-p', '15001', 'istio-iptables'], {}, /^mesh-init: Unknown argument: istio-iptables\n$/],
    // A flag that means nothing without its mode: refused, whatever it would mean later.
    // (-t and -r are not such flags: they also name what a re-run or --cleanup removes.)
    [
      ['--dns-port', '5353'],
      {},
      /^mesh-init: invalid --dns-port: it only goes with --redirect-dns \(no DNS is captured\)\n$/,
    ],
    [
      ['istio-iptables', ...ISTIO_INJECTOR, '--dns-port', '15053'],
      {},
      /^mesh-init: invalid --dns-port: it only goes with --redirect-dns/,
    ],
    // DNS capture that could not work: a DNS port TCP capture uses too.
    [
      ['--redirect-dns', '-p', '15053'],
      {},
      /^mesh-init: conflicting --dns-port \(default 15053\) and --proxy-port: port 15053 cannot take both DNS and TCP capture\n$/,
    ],
    [
      ['istio-iptables', ...ISTIO_INJECTOR, '--redirect-dns'],
      { MESH_INIT_DNS_PORT: '15006' },
      /^mesh-init: conflicting --dns-port \(from MESH_INIT_DNS_PORT\) and --inbound-capture-port: port 15006 cannot take both DNS and TCP capture\n$/,
    ],
    // Issue 14: Istio's options, each refused where Istio refuses it or where it cannot work.
    [
      ['--network-namespace', 'netns/pod'],
      {},
      /^mesh-init: invalid --network-namespace: expected an absolute path such as \/var\/run\/netns\/pod, got "netns\/pod"\n$/,
    ],
    [
      ['--run-validation'],
      { NETWORK_NAMESPACE: '/var/run/netns/pod' },
      /^mesh-init: conflicting --network-namespace \(from NETWORK_NAMESPACE\) and --run-validation: the validation probes the namespace mesh-init runs in\n$/,
    ],
    [
      ['--iptables-backend', 'legacy'],
      { FORCE_IPTABLES_BINARY: 'nft' },
      /^mesh-init: conflicting --iptables-backend and --force-iptables-binary \(from FORCE_IPTABLES_BINARY\): choose one\n$/,
    ],
    [
      ISTIO_INJECTOR,
      { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '10.0.0.0/8' },
      /^mesh-init: invalid --ipv4-loopback-cidr \(from ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR\): expected an IPv4 loopback CIDR with a prefix 8-32, such as 127.0.0.1\/32, got "10.0.0.0\/8"\n$/,
    ],
    [
      ['--probe-timeout', '5 s'],
      {},
      /^mesh-init: invalid --probe-timeout: expected a number of seconds or a duration such as 5s, 0.001 to 300 s, got "5 s"\n$/,
    ],
  ])('usage error %j %j exits 2 and runs nothing', async (argv, env, message) => {
    const result = await run(argv, LIVE_NFT, { env, globalIpv6: true });
    expect(result.code).toBe(2);
    expect(result.calls).toEqual([]);
    expect(result.resolvConfReads()).toBe(0);
    expect(result.stdout()).toBe('');
    expect(result.stderr()).toMatch(message);
  });

  /**
   * Issue 14: what Istio's program accepts is accepted, never a crash-looping pod: where
   * an option has no effect, or loses to another one as in Istio, the run logs a note
   * right after its config line and goes on. `check` pins what the run then did.
   */
  const note = (text: string) => `mesh-init: note: ${text}`;
  const indexOf = (text: string, line: string) => text.split('\n').indexOf(line);
  it.each<{
    name: string;
    argv: string[];
    env?: Record<string, string>;
    notes: string[];
    check: (result: Awaited<ReturnType<typeof run>>) => Promise<void> | void;
  }>([
    {
      name: '--capture-all-dns without --redirect-dns: a run without DNS capture',
      argv: ['istio-iptables', ...ISTIO_INJECTOR, '--capture-all-dns'],
      notes: ['--capture-all-dns has no effect without --redirect-dns (as in Istio)'],
      check: async (result) => {
        expect(result.resolvConfReads()).toBe(0);
        expect(result.restores()).toEqual((await run(ISTIO_INJECTOR, LIVE_NFT)).restores());
      },
    },
    {
      name: 'MESH_INIT_CAPTURE_ALL_DNS alone: named as the variable',
      argv: [],
      env: { MESH_INIT_CAPTURE_ALL_DNS: 'true' },
      notes: [
        '--capture-all-dns (from MESH_INIT_CAPTURE_ALL_DNS) has no effect without --redirect-dns (as in Istio)',
      ],
      check: async (result) => {
        expect(result.restores()).toEqual((await run([], LIVE_NFT)).restores());
      },
    },
    {
      name: '-q and -o name one port: it is excluded, ahead of the -q jump',
      argv: ['-q', '443', '-o', '443'],
      notes: [
        'port 443 is in --outbound-include-ports and --outbound-exclude-ports: it is not captured (as in Istio, exclusion wins)',
      ],
      check: (result) => {
        const text = result.restores()[0]?.input ?? '';
        const excluded = indexOf(
          text,
          '-A ISTIO_OUTPUT -p tcp --dport 443 -m comment --comment "mesh-init: destination port excluded by --outbound-exclude-ports" -j RETURN',
        );
        const included = indexOf(
          text,
          '-A ISTIO_OUTPUT -p tcp --dport 443 -m comment --comment "mesh-init: destination port listed in --outbound-include-ports" -j ISTIO_REDIRECT',
        );
        expect(excluded).toBeGreaterThan(0);
        expect(included).toBeGreaterThan(excluded);
      },
    },
    {
      name: 'one interface in -k and -c: -k wins inbound, -c outbound (dry-run)',
      argv: ['-c', 'eth0', '-k', 'eth0', '--dry-run'],
      notes: [
        'interface eth0 is in --kube-virt-interfaces and --exclude-interfaces: its inbound TCP is outbound traffic, its outbound is not captured (as in Istio)',
      ],
      check: (result) => {
        expect(result.restores()).toEqual([]);
        const text = result.stdout();
        const virt = indexOf(
          text,
          '-A ISTIO_INBOUND -p tcp -i eth0 -m comment --comment "mesh-init: TCP from a --kube-virt-interfaces interface is outbound traffic" -j ISTIO_REDIRECT',
        );
        const excluded = indexOf(
          text,
          '-A ISTIO_INBOUND -i eth0 -m comment --comment "mesh-init: interface excluded by --exclude-interfaces" -j RETURN',
        );
        expect(virt).toBeGreaterThan(0);
        expect(excluded).toBeGreaterThan(virt);
        expect(text).toContain(
          '\n-A ISTIO_OUTPUT -o eth0 -m comment --comment "mesh-init: interface excluded by --exclude-interfaces" -j RETURN\n',
        );
      },
    },
    {
      name: '--redirect-dns with -o 53: port 53 returns before the DNS jump, as in Istio',
      argv: ['istio-iptables', ...ISTIO_INJECTOR, '--redirect-dns', '-o', '53'],
      notes: [
        '--outbound-exclude-ports holds 53: DNS is not captured (as in Istio, exclusion wins)',
      ],
      check: (result) => {
        expect(result.resolvConfReads()).toBe(1);
        const text = result.restores()[0]?.input ?? '';
        const excluded = indexOf(
          text,
          '-A ISTIO_OUTPUT -p udp --dport 53 -m comment --comment "mesh-init: destination port excluded by --outbound-exclude-ports" -j RETURN',
        );
        const jump = indexOf(
          text,
          '-A ISTIO_OUTPUT -m comment --comment "mesh-init: DNS queries of the apps go to the DNS port" -j ISTIO_OUTPUT_DNS',
        );
        expect(excluded).toBeGreaterThan(0);
        expect(jump).toBeGreaterThan(excluded);
      },
    },
    {
      name: "Istio's variables for DNS capture and -o 53: both named",
      argv: ISTIO_INJECTOR,
      env: { ISTIO_META_DNS_CAPTURE: 'true', ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE: '53' },
      notes: [
        '--outbound-exclude-ports (from ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE) holds 53: DNS is not captured (as in Istio, exclusion wins)',
      ],
      check: (result) => {
        expect(result.restores().map((c) => c.file)).toEqual([
          'iptables-nft-restore',
          'iptables-nft-restore',
        ]);
      },
    },
    {
      name: '-d beside a -b list: only the listed ports are captured',
      argv: ['-b', '8080', '-d', '9090'],
      notes: [
        '--inbound-exclude-ports has no effect with a port list in --inbound-ports (as in Istio: only the listed ports are captured)',
      ],
      check: async (result) => {
        expect(result.restores()).toEqual((await run(['-b', '8080'], LIVE_NFT)).restores());
      },
    },
    {
      name: "Istio's flags without effect: one note each, the default run",
      argv: ['--reconcile', '--cni-mode', '--force-apply'],
      notes: [
        '--force-apply is accepted without effect: mesh-init always reconciles',
        '--reconcile is accepted without effect: mesh-init always replaces what an earlier run left',
        '--cni-mode is accepted without effect: mesh-init waits for the xtables lock in every mode',
      ],
      check: async (result) => {
        expect(result.restores()).toEqual((await run([], LIVE_NFT)).restores());
      },
    },
    {
      name: 'the owner groups to exclude beside a list: only the list counts',
      argv: ['--outbound-owner-groups', '1001', '--outbound-owner-groups-exclude', '888'],
      notes: [
        '--outbound-owner-groups-exclude has no effect with a list in --outbound-owner-groups (as in Istio)',
      ],
      check: async (result) => {
        const only = await run(['--outbound-owner-groups', '1001'], LIVE_NFT);
        expect(result.restores()).toEqual(only.restores());
        expect(only.restores()[0]?.input).toContain(' -m owner ! --gid-owner 1001 ');
        expect(only.restores()[0]?.input).not.toContain('888');
      },
    },
  ])('$name: exit 0, its notes after the config line', async ({ argv, env, notes, check }) => {
    const result = await run(argv, LIVE_NFT, { env: env ?? {} });
    expect(result.code).toBe(0);
    const lines = result.stderrLines();
    expect(lines.slice(0, notes.length + 1)).toEqual([CONFIG_LINE, ...notes.map(note)]);
    expect(lines.filter((line) => line.startsWith('mesh-init: note: '))).toHaveLength(notes.length);
    await check(result);
  });

  it('a run without notes logs none', async () => {
    const result = await run(ISTIO_INJECTOR, LIVE_NFT);
    expect(result.code).toBe(0);
    expect(result.stderr()).not.toContain('note:');
  });

  it.each<[string, string[], Record<string, string>, string[]]>([
    ['--cleanup-only is --cleanup', ['--cleanup-only'], {}, ['--cleanup']],
    ['CLEANUP_ONLY=true is --cleanup', [], { CLEANUP_ONLY: 'true' }, ['--cleanup']],
    [
      '--force-iptables-binary legacy is --iptables-backend legacy',
      ['--force-iptables-binary', 'legacy'],
      {},
      ['--iptables-backend', 'legacy'],
    ],
    [
      'FORCE_IPTABLES_BINARY=nft is --iptables-backend nft',
      [],
      { FORCE_IPTABLES_BINARY: 'nft' },
      ['--iptables-backend', 'nft'],
    ],
    ['-e is --inbound-tunnel-port', ['-e', '15009'], {}, ['--inbound-tunnel-port', '15009']],
  ])("Istio's spelling: %s", async (_name, argv, env, same) => {
    const result = await run(argv, LIVE_LEGACY, { env });
    const expected = await run(same, LIVE_LEGACY);
    expect(result.code).toBe(0);
    expect(result.commands()).toEqual(expected.commands());
    expect(result.restores()).toEqual(expected.restores());
    expect(result.restores().length).toBeGreaterThan(0);
    expect(result.stderr()).not.toContain('note:');
  });

  it('-e moves the tunnel port everywhere it is named, and 15008 is captured again', async () => {
    const text = (await run(['-e', '15009'], LIVE_NFT)).restores()[0]?.input ?? '';
    expect(text).toContain(
      '\n-A ISTIO_INBOUND -p tcp --dport 15009 -m comment --comment "mesh-init: the tunnel port (HBONE) reaches the proxy as it is" -j RETURN\n',
    );
    expect(text.match(/ ! --dport 15009 /g)).toHaveLength(2);
    expect(text).not.toContain('15008');
  });

  // Istio's injector sets its variables for every pod; a REDIRECT pod must still run.
  // -t and -r as flags too: they name the rule and route a re-run without TPROXY
  // removes, and where mangle holds no TPROXY chain there is nothing to remove.
  it.each<[string, string[], Record<string, string>]>([
    [
      'INBOUND_TPROXY_MARK and INBOUND_TPROXY_ROUTE_TABLE',
      [],
      { INBOUND_TPROXY_MARK: '4096', INBOUND_TPROXY_ROUTE_TABLE: '7' },
    ],
    ['MESH_INIT_DNS_PORT', [], { MESH_INIT_DNS_PORT: '5353' }],
    ['-t and -r as flags', ['-t', '4096', '-r', '7'], {}],
    [
      "-r as a flag, the injector's -m REDIRECT beating a variable TPROXY",
      ['-r', '7'],
      { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' },
    ],
  ])(
    '%s without their mode: a REDIRECT run without DNS capture, as without them',
    async (_name, argv, env) => {
      const plain = await run(ISTIO_INJECTOR, LIVE_NFT);
      const result = await run([...ISTIO_INJECTOR, ...argv], LIVE_NFT, { env });
      expect(result.code).toBe(0);
      expect(result.commands()).toEqual(plain.commands());
      expect(result.restores()).toEqual(plain.restores());
      expect(result.resolvConfReads()).toBe(0);
      expect(result.calls.filter((c) => c.file === 'ip')).toEqual([]);
    },
  );

  it('a rejected restore exits 4 with its stderr and the offending line of the text', async () => {
    const result = await run([], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'iptables-nft-restore': exited(1, 'iptables-restore: line 17 failed\n') },
    });
    expect(result.code).toBe(4);
    const text = result.restores()[0]?.input ?? '';
    const line17 = text.split('\n')[16];
    // The live OUTPUT hook sits behind Docker's jump, so lines 7-16 move the hooks to
    // the top (-D, -X, -N) and line 17 is the first appended rule; a rejected -A is not
    // retried.
    expect(line17).toMatch(/^-A ISTIO_REDIRECT /);
    expect(result.stderrLines()).toEqual([
      CONFIG_LINE,
      'mesh-init: backend: nft (its tables already hold 23 rules)',
      'mesh-init: iptables-nft-restore rejected the ipv4 rules (nothing of them was applied): exit 1: iptables-restore: line 17 failed',
      `  line 17: ${line17}`,
    ]);
    // IPv6 is not attempted once IPv4 failed.
    expect(result.restores().map((c) => c.file)).toEqual(['iptables-nft-restore']);
  });

  it("nft's longer 'line N failed: reason' also shows the line", async () => {
    const stderr =
      'iptables-nft-restore: line 8 failed: Bad rule (does a matching rule exist in that chain?).\n';
    // -b "" drops the PREROUTING hook, so the live hooks are deleted (lines 7 and 8);
    // with no retries a failing -D is reported at once.
    const result = await run(['-b', '', '--max-retries', '0'], LIVE_NFT, {
      answers: { 'iptables-nft-restore': exited(1, stderr) },
    });
    expect(result.code).toBe(4);
    const line8 = result.restores()[0]?.input?.split('\n')[7];
    expect(line8).toMatch(/^-D OUTPUT /);
    expect(result.stderr()).toContain('Bad rule (does a matching rule exist in that chain?)');
    expect(result.stderr()).toContain(`line 8: ${line8}`);
  });

  // A parse error (as opposed to a failed commit) is reported by iptables-restore
  // 1.8.x as "Error occurred at line: N".
  it('a parse error reported as "Error occurred at line: N" also shows the line', async () => {
    const stderr = [
      "iptables-restore v1.8.9 (legacy): Couldn't load target `ISTIO_OUTPUT':No such file or directory",
      '',
      'Error occurred at line: 7',
      "Try `iptables-restore -h' or 'iptables-restore --help' for more information.",
      '',
    ].join('\n');
    // Hooks that head their chains, as this version leaves them: a re-run keeps them.
    const setup: Setup = {
      ...LIVE_LEGACY,
      'legacy/ipv4': hooksFirst(fixture('iptables-legacy-save.txt')),
    };
    const result = await run(['--iptables-backend', 'legacy'], setup, {
      answers: { 'iptables-legacy-restore': exited(2, stderr) },
    });
    expect(result.code).toBe(4);
    // Line 7 of the unread first try is an -X (stale: read and plan anew); line 7 of
    // the second, planned from the live rules (hooks kept), is the first rule appended.
    expect(result.restores().map((c) => c.input?.split('\n')[6])).toEqual([
      '-X ISTIO_INBOUND',
      expect.stringMatching(/^-A ISTIO_REDIRECT /),
    ]);
    expect(result.stderrLines().at(-1)).toBe(
      `  line 7: ${result.restores()[1]?.input?.split('\n')[6]}`,
    );
  });

  it('a save that cannot be started for either backend exits 3 naming both', async () => {
    const result = await run([], LIVE_NFT, {
      answers: { 'iptables-nft-save': notFound, 'iptables-legacy-save': notFound },
    });
    expect(result.code).toBe(3);
    expect(result.restores()).toEqual([]);
    expect(result.stderrLines()).toEqual([
      DEFAULT_CONFIG_LINE,
      'mesh-init: no usable iptables backend (tried iptables-nft-save not found; iptables-legacy-save not found)',
    ]);
  });

  it('both saves failing exits 3 naming each binary once, with its exit code and stderr', async () => {
    const result = await run([], LIVE_NFT, {
      answers: {
        'iptables-nft-save': exited(4, 'iptables-nft-save v1.8.9 (nf_tables): no nf_tables\n'),
        'iptables-legacy-save': exited(1, 'Permission denied (you must be root)\n'),
      },
    });
    expect(result.code).toBe(3);
    expect(result.restores()).toEqual([]);
    expect(result.stderrLines().at(-1)).toBe(
      'mesh-init: no usable iptables backend (tried iptables-nft-save exit 4: iptables-nft-save v1.8.9 (nf_tables): no nf_tables; iptables-legacy-save exit 1: Permission denied (you must be root))',
    );
  });

  it('a forced backend whose save fails exits 3 with its stderr', async () => {
    const stderr = 'iptables-legacy-save v1.8.9 (legacy): Permission denied (you must be root)\n';
    const result = await run(['--iptables-backend', 'legacy'], LIVE_LEGACY, {
      answers: { 'iptables-legacy-save': exited(1, stderr) },
    });
    expect(result.code).toBe(3);
    // The unread first try found mesh-init's jumps and failed, changing nothing; then
    // the table could not be read.
    expect(result.applied()).toEqual([]);
    expect(result.restores()).toHaveLength(1);
    expect(result.kernel.natText('legacy/ipv4')).toBe(
      /^\*nat\n[\s\S]*?^COMMIT\n/m.exec(fixture('iptables-legacy-save.txt'))?.[0],
    );
    expect(result.stderrLines()).toEqual([
      CONFIG_LINE,
      'mesh-init: backend: legacy (set by --iptables-backend)',
      'mesh-init: cannot read the ipv4 tables: iptables-legacy-save exit 1: iptables-legacy-save v1.8.9 (legacy): Permission denied (you must be root)',
    ]);
  });

  it('an unreadable IPv6 table exits 3 before IPv4 is applied', async () => {
    const result = await run([], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-save': notFound },
    });
    expect(result.code).toBe(3);
    expect(result.restores()).toEqual([]);
    expect(result.stderr()).toContain('cannot read the ipv6 tables: ip6tables-nft-save not found');
  });

  const refusingLo = {
    globalIpv6: true,
    answers: { ip: exited(2, 'RTNETLINK answers: Operation not permitted\n') },
  };

  it("lo refusing ::6 exits 3 with ip's stderr, and the IPv6 rules are not applied", async () => {
    const result = await run([], LIVE_NFT, refusingLo);
    expect(result.code).toBe(3);
    expect(result.restores().map((c) => c.file)).not.toContain('ip6tables-nft-restore');
    expect(result.stderr()).toContain('cannot add ::6/128 to lo');
    expect(result.stderr()).toContain('RTNETLINK answers: Operation not permitted');
  });

  // README (exit code 3): "::6 could not be added to lo. Nothing was applied".
  it('lo refusing ::6 leaves nothing applied, as the README promises', async () => {
    const result = await run([], LIVE_NFT, refusingLo);
    expect(result.code).toBe(3);
    expect(result.restores()).toEqual([]);
  });

  it('a restore that cannot be started exits 3', async () => {
    const result = await run([], LIVE_NFT, { answers: { 'iptables-nft-restore': notFound } });
    expect(result.code).toBe(3);
    expect(result.stderrLines()).toEqual([
      DEFAULT_CONFIG_LINE,
      'mesh-init: backend: nft (its tables already hold 23 rules)',
      'mesh-init: cannot run iptables-nft-restore: not found',
    ]);
  });

  it('dry-run with unreadable rules still prints the rules, exits 0 and says so', async () => {
    const result = await run(['--dry-run'], LIVE_NFT, {
      answers: { 'iptables-nft-save': notFound, 'iptables-legacy-save': notFound },
    });
    expect(result.code).toBe(0);
    expect(result.restores()).toEqual([]);
    expect(result.stdout()).toBe(golden('default.ipv4.golden'));
    // No backend line: none was found. The last line still says nothing was applied.
    expect(result.stderrLines()).toEqual([
      CONFIG_LINE,
      'mesh-init: dry-run: live rules not read (no usable iptables backend (tried iptables-nft-save not found; iptables-legacy-save not found)); showing the rules for a namespace without mesh-init rules',
      'mesh-init: dry-run: printed the ipv4 text; nothing applied',
    ]);
  });

  it('dry-run with an unreadable IPv6 table: no backend line, both texts, the last line', async () => {
    const result = await run(['--dry-run'], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-save': notFound },
    });
    expect(result.code).toBe(0);
    expect(result.stdout()).toBe(golden('default.ipv4.golden') + golden('default.ipv6.golden'));
    expect(result.stderrLines()).toEqual([
      CONFIG_LINE,
      'mesh-init: dry-run: live rules not read (cannot read the ipv6 tables: ip6tables-nft-save not found); showing the rules for a namespace without mesh-init rules',
      'mesh-init: dry-run: would also run: ip -6 addr replace ::6/128 dev lo',
      'mesh-init: dry-run: printed the ipv4 and ipv6 text; nothing applied',
    ]);
  });

  it.each<[string, Partial<Deps>]>([
    [
      'the runner throws',
      {
        run: async () => {
          throw new TypeError('boom');
        },
      },
    ],
    [
      'the IPv6 probe throws',
      {
        addressFamilies: () => {
          throw new RangeError('boom');
        },
      },
    ],
  ])('an internal error (%s) exits 1 with one line and no stack trace', async (_name, broken) => {
    const system = fakeSystem(LIVE_NFT);
    const code = await main([], {}, { ...system.deps, ...broken });
    expect(code).toBe(1);
    expect(system.stderrLines()).toEqual([DEFAULT_CONFIG_LINE, 'mesh-init: internal error: boom']);
    expect(system.stdout()).toBe('');
  });
});

describe('--help and --version', () => {
  it.each([['--help'], ['-h']])('%s lists every flag and its variables, exit 0', async (flag) => {
    const { code, calls, stdout, stderr } = await run([flag]);
    expect(code).toBe(0);
    expect(calls).toEqual([]);
    expect(stderr()).toBe('');
    const help = stdout();
    expect(help).toMatch(/^mesh-init \[options\]/);
    for (const spec of FLAGS) {
      expect(help).toContain(`--${spec.name}`);
      if (spec.short) expect(help).toMatch(new RegExp(`-${spec.short}, --${spec.name}\\b`));
      for (const variable of spec.env) expect(help).toMatch(new RegExp(`\\b${variable}\\b`));
    }
    expect(help).toContain('--version');
  });

  it('--version prints the version of package.json, exit 0', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const { code, calls, stdout } = await run(['--version']);
    expect(code).toBe(0);
    expect(calls).toEqual([]);
    expect(stdout()).toBe(`${pkg.version}\n`);
  });

  it('src/version.ts is kept in step with package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(VERSION).toBe(pkg.version);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('--log-format', () => {
  const TIME = NOW.toISOString();
  const json = (lines: string[]) => lines.map((line) => JSON.parse(line));

  it.each<[string, string[], Record<string, string>]>([
    ['--log-format json', ['--log-format', 'json'], {}],
    ['--log-format=json', ['--log-format=json'], {}],
    ['MESH_INIT_LOG_FORMAT=json', [], { MESH_INIT_LOG_FORMAT: 'json' }],
  ])('%s: every stderr line is one JSON object', async (_name, argv, env) => {
    const result = await run(argv, LIVE_NFT, { env });
    expect(result.code).toBe(0);
    expect(json(result.stderrLines())).toEqual([
      {
        time: TIME,
        level: 'info',
        event: 'config',
        msg: DEFAULT_CONFIG_LINE.replace('mesh-init: ', ''),
        config: expect.objectContaining({ mode: 'apply', 'proxy-port': '15001' }),
      },
      {
        time: TIME,
        level: 'info',
        event: 'backend',
        msg: 'backend: nft (its tables already hold 23 rules)',
        backend: 'nft',
        reason: 'its tables already hold 23 rules',
      },
      {
        time: TIME,
        level: 'info',
        event: 'applied',
        // A re-run that keeps its hooks: the 15 rules in place.
        msg: expect.stringMatching(/^applied ipv4 \(15 rules\) with the nft backend; /),
        families: ['ipv4'],
        rules: [15],
        reads: 1,
      },
    ]);
  });

  it.each<[string[], Record<string, string>, string]>([
    [
      ['--log-format', 'json', '-p', '70000'],
      {},
      'invalid --proxy-port: expected an integer 1-65535, got "70000"',
    ],
    [['--bogus', '--log-format=json'], {}, 'Unknown argument: bogus'],
    [['--bogus'], { MESH_INIT_LOG_FORMAT: 'json' }, 'Unknown argument: bogus'],
    [
      ['--log-format', 'json', '--log-format', 'json'],
      {},
      'invalid --log-format: given more than once',
    ],
    [
      ['--check', '--dry-run'],
      { MESH_INIT_LOG_FORMAT: 'json' },
      'conflicting --check and --dry-run: choose one',
    ],
  ])('a usage error %j %j is JSON too', async (argv, env, msg) => {
    const result = await run(argv, LIVE_NFT, { env });
    expect(result.code).toBe(2);
    expect(result.calls).toEqual([]);
    expect(json(result.stderrLines())).toEqual([
      { time: TIME, level: 'error', event: 'failed', msg, exitCode: 2 },
    ]);
  });

  it.each<[string, string[], FakeOptions, number, string]>([
    [
      'a rejected restore (a message of two lines)',
      [],
      { answers: { 'iptables-nft-restore': exited(1, 'iptables-restore: line 17 failed\n') } },
      4,
      'failed',
    ],
    [
      'a rollback',
      [],
      {
        globalIpv6: true,
        answers: { 'ip6tables-nft-restore': exited(1, 'ip6tables-restore: line 17 failed\n') },
      },
      4,
      'failed',
    ],
    [
      'no backend',
      [],
      { answers: { 'iptables-nft-save': notFound, 'iptables-legacy-save': notFound } },
      3,
      'failed',
    ],
    // Drift is a result, not an error: its line is info, the diff goes to stdout.
    ['--check with drift', ['--check', '-p', '15002'], {}, 5, 'check'],
    // In sync as a re-run leaves the pod (LIVE_NFT's hooks are behind Docker's jump).
    ['--check in sync', ['--check'], { kernel: new FakeKernel(RERUN_NFT) }, 0, 'check'],
    ['--cleanup', ['--cleanup'], { globalIpv6: true }, 0, 'cleaned'],
    // TPROXY's route goes after the tables: its failure puts them back, exit 3.
    [
      "--cleanup, TPROXY's route not removable",
      ['--cleanup'],
      {
        kernel: new FakeKernel(LIVE_NFT, { ipv4: { routes: ['local default dev lo table 133'] } }),
        answers: {
          ip: (call, kernel) =>
            call.args[2] === 'del'
              ? exited(2, 'RTNETLINK answers: Operation not permitted\n')
              : kernel.run(call),
        },
      },
      3,
      'failed',
    ],
    ['--dry-run', ['--dry-run'], { globalIpv6: true }, 0, 'dry-run'],
    ['--skip-rule-apply', ['--skip-rule-apply', '--run-validation'], {}, 0, 'validated'],
    [
      'a failed validation',
      ['--run-validation'],
      { validation: { ok: false, detail: 'no answer' } },
      126,
      'failed',
    ],
  ])(
    '%s: still one JSON object per line, stdout untouched',
    async (_n, argv, options, code, event) => {
      const result = await run(['--log-format', 'json', ...argv], LIVE_NFT, options);
      expect(result.code).toBe(code);
      const lines = json(result.stderrLines());
      expect(lines.length).toBeGreaterThan(1);
      for (const line of lines) {
        expect(line).toMatchObject({ time: TIME, level: expect.stringMatching(/^(info|error)$/) });
        expect(typeof line.event).toBe('string');
        expect(typeof line.msg).toBe('string');
      }
      const last = lines.at(-1);
      expect(last.event).toBe(event);
      expect(last.level).toBe(event === 'failed' ? 'error' : 'info');
      if (event === 'failed') expect(last.exitCode).toBe(code);
      expect(result.stdout()).not.toMatch(/^\{/m);
    },
  );

  // Before validation the format is a guess from argv; after it, the validated one.
  it.each<[string[], Record<string, string>]>([
    [['--log_as_json=true'], {}],
    [['--log_as_json'], {}],
    [['--no-log_as_json'], { MESH_INIT_LOG_FORMAT: 'json' }],
  ])('%j %j: every stderr line of the run is JSON', async (argv, env) => {
    const result = await run(argv, LIVE_NFT, { env });
    expect(result.code).toBe(0);
    expect(json(result.stderrLines()).map((line) => line.event)).toEqual([
      'config',
      'backend',
      'applied',
    ]);
  });

  it('a note is a JSON line of its own, event "note", right after the config line', async () => {
    const result = await run(['--log-format', 'json', '--reconcile'], LIVE_NFT);
    expect(result.code).toBe(0);
    const lines = json(result.stderrLines());
    expect(lines.map((line) => line.event)).toEqual(['config', 'note', 'backend', 'applied']);
    expect(lines[1]).toEqual({
      time: TIME,
      level: 'info',
      event: 'note',
      msg: 'note: --reconcile is accepted without effect: mesh-init always replaces what an earlier run left',
    });
  });

  it.each<[string, FakeOptions, boolean]>([
    ['the tables read', { globalIpv6: true }, true],
    [
      'the tables unreadable',
      { answers: { 'iptables-nft-save': notFound, 'iptables-legacy-save': notFound } },
      false,
    ],
  ])('--dry-run, %s: the backend when found, and the last line', async (_n, options, read) => {
    const result = await run(['--log-format', 'json', '--dry-run'], LIVE_NFT, options);
    expect(result.code).toBe(0);
    const lines = json(result.stderrLines());
    const families = options.globalIpv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
    expect(lines.map((line) => line.event)).toEqual([
      'config',
      read ? 'backend' : 'dry-run',
      ...(options.globalIpv6 ? ['dry-run'] : []),
      'dry-run',
    ]);
    if (read) {
      expect(lines[1]).toEqual({
        time: TIME,
        level: 'info',
        event: 'backend',
        msg: 'backend: nft (its tables already hold 23 rules)',
        backend: 'nft',
        reason: 'its tables already hold 23 rules',
      });
    }
    expect(lines.at(-1)).toEqual({
      time: TIME,
      level: 'info',
      event: 'dry-run',
      msg: `dry-run: printed the ${families.join(' and ')} text; nothing applied`,
      families,
    });
  });

  it('an internal error is JSON with exit code 1', async () => {
    const system = fakeSystem(LIVE_NFT);
    const code = await main(
      ['--log-format', 'json'],
      {},
      {
        ...system.deps,
        run: async () => {
          throw new TypeError('boom');
        },
      },
    );
    expect(code).toBe(1);
    expect(json(system.stderrLines()).at(-1)).toEqual({
      time: TIME,
      level: 'error',
      event: 'failed',
      msg: 'internal error: boom',
      exitCode: 1,
    });
  });

  it.each<[string, string[], Record<string, string>, string]>([
    [
      '--log-format text beats the variable',
      ['--log-format', 'text'],
      { MESH_INIT_LOG_FORMAT: 'json' },
      'mesh-init: applied ',
    ],
    [
      'a bad --log-format is reported as text',
      ['--log-format', 'xml'],
      { MESH_INIT_LOG_FORMAT: 'json' },
      'mesh-init: invalid --log-format: expected one of text, json, got "xml"',
    ],
    [
      'a bad variable is reported as text',
      [],
      { MESH_INIT_LOG_FORMAT: 'JSON' },
      'mesh-init: invalid --log-format (from MESH_INIT_LOG_FORMAT): expected one of text, json, got "JSON"',
    ],
  ])('%s', async (_name, argv, env, last) => {
    const result = await run(argv, LIVE_NFT, { env });
    expect(result.stderrLines().at(-1)?.startsWith(last)).toBe(true);
    for (const line of result.stderrLines()) expect(line).toMatch(/^mesh-init: /);
  });

  it.each<[string, string[], FakeOptions]>([
    ['apply', [], { globalIpv6: true }],
    ['--check', ['--check'], {}],
    ['--cleanup', ['--cleanup'], {}],
    ['--dry-run', ['--dry-run'], { globalIpv6: true }],
    ['validation', ['--run-validation'], { validation: { ok: false, detail: 'no answer' } }],
    ['a usage error', ['-p', '0'], {}],
    [
      'no backend',
      [],
      { answers: { 'iptables-nft-save': notFound, 'iptables-legacy-save': notFound } },
    ],
  ])('text, %s: every line starts with "mesh-init: "', async (_name, argv, options) => {
    const result = await run(argv, LIVE_NFT, options);
    expect(result.stderrLines().length).toBeGreaterThan(0);
    for (const line of result.stderrLines()) expect(line).toMatch(/^mesh-init: /);
  });

  it('text: the offending line of a rejected restore is an indented continuation', async () => {
    // Line 17: the first -A over LIVE_NFT, whose hooks are moved first (lines 7-16).
    const result = await run([], LIVE_NFT, {
      answers: { 'iptables-nft-restore': exited(1, 'iptables-restore: line 17 failed\n') },
    });
    expect(result.stderrLines().at(-1)).toMatch(/^ {2}line 17: -A /);
  });

  // A message of several lines is written after one "mesh-init: " prefix; its other
  // lines, the offending line of a rejected restore and the rollback notes ("ipv4 was
  // put back as it was", "putting ipv4 back failed too: …") alike, are indented under
  // it, so none reads like another program's output.
  it('text, a rollback: every line is prefixed or an indented continuation', async () => {
    const result = await run([], LIVE_NFT, {
      globalIpv6: true,
      answers: { 'ip6tables-nft-restore': exited(1, 'ip6tables-restore: line 17 failed\n') },
    });
    expect(result.code).toBe(4);
    expect(result.stderrLines()).toContain('  ipv4 nat was put back as it was');
    for (const line of result.stderrLines()) expect(line).toMatch(/^(mesh-init: | {2})/);
  });
});
