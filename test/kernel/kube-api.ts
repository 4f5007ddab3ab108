/**
 * Enough of the Kubernetes API for the CNI plugin's pod lookup: GET
 * /api/v1/namespaces/NS/pods/NAME answers the pod the test put there (404 Status
 * otherwise), only with the kubeconfig's bearer token. `stop()` and `start()` take
 * it down and bring it back.
 *
 * It listens on a Unix socket, and `forwardIn(ns)` serves that socket on
 * 127.0.0.1:PORT inside a network namespace of the test's: the plugin then runs
 * there, as every other test runs it, and never in this machine's own namespace
 * (where a bug of the plugin's could apply rules).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { execa } from 'execa';

export const TOKEN = 'mesh-init-test-token';

export interface TestPod {
  readonly annotations?: Record<string, string>;
  readonly labels?: Record<string, string>;
  readonly containers: readonly string[];
  readonly initContainers?: readonly string[];
}

export class KubeApi {
  readonly pods = new Map<string, TestPod>();
  /** Paths asked for, in order. */
  readonly requests: string[] = [];
  private server: Server | undefined;
  private dropping = 0;
  private readonly dir = mkdtempSync(`${tmpdir()}/mesh-init-kube-api-`);
  /** Where the server listens: a Unix socket, reached from any network namespace. */
  readonly socket = `${this.dir}/api.sock`;
  /** The port the forwarder serves the API on, on 127.0.0.1 of its namespace. */
  readonly port = 6443;
  private forwarder: { kill: () => void; exited: Promise<unknown> } | undefined;

  /** The next `count` requests get no answer: the connection is cut, as by a server going down. */
  dropNext(count: number): void {
    this.dropping = count;
  }

  private handle(
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
  ) {
    this.requests.push(req.url ?? '');
    if (this.dropping > 0) {
      this.dropping--;
      req.socket.destroy();
      return;
    }
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return reply(401, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: 'Unauthorized',
        code: 401,
      });
    }
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)/.exec(req.url ?? '');
    const pod = match ? this.pods.get(`${match[1]}/${match[2]}`) : undefined;
    if (match === null || pod === undefined) {
      return reply(404, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: `pods "${match?.[2]}" not found`,
        reason: 'NotFound',
        code: 404,
      });
    }
    const container = (name: string) => ({ name, image: 'example' });
    return reply(200, {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: {
        name: match[2],
        namespace: match[1],
        annotations: pod.annotations ?? {},
        labels: pod.labels ?? {},
      },
      spec: {
        containers: pod.containers.map(container),
        ...(pod.initContainers ? { initContainers: pod.initContainers.map(container) } : {}),
      },
    });
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    rmSync(this.socket, { force: true });
    await new Promise<void>((resolve) => server.listen(this.socket, resolve));
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Serves the API on 127.0.0.1:port inside network namespace `ns`: a small Node
   * forwarder there joins each connection to the Unix socket (a connection is cut
   * when the server is down, as with a server that went away).
   */
  async forwardIn(ns: string): Promise<void> {
    const code = `const net = require('node:net');
net.createServer((c) => {
  const u = net.connect(${JSON.stringify(this.socket)});
  u.on('error', () => c.destroy());
  c.on('error', () => u.destroy());
  c.pipe(u).pipe(c);
}).listen(${this.port}, '127.0.0.1', () => console.log('ready'));`;
    const child = execa('ip', ['netns', 'exec', ns, process.execPath, '-e', code], {
      reject: false,
    });
    this.forwarder = { kill: () => child.kill('SIGKILL'), exited: child.then(() => undefined) };
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (exit) => reject(new Error(`the API forwarder exited (${exit})`)));
    });
  }

  /** Stops the forwarder and the server, and removes the socket. */
  async dispose(): Promise<void> {
    this.forwarder?.kill();
    await this.forwarder?.exited;
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A kubeconfig for this server with the token. */
  writeKubeconfig(path: string): void {
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        // Plain HTTP on loopback: the client takes http:// only with TLS checks off.
        `- name: test\n  cluster:\n    server: http://127.0.0.1:${this.port}\n    insecure-skip-tls-verify: true`,
        'users:',
        `- name: test\n  user:\n    token: ${TOKEN}`,
        'contexts:',
        '- name: test\n  context:\n    cluster: test\n    user: test',
        'current-context: test',
        '',
      ].join('\n'),
    );
  }
}
