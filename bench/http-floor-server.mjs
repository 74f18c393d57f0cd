// The other process of bench/http-floor.ts: answers every HTTP request on the
// Unix socket named by its argument with a small JSON body, and tells its
// parent when it listens. Plain JavaScript, so no loader runs in it.
import http from 'node:http';

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('{"ok":true}'));
});
server.listen(process.argv[2], () => process.send?.('listening'));
process.on('disconnect', () => server.close(() => process.exit(0)));
