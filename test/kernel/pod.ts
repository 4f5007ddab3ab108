/**
 * Throw-away "pods" for the real-kernel suite: a pod network namespace joined by a
 * veth pair to a peer namespace (another host), with listeners that report where a
 * connection landed. Nothing here touches the machine's own network namespace.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';

/** The bundle under test; MESH_INIT_BUNDLE runs the suite against another build (an older one, say). */
export const BUNDLE =
  process.env.MESH_INIT_BUNDLE ?? new URL('../../dist/mesh-init.cjs', import.meta.url).pathname;
const PROBE = readFileSync(new URL('./probe.py', import.meta.url), 'utf8');
const PYTHON = '/usr/bin/python3';

export const PROXY_UID = 1337;
export const ADDRESSES = {
  ipv4: { pod: '10.200.1.1', peer: '10.200.1.2', loopback: '127.0.0.1', passthrough: '127.0.0.6' },
  ipv6: { pod: 'fd00:200:1::1', peer: 'fd00:200:1::2', loopback: '::1', passthrough: '::6' },
} as const;
export type Family = keyof typeof ADDRESSES;
export type Host = 'pod' | 'peer' | 'peer2';

/** Why this machine cannot run the suite, or undefined when it can. */
export function missingPrerequisites(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const file of [
    '/usr/sbin/ip',
    '/usr/sbin/iptables-legacy-restore',
    '/usr/sbin/iptables-nft-restore',
    '/usr/sbin/nft',
    '/usr/bin/setpriv',
    PYTHON,
  ]) {
    if (!existsSync(file)) return `${file} is missing`;
  }
  if (!existsSync(BUNDLE)) return `${BUNDLE} is missing (npm run build)`;
  return undefined;
}

export interface Report {
  readonly server?: string;
  readonly local?: string;
  readonly peer?: string;
  readonly original?: string | null;
  readonly error?: string;
}

export interface As {
  readonly uid?: number;
  readonly gid?: number;
}

let counter = 0;

/** setpriv's way to a UID with no capability left in any set. */
function unprivileged(as: { uid: number; gid: number }): string[] {
  return [
    '/usr/bin/setpriv',
    `--reuid=${as.uid}`,
    `--regid=${as.gid}`,
    '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--no-new-privs',
  ];
}

/**
 * A veth pair from the pod's podLink to the peer's eth0, with the addresses given
 * (IPv6 ones without duplicate address detection), every link and lo up.
 */
async function wire(
  pod: string,
  podLink: string,
  peer: string,
  addresses: { pod: readonly string[]; peer: readonly string[] },
): Promise<void> {
  await execa('ip', [
    '-n',
    pod,
    'link',
    'add',
    podLink,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    peer,
  ]);
  for (const [ns, link, list] of [
    [pod, podLink, addresses.pod],
    [peer, 'eth0', addresses.peer],
  ] as const) {
    for (const address of list) {
      const nodad = address.includes(':') ? ['nodad'] : [];
      await execa('ip', ['-n', ns, 'addr', 'add', address, 'dev', link, ...nodad]);
    }
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await execa('ip', ['-n', ns, 'link', 'set', link, 'up']);
  }
}

export class Pod {
  private readonly servers: { kill: () => void; exited: Promise<unknown> }[] = [];

  private constructor(
    readonly pod: string,
    readonly peer: string,
  ) {}

  /**
   * Helpers for two namespaces made and wired elsewhere (the CNI suite's, joined by the
   * bridge plugin): `peer` is any other namespace to connect from. destroy() deletes them.
   */
  static adopt(pod: string, peer: string): Pod {
    return new Pod(pod, peer);
  }

  static async create(): Promise<Pod> {
    const id = `mi-${process.pid}-${counter++}`;
    const net = new Pod(`${id}-pod`, `${id}-peer`);
    try {
      await execa('ip', ['netns', 'add', net.pod]);
      await execa('ip', ['netns', 'add', net.peer]);
      await wire(net.pod, 'eth0', net.peer, {
        pod: [`${ADDRESSES.ipv4.pod}/24`, `${ADDRESSES.ipv6.pod}/64`],
        peer: [`${ADDRESSES.ipv4.peer}/24`, `${ADDRESSES.ipv6.peer}/64`],
      });
    } catch (error) {
      await net.destroy();
      throw error;
    }
    return net;
  }

  private argv(ns: string, as: As, argv: readonly string[]): string[] {
    const user =
      as.uid === undefined && as.gid === undefined
        ? []
        : [
            'setpriv',
            `--reuid=${as.uid ?? 0}`,
            `--regid=${as.gid ?? as.uid ?? 0}`,
            '--clear-groups',
          ];
    return ['netns', 'exec', ns, ...user, ...argv];
  }

  /**
   * Starts a listener; resolves once it is bound on both families. `tcp-transparent`
   * is a TPROXY proxy's listener; `dns` answers every A question with `answer`.
   */
  async serve(
    where: Host,
    name: string,
    proto: 'tcp' | 'udp' | 'tcp-transparent' | { dns: string; loopback?: boolean },
    ports: readonly number[],
    as: As = {},
  ): Promise<void> {
    const ns = this.namespace(where);
    const kind =
      typeof proto === 'string' ? [proto] : [proto.loopback ? 'dns-lo' : 'dns', proto.dns];
    const child = execa(
      'ip',
      this.argv(ns, as, [PYTHON, '-c', PROBE, 'serve', name, ...kind, ...ports.map(String)]),
      {
        stdin: 'pipe',
        reject: false,
      },
    );
    this.servers.push({ kill: () => child.kill('SIGKILL'), exited: child.then(() => undefined) });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`listener ${name} exited (${code})`)));
    });
  }

  /** Connects from inside a namespace and returns what the listener reported. */
  async connect(
    from: Host,
    proto: 'tcp' | 'udp',
    host: string,
    port: number,
    options: As & { source?: string } = {},
  ): Promise<Report> {
    const ns = this.namespace(from);
    const args = [PYTHON, '-c', PROBE, 'connect', proto, host, String(port)];
    if (options.source) args.push(options.source);
    const { stdout } = await execa('ip', this.argv(ns, options, args));
    return JSON.parse(stdout) as Report;
  }

  /** Runs another probe command (resolve, query, invalid) in a namespace; returns its JSON. */
  async probe(
    where: Host,
    command: 'resolve' | 'query' | 'invalid',
    args: readonly string[],
    as: As = {},
  ): Promise<{ addresses?: string[]; error?: string; sent?: number }> {
    const argv = [PYTHON, '-c', PROBE, command, ...args];
    const { stdout } = await execa('ip', this.argv(this.namespace(where), as, argv));
    return JSON.parse(stdout);
  }

  /** The pod's /etc/resolv.conf: `ip netns exec` mounts /etc/netns/POD/resolv.conf over it. */
  setResolvConf(text: string): void {
    mkdirSync(`/etc/netns/${this.pod}`, { recursive: true });
    writeFileSync(`/etc/netns/${this.pod}/resolv.conf`, text);
  }

  /** Packets counted by the pod's rules whose comment contains `why`, in one table. */
  async packets(backend: 'legacy' | 'nft', family: Family, table: string, why: string) {
    const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-save`;
    const { stdout } = await execa('ip', ['netns', 'exec', this.pod, tool, '-c', '-t', table]);
    return (
      stdout
        .split('\n')
        // iptables-save escapes the quotes inside comments.
        .filter((line) => line.replaceAll("\\'", "'").includes(why))
        .reduce((sum, line) => sum + Number(/^\[(\d+):/.exec(line)?.[1] ?? 0), 0)
    );
  }

  /** One table of one family as iptables-save prints it, without comments and counters. */
  async table(backend: 'legacy' | 'nft', family: Family, table: string): Promise<string> {
    const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-save`;
    const { stdout } = await execa('ip', ['netns', 'exec', this.pod, tool, '-t', table]);
    return stdout
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .map((line) => line.replace(/\[\d+:\d+\]$/, '[0:0]'))
      .join('\n');
  }

  /** Runs a command in a namespace (ip rule, ip route …); returns its stdout. */
  async exec(where: Host, argv: readonly string[]): Promise<string> {
    const { stdout } = await execa('ip', ['netns', 'exec', this.namespace(where), ...argv]);
    return stdout;
  }

  /** Runs the real bundle inside the pod namespace (or another one of this pod's). */
  meshInit(args: readonly string[], env: Record<string, string> = {}, where: Host = 'pod') {
    const ns = this.namespace(where);
    return execa('/usr/sbin/ip', ['netns', 'exec', ns, process.execPath, BUNDLE, ...args], {
      reject: false,
      stripFinalNewline: false,
      env,
    });
  }

  /** The nat table of one family, without the timestamped comment lines and counters. */
  async natTable(backend: 'legacy' | 'nft', family: Family): Promise<string> {
    const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-save`;
    const { stdout } = await execa('ip', ['netns', 'exec', this.pod, tool, '-t', 'nat']);
    return stdout
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .map((line) => line.replace(/\[\d+:\d+\]$/, '[0:0]'))
      .join('\n');
  }

  /** The pod's whole nft ruleset as `nft list ruleset` prints it, counters zeroed. */
  async nftRuleset(): Promise<string> {
    const { stdout } = await execa('ip', ['netns', 'exec', this.pod, 'nft', 'list', 'ruleset']);
    return stdout.replace(/counter packets \d+ bytes \d+/g, 'counter packets 0 bytes 0');
  }

  /** Packets counted by the rules of an inet table whose comment contains `why`. */
  async nftPackets(table: string, why: string): Promise<number> {
    const { stdout } = await execa('ip', [
      ...['netns', 'exec', this.pod, 'nft', '-j', 'list', 'table', 'inet', table],
    ]);
    type Expr = { counter?: { packets: number } };
    type Item = { rule?: { comment?: string; expr: Expr[] } };
    return (JSON.parse(stdout).nftables as Item[])
      .flatMap((item) => (item.rule?.comment?.includes(why) ? item.rule.expr : []))
      .reduce((sum, expr) => sum + (expr.counter?.packets ?? 0), 0);
  }

  /** Feeds an nft script in the pod (tables "others" put there). */
  async nftForeign(script: string): Promise<void> {
    await execa('ip', ['netns', 'exec', this.pod, 'nft', '-f', '-'], { input: script });
  }

  /** Runs a restore of foreign rules in the pod (rules "others" put there). */
  async restoreForeign(backend: 'legacy' | 'nft', family: Family, text: string): Promise<void> {
    const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-restore`;
    await execa('ip', ['netns', 'exec', this.pod, tool, '--noflush', '--wait=10'], { input: text });
  }

  private readonly extra: string[] = [];

  private namespace(host: Host): string {
    if (host === 'pod') return this.pod;
    if (host === 'peer') return this.peer;
    return `${this.pod.replace(/-pod$/, '')}-peer2`;
  }

  /**
   * A second peer behind the pod's eth1 (10.200.2.1 in the pod, 10.200.2.2 there): a VM
   * behind the pod, or a network that --exclude-interfaces leaves alone.
   */
  async addSecondPeer(): Promise<void> {
    const ns = this.namespace('peer2');
    await execa('ip', ['netns', 'add', ns]);
    this.extra.push(ns);
    await wire(this.pod, 'eth1', ns, { pod: ['10.200.2.1/24'], peer: ['10.200.2.2/24'] });
  }

  /** A default route through the peer, as a pod has: IPv4's, and IPv6's when asked. */
  async addDefaultRoute(families: readonly Family[] = ['ipv4']): Promise<void> {
    for (const family of families) {
      const version = family === 'ipv4' ? '-4' : '-6';
      const route = ['route', 'add', 'default', 'via', ADDRESSES[family].peer];
      await execa('ip', [version, '-n', this.pod, ...route]);
    }
  }

  /**
   * Runs the real bundle in the pod as `as` with no capability at all: effective,
   * permitted, inheritable, ambient and bounding sets empty and no_new_privs, as a
   * container with `capabilities: {drop: [ALL]}`, `runAsUser` and
   * `allowPrivilegeEscalation: false` runs it.
   */
  meshInitUnprivileged(as: { uid: number; gid: number }, args: readonly string[]) {
    return execa(
      '/usr/sbin/ip',
      ['netns', 'exec', this.pod, ...unprivileged(as), process.execPath, BUNDLE, ...args],
      { reject: false, stripFinalNewline: false },
    );
  }

  /** The capability sets (`CapEff:` …) of a process started as meshInitUnprivileged starts one. */
  async capabilitiesOf(as: { uid: number; gid: number }): Promise<string> {
    const argv = ['netns', 'exec', this.pod, ...unprivileged(as), '/usr/bin/grep', '^Cap'];
    const { stdout } = await execa('/usr/sbin/ip', [...argv, '/proc/self/status']);
    return stdout;
  }

  /** Stops the listeners this Pod started; the namespaces stay. */
  async stopServers(): Promise<void> {
    for (const server of this.servers) server.kill();
    await Promise.allSettled(this.servers.map((server) => server.exited));
  }

  async destroy(): Promise<void> {
    await this.stopServers();
    await execa('ip', ['netns', 'del', this.pod], { reject: false });
    await execa('ip', ['netns', 'del', this.peer], { reject: false });
    for (const ns of this.extra) await execa('ip', ['netns', 'del', ns], { reject: false });
    rmSync(`/etc/netns/${this.pod}`, { recursive: true, force: true });
  }
}
