import { readFile } from 'node:fs/promises';
import { createServer, type Server, Socket } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Family } from '../config/net.js';

export interface ValidationResult {
  readonly ok: boolean;
  readonly detail: string;
}

/** One probe connection, and the port the rules should send it to. */
export interface Probe {
  readonly family: Family;
  /** Bound before connecting; otherwise the kernel picks the source. */
  readonly source?: string;
  readonly destination: string;
  readonly port: number;
  readonly landingPort: number;
  readonly timeoutMs: number;
}

export type ProbeOutcome =
  | { readonly kind: 'landed'; readonly detail: string }
  /** connect() found no route (ENETUNREACH): nothing was sent, another address may do. */
  | { readonly kind: 'no route'; readonly detail: string }
  | { readonly kind: 'failed'; readonly detail: string };

/** The address REDIRECT sends a locally made connection to. */
const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.1', ipv6: '::1' };
/** How long after connecting the connection may take to show up on the landing port. */
const LANDING_WINDOW_MS = 1000;
const POLL_MS = 5;

const endpoint = (address: string, port: number) =>
  address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

/** `/proc/net/tcp` prints addresses as the kernel holds them: 32-bit words in host order. */
function procAddress(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return undefined;
  const bytes: number[] = [];
  for (let word = 0; word < hex.length; word += 8) {
    const value = Number.parseInt(hex.slice(word, word + 8), 16);
    // Little-endian hosts (x86, arm64) print each word with its bytes reversed.
    bytes.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
  }
  return ipaddr.fromByteArray(bytes).toString();
}

const same = (a: string, b: string) =>
  ipaddr.process(a).toNormalizedString() === ipaddr.process(b).toNormalizedString();

/**
 * In `/proc/net/tcp` or `tcp6` text: a socket on `port` whose peer is `from`, that
 * is, the far end of the probe connection, accepted on that port, with its owner's
 * UID while it has one; undefined when there is no such socket. A dual-stack
 * listener's IPv4 peers are IPv4-mapped there.
 */
export function findAccepted(
  procText: string,
  port: number,
  from: { address: string; port: number },
): { uid?: number } | undefined {
  for (const line of procText.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [localAddress, localPort] = (fields[1] ?? '').split(':');
    const [remoteAddress, remotePort] = (fields[2] ?? '').split(':');
    if (localAddress === undefined || remoteAddress === undefined) continue;
    if (Number.parseInt(localPort ?? '', 16) !== port) continue;
    if (Number.parseInt(remotePort ?? '', 16) !== from.port) continue;
    const peer = procAddress(remoteAddress);
    if (peer === undefined || !same(peer, from.address)) continue;
    // Once its owner closed it (TIME_WAIT, or FIN_WAIT2 of a closed socket) the kernel
    // keeps a bare entry: inode 0, uid 0, no owner to name.
    return fields[9] === '0' ? {} : { uid: Number(fields[7]) };
  }
  return undefined;
}

/** The sockets of this network namespace, both families. */
async function readTcpTables(): Promise<string> {
  const texts = await Promise.all(
    ['/proc/net/tcp', '/proc/net/tcp6'].map((file) => readFile(file, 'utf8').catch(() => '')),
  );
  return texts.join('\n');
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve());
  });
}

/** Who will tell whether the probe landed: this validation's own listener, or the one already there. */
type Landing =
  | { readonly listener: 'own'; readonly accepted: Set<string> }
  | { readonly listener: 'foreign' };

async function openLanding(
  probe: Probe,
  server: Server,
  accepted: Set<string>,
): Promise<Landing | ProbeOutcome> {
  const at = endpoint(LOOPBACK[probe.family], probe.landingPort);
  try {
    await listen(server, LOOPBACK[probe.family], probe.landingPort);
    return { listener: 'own', accepted };
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    // A proxy already running: it answers instead, and /proc tells where the probe went.
    if (code === 'EADDRINUSE') return { listener: 'foreign' };
    return { kind: 'failed', detail: `cannot listen on ${at}: ${message}` };
  }
}

async function landed(
  probe: Probe,
  landing: Landing,
  from: { address: string; port: number },
  readTables: () => Promise<string>,
): Promise<{ uid?: number } | undefined> {
  if (landing.listener === 'own') {
    return landing.accepted.has(endpoint(from.address, from.port)) ? {} : undefined;
  }
  return findAccepted(await readTables(), probe.landingPort, from);
}

function describeLanding(probe: Probe, landing: Landing, found: { uid?: number }): string {
  const port = `port ${probe.landingPort}`;
  if (landing.listener === 'own') return `${port} (this validation's listener)`;
  const owner =
    found.uid === undefined ? 'it answered and closed the connection' : `uid ${found.uid}`;
  return `${port}, where a listener was already running (${owner}; the port was in use, so the validation listened on none)`;
}

/**
 * Connects as `probe` says and tells whether this very connection — matched by
 * its source address and port — was accepted on the landing port. Node cannot
 * read SO_ORIGINAL_DST, so it is matched by source, not by original destination.
 * The listener on the landing port is bound for the probe only and closed again;
 * when the port is taken (a proxy already running), the accepted socket is looked
 * up in /proc/net/tcp instead. Settles within `timeoutMs`.
 */
export async function probeConnection(
  probe: Probe,
  readTables: () => Promise<string> = readTcpTables,
): Promise<ProbeOutcome> {
  const accepted = new Set<string>();
  const server = createServer((socket) => {
    if (socket.remoteAddress !== undefined && socket.remotePort !== undefined) {
      accepted.add(endpoint(socket.remoteAddress, socket.remotePort));
    }
    socket.destroy();
  });
  const client = new Socket();
  const timers: NodeJS.Timeout[] = [];
  try {
    const landing = await openLanding(probe, server, accepted);
    if ('kind' in landing) return landing;
    const target = endpoint(probe.destination, probe.port);
    const inUse =
      landing.listener === 'foreign'
        ? `; port ${probe.landingPort} is in use by another listener, which did not get it`
        : '';
    return await new Promise<ProbeOutcome>((resolve) => {
      let settled = false;
      const finish = (outcome: ProbeOutcome) => {
        settled = true;
        resolve(outcome);
      };
      timers.push(
        setTimeout(
          () =>
            finish({
              kind: 'failed',
              detail: `no answer from ${target} within ${probe.timeoutMs} ms: not redirected to port ${probe.landingPort}${inUse}`,
            }),
          probe.timeoutMs,
        ),
      );
      client.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENETUNREACH') {
          finish({ kind: 'no route', detail: `no route to ${probe.destination}` });
        } else if (error.code === 'ECONNREFUSED') {
          finish({
            kind: 'failed',
            detail: `${target} refused the connection: it was not redirected to port ${probe.landingPort}${inUse}`,
          });
        } else {
          finish({
            kind: 'failed',
            detail: `connecting to ${target} failed (${error.message}): not redirected to port ${probe.landingPort}${inUse}`,
          });
        }
      });
      const options = {
        host: probe.destination,
        port: probe.port,
        family: probe.family === 'ipv4' ? 4 : 6,
        ...(probe.source === undefined ? {} : { localAddress: probe.source }),
      };
      client.connect(options, () => {
        const from = { address: client.localAddress ?? '', port: client.localPort ?? 0 };
        const started = Date.now();
        const poll = async () => {
          if (settled) return;
          const found = await landed(probe, landing, from, readTables);
          if (found !== undefined) {
            finish({
              kind: 'landed',
              detail: `${endpoint(from.address, from.port)} → ${target} was accepted on ${describeLanding(probe, landing, found)}`,
            });
          } else if (Date.now() - started > LANDING_WINDOW_MS) {
            finish({
              kind: 'failed',
              detail: `${target} answered, but not on port ${probe.landingPort}: not redirected${inUse}`,
            });
          } else if (!settled) {
            timers.push(setTimeout(poll, POLL_MS));
          }
        };
        void poll();
      });
    });
  } finally {
    for (const timer of timers) clearTimeout(timer);
    client.destroy();
    if (server.listening) server.close();
  }
}
