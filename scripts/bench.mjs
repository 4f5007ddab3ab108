#!/usr/bin/env node
// npm run bench: how long mesh-init's whole apply takes next to the floor of any
// Node program that applies the same rules (start Node, run the same programs with
// the same input), per backend, in fresh network namespaces: IPv4 alone with each
// iptables backend, then both families with iptables-nft (a restore per family) and
// with native nftables (one nft -f for both). Prints figures; asserts nothing.
//
//   sudo npm run bench [-- --runs 30]
//
// Needs root, iproute2, iptables, nftables, strace and GNU time. NODE_EXTRA_CA_CERTS is
// removed from the measured commands' environment: it makes every Node start read
// a CA bundle (~75 ms here), which would drown what is measured.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 30;
const BUNDLE = new URL('../dist/mesh-init.cjs', import.meta.url).pathname;
const ARGS = ['-p', '15001', '-u', '1337'];
/** What is measured: mesh-init's argv, and how its dry-run text is fed in the floor. */
const CASES = [
  { name: 'legacy', args: [...ARGS, '--ipv6', 'false', '--iptables-backend', 'legacy'] },
  { name: 'nft', args: [...ARGS, '--ipv6', 'false', '--iptables-backend', 'nft'] },
  {
    name: 'iptables-nft, ipv4 and ipv6',
    args: [...ARGS, '--ipv6', 'true', '--iptables-backend', 'nft'],
  },
  {
    name: 'native nftables, ipv4 and ipv6',
    args: [...ARGS, '--ipv6', 'true', '--native-nftables'],
  },
];
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;

function sh(file, args, options = {}) {
  const result = spawnSync(file, args, { env, encoding: 'utf8', ...options });
  if (result.status !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  }
  return result;
}

/** Wall time of one command, in ms. */
function time(file, args, options = {}) {
  const start = process.hrtime.bigint();
  sh(file, args, options);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

let counter = 0;
/** Runs body in a fresh network namespace (made and removed outside the timing). */
function inFreshNamespace(body) {
  const ns = `mesh-init-bench-${process.pid}-${counter++}`;
  sh('ip', ['netns', 'add', ns]);
  try {
    return body(ns);
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const ms = (value) => `${value.toFixed(1)} ms`;

if (process.getuid?.() !== 0) {
  console.error('bench: needs root (it creates network namespaces)');
  process.exit(1);
}
if (!existsSync(BUNDLE)) sh('npm', ['run', 'build']);
for (const tool of ['strace', '/usr/bin/time']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench: ${tool} is missing (apt-get install strace time)`);
    process.exit(1);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'mesh-init-bench-'));
console.log(`mesh-init ${ARGS.join(' ')}: ${RUNS} runs per figure, medians`);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; NODE_EXTRA_CA_CERTS unset for the runs\n`,
);

/**
 * The programs a minimal Node program would start for a case, with their input: the
 * dry-run text of each family for an iptables backend, the one script for native
 * nftables; and, with IPv6, the `ip` that puts ::6 on lo.
 */
function floorCommands(args) {
  const text = inFreshNamespace(
    (ns) => sh('ip', ['netns', 'exec', ns, process.execPath, BUNDLE, '--dry-run', ...args]).stdout,
  );
  const ipv6 = args.includes('true');
  const lo = ipv6 ? [{ file: 'ip', args: ['-6', 'addr', 'replace', '::6/128', 'dev', 'lo'] }] : [];
  if (args.includes('--native-nftables')) {
    return [...lo, { file: 'nft', args: ['-f', '-'], input: text }];
  }
  const backend = args[args.indexOf('--iptables-backend') + 1];
  const texts = text.split(/(?=^# mesh-init: )/m);
  return [
    ...lo,
    ...texts.map((input) => ({
      file: `${input.startsWith('# mesh-init: ipv6') ? 'ip6tables' : 'iptables'}-${backend}-restore`,
      args: ['--noflush'],
      input,
    })),
  ];
}

const rows = [];
for (const { name, args } of CASES) {
  /** The measured command, run inside namespace ns. */
  const meshInit = (ns) => ['netns', 'exec', ns, process.execPath, BUNDLE, ...args];
  const commands = floorCommands(args);
  const apply = [];
  const floor = [];
  const parts = { node: [], rules: [], netns: [] };
  for (let i = 0; i < RUNS; i++) {
    apply.push(inFreshNamespace((ns) => time('ip', meshInit(ns))));
    // The floor: Node starting, plus the same programs with the same input in a fresh
    // namespace; one `ip netns exec` per program is subtracted so both sides pay it once.
    inFreshNamespace((ns) => {
      const node = time('ip', ['netns', 'exec', ns, process.execPath, '-e', '0']);
      let rules = 0;
      for (const command of commands) {
        rules += time('ip', ['netns', 'exec', ns, command.file, ...command.args], {
          input: command.input,
        });
      }
      const netns = time('ip', ['netns', 'exec', ns, 'true']);
      parts.node.push(node);
      parts.rules.push(rules - commands.length * netns);
      parts.netns.push(netns);
      floor.push(node + rules - commands.length * netns);
    });
  }
  // Programs mesh-init starts: every successful execve but ip's own and node's.
  const trace = join(dir, 'trace');
  inFreshNamespace((ns) =>
    sh('strace', [
      '-f',
      '-qq',
      '-e',
      'trace=execve',
      '-e',
      'signal=none',
      '-o',
      trace,
      'ip',
      ...meshInit(ns),
    ]),
  );
  const execs = readFileSync(trace, 'utf8')
    .split('\n')
    .filter((l) => /execve\(.*= 0$/.test(l));
  const programs = execs.slice(2).map((l) => /execve\("([^"]+)"/.exec(l)?.[1]?.split('/').pop());
  // Peak memory (max RSS) of the mesh-init process itself.
  const rss = inFreshNamespace((ns) => {
    const result = sh('ip', [
      ...['netns', 'exec', ns, '/usr/bin/time', '-f', '%M', process.execPath, BUNDLE],
      ...args,
    ]);
    return Number(result.stderr.trim().split('\n').pop());
  });
  rows.push({ name, apply: median(apply), floor: median(floor), parts, programs, rss });
}
rmSync(dir, { recursive: true, force: true });

for (const row of rows) {
  console.log(`${row.name}:`);
  console.log(`  mesh-init apply          ${ms(row.apply)}`);
  console.log(
    `  floor                    ${ms(row.floor)}  (node -e 0 ${ms(median(row.parts.node))} + the programs ${ms(median(row.parts.rules))})`,
  );
  console.log(
    `  ratio                    ${(row.apply / row.floor).toFixed(2)}  (goal on legacy: <= 1.25)`,
  );
  console.log(`  programs started         ${row.programs.length}: ${row.programs.join(', ')}`);
  console.log(`  peak memory (max RSS)    ${(row.rss / 1024).toFixed(1)} MiB`);
}
