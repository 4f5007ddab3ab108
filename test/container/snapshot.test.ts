// The image starts mesh-init from a V8 start-up snapshot (image/Dockerfile,
// docs/startup.md). A snapshot must not change what the program does: here the
// image's own entrypoint and the plain bundle, run by the same node in the same
// image, get the same command lines and environments and must print the same
// stdout and stderr and exit with the same code (JSON log lines compared with their
// timestamp masked). The npm bin on this machine, without any snapshot, must agree
// too where nothing depends on the machine.
import { execa } from 'execa';
import { getContainerRuntimeClient } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, gate, IMAGE, INIT_ARGS, type Pod, probeEngine, type RunResult } from './pod.js';

const engine = await probeEngine();
const ready = gate(
  'container suite',
  engine.ok ? undefined : engine.reason,
  'a Docker engine and the mesh-init image',
);

/** The npm bin (`npm run build`). */
const BUNDLE = new URL('../../dist/mesh-init.cjs', import.meta.url).pathname;
/** The image's program without its snapshot. */
const PLAIN = ['node', '/usr/local/lib/mesh-init/mesh-init.cjs'];
const CAPS = ['NET_ADMIN', 'NET_RAW'];

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Nothing in it depends on the machine: the npm bin must agree as well. */
  readonly portable?: boolean;
}

const DRY_RUN = ['--dry-run', ...INIT_ARGS];
const INJECTOR = [
  'istio-iptables',
  ...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', ''],
  ...['-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info'],
];

/** Run in one pod with NET_ADMIN: the dry-runs read its (untouched) tables. */
const CASES: readonly Case[] = [
  { name: 'dry-run, default backend and families', args: DRY_RUN },
  {
    name: 'dry-run, nft, IPv4',
    args: [...DRY_RUN, '--iptables-backend', 'nft', '--ipv6', 'false'],
  },
  {
    name: 'dry-run, legacy, IPv6 too',
    args: [...DRY_RUN, '--iptables-backend', 'legacy', '--ipv6', 'true'],
  },
  { name: "dry-run of Istio's injector argv", args: [...INJECTOR, '-n'] },
  {
    name: 'dry-run, every feature',
    args: [
      ...DRY_RUN,
      '-m',
      'TPROXY',
      '--redirect-dns',
      '--drop-invalid',
      '-k',
      'eth1',
      '-c',
      'eth2',
    ],
  },
  {
    name: 'dry-run from variables',
    args: ['-n'],
    env: { ENVOY_PORT: '15002', MESH_INIT_PROXY_UID: '1000' },
  },
  { name: 'dry-run, JSON logs', args: [...DRY_RUN, '--log-format', 'json'] },
  { name: "dry-run, Istio's --log_as_json", args: [...DRY_RUN, '--log_as_json'] },
  { name: '--help', args: ['--help'], portable: true },
  { name: '-h', args: ['-h'], portable: true },
  { name: '--version', args: ['--version'], portable: true },
  { name: 'a port out of range', args: ['--proxy-port', '70000'], portable: true },
  { name: 'an unknown flag', args: ['--no-such-flag'], portable: true },
  { name: 'a flag without its value', args: ['-p'], portable: true },
  { name: 'a flag given twice', args: ['-p', '1', '--proxy-port', '2'], portable: true },
  { name: 'conflicting modes', args: ['--cleanup', '--check'], portable: true },
  { name: 'a bad variable', args: [], env: { ENVOY_PORT: 'x' }, portable: true },
  {
    name: 'a usage error as JSON',
    args: ['--proxy-port', '0'],
    env: { MESH_INIT_LOG_FORMAT: 'json' },
    portable: true,
  },
  {
    name: 'dry-run, native nftables, IPv4',
    args: ['--dry-run', '--native-nftables', '--ipv6', 'false'],
    portable: true,
  },
];

/** JSON log lines carry the time of the run. */
const masked = (text: string) => text.replace(/"time":"[^"]*"/g, '"time":"<masked>"');
const comparable = ({ exitCode, stdout, stderr }: RunResult) => ({
  exitCode,
  stdout: masked(stdout),
  stderr: masked(stderr),
});

/** How many containers run at once: each is a short one-shot run. */
const CONCURRENCY = 4;

/** `work` over `items`, at most `limit` at a time, results in order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>) {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

describe.runIf(ready)('the image started from its snapshot', () => {
  let cluster: Cluster;
  let runs = 0;
  /** Each case's run from the snapshot and without, in one pod whose tables stay untouched. */
  const results = new Map<Case, { fromSnapshot: RunResult; plain: RunResult }>();

  /** The image's own entrypoint (`plain` false) or the plain bundle, in `target`. */
  function run(target: Pod, plain: boolean, args: readonly string[], env = {}) {
    return cluster.runInPod(target, {
      role: `${plain ? 'plain' : 'snapshot'}-${runs++}`,
      ...(plain ? { entrypoint: PLAIN } : {}),
      command: args,
      env,
      capabilities: CAPS,
    });
  }

  beforeAll(async () => {
    cluster = await Cluster.create();
    const pod = await cluster.startPod('snapshot');
    const done = await mapLimited(
      CASES.flatMap((c) => [false, true].map((plain) => ({ c, plain }))),
      CONCURRENCY,
      ({ c, plain }) => run(pod, plain, c.args, c.env),
    );
    CASES.forEach((c, i) => {
      results.set(c, {
        fromSnapshot: done[2 * i] as RunResult,
        plain: done[2 * i + 1] as RunResult,
      });
    });
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  it('has an entrypoint that loads the snapshot', async () => {
    const client = await getContainerRuntimeClient();
    const info = await client.container.dockerode.getImage(IMAGE).inspect();
    expect(info.Config.Entrypoint).toEqual([
      'node',
      '--snapshot-blob',
      '/usr/local/lib/mesh-init/mesh-init.blob',
      '/usr/local/lib/mesh-init/mesh-init.cjs',
    ]);
  });

  it.each(CASES)('$name: the same output and exit code', (c) => {
    const { fromSnapshot, plain } = results.get(c) ?? expect.unreachable();
    expect(comparable(fromSnapshot)).toEqual(comparable(plain));
    // Not vacuous: the run said something.
    expect(fromSnapshot.stdout + fromSnapshot.stderr).not.toBe('');
  });

  it.each(CASES.filter((c) => c.portable))(
    '$name: the npm bin here, without a snapshot, agrees',
    async (c) => {
      const { args, env } = c;
      const image = results.get(c)?.fromSnapshot ?? expect.unreachable();
      // In a network namespace of its own, made for this run and gone after it: a case
      // that applied rules (by mistake) could never reach this machine's own.
      const bin = await execa('unshare', ['--net', process.execPath, BUNDLE, ...args], {
        env: { PATH: process.env.PATH ?? '', ...env },
        extendEnv: false,
        reject: false,
        stripFinalNewline: false,
      });
      expect(
        comparable({ exitCode: bin.exitCode ?? -1, stdout: bin.stdout, stderr: bin.stderr }),
      ).toEqual(comparable(image));
    },
  );

  it('applies, checks and cleans up a fresh pod the same way', async () => {
    const steps: readonly (readonly string[])[] = [
      INIT_ARGS,
      [...INIT_ARGS, '--log-format', 'json'], // a re-run
      [...INIT_ARGS, '--check'],
      ['--cleanup'],
      [...INIT_ARGS, '--check'], // drift: exit 5
    ];
    const [forSnapshot, forPlain] = await Promise.all([
      cluster.startPod('applied-snapshot'),
      cluster.startPod('applied-plain'),
    ]);
    const codes: number[] = [];
    for (const args of steps) {
      const [fromSnapshot, plain] = await Promise.all([
        run(forSnapshot, false, args),
        run(forPlain, true, args),
      ]);
      expect(comparable(fromSnapshot), args.join(' ')).toEqual(comparable(plain));
      codes.push(fromSnapshot.exitCode);
    }
    expect(codes).toEqual([0, 0, 0, 0, 5]);
  });
});
