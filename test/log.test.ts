/**
 * The log lines on stderr: one per event, `mesh-init: <message>` or one JSON object,
 * and the `config:` line every run starts with.
 */
import { describe, expect, it } from 'vitest';
import { FLAGS } from '../src/config/flags.js';
import { createLogger, describeConfig, formatConfig } from '../src/log.js';
import { configFrom, type Env } from './config-from.js';

function recorder(format: 'text' | 'json') {
  const lines: string[] = [];
  const times = ['2026-11-26T00:00:00.000Z', '2026-11-26T00:00:01.500Z'];
  let clock = 0;
  const log = createLogger(
    format,
    (line) => lines.push(line),
    () => new Date(times[clock++ % times.length] ?? 0),
  );
  return { log, lines, reads: () => clock };
}

describe('createLogger', () => {
  it('text: one line per event, "mesh-init: " and the message; fields are not shown', () => {
    const { log, lines, reads } = recorder('text');
    log.info('backend', 'backend: nft (its tables already hold 20 rules)', { backend: 'nft' });
    log.error('failed', 'invalid --proxy-port: expected an integer 1-65535, got "0"', {
      exitCode: 2,
    });
    expect(lines).toEqual([
      'mesh-init: backend: nft (its tables already hold 20 rules)\n',
      'mesh-init: invalid --proxy-port: expected an integer 1-65535, got "0"\n',
    ]);
    expect(reads()).toBe(0);
  });

  it('json: one object per line with time, level, event, msg, then the fields', () => {
    const { log, lines } = recorder('json');
    log.info('applied', 'applied ipv4 (12 rules)', { families: ['ipv4'], rules: [12] });
    log.error('failed', 'no usable iptables backend', { exitCode: 3 });
    expect(lines.every((line) => line.endsWith('}\n') && !line.slice(0, -1).includes('\n'))).toBe(
      true,
    );
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      {
        time: '2026-11-26T00:00:00.000Z',
        level: 'info',
        event: 'applied',
        msg: 'applied ipv4 (12 rules)',
        families: ['ipv4'],
        rules: [12],
      },
      {
        time: '2026-11-26T00:00:01.500Z',
        level: 'error',
        event: 'failed',
        msg: 'no usable iptables backend',
        exitCode: 3,
      },
    ]);
    expect(Object.keys(JSON.parse(lines[0] ?? '{}')).slice(0, 4)).toEqual([
      'time',
      'level',
      'event',
      'msg',
    ]);
  });

  it('json: a message of several lines, quotes and backslashes stays one line', () => {
    const { log, lines } = recorder('json');
    const message = 'rejected: exit 1\n  line 7: -A X -m comment --comment "a \\"b\\""';
    log.error('failed', message);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.split('\n')).toEqual([expect.any(String), '']);
    expect(JSON.parse(lines[0] ?? '{}').msg).toBe(message);
  });
});

describe('describeConfig and formatConfig', () => {
  const DEFAULTS = {
    mode: 'apply',
    'proxy-port': '15001',
    'inbound-capture-port': '15001',
    'inbound-tunnel-port': '15008',
    'proxy-uid': '1337',
    'proxy-gid': '1337',
    'inbound-ports': '*',
    'inbound-exclude-ports': '',
    'outbound-include-cidrs': '*',
    'outbound-exclude-cidrs': '',
    'outbound-exclude-ports': '',
    'outbound-include-ports': '',
    'outbound-owner-groups': '*',
    'ipv4-loopback-cidr': '127.0.0.1/32',
    'kube-virt-interfaces': '',
    'exclude-interfaces': '',
    'inbound-interception-mode': 'REDIRECT',
    'redirect-dns': 'false',
    'drop-invalid': 'false',
    ipv6: 'auto',
    'dual-stack': 'false',
    'iptables-backend': 'auto',
    'chain-prefix': 'ISTIO_',
    wait: '10',
    'max-retries': '3',
    'retry-interval': '1',
    'run-validation': 'false',
  };
  /** Shown only when the run validates. */
  // No --probe-address: chosen at run time, by the UID mesh-init runs as.
  const PROBE = { 'probe-address': '', 'probe-port': '15002', 'probe-timeout': '5' };

  it.each<[string, string[], Record<string, string>]>([
    ['defaults', [], {}],
    [
      "Istio's injector argv",
      [
        ...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT'],
        ...['-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'],
      ],
      { 'inbound-capture-port': '15006', 'inbound-exclude-ports': '15090,15021,15020' },
    ],
    [
      'lists, normalised',
      [
        ...['-u', '1337,0', '-g', '1338', '-b', '8080,9090', '-o', '53,3306', '-q', '443'],
        ...['-i', '10.1.2.3/8,FD00:10:96::1/112', '-x', '10.96.0.1', '--ipv6', 'true'],
      ],
      {
        'proxy-uid': '1337,0',
        'proxy-gid': '1338',
        'inbound-ports': '8080,9090',
        'outbound-exclude-ports': '53,3306',
        'outbound-include-ports': '443',
        'outbound-include-cidrs': '10.0.0.0/8,fd00:10:96::/112',
        'outbound-exclude-cidrs': '10.96.0.1/32',
        ipv6: 'true',
      },
    ],
    ['no capture', ['-b', '', '-i', ''], { 'inbound-ports': '', 'outbound-include-cidrs': '' }],
    // Issue 14: Istio's tunnel port, owner groups, loopback range and network namespace.
    ['-e', ['-e', '15009'], { 'inbound-tunnel-port': '15009' }],
    [
      '--outbound-owner-groups: names and GIDs as given',
      ['--outbound-owner-groups', 'istio-app, 1001,istio-app'],
      { 'outbound-owner-groups': 'istio-app,1001' },
    ],
    [
      '--outbound-owner-groups-exclude: shown with "*"',
      ['--outbound-owner-groups-exclude', '888,wheel'],
      { 'outbound-owner-groups-exclude': '888,wheel' },
    ],
    // Without effect beside a list (a note says so): not shown.
    [
      '--outbound-owner-groups-exclude beside a list: not shown',
      ['--outbound-owner-groups', '1001', '--outbound-owner-groups-exclude', '888'],
      { 'outbound-owner-groups': '1001' },
    ],
    [
      '--outbound-owner-groups "": no group captured',
      ['--outbound-owner-groups', ''],
      { 'outbound-owner-groups': '' },
    ],
    [
      '--ipv4-loopback-cidr, normalised',
      ['--ipv4-loopback-cidr', '127.0.0.1/8'],
      { 'ipv4-loopback-cidr': '127.0.0.0/8' },
    ],
    [
      '--network-namespace: shown when set',
      ['--network-namespace', '/var/run/netns/pod'],
      { 'network-namespace': '/var/run/netns/pod' },
    ],
    ['--network-namespace "": not shown', ['--network-namespace', ''], {}],
    [
      '--force-iptables-binary is the backend',
      ['--force-iptables-binary', 'legacy'],
      { 'iptables-backend': 'legacy' },
    ],
    [
      'Go durations are shown in seconds',
      ['--run-validation', '--probe-timeout', '1m30s', '--retry-interval', '500ms'],
      { 'run-validation': 'true', ...PROBE, 'probe-timeout': '90', 'retry-interval': '0.5' },
    ],
    // Accepted without effect: the config is the default one (the notes say why).
    ["Istio's flags without effect", ['--reconcile', '--cni-mode', '--force-apply'], {}],
    [
      'interfaces, normalised',
      ['-k', ' eth1,veth+ ,eth1', '-c', 'br-01.2,'],
      { 'kube-virt-interfaces': 'eth1,veth+', 'exclude-interfaces': 'br-01.2' },
    ],
    ['empty interface lists', ['-k', '', '-c', ' '], {}],
    [
      '--no-ipv6, legacy, prefix',
      ['--no-ipv6', '--iptables-backend', 'legacy', '--chain-prefix', 'MESH_'],
      { ipv6: 'false', 'iptables-backend': 'legacy', 'chain-prefix': 'MESH_' },
    ],
    // TPROXY's mark and route table matter only with TPROXY (see below without it).
    [
      '-m TPROXY: its mark and route table are shown',
      ['-m', 'TPROXY'],
      {
        'inbound-interception-mode': 'TPROXY',
        'inbound-tproxy-mark': '1337',
        'inbound-tproxy-route-table': '133',
      },
    ],
    [
      '-m TPROXY with -t and -r',
      ['-m', 'TPROXY', '-t', '7', '-r', '77'],
      {
        'inbound-interception-mode': 'TPROXY',
        'inbound-tproxy-mark': '7',
        'inbound-tproxy-route-table': '77',
      },
    ],
    [
      '--redirect-dns: the port and whether all DNS is captured',
      ['--redirect-dns'],
      { 'redirect-dns': 'true', 'capture-all-dns': 'false', 'dns-port': '15053' },
    ],
    [
      '--redirect-dns --capture-all-dns --dns-port',
      ['--redirect-dns', '--capture-all-dns', '--dns-port', '5353'],
      { 'redirect-dns': 'true', 'capture-all-dns': 'true', 'dns-port': '5353' },
    ],
    ['--drop-invalid', ['--drop-invalid'], { 'drop-invalid': 'true' }],
    ['--dry-run', ['--dry-run'], { mode: 'apply (dry-run)' }],
    ['--cleanup', ['--cleanup'], { mode: 'cleanup' }],
    ['--cleanup --dry-run', ['--cleanup', '--dry-run'], { mode: 'cleanup (dry-run)' }],
    ['--check', ['--check'], { mode: 'check' }],
    [
      'retry flags',
      ['--wait', '0', '--max-retries', '7', '--retry-interval', '0.25'],
      { wait: '0', 'max-retries': '7', 'retry-interval': '0.25' },
    ],
    [
      '--probe-* without --run-validation: not shown',
      ['--probe-address', '10.0.0.1', '--probe-port', '8080', '--probe-timeout', '2'],
      {},
    ],
    [
      '--run-validation: the probe is shown',
      ['--run-validation'],
      { 'run-validation': 'true', ...PROBE },
    ],
    [
      '--run-validation with the probe set',
      [
        ...['--run-validation', '--probe-address', '10.0.0.1'],
        ...['--probe-port', '8080', '--probe-timeout', '0.5'],
      ],
      {
        'run-validation': 'true',
        'probe-address': '10.0.0.1',
        'probe-port': '8080',
        'probe-timeout': '0.5',
      },
    ],
    [
      '--run-validation with an address of each family: IPv4 first',
      ['--run-validation', '--probe-address', 'fd00::1,10.0.0.1'],
      { 'run-validation': 'true', ...PROBE, 'probe-address': '10.0.0.1,fd00::1' },
    ],
    [
      '--skip-rule-apply: validate only',
      ['--skip-rule-apply', '--run-validation'],
      { mode: 'validate only', 'run-validation': 'true', ...PROBE },
    ],
  ])('%s', async (_name, argv, changed) => {
    expect(describeConfig(await configFrom(argv))).toEqual({ ...DEFAULTS, ...changed });
  });

  // TPROXY's mark and route table matter only with TPROXY, DNS's port only with DNS
  // capture. As flags they need their mode; Istio's variables, set for every pod, wait.
  it.each<[string, Env]>([
    [
      '-t and -r from their variables, without TPROXY',
      { INBOUND_TPROXY_MARK: '7', INBOUND_TPROXY_ROUTE_TABLE: '77' },
    ],
    ['--dns-port from its variable, without --redirect-dns', { MESH_INIT_DNS_PORT: '5353' }],
  ])('%s: not shown', async (_name, env) => {
    expect(describeConfig(await configFrom([], env))).toEqual(DEFAULTS);
  });

  it('every key is a flag a user can write, or the mode', () => {
    const names = FLAGS.map((flag) => flag.name);
    for (const key of Object.keys({ ...DEFAULTS, ...PROBE })) {
      if (key !== 'mode') expect(names).toContain(key);
    }
  });

  it('formatConfig: key=value in that order, "" for an empty value', async () => {
    expect(formatConfig(await configFrom([]))).toBe(
      'mode=apply proxy-port=15001 inbound-capture-port=15001 inbound-tunnel-port=15008 proxy-uid=1337 proxy-gid=1337 inbound-ports=* inbound-exclude-ports="" outbound-include-cidrs=* outbound-exclude-cidrs="" outbound-exclude-ports="" outbound-include-ports="" outbound-owner-groups=* ipv4-loopback-cidr=127.0.0.1/32 kube-virt-interfaces="" exclude-interfaces="" inbound-interception-mode=REDIRECT redirect-dns=false drop-invalid=false ipv6=auto dual-stack=false iptables-backend=auto chain-prefix=ISTIO_ wait=10 max-retries=3 retry-interval=1 run-validation=false',
    );
    expect(formatConfig(await configFrom(['--dry-run', '-b', '', '-o', '22,53']))).toMatch(
      /^mode=apply \(dry-run\) .* inbound-ports="" .* outbound-exclude-ports=22,53 /,
    );
    expect(formatConfig(await configFrom(['-k', 'eth1,veth+', '-c', 'eth2']))).toContain(
      ' ipv4-loopback-cidr=127.0.0.1/32 kube-virt-interfaces=eth1,veth+ exclude-interfaces=eth2 inbound-interception-mode=REDIRECT ',
    );
    // The owner groups after the outbound ports, the namespace after the chain prefix.
    expect(
      formatConfig(
        await configFrom([
          ...['--outbound-owner-groups-exclude', '888', '--network-namespace', '/proc/1/ns/net'],
        ]),
      ),
    ).toMatch(
      / outbound-include-ports="" outbound-owner-groups=\* outbound-owner-groups-exclude=888 ipv4-loopback-cidr=127\.0\.0\.1\/32 .* chain-prefix=ISTIO_ network-namespace=\/proc\/1\/ns\/net wait=10 /,
    );
    expect(
      formatConfig(
        await configFrom(['-m', 'TPROXY', '--redirect-dns', '--capture-all-dns', '--drop-invalid']),
      ),
    ).toContain(
      ' exclude-interfaces="" inbound-interception-mode=TPROXY inbound-tproxy-mark=1337 inbound-tproxy-route-table=133 redirect-dns=true capture-all-dns=true dns-port=15053 drop-invalid=true ipv6=auto dual-stack=false ',
    );
  });

  // The config line every run logs names every setting that changes what the run
  // does, so a log tells whether a run validated and how long it waited; the mode
  // folds in --dry-run, --cleanup, --check and --skip-rule-apply.
  it('names every setting that changes what a run does', async () => {
    // Each feature on, so that the settings shown only with it (-t, -r, --dns-port) show.
    const described = describeConfig(
      await configFrom([
        ...['--skip-rule-apply', '--run-validation'],
        ...['-m', 'TPROXY', '--redirect-dns', '--drop-invalid'],
      ]),
    );
    // What --run-validation does not go with, and what shows only beside "*": another run.
    const elsewhere = describeConfig(
      await configFrom([
        ...['--network-namespace', '/var/run/netns/pod'],
        ...['--outbound-owner-groups-exclude', '888'],
      ]),
    );
    const shown = [...Object.keys(described), ...Object.keys(elsewhere)];
    // In the mode (--skip-rule-apply as "validate only"), output only, or refused.
    const folded = [
      ...['dry-run', 'cleanup', 'check', 'skip-rule-apply'],
      ...['log-format', 'log_as_json', 'log_output_level'],
      // Accepted from Istio without effect, each with a note that says why.
      ...['force-apply', 'reconcile', 'cni-mode'],
      // Istio's spelling of --iptables-backend, shown as that.
      'force-iptables-binary',
      // Named in --iptables-backend's place when on (tested below).
      'native-nftables',
    ];
    for (const flag of FLAGS) {
      if (!folded.includes(flag.name)) {
        expect(shown).toContain(flag.name);
      } else {
        expect(shown).not.toContain(flag.name);
      }
    }
    // Not mode=apply while nothing is applied.
    expect(described.mode).toBe('validate only');
  });

  it('with --native-nftables the iptables backend, which it does not use, is left out', async () => {
    const described = describeConfig(await configFrom(['--native-nftables']));
    expect(described['native-nftables']).toBe('true');
    expect(described).not.toHaveProperty('iptables-backend');
    expect(describeConfig(await configFrom([]))).not.toHaveProperty('native-nftables');
  });

  // Istio's log flags: --log_as_json is the log format (output only, like --log-format),
  // --log_output_level has no effect; neither shows, and the rules config is the same.
  it("Istio's log flags change nothing the config line shows", async () => {
    const injected = [
      'istio-iptables',
      ...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT'],
      ...['-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'],
      '--log_output_level=default:info',
    ];
    const expected = formatConfig(await configFrom(injected.slice(1, -1)));
    expect(formatConfig(await configFrom(injected))).toBe(expected);
    expect(formatConfig(await configFrom([...injected, '--log_as_json']))).toBe(expected);
  });
});
