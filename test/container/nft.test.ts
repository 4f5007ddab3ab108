// The walkthrough of pod.test.ts once more with --native-nftables (as Istio's
// injector passes it when the mesh has values.global.nativeNftables=true): the init
// container from the image, with only NET_ADMIN and NET_RAW, writes mesh-init's
// inet tables with the image's nft; service-one's app calls service-two:80 through
// both proxies; localhost and the proxy's own traffic are left alone; re-runs,
// --check and --cleanup work with the image's nft (1.1.x, where the kernel suite
// has the machine's 1.0.x); and a dual-stack pod is captured over IPv6 as well.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, gate, INIT_ARGS, type Pod, probeEngine, type Sidecars } from './pod.js';

const engine = await probeEngine();
const ready = gate(
  'container suite (native nftables)',
  engine.ok ? undefined : engine.reason,
  'a Docker engine and the mesh-init image',
);

const NATIVE_ARGS = [...INIT_ARGS, '--native-nftables'];
const marker = (what: string) => `mesh-init-test/${what}/${randomUUID().slice(0, 8)}`;
const requestIdOf = (body: string | undefined) => body?.match(/^x-request-id=(\S+)$/m)?.[1];

/** `nft list ruleset` in the pod, read by a one-shot container of the image, counters zeroed. */
async function ruleset(cluster: Cluster, pod: Pod): Promise<string> {
  const result = await cluster.runInPod(pod, {
    role: `nft-${randomUUID().slice(0, 4)}`,
    entrypoint: ['nft', 'list', 'ruleset'],
    capabilities: ['NET_ADMIN', 'NET_RAW'],
  });
  if (result.exitCode !== 0) throw new Error(`nft list ruleset failed: ${result.stderr}`);
  return result.stdout.replace(/counter packets \d+ bytes \d+/g, 'counter packets 0 bytes 0');
}

describe.runIf(ready)('a pod whose init container runs --native-nftables', () => {
  let cluster: Cluster;
  let one: Pod;
  let two: Pod;
  let oneSide: Sidecars;
  let twoSide: Sidecars;

  async function startMeshedPod(name: string) {
    const pod = await cluster.startPod(name);
    const init = await cluster.runInit(pod, NATIVE_ARGS);
    expect(init.exitCode, `init container of ${name}: ${init.stderr}`).toBe(0);
    expect(init.stderr).toContain('with the native nftables backend');
    return { pod, sidecars: await cluster.startSidecars(pod) };
  }

  beforeAll(async () => {
    cluster = await Cluster.create();
    const [server, client] = await Promise.all([
      startMeshedPod('service-two'),
      startMeshedPod('service-one'),
    ]);
    ({ pod: two, sidecars: twoSide } = server);
    ({ pod: one, sidecars: oneSide } = client);
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  it("writes mesh-init's inet table and leaves Docker's iptables DNS rules alone", async () => {
    const rules = await ruleset(cluster, one);
    expect(rules).toMatch(/^table inet istio-proxy-nat \{$/m);
    expect(rules).toMatch(/meta l4proto tcp counter packets 0 bytes 0 jump istio-output/);
    const tables = await cluster.natTables(one);
    expect(tables.nft).toMatch(/^-A DOCKER_OUTPUT .*--to-destination 127\.0\.0\.11:\d+$/m);
    expect(tables.nft).not.toContain('ISTIO_');
    expect(tables.legacy).not.toContain('ISTIO_');
  });

  let requestId = '';
  const clientAgent = marker('client');

  it('answers a request from service-one to service-two:80, through both proxies once', async () => {
    const answer = await cluster.httpGet(oneSide.app, 'http://service-two:80/', clientAgent);
    expect(answer.error).toBeUndefined();
    expect(answer.status).toBe(200);
    requestId = requestIdOf(answer.body) ?? '';
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const clientLog = await cluster.waitForAccessLog(oneSide, requestId);
    const serverLog = await cluster.waitForAccessLog(twoSide, requestId);
    expect(clientLog.filter((line) => line.includes(requestId))).toEqual([
      expect.stringContaining(`"service-two" "${two.ip}:8080"`),
    ]);
    expect(serverLog.filter((line) => line.includes(requestId))).toEqual([
      expect.stringContaining('"service-two" "127.0.0.1:8080"'),
    ]);
  });

  it('leaves localhost inside the pod and the proxy UID alone', async () => {
    const local = marker('localhost');
    const answer = await cluster.httpGet(twoSide.app, 'http://localhost:8080/', local);
    expect(answer.status).toBe(200);
    expect(requestIdOf(answer.body)).toBeUndefined();

    const own = marker('proxy-uid');
    const direct = await cluster.httpGet(oneSide.app, 'http://service-two:8080/', own, {
      user: '1337:1337',
    });
    expect(direct.status).toBe(200);
    const later = marker('after');
    expect((await cluster.httpGet(oneSide.app, 'http://service-two:80/', later)).status).toBe(200);
    const clientLog = await cluster.waitForAccessLog(oneSide, later);
    expect(clientLog.filter((line) => line.includes(own))).toEqual([]);
    const serverLog = await cluster.waitForAccessLog(twoSide, later);
    expect(serverLog.filter((line) => line.includes(local))).toEqual([]);
  });

  it('converges when the init container runs again; --check agrees', async () => {
    const before = await ruleset(cluster, one);
    const again = await cluster.runInit(one, NATIVE_ARGS);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(await ruleset(cluster, one)).toBe(before);
    const check = await cluster.runInit(one, [...NATIVE_ARGS, '--check']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    expect(check.stderr).toContain('check: the live rules are the planned ones');

    const agent = marker('after-rerun');
    const answer = await cluster.httpGet(oneSide.app, 'http://service-two:80/', agent);
    expect(answer.status).toBe(200);
    const id = requestIdOf(answer.body) ?? 'missing';
    expect(
      (await cluster.waitForAccessLog(oneSide, id)).filter((l) => l.includes(id)),
    ).toHaveLength(1);
  });

  it('exits 2 on --native-nftables with an iptables backend, and changes nothing', async () => {
    const before = await ruleset(cluster, two);
    const bad = await cluster.runInit(two, [...NATIVE_ARGS, '--iptables-backend', 'legacy']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('conflicting --native-nftables and --iptables-backend');
    expect(await ruleset(cluster, two)).toBe(before);
  });

  it('--cleanup deletes the tables: service-two is reached without its proxy', async () => {
    // As the proxy UID, so that service-one's proxy (and its kept connections) stays
    // out of it: a new connection each time, which only service-two's rules can capture.
    const get = (what: string) =>
      cluster.httpGet(oneSide.app, 'http://service-two:8080/', marker(what), {
        user: '1337:1337',
      });
    // Through service-two's proxy, the app sees a connection from localhost.
    expect((await get('before')).body).toMatch(/^client_address=(::ffff:)?127\.0\.0\.1$/m);
    const cleanup = await cluster.runInit(two, [...NATIVE_ARGS, '--cleanup']);
    expect(cleanup.exitCode, cleanup.stderr).toBe(0);
    expect(await ruleset(cluster, two)).not.toContain('istio-proxy');
    const direct = await get('after');
    expect(direct.status).toBe(200);
    expect(direct.body).toContain(`client_address=::ffff:${one.ip}\n`);
  });
});

describe.runIf(ready)('a dual-stack pod whose init container runs --native-nftables', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await Cluster.create({ ipv6: true });
  });
  afterAll(async () => {
    await cluster?.remove();
  });

  it('captures IPv6 too, in the same inet tables: a request over IPv6 goes through both proxies', async () => {
    const [server, client] = await Promise.all(
      ['service-two', 'service-one'].map(async (name) => {
        const pod = await cluster.startPod(name);
        // As Istio's injector passes ISTIO_DUAL_STACK for a dual-stack mesh.
        const init = await cluster.runInit(pod, [...NATIVE_ARGS, '--dual-stack']);
        expect(init.exitCode, init.stderr).toBe(0);
        expect(init.stderr).toMatch(/applied ipv4 \(\d+ rules\) and ipv6 \(\d+ rules\)/);
        return { pod, sidecars: await cluster.startSidecars(pod) };
      }),
    );
    if (server === undefined || client === undefined || server.pod.ipv6 === undefined) {
      throw new Error('the dual-stack pods did not start');
    }
    const rules = await ruleset(cluster, client.pod);
    expect(rules.match(/^table inet /gm)).toHaveLength(1);
    expect(rules).toContain('ip6 saddr ::6');

    const agent = marker('ipv6');
    const answer = await cluster.httpGet(client.sidecars.app, 'http://service-two:80/', agent, {
      family: 6,
    });
    expect(answer.error).toBeUndefined();
    expect(answer.status).toBe(200);
    const id = requestIdOf(answer.body) ?? 'missing';
    const clientLog = await cluster.waitForAccessLog(client.sidecars, id);
    const serverLog = await cluster.waitForAccessLog(server.sidecars, id);
    expect(clientLog.filter((line) => line.includes(id))).toEqual([
      expect.stringContaining(`"service-two" "[${server.pod.ipv6}]:8080"`),
    ]);
    expect(serverLog.filter((line) => line.includes(id))).toHaveLength(1);
  });
});
