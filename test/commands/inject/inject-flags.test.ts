/**
 * Config → argv for the injected init container: what the pod runs must be what
 * was validated at injection, so parsing the rendered flags gives the same Config.
 */
import { describe, expect, it } from 'vitest';
import { FLAGS } from '../../../src/config/flags.js';
import { renderFlags, UNRENDERED_FLAGS } from '../../../src/config/render-flags.js';
import { configFrom } from '../../config-from.js';

describe('renderFlags', () => {
  it("writes the seed's -p 15001 -u 1337 for the defaults, and nothing else", async () => {
    expect(renderFlags(await configFrom([]))).toEqual(['-p', '15001', '-u', '1337']);
  });

  it.each<[string, string[], string[]]>([
    [
      'defaults written out leave nothing extra',
      ['-b', '*', '-i', '*', '-m', 'REDIRECT', '--ipv6', 'auto'],
      ['-p', '15001', '-u', '1337'],
    ],
    [
      "Istio's injector argv",
      [
        '-p',
        '15001',
        '-z',
        '15006',
        '-u',
        '1337',
        '-m',
        'REDIRECT',
        '-i',
        '*',
        '-x',
        '',
        '-b',
        '*',
        '-d',
        '15090,15021,15020',
      ],
      ['-p', '15001', '-z', '15006', '-u', '1337', '-d', '15090,15021,15020'],
    ],
    [
      'lists normalised: blanks, duplicates, network addresses',
      ['-x', ' 10.1.2.3/8, 10.0.0.0/8 ,192.168.0.1', '-o', '22, 22,3306'],
      ['-p', '15001', '-u', '1337', '-x', '10.0.0.0/8,192.168.0.1/32', '-o', '22,3306'],
    ],
    [
      'empty selections stay empty',
      ['-b', '', '-i', ''],
      ['-p', '15001', '-u', '1337', '-b', '', '-i', ''],
    ],
    [
      'a GID list of its own',
      ['-u', '1337,1338', '-g', '1400'],
      ['-p', '15001', '-u', '1337,1338', '-g', '1400'],
    ],
    [
      'TPROXY with its mark and table',
      ['-m', 'TPROXY', '-t', '7', '-r', '100'],
      ['-p', '15001', '-u', '1337', '-m', 'TPROXY', '-t', '7', '-r', '100'],
    ],
    [
      'booleans bare, long names where there is no letter',
      ['--redirect-dns', '--capture-all-dns', '--dns-port', '5353', '--drop-invalid'],
      [
        '-p',
        '15001',
        '-u',
        '1337',
        '--redirect-dns',
        '--capture-all-dns',
        '--dns-port',
        '5353',
        '--drop-invalid',
      ],
    ],
    [
      'validation only (CNI mode)',
      ['--run-validation', '--skip-rule-apply', '--probe-timeout', '0.5'],
      [
        '-p',
        '15001',
        '-u',
        '1337',
        '--run-validation',
        '--skip-rule-apply',
        '--probe-timeout',
        '0.5',
      ],
    ],
    [
      'retries and the rest',
      [
        '--wait',
        '0',
        '--max-retries',
        '7',
        '--retry-interval',
        '1.5',
        '--ipv6',
        'false',
        '--iptables-backend',
        'nft',
        '--chain-prefix',
        'MESH_',
        '--log-format',
        'json',
        '-k',
        'eth1',
        '-c',
        'eth2',
        '-q',
        '443',
      ],
      [
        '-p',
        '15001',
        '-u',
        '1337',
        '-q',
        '443',
        '--ipv6',
        'false',
        '--iptables-backend',
        'nft',
        '--wait',
        '0',
        '--max-retries',
        '7',
        '--retry-interval',
        '1.5',
        '--log-format',
        'json',
        '-k',
        'eth1',
        '-c',
        'eth2',
        '--chain-prefix',
        'MESH_',
      ],
    ],
    [
      "Istio's spellings become the flags they mean",
      ['--log_as_json', '--log_output_level', 'default:info', '--force-apply'],
      ['-p', '15001', '-u', '1337', '--log-format', 'json'],
    ],
  ])('%s', async (_, argv, expected) => {
    expect(renderFlags(await configFrom(argv))).toEqual(expected);
  });

  it.each<[string, string[]]>([
    ['defaults', []],
    [
      'everything at once',
      [
        '-p',
        '15010',
        '-z',
        '15006',
        '-u',
        '0,1337',
        '-g',
        '7',
        '-m',
        'TPROXY',
        '-t',
        '99',
        '-r',
        '77',
        '-b',
        '80,443',
        '-d',
        '15090',
        '-i',
        '10.0.0.0/8,fd00::/8',
        '-x',
        '10.96.0.1',
        '-o',
        '22',
        '-q',
        '8443',
        '--ipv6',
        'true',
        '--iptables-backend',
        'legacy',
        '--wait',
        '30',
        '--max-retries',
        '0',
        '--retry-interval',
        '0.25',
        '--run-validation',
        '--probe-address',
        '192.0.2.9',
        '--probe-port',
        '15099',
        '--probe-timeout',
        '2',
        '--log-format',
        'json',
        '-k',
        'eth1,net+',
        '-c',
        'eth9',
        '--redirect-dns',
        '--dns-port',
        '15054',
        '--drop-invalid',
        '--chain-prefix',
        'X_',
      ],
    ],
    ['cleanup', ['--cleanup', '-t', '5']],
    ['check, nothing captured', ['--check', '-b', '', '-i', '']],
    ['dry-run', ['-n', '--redirect-dns', '--capture-all-dns']],
  ])('round trip: %s parses back to the same Config', async (_, argv) => {
    const config = await configFrom(argv);
    expect(await configFrom(renderFlags(config))).toEqual(config);
  });

  it('renders every flag that carries a choice, and names those that do not', async () => {
    // A flag added to the table without a renderer would silently vanish from injected pods.
    const everything = await configFrom([
      '-z',
      '1',
      '-g',
      '2',
      '-m',
      'TPROXY',
      '-t',
      '3',
      '-r',
      '4',
      '-b',
      '5',
      '-d',
      '6',
      '-i',
      '10.0.0.0/8',
      '-x',
      '10.1.0.0/16',
      '-o',
      '7',
      '-q',
      '8',
      '--ipv6',
      'true',
      '--iptables-backend',
      'nft',
      '--wait',
      '9',
      '--max-retries',
      '1',
      '--retry-interval',
      '2',
      '--run-validation',
      '--skip-rule-apply',
      '--probe-address',
      '192.0.2.2',
      '--probe-port',
      '9',
      '--probe-timeout',
      '1',
      '--log-format',
      'json',
      '-k',
      'a',
      '-c',
      'b',
      '--redirect-dns',
      '--capture-all-dns',
      '--dns-port',
      '53',
      '--drop-invalid',
      '--chain-prefix',
      'Y_',
      '-e',
      '15009',
      '--outbound-owner-groups',
      '1001',
      '--ipv4-loopback-cidr',
      '127.0.0.1/8',
      '--dual-stack',
    ]);
    // What cannot go with the above: an owner-group exclusion (only beside "*"), and a
    // namespace (not with --run-validation).
    const rest = await configFrom([
      ...['--outbound-owner-groups-exclude', '888'],
      ...['--network-namespace', '/var/run/netns/pod'],
    ]);
    const rendered = new Set([...renderFlags(everything), ...renderFlags(rest)]);
    const spelled = (flag: (typeof FLAGS)[number]) =>
      flag.short ? `-${flag.short}` : `--${flag.name}`;
    const modes = FLAGS.filter((flag) => ['dry-run', 'cleanup', 'check'].includes(flag.name));
    for (const mode of modes) {
      expect(renderFlags(await configFrom([`--${mode.name}`]))).toContain(spelled(mode));
    }
    const missing = FLAGS.filter(
      (flag) =>
        !UNRENDERED_FLAGS.includes(flag.name) &&
        !modes.includes(flag) &&
        !rendered.has(spelled(flag)),
    ).map((flag) => flag.name);
    expect(missing).toEqual([]);
  });
});
