/** The plugin through runCni against the fake system: nsenter is stripped, the fake kernel answers. */
import { describe, expect, it } from 'vitest';
import { type CniDeps, runCni } from '../../../src/commands/cni/plugin.js';
import type { PodRead } from '../../../src/system/kube.js';
import { fakeSystem, LIVE_NFT } from '../../fake-system.js';

const ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc',
  CNI_NETNS: '/var/run/netns/pod',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web',
};
const PREV = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };

function harness(options: { pod?: PodRead; namespaceGone?: boolean; missing?: string[] } = {}) {
  const system = fakeSystem(LIVE_NFT, {
    answers: {
      // nsenter --net=PATH -- FILE ARGS… : the fake kernel is the pod's.
      nsenter: (call, kernel) =>
        call.args[2] === '/usr/sbin/ip' && call.args[3] === '-o'
          ? { exitCode: 0, stdout: '2: eth0    inet 10.0.0.2/24 scope global eth0\n', stderr: '' }
          : kernel.run({
              file: (call.args[2] ?? '').replace('/usr/sbin/', ''),
              args: call.args.slice(3),
              input: call.input,
            }),
    },
  });
  let stdout = '';
  let stderr = '';
  const reads: string[] = [];
  const deps: CniDeps = {
    run: system.deps.run,
    locate: (name) =>
      options.missing?.includes(name) ? name : name === 'nsenter' ? 'nsenter' : `/usr/sbin/${name}`,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    sleep: async () => {},
    now: () => new Date(0),
    random: () => 0.5,
    podReader: () => async (namespace, name) => {
      reads.push(`${namespace}/${name}`);
      return options.pod ?? { ok: true, pod: { spec: { containers: [{ name: 'proxy' }] } } };
    },
    isNamespace: () => !options.namespaceGone,
    fileExists: () => true,
  };
  const cni = (env: Record<string, string>, config: Record<string, unknown>) =>
    runCni(
      env,
      JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'mesh-init-cni', ...config }),
      deps,
    );
  return { system, deps, cni, reads, stdout: () => stdout, stderr: () => stderr };
}

const KUBE = { 'mesh-init': { kubeconfig: '/etc/kc' } };

describe('runCni', () => {
  it('ADD applies through nsenter in CNI_NETNS and prints only the previous result', async () => {
    const h = harness();
    expect(await h.cni(ENV, { ...KUBE, prevResult: PREV })).toBe(0);
    expect(JSON.parse(h.stdout())).toEqual(PREV);
    expect(h.reads).toEqual(['shop/web']);
    const restores = h.system.calls.filter(
      (c) => c.file === 'nsenter' && c.args[2]?.endsWith('-restore'),
    );
    expect(restores.length).toBeGreaterThan(0);
    expect(restores[0]?.args.slice(0, 3)).toEqual([
      '--net=/var/run/netns/pod',
      '--',
      '/usr/sbin/iptables-nft-restore',
    ]);
    expect(h.stderr()).toContain('cni ADD pod shop/web: applied ipv4');
  });

  it('a pod without the proxy: ADD changes nothing and passes the result on', async () => {
    const h = harness({ pod: { ok: true, pod: { spec: { containers: [{ name: 'app' }] } } } });
    expect(await h.cni(ENV, { ...KUBE, prevResult: PREV })).toBe(0);
    expect(JSON.parse(h.stdout())).toEqual(PREV);
    expect(h.system.calls).toEqual([]);
  });

  it('a bad annotation fails ADD with code 100 and runs nothing', async () => {
    const pod: PodRead = {
      ok: true,
      pod: {
        metadata: { annotations: { 'mesh-init/proxy-port': 'x' } },
        spec: { containers: [{ name: 'proxy' }] },
      },
    };
    const h = harness({ pod });
    expect(await h.cni(ENV, KUBE)).toBe(1);
    expect(JSON.parse(h.stdout())).toMatchObject({
      cniVersion: '1.0.0',
      code: 100,
      msg: 'invalid annotation mesh-init/proxy-port on pod shop/web: expected an integer 1-65535, got "x"',
    });
    expect(h.system.calls).toEqual([]);
  });

  it('CHECK: no output when the rules are in place, code 102 with the drift when not', async () => {
    const h = harness();
    expect(await h.cni({ ...ENV, CNI_COMMAND: 'CHECK' }, { ...KUBE, prevResult: PREV })).toBe(1);
    const error = JSON.parse(h.stdout());
    expect(error).toMatchObject({
      code: 102,
      msg: 'pod shop/web: the live rules differ from the planned ones',
    });
    expect(error.details).toContain('ipv4 nat:');
    const added = harness();
    await added.cni(ENV, KUBE);
    // The same fake kernel, checked after ADD.
    const deps = { ...added.deps, stdout: () => {} };
    expect(
      await runCni(
        { ...ENV, CNI_COMMAND: 'CHECK' },
        JSON.stringify({ cniVersion: '1.0.0', ...KUBE }),
        deps,
      ),
    ).toBe(0);
  });

  it('DEL: a namespace that is gone is success with nothing run; a failing cleanup is logged, not returned', async () => {
    const gone = harness({ namespaceGone: true });
    expect(await gone.cni({ ...ENV, CNI_COMMAND: 'DEL' }, KUBE)).toBe(0);
    expect([gone.stdout(), gone.system.calls]).toEqual(['', []]);
    const broken = harness({ missing: [] });
    const failing = {
      ...broken.deps,
      run: async () => ({ exitCode: 1, stdout: '', stderr: 'boom' }),
    };
    expect(
      await runCni(
        { ...ENV, CNI_COMMAND: 'DEL' },
        JSON.stringify({ cniVersion: '1.0.0' }),
        failing,
      ),
    ).toBe(0);
    expect(broken.stderr()).toContain('removing the rules failed; they go with the namespace');
  });

  it('STATUS names what ADD would miss (code 50)', async () => {
    const h = harness({ missing: ['nsenter', 'iptables-nft-restore', 'iptables-legacy-restore'] });
    expect(await h.cni({ CNI_COMMAND: 'STATUS' }, { cniVersion: '1.1.0' })).toBe(1);
    expect(JSON.parse(h.stdout())).toMatchObject({
      cniVersion: '1.1.0',
      code: 50,
      msg: 'mesh-init-cni cannot serve ADD: nsenter not found; iptables-nft-restore or iptables-legacy-restore not found',
    });
  });
});
