// The proxy's DNS server, as small as it can be: `node dns-server.mjs ADDRESS PORT`
// listens on 127.0.0.1:PORT (loopback only, as Istio's proxy does: a query
// redirected there is answered from the address NAT expects) and answers every A
// question with ADDRESS, any other type with no records. It logs each query, so a
// test can tell that it, and not Docker's DNS, answered.
// Plain Node, no dependencies: it is copied into a container of the mesh-init image.
import dgram from 'node:dgram';

const [answer = '192.0.2.15', port = '15053'] = process.argv.slice(2);
const address = answer.split('.').map(Number);

/** The question's name (labels joined by dots) and where the question ends. */
function readQuestion(query) {
  const labels = [];
  let offset = 12;
  while (offset < query.length && query[offset] !== 0) {
    const length = query[offset];
    labels.push(query.subarray(offset + 1, offset + 1 + length).toString('latin1'));
    offset += length + 1;
  }
  return { name: labels.join('.'), type: query.readUInt16BE(offset + 1), end: offset + 5 };
}

const server = dgram.createSocket('udp4');
server.on('message', (query, peer) => {
  if (query.length < 17) return;
  const { name, type, end } = readQuestion(query);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // the query's id
  header.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
  header.writeUInt16BE(1, 4); // one question
  header.writeUInt16BE(type === 1 ? 1 : 0, 6); // one answer for an A question
  // A pointer to the question's name, type A, class IN, TTL 0, 4 bytes of address.
  const record =
    type === 1
      ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, ...address])
      : Buffer.alloc(0);
  server.send(Buffer.concat([header, query.subarray(12, end), record]), peer.port, peer.address);
  console.log(`query ${name} type ${type} from ${peer.address}:${peer.port}`);
});
server.bind(Number(port), '127.0.0.1', () => {
  console.log(`dns-server listening on 127.0.0.1:${port} as uid ${process.getuid?.()}`);
});

process.on('SIGTERM', () => process.exit(0));
