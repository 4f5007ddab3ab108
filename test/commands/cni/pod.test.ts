import { describe, expect, it } from 'vitest';
import { decidePod, podConfig } from '../../../src/commands/cni/pod.js';
import { CniError } from '../../../src/commands/cni/protocol.js';
import { parseSettings } from '../../../src/commands/cni/settings.js';
import { UsageError } from '../../../src/errors.js';
import type { PodView } from '../../../src/system/kube.js';

const settings = (block: Record<string, unknown> = {}) => parseSettings({ 'mesh-init': block });
const pod = (
  containers: string[],
  extra: {
    init?: string[];
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    hostNetwork?: boolean;
  } = {},
): PodView => ({
  metadata: { annotations: extra.annotations ?? {}, labels: extra.labels ?? {} },
  spec: {
    containers: containers.map((name) => ({ name })),
    initContainers: (extra.init ?? []).map((name) => ({ name })),
    ...(extra.hostNetwork === undefined ? {} : { hostNetwork: extra.hostNetwork }),
  },
});
const RESOURCE = 'pod shop/web';

describe('decidePod', () => {
  it.each([
    ['no proxy', pod(['app']), 'it has no container named proxy (mesh-init.proxyContainer)'],
    [
      'the init container',
      pod(['proxy'], { init: ['mesh-init'] }),
      'its init container mesh-init applies the rules (mesh-init.initContainer)',
    ],
    [
      'hostNetwork',
      pod(['proxy'], { hostNetwork: true }),
      "it uses the node's network (hostNetwork)",
    ],
    [
      'inject annotation',
      pod(['proxy'], { annotations: { 'sidecar.istio.io/inject': 'false' } }),
      'it opted out',
    ],
    [
      'inject label',
      pod(['proxy'], { labels: { 'sidecar.istio.io/inject': 'no' } }),
      'it opted out',
    ],
    [
      'interception NONE',
      pod(['proxy'], { annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }),
      'its interception mode is NONE',
    ],
  ])('%s: not captured', (_, view, reason) => {
    expect(decidePod(view, settings(), RESOURCE)).toEqual({ capture: false, reason });
  });

  it('a pod with the proxy (or a native sidecar) is captured with the block flags and its annotations on top', () => {
    const decided = decidePod(
      pod(['app'], { init: ['proxy'], annotations: { 'mesh-init/proxy-port': '15999' } }),
      settings({ flags: { 'proxy-port': 15001, 'proxy-uid': 1500 } }),
      RESOURCE,
    );
    if (!decided.capture) throw new Error('not captured');
    expect(decided.options.get('proxy-port')).toEqual({
      value: '15999',
      origin: 'annotation mesh-init/proxy-port on pod shop/web',
      fromEnv: false,
    });
    expect(decided.options.get('proxy-uid')?.value).toBe('1500');
  });

  it('container names come from the block', () => {
    const view = pod(['envoy'], { init: ['mesh-init'] });
    const decided = decidePod(
      view,
      settings({ proxyContainer: 'envoy', initContainer: 'istio-init' }),
      RESOURCE,
    );
    expect(decided.capture).toBe(true);
  });

  it.each([
    [
      { 'mesh-init/bogus': 'x' },
      'invalid annotation mesh-init/bogus on pod shop/web: no such mesh-init annotation',
    ],
    [
      { 'sidecar.istio.io/inject': 'maybe' },
      'invalid annotation sidecar.istio.io/inject on pod shop/web: expected "true" or "false", got "maybe"',
    ],
  ])('a bad annotation %j is a UsageError naming it', (annotations, message) => {
    const decide = () => decidePod(pod(['proxy'], { annotations }), settings(), RESOURCE);
    expect(decide).toThrow(UsageError);
    expect(decide).toThrow(message);
  });
});

describe('podConfig', () => {
  const optionsOf = (annotations: Record<string, string>, block: Record<string, unknown> = {}) => {
    const decided = decidePod(pod(['proxy'], { annotations }), settings(block), RESOURCE);
    if (!decided.capture) throw new Error('not captured');
    return decided.options;
  };

  it('runs in CNI_NETNS, in the mode of the command', () => {
    expect(podConfig(optionsOf({}), '/var/run/netns/p', 'apply').config).toMatchObject({
      networkNamespace: '/var/run/netns/p',
      mode: 'apply',
    });
    expect(podConfig(optionsOf({}), '/p', 'check').config.mode).toBe('check');
    expect(podConfig(optionsOf({}), '/p', 'cleanup').config.mode).toBe('cleanup');
  });

  it("leaves the validation container's flags to it, and says so", () => {
    const { config, notes } = podConfig(
      optionsOf({ 'mesh-init/run-validation': 'true', 'mesh-init/probe-port': '15333' }),
      '/p',
      'apply',
    );
    expect(config.validate).toBe(false);
    expect(notes).toEqual([
      'annotation mesh-init/run-validation on pod shop/web is left to the validation init container',
      'annotation mesh-init/probe-port on pod shop/web is left to the validation init container',
    ]);
  });

  it('refuses a namespace of the annotations own choosing', () => {
    expect(() =>
      podConfig(optionsOf({ 'mesh-init/network-namespace': '/proc/1/ns/net' }), '/p', 'apply'),
    ).toThrow(
      "invalid annotation mesh-init/network-namespace on pod shop/web: the CNI plugin applies in the pod's own network namespace (CNI_NETNS)",
    );
  });

  it("DNS capture is left to the run, which takes all of port 53 in another's namespace", () => {
    const { config } = podConfig(optionsOf({ 'mesh-init/redirect-dns': 'true' }), '/p', 'apply');
    expect(config.dns).toMatchObject({ capture: 'resolvers' });
    expect(config.networkNamespace).toBe('/p');
  });

  it("group names are refused: the plugin cannot read the pod's /etc/group", () => {
    expect(() =>
      podConfig(optionsOf({ 'mesh-init/outbound-owner-groups': 'java' }), '/p', 'apply'),
    ).toThrow(/group names need the pod's \/etc\/group/);
    expect(
      podConfig(optionsOf({ 'mesh-init/outbound-owner-groups': '1001' }), '/p', 'apply').config
        .ownerGroups,
    ).toEqual({ kind: 'only', groups: [1001] });
  });
});

describe('parseSettings', () => {
  it('defaults', () => {
    expect(parseSettings({})).toMatchObject({
      kubeconfig: undefined,
      excludeNamespaces: [],
      proxyContainer: 'proxy',
      initContainer: 'mesh-init',
      podLookup: { attempts: 10, intervalMs: 1000, timeoutMs: 5000 },
      logFormat: 'text',
    });
  });

  it('flags take JSON numbers, lists and booleans, and native nftables', () => {
    const parsed = settings({
      flags: {
        'proxy-port': 15002,
        'outbound-exclude-ports': [5432, '6379'],
        'native-nftables': true,
      },
    });
    expect(parsed.options.get('proxy-port')?.value).toBe('15002');
    expect(parsed.options.get('outbound-exclude-ports')?.value).toBe('5432,6379');
    expect(parsed.options.get('native-nftables')?.value).toBe(true);
  });

  it.each([
    [
      { 'mesh-init': [] },
      'invalid mesh-init in the CNI network configuration: expected an object, got []',
    ],
    [
      { 'mesh-init': { kubeconfg: '/x' } },
      'invalid mesh-init.kubeconfg in the CNI network configuration: no such key',
    ],
    [
      { 'mesh-init': { kubeconfig: 'kc' } },
      'invalid mesh-init.kubeconfig in the CNI network configuration: expected an absolute path to a kubeconfig file, got "kc"',
    ],
    [{ 'mesh-init': { excludeNamespaces: 'kube-system' } }, 'invalid mesh-init.excludeNamespaces'],
    [{ 'mesh-init': { excludeNamespaces: ['Kube'] } }, 'invalid mesh-init.excludeNamespaces[0]'],
    [
      { 'mesh-init': { proxyContainer: 'x', initContainer: 'x' } },
      'conflicting mesh-init.proxyContainer and mesh-init.initContainer',
    ],
    [
      { 'mesh-init': { podLookup: { attempts: 0 } } },
      'invalid mesh-init.podLookup.attempts in the CNI network configuration: expected an integer 1-100, got 0',
    ],
    [{ 'mesh-init': { podLookup: { retries: 3 } } }, 'invalid mesh-init.podLookup.retries'],
    [
      { 'mesh-init': { podLookup: { intervalSeconds: -1 } } },
      'invalid mesh-init.podLookup.intervalSeconds',
    ],
    [{ 'mesh-init': { logFormat: 'xml' } }, 'invalid mesh-init.logFormat'],
    [
      { 'mesh-init': { flags: { 'proxy-port': 70000 } } },
      'invalid mesh-init.flags.proxy-port of the CNI configuration: expected an integer 1-65535, got "70000"',
    ],
    [
      { 'mesh-init': { flags: { 'proxy-port': { a: 1 } } } },
      'invalid mesh-init.flags.proxy-port in the CNI network configuration: expected a string, a number or a list of them',
    ],
    [
      { 'mesh-init': { flags: { 'dry-run': true } } },
      'invalid mesh-init.flags.dry-run in the CNI network configuration: no such flag',
    ],
    [
      { 'mesh-init': { flags: { 'run-validation': true } } },
      'it belongs to the validation init container',
    ],
    [
      { 'mesh-init': { flags: { 'network-namespace': '/x' } } },
      'the plugin applies in the namespace the runtime names',
    ],
    [
      { 'mesh-init': { flags: { 'native-nftables': 'yes' } } },
      'invalid mesh-init.flags.native-nftables in the CNI network configuration: expected true or false, got "yes"',
    ],
  ])('%j is invalid network config (code 7)', (raw, message) => {
    try {
      parseSettings(raw);
      throw new Error('accepted');
    } catch (error) {
      expect(error).toBeInstanceOf(CniError);
      expect((error as CniError).code).toBe(7);
      expect((error as CniError).message).toContain(message);
    }
  });
});
