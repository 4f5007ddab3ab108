/**
 * Istio parity (issue 14): for each place where mesh-init's rules used to send a
 * packet elsewhere than Istio's, a real connection (or a counted packet, for
 * TPROXY's marks) in a throw-away pod shows where it goes now: where Istio sends it.
 * Each test failed on the rules before the change (run with MESH_INIT_BUNDLE
 * pointing at an older bundle to see it). The plan is the same for both backends;
 * these run on legacy, the faster one.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADDRESSES, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const OUT = 15001;
const IN = 15006;
const TUNNEL = 15008;
const APP = 8080;
const OTHER = 9090;
const APP_UID = 1000;
const v4 = ADDRESSES.ipv4;
const v6 = ADDRESSES.ipv6;
/** -p, -z and -u unless a test gives its own. */
const DEFAULTS: [string, string][] = [
  ['-p', String(OUT)],
  ['-z', String(IN)],
  ['-u', String(PROXY_UID)],
];
const LEGACY = ['--iptables-backend', 'legacy'];

kernelSuite('Istio parity: the same packets go to the same place', () => {
  let net: Pod;

  beforeEach(async () => {
    net = await Pod.create();
    await net.serve('pod', 'proxy-outbound', 'tcp', [OUT], { uid: PROXY_UID });
    await net.serve('pod', 'proxy-inbound', 'tcp', [IN], { uid: PROXY_UID });
    await net.serve('pod', 'app', 'tcp', [APP, OTHER], { uid: APP_UID });
  });
  afterEach(async () => net?.destroy());

  async function meshInit(args: readonly string[]) {
    const defaults = DEFAULTS.filter(([flag]) => !args.includes(flag)).flat();
    const result = await net.meshInit([...defaults, ...LEGACY, ...args]);
    expect(result.stderr).toContain('applied');
    expect(result.exitCode).toBe(0);
    return result;
  }

  describe('1. the tunnel port (HBONE, 15008) is never captured', () => {
    it('inbound TCP to 15008 and the proxy calling its pod IP on 15008 reach the tunnel listener', async () => {
      await net.serve('pod', 'tunnel', 'tcp', [TUNNEL], { uid: PROXY_UID });
      await meshInit(['--ipv6', 'false']);
      expect((await net.connect('peer', 'tcp', v4.pod, TUNNEL)).server).toBe('tunnel');
      const own = await net.connect('pod', 'tcp', v4.pod, TUNNEL, { uid: PROXY_UID });
      expect(own.server).toBe('tunnel');
      // Any other port is still captured.
      expect((await net.connect('peer', 'tcp', v4.pod, APP)).server).toBe('proxy-inbound');
    });

    it('-e moves it', async () => {
      await net.serve('pod', 'tunnel', 'tcp', [15009], { uid: PROXY_UID });
      await meshInit(['--ipv6', 'false', '-e', '15009']);
      expect((await net.connect('peer', 'tcp', v4.pod, 15009)).server).toBe('tunnel');
    });
  });

  describe("2. the proxy's identity over lo, in Istio's order", () => {
    it('a process with the proxy GID but another UID calling the pod IP is let through to the app', async () => {
      await meshInit(['--ipv6', 'false']);
      const byGid = await net.connect('pod', 'tcp', v4.pod, APP, { uid: APP_UID, gid: PROXY_UID });
      expect(byGid.server).toBe('app');
      // The proxy itself still goes to the inbound port.
      const proxy = await net.connect('pod', 'tcp', v4.pod, APP, { uid: PROXY_UID });
      expect(proxy.server).toBe('proxy-inbound');
    });

    it('with several -u, only the first UID calling the pod IP goes to the inbound port', async () => {
      await meshInit(['--ipv6', 'false', '-u', `${PROXY_UID},1338`, '-g', String(PROXY_UID)]);
      const second = await net.connect('pod', 'tcp', v4.pod, APP, { uid: 1338, gid: APP_UID });
      expect(second.server).toBe('app');
      const first = await net.connect('pod', 'tcp', v4.pod, APP, { uid: PROXY_UID });
      expect(first.server).toBe('proxy-inbound');
    });
  });

  describe('3. DNS capture, app side', () => {
    it("an app's TCP to port 53 of its pod IP or of another 127.x address goes to the proxy", async () => {
      await net.serve('pod', 'dns-tcp', 'tcp', [53]);
      net.setResolvConf(`nameserver ${v4.peer}\n`);
      await meshInit(['--ipv6', 'false', '--redirect-dns']);
      const toPod = await net.connect('pod', 'tcp', v4.pod, 53, { uid: APP_UID });
      expect(toPod.server).toBe('proxy-outbound');
      const toLoopback = await net.connect('pod', 'tcp', '127.0.0.5', 53, { uid: APP_UID });
      expect(toLoopback.server).toBe('proxy-outbound');
      // 127.0.0.1 stays the app's own.
      const local = await net.connect('pod', 'tcp', v4.loopback, 53, { uid: APP_UID });
      expect(local.server).toBe('dns-tcp');
    });

    it('a process with the proxy GID calling port 53 of the pod IP goes to the inbound port', async () => {
      await net.serve('pod', 'dns-tcp', 'tcp', [53]);
      net.setResolvConf(`nameserver ${v4.peer}\n`);
      await meshInit(['--ipv6', 'false', '--redirect-dns']);
      const byGid = await net.connect('pod', 'tcp', v4.pod, 53, { uid: APP_UID, gid: PROXY_UID });
      expect(byGid.server).toBe('proxy-inbound');
      // The proxy UID's own DNS over TCP to a resolver on its pod IP is not inbound traffic.
      const proxy = await net.connect('pod', 'tcp', v4.pod, 53, { uid: PROXY_UID });
      expect(proxy.server).toBe('dns-tcp');
    });
  });

  it('4. a dual-stack pod with IPv4 resolvers only: the IPv6 rules are shaped for DNS capture', async () => {
    await net.serve('pod', 'dns-tcp', 'tcp', [53]);
    await net.serve('peer', 'resolver', 'udp', [53]);
    net.setResolvConf(`nameserver ${v4.peer}\n`);
    await meshInit(['--ipv6', 'true', '--redirect-dns']);
    // The proxy's TCP DNS to its IPv6 pod address over lo is not inbound traffic.
    const proxy = await net.connect('pod', 'tcp', v6.pod, 53, { uid: PROXY_UID });
    expect(proxy.server).toBe('dns-tcp');
    // The proxy's IPv6 UDP DNS gets its conntrack zone.
    const zone1 = "the proxy's upstream DNS queries are in zone 1";
    expect(await net.packets('legacy', 'ipv6', 'raw', zone1)).toBe(0);
    expect((await net.connect('pod', 'udp', v6.peer, 53, { uid: PROXY_UID })).server).toBe(
      'resolver',
    );
    expect(await net.packets('legacy', 'ipv6', 'raw', zone1)).toBeGreaterThan(0);
  });

  it('5. TPROXY with a port list: established TCP to another port is not marked', async () => {
    // A TPROXY proxy needs IP_TRANSPARENT, so CAP_NET_ADMIN: it runs as root, on a port of its own.
    await net.serve('pod', 'proxy-transparent', 'tcp-transparent', [15007]);
    await meshInit(['--ipv6', 'false', '-m', 'TPROXY', '-z', '15007', '-b', String(APP)]);
    const established = 'packets of established connections go straight to their socket';
    const other = await net.connect('peer', 'tcp', v4.pod, OTHER);
    expect(other.server).toBe('app');
    expect(await net.packets('legacy', 'ipv4', 'mangle', established)).toBe(0);
    // The listed port is captured, and its established packets are marked.
    expect((await net.connect('peer', 'tcp', v4.pod, APP)).server).toBe('proxy-transparent');
    expect(await net.packets('legacy', 'ipv4', 'mangle', established)).toBeGreaterThan(0);
  });

  it('6. TPROXY with -c: a connection on the excluded interface keeps its route, whatever its connmark', async () => {
    await net.addSecondPeer();
    await net.serve('peer2', 'peer2', 'tcp', [80]);
    await meshInit(['--ipv6', 'false', '-m', 'TPROXY', '-c', 'eth1']);
    // Something else in the pod gives the connections on eth1 TPROXY's connmark.
    await net.restoreForeign(
      'legacy',
      'ipv4',
      '*mangle\n-I PREROUTING 1 -i eth1 -p tcp -j CONNMARK --set-mark 1337\nCOMMIT\n',
    );
    const report = await net.connect('pod', 'tcp', '10.200.2.2', 80, { uid: APP_UID });
    expect(report.server).toBe('peer2');
  });

  it('7. a loopback range in -i is captured', async () => {
    await meshInit(['--ipv6', 'false', '-i', '127.1.2.3/32']);
    const report = await net.connect('pod', 'tcp', '127.1.2.3', APP, { uid: APP_UID });
    expect(report.server).toBe('proxy-outbound');
    expect(report.original).toBe(`127.1.2.3:${APP}`);
    // 127.0.0.1 and the rest of lo stay the pod's own.
    expect((await net.connect('pod', 'tcp', v4.loopback, APP, { uid: APP_UID })).server).toBe(
      'app',
    );
  });

  it('--network-namespace applies in the namespace it names, and only there', async () => {
    // Run from the peer's namespace, never this machine's own: were the flag ignored,
    // the rules would land in the peer, and the test would see it.
    const result = await net.meshInit(
      [...DEFAULTS.flat(), ...LEGACY, '--network-namespace', `/var/run/netns/${net.pod}`],
      {},
      'peer',
    );
    expect(result.exitCode, result.stderr).toBe(0);
    expect((await net.connect('peer', 'tcp', v4.pod, APP)).server).toBe('proxy-inbound');
    expect(await net.exec('peer', ['iptables-legacy-save', '-t', 'nat'])).not.toContain('ISTIO_');
  });

  it('8. --ipv6 auto: a pod with both families is captured over IPv6 only with --dual-stack', async () => {
    await meshInit([]);
    expect((await net.connect('peer', 'tcp', v6.pod, APP)).server).toBe('app');
    expect((await net.connect('peer', 'tcp', v4.pod, APP)).server).toBe('proxy-inbound');
    await meshInit(['--dual-stack']);
    expect((await net.connect('peer', 'tcp', v6.pod, APP)).server).toBe('proxy-inbound');
  });
});
