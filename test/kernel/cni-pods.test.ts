/**
 * ADD's decision from the pod, read through a Kubernetes API served on loopback by the
 * test: with and without the proxy, the init container still there, opt-outs,
 * annotations (valid, bad, the init container's own), the API down and back up, and
 * down for good. The plugin runs in the machine's namespace, as a runtime starts it,
 * so that it reaches the test's API on 127.0.0.1; it only ever touches CNI_NETNS.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Attachment,
  CniNode,
  cniSuite,
  deleteNamespace,
  natIn,
  podNamespace,
  rootTablesMention,
  TEST_PREFIX,
} from './cni.js';
import { KubeApi, type TestPod } from './kube-api.js';

const BLOCK_FLAGS = { 'proxy-port': 15001, 'chain-prefix': TEST_PREFIX, 'iptables-backend': 'nft' };

cniSuite('the CNI plugin reads the pod from the Kubernetes API', () => {
  let node: CniNode;
  const api = new KubeApi();
  const namespaces: string[] = [];
  let kubeconfig = '';

  beforeAll(async () => {
    node = await CniNode.create('10.214.0.0/24');
    await api.start();
    await api.forwardIn(node.name);
    kubeconfig = `${node.confDir}/../kubeconfig`;
    api.writeKubeconfig(kubeconfig);
    const installed = await node.install({ kubeconfig, flags: BLOCK_FLAGS });
    expect(installed.exitCode, installed.stderr).toBe(0);
  });
  afterAll(async () => {
    await api.dispose();
    for (const name of namespaces) await deleteNamespace(name);
    await node?.destroy();
  });

  const plugin = (extra: Record<string, unknown> = {}) => ({
    type: 'mesh-init-cni',
    'mesh-init': {
      kubeconfig,
      podLookup: { attempts: 3, intervalSeconds: 0.1, timeoutSeconds: 2 },
      flags: BLOCK_FLAGS,
      ...extra,
    },
  });

  /** ADD of one pod (no interface plugin before it: the decision is what is tested). */
  const add = async (
    name: string,
    pod: TestPod | undefined,
    extra: Record<string, unknown> = {},
  ) => {
    if (pod !== undefined) api.pods.set(`shop/${name}`, pod);
    const netns = await podNamespace(name);
    namespaces.push(netns.name);
    const attachment: Attachment = {
      containerId: `c-${name}`,
      netns: netns.path,
      ifname: 'eth0',
      args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${name}`,
    };
    const run = await node.exec(plugin(extra), 'ADD', attachment);
    return { run, nat: await natIn(netns.name) };
  };

  it('a pod with the proxy is captured, with the block flags', async () => {
    const { run, nat } = await add('web', { containers: ['app', 'proxy'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.json).toEqual({ cniVersion: '1.0.0' });
    expect(nat).toContain(`${TEST_PREFIX}OUTPUT`);
    expect(nat).toContain('--to-ports 15001');
    expect(api.requests).toContain('/api/v1/namespaces/shop/pods/web');
  });

  it('a native sidecar proxy (an init container) counts as the proxy', async () => {
    const { run, nat } = await add('native', { containers: ['app'], initContainers: ['proxy'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(nat).toContain(`${TEST_PREFIX}OUTPUT`);
  });

  it.each([
    ['no proxy container', { containers: ['app'] }, 'it has no container named proxy'],
    [
      'the mesh-init init container',
      { containers: ['app', 'proxy'], initContainers: ['mesh-init'] },
      'its init container mesh-init applies the rules',
    ],
    [
      'opted out by annotation',
      { containers: ['proxy'], annotations: { 'mesh-init/inject': 'false' } },
      'it opted out',
    ],
    [
      'opted out by label',
      { containers: ['proxy'], labels: { 'sidecar.istio.io/inject': 'false' } },
      'it opted out',
    ],
    [
      'interception mode NONE',
      { containers: ['proxy'], annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } },
      'its interception mode is NONE',
    ],
  ])('%s: not captured, ADD succeeds', async (label, pod, reason) => {
    const { run, nat } = await add(label.replaceAll(' ', '-'), pod);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toContain(`not captured: ${reason}`);
    expect(nat).not.toContain(TEST_PREFIX);
  });

  it('annotations set the pod flags, as inject reads them', async () => {
    const { run, nat } = await add('tuned', {
      containers: ['proxy'],
      annotations: {
        'mesh-init/proxy-port': '15999',
        'traffic.sidecar.istio.io/excludeOutboundPorts': '5432',
        // The validation init container's: left to it, not an error.
        'mesh-init/probe-port': '15333',
      },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(nat).toContain('--to-ports 15999');
    expect(nat).toContain('--dport 5432');
    expect(run.stderr).toContain(
      'annotation mesh-init/probe-port on pod shop/tuned is left to the validation init container',
    );
  });

  it('configurable container names', async () => {
    const { run, nat } = await add(
      'envoy',
      { containers: ['envoy'], initContainers: ['mesh-init'] },
      {
        proxyContainer: 'envoy',
        initContainer: 'istio-init',
      },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(nat).toContain(`${TEST_PREFIX}OUTPUT`);
  });

  it.each([
    [
      'mesh-init/proxy-port',
      '70000',
      'invalid annotation mesh-init/proxy-port on pod shop/bad-port: expected an integer 1-65535, got "70000"',
    ],
    [
      'mesh-init/bogus',
      'x',
      'invalid annotation mesh-init/bogus on pod shop/bad-key: no such mesh-init annotation',
    ],
    [
      'mesh-init/network-namespace',
      '/proc/1/ns/net',
      "the CNI plugin applies in the pod's own network namespace",
    ],
  ])(
    'a bad annotation %s fails ADD naming it, and nothing is applied',
    async (key, value, message) => {
      const name =
        key === 'mesh-init/bogus' ? 'bad-key' : key.endsWith('port') ? 'bad-port' : 'bad-ns';
      const { run, nat } = await add(name, {
        containers: ['proxy'],
        annotations: { [key]: value },
      });
      expect(run.exitCode).toBe(1);
      expect(run.json).toMatchObject({ cniVersion: '1.0.0', code: 100 });
      expect(String(run.json?.msg)).toContain(message);
      expect(nat).not.toContain(TEST_PREFIX);
    },
  );

  it('a pod the API does not know fails ADD at once (404 is not retried)', async () => {
    const before = api.requests.length;
    const { run } = await add('ghost', undefined);
    expect(run.exitCode).toBe(1);
    expect(run.json).toMatchObject({ code: 103 });
    expect(String(run.json?.msg)).toContain(
      'cannot read pod shop/ghost from the Kubernetes API: the API answered 404: pods "ghost" not found',
    );
    expect(api.requests.length - before).toBe(1);
  });

  it('the API down, then up: ADD retries and captures', async () => {
    // Two reads without an answer, then the API is back.
    api.dropNext(2);
    const { run, nat } = await add('late', { containers: ['proxy'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /reading pod shop\/late: attempt 1 of 3 failed: no answer from the API server/,
    );
    expect(run.stderr).toMatch(/attempt 2 of 3 failed/);
    expect(nat).toContain(`${TEST_PREFIX}OUTPUT`);
  });

  it('the API down for good: ADD fails after its attempts, nothing applied', async () => {
    await api.stop();
    try {
      const { run, nat } = await add('stranded', { containers: ['proxy'] });
      expect(run.exitCode).toBe(1);
      expect(run.json).toMatchObject({ cniVersion: '1.0.0', code: 11 });
      expect(String(run.json?.msg)).toContain(
        'cannot read pod shop/stranded from the Kubernetes API after 3 attempts',
      );
      expect(run.stderr.match(/attempt \d of 3 failed/g)).toHaveLength(3);
      expect(nat).not.toContain(TEST_PREFIX);
    } finally {
      await api.start();
    }
  });

  it("the kubeconfig's token is sent: a wrong one is refused without retries", async () => {
    const { writeFileSync, readFileSync } = await import('node:fs');
    const good = readFileSync(kubeconfig, 'utf8');
    writeFileSync(kubeconfig, good.replace('mesh-init-test-token', 'wrong'));
    try {
      const { run } = await add('unauthorized', { containers: ['proxy'] });
      expect(run.json).toMatchObject({ code: 103 });
      expect(String(run.json?.msg)).toContain('the API answered 401');
    } finally {
      writeFileSync(kubeconfig, good);
    }
  });

  it("nothing of the plugin's reached the machine's own namespace", async () => {
    expect(await rootTablesMention(TEST_PREFIX)).toEqual([]);
  });
});
