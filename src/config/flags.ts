/**
 * The command line, as data: yargs is configured from this table, environment
 * variables are looked up from it, and `--help` prints it. Letters follow Istio's
 * istio-iptables, so the argv Istio's injector writes works unchanged.
 */

export interface FlagSpec {
  /** Long name, without dashes. */
  readonly name: string;
  readonly short?: string;
  /** Other long names, e.g. Istio's spelling of the same flag. */
  readonly aliases?: readonly string[];
  readonly type: 'string' | 'boolean';
  /** Variables read when the flag is absent, first one set wins. Istio's names come second. */
  readonly env: readonly string[];
  readonly describe: string;
  /** Shown in --help; the real defaults live in config.ts. */
  readonly defaultText: string;
}

export const FLAGS: readonly FlagSpec[] = [
  {
    name: 'proxy-port',
    short: 'p',
    type: 'string',
    env: ['MESH_INIT_PROXY_PORT', 'ENVOY_PORT'],
    describe: 'port that outbound TCP is redirected to',
    defaultText: '15001',
  },
  {
    name: 'inbound-capture-port',
    short: 'z',
    type: 'string',
    env: ['MESH_INIT_INBOUND_CAPTURE_PORT', 'INBOUND_CAPTURE_PORT'],
    describe: 'port that inbound TCP is redirected to',
    defaultText: 'same as --proxy-port',
  },
  {
    name: 'inbound-tunnel-port',
    short: 'e',
    type: 'string',
    env: ['MESH_INIT_INBOUND_TUNNEL_PORT', 'INBOUND_TUNNEL_PORT'],
    describe: "the proxy's tunnel port (HBONE): inbound TCP to it is never captured",
    defaultText: '15008',
  },
  {
    name: 'proxy-uid',
    short: 'u',
    type: 'string',
    env: ['MESH_INIT_PROXY_UID', 'PROXY_UID'],
    describe: 'comma list of UIDs whose traffic is never redirected (the proxy)',
    defaultText: '1337',
  },
  {
    name: 'proxy-gid',
    short: 'g',
    type: 'string',
    env: ['MESH_INIT_PROXY_GID', 'PROXY_GID'],
    describe: 'comma list of GIDs whose traffic is never redirected',
    defaultText: 'same as --proxy-uid',
  },
  {
    name: 'inbound-interception-mode',
    short: 'm',
    type: 'string',
    env: [
      'MESH_INIT_INBOUND_INTERCEPTION_MODE',
      'ISTIO_INBOUND_INTERCEPTION_MODE',
      'INBOUND_INTERCEPTION_MODE',
    ],
    describe: 'how inbound TCP is captured: REDIRECT (nat) or TPROXY (mangle, destination kept)',
    defaultText: 'REDIRECT',
  },
  {
    name: 'inbound-tproxy-mark',
    short: 't',
    type: 'string',
    env: ['MESH_INIT_INBOUND_TPROXY_MARK', 'ISTIO_INBOUND_TPROXY_MARK', 'INBOUND_TPROXY_MARK'],
    describe: 'TPROXY: packet mark that routes inbound TCP to the proxy (mark + 1 is used too)',
    defaultText: '1337',
  },
  {
    name: 'inbound-tproxy-route-table',
    short: 'r',
    type: 'string',
    env: [
      'MESH_INIT_INBOUND_TPROXY_ROUTE_TABLE',
      'ISTIO_INBOUND_TPROXY_ROUTE_TABLE',
      'INBOUND_TPROXY_ROUTE_TABLE',
    ],
    describe: 'TPROXY: routing table of the local route for marked packets',
    defaultText: '133',
  },
  {
    name: 'inbound-ports',
    short: 'b',
    type: 'string',
    env: ['MESH_INIT_INBOUND_PORTS', 'ISTIO_INBOUND_PORTS'],
    describe: '"*" = capture all inbound TCP, a port list = only those, "" = no inbound capture',
    defaultText: '*',
  },
  {
    name: 'inbound-exclude-ports',
    short: 'd',
    type: 'string',
    env: ['MESH_INIT_INBOUND_EXCLUDE_PORTS', 'ISTIO_LOCAL_EXCLUDE_PORTS'],
    describe: 'comma list of ports never captured inbound',
    defaultText: 'none',
  },
  {
    name: 'outbound-include-cidrs',
    short: 'i',
    type: 'string',
    env: ['MESH_INIT_OUTBOUND_INCLUDE_CIDRS', 'ISTIO_SERVICE_CIDR'],
    describe: '"*" = capture all outbound TCP, a CIDR list = only to those, "" = none',
    defaultText: '*',
  },
  {
    name: 'outbound-exclude-cidrs',
    short: 'x',
    type: 'string',
    env: ['MESH_INIT_OUTBOUND_EXCLUDE_CIDRS', 'ISTIO_SERVICE_EXCLUDE_CIDR'],
    describe: 'comma list of CIDRs never captured outbound',
    defaultText: 'none',
  },
  {
    name: 'outbound-exclude-ports',
    short: 'o',
    type: 'string',
    env: ['MESH_INIT_OUTBOUND_EXCLUDE_PORTS', 'ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE'],
    describe: 'comma list of destination ports never captured outbound (TCP and UDP)',
    defaultText: 'none',
  },
  {
    name: 'outbound-include-ports',
    short: 'q',
    type: 'string',
    env: ['MESH_INIT_OUTBOUND_INCLUDE_PORTS', 'ISTIO_OUTBOUND_PORTS'],
    describe:
      'comma list of destination ports captured outbound even where -i does not capture (-x still excludes)',
    defaultText: 'none',
  },
  {
    name: 'dry-run',
    short: 'n',
    type: 'boolean',
    env: ['MESH_INIT_DRY_RUN', 'DRY_RUN'],
    describe:
      'print the iptables-restore input (the nft script with --native-nftables) instead of applying it; needs no privileges',
    defaultText: 'false',
  },
  {
    name: 'ipv6',
    type: 'string',
    env: ['MESH_INIT_IPV6'],
    describe:
      'capture IPv6 too: auto (as Istio: an IPv6-only pod, or any pod with IPv6 and --dual-stack), true, false',
    defaultText: 'auto',
  },
  {
    name: 'iptables-backend',
    type: 'string',
    env: ['MESH_INIT_IPTABLES_BACKEND'],
    describe: 'auto (the backend already holding rules, else nft, else legacy), legacy, nft',
    defaultText: 'auto',
  },
  {
    name: 'wait',
    type: 'string',
    env: ['MESH_INIT_WAIT'],
    describe: 'seconds *-restore waits for the xtables lock held by another program',
    defaultText: '10',
  },
  {
    name: 'max-retries',
    type: 'string',
    env: ['MESH_INIT_MAX_RETRIES'],
    describe: 'how often a restore that met a busy lock or table is tried again',
    defaultText: '3',
  },
  {
    name: 'retry-interval',
    type: 'string',
    env: ['MESH_INIT_RETRY_INTERVAL'],
    describe: 'seconds between those tries (a decimal number)',
    defaultText: '1',
  },
  {
    name: 'cleanup',
    aliases: ['cleanup-only'],
    type: 'boolean',
    env: ['MESH_INIT_CLEANUP', 'CLEANUP_ONLY'],
    describe:
      "remove mesh-init's chains and jumps (its inet tables with --native-nftables), leave all else",
    defaultText: 'false',
  },
  {
    name: 'check',
    type: 'boolean',
    env: ['MESH_INIT_CHECK'],
    describe: 'compare the live rules with the planned ones, print the difference, exit 5 on drift',
    defaultText: 'false',
  },
  {
    name: 'run-validation',
    type: 'boolean',
    env: ['MESH_INIT_RUN_VALIDATION', 'RUN_VALIDATION'],
    describe: 'after applying, prove that a probe connection the rules capture lands on its port',
    defaultText: 'false',
  },
  {
    name: 'skip-rule-apply',
    type: 'boolean',
    env: ['MESH_INIT_SKIP_RULE_APPLY', 'SKIP_RULE_APPLY'],
    describe: 'apply nothing (with --run-validation: only validate)',
    defaultText: 'false',
  },
  {
    name: 'probe-address',
    type: 'string',
    env: ['MESH_INIT_PROBE_ADDRESS'],
    describe:
      'address the validation connects to, at most one IPv4 and one IPv6; the rules must capture it for the UID mesh-init runs as',
    defaultText:
      'chosen per UID: 127.0.0.6 and ::6 for the proxy, 192.0.2.1 and 2001:db8::1 for others',
  },
  {
    name: 'probe-port',
    aliases: ['iptables-probe-port'],
    type: 'string',
    env: ['MESH_INIT_PROBE_PORT', 'IPTABLES_PROBE_PORT'],
    describe: 'port the validation connects to',
    defaultText: '15002',
  },
  {
    name: 'probe-timeout',
    type: 'string',
    env: ['MESH_INIT_PROBE_TIMEOUT', 'PROBE_TIMEOUT'],
    describe: 'how long the validation may take: seconds (5, 0.5) or a duration (5s, 500ms)',
    defaultText: '5',
  },
  {
    name: 'log-format',
    type: 'string',
    env: ['MESH_INIT_LOG_FORMAT'],
    describe: 'stderr log lines: text or json',
    defaultText: 'text',
  },
  // Istio's injector writes these too; they are taken so that its argv works as it is.
  {
    name: 'log_as_json',
    type: 'boolean',
    env: [],
    describe: "Istio's spelling of --log-format json",
    defaultText: 'false',
  },
  {
    name: 'log_output_level',
    type: 'string',
    env: [],
    describe: "Istio's log levels (e.g. default:info): accepted, without effect (one level here)",
    defaultText: 'none',
  },
  {
    name: 'outbound-owner-groups',
    type: 'string',
    env: ['MESH_INIT_OUTBOUND_OWNER_GROUPS', 'ISTIO_OUTBOUND_OWNER_GROUPS'],
    describe:
      '"*" = capture the outbound TCP of every group, a list of group names or GIDs = only of those',
    defaultText: '*',
  },
  {
    name: 'outbound-owner-groups-exclude',
    type: 'string',
    env: ['MESH_INIT_OUTBOUND_OWNER_GROUPS_EXCLUDE', 'ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'],
    describe:
      'with --outbound-owner-groups "*": groups (names or GIDs) whose outbound TCP is not captured',
    defaultText: 'none',
  },
  {
    name: 'ipv4-loopback-cidr',
    type: 'string',
    env: ['MESH_INIT_IPV4_LOOPBACK_CIDR', 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
    describe: "the pod's IPv4 loopback range, never captured (an IPv4 loopback CIDR, prefix 8-32)",
    defaultText: '127.0.0.1/32',
  },
  {
    name: 'network-namespace',
    type: 'string',
    env: ['MESH_INIT_NETWORK_NAMESPACE', 'NETWORK_NAMESPACE'],
    describe:
      'apply in this network namespace (a path such as /var/run/netns/pod) instead of our own',
    defaultText: 'our own',
  },
  {
    name: 'kube-virt-interfaces',
    short: 'k',
    type: 'string',
    env: ['MESH_INIT_KUBE_VIRT_INTERFACES', 'KUBE_VIRT_INTERFACES'],
    describe:
      'comma list of interfaces whose inbound TCP is treated as outbound (VMs behind the pod)',
    defaultText: 'none',
  },
  {
    name: 'exclude-interfaces',
    short: 'c',
    type: 'string',
    env: ['MESH_INIT_EXCLUDE_INTERFACES', 'ISTIO_EXCLUDE_INTERFACES'],
    describe: 'comma list of interfaces whose traffic is never captured',
    defaultText: 'none',
  },
  {
    name: 'redirect-dns',
    type: 'boolean',
    env: ['MESH_INIT_REDIRECT_DNS', 'ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'],
    describe:
      "send the apps' DNS (UDP and TCP port 53) to the resolvers of /etc/resolv.conf to --dns-port",
    defaultText: 'false',
  },
  {
    name: 'capture-all-dns',
    type: 'boolean',
    env: ['MESH_INIT_CAPTURE_ALL_DNS', 'CAPTURE_ALL_DNS'],
    describe:
      'with --redirect-dns: capture DNS to any address, not only the resolvers (no effect without it, as in Istio)',
    defaultText: 'false',
  },
  {
    name: 'dns-port',
    type: 'string',
    env: ['MESH_INIT_DNS_PORT'],
    describe: "port of the proxy's DNS server that captured DNS goes to",
    defaultText: '15053',
  },
  {
    name: 'drop-invalid',
    type: 'boolean',
    env: ['MESH_INIT_DROP_INVALID', 'DROP_INVALID', 'INVALID_DROP'],
    describe: 'drop packets conntrack marks INVALID (they would bypass the proxy)',
    defaultText: 'false',
  },
  {
    name: 'native-nftables',
    type: 'boolean',
    env: ['MESH_INIT_NATIVE_NFTABLES', 'NATIVE_NFTABLES'],
    describe:
      'apply with nft in inet tables, both IP families in one transaction, instead of iptables',
    defaultText: 'false',
  },
  {
    name: 'force-iptables-binary',
    type: 'string',
    env: ['FORCE_IPTABLES_BINARY'],
    describe: "Istio's spelling of --iptables-backend legacy|nft",
    defaultText: 'none',
  },
  {
    name: 'dual-stack',
    type: 'boolean',
    env: ['MESH_INIT_DUAL_STACK', 'DUAL_STACK', 'ISTIO_DUAL_STACK'],
    describe:
      'with --ipv6 auto: capture IPv6 in a pod that has IPv4 too (the proxies serve both families)',
    defaultText: 'false',
  },
  {
    name: 'reconcile',
    type: 'boolean',
    env: ['RECONCILE'],
    describe:
      "Istio's flag to replace rules left by an earlier run: accepted, mesh-init always does",
    defaultText: 'false',
  },
  {
    name: 'cni-mode',
    type: 'boolean',
    env: ['CNI_MODE'],
    describe: "Istio's flag for its CNI plugin's runs: accepted, without effect",
    defaultText: 'false',
  },
  {
    name: 'force-apply',
    type: 'boolean',
    env: ['FORCE_APPLY'],
    describe:
      "Istio's flag to re-apply rules that look in place: accepted, mesh-init always reconciles",
    defaultText: 'false',
  },
  {
    name: 'chain-prefix',
    type: 'string',
    env: ['MESH_INIT_CHAIN_PREFIX'],
    describe: 'prefix of the chains mesh-init owns',
    defaultText: 'ISTIO_',
  },
];
