// What an app in the pod does, with a JSON answer the test can compare:
//   node probe.mjs lookup NAME     resolves NAME to IPv4 through the C library
//                                  (getaddrinfo, so /etc/resolv.conf), as apps do:
//                                  {"addresses": [...]} or {"error": "EAI_AGAIN"}
//   node probe.mjs read HOST PORT  connects over TCP and prints the first line the
//                                  server sends (a JSON report), or {"error": ...}
// Plain Node, no dependencies: it is copied into a container of the mesh-init image.
import { lookup } from 'node:dns';
import net from 'node:net';

const [command, ...args] = process.argv.slice(2);
const print = (value) => console.log(JSON.stringify(value));

if (command === 'lookup') {
  lookup(args[0] ?? '', { family: 4, all: true }, (err, found) => {
    if (err) print({ error: err.code ?? err.message });
    else print({ addresses: found.map((entry) => entry.address).sort() });
  });
} else if (command === 'read') {
  const socket = net.connect({ host: args[0], port: Number(args[1]) });
  let data = '';
  socket.setEncoding('utf8');
  socket.setTimeout(5_000, () => {
    print({ error: 'timed out after 5 s' });
    socket.destroy();
  });
  socket.on('data', (chunk) => {
    data += chunk;
    const end = data.indexOf('\n');
    if (end < 0) return;
    console.log(data.slice(0, end));
    socket.destroy();
  });
  socket.on('end', () => {
    if (!data.includes('\n')) print({ error: 'closed without a report' });
  });
  socket.on('error', (err) => print({ error: `${err.code ?? ''} ${err.message}`.trim() }));
} else {
  console.error('usage: node probe.mjs lookup NAME | read HOST PORT');
  process.exit(2);
}
