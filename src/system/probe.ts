import { createServer, type Server, Socket } from 'node:net';
import type { Config } from '../config/config.js';

export interface ValidationResult {
  readonly ok: boolean;
  readonly detail: string;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => resolve());
  });
}

/**
 * Proves the outbound capture in this namespace: listen on the proxy port as the
 * proxy would, connect to the probe address (which nothing serves) as a non-proxy
 * identity, and check that this very connection — matched by its source port —
 * was accepted on the proxy port. Node cannot read SO_ORIGINAL_DST, so the match
 * is by the connection's source port rather than by the original destination.
 */
export async function validateRedirect(
  config: Config,
  identity: { uid: number; gid: number },
): Promise<ValidationResult> {
  if (config.proxyUids.includes(identity.uid) || config.proxyGids.includes(identity.gid)) {
    return {
      ok: false,
      detail: `mesh-init runs as uid ${identity.uid} gid ${identity.gid}, a proxy identity whose traffic is never redirected, so it cannot probe the capture`,
    };
  }
  const { address, port, timeoutMs } = config.probe;
  const target = `${address}:${port}`;
  const accepted = new Set<number>();
  const server = createServer((socket) => {
    if (socket.remotePort !== undefined) accepted.add(socket.remotePort);
    socket.destroy();
  });
  try {
    await listen(server, config.proxyPort);
  } catch (error) {
    return {
      ok: false,
      detail: `cannot listen on the proxy port ${config.proxyPort}: ${(error as Error).message}`,
    };
  }
  const client = new Socket();
  try {
    return await new Promise<ValidationResult>((resolve) => {
      const timer = setTimeout(
        () => resolve({ ok: false, detail: `no answer from ${target} within ${timeoutMs} ms` }),
        timeoutMs,
      );
      const finish = (result: ValidationResult) => {
        clearTimeout(timer);
        resolve(result);
      };
      client.once('error', (error) =>
        finish({
          ok: false,
          detail: `connecting to ${target} failed (${error.message}): it was not redirected to port ${config.proxyPort}`,
        }),
      );
      client.connect({ host: address, port }, () => {
        const source = client.localPort;
        // The server may see the connection a moment after the client does.
        const poll = setInterval(() => {
          if (source !== undefined && accepted.has(source)) {
            clearInterval(poll);
            finish({
              ok: true,
              detail: `a connection to ${target} from port ${source} landed on the proxy port ${config.proxyPort}`,
            });
          }
        }, 5);
        client.once('close', () => {
          setTimeout(() => {
            clearInterval(poll);
            finish({
              ok: false,
              detail: `${target} answered, but not through the proxy port ${config.proxyPort}`,
            });
          }, 50);
        });
      });
    });
  } finally {
    client.destroy();
    server.close();
  }
}
