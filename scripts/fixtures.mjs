// Retakes the fixtures of real program output that the unit tests read. Run as root
// after a change of the rules:
//
//   npm run build && node scripts/fixtures.mjs
//
// test/fixtures/iptables/*.txt: `*-save` output of mesh-init's rules next to rules of
// others (Docker's embedded DNS, a CNI masquerade, a firewall): the foreign rules
// first, then the bundle applies its rules, then, where the fixture stands for what an
// older mesh-init left, Docker's OUTPUT jump is put ahead of ours.
//
// test/fixtures/nftables/*.json: `nft -j list ruleset inet` after the bundle applied a
// config with --native-nftables next to a foreign inet table and an iptables-nft rule;
// drifted.json is then tampered with (test/backends/nftables/state.test.ts says how).
// trixie-tproxy-interfaces.json is taken in the image, for its nft (1.1.3); build it
// first, or that fixture is skipped:
//
//   IMAGE=mesh-init:fixtures BASE=mesh-init-base:trixie npm run image
//
// Each fixture is made in a throw-away network namespace or container, never in this
// machine's own.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const FIXTURES = new URL('../test/fixtures/', import.meta.url).pathname;
const BUNDLE = new URL('../dist/mesh-init.cjs', import.meta.url).pathname;
const IMAGE = 'mesh-init:fixtures';
const IMAGE_BUNDLE = '/usr/local/lib/mesh-init/mesh-init.cjs';

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
const ANY_CIDR = ['-i', '0.0.0.0/0,::/0'];

/** The nft fixtures' configs besides ALL_FEATURES (each with `--native-nftables --ipv6 true`). */
const NFT_INTERFACES = [
  ...['--redirect-dns', '-c', 'veth+', '-o', '22', '-u', '1337,0', '-k', 'eth1'],
  ...['-i', '10.96.0.0/12,fd00::/64'],
];
const IPV6_RESOLV_CONF = 'nameserver ::127.0.0.53\n';
const NFT_TRIXIE = [
  ...['-m', 'TPROXY', '--drop-invalid', '-c', 'veth+', '-k', 'eth1'],
  ...['-i', '10.0.0.0/8,fd00::/8', '-d', '22', '-o', '53', '-q', '443'],
];
/** Others' rules beside the nft fixtures: an inet table, and an ip table iptables-nft writes. */
const FOREIGN_NFT = [
  'add table inet foreign',
  'add chain inet foreign output { type filter hook output priority 0; policy accept; }',
  `add rule inet foreign output meta l4proto udp udp dport 9999 counter return comment "someone else's"`,
];

/**
 * Each fixture: its file under test/fixtures, where it is made (a network namespace with
 * this resolv.conf, or a container of IMAGE) and how it is taken there.
 */
const RECIPES = [
  iptablesSave('iptables-nft-save.txt', 'nft', 'ipv4', undefined, [...SSH, ...DOCKER_V4], [], {
    dockerFirst: true,
    warning: true,
  }),
  iptablesSave(
    'iptables-legacy-save.txt',
    'legacy',
    'ipv4',
    undefined,
    [...MORE_LEGACY, ...SSH, ...DOCKER_V4],
    [],
    { dockerFirst: true },
  ),
  iptablesSave('iptables-nft-save-nat.txt', 'nft', 'ipv4', 'nat', DOCKER_V4, [], {
    dockerFirst: true,
  }),
  iptablesSave('ip6tables-nft-save-nat.txt', 'nft', 'ipv6', 'nat', DOCKER_V6, [], {
    dockerFirst: true,
  }),
  iptablesSave('iptables-legacy-save-nat-varied.txt', 'legacy', 'ipv4', 'nat', [], VARIED),
  iptablesSave('iptables-nft-save-nat-varied.txt', 'nft', 'ipv4', 'nat', [], VARIED),
  iptablesSave('ip6tables-legacy-save-nat-varied.txt', 'legacy', 'ipv6', 'nat', [], VARIED),
  iptablesSave('ip6tables-nft-save-nat-varied.txt', 'nft', 'ipv6', 'nat', [], VARIED),
  iptablesSave('iptables-legacy-save-nat-any-cidr.txt', 'legacy', 'ipv4', 'nat', [], ANY_CIDR),
  iptablesSave('ip6tables-nft-save-nat-any-cidr.txt', 'nft', 'ipv6', 'nat', [], ANY_CIDR),
  ...[
    ['iptables-nft-save-all-features.txt', 'nft', 'ipv4'],
    ['ip6tables-nft-save-all-features.txt', 'nft', 'ipv6'],
    ['iptables-legacy-save-all-features.txt', 'legacy', 'ipv4'],
    ['ip6tables-legacy-save-all-features.txt', 'legacy', 'ipv6'],
  ].map(([file, backend, family]) =>
    iptablesSave(file, backend, family, undefined, [], ALL_FEATURES, {
      resolv: ALL_FEATURES_RESOLV_CONF,
    }),
  ),
  nftList('all-features.json', ALL_FEATURES, { resolv: ALL_FEATURES_RESOLV_CONF }),
  nftList('ipv6-resolver-interfaces.json', NFT_INTERFACES, { resolv: IPV6_RESOLV_CONF }),
  nftList('drifted.json', NFT_INTERFACES, { resolv: IPV6_RESOLV_CONF, after: tamper }),
  nftList('trixie-tproxy-interfaces.json', NFT_TRIXIE, { inImage: true }),
];

/** An iptables fixture: `*-save` (of one table, or all) after others' rules and a run. */
function iptablesSave(file, backend, family, table, foreign, argv, options = {}) {
  const take = (place) => {
    if (foreign.length > 0) {
      place.run(tool(backend, family, 'restore'), ['--noflush'], lines(foreign));
    }
    const ipv6 = family === 'ipv6' || argv.some((arg) => arg.includes(':'));
    place.meshInit([...argv, '--iptables-backend', backend, '--ipv6', String(ipv6)]);
    if (options.dockerFirst) place.run(tool(backend, family), DOCKER_FIRST[family]);
    const saved = place.run(tool(backend, family, 'save'), table ? ['-t', table] : []);
    // iptables-nft-save 1.8.4-1.8.7 printed this on stdout where legacy tables exist.
    return options.warning
      ? `${saved}# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n`
      : saved;
  };
  return { file: `iptables/${file}`, resolv: options.resolv, take };
}

/** An nft fixture: `nft -j list ruleset inet` after others' rules, a native run and `after`. */
function nftList(file, argv, options = {}) {
  const take = (place) => {
    place.run('nft', ['-f', '-'], lines(FOREIGN_NFT));
    place.run('iptables-nft-restore', ['--noflush'], lines(SSH));
    place.meshInit(['--native-nftables', '--ipv6', 'true', ...argv]);
    options.after?.(place);
    return place.run('nft', ['-j', 'list', 'ruleset', 'inet']);
  };
  return { file: `nftables/${file}`, resolv: options.resolv, inImage: options.inImage, take };
}

/**
 * drifted.json: a rule of ours gone (IPv4's localhost RETURN), one of others ahead in
 * our chain, a chain and a table the plan does not have.
 */
function tamper(place) {
  const chain = ['inet', 'istio-proxy-nat', 'istio-output'];
  const handle = ruleHandle(place, chain, (expr) =>
    expr.some(
      ({ match }) =>
        match?.op === '==' &&
        match.left.payload?.protocol === 'ip' &&
        match.left.payload.field === 'daddr' &&
        match.right === '127.0.0.1',
    ),
  );
  place.run('nft', ['delete', 'rule', ...chain, 'handle', String(handle)]);
  place.run('nft', ['insert', 'rule', ...chain, 'tcp', 'dport', '9', 'return']);
  place.run('nft', ['add', 'chain', 'inet', 'istio-proxy-nat', 'extra']);
  place.run('nft', ['add', 'table', 'inet', 'istio-proxy-mangle']);
}

/** The handle of the one rule of a chain whose expressions `matches`. */
function ruleHandle(place, [family, table, name], matches) {
  const listed = JSON.parse(place.run('nft', ['-j', 'list', 'chain', family, table, name]));
  const found = listed.nftables.filter(({ rule }) => rule && matches(rule.expr));
  if (found.length !== 1) {
    throw new Error(`fixtures: ${found.length} rules of ${table} ${name} match, expected 1`);
  }
  return found[0].rule.handle;
}

const lines = (list) => `${list.join('\n')}\n`;

const tool = (backend, family, what) =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}${what ? `-${what}` : ''}`;

function capture(file, args, input) {
  return execFileSync(file, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** A throw-away network namespace: loopback up, its own resolv.conf, our bundle on this node. */
function openNamespace(resolv) {
  const ns = `mi-fixture-${process.pid}`;
  capture('ip', ['netns', 'add', ns]);
  const run = (file, args, input) => capture('ip', ['netns', 'exec', ns, file, ...args], input);
  const close = () => {
    capture('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  };
  try {
    run('ip', ['link', 'set', 'lo', 'up']);
    if (resolv) {
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/resolv.conf`, resolv);
    }
  } catch (error) {
    close();
    throw error;
  }
  return { run, meshInit: (args) => run(process.execPath, [BUNDLE, ...args]), close };
}

/**
 * A throw-away container of IMAGE with no network but its loopback, as the init container
 * runs (NET_ADMIN, NET_RAW), IPv6 on (Docker turns it off without an IPv6 network). The
 * bundle just built is mounted over the image's, so an image built before a change of
 * the rules still takes them.
 */
function openContainer() {
  const id = capture('docker', [
    ...['run', '--detach', '--rm', '--network', 'none'],
    ...['--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW'],
    ...['--sysctl', 'net.ipv6.conf.all.disable_ipv6=0'],
    ...['--volume', `${BUNDLE}:${IMAGE_BUNDLE}:ro`, '--entrypoint', 'node', IMAGE],
    ...['-e', 'setInterval(() => {}, 1 << 30)'],
  ]).trim();
  const run = (file, args, input) => capture('docker', ['exec', '-i', id, file, ...args], input);
  const close = () => capture('docker', ['rm', '--force', id]);
  return { run, meshInit: (args) => run('node', [IMAGE_BUNDLE, ...args]), close };
}

/** Why no container of IMAGE can be started here, or undefined when it can. */
function whyNoImage() {
  try {
    capture('docker', ['version']);
  } catch (error) {
    return error.code === 'ENOENT' ? 'no docker command' : 'no Docker engine answers';
  }
  try {
    capture('docker', ['image', 'inspect', IMAGE]);
  } catch {
    return `no image ${IMAGE}: build it with IMAGE=${IMAGE} BASE=mesh-init-base:trixie npm run image`;
  }
  return undefined;
}

for (const recipe of RECIPES) {
  const why = recipe.inImage ? whyNoImage() : undefined;
  if (why) {
    console.warn(`fixtures: ${recipe.file} skipped: ${why}`);
    continue;
  }
  const place = recipe.inImage ? openContainer() : openNamespace(recipe.resolv);
  try {
    writeFileSync(`${FIXTURES}${recipe.file}`, recipe.take(place));
    console.log(`fixtures: ${recipe.file}`);
  } finally {
    place.close();
  }
}
