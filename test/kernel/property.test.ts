/**
 * Property tests of the command line: thousands of random argv and environment
 * combinations either give restore text that the real iptables-restore --test
 * accepts (or, with --native-nftables, an nft script that `nft -c` accepts), or
 * exit 2 with a message naming a flag. Never a crash, never a stack
 * trace. Everything runs in-process through main() (dry-run, no live table), then
 * the texts go through the real binaries in a throw-away namespace.
 */
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../src/cli/cli.js';
import { FLAGS } from '../../src/config/flags.js';
import { Pod } from './pod.js';
import { kernelSuite } from './suite.js';

/** Mostly plausible values, sometimes wrong ones: both outcomes must occur often. */
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });

const port = mostly(
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.constantFrom('0', '65536', '70000', '-1', 'abc', '', '1.5', '0080'),
);
const ports = fc.oneof(
  fc.array(port, { maxLength: 4 }).map((list) => list.join(',')),
  fc.constantFrom('*', '', ' 443 ', '80,,443,'),
);
const id = mostly(
  fc.integer({ min: 0, max: 4294967294 }).map(String),
  fc.constantFrom('-5', 'root', '4294967295', '1.0'),
);
const ids = fc.array(id, { minLength: 1, maxLength: 3 }).map((list) => list.join(','));
const cidr = mostly(
  fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}/${p}`),
    fc.ipV4(),
  ),
  fc.constantFrom('10.0.0.0/33', '1.2.3', '::ffff:1.2.3.4/128', 'fe80::1%eth0', '*', 'x/8'),
);
const cidrs = fc.oneof(
  fc.array(cidr, { maxLength: 3 }).map((list) => list.join(',')),
  fc.constant('*'),
);
const seconds = mostly(
  fc.oneof(fc.constantFrom('0', '1', '0.5', '10'), fc.integer({ min: 0, max: 60 }).map(String)),
  fc.constantFrom('-1', 'soon', '1e3', '', '5000'),
);

/** A value for each flag: mostly plausible, sometimes wrong. */
const VALUES: Record<string, fc.Arbitrary<string>> = {
  'proxy-port': port,
  'inbound-capture-port': port,
  'proxy-uid': ids,
  'proxy-gid': ids,
  'inbound-interception-mode': mostly(
    fc.constant('REDIRECT'),
    fc.constantFrom('TPROXY', 'redirect', 'NAT', ''),
  ),
  'inbound-ports': ports,
  'inbound-exclude-ports': ports,
  'outbound-include-cidrs': cidrs,
  'outbound-exclude-cidrs': cidrs,
  'outbound-exclude-ports': ports,
  'outbound-include-ports': ports,
  ipv6: mostly(fc.constantFrom('auto', 'true', 'false', 'TRUE', ''), fc.constantFrom('yes', '2')),
  'iptables-backend': mostly(fc.constantFrom('auto', 'legacy', 'nft', 'NFT'), fc.constant('xt')),
  'chain-prefix': mostly(
    fc.constantFrom('ISTIO_', 'MESH_', 'm-', 'A'.repeat(17)),
    fc.constantFrom('_BAD', 'A'.repeat(18), 'a b', ''),
  ),
  wait: seconds,
  'max-retries': seconds,
  'retry-interval': seconds,
  'probe-address': mostly(fc.ipV4(), fc.constantFrom('::1', 'x', '')),
  'probe-port': port,
  'probe-timeout': seconds,
  'log-format': mostly(fc.constantFrom('text', 'json'), fc.constant('xml')),
};
const BOOLEANS = ['cleanup', 'check', 'run-validation', 'skip-rule-apply'];

const flagArgs = fc
  .array(
    fc.oneof(
      {
        weight: 30,
        arbitrary: fc.constantFrom(...Object.keys(VALUES)).chain((name) =>
          (VALUES[name] ?? fc.constant('')).chain((value) => {
            const flag = FLAGS.find((f) => f.name === name);
            const spellings = [[`--${name}`, value], [`--${name}=${value}`]];
            if (flag?.short) spellings.push([`-${flag.short}`, value]);
            return fc.constantFrom(...spellings);
          }),
        ),
      },
      { arbitrary: fc.constantFrom(...BOOLEANS).map((name) => [`--${name}`]), weight: 1 },
      { arbitrary: fc.constantFrom(['--bogus'], ['-Z', '1'], ['stray']), weight: 1 },
    ),
    { maxLength: 6 },
  )
  .map((groups) => groups.flat());

const envArgs = fc.dictionary(
  fc.constantFrom(...FLAGS.filter((f) => f.type === 'string').flatMap((f) => f.env)),
  fc.oneof(port, ports, cidrs, fc.constantFrom('auto', 'json', 'legacy')),
  { maxKeys: 3 },
);

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function dryRun(argv: string[], env: Record<string, string>): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const code = await main(['--dry-run', ...argv], env, {
    // No live table to read: the texts are those for a fresh namespace.
    run: async () => ({ exitCode: 1, stdout: '', stderr: 'no table in this test' }),
    addressFamilies: () => ({ ipv4: false, ipv6: true }),
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    sleep: async () => {},
    now: () => new Date(0),
    random: () => 0,
    validate: async () => ({ ok: true, detail: 'not run' }),
    readResolvConf: async () => '',
    // Group names resolve as in an init container with Debian's groups.
    readGroupFile: async () => 'root:x:0:\ndaemon:x:1:\nadm:x:4:\nnogroup:x:65534:\n',
  });
  return { code, stdout, stderr };
}

kernelSuite('command line properties', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
  });
  afterAll(async () => net?.destroy());

  it('random argv and environment: valid restore text or nft script, or exit 2 naming a flag', async () => {
    const texts = new Map<string, 'ipv4' | 'ipv6'>();
    const scripts = new Set<string>();
    let usageErrors = 0;
    // A third of the runs with --native-nftables, anywhere in argv or from NATIVE_NFTABLES.
    const native = fc.constantFrom('', '', '', '', 'flag', 'env');
    await fc.assert(
      fc.asyncProperty(flagArgs, envArgs, native, async (given, givenEnv, how) => {
        const argv = how === 'flag' ? ['--native-nftables', ...given] : given;
        const env = how === 'env' ? { ...givenEnv, NATIVE_NFTABLES: 'true' } : givenEnv;
        const { code, stdout, stderr } = await dryRun(argv, env);
        expect(stderr).not.toMatch(/internal error|\n\s+at /);
        if (code === 2) {
          usageErrors++;
          expect(stderr).toMatch(/--[a-z][a-z0-9-]*|Unknown argument|Not enough arguments/);
          expect(stdout).toBe('');
          return;
        }
        expect(code).toBe(0);
        if (how !== '') {
          // One script for both families, as apply feeds it to nft -f.
          expect(stdout).toMatch(/^# mesh-init: .*inet tables/);
          scripts.add(stdout);
          return;
        }
        for (const text of stdout.split(/(?=^# mesh-init: )/m)) {
          texts.set(text, text.startsWith('# mesh-init: ipv6') ? 'ipv6' : 'ipv4');
        }
      }),
      { numRuns: 3000 },
    );
    // Both outcomes must really occur, or the generators are too narrow.
    expect(usageErrors).toBeGreaterThan(500);
    expect(texts.size).toBeGreaterThan(400);
    expect(scripts.size).toBeGreaterThan(80);

    const rejected: string[] = [];
    const queue = [...texts];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
          const [text, family] = next;
          // Alternate the backends, so that each of them checks half of the texts.
          const backend = queue.length % 2 === 0 ? 'legacy' : 'nft';
          const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-restore`;
          const result = await execa(
            'ip',
            ['netns', 'exec', net.pod, tool, '--test', '--noflush'],
            {
              input: text,
              reject: false,
            },
          );
          if (result.exitCode !== 0) rejected.push(`${tool}: ${result.stderr}\n${text}`);
        }
      }),
    );
    // Every script through the kernel's check (nft -c: checked, then thrown away).
    const nftQueue = [...scripts];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let script = nftQueue.pop(); script !== undefined; script = nftQueue.pop()) {
          const result = await execa('ip', ['netns', 'exec', net.pod, 'nft', '-c', '-f', '-'], {
            input: script,
            reject: false,
          });
          if (result.exitCode !== 0) rejected.push(`nft -c: ${result.stderr}\n${script}`);
        }
      }),
    );
    expect(rejected.slice(0, 3)).toEqual([]);
  }, 180_000);

  it('the real binary: exit 0 or 2, never a stack trace', async () => {
    const samples = fc.sample(fc.tuple(flagArgs, envArgs), { numRuns: 60, seed: 7 });
    const results = [];
    for (let i = 0; i < samples.length; i += 6) {
      results.push(
        ...(await Promise.all(
          samples
            .slice(i, i + 6)
            .map(([argv, env]) =>
              net.meshInit(['--dry-run', '--iptables-backend', 'legacy', ...argv], env),
            ),
        )),
      );
    }
    for (const result of results) {
      expect([0, 2], result.stderr).toContain(result.exitCode);
      expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
    }
  }, 120_000);
});
