// Issue #5's features in Docker pods, as the kernel suite proves them in network
// namespaces: TPROXY inbound capture (a transparent listener sees the original
// destination), DNS capture with Docker's embedded resolver on 127.0.0.11 (the
// "resolver on lo" case), and --drop-invalid. Every pod and the peer that talks to
// them sit on one internal Docker network, dual-stack, so TPROXY and --drop-invalid
// are proved over IPv6 too (with --dual-stack, as Istio's injector sets for a
// dual-stack mesh, `--ipv6 auto` sees the pod's global IPv6 address and programs
// ip6tables as well). DNS capture has no IPv6 case: Docker's
// embedded DNS listens on 127.0.0.11 only, so a pod's resolv.conf names no IPv6
// resolver to capture.
//
// Node has no setsockopt() for IP_TRANSPARENT and no raw sockets, and the mesh-init
// image has no Perl: the transparent listener and the sender of an INVALID segment
// run socket-tools.pl in the image mesh-init was built from (Debian, perl-base).
import { randomUUID } from 'node:crypto';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  findBaseImage,
  gate,
  INIT_ARGS,
  type Pod,
  PROXY_UID,
  probeEngine,
  type RunResult,
  type Sidecars,
} from './pod.js';

const engine = await probeEngine();
const base = engine.ok ? await findBaseImage() : undefined;
const missing = !engine.ok
  ? engine.reason
  : base === undefined
    ? 'no image with Perl for the transparent listener (BASE, mesh-init-base:trixie or debian:trixie-slim)'
    : undefined;
const ready = gate(
  'container feature suite',
  missing,
  'a Docker engine, the mesh-init image and its base',
);

const INBOUND_PORT = 15006;
const DNS_PORT = 15053;
/** What the proxy's DNS server answers: an address no other resolver here hands out. */
const PROXY_ANSWER = '192.0.2.15';
const APP = '1000:1000';
const PROXY = `${PROXY_UID}:${PROXY_UID}`;
const DROPPED = 'a packet conntrack cannot place would skip NAT and so the proxy';

const marker = (what: string) => `mesh-init-test/${what}/${randomUUID().slice(0, 8)}`;
const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The packet counter of the one rule whose comment is `mesh-init: <why>` in an `iptables-save -c`. */
function packetsOf(save: string, why: string): number {
  const lines = save.split('\n').filter((line) => line.includes(`"mesh-init: ${why}"`));
  const count = lines.length === 1 ? lines[0]?.match(/^\[(\d+):\d+\]/)?.[1] : undefined;
  if (count === undefined) throw new Error(`expected one rule "${why}" with counters in:\n${save}`);
  return Number(count);
}

/** Drops counters, so `toContain` can name a rule as `iptables-save` prints it. */
const withoutCounters = (save: string) => save.replace(/^\[\d+:\d+\] /gm, '');

/** The pod's address in `family`; the cluster is dual-stack, so a pod without IPv6 is a failure. */
function addressOf(pod: Pod, family: 4 | 6): string {
  const address = family === 4 ? pod.ip : pod.ipv6;
  if (address === undefined) throw new Error(`pod ${pod.name} has no IPv${family} address`);
  return address;
}

/** `address:port`, or `[address]:port` for IPv6, as socket-tools.pl reports an endpoint. */
const endpoint = (address: string, port: number | string) =>
  address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

describe.runIf(ready)("issue #5's features in Docker pods", () => {
  const perl = base ?? 'unreachable';
  let cluster: Cluster;
  /** A pod without mesh-init: the other side of every conversation. */
  let peer: Pod;
  /** Its app: the echo server on 8080, and the helpers to run probes from. */
  let peerApp: StartedTestContainer;

  /** Pod, then its init container to completion: the kubelet's order. */
  async function startMeshedPod(name: string, args: readonly string[]) {
    const pod = await cluster.startPod(name);
    const init = await cluster.runInit(pod, args);
    expect(init.exitCode, `init container of ${name}: ${init.stderr}`).toBe(0);
    return { pod, init };
  }

  async function check(pod: Pod, args: readonly string[]): Promise<RunResult> {
    return cluster.runInit(pod, [...args, '--check']);
  }

  beforeAll(async () => {
    cluster = await Cluster.create({ ipv6: true });
    peer = await cluster.startPod('peer');
    peerApp = await cluster.startInPod(peer, {
      role: 'app',
      entrypoint: ['node', '/opt/mesh-test/echo-server.mjs'],
    });
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  describe('-m TPROXY: inbound TCP reaches a transparent listener with its destination kept', () => {
    const args = [...INIT_ARGS, '--dual-stack', '-m', 'TPROXY', '-z', String(INBOUND_PORT)];
    let pod: Pod;
    let sidecars: Sidecars;

    beforeAll(async () => {
      ({ pod } = await startMeshedPod('tproxy', args));
      // The inbound side of a TPROXY proxy: IP_TRANSPARENT needs CAP_NET_ADMIN, which
      // only root's processes get from Docker, as in the kernel suite. One listener a
      // family, as the kernel suite's: the IPv6 one is IPv6-only on the same port.
      const inbound = (role: string, address: string) =>
        cluster.startInPod(pod, {
          role,
          image: perl,
          user: '0:0',
          capabilities: ['NET_ADMIN'],
          entrypoint: [
            'perl',
            '/opt/mesh-test/socket-tools.pl',
            'transparent',
            String(INBOUND_PORT),
            address,
          ],
        });
      const [started] = await Promise.all([
        cluster.startSidecars(pod),
        inbound('inbound', '0.0.0.0'),
        inbound('inbound6', '::'),
      ]);
      sidecars = started;
    });

    const ip = async (...command: string[]) => {
      const result = await sidecars.app.exec(['ip', ...command]);
      expect(result.exitCode, result.stderr).toBe(0);
      return result.stdout;
    };

    it('adds the policy route (fwmark 1337 lookup 133, local default dev lo) and the mangle rules, and --check agrees', async () => {
      expect((await ip('rule', 'list')).match(/fwmark 0x539 lookup 133\b/g)).toHaveLength(1);
      expect(await ip('route', 'show', 'table', '133')).toMatch(/^local default dev lo\b/);

      // Docker's rules are in nft, so `auto` picked it; nat has no inbound capture left.
      const mangle = withoutCounters(await cluster.saveTable(pod, 'mangle', 'nft'));
      expect(mangle).toMatch(/^-A PREROUTING -p tcp .*-j ISTIO_INBOUND$/m);
      expect(mangle).toMatch(
        new RegExp(
          `^-A ISTIO_TPROXY .*-j TPROXY --on-port ${INBOUND_PORT} --on-ip 0\\.0\\.0\\.0 --tproxy-mark 0x539/0xffffffff$`,
          'm',
        ),
      );
      expect(withoutCounters(await cluster.saveTable(pod, 'nat', 'nft'))).not.toMatch(
        /^-A PREROUTING .*ISTIO_INBOUND/m,
      );

      const checked = await check(pod, args);
      expect(checked.exitCode, checked.stdout + checked.stderr).toBe(0);
    });

    it('IPv6: adds the same policy route with ip -6 and TPROXY to :: in ip6tables mangle', async () => {
      expect((await ip('-6', 'rule', 'list')).match(/fwmark 0x539 lookup 133\b/g)).toHaveLength(1);
      expect(await ip('-6', 'route', 'show', 'table', '133')).toMatch(
        /^local (default|::\/0) dev lo\b/,
      );
      const mangle = withoutCounters(await cluster.saveTable(pod, 'mangle', 'nft', 6));
      expect(mangle).toMatch(/^-A PREROUTING -p tcp .*-j ISTIO_INBOUND$/m);
      expect(mangle).toMatch(
        new RegExp(
          `^-A ISTIO_TPROXY .*-j TPROXY --on-port ${INBOUND_PORT} --on-ip :: --tproxy-mark 0x539/0xffffffff$`,
          'm',
        ),
      );
    });

    it.each([
      [4, 8080],
      [4, 9090],
      [6, 8080],
    ] as const)(
      "IPv%i: another pod's connection to port %i lands on the transparent listener, destination and source kept",
      async (family, port) => {
        // With REDIRECT instead (same -z), the connection would land here too, but on the
        // listener's own port: `local` is what only TPROXY keeps.
        const to = addressOf(pod, family);
        expect(await cluster.probe(peerApp, ['read', to, String(port)])).toEqual({
          server: 'transparent',
          local: endpoint(to, port),
          peer: expect.stringMatching(
            new RegExp(`^${literal(endpoint(addressOf(peer, family), ''))}\\d+$`),
          ),
        });
      },
    );

    it("leaves the pod's own loopback traffic to the app alone", async () => {
      const answer = await cluster.httpGet(sidecars.app, 'http://127.0.0.1:8080/', marker('lo'));
      expect(answer.status).toBe(200);
      expect(answer.body).toMatch(/^client_address=(::ffff:)?127\.0\.0\.1$/m);
      expect(answer.body).not.toMatch(/^x-request-id=/m);
    });

    it('still redirects outbound TCP to the proxy on 15001', async () => {
      const agent = marker('tproxy-outbound');
      const answer = await cluster.httpGet(sidecars.app, 'http://peer:80/', agent);
      expect(answer.error).toBeUndefined();
      expect(answer.status).toBe(200);
      const log = await cluster.waitForAccessLog(sidecars, agent);
      expect(log.filter((line) => line.includes(agent))).toEqual([
        expect.stringMatching(
          new RegExp(`"${literal(agent)}" ".*" "peer" "${literal(peer.ip)}:8080"$`),
        ),
      ]);
    });
  });

  describe("--redirect-dns with Docker's embedded DNS on 127.0.0.11 (a resolver on lo)", () => {
    const dnsArgs = [...INIT_ARGS, '--redirect-dns'];
    // `auto` picks nft, where Docker's own DNS rules are; legacy is the other backend.
    const backends = [
      ['legacy', [...dnsArgs, '--iptables-backend', 'legacy']],
      ['nft', dnsArgs],
    ] as const;
    const pods = new Map<string, { pod: Pod; init: RunResult; dns: StartedTestContainer }>();
    /** A pod without DNS capture: the control for the resolver path. */
    let plainApp: StartedTestContainer;
    const lookup = (from: StartedTestContainer, name: string, user: string) =>
      cluster.probe(from, ['lookup', name], user);

    beforeAll(async () => {
      const started = await Promise.all([
        ...backends.map(async ([backend, args]) => {
          const { pod, init } = await startMeshedPod(`dns-${backend}`, args);
          const dns = await cluster.startInPod(pod, {
            role: 'dns',
            user: PROXY,
            entrypoint: ['node', '/opt/mesh-test/dns-server.mjs', PROXY_ANSWER, String(DNS_PORT)],
          });
          pods.set(backend, { pod, init, dns });
        }),
        (async () => {
          const { pod } = await startMeshedPod('dns-off', INIT_ARGS);
          return cluster.startInPod(pod, {
            role: 'app',
            entrypoint: ['node', '/opt/mesh-test/echo-server.mjs'],
          });
        })(),
      ]);
      plainApp = started[2] as StartedTestContainer;
    });

    const of = (backend: string) => {
      const found = pods.get(backend);
      if (found === undefined) throw new Error(`the ${backend} DNS pod did not start`);
      return found;
    };

    it("without --redirect-dns, an app and the proxy UID both resolve another pod's name through Docker's DNS", async () => {
      expect(await lookup(plainApp, 'peer', APP)).toEqual({ addresses: [peer.ip] });
      expect(await lookup(plainApp, 'peer', PROXY)).toEqual({ addresses: [peer.ip] });
    });

    it.each(backends)(
      "%s: reads 127.0.0.11 from the pod's resolv.conf, redirects it to the DNS port, and --check agrees",
      async (backend, args) => {
        const { pod, init } = of(backend);
        expect(init.stderr).toContain('dns: capturing DNS to 127.0.0.11 (from /etc/resolv.conf)');
        expect(init.stderr).toContain(`backend: ${backend}`);
        const nat = withoutCounters(await cluster.saveTable(pod, 'nat', backend));
        expect(nat).toMatch(
          new RegExp(
            `^-A ISTIO_OUTPUT_DNS -d 127\\.0\\.0\\.11/32 -p udp -m udp --dport 53 .*-j REDIRECT --to-ports ${DNS_PORT}$`,
            'm',
          ),
        );
        const checked = await check(pod, args);
        expect(checked.exitCode, checked.stdout + checked.stderr).toBe(0);
      },
    );

    it("legacy: an app's lookup is answered by the proxy's DNS server on 127.0.0.1:15053", async () => {
      const { dns } = of('legacy');
      const name = `${randomUUID().slice(0, 8)}.svc.test`;
      expect(await lookup(dns, name, APP)).toEqual({ addresses: [PROXY_ANSWER] });
      expect(await cluster.stdoutOf(dns)).toMatch(
        new RegExp(`^query ${literal(name)} type 1 from 127\\.0\\.0\\.1:\\d+$`, 'm'),
      );
    });

    // Docker's `-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT` is in the same nft table
    // before mesh-init runs: mesh-init's jump goes first, or Docker's DNAT takes the
    // query to its resolver before ISTIO_OUTPUT_DNS sees it.
    it("nft (auto): an app's lookup is answered by the proxy's DNS server", async () => {
      const { dns } = of('nft');
      const name = `${randomUUID().slice(0, 8)}.svc.test`;
      expect(await lookup(dns, name, APP)).toEqual({ addresses: [PROXY_ANSWER] });
    });

    // The answer of a resolver on lo leaves through raw OUTPUT with Docker's port as
    // its source: only the rule that puts a loopback resolver's answers in zone 1
    // lets it meet the proxy's query (zone 1), so that Docker's DNAT is undone.
    it.each(backends)(
      "%s: the proxy UID's own lookups still reach Docker's DNS",
      async (backend) => {
        const { dns } = of(backend);
        expect(await lookup(dns, 'peer', PROXY)).toEqual({ addresses: [peer.ip] });
      },
    );
  });

  describe('--drop-invalid: a segment conntrack cannot place is dropped in mangle PREROUTING', () => {
    const args = [...INIT_ARGS, '--dual-stack', '--drop-invalid'];
    let pod: Pod;
    let sidecars: Sidecars;

    beforeAll(async () => {
      ({ pod } = await startMeshedPod('drop-invalid', args));
      sidecars = await cluster.startSidecars(pod);
    });

    it('adds the DROP_INVALID chain and its jump to mangle, and --check reads them back', async () => {
      const mangle = withoutCounters(await cluster.saveTable(pod, 'mangle', 'nft'));
      expect(mangle).toContain(':ISTIO_DROP_INVALID - [0:0]');
      expect(mangle).toContain(
        '-A PREROUTING -m comment --comment "mesh-init: invalid packets are dropped (--drop-invalid)" -j ISTIO_DROP_INVALID',
      );
      expect(mangle).toContain(
        `-A ISTIO_DROP_INVALID -m conntrack --ctstate INVALID -m comment --comment "mesh-init: ${DROPPED}" -j DROP`,
      );
      expect(await cluster.saveTable(pod, 'mangle', 'legacy')).not.toContain('ISTIO_');

      const checked = await check(pod, args);
      expect(checked.exitCode, checked.stdout + checked.stderr).toBe(0);
      // --check compares mangle too: without the flag, the chain is drift (exit 5).
      const without = await check(pod, [...INIT_ARGS, '--dual-stack']);
      expect(without.exitCode, without.stderr).toBe(5);
      expect(without.stdout).toContain('DROP_INVALID');
    });

    // Each family's segment meets its own table's rule (iptables or ip6tables mangle),
    // and the request after it resolves the pod's name in that family only.
    it.each([4, 6] as const)(
      "IPv%i: drops another pod's SYN+FIN segment, and a request still goes through the proxy",
      async (family) => {
        const packets = async () =>
          packetsOf(await cluster.saveTable(pod, 'mangle', 'nft', family), DROPPED);
        const before = await packets();
        const sent = await cluster.runInPod(peer, {
          role: `invalid-${randomUUID().slice(0, 4)}`,
          image: perl,
          user: '0:0',
          capabilities: ['NET_RAW'],
          entrypoint: [
            'perl',
            '/opt/mesh-test/socket-tools.pl',
            'invalid',
            addressOf(peer, family),
            addressOf(pod, family),
            '8080',
          ],
        });
        expect(sent, sent.stderr).toMatchObject({ exitCode: 0, stdout: '{"sent":1}\n' });
        await expect.poll(packets).toBe(before + 1);

        const agent = marker(`after-invalid-v${family}`);
        const answer = await cluster.httpGet(peerApp, 'http://drop-invalid:8080/', agent, {
          family,
        });
        expect(answer.error).toBeUndefined();
        expect(answer.status).toBe(200);
        expect(answer.body).toMatch(/^x-request-id=/m); // the proxy added it
        const log = await cluster.waitForAccessLog(sidecars, agent);
        expect(log.filter((line) => line.includes(agent))).toHaveLength(1);
        expect(await packets()).toBe(before + 1);
      },
    );
  });
});
