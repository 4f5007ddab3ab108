/**
 * traceLocalConnection: the planned nat OUTPUT's verdict on one locally made TCP
 * connection. --run-validation picks its probe with it, so each row is a path the
 * rules must capture or let go; the kernel suite (test/kernel/validation.test.ts)
 * checks that the kernel agrees.
 */
import { describe, expect, it } from 'vitest';
import { type LocalConnection, traceLocalConnection } from '../../src/plan/trace.js';
import { configFrom } from '../config-from.js';

const ISTIO = ['-p', '15001', '-z', '15006', '-u', '1337'];
const proxy = { uid: 1337, gid: 1337 };
const app = { uid: 1000, gid: 1000 };

/** The proxy UID's probe: from the loopback address to a pod address over lo. */
const overLo = (destination: string, who = proxy): LocalConnection => ({
  family: destination.includes(':') ? 'ipv6' : 'ipv4',
  source: destination.includes(':') ? '::1' : '127.0.0.1',
  destination,
  destinationPort: 15002,
  outInterface: 'lo',
  ...who,
});
/** Other UIDs' probe: leaving the pod through an interface no rule names. */
const leaving = (destination: string, who = app, outInterface?: string): LocalConnection => ({
  family: destination.includes(':') ? 'ipv6' : 'ipv4',
  destination,
  destinationPort: 15002,
  ...(outInterface === undefined ? {} : { outInterface }),
  ...who,
});

describe('traceLocalConnection', () => {
  it.each<[string, string[], LocalConnection, number | undefined, string | undefined]>([
    [
      'the proxy to 127.0.0.6 over lo goes to the inbound port',
      ISTIO,
      overLo('127.0.0.6'),
      15006,
      'inbound TCP goes to the inbound capture port',
    ],
    [
      'the proxy to ::6 over lo goes to the inbound port',
      ISTIO,
      overLo('::6'),
      15006,
      'inbound TCP goes to the inbound capture port',
    ],
    [
      'the proxy to its pod IP over lo goes to the inbound port',
      ISTIO,
      overLo('10.244.1.7'),
      15006,
      'inbound TCP goes to the inbound capture port',
    ],
    [
      // Istio's order: the UID block's loopback RETURN comes before the GID's rules.
      'a process of the proxy GID alone over lo is let through, as in Istio',
      ISTIO,
      overLo('127.0.0.6', { uid: 1000, gid: 1337 }),
      undefined,
      'loopback traffic inside the pod is not intercepted',
    ],
    [
      'the proxy to 127.0.0.1 is localhost, never captured',
      ISTIO,
      overLo('127.0.0.1'),
      undefined,
      'traffic of the proxy itself is never redirected (no loop)',
    ],
    [
      'the proxy from the passthrough source 127.0.0.6 is not captured',
      ISTIO,
      { ...overLo('10.244.1.7'), source: '127.0.0.6' },
      undefined,
      'inbound passthrough from the proxy goes straight to the app',
    ],
    [
      'the proxy leaving the pod is never captured',
      ISTIO,
      leaving('192.0.2.1', proxy),
      undefined,
      'traffic of the proxy itself is never redirected (no loop)',
    ],
    [
      'an app leaving the pod goes to the proxy port',
      ISTIO,
      leaving('192.0.2.1'),
      15001,
      'outbound TCP goes to the proxy',
    ],
    [
      'an app leaving over IPv6 goes to the proxy port',
      ISTIO,
      leaving('2001:db8::1'),
      15001,
      'outbound TCP goes to the proxy',
    ],
    [
      'root leaving the pod goes to the proxy port',
      ISTIO,
      leaving('192.0.2.1', { uid: 0, gid: 0 }),
      15001,
      'outbound TCP goes to the proxy',
    ],
    [
      'an app over lo is not captured',
      ISTIO,
      overLo('127.0.0.6', app),
      undefined,
      'loopback traffic inside the pod is not intercepted',
    ],
    [
      '-z defaults to -p',
      ['-p', '15001', '-u', '1337'],
      overLo('127.0.0.6'),
      15001,
      'inbound TCP goes to the inbound capture port',
    ],
    [
      '-i outside the probe address: no rule of mesh-init takes it',
      [...ISTIO, '-i', '10.0.0.0/8'],
      leaving('192.0.2.1'),
      undefined,
      undefined,
    ],
    [
      '-i naming the probe address captures it',
      [...ISTIO, '-i', '192.0.2.0/24'],
      leaving('192.0.2.1'),
      15001,
      'outbound TCP goes to the proxy',
    ],
    [
      '-x the probe address lets it go',
      [...ISTIO, '-x', '192.0.2.1/32'],
      leaving('192.0.2.1'),
      undefined,
      'destination excluded by --outbound-exclude-cidrs',
    ],
    [
      '-o the probe port lets it go, for the proxy too',
      [...ISTIO, '-o', '15002'],
      overLo('127.0.0.6'),
      undefined,
      'destination port excluded by --outbound-exclude-ports',
    ],
    [
      '-q the probe port captures it outside -i',
      [...ISTIO, '-i', '', '-q', '15002'],
      leaving('192.0.2.1'),
      15001,
      'outbound TCP goes to the proxy',
    ],
    [
      '-c the interface it leaves through lets it go',
      [...ISTIO, '-c', 'eth+'],
      leaving('10.244.1.254', app, 'eth0'),
      undefined,
      'interface excluded by --exclude-interfaces',
    ],
    [
      '-c another interface does not',
      [...ISTIO, '-c', 'eth1'],
      leaving('10.244.1.254', app, 'eth0'),
      15001,
      'outbound TCP goes to the proxy',
    ],
    [
      'TPROXY mode: the proxy over lo still goes to the inbound port through nat',
      [...ISTIO, '-m', 'TPROXY'],
      overLo('127.0.0.6'),
      15006,
      'inbound TCP goes to the inbound capture port',
    ],
    [
      'DNS capture: the proxy over lo on the probe port is still inbound',
      [...ISTIO, '--redirect-dns', '--capture-all-dns'],
      overLo('127.0.0.6'),
      15006,
      'inbound TCP goes to the inbound capture port',
    ],
  ])('%s', async (_name, argv, connection, toPort, why) => {
    const trace = traceLocalConnection(await configFrom(argv), connection);
    if (toPort !== undefined) expect(trace).toStrictEqual({ captured: true, toPort, why });
    else if (why !== undefined) expect(trace).toStrictEqual({ captured: false, why });
    else expect(trace).toStrictEqual({ captured: false });
  });
});
