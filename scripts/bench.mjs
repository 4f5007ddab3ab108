#!/usr/bin/env node
// npm run bench: how long one mesh-init apply takes, in the forms it ships in, next
// to Istio's 2019 init script and to the floor of any Node program that applies
// the same rules; per iptables backend, IPv4, each run in a fresh network
// namespace. Prints figures; asserts nothing. Method and results: docs/startup.md.
//
//   sudo npm run bench [-- --runs 30] [-- --steps]     IMAGE=mesh-init:dev by default
//
// --steps adds the image's program as it was before each step of docs/startup.md.
// Last, both families in one pod: iptables-nft (a restore per family) next to
// native nftables (one nft -f), the image's entrypoint each.
//
// Forms, run in turn within each round (the order rotates from round to round):
// - image, snapshot: the image's ENTRYPOINT as `docker image inspect` gives it;
// - image, plain: `node /usr/local/lib/mesh-init/mesh-init.cjs`, no snapshot;
// - host npm bin: this machine's node running dist/mesh-init.cjs;
// - Istio 2019: ../shared/peers/istio-iptables-2019.sh, as its NOTICE says, with
//   `iptables` and friends pointing at the backend measured;
// - floors: `node -e 0` plus one `*-restore --noflush` of mesh-init's text, minus
//   one empty start of the launcher, with the image's node and iptables and with
//   this machine's.
// The image forms run the image's own files: its filesystem is exported (docker
// export) and each run is `ip netns exec NS chroot ROOT …`, so they use the
// image's node, libraries, snapshot blob and iptables; a blob only loads in the
// node that built it, which this machine's is not. Needs root, docker (an engine
// and the image), iproute2, iptables (both backends), bash, perf, strace and GNU
// time. Each run reports wall time and CPU time (perf stat); the goals are judged
// on wall time, CPU time shows the same with less of the noise of a busy machine.
//
// NODE_EXTRA_CA_CERTS is not passed to the measured commands: it makes every Node
// start read a CA bundle (~75 ms here), which would drown what is measured. They
// get PATH alone, as in the image.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const STEPS = process.argv.includes('--steps');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 30;
const IMAGE = process.env.IMAGE ?? 'mesh-init:dev';
const BUNDLE = new URL('../dist/mesh-init.cjs', import.meta.url).pathname;
/** The project's copy of Istio's 2019 script: shared/peers/ beside the repository (or a worktree's parent). */
const SCRIPT_2019 =
  process.env.ISTIO_2019_SCRIPT ??
  ['../../shared/peers/', '../../../shared/peers/']
    .map((up) => new URL(`${up}istio-iptables-2019.sh`, import.meta.url).pathname)
    .find((path) => existsSync(path)) ??
  'shared/peers/istio-iptables-2019.sh (set ISTIO_2019_SCRIPT)';
const IMAGE_BUNDLE = '/usr/local/lib/mesh-init/mesh-init.cjs';
const ARGS = ['-p', '15001', '-u', '1337', '--ipv6', 'false'];
const ISTIO_2019_ARGS = ['-p', '15001', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-b', '*'];
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const BACKENDS = ['nft', 'legacy'];

function sh(file, args, options = {}) {
  const result = spawnSync(file, args, { env: { PATH }, encoding: 'utf8', ...options });
  if (result.status !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  }
  return result;
}

/** Where perf stat writes (inside the bench's temporary directory). */
let statsFile;
/**
 * Wall and CPU time of one command, in ms, from perf stat: `duration_time` (the
 * command alone, not perf's own start) and `task-clock` (CPU of the command and
 * every process it started). CPU time does not grow when other work on the
 * machine delays the command, so it is the steadier figure on a busy machine.
 */
function time(file, args, options = {}) {
  const stat = ['stat', '-x,', '-o', statsFile, '-e', 'task-clock,duration_time', '--'];
  sh('perf', [...stat, file, ...args], options);
  const counters = readFileSync(statsFile, 'utf8');
  const cpu = Number(/^([\d.]+),msec,task-clock/m.exec(counters)?.[1]);
  const wall = Number(/^(\d+),ns,duration_time/m.exec(counters)?.[1]) / 1e6;
  if (!(cpu > 0 && wall > 0)) throw new Error(`bench: perf stat gave no times: ${counters}`);
  return { wall, cpu };
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

function preflight() {
  if (process.getuid?.() !== 0) {
    console.error('bench: needs root (it creates network namespaces and mounts)');
    process.exit(1);
  }
  for (const tool of [
    'perf',
    'strace',
    '/usr/bin/time',
    'docker',
    'bash',
    'iptables-legacy-restore',
  ]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      console.error(`bench: ${tool} is missing`);
      process.exit(1);
    }
  }
  if (!existsSync(SCRIPT_2019)) {
    console.error(`bench: ${SCRIPT_2019} is missing`);
    process.exit(1);
  }
  if (!existsSync(BUNDLE)) sh('npm', ['run', 'build']);
  if (spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0) {
    console.error(`bench: no image ${IMAGE}: build it (npm run image) or set IMAGE`);
    process.exit(1);
  }
}

/**
 * The image's filesystem in a directory, with /dev and /proc as a container has
 * them; `dispose` unmounts and removes it. Returns the image's ENTRYPOINT too.
 */
function exportImage(dir) {
  const root = join(dir, 'rootfs');
  mkdirSync(root);
  const id = sh('docker', ['create', IMAGE]).stdout.trim();
  try {
    const exported = spawnSync('sh', ['-c', `docker export ${id} | tar -C ${root} -xf -`]);
    if (exported.status !== 0) throw new Error(`docker export failed: ${exported.stderr}`);
  } finally {
    spawnSync('docker', ['rm', id], { stdio: 'ignore' });
  }
  const mounts = [];
  const dispose = () => {
    for (const target of mounts.reverse()) spawnSync('umount', [target]);
  };
  try {
    sh('mount', ['--bind', '/dev', join(root, 'dev')]);
    mounts.push(join(root, 'dev'));
    sh('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
    mounts.push(join(root, 'proc'));
  } catch (error) {
    dispose();
    throw error;
  }
  const config = JSON.parse(
    sh('docker', ['image', 'inspect', '--format', '{{json .Config.Entrypoint}}', IMAGE]).stdout,
  );
  return { root, entrypoint: config, dispose };
}

/** `iptables`, `iptables-save`… naming one backend's binaries, for the 2019 script. */
function backendPath(dir, backend) {
  const bin = join(dir, `path-${backend}`);
  mkdirSync(bin);
  for (const name of ['iptables', 'ip6tables']) {
    for (const suffix of ['', '-save', '-restore']) {
      symlinkSync(`/usr/sbin/xtables-${backend}-multi`, join(bin, `${name}${suffix}`));
    }
  }
  return `${bin}:${PATH}`;
}

/**
 * What each form runs (after `ip netns exec NS`), with which environment, and the
 * name of its own program (the programs it starts are counted after that one).
 */
function forms(image, backend, scriptPath, steps) {
  const chroot = ['chroot', image.root];
  const mesh = [...ARGS, '--iptables-backend', backend];
  const inImage = (label, argv) => ({
    label,
    argv: [...chroot, ...argv, ...mesh],
    own: 'node',
  });
  const stepForms = (list) =>
    Object.fromEntries(
      list.map((step) => [
        step.name,
        step.host
          ? { label: step.label, argv: [...step.argv, ...mesh], own: 'node' }
          : inImage(step.label, step.argv),
      ]),
    );
  return {
    ...stepForms(steps.filter((step) => !step.tried && !step.host)),
    snapshot: inImage('image: snapshot, exits at once (its entrypoint)', image.entrypoint),
    plain: inImage('image: no snapshot, exits at once', ['node', IMAGE_BUNDLE]),
    ...stepForms(steps.filter((step) => step.tried)),
    hostBin: {
      label: 'host: npm bin (no snapshot, exits at once)',
      argv: [process.execPath, BUNDLE, ...mesh],
      own: 'node',
    },
    ...stepForms(steps.filter((step) => step.host)),
    istio2019: {
      label: 'host: Istio 2019 script',
      argv: ['bash', SCRIPT_2019, ...ISTIO_2019_ARGS],
      env: { PATH: scriptPath },
      own: 'bash',
    },
  };
}

/** `text` with `from` replaced, which must occur exactly once. */
function replaceOnce(text, from, to, what) {
  const count = text.split(from).length - 1;
  if (count !== 1)
    throw new Error(`bench --steps: "${from}" is in ${what} ${count} times, not once`);
  return text.replace(from, to);
}

/**
 * --steps: the image's program as it was before each step of docs/startup.md, made
 * from this work tree's bundles (which must be those the image was built from) and,
 * for snapshots, built by the image's node like the image's own blob.
 */
function prepareSteps(image, dir) {
  const plainSource = readFileSync(BUNDLE, 'utf8');
  const imageSource = readFileSync(join(image.root, IMAGE_BUNDLE.slice(1)), 'utf8');
  if (plainSource !== imageSource) {
    throw new Error(
      `bench --steps: ${BUNDLE} is not the image's bundle: npm run build, npm run image`,
    );
  }
  const snapshotBundle = BUNDLE.replace(/\.cjs$/, '-snapshot.cjs');
  const snapshotSource = readFileSync(snapshotBundle, 'utf8');
  const inside = '/usr/local/lib/mesh-init/bench';
  mkdirSync(join(image.root, inside));
  const exitAtOnce = 'process.exit(await main(argv, process.env, processDeps()));';
  const tearDown = 'process.exitCode = await main(argv, process.env, processDeps());';
  const variants = [
    ['plain-teardown', 'no snapshot (before issue 11)', plainSource, [[exitAtOnce, tearDown]]],
    [
      'snap-load',
      'snapshot of the loaded modules',
      snapshotSource,
      [
        [exitAtOnce, tearDown],
        ['\nvoid warmUp();\n', '\n'],
      ],
    ],
    [
      'snap-main',
      'snapshot, main() warmed up',
      snapshotSource,
      [
        [exitAtOnce, tearDown],
        ['for (const input of [void 0, "x\\n"])', 'for (const input of [])'],
      ],
    ],
    [
      'snap-execa',
      "snapshot, main() and execa's spawn warmed up",
      snapshotSource,
      [[exitAtOnce, tearDown]],
    ],
  ];
  const steps = [];
  for (const [name, label, source, replacements] of variants) {
    let text = source;
    for (const [from, to] of replacements) text = replaceOnce(text, from, to, name);
    const file = `${inside}/${name}.cjs`;
    writeFileSync(join(image.root, file), text);
    if (name.startsWith('snap-')) {
      const blob = `${inside}/${name}.blob`;
      sh('chroot', [image.root, 'node', '--snapshot-blob', blob, '--build-snapshot', file]);
      steps.push({
        name,
        label: `image: ${label}`,
        argv: ['node', '--snapshot-blob', blob, IMAGE_BUNDLE],
      });
    } else {
      steps.push({ name, label: `image: ${label}`, argv: ['node', file] });
    }
  }
  // Tried, not adopted: V8's code cache for the plain bundle (Node 20 has no
  // module.enableCompileCache): a loader compiles it with the cache a first run left.
  const loader = `${inside}/code-cache.cjs`;
  writeFileSync(
    join(image.root, loader),
    `'use strict';
const fs = require('node:fs');
const vm = require('node:vm');
const Module = require('node:module');
const file = ${JSON.stringify(IMAGE_BUNDLE)};
const cache = '${inside}/mesh-init.code-cache';
let cachedData;
try { cachedData = fs.readFileSync(cache); } catch {}
const source = fs.readFileSync(file, 'utf8').replace(/^#!.*/, '');
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
const m = new Module(file, module);
m.filename = file;
if (cachedData === undefined) process.on('exit', () => fs.writeFileSync(cache, script.createCachedData()));
script.runInThisContext().call(m.exports, m.exports, require, m, file, require('node:path').dirname(file));
`,
  );
  // One run writes the cache at exit, so that it holds what a run compiles.
  inFreshNamespace((ns) =>
    sh('ip', ['netns', 'exec', ns, 'chroot', image.root, 'node', loader, '--dry-run', ...ARGS]),
  );
  steps.push({
    name: 'code-cache',
    label: 'image: no snapshot, exits at once, V8 code cache',
    tried: true,
    argv: ['node', loader],
  });
  // What if the image's node were a nodejs.org build like this machine's (built-in
  // snapshot and code cache for Node's own modules)? The same snapshot, made by it.
  const hostBlob = join(dir, 'host.blob');
  sh(process.execPath, ['--snapshot-blob', hostBlob, '--build-snapshot', snapshotBundle]);
  steps.push({
    name: 'host-snapshot',
    label: `host: snapshot made by node ${process.version} (what-if)`,
    argv: [process.execPath, '--snapshot-blob', hostBlob, BUNDLE],
    host: true,
  });
  return steps;
}

/** The floor's parts with one launcher: node -e 0, one restore, an empty start. */
function floorParts(ns, launcher, node, restore, empty, text) {
  const run = (argv, options) => time('ip', ['netns', 'exec', ns, ...launcher, ...argv], options);
  const parts = {
    node: run([node, '-e', '0']),
    restore: run([restore, '--noflush'], { input: text }),
    empty: run(empty),
  };
  const of = (metric) => ({
    node: parts.node[metric],
    restore: parts.restore[metric],
    empty: parts.empty[metric],
    floor: parts.node[metric] + parts.restore[metric] - parts.empty[metric],
  });
  return { wall: of('wall'), cpu: of('cpu') };
}

/** Programs a form starts: successful execve after the measured program's own. */
function programsStarted(dir, ns, form, first) {
  const trace = join(dir, 'trace');
  sh(
    'strace',
    [
      '-f',
      '-qq',
      '-e',
      'trace=execve',
      '-e',
      'signal=none',
      '-o',
      trace,
      'ip',
      'netns',
      'exec',
      ns,
      ...form.argv,
    ],
    form.env ? { env: form.env } : {},
  );
  const programs = readFileSync(trace, 'utf8')
    .split('\n')
    .filter((l) => /execve\(.*= 0$/.test(l))
    .map((l) => /execve\("([^"]+)"/.exec(l)?.[1]?.split('/').pop() ?? '?');
  const own = programs.indexOf(first);
  return programs.slice(own + 1);
}

/** Peak RSS (max of the process and the children it waited for), in KiB. */
function peakRss(ns, form) {
  const result = sh(
    'ip',
    ['netns', 'exec', ns, '/usr/bin/time', '-f', '%M', ...form.argv],
    form.env ? { env: form.env } : {},
  );
  return Number(result.stderr.trim().split('\n').pop());
}

function main() {
  preflight();
  const dir = mkdtempSync(join(tmpdir(), 'mesh-init-bench-'));
  statsFile = join(dir, 'perf-stat');
  let image;
  try {
    image = exportImage(dir);
    const imageNode = sh('chroot', [image.root, 'node', '--version']).stdout.trim();
    const imageIptables = sh('chroot', [
      image.root,
      'iptables-nft-restore',
      '--version',
    ]).stdout.trim();
    const hostIptables = sh('iptables-nft-restore', ['--version']).stdout.trim();
    const steps = STEPS ? prepareSteps(image, dir) : [];
    // The text mesh-init applies in a fresh namespace (the same for both backends).
    const text = inFreshNamespace(
      (ns) =>
        sh('ip', [
          'netns',
          'exec',
          ns,
          'chroot',
          image.root,
          'node',
          IMAGE_BUNDLE,
          '--dry-run',
          ...ARGS,
          '--iptables-backend',
          'legacy',
        ]).stdout,
    );
    const load = loadavg();
    console.log(`mesh-init ${ARGS.join(' ')} --iptables-backend B: ${RUNS} rounds, medians`);
    console.log(
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; load ${load.map((l) => l.toFixed(2)).join(' ')} at start`,
    );
    console.log(`image ${IMAGE} (its files, chrooted): node ${imageNode}, ${imageIptables}`);
    console.log(
      `host: node ${process.version} (${process.execPath}), ${hostIptables}, bash ${sh('bash', ['-c', 'echo $BASH_VERSION']).stdout.trim()}`,
    );
    console.log(
      'image forms run its entrypoint',
      JSON.stringify(image.entrypoint),
      'or its node on its bundle',
    );
    if (STEPS) {
      console.log(
        'steps: the program before each step of docs/startup.md; they let Node tear its heap down, as before',
      );
    }
    console.log(
      'measured commands get PATH alone (NODE_EXTRA_CA_CERTS unset); each runs in a fresh netns\n',
    );

    const results = {};
    for (const backend of BACKENDS) {
      const scriptPath = backendPath(dir, backend);
      const all = forms(image, backend, scriptPath, steps);
      const names = Object.keys(all);
      const times = Object.fromEntries(names.map((n) => [n, []]));
      const floors = { image: [], host: [] };
      /** One measurement each: every form, then the two floors. */
      const turns = [
        ...names.map((name) => () => {
          const form = all[name];
          times[name].push(
            inFreshNamespace((ns) =>
              time('ip', ['netns', 'exec', ns, ...form.argv], form.env ? { env: form.env } : {}),
            ),
          );
        }),
        () =>
          floors.image.push(
            inFreshNamespace((ns) =>
              floorParts(
                ns,
                ['chroot', image.root],
                'node',
                `iptables-${backend}-restore`,
                ['sh', '-c', ':'],
                text,
              ),
            ),
          ),
        () =>
          floors.host.push(
            inFreshNamespace((ns) =>
              floorParts(ns, [], process.execPath, `iptables-${backend}-restore`, ['true'], text),
            ),
          ),
      ];
      for (let round = 0; round < RUNS; round++) {
        for (let i = 0; i < turns.length; i++) turns[(round + i) % turns.length]();
      }
      const programs = Object.fromEntries(
        names.map((n) => [
          n,
          inFreshNamespace((ns) => programsStarted(dir, ns, all[n], all[n].own)),
        ]),
      );
      const rss = Object.fromEntries(
        names.map((n) => [n, inFreshNamespace((ns) => peakRss(ns, all[n]))]),
      );
      results[backend] = { forms: all, times, floors, programs, rss };
    }
    report(results, imageNode);
    bothFamilies(image, dir);
    const end = loadavg();
    console.log(`\nload ${end.map((l) => l.toFixed(2)).join(' ')} at the end`);
  } finally {
    image?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results, imageNode) {
  const ratio = (a, b) => (a / b).toFixed(2);
  for (const [backend, { forms: all, times, floors, programs, rss }] of Object.entries(results)) {
    const floorOf = (parts, metric) =>
      Object.fromEntries(
        ['floor', 'node', 'restore', 'empty'].map((k) => [
          k,
          median(parts.map((p) => p[metric][k])),
        ]),
      );
    const at = (name, metric) => median(times[name].map((t) => t[metric]));
    const floor = {
      image: { wall: floorOf(floors.image, 'wall'), cpu: floorOf(floors.image, 'cpu') },
      host: { wall: floorOf(floors.host, 'wall'), cpu: floorOf(floors.host, 'cpu') },
    };
    const script = { wall: at('istio2019', 'wall'), cpu: at('istio2019', 'cpu') };
    console.log(
      `\n${backend} (IPv4, fresh netns per run); ÷: ratio to the image's floor, this machine's floor, the 2019 script`,
    );
    console.log(
      `  ${'mesh-init, unless it says otherwise'.padEnd(52)} ${'wall'.padStart(9)}  ${'÷img'.padStart(5)} ${'÷host'.padStart(5)} ${'÷2019'.padStart(5)}  ${'CPU'.padStart(9)}  ${'÷img'.padStart(5)} ${'÷2019'.padStart(5)}  programs  peak RSS`,
    );
    for (const name of Object.keys(times)) {
      const wall = at(name, 'wall');
      const cpu = at(name, 'cpu');
      console.log(
        `  ${all[name].label.padEnd(52)} ${ms(wall).padStart(9)}  ${ratio(wall, floor.image.wall.floor).padStart(5)} ${ratio(wall, floor.host.wall.floor).padStart(5)} ${ratio(wall, script.wall).padStart(5)}  ${ms(cpu).padStart(9)}  ${ratio(cpu, floor.image.cpu.floor).padStart(5)} ${ratio(cpu, script.cpu).padStart(5)}  ${String(programs[name].length).padStart(8)}  ${(rss[name] / 1024).toFixed(1)} MiB`,
      );
    }
    for (const [which, f] of [
      [`image (node ${imageNode})`, floor.image],
      [`host (node ${process.version})`, floor.host],
    ]) {
      for (const metric of ['wall', 'cpu']) {
        const m = f[metric];
        console.log(
          `  floor, ${which}, ${metric}: ${ms(m.floor)} = node -e 0 ${ms(m.node)} + restore ${ms(m.restore)} - empty start ${ms(m.empty)}`,
        );
      }
    }
    for (const [name, list] of Object.entries(programs)) {
      console.log(`  programs, ${name}: ${summarize(list)}`);
    }
    const snap = { wall: at('snapshot', 'wall'), cpu: at('snapshot', 'cpu') };
    const verdict = (value, limit) => `${value.toFixed(2)} (${value <= limit ? 'met' : 'not met'})`;
    if (backend === 'nft') {
      console.log(
        `  goal: image snapshot <= 0.8 x the 2019 script: wall ${verdict(snap.wall / script.wall, 0.8)}, CPU ${verdict(snap.cpu / script.cpu, 0.8)}`,
      );
    } else {
      console.log(
        `  goal: image snapshot <= 1.6 x the floor: with the image's node wall ${verdict(snap.wall / floor.image.wall.floor, 1.6)}, CPU ${verdict(snap.cpu / floor.image.cpu.floor, 1.6)}; with this machine's node wall ${verdict(snap.wall / floor.host.wall.floor, 1.6)}, CPU ${verdict(snap.cpu / floor.host.cpu.floor, 1.6)}`,
      );
    }
  }
}

/**
 * Both families in one pod, the image's entrypoint: iptables-nft (a restore per
 * family) next to native nftables (one nft -f for both), alternating, each in a
 * fresh netns; with the programs each starts (`ip` puts ::6 on lo in both).
 */
function bothFamilies(image, dir) {
  const both = ['-p', '15001', '-u', '1337', '--ipv6', 'true'];
  const cases = {
    iptablesNft: {
      label: 'image: snapshot, iptables-nft, IPv4 and IPv6',
      argv: ['chroot', image.root, ...image.entrypoint, ...both, '--iptables-backend', 'nft'],
      own: 'node',
    },
    nativeNft: {
      label: 'image: snapshot, native nftables, IPv4 and IPv6',
      argv: ['chroot', image.root, ...image.entrypoint, ...both, '--native-nftables'],
      own: 'node',
    },
  };
  const names = Object.keys(cases);
  const times = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < RUNS; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length];
      times[name].push(
        inFreshNamespace((ns) => time('ip', ['netns', 'exec', ns, ...cases[name].argv])),
      );
    }
  }
  console.log(`
both families (IPv4 and IPv6), fresh netns per run, ${RUNS} rounds, medians`);
  for (const name of names) {
    const form = cases[name];
    const programs = inFreshNamespace((ns) => programsStarted(dir, ns, form, form.own));
    const rss = inFreshNamespace((ns) => peakRss(ns, form));
    const at = (metric) => median(times[name].map((t) => t[metric]));
    console.log(
      `  ${form.label.padEnd(52)} wall ${ms(at('wall')).padStart(9)}  CPU ${ms(at('cpu')).padStart(9)}  ${programs.length} programs (${summarize(programs)})  ${(rss / 1024).toFixed(1)} MiB`,
    );
  }
}

/** `iptables x21, hostname x1`, in order of first appearance. */
function summarize(list) {
  if (list.length === 0) return 'none';
  const counts = new Map();
  for (const name of list) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].map(([name, n]) => (n > 1 ? `${name} x${n}` : name)).join(', ');
}

main();
