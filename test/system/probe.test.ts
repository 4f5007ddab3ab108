/**
 * probeConnection's mechanics on 127.0.0.1 alone, with no rules (never any in this
 * machine's own namespace): a probe sent straight to the landing port stands in for
 * one the rules redirected there. Redirected probes, routes and timeouts are proven
 * in test/kernel/validation.test.ts, inside network namespaces.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { findAccepted, type Probe, probeConnection } from '../../src/system/probe.js';

/** Real /proc/net/tcp and tcp6 lines of a redirected probe (uid 1337, port 15006). */
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:3A9E 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 116111 1 00000000111b7231 100 0 0 10 0
   1: 0100007F:8C6D 0600007F:3A9A 01 00000000:00000000 00:00000000 00000000  1337        0 116112 2 0000000027604864 20 0 0 10 -1
   2: 0100007F:3A9E 0100007F:8C6D 01 00000000:00000000 00:00000000 00000000  1337        0 116113 1 000000003050485b 20 0 0 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:3A9E 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 116130 1 000000005ca80991 100 0 0 10 0
   1: 00000000000000000000000001000000:3A9E 00000000000000000000000001000000:A09B 01 00000000:00000000 00:00000000 00000000  1337        0 116132 1 00000000f5398955 20 0 0 10 -1
   2: 00000000000000000000000001000000:A09B 00000000000000000000000006000000:3A9A 01 00000000:00000000 00:00000000 00000000  1337        0 116131 2 00000000144139ce 20 0 0 10 -1
   3: 0000000000000000FFFF00000100007F:3A9E 0000000000000000FFFF00000100007F:9C40 06 00000000:00000000 03:0000175A 00000000     0        0 0 3 00000000d06e7192
`;

describe('findAccepted', () => {
  it.each<
    [string, string, number, { address: string; port: number }, { uid?: number } | undefined]
  >([
    [
      'IPv4: the accepted end of 127.0.0.1:35949',
      TCP,
      15006,
      { address: '127.0.0.1', port: 35949 },
      { uid: 1337 },
    ],
    ['IPv4: another source port', TCP, 15006, { address: '127.0.0.1', port: 35950 }, undefined],
    ['IPv4: another source address', TCP, 15006, { address: '10.0.0.1', port: 35949 }, undefined],
    ['IPv4: another landing port', TCP, 15001, { address: '127.0.0.1', port: 35949 }, undefined],
    [
      'IPv6: the accepted end of [::1]:41115',
      TCP6,
      15006,
      { address: '::1', port: 41115 },
      { uid: 1337 },
    ],
    [
      'a dual-stack listener: IPv4-mapped, closed already (TIME_WAIT: no owner)',
      TCP6,
      15006,
      { address: '127.0.0.1', port: 40000 },
      {},
    ],
    [
      'no sockets',
      TCP.split('\n')[0] ?? '',
      15006,
      { address: '127.0.0.1', port: 35949 },
      undefined,
    ],
    [
      'not /proc text',
      'garbage\nmore garbage here',
      15006,
      { address: '127.0.0.1', port: 1 },
      undefined,
    ],
  ])('%s', (_name, text, port, from, expected) => {
    expect(findAccepted(text, port, from)).toEqual(expected);
  });
});

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function serve(port = 0): Promise<number> {
  const server = createServer((socket) => socket.on('error', () => {}));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen({ port, host: '127.0.0.1' }, resolve));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

const probe = (port: number, landingPort: number): Probe => ({
  family: 'ipv4',
  source: '127.0.0.1',
  destination: '127.0.0.1',
  port,
  landingPort,
  timeoutMs: 3000,
});

describe('probeConnection', () => {
  it('lands on its own listener, matched by source port, and releases the port', async () => {
    const port = await freePort();
    const outcome = await probeConnection(probe(port, port));
    expect(outcome.kind).toBe('landed');
    expect(outcome.detail).toMatch(
      new RegExp(
        `^127\\.0\\.0\\.1:\\d+ → 127\\.0\\.0\\.1:${port} was accepted on port ${port} \\(this validation's listener\\)$`,
      ),
    );
    // Released: the port can be bound again at once.
    expect(await serve(port)).toBe(port);
  });

  it('a refused connection was not redirected', async () => {
    const [to, landing] = [await freePort(), await freePort()];
    const outcome = await probeConnection(probe(to, landing));
    expect(outcome).toEqual({
      kind: 'failed',
      detail: `127.0.0.1:${to} refused the connection: it was not redirected to port ${landing}`,
    });
  });

  it('a connection answered elsewhere was not redirected', async () => {
    const [to, landing] = [await serve(), await freePort()];
    const outcome = await probeConnection(probe(to, landing));
    expect(outcome).toEqual({
      kind: 'failed',
      detail: `127.0.0.1:${to} answered, but not on port ${landing}: not redirected`,
    });
  });

  it('a landing port already in use: the listener there answers, and /proc shows it got the probe', async () => {
    const taken = await serve();
    const outcome = await probeConnection(probe(taken, taken));
    expect(outcome.kind).toBe('landed');
    expect(outcome.detail).toContain(
      `was accepted on port ${taken}, where a listener was already running (uid ${process.getuid?.()}; the port was in use, so the validation listened on none)`,
    );
  });

  it('a landing port in use by a listener that did not get the probe: said so', async () => {
    const [to, taken] = [await serve(), await serve()];
    const outcome = await probeConnection(probe(to, taken));
    expect(outcome).toEqual({
      kind: 'failed',
      detail: `127.0.0.1:${to} answered, but not on port ${taken}: not redirected; port ${taken} is in use by another listener, which did not get it`,
    });
  });
});
