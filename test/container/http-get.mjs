// The walkthrough's `curl` for the test: `node http-get.mjs URL [USER-AGENT]`.
// Prints {status, body} as JSON and exits 0 on any HTTP answer; on a connection
// error prints {error} and exits 1. Names resolve to IPv4 only unless
// MESH_TEST_FAMILY=6, so `localhost` means 127.0.0.1: the loopback the IPv4
// rules must leave alone.
// Plain Node, no dependencies: it is copied into a container of the mesh-init image.
import http from 'node:http';

const [url, userAgent = 'mesh-init-test'] = process.argv.slice(2);
const family = process.env.MESH_TEST_FAMILY === '6' ? 6 : 4;
if (url === undefined) {
  console.error('usage: node http-get.mjs URL [USER-AGENT]');
  process.exit(2);
}

const req = http.get(
  url,
  { family, headers: { 'user-agent': userAgent }, timeout: 10_000 },
  (res) => {
    const chunks = [];
    res.on('data', (chunk) => chunks.push(chunk));
    res.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      console.log(JSON.stringify({ status: res.statusCode, body }));
    });
  },
);
req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
req.on('error', (err) => {
  console.log(JSON.stringify({ error: `${err.code ?? ''} ${err.message}`.trim() }));
  process.exit(1);
});
