// The bench's "node" target: the least a Node process can do to forward TCP,
// as a floor under the proxy's figures. One listener (the port in argv[2]);
// every accepted client gets a connection to the backend port in argv[3], and
// the two are piped both ways. No sessions, no registration, no counters, no
// metrics, no control API. Plain JavaScript, so no loader runs in it.
import net from 'node:net';

const [front, backend] = process.argv.slice(2).map(Number);
const server = net.createServer({ noDelay: true }, (client) => {
  const device = net.connect({ port: backend, host: '127.0.0.1', noDelay: true });
  client.on('error', () => device.destroy());
  device.on('error', () => client.destroy());
  client.pipe(device).pipe(client);
});
server.listen({ port: front, host: '127.0.0.1', backlog: 4096 }, () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
