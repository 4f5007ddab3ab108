/**
 * A small libcni for the kernel suite: a "node" network namespace that plays the
 * node, a conflist whose primary network is Debian's reference bridge + host-local
 * plugins, and the runtime's part of the protocol: ADD through the chain in order,
 * each plugin given the previous result as prevResult, DEL in reverse, CHECK in
 * order with the last result. Plugins run inside the node namespace with no
 * environment but the CNI variables (no PATH), as a strict runtime starts them.
 * Nothing here touches the machine's own network namespace: the bridge lives in the
 * node namespace, and goes with it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { describe, it } from 'vitest';
import { missingPrerequisites } from './pod.js';

export const REFERENCE_PLUGINS = '/usr/lib/cni';
export const CNI_BUNDLE = new URL('../../dist/mesh-init-cni.cjs', import.meta.url).pathname;

/** Why this machine cannot run the CNI suite, or undefined. */
export function missingCniPrerequisites(): string | undefined {
  for (const file of [
    `${REFERENCE_PLUGINS}/bridge`,
    `${REFERENCE_PLUGINS}/host-local`,
    '/usr/bin/nsenter',
  ]) {
    if (!existsSync(file))
      return `${file} is missing (apt-get install containernetworking-plugins util-linux)`;
  }
  if (!existsSync(CNI_BUNDLE)) return `${CNI_BUNDLE} is missing (npm run build)`;
  return undefined;
}

export interface PluginRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as JSON, when it is. */
  readonly json: Record<string, unknown> | undefined;
}

export interface Attachment {
  readonly containerId: string;
  /** The pod's namespace path (CNI_NETNS). */
  readonly netns: string;
  readonly ifname: string;
  /** CNI_ARGS. */
  readonly args: string;
}

let counter = 0;

export class CniNode {
  readonly name: string;
  readonly binDir: string;
  readonly confDir: string;
  readonly libDir: string;
  private readonly dir: string;

  private constructor(readonly id: number) {
    this.name = `mi-cni-${process.pid}-${id}-node`;
    this.dir = mkdtempSync(`${tmpdir()}/mesh-init-cni-`);
    this.binDir = `${this.dir}/bin`;
    this.confDir = `${this.dir}/net.d`;
    this.libDir = `${this.dir}/lib`;
  }

  /**
   * A node namespace with the reference plugins in its bin dir and a bridge conflist
   * (the primary network) on `subnet` (a /24 of its own per test file).
   */
  static async create(subnet: string): Promise<CniNode> {
    const node = new CniNode(counter++);
    try {
      await execa('ip', ['netns', 'add', node.name]);
      await execa('ip', ['-n', node.name, 'link', 'set', 'lo', 'up']);
      await execa('mkdir', ['-p', node.binDir, node.confDir, node.libDir, `${node.dir}/ipam`]);
      // The bridge made here with an address of its own: a bridge that picks its MAC
      // takes the lowest of its ports', so the second pod's veth could change it, and
      // the bridge plugin's CHECK of the first pod then fails ("Mac doesn't match").
      await execa('ip', ['-n', node.name, 'link', 'add', node.bridge, 'type', 'bridge']);
      await execa('ip', [
        '-n',
        node.name,
        'link',
        'set',
        node.bridge,
        'address',
        '02:6d:69:00:00:01',
      ]);
      await execa('ip', ['-n', node.name, 'link', 'set', node.bridge, 'up']);
      for (const plugin of ['bridge', 'host-local']) {
        await execa('ln', ['-s', `${REFERENCE_PLUGINS}/${plugin}`, `${node.binDir}/${plugin}`]);
      }
      const primary = {
        cniVersion: '1.0.0',
        name: `mi-test-${node.id}`,
        plugins: [
          {
            type: 'bridge',
            bridge: node.bridge,
            isGateway: false,
            ipMasq: false,
            ipam: { type: 'host-local', subnet, dataDir: `${node.dir}/ipam` },
          },
        ],
      };
      writeFileSync(`${node.confDir}/10-bridge.conflist`, `${JSON.stringify(primary, null, 2)}\n`);
    } catch (error) {
      await node.destroy();
      throw error;
    }
    return node;
  }

  get bridge(): string {
    return `mi${process.pid % 100000}b${this.id}`;
  }

  /** Runs mesh-init-cni install|uninstall (outside any namespace: it only writes files). */
  async manage(args: readonly string[]) {
    return execa(process.execPath, [CNI_BUNDLE, ...args], { reject: false });
  }

  async install(block: Record<string, unknown>, extra: readonly string[] = []) {
    const file = `${this.dir}/block.json`;
    writeFileSync(file, JSON.stringify(block));
    return this.manage([
      'install',
      ...['--conf-dir', this.confDir, '--bin-dir', this.binDir, '--lib-dir', this.libDir],
      ...['--plugin-config', file, ...extra],
    ]);
  }

  /** The network the runtime would use: the first file by name. */
  conflist(): { name: string; cniVersion: string; plugins: Record<string, unknown>[] } {
    const first = readdirSync(this.confDir)
      .filter((f) => /\.(conf|conflist|json)$/.test(f))
      .sort()[0];
    if (first === undefined) throw new Error(`no conflist in ${this.confDir}`);
    return JSON.parse(readFileSync(`${this.confDir}/${first}`, 'utf8'));
  }

  /** One plugin, as a runtime starts it: bare environment, config on stdin, in the node namespace. */
  async exec(
    plugin: Record<string, unknown>,
    command: string,
    attachment: Partial<Attachment>,
    options: { prevResult?: unknown; cniVersion?: string; stdin?: string } = {},
  ): Promise<PluginRun> {
    const list = this.conflist();
    const config = {
      ...plugin,
      cniVersion: options.cniVersion ?? list.cniVersion,
      name: list.name,
      ...(options.prevResult === undefined ? {} : { prevResult: options.prevResult }),
    };
    const env: Record<string, string> = { CNI_COMMAND: command, CNI_PATH: this.binDir };
    if (attachment.containerId) env.CNI_CONTAINERID = attachment.containerId;
    if (attachment.netns) env.CNI_NETNS = attachment.netns;
    if (attachment.ifname) env.CNI_IFNAME = attachment.ifname;
    if (attachment.args) env.CNI_ARGS = attachment.args;
    const file = `${this.binDir}/${String(plugin.type)}`;
    // In the node namespace, as a runtime there starts it: never in this machine's own.
    const result = await execa('/usr/sbin/ip', ['netns', 'exec', this.name, file], {
      env,
      extendEnv: false,
      input: options.stdin ?? JSON.stringify(config),
      reject: false,
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(result.stdout);
    } catch {
      json = undefined;
    }
    return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr, json };
  }

  /** ADD through the chain; returns every plugin's run (the last one's JSON is the result). */
  async add(attachment: Attachment): Promise<PluginRun[]> {
    const runs: PluginRun[] = [];
    let prevResult: unknown;
    for (const plugin of this.conflist().plugins) {
      const run = await this.exec(plugin, 'ADD', attachment, { prevResult });
      runs.push(run);
      if (run.exitCode !== 0) break;
      prevResult = run.json;
    }
    return runs;
  }

  /** DEL through the chain in reverse, each plugin given the ADD's result. */
  async del(attachment: Attachment, prevResult: unknown): Promise<PluginRun[]> {
    const runs: PluginRun[] = [];
    for (const plugin of [...this.conflist().plugins].reverse()) {
      runs.push(await this.exec(plugin, 'DEL', attachment, { prevResult }));
    }
    return runs;
  }

  async check(attachment: Attachment, prevResult: unknown): Promise<PluginRun[]> {
    const runs: PluginRun[] = [];
    for (const plugin of this.conflist().plugins) {
      const run = await this.exec(plugin, 'CHECK', attachment, { prevResult });
      runs.push(run);
      if (run.exitCode !== 0) break;
    }
    return runs;
  }

  /** The plugin's own entry in the chain. */
  meshInitPlugin(): Record<string, unknown> {
    const entry = this.conflist().plugins.find((p) => p.type === 'mesh-init-cni');
    if (entry === undefined) throw new Error('mesh-init-cni is not chained');
    return entry;
  }

  /** Deletes the node namespace (and with it the bridge and the pods' host-side veths) and the files. */
  async destroy(): Promise<void> {
    await execa('ip', ['netns', 'del', this.name], { reject: false });
    // The bridge plugin's DEL leaves the bridge: it lived in the node namespace, gone now.
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** mesh-init's chains and comments in a text, by the test's own chain prefix. */
export const TEST_PREFIX = 'MICNI_';

/**
 * What the machine's own namespace has of the test's rules: iptables' nat table of
 * both backends and families, and the nft ruleset, searched for the test's prefix.
 */
export async function rootTablesMention(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const tool of [
    'iptables-legacy-save',
    'iptables-nft-save',
    'ip6tables-legacy-save',
    'ip6tables-nft-save',
  ]) {
    const { stdout } = await execa(tool, ['-t', 'nat'], { reject: false });
    found.push(
      ...stdout
        .split('\n')
        .filter((line) => line.includes(marker))
        .map((l) => `${tool}: ${l}`),
    );
  }
  const { stdout } = await execa('nft', ['list', 'ruleset'], { reject: false });
  found.push(
    ...stdout
      .split('\n')
      .filter((line) => line.includes(marker))
      .map((l) => `nft: ${l}`),
  );
  return found;
}

/** The nat table of the machine's own namespace (iptables-legacy), as it reads. */
export async function rootNat(tool: string): Promise<string> {
  const { stdout } = await execa(tool, ['-t', 'nat'], { reject: false });
  return stdout
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .map((line) => line.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

/** kernelSuite's rule for the CNI suite: root, the kernel tools, and the reference plugins. */
export function cniSuite(name: string, body: () => void): void {
  const missing = missingPrerequisites() ?? missingCniPrerequisites();
  if (missing === undefined) describe(name, body);
  else if (process.env.CI === 'true') {
    describe(name, () => {
      it('has what the CNI kernel suite needs', () => {
        throw new Error(`CNI kernel suite cannot run under CI: ${missing}`);
      });
    });
  } else {
    console.warn(`[kernel] SKIPPED "${name}": ${missing}.`);
    describe.skip(name, body);
  }
}

/** A pod's network namespace, made as a runtime makes one: lo up (its loopback network), no other link. */
export async function podNamespace(label: string): Promise<{ name: string; path: string }> {
  const name = `mi-cni-${process.pid}-${counter++}-${label}`;
  await execa('ip', ['netns', 'add', name]);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/var/run/netns/${name}` };
}

export async function deleteNamespace(name: string): Promise<void> {
  await execa('ip', ['netns', 'del', name], { reject: false });
}

/** One table of a namespace as iptables-save prints it (nft backend). */
export async function natIn(namespace: string, backend: 'nft' | 'legacy' = 'nft'): Promise<string> {
  const { stdout } = await execa('ip', [
    'netns',
    'exec',
    namespace,
    `iptables-${backend}-save`,
    '-t',
    'nat',
  ]);
  return stdout;
}
