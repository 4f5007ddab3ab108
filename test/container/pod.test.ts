// The mesh's "integrate a service" walkthrough, with real containers sharing a
// network namespace as a pod's containers do: service-one's app calls
// service-two:80, both sidecar proxies log the same x-request-id, and traffic on
// localhost or from the proxy's UID is left alone. Then the init container's
// other ways to run: privileged, re-run, each backend, bad arguments.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  gate,
  INIT_ARGS,
  type Pod,
  probeEngine,
  type RunResult,
  type Sidecars,
} from './pod.js';

const engine = await probeEngine();
const ready = gate(
  'container suite',
  engine.ok ? undefined : engine.reason,
  'a Docker engine and the mesh-init image',
);

/** A User-Agent no other request carries, to find one request in the access logs. */
const marker = (what: string) => `mesh-init-test/${what}/${randomUUID().slice(0, 8)}`;

/** `[time] "GET / HTTP/1.1" 200 - <rx> <tx> <ms> <ms> "-" "<ua>" "<id>" "<authority>" "<upstream>"` */
function accessLine(userAgent: string, requestId: string, authority: string, upstream: string) {
  const q = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(
    `^\\[\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\] "GET / HTTP/1\\.1" 200 - \\d+ \\d+ \\d+ \\d+ "-" ` +
      `"${q(userAgent)}" "${q(requestId)}" "${q(authority)}" "${q(upstream)}"$`,
  );
}

function requestIdOf(body: string | undefined): string | undefined {
  return body?.match(/^x-request-id=(\S+)$/m)?.[1];
}

describe.runIf(ready)('a pod with the mesh-init init container', () => {
  let cluster: Cluster;
  let one: Pod;
  let two: Pod;
  let oneSide: Sidecars;
  let twoSide: Sidecars;
  const firstInit = new Map<string, RunResult>();

  /** Pod, then its init container to completion, then app and proxy: the kubelet's order. */
  async function startMeshedPod(name: string, args = INIT_ARGS, privileged = false) {
    const pod = await cluster.startPod(name);
    const init = await cluster.runInit(pod, args, { privileged });
    expect(init, `init container of ${name}`).toMatchObject({ exitCode: 0 });
    const sidecars = await cluster.startSidecars(pod);
    return { pod, init, sidecars };
  }

  beforeAll(async () => {
    cluster = await Cluster.create();
    const [server, client] = await Promise.all([
      startMeshedPod('service-two'),
      startMeshedPod('service-one'),
    ]);
    ({ pod: two, sidecars: twoSide } = server);
    ({ pod: one, sidecars: oneSide } = client);
    firstInit.set('service-two', server.init);
    firstInit.set('service-one', client.init);
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  it('runs the init container to completion with only NET_ADMIN and NET_RAW', async () => {
    for (const [name, init] of firstInit) {
      expect(init.exitCode, `${name}: ${init.stderr}`).toBe(0);
    }
    const tables = await cluster.natTables(one);
    expect(tables.nft).toContain('-A OUTPUT -p tcp');
    expect(tables.nft).toMatch(/-j ISTIO_OUTPUT$/m);
    expect(tables.nft).toMatch(/-A PREROUTING -p tcp .*-j ISTIO_INBOUND$/m);
  });

  let requestId = '';
  const clientAgent = marker('client');

  it('answers a request from service-one to service-two:80 with an x-request-id', async () => {
    const answer = await cluster.httpGet(oneSide.app, 'http://service-two:80/', clientAgent);
    expect(answer.error).toBeUndefined();
    expect(answer.status).toBe(200);
    expect(answer.body).toMatch(/^host=service-two$/m);
    requestId = requestIdOf(answer.body) ?? '';
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("logs that id in the client proxy (outbound, to service-two's pod IP:8080) and the server proxy (inbound, to 127.0.0.1:8080)", async () => {
    const clientLog = await cluster.waitForAccessLog(oneSide, requestId);
    const serverLog = await cluster.waitForAccessLog(twoSide, requestId);
    const clientLines = clientLog.filter((line) => line.includes(requestId));
    const serverLines = serverLog.filter((line) => line.includes(requestId));
    // Exactly once each: the proxies' own connections were not captured again.
    expect(clientLines).toHaveLength(1);
    expect(serverLines).toHaveLength(1);
    expect(clientLines[0]).toMatch(
      accessLine(clientAgent, requestId, 'service-two', `${two.ip}:8080`),
    );
    expect(serverLines[0]).toMatch(
      accessLine(clientAgent, requestId, 'service-two', '127.0.0.1:8080'),
    );
  });

  it("does not send a request inside service-two to localhost:8080 through service-two's proxy", async () => {
    const local = marker('localhost');
    const answer = await cluster.httpGet(twoSide.app, 'http://localhost:8080/', local);
    expect(answer.status).toBe(200);
    expect(requestIdOf(answer.body)).toBeUndefined();
    expect(answer.body).toMatch(/^client_address=(::ffff:)?127\.0\.0\.1$/m);

    // Logs are ordered: once a later request's line is there, the earlier one would be too.
    const later = marker('after-localhost');
    expect((await cluster.httpGet(oneSide.app, 'http://service-two:80/', later)).status).toBe(200);
    const serverLog = await cluster.waitForAccessLog(twoSide, later);
    expect(serverLog.some((line) => line.includes(later))).toBe(true);
    expect(serverLog.filter((line) => line.includes(local))).toEqual([]);
  });

  it("does not loop the proxy UID's traffic back into the proxy", async () => {
    // From service-one as UID/GID 1337, straight to the server's app port.
    const own = marker('proxy-uid');
    const answer = await cluster.httpGet(oneSide.app, 'http://service-two:8080/', own, {
      user: '1337:1337',
    });
    expect(answer.error).toBeUndefined();
    expect(answer.status).toBe(200);

    const later = marker('after-proxy-uid');
    expect((await cluster.httpGet(oneSide.app, 'http://service-two:80/', later)).status).toBe(200);
    const clientLog = await cluster.waitForAccessLog(oneSide, later);
    expect(clientLog.some((line) => line.includes(later))).toBe(true);
    expect(clientLog.filter((line) => line.includes(own))).toEqual([]);
    // It still reached service-two, whose inbound capture does not care who sent it.
    const serverLog = await cluster.waitForAccessLog(twoSide, own);
    expect(serverLog.filter((line) => line.includes(own))).toHaveLength(1);
  });

  it("keeps Docker's own DNS rules, and backend auto picks nft, the backend holding them", async () => {
    const tables = await cluster.natTables(one);
    expect(tables.nft).toMatch(/^-A OUTPUT -d 127\.0\.0\.11\/32 -j DOCKER_OUTPUT$/m);
    expect(tables.nft).toMatch(/^-A DOCKER_OUTPUT .*--to-destination 127\.0\.0\.11:\d+$/m);
    expect(tables.nft).toContain(':ISTIO_OUTPUT');
    expect(tables.legacy).not.toContain('ISTIO_');
  });

  it('converges when the init container runs again in the same pod', async () => {
    const before = await cluster.natTables(one);
    const again = await cluster.runInit(one, INIT_ARGS);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(await cluster.natTables(one)).toEqual(before);

    const agent = marker('after-rerun');
    const answer = await cluster.httpGet(oneSide.app, 'http://service-two:80/', agent);
    expect(answer.status).toBe(200);
    const id = requestIdOf(answer.body) ?? 'missing';
    const clientLog = await cluster.waitForAccessLog(oneSide, id);
    expect(clientLog.filter((line) => line.includes(id))).toHaveLength(1);
  });

  it.each([
    ['an out-of-range port', ['-p', '70000', '-u', '1337'], '--proxy-port'],
    ['an unknown backend', [...INIT_ARGS, '--iptables-backend', 'iptables'], '--iptables-backend'],
  ])('exits 2 on %s and leaves the nat table untouched', async (_, args, flag) => {
    const before = await cluster.natTables(two);
    const bad = await cluster.runInit(two, args);
    expect(bad.exitCode, bad.stderr).toBe(2);
    expect(bad.stderr).toContain(flag);
    expect(await cluster.natTables(two)).toEqual(before);
  });

  it.each([
    ['privileged', INIT_ARGS, true, 'nft'],
    ['--iptables-backend legacy', [...INIT_ARGS, '--iptables-backend', 'legacy'], false, 'legacy'],
    ['--iptables-backend nft', [...INIT_ARGS, '--iptables-backend', 'nft'], false, 'nft'],
  ] as const)(
    'captures a new pod whose init container runs %s',
    async (what, args, privileged, backend) => {
      const name = `variant-${backend}-${privileged ? 'privileged' : 'caps'}`;
      const { pod, sidecars } = await startMeshedPod(name, args, privileged);

      const tables = await cluster.natTables(pod);
      const other = backend === 'nft' ? 'legacy' : 'nft';
      expect(tables[backend], what).toMatch(/-j ISTIO_OUTPUT$/m);
      expect(tables[other], what).not.toContain('ISTIO_');

      const agent = marker(name);
      const answer = await cluster.httpGet(sidecars.app, 'http://service-two:80/', agent);
      expect(answer.status).toBe(200);
      const id = requestIdOf(answer.body) ?? 'missing';
      const log = await cluster.waitForAccessLog(sidecars, id);
      expect(log.filter((line) => line.includes(id))).toEqual([
        expect.stringMatching(accessLine(agent, id, 'service-two', `${two.ip}:8080`)),
      ]);
    },
  );
});

describe.runIf(ready)('dual-stack pods with the mesh-init init container', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.create({ ipv6: true });
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  it('captures IPv6 too: a request over IPv6 goes through both proxies', async () => {
    const [server, client] = await Promise.all(
      ['service-two', 'service-one'].map(async (name) => {
        const pod = await cluster.startPod(name);
        // As Istio's injector passes ISTIO_DUAL_STACK for a dual-stack mesh.
        const init = await cluster.runInit(pod, [...INIT_ARGS, '--dual-stack']);
        expect(init.exitCode, init.stderr).toBe(0);
        return { pod, sidecars: await cluster.startSidecars(pod) };
      }),
    );
    if (server === undefined || client === undefined || server.pod.ipv6 === undefined) {
      throw new Error('the dual-stack pods did not start');
    }

    const tables = await cluster.natTables(client.pod, 6);
    expect(tables.nft).toMatch(/-A OUTPUT -p tcp .*-j ISTIO_OUTPUT$/m);
    expect(tables.nft).toMatch(/-A PREROUTING -p tcp .*-j ISTIO_INBOUND$/m);

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
      expect.stringMatching(accessLine(agent, id, 'service-two', `[${server.pod.ipv6}]:8080`)),
    ]);
    expect(serverLog.filter((line) => line.includes(id))).toEqual([
      expect.stringMatching(accessLine(agent, id, 'service-two', '127.0.0.1:8080')),
    ]);
  });

  it('without --dual-stack, as Istio, a pod with IPv4 too is captured over IPv4 only', async () => {
    const pod = await cluster.startPod('ipv4-only-mesh');
    const init = await cluster.runInit(pod, INIT_ARGS);
    expect(init.exitCode, init.stderr).toBe(0);
    expect(init.stderr).toContain(
      'ipv6 not captured (the pod has IPv4 too and --dual-stack is off',
    );
    expect((await cluster.natTables(pod, 6)).nft).not.toContain('ISTIO_');
    expect((await cluster.natTables(pod, 4)).nft).toContain('ISTIO_OUTPUT');
  });
});
