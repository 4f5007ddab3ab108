// The app of the walkthrough (its gcr.io echoserver): answers every request on
// 8080 with what it received, headers included, in the same `name=value` lines,
// so `grep x-request-id` on the response works as the walkthrough's does.
// Plain Node, no dependencies: it is copied into a container of the mesh-init image.
import http from 'node:http';

const port = Number(process.env.APP_PORT ?? 8080);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = Object.entries(req.headers)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => `${name}=${value}`);
    const text = [
      'CLIENT VALUES:',
      `client_address=${req.socket.remoteAddress}`,
      `method=${req.method}`,
      `real path=${req.url}`,
      `request_version=${req.httpVersion}`,
      '',
      'SERVER VALUES:',
      `server_address=${req.socket.localAddress}:${req.socket.localPort}`,
      '',
      'HEADERS RECEIVED:',
      ...headers,
      'BODY:',
      body === '' ? '-no body in request-' : body,
      '',
    ].join('\n');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(text);
  });
});

// No host: listen on every address of the pod, IPv6 too when the pod has it, as an app does.
server.listen(port, () => {
  console.log(`echo-server listening on ${port}`);
});

// PID 1 gets no default SIGTERM handling.
process.on('SIGTERM', () => process.exit(0));
