/**
 * The meaningful configurations that both backends' goldens pin: each iptables
 * golden is test/golden/iptables/<name>.<family>.golden, each nft golden
 * test/golden/nftables/<name>.golden (both families in one script).
 */
import type { Family } from '../src/config/net.js';

/**
 * A pod's resolv.conf with a resolver of each family, and one value that is no
 * address (a port written BIND's way): the C library skips it, so does the plan.
 */
export const RESOLV_CONF = [
  'search default.svc.cluster.local svc.cluster.local cluster.local',
  'nameserver 10.96.0.10',
  'nameserver fd00:10:96::a',
  'nameserver 10.96.0.11#53',
  'options ndots:5',
  '',
].join('\n');

/** Docker's embedded DNS, on lo behind a DNAT of Docker's. */
export const DOCKER_RESOLV_CONF = 'nameserver 127.0.0.11\noptions ndots:0\n';

export const ISTIO_INJECTOR = [
  ...['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT'],
  ...['-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'],
];

export const TPROXY_INJECTOR = ISTIO_INJECTOR.map((arg) => (arg === 'REDIRECT' ? 'TPROXY' : arg));

/** Every feature at once: the all-features goldens, and the *-all-features fixtures of both backends. */
export const ALL_FEATURES = [...TPROXY_INJECTOR, '--redirect-dns', '--drop-invalid'];

export interface GoldenConfig {
  readonly name: string;
  readonly argv: string[];
  readonly families: Family[];
  /** The pod's /etc/resolv.conf, for --redirect-dns. */
  readonly resolvConf?: string;
}

export const GOLDEN_CONFIGS: readonly GoldenConfig[] = [
  { name: 'default', argv: ['-p', '15001', '-u', '1337'], families: ['ipv4', 'ipv6'] },
  { name: 'istio-injector', argv: ISTIO_INJECTOR, families: ['ipv4', 'ipv6'] },
  { name: 'inbound-ports', argv: ['-b', '8080,9090'], families: ['ipv4'] },
  { name: 'inbound-ports-with-exclude', argv: ['-b', '*', '-d', '22,15090'], families: ['ipv4'] },
  { name: 'no-inbound', argv: ['-b', ''], families: ['ipv4'] },
  {
    name: 'outbound-include-cidrs',
    argv: ['-i', '10.96.0.0/12,fd00:10:96::/112', '-x', '10.96.0.1/32'],
    families: ['ipv4', 'ipv6'],
  },
  {
    name: 'outbound-only-ipv6-cidrs',
    argv: ['-i', 'fd00:10:96::/112', '-x', 'fd00:10:96::1'],
    families: ['ipv4', 'ipv6'],
  },
  { name: 'no-outbound', argv: ['-i', ''], families: ['ipv4'] },
  { name: 'outbound-exclude-ports', argv: ['-o', '22,3306'], families: ['ipv4', 'ipv6'] },
  { name: 'outbound-include-ports', argv: ['-q', '443'], families: ['ipv4'] },
  {
    name: 'outbound-include-ports-no-outbound',
    argv: ['-i', '', '-q', '443,8443'],
    families: ['ipv4'],
  },
  // Istio's order: the -x RETURN before the -q jump, so an excluded destination stays
  // excluded on an included port.
  {
    name: 'outbound-exclude-cidrs-include-ports',
    argv: ['-x', '10.96.0.1/32,fd00:10:96::1', '-q', '443'],
    families: ['ipv4', 'ipv6'],
  },
  { name: 'owners', argv: ['-u', '1337,0', '-g', '1337,1338'], families: ['ipv4', 'ipv6'] },
  { name: 'chain-prefix', argv: ['--chain-prefix', 'MESH_'], families: ['ipv4'] },
  // Istio's -c: an excluded interface RETURNs first in both owned chains.
  { name: 'exclude-interfaces', argv: ['-c', 'eth1'], families: ['ipv4', 'ipv6'] },
  // Istio's -k: TCP arriving on a VM's interface is outbound traffic of the VM.
  { name: 'kube-virt-interfaces', argv: ['-k', 'eth1'], families: ['ipv4', 'ipv6'] },
  {
    name: 'kube-virt-interfaces-include-cidrs',
    argv: ['-k', 'eth1', '-i', '10.96.0.0/12,fd00::/64'],
    families: ['ipv4', 'ipv6'],
  },
  // No inbound capture, yet PREROUTING stays hooked for the VM's traffic.
  { name: 'kube-virt-interfaces-no-inbound', argv: ['-k', 'eth1', '-b', ''], families: ['ipv4'] },
  // TPROXY: inbound capture moves from nat to mangle; nat keeps the outbound rules.
  { name: 'tproxy', argv: TPROXY_INJECTOR, families: ['ipv4', 'ipv6'] },
  // Only some ports, another mark (and mark + 1) and route table.
  {
    name: 'tproxy-inbound-ports',
    argv: ['-m', 'TPROXY', '-b', '8080,9090', '-t', '4096', '-r', '134'],
    families: ['ipv4'],
  },
  // -c and -k in both tables: nat keeps the -k rules, mangle RETURNs for both.
  {
    name: 'tproxy-interfaces',
    argv: ['-m', 'TPROXY', '-k', 'eth1', '-c', 'eth2'],
    families: ['ipv4'],
  },
  // Nothing inbound to capture: no mangle table at all (and no policy route).
  { name: 'tproxy-no-inbound', argv: ['-m', 'TPROXY', '-b', ''], families: ['ipv4'] },
  // DNS to the resolvers of resolv.conf (each family its own) goes to 15053; raw zones.
  { name: 'dns', argv: ['--redirect-dns'], families: ['ipv4', 'ipv6'], resolvConf: RESOLV_CONF },
  {
    name: 'dns-owners',
    argv: ['--redirect-dns', '-u', '1337,0', '-g', '1338'],
    families: ['ipv4'],
    resolvConf: RESOLV_CONF,
  },
  // DNS to any address, to another port.
  {
    name: 'dns-capture-all',
    argv: ['--redirect-dns', '--capture-all-dns', '--dns-port', '15054'],
    families: ['ipv4', 'ipv6'],
  },
  // A Docker container's resolv.conf: the resolver on lo gets a raw rule of its own.
  {
    name: 'dns-docker',
    argv: ['--redirect-dns'],
    families: ['ipv4'],
    resolvConf: DOCKER_RESOLV_CONF,
  },
  {
    name: 'dns-capture-all-docker',
    argv: ['--redirect-dns', '--capture-all-dns'],
    families: ['ipv4'],
    resolvConf: DOCKER_RESOLV_CONF,
  },
  { name: 'drop-invalid', argv: ['--drop-invalid'], families: ['ipv4', 'ipv6'] },
  // Istio parity (issue 14): the tunnel port, the pod's loopback range, owner groups.
  { name: 'tunnel-port', argv: ['-e', '15009', '-z', '15006'], families: ['ipv4'] },
  { name: 'ipv4-loopback-cidr', argv: ['--ipv4-loopback-cidr', '127.0.0.1/8'], families: ['ipv4'] },
  { name: 'owner-groups', argv: ['--outbound-owner-groups', '1001,202'], families: ['ipv4'] },
  {
    name: 'owner-groups-exclude',
    argv: ['--outbound-owner-groups-exclude', '888,999'],
    families: ['ipv4'],
  },
  // A loopback range in -i: no loopback RETURN per owner, that range captured.
  {
    name: 'loopback-include-cidr',
    argv: ['-i', '127.1.2.3/32', '--redirect-dns', '-u', '3,4', '-g', '1,2'],
    families: ['ipv4'],
    resolvConf: 'nameserver 127.0.0.53\n',
  },
  // IPv4 resolvers only: the proxy's IPv6 rules are still shaped for DNS capture.
  {
    name: 'dns-ipv4-resolvers-dual-stack',
    argv: ['--redirect-dns'],
    families: ['ipv4', 'ipv6'],
    resolvConf: 'nameserver 10.96.0.10\n',
  },
  // With TPROXY, -c is let through before --drop-invalid and in mangle's OUTPUT.
  {
    name: 'tproxy-exclude-interfaces-drop-invalid',
    argv: ['-m', 'TPROXY', '-c', 'eth2', '--drop-invalid'],
    families: ['ipv4'],
  },
  // Issue 5 all at once: nat, mangle (--drop-invalid first) and raw.
  {
    name: 'all-features',
    argv: [...TPROXY_INJECTOR, '--redirect-dns', '--drop-invalid'],
    families: ['ipv4', 'ipv6'],
    resolvConf: RESOLV_CONF,
  },
  {
    name: 'all-features-capture-all-dns',
    argv: [
      '-m',
      'TPROXY',
      '--redirect-dns',
      '--capture-all-dns',
      '--drop-invalid',
      '--chain-prefix',
      'ABCDEFGHIJKLMNOP',
    ],
    families: ['ipv4'],
  },
];
