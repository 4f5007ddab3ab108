// The seed walkthrough from the seed's own apps.yaml, through `mesh-init inject`
// as the image runs it: the injected Deployments are realised the way a kubelet
// would (sandbox, init container with exactly the spec's args, user, capabilities
// and limits, then app and proxy), and the request from service-one to
// service-two:80 carries one x-request-id through both proxies, while localhost
// inside a pod is left alone.
import { randomUUID } from 'node:crypto';
import type { PodSpec } from 'kubernetes-types/core/v1.js';
import { GenericContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, objectsOf, podSpecOf } from '../commands/inject/inject-fixtures.js';
import { Kubelet, type RunningPod, type StandIn } from './kubelet.js';
import {
  APP_PORT,
  Cluster,
  findBaseImage,
  gate,
  HELPERS_DIR,
  IMAGE,
  probeEngine,
  type Sidecars,
  UntilExit,
} from './pod.js';

const engine = await probeEngine();
const base = engine.ok ? await findBaseImage() : undefined;
const missing = !engine.ok
  ? engine.reason
  : base === undefined
    ? 'no base image for the pod sandbox (mesh-init-base:trixie or debian:trixie-slim)'
    : undefined;
const ready = gate(
  'container suite (inject)',
  missing,
  'a Docker engine, the mesh-init image and a base image',
);

/** The image name the manifest gets for the proxy; the test proxy stands in for it. */
const PROXY_IMAGE = 'mesh-init-test/proxy:walkthrough';
const SEED_APP_IMAGE = 'gcr.io/google_containers/echoserver:1.4';

const STAND_INS = new Map<string, StandIn>([
  [
    SEED_APP_IMAGE,
    { image: IMAGE, entrypoint: ['node', `${HELPERS_DIR}/echo-server.mjs`], ready: /listening on/ },
  ],
  [
    PROXY_IMAGE,
    { image: IMAGE, entrypoint: ['node', `${HELPERS_DIR}/test-proxy.mjs`], ready: /listening on/ },
  ],
]);

const INJECT_ARGS = ['--upgrade-api', '--image', IMAGE, '--proxy-image', PROXY_IMAGE];

const marker = (what: string) => `mesh-init-test/${what}/${randomUUID().slice(0, 8)}`;
const requestIdOf = (body: string | undefined) => body?.match(/^x-request-id=(\S+)$/m)?.[1];

interface Service {
  readonly name: string;
  readonly selector: Record<string, string>;
}

describe.runIf(ready)("the seed's apps.yaml through mesh-init inject", () => {
  let cluster: Cluster;
  let injected = '';
  let injectStderr = '';
  const pods = new Map<string, RunningPod>();

  const sidecars = (name: string): Sidecars => {
    const running = pods.get(name)?.containers;
    const app = running?.get('app');
    const proxy = running?.get('proxy');
    if (app === undefined || proxy === undefined)
      throw new Error(`${name} has no app and proxy running`);
    return { app, proxy };
  };

  beforeAll(async () => {
    cluster = await Cluster.create();
    // `mesh-init inject` as the image runs it, on no network at all.
    const run = await cluster.runToCompletion(
      new GenericContainer(IMAGE)
        .withNetworkMode('none')
        .withCopyContentToContainer([{ content: fixture('apps.yaml'), target: '/tmp/apps.yaml' }])
        .withCommand(['inject', '-f', '/tmp/apps.yaml', ...INJECT_ARGS])
        .withWaitStrategy(new UntilExit()),
    );
    expect(run.exitCode, run.stderr).toBe(0);
    injected = run.stdout;
    injectStderr = run.stderr;

    // Each Deployment's one replica, named for it, answering to the Services that select it.
    const objects = objectsOf(injected);
    const services: Service[] = objects
      .filter((o) => o.kind === 'Service')
      .map((o) => ({
        name: (o.metadata as { name: string }).name,
        selector: (o.spec as { selector: Record<string, string> }).selector,
      }));
    const kubelet = await Kubelet.create(cluster, base ?? '', STAND_INS);
    const deployments = objects.filter((o) => o.kind === 'Deployment');
    await Promise.all(
      deployments.map(async (deployment) => {
        const name = (deployment.metadata as { name: string }).name;
        const labels = (
          deployment.spec as { template: { metadata: { labels: Record<string, string> } } }
        ).template.metadata.labels;
        const aliases = services
          .filter((s) => Object.entries(s.selector).every(([k, v]) => labels[k] === v))
          .map((s) => s.name);
        pods.set(name, await kubelet.runPod(name, aliases, podSpecOf(deployment) as PodSpec));
      }),
    );
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  it('inject, run in the image, upgrades both Deployments and adds mesh-init and the proxy', () => {
    expect(injectStderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^mesh-init: Deployment service-one \(\/tmp\/apps\.yaml, document 2\): .*--upgrade-api made it apps\/v1/,
      ),
      expect.stringMatching(
        /^mesh-init: Deployment service-two \(\/tmp\/apps\.yaml, document 4\): .*--upgrade-api made it apps\/v1/,
      ),
    ]);
    const deployments = objectsOf(injected).filter((o) => o.kind === 'Deployment');
    expect(
      deployments.map((d) => podSpecOf(d).initContainers.map((c: { args: string[] }) => c.args)),
    ).toEqual([[['-p', '15001', '-u', '1337']], [['-p', '15001', '-u', '1337']]]);
  });

  it('runs each init container as the spec says: root, only NET_ADMIN and NET_RAW, not privileged, its limits', () => {
    for (const name of ['service-one', 'service-two']) {
      const pod = pods.get(name);
      expect(pod?.inits.map((i) => [i.name, i.exitCode, i.stderr])).toEqual([
        ['mesh-init', 0, expect.stringContaining('mesh-init: config: mode=apply proxy-port=15001')],
      ]);
      expect(pod?.inits[0]?.realised).toEqual({
        user: '0:0',
        cmd: ['-p', '15001', '-u', '1337'],
        capAdd: ['NET_ADMIN', 'NET_RAW'],
        capDrop: ['ALL'],
        privileged: false,
        securityOpt: ['no-new-privileges'],
        memory: 128 * 1024 ** 2,
        nanoCpus: 1e9,
      });
      // The proxy as the spec's UID and GID, so the rules spare its own traffic.
      expect(pod?.realised.get('proxy')?.user).toBe('1337:1337');
    }
  });

  let requestId = '';
  const clientAgent = marker('inject-client');

  it('answers service-one → service-two:80 with an x-request-id', async () => {
    const answer = await cluster.httpGet(
      sidecars('service-one').app,
      'http://service-two:80/',
      clientAgent,
    );
    expect(answer.error).toBeUndefined();
    expect(answer.status).toBe(200);
    expect(answer.body).toMatch(/^host=service-two$/m);
    requestId = requestIdOf(answer.body) ?? '';
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs that id once in each proxy: outbound to the server pod, inbound to 127.0.0.1:8080', async () => {
    const two = pods.get('service-two')?.pod;
    const clientLog = await cluster.waitForAccessLog(sidecars('service-one'), requestId);
    const serverLog = await cluster.waitForAccessLog(sidecars('service-two'), requestId);
    expect(clientLog.filter((line) => line.includes(requestId))).toEqual([
      expect.stringContaining(
        `"${clientAgent}" "${requestId}" "service-two" "${two?.ip}:${APP_PORT}"`,
      ),
    ]);
    expect(serverLog.filter((line) => line.includes(requestId))).toEqual([
      expect.stringContaining(
        `"${clientAgent}" "${requestId}" "service-two" "127.0.0.1:${APP_PORT}"`,
      ),
    ]);
  });

  it("does not send service-two's own call to localhost:8080 through its proxy", async () => {
    const local = marker('inject-localhost');
    const answer = await cluster.httpGet(
      sidecars('service-two').app,
      'http://localhost:8080/',
      local,
    );
    expect(answer.status).toBe(200);
    expect(requestIdOf(answer.body)).toBeUndefined();
    expect(answer.body).toMatch(/^client_address=(::ffff:)?127\.0\.0\.1$/m);
    // Logs are ordered: once a later request's line is there, the earlier one would be too.
    const later = marker('inject-after-localhost');
    expect(
      (await cluster.httpGet(sidecars('service-one').app, 'http://service-two:80/', later)).status,
    ).toBe(200);
    const serverLog = await cluster.waitForAccessLog(sidecars('service-two'), later);
    expect(serverLog.some((line) => line.includes(later))).toBe(true);
    expect(serverLog.filter((line) => line.includes(local))).toEqual([]);
  });
});
