// A stand-in for the Envoy sidecar, just enough for the walkthrough's checks.
// Runs as the proxy UID (1337) and listens on the port that mesh-init redirects
// to (15001 for both directions with `-p 15001`). Per request it:
//  - tells inbound from outbound by the address the connection was redirected
//    to: REDIRECT in PREROUTING (inbound) rewrites the destination to the pod's
//    own address, REDIRECT in OUTPUT (outbound) to 127.0.0.1 (::1 for IPv6);
//  - adds an x-request-id when the request has none, as Envoy does;
//  - forwards: inbound to the app on 127.0.0.1:8080; outbound to the Host
//    header's service, resolved by DNS in the family the app used, on the app
//    port 8080, as a Kubernetes
//    Service's targetPort would (Node cannot read SO_ORIGINAL_DST);
//  - writes one access-log line to stdout in the shape of Envoy's default log,
//    as in the walkthrough:
//    [time] "GET / HTTP/1.1" 200 - 0 398 3 3 "-" "curl/7.47.0" "<x-request-id>" "<authority>" "<upstream>"
// Plain Node, no dependencies: it is copied into a container of the mesh-init image.
import { randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import http from 'node:http';

const proxyPort = Number(process.env.PROXY_PORT ?? 15001);
const appPort = Number(process.env.APP_PORT ?? 8080);

const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'];

/** The address as the kernel sees it: a dual-stack socket shows IPv4 as ::ffff:a.b.c.d. */
function plain(address) {
  return address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
}

function isLoopback(address) {
  return address.startsWith('127.') || address === '::1';
}

function quoted(value) {
  return `"${value === undefined || value === '' ? '-' : value}"`;
}

function accessLog(entry) {
  const { start, req, status, flags, received, sent, upstreamTime, requestId, upstream } = entry;
  const line = [
    `[${new Date(start).toISOString()}]`,
    `"${req.method} ${req.url} HTTP/${req.httpVersion}"`,
    status,
    flags,
    received,
    sent,
    Date.now() - start,
    upstreamTime ?? '-',
    quoted(req.headers['x-forwarded-for']),
    quoted(req.headers['user-agent']),
    quoted(requestId),
    quoted(req.headers.host),
    quoted(upstream),
  ].join(' ');
  process.stdout.write(`${line}\n`);
}

function hostPort(host, port) {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

async function upstreamFor(req) {
  const local = plain(req.socket.localAddress ?? '');
  if (!isLoopback(local)) return { host: '127.0.0.1', port: appPort };
  // Outbound: the Service behind the Host header, in the family the app used.
  const service = (req.headers.host ?? '').replace(/:\d+$/, '');
  const family = local.includes(':') ? 6 : 4;
  const { address } = await lookup(service, { family });
  return { host: address, port: appPort };
}

const server = http.createServer(async (req, res) => {
  const start = Date.now();
  const requestId = req.headers['x-request-id'] || randomUUID();
  let received = 0;
  req.on('data', (chunk) => {
    received += chunk.length;
  });

  const fail = (flags, upstream) => {
    const body = `upstream connect error (${flags})\n`;
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end(body);
    accessLog({ start, req, status: 503, flags, received, sent: body.length, requestId, upstream });
  };

  let upstream;
  try {
    upstream = await upstreamFor(req);
  } catch {
    fail('NR');
    return;
  }
  const target = hostPort(upstream.host, upstream.port);

  const headers = { ...req.headers, 'x-request-id': requestId };
  for (const name of hopByHop) delete headers[name];

  const forward = http.request(
    { host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers },
    (upRes) => {
      const upstreamTime = Date.now() - start;
      const resHeaders = { ...upRes.headers };
      for (const name of hopByHop) delete resHeaders[name];
      res.writeHead(upRes.statusCode ?? 502, resHeaders);
      let sent = 0;
      upRes.on('data', (chunk) => {
        sent += chunk.length;
      });
      upRes.on('end', () => {
        accessLog({
          start,
          req,
          status: upRes.statusCode,
          flags: '-',
          received,
          sent,
          upstreamTime,
          requestId,
          upstream: target,
        });
      });
      upRes.pipe(res);
    },
  );
  forward.on('error', () => fail('UF', target));
  req.pipe(forward);
});

// Every address of both families (Node falls back to IPv4 alone where IPv6 is off):
// inbound arrives on the pod's IP, outbound on 127.0.0.1 or ::1.
server.listen(proxyPort, () => {
  console.log(`test-proxy listening on ${proxyPort} as uid ${process.getuid?.()}`);
});

process.on('SIGTERM', () => process.exit(0));
