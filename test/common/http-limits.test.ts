// The connection limits of the HTTP servers, on a real server on loopback:
// head deadline, idle timeout, eviction at the cap, refusal when every slot is
// busy; and their settings.
import http from 'node:http';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultMaxConnections, type HttpLimits, httpLimitsFromEnv, limitConnections, sourceOf } from '../../common/http-limits.ts';
import { LogSummary } from '../../common/log-summary.ts';
import { connect, Received, sleep, waitFor } from '../helpers/net.ts';

const test = suite('HTTP connection limits');

const servers: http.Server[] = [];
const sockets: net.Socket[] = [];

test.after.each(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A server whose /hang requests are answered only when `release` is called. */
async function serve(limits: HttpLimits) {
  const hanging: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/hang') hanging.push(res);
    else res.end('ok');
  });
  servers.push(server);
  const counts = limitConnections(server, limits);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const open = async (localAddress?: string) => {
    const socket = await connect(port, { localAddress });
    sockets.push(socket);
    return { socket, received: new Received(socket) };
  };
  return {
    port,
    counts,
    open,
    release: () => {
      for (const res of hanging.splice(0)) res.end('released');
    },
  };
}

test('a connection that sends nothing, and one that trickles its head, are closed at the head deadline', async () => {
  const { open, counts } = await serve({ maxConnections: 10, headerTimeoutMs: 1000, idleTimeoutMs: 5000 });
  const started = Date.now();
  const silent = await open();
  const trickle = await open();
  const head = `GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(100)}\r\n\r\n`;
  let sent = 0;
  const drip = setInterval(() => trickle.socket.write(head[sent++]!), 100);
  try {
    await silent.received.untilClosed(3000);
    await trickle.received.untilClosed(3000);
  } finally {
    clearInterval(drip);
  }
  const held = Date.now() - started;
  assert.ok(held >= 900 && held < 2500, `held ${held} ms`);
  assert.is(counts.timedOut, 2);
});

test('a kept-alive connection is closed after the idle timeout, and may send its next request before', async () => {
  const { open } = await serve({ maxConnections: 10, headerTimeoutMs: 1000, idleTimeoutMs: 1000 });
  const client = await open();
  client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(500);
  client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await client.received.untilClosed(4000);
  assert.is(client.received.text().match(/HTTP\/1\.1 200/g)?.length, 2);
});

test('at the cap, the oldest connection that never sent a request makes room; a kept-alive one stays', async () => {
  const { open, counts } = await serve({ maxConnections: 3, headerTimeoutMs: 4000, idleTimeoutMs: 10_000 });
  const kept = await open();
  kept.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await kept.received.untilLength(10);
  const silentOld = await open();
  const silentNew = await open();
  await sleep(200);
  const newcomer = await open();
  newcomer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await newcomer.received.untilLength(10);
  await silentOld.received.untilClosed(1000);
  assert.not.ok(silentNew.received.closedByPeer, 'the younger silent connection stays');
  assert.not.ok(kept.received.closedByPeer, 'the kept-alive connection stays while silent ones remain');
  assert.is(counts.evicted, 1);
});

test('at the cap, a newcomer takes room from its own source first: a flood from one address that reconnects as fast as it is closed never closes a silent connection from another', async () => {
  const { open, counts } = await serve({ maxConnections: 10, headerTimeoutMs: 10_000, idleTimeoutMs: 10_000 });
  const silent = await open('127.0.0.1');
  for (let i = 0; i < 9; i++) await open('127.0.0.2');
  // 100 more from the flooding address, in bursts of 20: each closes one of its own.
  for (let burst = 0; burst < 5; burst++) await Promise.all(Array.from({ length: 20 }, () => open('127.0.0.2')));
  await waitFor(async () => counts.evicted >= 100, 5000, 'the server to accept the flood');
  await sleep(50);
  assert.is(counts.evicted, 100);
  assert.not.ok(silent.received.closedByPeer, 'the other address keeps its silent connection');
  silent.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await silent.received.untilLength(10);
  assert.match(silent.received.text(), /HTTP\/1\.1 200/);
  /** A newcomer from `address` that sends its request and is answered; then a moment for any close to arrive. */
  const answeredNewcomer = async (address: string) => {
    const newcomer = await open(address);
    newcomer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await newcomer.received.untilLength(10);
    await sleep(50);
  };
  // A newcomer from the address that now holds a kept-alive connection
  // takes a silent one of the flood's, not its own kept-alive one.
  await answeredNewcomer('127.0.0.1');
  assert.is(counts.evicted, 101);
  assert.not.ok(silent.received.closedByPeer, 'its own kept-alive connection stays while silent ones remain');
  // A newcomer from an address without idle connections takes the oldest
  // silent one overall (the flood's), not a kept-alive one.
  await answeredNewcomer('127.0.0.3');
  assert.is(counts.evicted, 102);
  assert.not.ok(silent.received.closedByPeer, 'the kept-alive connection stays while silent ones remain');
});

test('sources: an IPv4 address as it is, an IPv4-mapped one as IPv4, IPv6 by its /64', () => {
  assert.is(sourceOf('192.0.2.7'), '192.0.2.7');
  assert.is(sourceOf('::ffff:192.0.2.7'), '192.0.2.7');
  assert.is(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.is(sourceOf('2001:db8:1:2:bbbb::9'), '2001:db8:1:2::/64');
  assert.is.not(sourceOf('2001:db8:1:3::1'), sourceOf('2001:db8:1:2::1'));
  assert.is(sourceOf('::1'), '0:0:0:0::/64');
  assert.is(sourceOf(undefined), '');
});

test('when every slot holds a request in progress, a newcomer is closed at once and the requests complete', async () => {
  const { open, counts, release } = await serve({ maxConnections: 2, headerTimeoutMs: 1000, idleTimeoutMs: 5000 });
  const busy = [await open(), await open()];
  for (const b of busy) b.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(1500);
  const newcomer = await open();
  await newcomer.received.untilClosed(1000);
  assert.is(counts.refused, 1);
  release();
  for (const b of busy) await b.received.untilLength(10);
  assert.match(busy[0]!.received.text(), /released/);
});

test('settings: defaults, a quarter of the descriptor limit, and refusals naming the variable', () => {
  const defaults = httpLimitsFromEnv({});
  assert.is(defaults.headerTimeoutMs, 10_000);
  assert.is(defaults.idleTimeoutMs, 5000);
  assert.is(defaultMaxConnections(512), 128);
  assert.is(defaultMaxConnections(1_048_576), 4096);
  assert.is(defaultMaxConnections(Infinity), 4096);
  assert.is(httpLimitsFromEnv({ CCCP_HTTP_MAX_CONNECTIONS: '50' }).maxConnections, 50);
  for (const name of ['CCCP_HTTP_MAX_CONNECTIONS', 'CCCP_HTTP_HEADER_TIMEOUT_S', 'CCCP_HTTP_IDLE_TIMEOUT_S']) {
    assert.throws(() => httpLimitsFromEnv({ [name]: '0' }), new RegExp(name));
    assert.throws(() => httpLimitsFromEnv({ [name]: 'x' }), new RegExp(name));
  }
});

test('log summaries: the first lines of an interval in full, the rest as one line with the count, first and last', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const summary = new LogSummary(pino({ level: 'info' }, sink), 300, 3);
  for (let i = 0; i < 100; i++) summary.warn({ n: i }, 'refused');
  summary.info({ n: 0 }, 'other');
  await sleep(500);
  for (let i = 0; i < 2; i++) summary.warn({ n: 100 + i }, 'refused');
  summary.close();
  await sleep(50);
  const refused = lines.filter((l) => l.msg === 'refused');
  const summaries = lines.filter((l) => l.summary === 'refused');
  assert.is(refused.length, 5, 'three in the first interval, two in the next');
  assert.is(summaries.length, 1);
  assert.is(summaries[0]!.count, 97);
  assert.is((summaries[0]!.first as { n: number }).n, 3);
  assert.is((summaries[0]!.last as { n: number }).n, 99);
  assert.is(lines.filter((l) => l.msg === 'other').length, 1);
});

test.run();
