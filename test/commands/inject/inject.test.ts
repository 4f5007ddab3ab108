/**
 * `mesh-init inject`, the pure core: manifests in, manifests out. Goldens hold the
 * output for the seed's apps.yaml and for each kind of input; the assertions say
 * what each golden must show, so a wrong golden cannot pass unnoticed.
 */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { fixture, inject, objectsOf, podSpecOf } from './inject-fixtures.js';

const SEED = fixture('apps.yaml');

/** The lines of `before` appear in `after` in the same order, unchanged: only lines were added. */
function onlyAdded(before: string, after: string): boolean {
  const lines = after.split('\n');
  let at = 0;
  for (const line of before.split('\n')) {
    while (at < lines.length && lines[at] !== line) at++;
    if (at === lines.length) return false;
    at++;
  }
  return true;
}

/** The UsageError an inject throws, with its message. */
async function usageError(text: string, argv: readonly string[] = []): Promise<string> {
  const outcome = await inject(text, argv).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(UsageError);
  expect((outcome as UsageError).exitCode).toBe(2);
  return (outcome as UsageError).message;
}

describe("the seed's apps.yaml", () => {
  it('gets the init container in both Deployments, -p 15001 -u 1337, and nothing else changes', async () => {
    const result = await inject(SEED);
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/seed-apps.yaml');
    expect(result.injected).toBe(2);
    expect(onlyAdded(SEED, result.output)).toBe(true);

    const objects = objectsOf(result.output);
    expect(objects.map((o) => o.kind)).toEqual(['Service', 'Deployment', 'Service', 'Deployment']);
    expect(objects[0]).toEqual(objectsOf(SEED)[0]);
    for (const deployment of [objects[1], objects[3]]) {
      const spec = podSpecOf(deployment ?? {});
      expect(spec.initContainers).toEqual([
        {
          name: 'mesh-init',
          image: 'mesh-init:0.1.0',
          args: ['-p', '15001', '-u', '1337'],
          resources: {
            requests: { cpu: '10m', memory: '64Mi' },
            limits: { cpu: '1', memory: '128Mi' },
          },
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
            privileged: false,
            runAsGroup: 0,
            runAsNonRoot: false,
            runAsUser: 0,
          },
        },
      ]);
      expect(spec.containers.map((c: { name: string }) => c.name)).toEqual(['app']);
    }
  });

  it('warns that extensions/v1beta1 is gone and says what to change', async () => {
    const { notices } = await inject(SEED);
    expect(notices).toEqual(
      ['service-one', 'service-two'].map((name, i) => ({
        level: 'warning',
        message: `Deployment ${name} (apps.yaml, document ${2 * i + 2}): apiVersion extensions/v1beta1 was removed in Kubernetes 1.16, current clusters refuse it: change it to apps/v1 and add spec.selector.matchLabels (the template's labels: app: ${name}), or run mesh-init inject --upgrade-api`,
      })),
    );
  });

  it('with --upgrade-api and --proxy-image: apps/v1 with a selector, the proxy as UID 1337', async () => {
    const result = await inject(SEED, ['--upgrade-api', '--proxy-image', 'proxy:test']);
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/seed-apps-upgraded.yaml');
    const deployments = objectsOf(result.output).filter((o) => o.kind === 'Deployment');
    expect(
      deployments.map((d) => [d.apiVersion, (d.spec as { selector: unknown }).selector]),
    ).toEqual([
      ['apps/v1', { matchLabels: { app: 'service-one' } }],
      ['apps/v1', { matchLabels: { app: 'service-two' } }],
    ]);
    for (const deployment of deployments) {
      expect(podSpecOf(deployment).containers[1]).toEqual({
        name: 'proxy',
        image: 'proxy:test',
        securityContext: { runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337 },
      });
    }
    expect(result.notices.map((n) => n.level)).toEqual(['info', 'info']);
    expect(result.notices[0]?.message).toBe(
      "Deployment service-one (apps.yaml, document 2): apiVersion extensions/v1beta1 was removed in Kubernetes 1.16; --upgrade-api made it apps/v1, spec.selector.matchLabels from the template's labels (app: service-one)",
    );
  });

  it('with --cni: the validation container, no capabilities, as the proxy UID', async () => {
    const result = await inject(SEED, ['--cni', '-u', '1500']);
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/seed-apps-cni.yaml');
    const spec = podSpecOf(objectsOf(result.output)[1] ?? {});
    expect(spec.initContainers).toEqual([
      expect.objectContaining({
        name: 'mesh-init-validation',
        args: ['-p', '15001', '-u', '1500', '--run-validation', '--skip-rule-apply'],
        securityContext: {
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          privileged: false,
          runAsGroup: 1500,
          runAsNonRoot: true,
          runAsUser: 1500,
        },
      }),
    ]);
  });
});

describe('every kind with a pod template', () => {
  it('gets the init container first; other documents, List items and look-alike kinds pass through', async () => {
    const text = fixture('kinds.yaml');
    const result = await inject(text, [], 'kinds.yaml');
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/kinds.yaml');
    expect(result.notices).toEqual([]);
    expect(result.injected).toBe(9);
    expect(onlyAdded(text, result.output)).toBe(true);

    const objects = objectsOf(result.output);
    const injected = objects
      .filter((o) => podSpecOf(o)?.initContainers?.[0]?.name === 'mesh-init')
      .map((o) => `${o.kind} ${(o.metadata as { name: string }).name}`);
    expect(injected).toEqual([
      'Pod pod',
      'ReplicationController rc',
      'Deployment deployment',
      'StatefulSet statefulset',
      'DaemonSet daemonset',
      'ReplicaSet replicaset',
      'Job job',
      'CronJob cronjob',
      'Pod listed-pod',
    ]);
    // The user's own init container runs after mesh-init's, as the pod would need.
    const deployment = objects.find((o) => o.kind === 'Deployment');
    expect(podSpecOf(deployment ?? {}).initContainers.map((c: { name: string }) => c.name)).toEqual(
      ['mesh-init', 'migrate'],
    );
    const untouched = objectsOf(text).filter(
      (o) => o.kind === 'ConfigMap' || o.apiVersion === 'example.com/v1',
    );
    expect(
      objects.filter((o) => o.kind === 'ConfigMap' || o.apiVersion === 'example.com/v1'),
    ).toEqual(untouched);
  });

  it('upgrades every removed apiVersion with --upgrade-api, dropping fields apps/v1 lacks', async () => {
    const text = fixture('old-apis.yaml');
    const warned = await inject(text, [], 'old-apis.yaml');
    expect(warned.notices.map((n) => n.message)).toEqual([
      "Deployment beta1 (old-apis.yaml, document 1): apiVersion apps/v1beta1 was removed in Kubernetes 1.16, current clusters refuse it: change it to apps/v1 and add spec.selector.matchLabels (the template's labels: app: beta1), or run mesh-init inject --upgrade-api",
      'StatefulSet beta2 (old-apis.yaml, document 2): apiVersion apps/v1beta2 was removed in Kubernetes 1.16, current clusters refuse it: change it to apps/v1, or run mesh-init inject --upgrade-api',
      "DaemonSet daemon (old-apis.yaml, document 3): apiVersion extensions/v1beta1 was removed in Kubernetes 1.16, current clusters refuse it: change it to apps/v1 and add spec.selector.matchLabels (the template's labels: app: daemon, tier: node), or run mesh-init inject --upgrade-api",
      'CronJob nightly (old-apis.yaml, document 4): apiVersion batch/v1beta1 was removed in Kubernetes 1.25, current clusters refuse it: change it to batch/v1, or run mesh-init inject --upgrade-api',
    ]);
    expect(warned.injected).toBe(4);

    const upgraded = await inject(text, ['--upgrade-api'], 'old-apis.yaml');
    await expect(upgraded.output).toMatchFileSnapshot('../../golden/inject/old-apis-upgraded.yaml');
    const objects = objectsOf(upgraded.output);
    expect(objects.map((o) => o.apiVersion)).toEqual(['apps/v1', 'apps/v1', 'apps/v1', 'batch/v1']);
    expect(objects.map((o) => (o.spec as Record<string, unknown>).selector)).toEqual([
      { matchLabels: { app: 'beta1' } },
      { matchLabels: { app: 'beta2' } },
      { matchLabels: { app: 'daemon', tier: 'node' } },
      undefined,
    ]);
    expect(upgraded.notices.filter((n) => n.level === 'warning').map((n) => n.message)).toEqual([
      'Deployment beta1 (old-apis.yaml, document 1): spec.rollbackTo does not exist in apps/v1; --upgrade-api removed it',
      'DaemonSet daemon (old-apis.yaml, document 3): spec.templateGeneration does not exist in apps/v1; --upgrade-api removed it',
    ]);
  });

  it("warns about Istio's own init container in the same pod, and still injects", async () => {
    const text = fixture('kinds.yaml').replace('name: migrate', 'name: istio-init');
    const result = await inject(text, [], 'kinds.yaml');
    expect(result.injected).toBe(9);
    expect(result.notices).toEqual([
      {
        level: 'warning',
        message:
          "Deployment deployment (kinds.yaml, document 3): it also has Istio's istio-init init container, which programs the same iptables chains: keep one of the two",
      },
    ]);
  });

  it('refuses to upgrade a workload whose selector cannot come from labels', async () => {
    const text = fixture('old-apis.yaml').replace('      labels:\n        app: beta1\n', '');
    expect(await usageError(text, ['--upgrade-api'])).toBe(
      "Deployment beta1 (apps.yaml, document 1): apiVersion apps/v1beta1 was removed in Kubernetes 1.16, and --upgrade-api cannot make apps/v1's required spec.selector: the pod template has no labels to select",
    );
  });
});

describe('annotations', () => {
  it("take Istio's names and mesh-init's, skip opted-out, NONE and hostNetwork pods", async () => {
    const text = fixture('annotations.yaml');
    const result = await inject(text, [], 'annotations.yaml');
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/annotations.yaml');
    const byName = new Map(
      objectsOf(result.output).map((o) => [(o.metadata as { name: string }).name, podSpecOf(o)]),
    );
    const argsOf = (name: string) => byName.get(name)?.initContainers?.[0]?.args;
    expect(argsOf('istio-names')).toEqual([
      ...['-p', '15001', '-u', '1337', '-m', 'TPROXY', '-b', '8080,9090'],
      ...['-i', '10.96.0.0/12,10.244.0.0/16', '-x', '10.96.0.1/32', '-o', '3306', '-q', '443'],
      ...['-k', 'net1', '-c', 'eth9'],
    ]);
    expect(argsOf('mesh-init-names')).toEqual([
      ...['-p', '15010', '-z', '15006', '-u', '2000', '-d', '15090,15021', '--ipv6', 'false'],
      ...['--redirect-dns', '--drop-invalid'],
    ]);
    for (const name of [
      'opted-out',
      'opted-out-by-label',
      'opted-out-mesh-init',
      'no-capture',
      'host-network',
    ]) {
      expect(byName.get(name)?.initContainers, name).toBeUndefined();
    }
    expect(argsOf('misplaced')).toEqual(['-p', '15001', '-u', '1337']);
    expect(result.injected).toBe(3);
    expect(result.notices.map((n) => n.message)).toEqual([
      'Pod host-network (annotations.yaml, document 7): hostNetwork is true, so the pod has no network namespace of its own to capture; nothing injected',
      "Deployment misplaced (annotations.yaml, document 8): annotation traffic.sidecar.istio.io/excludeOutboundIPRanges is on the Deployment's own metadata, where inject does not read it; move it to spec.template.metadata.annotations",
    ]);
  });

  it('beat the command line, pod by pod', async () => {
    const text = fixture('annotations.yaml');
    const result = await inject(text, ['-p', '15020', '-x', '192.168.0.0/16'], 'annotations.yaml');
    const specs = objectsOf(result.output).map(podSpecOf);
    expect(specs[1]?.initContainers[0].args).toEqual([
      ...['-p', '15010', '-z', '15006', '-u', '2000', '-d', '15090,15021'],
      ...['-x', '192.168.0.0/16', '--ipv6', 'false', '--redirect-dns', '--drop-invalid'],
    ]);
    expect(specs[7]?.initContainers[0].args).toEqual([
      '-p',
      '15020',
      '-u',
      '1337',
      '-x',
      '192.168.0.0/16',
    ]);
  });

  it('NONE still gets the proxy with --proxy-image', async () => {
    const result = await inject(fixture('annotations.yaml'), ['--proxy-image', 'proxy:1']);
    const pod = objectsOf(result.output).find(
      (o) => (o.metadata as { name: string }).name === 'no-capture',
    );
    const spec = podSpecOf(pod ?? {});
    expect(spec.initContainers).toBeUndefined();
    expect(spec.containers.map((c: { name: string }) => c.name)).toEqual(['app', 'proxy']);
  });

  const deployment = (annotations: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: service-one
  namespace: shop
spec:
  selector:
    matchLabels:
      app: service-one
  template:
    metadata:
      labels:
        app: service-one
      annotations:
${annotations}
    spec:
      containers:
      - name: app
        image: app:1
`;
  const at = 'on Deployment shop/service-one (apps.yaml, document 1)';

  it.each<[string, string, string, string[]?]>([
    [
      'a bad CIDR',
      '        traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.0/8,10.0.0.0/33"',
      `invalid annotation traffic.sidecar.istio.io/excludeOutboundIPRanges ${at}: expected a prefix length 0-32 after the "/", got "10.0.0.0/33"`,
    ],
    [
      'a port out of range',
      '        mesh-init/proxy-port: "70000"',
      `invalid annotation mesh-init/proxy-port ${at}: expected an integer 1-65535, got "70000"`,
    ],
    [
      'an unknown interception mode',
      '        sidecar.istio.io/interceptionMode: REDIRECTED',
      `invalid annotation sidecar.istio.io/interceptionMode ${at}: expected one of REDIRECT, TPROXY, got "REDIRECTED"`,
    ],
    [
      'a value that is not a string',
      '        mesh-init/proxy-port: 15001',
      `invalid annotation mesh-init/proxy-port ${at}: expected a string (annotation values are strings: quote it), got 15001`,
    ],
    [
      'a boolean annotation that is not true or false',
      '        mesh-init/drop-invalid: "yes"',
      `invalid annotation mesh-init/drop-invalid ${at}: expected "true" or "false", got "yes"`,
    ],
    [
      'an unknown mesh-init annotation',
      '        mesh-init/proxyport: "15001"',
      `invalid annotation mesh-init/proxyport ${at}: no such mesh-init annotation (mesh-init/inject, or mesh-init/ and a flag of mesh-init inject --help, such as mesh-init/proxy-port)`,
    ],
    [
      'a flag that is not per pod',
      '        mesh-init/dry-run: "true"',
      `invalid annotation mesh-init/dry-run ${at}: no such mesh-init annotation (mesh-init/inject, or mesh-init/ and a flag of mesh-init inject --help, such as mesh-init/proxy-port)`,
    ],
    [
      "Istio's name and mesh-init's for one flag",
      '        traffic.sidecar.istio.io/excludeOutboundPorts: "22"\n        mesh-init/outbound-exclude-ports: "23"',
      `conflicting annotation traffic.sidecar.istio.io/excludeOutboundPorts ${at} and annotation mesh-init/outbound-exclude-ports ${at}: both set --outbound-exclude-ports, choose one`,
    ],
    [
      'an annotation that conflicts with a flag',
      '        traffic.sidecar.istio.io/includeOutboundIPRanges: "fd00::/8"',
      `conflicting annotation traffic.sidecar.istio.io/includeOutboundIPRanges ${at} and --ipv6: IPv6 CIDR "fd00::/8" given but IPv6 capture is off`,
      ['--ipv6', 'false'],
    ],
    [
      'an inject annotation that is neither yes nor no',
      '        sidecar.istio.io/inject: "maybe"',
      `invalid annotation sidecar.istio.io/inject ${at}: expected "true" or "false", got "maybe"`,
    ],
    [
      'an unquoted inject annotation',
      '        sidecar.istio.io/inject: false',
      `invalid annotation sidecar.istio.io/inject ${at}: expected a string ("true" or "false", quoted), got false`,
    ],
    [
      'a status that inject did not write',
      '        mesh-init/status: "{}}"',
      `invalid annotation mesh-init/status ${at}: expected what mesh-init inject writes there ({"initContainers":[…],"containers":[…]}), got "{}}"`,
    ],
  ])(
    'exit 2 on %s, naming the resource, the annotation and the value',
    async (_, lines, message, argv = []) => {
      expect(await usageError(deployment(lines), argv)).toBe(message);
    },
  );
});

describe('idempotence', () => {
  it.each<[string, string, string[]]>([
    ['the seed', 'apps.yaml', []],
    [
      'the seed, upgraded, with the proxy',
      'apps.yaml',
      ['--upgrade-api', '--proxy-image', 'proxy:1'],
    ],
    ['every kind', 'kinds.yaml', []],
    ['annotations', 'annotations.yaml', ['--proxy-image', 'proxy:1']],
    ['comments', 'comments.yaml', []],
    ['CNI mode', 'apps.yaml', ['--cni']],
    ['JSON', 'pod.json', []],
  ])('%s: injecting the output again changes nothing', async (_, name, argv) => {
    const once = await inject(fixture(name), argv);
    const twice = await inject(once.output, argv);
    expect(twice.output).toBe(once.output);
  });

  it('changed flags replace the init container (and the proxy) instead of adding more', async () => {
    const once = await inject(SEED, ['--proxy-image', 'proxy:1']);
    const again = await inject(once.output, [
      '-x',
      '10.0.0.0/8',
      '--container-name',
      'capture',
      '--proxy-image',
      'proxy:2',
    ]);
    const spec = podSpecOf(objectsOf(again.output)[1] ?? {});
    expect(
      spec.initContainers.map((c: { name: string; args: string[] }) => [c.name, c.args]),
    ).toEqual([['capture', ['-p', '15001', '-u', '1337', '-x', '10.0.0.0/8']]]);
    expect(spec.containers.map((c: { image: string }) => c.image)).toEqual([
      'gcr.io/google_containers/echoserver:1.4',
      'proxy:2',
    ]);
    expect(again.output).toBe(
      (
        await inject(SEED, [
          '-x',
          '10.0.0.0/8',
          '--container-name',
          'capture',
          '--proxy-image',
          'proxy:2',
        ])
      ).output,
    );
  });

  it('an opt-out after injection takes mesh-init out again, back to the input', async () => {
    const once = await inject(SEED, ['--proxy-image', 'proxy:1']);
    const optedOut = once.output.replaceAll(
      'mesh-init/status:',
      'mesh-init/inject: "false"\n        mesh-init/status:',
    );
    const out = await inject(optedOut, ['--proxy-image', 'proxy:1']);
    expect(out.output).toBe(
      SEED.replaceAll(
        '        app: service-one\n    spec',
        '        app: service-one\n      annotations:\n        mesh-init/inject: "false"\n    spec',
      ).replaceAll(
        '        app: service-two\n    spec',
        '        app: service-two\n      annotations:\n        mesh-init/inject: "false"\n    spec',
      ),
    );
  });

  it('leaves an opted-out pod exactly as it was, an empty annotations map included', async () => {
    const text =
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {sidecar.istio.io/inject: "false"}\n  annotations: {}\nspec:\n  containers: []\n';
    const result = await inject(text);
    expect(result.output).toBe(text);
    expect(result.injected).toBe(0);
  });

  it('refuses to take over a container of the same name that inject did not add', async () => {
    const text = fixture('kinds.yaml').replace('name: migrate', 'name: mesh-init');
    expect(await usageError(text)).toBe(
      'Deployment deployment (apps.yaml, document 3) already has a container named mesh-init in initContainers that mesh-init inject did not add (no mesh-init/status annotation names it): rename or remove it, or pass another --container-name',
    );
  });
});

describe('formatting', () => {
  it('keeps comments, key order, quoting, flow maps and indented sequences; untouched documents byte for byte', async () => {
    const text = fixture('comments.yaml');
    const result = await inject(text, [], 'comments.yaml');
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/comments.yaml');
    const [front, config] = text.split('\n---\n');
    // The ConfigMap document is not touched: byte for byte, odd spacing and folded text included.
    expect(result.output.endsWith(`\n---\n${config}`)).toBe(true);
    // In the changed one, every line that had no trailing comment is there as it was.
    const plain = (front ?? '').split('\n').filter((line) => !/\S\s{2,}#/.test(line));
    expect(onlyAdded(plain.join('\n'), result.output)).toBe(true);
    for (const comment of [
      '# current',
      '# two for now',
      '# why: the database is outside the mesh',
      '# init containers run in order',
      '# must stay second, after mesh-init',
      '# quoted on purpose',
    ]) {
      expect(result.output).toContain(comment);
    }
    const names = podSpecOf(objectsOf(result.output)[0] ?? {}).initContainers.map(
      (c: { name: string }) => c.name,
    );
    expect(names).toEqual(['mesh-init', 'wait-for-db']);
  });

  it('keeps comments between documents, end markers and empty documents', async () => {
    const pod = (name: string) =>
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n  - name: app\n    image: x\n`;
    const text = `# top\n---\n${pod('a')}...\n# between\n---\n---\n${pod('b')}# tail\n`;
    const result = await inject(text);
    expect(result.injected).toBe(2);
    expect(onlyAdded(text, result.output)).toBe(true);
    expect(objectsOf(result.output).map((o) => podSpecOf(o).initContainers[0].name)).toEqual([
      'mesh-init',
      'mesh-init',
    ]);
  });

  it('indents what it adds as the document does (4 spaces, sequences indented)', async () => {
    const text =
      'apiVersion: v1\nkind: Pod\nmetadata:\n    name: a\nspec:\n    containers:\n        - name: app\n          image: x\n';
    const result = await inject(text);
    expect(onlyAdded(text, result.output)).toBe(true);
    expect(result.output).toContain(
      '    initContainers:\n        - name: mesh-init\n          image: mesh-init:0.1.0\n',
    );
    expect(result.output).toContain('    annotations:\n        mesh-init/status:');
  });

  it("JSON in, JSON out, with the input's indentation", async () => {
    const result = await inject(fixture('pod.json'), [], 'pod.json');
    await expect(result.output).toMatchFileSnapshot('../../golden/inject/pod.json');
    const pod = JSON.parse(result.output);
    expect(pod.spec.initContainers[0].name).toBe('mesh-init');
    expect(result.output).toMatch(/^\{\n {4}"apiVersion": "v1",\n/);
  });

  it('leaves a manifest without pod templates as it was, and says so', async () => {
    const text = '# only a service\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n';
    const result = await inject(text);
    expect(result.output).toBe(text);
    expect(result.notices).toEqual([
      {
        level: 'warning',
        message:
          'apps.yaml: no Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job or CronJob in it; nothing injected',
      },
    ]);
  });

  it('refuses what is not YAML, naming the input and the line', async () => {
    expect(await usageError('apiVersion: v1\nkind: Pod\nmetadata: {name: x\n')).toMatch(
      /^invalid apps\.yaml: it is not YAML or JSON: .* at line \d+, column \d+/,
    );
  });
});

describe('notes of the capture options', () => {
  it('an annotation the pod would take without effect is a warning naming the resource', async () => {
    const result = await inject(
      [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  name: web',
        '  annotations:',
        '    traffic.sidecar.istio.io/includeInboundPorts: "8080"',
        '    traffic.sidecar.istio.io/excludeInboundPorts: "9090"',
        'spec:',
        '  containers:',
        '  - name: app',
        '    image: app',
        '',
      ].join('\n'),
    );
    expect(result.notices).toEqual([
      expect.objectContaining({
        level: 'warning',
        message: expect.stringMatching(
          /^annotation traffic\.sidecar\.istio\.io\/excludeInboundPorts .* has no effect with a port list in annotation traffic\.sidecar\.istio\.io\/includeInboundPorts/,
        ),
      }),
    ]);
  });
});
