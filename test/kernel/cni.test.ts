/**
 * The CNI plugin driven as a runtime drives it: Debian's bridge + host-local make the
 * pods' network, mesh-init-cni (installed by `mesh-init-cni install`) is chained after
 * them, and real connections between two pods on the bridge show where TCP lands.
 * Without a kubeconfig every pod outside the excluded namespaces is captured.
 */
import { readdirSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Attachment,
  CniNode,
  cniSuite,
  deleteNamespace,
  natIn,
  podNamespace,
  rootNat,
  rootTablesMention,
  TEST_PREFIX,
} from './cni.js';
import { Pod, PROXY_UID } from './pod.js';

const OUT = 15001;
const IN = 15006;
const APP = 8080;
const ROOT_TOOLS = ['iptables-legacy-save', 'iptables-nft-save'];

const BLOCK = {
  excludeNamespaces: ['plain'],
  flags: {
    'proxy-port': OUT,
    'inbound-capture-port': IN,
    'proxy-uid': PROXY_UID,
    'chain-prefix': TEST_PREFIX,
    'iptables-backend': 'nft',
  },
};

/** The pod's address from the chain's result (host-local's pick). */
function addressOf(result: Record<string, unknown> | undefined): string {
  const ips = (result?.ips ?? []) as { address: string }[];
  const address = ips[0]?.address.split('/')[0];
  if (address === undefined) throw new Error(`no address in ${JSON.stringify(result)}`);
  return address;
}

cniSuite('the CNI plugin in a chain after bridge + host-local', () => {
  let node: CniNode;
  const pods: { name: string; path: string }[] = [];
  const rootBefore = new Map<string, string>();

  const attach = (pod: { path: string }, namespace: string, name: string): Attachment => ({
    containerId: `c-${name}`,
    netns: pod.path,
    ifname: 'eth0',
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=c-${name}`,
  });

  const newPod = async (label: string) => {
    const pod = await podNamespace(label);
    pods.push(pod);
    return pod;
  };

  beforeAll(async () => {
    for (const tool of ROOT_TOOLS) rootBefore.set(tool, await rootNat(tool));
    node = await CniNode.create('10.213.0.0/24');
    const installed = await node.install(BLOCK);
    expect(installed.stderr).toContain(
      'chained mesh-init-cni after the plugins of 10-bridge.conflist',
    );
    expect(installed.exitCode).toBe(0);
  });

  afterAll(async () => {
    for (const pod of pods) await deleteNamespace(pod.name);
    await node?.destroy();
  });

  it('install appended the plugin to the primary conflist, after bridge', () => {
    expect(node.conflist().plugins.map((p) => p.type)).toEqual(['bridge', 'mesh-init-cni']);
    expect(node.meshInitPlugin()['mesh-init']).toEqual(BLOCK);
  });

  it('ADD passes the bridge result through unchanged, captures, and CHECK/DEL behave', async () => {
    const app = await newPod('app');
    const other = await newPod('other');
    const appAtt = attach(app, 'default', 'app');
    const otherAtt = attach(other, 'plain', 'other');
    const [bridgeRun, meshRun] = await node.add(appAtt);
    expect(bridgeRun?.exitCode, bridgeRun?.stderr).toBe(0);
    expect(meshRun?.exitCode, meshRun?.stderr).toBe(0);
    expect(meshRun?.json).toEqual(bridgeRun?.json);
    expect(meshRun?.stderr).toContain('cni ADD pod default/app: applied ipv4');
    const otherRuns = await node.add(otherAtt);
    expect(otherRuns.map((r) => r.exitCode)).toEqual([0, 0]);
    expect(otherRuns[1]?.stderr).toContain('not captured: namespace plain is excluded');
    expect(otherRuns[1]?.json).toEqual(otherRuns[0]?.json);

    const appIp = addressOf(meshRun?.json);
    const otherIp = addressOf(otherRuns[1]?.json);
    expect(await natIn(app.name)).toContain(`${TEST_PREFIX}OUTPUT`);
    expect(await natIn(other.name)).not.toContain(TEST_PREFIX);

    // Two pods on one bridge: the app pod captured, the other not.
    const net = Pod.adopt(app.name, other.name);
    try {
      await net.serve('pod', 'proxy-outbound', 'tcp', [OUT], { uid: PROXY_UID });
      await net.serve('pod', 'proxy-inbound', 'tcp', [IN], { uid: PROXY_UID });
      await net.serve('pod', 'app', 'tcp', [APP], { uid: 1000 });
      await net.serve('peer', 'other', 'tcp', [80, APP]);

      const outbound = await net.connect('pod', 'tcp', otherIp, 80, { uid: 1000 });
      expect(outbound.server).toBe('proxy-outbound');
      expect(outbound.original).toBe(`${otherIp}:80`);
      const inbound = await net.connect('peer', 'tcp', appIp, APP);
      expect(inbound.server).toBe('proxy-inbound');
      expect(inbound.original).toBe(`${appIp}:${APP}`);
      const proxyOwn = await net.connect('pod', 'tcp', otherIp, 80, { uid: PROXY_UID });
      expect(proxyOwn.server).toBe('other');
      // The uncaptured pod's own traffic goes where it is sent.
      const plain = await net.connect('peer', 'tcp', otherIp, APP);
      expect(plain.server).toBe('other');
    } finally {
      await net.stopServers();
    }

    // CHECK: the chain agrees; after tampering, mesh-init-cni reports the drift.
    const checked = await node.check(appAtt, meshRun?.json);
    expect(checked.map((r) => [r.exitCode, r.stdout])).toEqual([
      [0, ''],
      [0, ''],
    ]);
    await execa('ip', [
      'netns',
      'exec',
      app.name,
      'iptables-nft',
      '-t',
      'nat',
      '-F',
      `${TEST_PREFIX}OUTPUT`,
    ]);
    const drifted = await node.check(appAtt, meshRun?.json);
    const failed = drifted[1];
    expect(failed?.exitCode).toBe(1);
    expect(failed?.json).toMatchObject({ cniVersion: '1.0.0', code: 102 });
    expect(String(failed?.json?.msg)).toContain('pod default/app: the live rules differ');
    expect(String(failed?.json?.details)).toContain(`${TEST_PREFIX}OUTPUT`);

    // DEL in reverse: the rules go; a second DEL succeeds too.
    const deleted = await node.del(appAtt, meshRun?.json);
    expect(deleted.map((r) => r.exitCode)).toEqual([0, 0]);
    expect(deleted.map((r) => r.stdout)).toEqual(['', '']);
    expect(await natIn(app.name)).not.toContain(TEST_PREFIX);
    const again = await node.del(appAtt, meshRun?.json);
    expect(again.map((r) => r.exitCode)).toEqual([0, 0]);
    await node.del(otherAtt, otherRuns[1]?.json);
  });

  it('DEL succeeds when the pod namespace is already gone', async () => {
    const pod = await newPod('gone');
    const att = attach(pod, 'default', 'gone');
    const runs = await node.add(att);
    expect(runs.map((r) => r.exitCode)).toEqual([0, 0]);
    await deleteNamespace(pod.name);
    const deleted = await node.del(att, runs[1]?.json);
    expect(deleted.map((r) => r.exitCode)).toEqual([0, 0]);
    expect(deleted[0]?.stderr).toContain('is gone');
    const noNetns = await node.exec(node.meshInitPlugin(), 'DEL', { ...att, netns: '' });
    expect(noNetns.exitCode).toBe(0);
  });

  it('concurrent ADDs for different pods each capture their own pod', async () => {
    const batch = await Promise.all([1, 2, 3, 4].map((i) => newPod(`many${i}`)));
    const atts = batch.map((pod, i) => attach(pod, 'default', `many-${i}`));
    const added = await Promise.all(atts.map((att) => node.add(att)));
    for (const runs of added)
      expect(
        runs.map((r) => r.exitCode),
        runs[1]?.stderr,
      ).toEqual([0, 0]);
    for (const pod of batch) {
      const nat = await natIn(pod.name);
      expect(nat.match(new RegExp(`-A OUTPUT .*-j ${TEST_PREFIX}OUTPUT`, 'g'))).toHaveLength(1);
    }
    await Promise.all(atts.map((att, i) => node.del(att, added[i]?.[1]?.json)));
  });

  it('native nftables: the same capture in one nft transaction', async () => {
    const pod = await newPod('nft');
    const plugin = {
      ...node.meshInitPlugin(),
      'mesh-init': {
        flags: { ...BLOCK.flags, 'iptables-backend': undefined, 'native-nftables': true },
      },
    };
    const att = attach(pod, 'default', 'nft');
    const bridge = await node.exec(node.conflist().plugins[0] ?? {}, 'ADD', att);
    expect(bridge.exitCode).toBe(0);
    const added = await node.exec(plugin, 'ADD', att, { prevResult: bridge.json });
    expect(added.exitCode, added.stderr).toBe(0);
    expect(added.json).toEqual(bridge.json);
    const { stdout } = await execa('ip', ['netns', 'exec', pod.name, 'nft', 'list', 'ruleset']);
    expect(stdout).toContain('table inet');
    expect(stdout).toContain(`redirect to :${OUT}`);
    const checked = await node.exec(plugin, 'CHECK', att, { prevResult: added.json });
    expect(checked.exitCode, checked.stdout).toBe(0);
    const deleted = await node.exec(plugin, 'DEL', att, { prevResult: added.json });
    expect(deleted.exitCode).toBe(0);
    await node.exec(node.conflist().plugins[0] ?? {}, 'DEL', att);
  });

  it('VERSION, STATUS and GC answer as the spec version has them', async () => {
    const plugin = node.meshInitPlugin();
    const version = await node.exec(plugin, 'VERSION', {}, { cniVersion: '1.1.0' });
    expect(version.exitCode).toBe(0);
    expect(version.json).toEqual({
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
    const status = await node.exec(plugin, 'STATUS', {}, { cniVersion: '1.1.0' });
    expect([status.exitCode, status.stdout], status.stderr).toEqual([0, '']);
    const gc = await node.exec(plugin, 'GC', {}, { cniVersion: '1.1.0' });
    expect([gc.exitCode, gc.stdout]).toEqual([0, '']);
    const old = await node.exec(plugin, 'STATUS', {}, { cniVersion: '1.0.0' });
    expect(old.exitCode).toBe(1);
    expect(old.json).toMatchObject({ cniVersion: '1.0.0', code: 1 });
  });

  it('a bad configuration fails ADD with the spec error JSON on stdout, the log on stderr', async () => {
    const pod = await newPod('bad');
    const plugin = { ...node.meshInitPlugin(), 'mesh-init': { flags: { 'proxy-port': 70000 } } };
    const run = await node.exec(plugin, 'ADD', attach(pod, 'default', 'bad'));
    expect(run.exitCode).toBe(1);
    expect(run.json).toEqual({
      cniVersion: '1.0.0',
      code: 7,
      msg: 'invalid mesh-init.flags.proxy-port of the CNI configuration: expected an integer 1-65535, got "70000"',
      details: '',
    });
    expect(run.stderr).toContain('mesh-init.flags.proxy-port');
    expect(await natIn(pod.name)).not.toContain(TEST_PREFIX);
    const garbage = await node.exec(plugin, 'ADD', attach(pod, 'default', 'bad'), { stdin: '{' });
    expect(garbage.json).toMatchObject({ code: 6 });
  });

  it('install --watch puts the plugin back when the primary plugin rewrites its file; uninstall takes it out', async () => {
    const watcher = execa(
      process.execPath,
      [
        new URL('../../dist/mesh-init-cni.cjs', import.meta.url).pathname,
        'install',
        '--watch',
        ...['--conf-dir', node.confDir, '--bin-dir', node.binDir, '--lib-dir', node.libDir],
      ],
      { reject: false },
    );
    try {
      const primary = `${node.confDir}/10-bridge.conflist`;
      const bare = {
        ...node.conflist(),
        plugins: node.conflist().plugins.filter((p) => p.type !== 'mesh-init-cni'),
      };
      // As the primary network's agent would: its own file, without us.
      await execa('sh', ['-c', `cat > ${primary}.tmp && mv ${primary}.tmp ${primary}`], {
        input: JSON.stringify(bare),
      });
      let types: unknown[] = [];
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        types = node.conflist().plugins.map((p) => p.type);
        if (types.includes('mesh-init-cni')) break;
      }
      expect(types).toEqual(['bridge', 'mesh-init-cni']);
    } finally {
      watcher.kill('SIGTERM');
      await watcher;
    }
    expect((await watcher).stderr).toContain('stopped watching');
    // Back to the suite's block for whatever runs after.
    expect((await node.install(BLOCK)).exitCode).toBe(0);
  });

  it("nothing of the plugin's reached the machine's own namespace", async () => {
    expect(await rootTablesMention(TEST_PREFIX)).toEqual([]);
    for (const tool of ROOT_TOOLS) {
      const before = new Set((rootBefore.get(tool) ?? '').split('\n'));
      const added = (await rootNat(tool)).split('\n').filter((line) => !before.has(line));
      expect(
        added.filter((line) => line.includes('mesh-init') || line.includes(TEST_PREFIX)),
      ).toEqual([]);
    }
  });

  it('uninstall takes the plugin out of the conflist and removes its files', async () => {
    const result = await node.manage([
      'uninstall',
      ...['--conf-dir', node.confDir, '--bin-dir', node.binDir, '--lib-dir', node.libDir],
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(node.conflist().plugins.map((p) => p.type)).toEqual(['bridge']);
    expect(readdirSync(node.binDir).sort()).toEqual(['bridge', 'host-local']);
    expect(readdirSync(node.libDir)).toEqual([]);
  });
});
