/**
 * Enough of the Kubernetes API for the CNI plugin's pod lookup, on loopback: GET
 * /api/v1/namespaces/NS/pods/NAME answers the pod the test put there (404 Status
 * otherwise), only with the kubeconfig's bearer token. `stop()` and `start()` take
 * it down and bring it back on the same port.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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
  port = 0;

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
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
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
