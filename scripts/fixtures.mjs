// Retakes test/fixtures/iptables/*.txt: real `*-save` output of mesh-init's rules,
// next to rules of others (Docker's embedded DNS, a CNI masquerade, a firewall), as
// the unit tests read them. Run as root after a change of the rules:
//
//   npm run build && node scripts/fixtures.mjs
//
// Each fixture is made in a throw-away network namespace (never this machine's own):
// the foreign rules first, then the bundle applies its rules, then, where the fixture
// stands for what an older mesh-init left, Docker's OUTPUT jump is put ahead of ours.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const DIR = new URL('../test/fixtures/iptables/', import.meta.url).pathname;
const BUNDLE = new URL('../dist/mesh-init.cjs', import.meta.url).pathname;

const DOCKER_V4 = [
  '*nat',
  ':DOCKER_OUTPUT - [0:0]',
  ':DOCKER_POSTROUTING - [0:0]',
  '-A POSTROUTING -d 127.0.0.11/32 -j DOCKER_POSTROUTING',
  '-A POSTROUTING -s 10.244.0.0/16 -m comment --comment "cni: masquerade \\"pod\\" traffic" -j MASQUERADE',
  '-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp --dport 53 -j DNAT --to-destination 127.0.0.11:41203',
  '-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp --dport 53 -j DNAT --to-destination 127.0.0.11:35915',
  '-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp --sport 41203 -j SNAT --to-source :53',
  '-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp --sport 35915 -j SNAT --to-source :53',
  'COMMIT',
];
const DOCKER_V6 = [
  '*nat',
  ':DOCKER_OUTPUT - [0:0]',
  '-A DOCKER_OUTPUT -d fd00:dead::11/128 -p udp --dport 53 -j DNAT --to-destination [fd00:dead::11]:35915',
  'COMMIT',
];
const SSH = [
  '*filter',
  '-A INPUT -p tcp --dport 22 -m comment --comment "allow ssh" -j ACCEPT',
  'COMMIT',
];
const MORE_LEGACY = [
  '*mangle',
  '-A PREROUTING -p tcp -m comment --comment "mark \\"sidecar\\" traffic" -j MARK --set-xmark 0x539/0xffffffff',
  'COMMIT',
  '*filter',
  '-A OUTPUT -p tcp --dport 5432 -m comment --comment "team \\"payments\\": allow  db\ttab" -j ACCEPT',
  'COMMIT',
];
/** The jump an older mesh-init put behind, and the command that puts Docker's ahead of it. */
const DOCKER_FIRST = {
  ipv4: ['-t', 'nat', '-I', 'OUTPUT', '1', '-d', '127.0.0.11/32', '-j', 'DOCKER_OUTPUT'],
  ipv6: ['-t', 'nat', '-I', 'OUTPUT', '1', '-d', 'fd00:dead::11/128', '-j', 'DOCKER_OUTPUT'],
};
const VARIED = [
  ...['-z', '15006', '-u', '1337,0', '-g', '1338', '-b', '8080,9090', '-d', '22'],
  ...['-o', '53,3306', '-q', '443', '-i', '10.96.0.0/12,fd00:10:96::/112'],
  ...['-x', '10.96.0.1,fd00:10:96::1'],
];
const ALL_FEATURES = [
  ...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', ''],
  ...['-b', '*', '-d', '15090,15021,15020', '--redirect-dns', '--drop-invalid'],
];
const ALL_FEATURES_RESOLV_CONF = 'nameserver 10.96.0.10\nnameserver fd00:10:96::a\n';

/** [file, backend, family, table (undefined: all), foreign rules, argv, options] */
const RECIPES = [
  [
    'iptables-nft-save.txt',
    'nft',
    'ipv4',
    undefined,
    [...SSH, ...DOCKER_V4],
    [],
    { dockerFirst: true, warning: true },
  ],
  [
    'iptables-legacy-save.txt',
    'legacy',
    'ipv4',
    undefined,
    [...MORE_LEGACY, ...SSH, ...DOCKER_V4],
    [],
    { dockerFirst: true },
  ],
  ['iptables-nft-save-nat.txt', 'nft', 'ipv4', 'nat', DOCKER_V4, [], { dockerFirst: true }],
  ['ip6tables-nft-save-nat.txt', 'nft', 'ipv6', 'nat', DOCKER_V6, [], { dockerFirst: true }],
  ['iptables-legacy-save-nat-varied.txt', 'legacy', 'ipv4', 'nat', [], VARIED],
  ['iptables-nft-save-nat-varied.txt', 'nft', 'ipv4', 'nat', [], VARIED],
  ['ip6tables-legacy-save-nat-varied.txt', 'legacy', 'ipv6', 'nat', [], VARIED],
  ['ip6tables-nft-save-nat-varied.txt', 'nft', 'ipv6', 'nat', [], VARIED],
  ['iptables-legacy-save-nat-any-cidr.txt', 'legacy', 'ipv4', 'nat', [], ['-i', '0.0.0.0/0,::/0']],
  ['ip6tables-nft-save-nat-any-cidr.txt', 'nft', 'ipv6', 'nat', [], ['-i', '0.0.0.0/0,::/0']],
  [
    'iptables-nft-save-all-features.txt',
    'nft',
    'ipv4',
    undefined,
    [],
    ALL_FEATURES,
    { resolv: ALL_FEATURES_RESOLV_CONF },
  ],
  [
    'ip6tables-nft-save-all-features.txt',
    'nft',
    'ipv6',
    undefined,
    [],
    ALL_FEATURES,
    { resolv: ALL_FEATURES_RESOLV_CONF },
  ],
  [
    'iptables-legacy-save-all-features.txt',
    'legacy',
    'ipv4',
    undefined,
    [],
    ALL_FEATURES,
    { resolv: ALL_FEATURES_RESOLV_CONF },
  ],
  [
    'ip6tables-legacy-save-all-features.txt',
    'legacy',
    'ipv6',
    undefined,
    [],
    ALL_FEATURES,
    { resolv: ALL_FEATURES_RESOLV_CONF },
  ],
];

const tool = (backend, family, what) =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}${what ? `-${what}` : ''}`;

function inNamespace(ns, file, args, input) {
  return execFileSync('ip', ['netns', 'exec', ns, file, ...args], {
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

for (const [file, backend, family, table, foreign, argv, options = {}] of RECIPES) {
  const ns = `mi-fixture-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    inNamespace(ns, 'ip', ['link', 'set', 'lo', 'up']);
    if (options.resolv) {
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/resolv.conf`, options.resolv);
    }
    if (foreign.length > 0) {
      inNamespace(ns, tool(backend, family, 'restore'), ['--noflush'], `${foreign.join('\n')}\n`);
    }
    const ipv6 = family === 'ipv6' || argv.some((arg) => arg.includes(':'));
    inNamespace(ns, process.execPath, [
      BUNDLE,
      ...argv,
      '--iptables-backend',
      backend,
      '--ipv6',
      String(ipv6),
    ]);
    if (options.dockerFirst) inNamespace(ns, tool(backend, family), DOCKER_FIRST[family]);
    let saved = inNamespace(ns, tool(backend, family, 'save'), table ? ['-t', table] : []);
    // iptables-nft-save 1.8.4-1.8.7 printed this on stdout where legacy tables exist.
    if (options.warning)
      saved += '# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n';
    writeFileSync(`${DIR}${file}`, saved);
    console.log(`fixtures: ${file}`);
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}
