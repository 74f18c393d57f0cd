// Reads into reused buffers (proxy-pod/read-buffers.ts): what Node must do
// for them to be safe, an accepted socket that still behaves as a socket
// until a sink takes its bytes, buffers kept by a write that are never read
// into again, and two sessions' bulk transfers that stay byte-exact while one
// receiver is slow.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { adoptReads, readsIntoOwnBuffers, setReadSink } from '../../proxy-pod/read-buffers.ts';
import { MiB, receiveHashed, sendHashed } from '../helpers/bulk.ts';
import { freePortRange, waitFor } from '../helpers/net.ts';
import { joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('read buffers');

let proxy: TestProxy | undefined;
const sockets: net.Socket[] = [];
const servers: net.Server[] = [];

test.after(async () => {
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
  await proxy?.stop();
});

/** A server whose accepted sockets go through adoptReads, and a client connected to it. */
async function adoptedPair(): Promise<{ accepted: net.Socket; client: net.Socket }> {
  let accepted: net.Socket | undefined;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    accepted = adoptReads(socket);
    sockets.push(accepted);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  sockets.push(client);
  await new Promise((resolve) => client.once('connect', resolve));
  await waitFor(() => accepted !== undefined, 2000, 'the accepted socket');
  return { accepted: accepted!, client };
}

function written(socket: net.Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

test("this Node asks onread's buffer function for a buffer after every read (a kept buffer is never read into again)", async () => {
  // Each piece goes out once the one before was read, so no two share a read.
  const pieces = ['a', 'bb', 'ccc'];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.write(pieces[0]!);
    let sent = 1;
    socket.on('data', () => {
      if (sent < pieces.length) socket.write(pieces[sent++]!);
      if (sent === pieces.length) socket.end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const buffers = [Buffer.alloc(16), Buffer.alloc(16)];
  let asked = 0;
  const reads: Array<{ text: string; into: number }> = [];
  const client = net.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    onread: {
      buffer: () => buffers[asked++ % 2]!,
      callback: (length, buffer) => {
        reads.push({ text: buffer.subarray(0, length).toString(), into: buffers.findIndex((b) => b.buffer === buffer.buffer) });
        client.write('.');
        return true;
      },
    },
  });
  sockets.push(client);
  await new Promise((resolve) => client.once('end', resolve).resume());
  assert.equal(
    reads.map((r) => r.text),
    ['a', 'bb', 'ccc'],
  );
  assert.is(asked, reads.length + 1, 'once when the socket is made, then after each read');
  assert.equal(
    reads.map((r) => r.into),
    [0, 1, 0],
    'each read goes into the buffer handed out after the one before',
  );
});

test('an adopted socket without a sink is an ordinary socket: data, pause, unshift, end', async () => {
  const { accepted, client } = await adoptedPair();
  assert.ok(readsIntoOwnBuffers(accepted));
  const got: string[] = [];
  accepted.once('data', (chunk: Buffer) => {
    accepted.pause();
    accepted.unshift(chunk.subarray(2));
    got.push(chunk.subarray(0, 2).toString());
    setTimeout(() => accepted.on('data', (c: Buffer) => got.push(c.toString())).resume(), 20);
  });
  const ended = new Promise((resolve) => accepted.once('end', resolve));
  client.end('hello');
  await ended;
  assert.is(got.join(''), 'hello');
  // allowHalfOpen came along: the adopted socket still writes after the peer's FIN.
  const answer = new Promise<string>((resolve) => {
    let text = '';
    client.on('data', (c: Buffer) => (text += c)).once('end', () => resolve(text));
  });
  accepted.end('bye');
  assert.is(await answer, 'bye');
});

test('a chunk the sink kept stays as it was read; bulk reads reach the sink without a copy', async () => {
  // Two sockets at once, small writes and bulk ones: reads land in the shared
  // buffer and in own ones. The sink keeps every third chunk as a write that
  // did not finish would, and only looks at it at the end.
  const sources = [await adoptedPair(), await adoptedPair()];
  const chunks: Array<Buffer[]> = [[], []];
  let calls = 0;
  const seen = new Map<ArrayBufferLike, number>();
  sources.forEach(({ accepted }, i) => {
    setReadSink(accepted, (chunk) => {
      calls += 1;
      seen.set(chunk.buffer, (seen.get(chunk.buffer) ?? 0) + 1);
      const keep = calls % 3 === 0;
      chunks[i]!.push(keep ? chunk : Buffer.from(chunk));
      return keep;
    });
    accepted.resume();
  });
  const sent = [createHash('sha256'), createHash('sha256')];
  const total = [0, 0];
  await Promise.all(
    sources.map(async ({ client }, i) => {
      for (let round = 0; round < 8; round++) {
        for (let k = 0; k < 64; k++) {
          const small = Buffer.alloc(1000 + k, (round * 64 + k + i) % 251);
          sent[i]!.update(small);
          total[i]! += small.length;
          await written(client, small);
          await new Promise((resolve) => setImmediate(resolve));
        }
        for (let k = 0; k < 4; k++) {
          const bulk = Buffer.alloc(MiB, (round + k + 7 * i) % 251);
          sent[i]!.update(bulk);
          total[i]! += bulk.length;
          await written(client, bulk);
        }
      }
    }),
  );
  const received = (i: number) => chunks[i]!.reduce((n, c) => n + c.length, 0);
  await waitFor(() => received(0) === total[0] && received(1) === total[1], 10_000, 'every byte at the sinks');
  for (const i of [0, 1]) {
    const hash = createHash('sha256');
    for (const chunk of chunks[i]!) hash.update(chunk);
    assert.is(hash.digest('hex'), sent[i]!.digest('hex'), `socket ${i}: bytes differ (a kept chunk was overwritten)`);
  }
  // A read buffer (64 KiB) that served several reads: bytes the sink got without a copy.
  const reused = [...seen].filter(([buffer, reads]) => buffer.byteLength === 64 * 1024 && reads > 1).length;
  assert.ok(reused > 0, `no read buffer served two reads: every read was copied (${calls} reads)`);
});

test('two sessions at once, one receiver slow: both byte-exact each way', async () => {
  proxy = await startProxy();
  const { min } = await freePortRange(2);
  const pairs = [
    await joinPair(proxy.admin, proxy.pod.devicePort, 'BUFFERS-SLOW', { port: min, persistent: true }),
    await joinPair(proxy.admin, proxy.pod.devicePort, 'BUFFERS-FAST', { port: min + 1, persistent: true }),
  ];
  for (const { client, device } of pairs) sockets.push(client, device);
  const [slow, fast] = pairs as [(typeof pairs)[0], (typeof pairs)[0]];
  const each = 24 * MiB;
  const [toSlowClient, atSlowClient, toSlowDevice, atSlowDevice, toFastClient, atFastClient, toFastDevice, atFastDevice] =
    await Promise.all([
      sendHashed(slow.device, each),
      receiveHashed(slow.client, each, { bytesPerSecond: 12 * MiB }),
      sendHashed(slow.client, each),
      receiveHashed(slow.device, each, { bytesPerSecond: 12 * MiB }),
      sendHashed(fast.device, each),
      receiveHashed(fast.client, each),
      sendHashed(fast.client, each),
      receiveHashed(fast.device, each),
    ]);
  assert.is(atSlowClient, toSlowClient, 'slow session: device → client bytes differ');
  assert.is(atSlowDevice, toSlowDevice, 'slow session: client → device bytes differ');
  assert.is(atFastClient, toFastClient, 'fast session: device → client bytes differ');
  assert.is(atFastDevice, toFastDevice, 'fast session: client → device bytes differ');
});

test.run();
