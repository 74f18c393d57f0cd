// GET /v1/changes over real HTTP: strict query validation, what each kind of
// change puts in the feed (puts, connects, moved counters, removals), paging,
// a cursor of another instance, counter entries for a reader that asks for
// them, and events carrying the session's state.
import http from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminError, ChangeBatch, ProxyEvent } from '../../common/admin-protocol.ts';
import { connect, connectDevice, freePorts, Received, sleep, waitFor } from '../helpers/net.ts';
import { joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('change feed API');
let proxy: TestProxy;
const cleanup: Array<() => unknown> = [];

test.before(async () => {
  proxy = await startProxy();
});

test.after(async () => {
  for (const fn of cleanup.splice(0)) await fn();
  await proxy.stop();
});

async function changes(query: string): Promise<ChangeBatch> {
  const answer = await proxy.admin.request<ChangeBatch>('GET', `/v1/changes${query}`);
  assert.is(answer.status, 200, `GET /v1/changes${query}: ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** Reads from `cursor` until `more` is false, as a reader would. */
async function readOn(cursor: number, instance: string, limit = 500): Promise<{ batches: ChangeBatch[]; cursor: number }> {
  const batches: ChangeBatch[] = [];
  for (let guard = 0; guard < 100; guard++) {
    const batch = await changes(`?since=${cursor}&instance=${instance}&limit=${limit}`);
    batches.push(batch);
    cursor = batch.cursor;
    if (!batch.more) break;
  }
  return { batches, cursor };
}

test('bad queries get 400 bad_request naming the parameter', async () => {
  const cases: Array<[string, RegExp]> = [
    ['?since=-1', /since/],
    ['?since=1.5', /since/],
    ['?since=abc', /since/],
    ['?since=', /since/],
    ['?since=99999999999999999999', /since/],
    ['?since=1&since=2', /since/],
    ['?limit=0', /limit.*1 to 5000/],
    ['?limit=5001', /limit.*1 to 5000/],
    ['?limit=ten', /limit/],
    ['?cursor=3', /unknown query parameter "cursor"/],
    ['?instance=', /instance/],
    ['?counters=yes', /counters must be 1.*skip.*or 0/],
    ['?counters=SKIP', /counters must be 1/],
    ['?counters=1&counters=1', /counters/],
    ['?since=5&complete=3', /complete goes with counters=1 or counters=skip only/],
    ['?since=2&counters=skip&complete=3', /complete must be a whole number no greater than since/],
    ['?since=2&counters=1&complete=3', /complete must be a whole number no greater than since/],
    ['?since=2&counters=1&complete=x', /complete must be/],
    ['?since=2&counters=1&complete=1&complete=1', /complete must be given once/],
  ];
  for (const [query, message] of cases) {
    const answer = await proxy.admin.request<AdminError>('GET', `/v1/changes${query}`);
    assert.is(answer.status, 400, query);
    assert.is(answer.body.code, 'bad_request', query);
    assert.match(answer.body.message, message, query);
  }
  assert.is((await proxy.admin.request('GET', '/v1/changes?since=0&limit=5000')).status, 200, 'the bounds themselves are fine');
  assert.is((await proxy.admin.request('GET', '/v1/changes?since=2&counters=skip&complete=1')).status, 200, 'skip with complete');
});

test('a first read is a full listing; then puts, connects, moved counters and removals each show once, in change order', async () => {
  const [portA, portB, portC] = (await freePorts(3)) as [number, number, number];
  await proxy.admin.put('CF-A', { port: portA, persistent: true });
  await proxy.admin.put('CF-B', { port: portB, persistent: true });
  const first = await changes('');
  assert.ok(first.reset, 'no instance given: a full listing');
  assert.equal(
    first.sessions.map((s) => s.serial),
    ['CF-A', 'CF-B'],
  );
  assert.not.ok(first.more);
  const instance = first.instanceId;
  let cursor = first.cursor;

  const quiet = await changes(`?since=${cursor}&instance=${instance}`);
  assert.equal([quiet.reset, quiet.sessions, quiet.removed, quiet.cursor], [false, [], [], cursor], 'nothing changed');

  await proxy.admin.put('CF-A', { port: portA, persistent: true, ipWhitelist: ['127.0.0.1'] });
  const device = await connectDevice(proxy.pod.devicePort, 'CF-B');
  cleanup.push(() => device.destroy());
  await waitFor(async () => (await proxy.admin.session('CF-B'))?.deviceConnected === true, 2000, 'the device');
  await proxy.admin.put('CF-C', { port: portC });
  await proxy.admin.put('CF-A', { port: portA, persistent: true, ipWhitelist: [] });
  const next = await changes(`?since=${cursor}&instance=${instance}`);
  assert.equal(
    next.sessions.map((s) => s.serial),
    ['CF-B', 'CF-C', 'CF-A'],
    'A changed twice: listed once, where its latest change is',
  );
  const seqs = next.sessions.map((s) => s.changeSeq);
  assert.ok(
    seqs.every((seq, i) => seq > cursor && (i === 0 || seq > seqs[i - 1]!)),
    'changeSeqs above the cursor, increasing',
  );
  assert.ok(next.sessions[0]?.deviceConnected, 'with the state after the change');
  assert.is(next.cursor, next.sessions.at(-1)?.changeSeq);
  cursor = next.cursor;

  // Bytes from the device with no client are dropped: counters move without any event.
  device.write('twelve bytes');
  await waitFor(
    async () => (await changes(`?since=${cursor}&instance=${instance}`)).sessions.some((s) => s.droppedBytes === 12),
    2000,
    'the moved counter in the feed',
  );
  const moved = await changes(`?since=${cursor}&instance=${instance}`);
  assert.equal(
    moved.sessions.map((s) => s.serial),
    ['CF-B'],
  );
  assert.type(moved.sessions[0]?.device.lastActivity, 'string', 'the sweep stamped its activity');
  cursor = moved.cursor;
  await sleep(600);
  assert.equal((await changes(`?since=${cursor}&instance=${instance}`)).sessions, [], 'counters that stay put are no change');

  const deleted = await proxy.admin.delete('CF-C');
  const removed = await changes(`?since=${cursor}&instance=${instance}`);
  assert.equal(removed.sessions, []);
  assert.equal(
    removed.removed,
    [{ serial: 'CF-C', id: 'id-CF-C', changeSeq: deleted.body.changeSeq }],
    'the removal, with its incarnation',
  );
  cursor = removed.cursor;

  // A put with a new id supersedes the old incarnation: the new one is listed, under the same serial.
  await proxy.admin.put('CF-A', { port: portA, id: 'CF-A-second' });
  const superseded = await changes(`?since=${cursor}&instance=${instance}`);
  assert.equal(
    superseded.sessions.map((s) => [s.serial, s.id, s.state]),
    [['CF-A', 'CF-A-second', 'listening']],
  );
  const fromStart = await changes(`?since=${first.cursor}&instance=${instance}`);
  assert.not.ok(
    fromStart.removed.some((r) => r.serial === 'CF-A'),
    'a serial put again is no removal',
  );
  assert.ok(fromStart.removed.some((r) => r.serial === 'CF-C'));
  await proxy.admin.delete('CF-A');
  await proxy.admin.delete('CF-B');
});

test('answers hold at most `limit` items; `more` and `cursor` page through every session once', async () => {
  const ports = await freePorts(7);
  const start = await changes('');
  for (const [i, port] of ports.entries()) await proxy.admin.put(`CF-PAGE-${i}`, { port });
  const { batches } = await readOn(start.cursor, start.instanceId, 3);
  assert.equal(
    batches.map((b) => [b.sessions.length, b.more]),
    [
      [3, true],
      [3, true],
      [1, false],
    ],
  );
  assert.equal(
    batches.flatMap((b) => b.sessions.map((s) => s.serial)),
    ports.map((_, i) => `CF-PAGE-${i}`),
  );
  const listing = await changes(`?since=${start.cursor}&instance=not-this-instance&limit=2`);
  assert.ok(listing.reset, "another instance's cursor: a full listing");
  assert.equal(listing.removed, []);
  const all = await readOn(listing.cursor, listing.instanceId, 2);
  const listed = [...listing.sessions, ...all.batches.flatMap((b) => b.sessions)].map((s) => s.serial);
  for (let i = 0; i < ports.length; i++) assert.ok(listed.includes(`CF-PAGE-${i}`));
  assert.is(new Set(listed).size, listed.length, 'each session once');
  for (let i = 0; i < ports.length; i++) await proxy.admin.delete(`CF-PAGE-${i}`);
});

test('asked with counters=1, moved counters come as a counter entry; unasked, after a full change, or in a reset, in full', async () => {
  const [port] = (await freePorts(1)) as [number];
  const pair = await joinPair(proxy.admin, proxy.pod.devicePort, 'CF-CNT', { port, persistent: true, ipWhitelist: ['127.0.0.1'] });
  cleanup.push(
    () => pair.device.destroy(),
    () => pair.client.destroy(),
  );
  const { instanceId, cursor: listed } = await changes('');
  const { cursor } = await readOn(listed, instanceId);
  const received = new Received(pair.client);
  pair.device.write(Buffer.alloc(64, 0x61));
  await received.untilLength(64, 2000);
  const asked = `?since=${cursor}&instance=${instanceId}&counters=1`;
  await waitFor(async () => ((await changes(asked)).counters ?? []).length > 0, 2000, 'the moved counters in the feed');

  const compact = await changes(asked);
  assert.equal(compact.sessions, [], 'no full state for a counter-only change');
  const entry = compact.counters?.[0];
  assert.ok(entry && entry.changeSeq > cursor);
  assert.type(entry.device.lastActivity, 'string', 'the sweep stamped its activity');
  assert.equal(entry, {
    serial: 'CF-CNT',
    id: 'id-CF-CNT',
    changeSeq: entry.changeSeq,
    transferredBytes: 64,
    droppedBytes: 0,
    device: { forwardedBytes: 64, droppedBytes: 0, lastActivity: entry.device.lastActivity },
    client: { forwardedBytes: 0, droppedBytes: 0 },
  });

  const full = await changes(`?since=${cursor}&instance=${instanceId}`);
  assert.not.ok('counters' in full, 'a reader that does not ask gets the answer it always got');
  const state = full.sessions[0];
  assert.equal(
    [state?.serial, state?.changeSeq, state?.transferredBytes, state?.device.lastActivity, state?.clientConnected],
    ['CF-CNT', entry.changeSeq, 64, entry.device.lastActivity, true],
  );

  pair.client.destroy();
  await waitFor(async () => (await proxy.admin.session('CF-CNT'))?.clientConnected === false, 2000, 'the client gone');
  const afterDisconnect = await changes(`?since=${compact.cursor}&instance=${instanceId}&counters=1`);
  assert.equal(afterDisconnect.counters, [], 'a full change after the cursor: in full');
  assert.equal(
    afterDisconnect.sessions.map((s) => [s.serial, s.clientConnected]),
    [['CF-CNT', false]],
  );

  const reset = await changes('?counters=1');
  assert.ok(reset.reset);
  assert.equal(reset.counters, [], 'a reset lists every session in full');
  assert.ok(reset.sessions.some((s) => s.serial === 'CF-CNT'));
  await proxy.admin.delete('CF-CNT');
});

test("every event carries the session's state after it, with its changeSeq as the feed lists it", async () => {
  const [port] = (await freePorts(1)) as [number];
  const events: ProxyEvent[] = [];
  const stream = await openEvents(proxy.pod.adminAddress, events);
  cleanup.push(() => stream.destroy());
  const pair = await joinPair(proxy.admin, proxy.pod.devicePort, 'CF-EV', { port, persistent: true, ipWhitelist: ['127.0.0.1'] });
  cleanup.push(() => pair.device.destroy());
  const refused = new Received(await connect(port, { localAddress: '127.0.0.2' }));
  await refused.untilClosed(2000);
  pair.client.destroy();
  await waitFor(() => events.some((e) => e.type === 'client-disconnected'), 2000, 'the disconnect event');
  const mine = events.filter((e) => e.serial === 'CF-EV');
  for (const event of mine) assert.type(event.session?.changeSeq, 'number', `${event.type} carries the session`);
  const connected = mine.find((e) => e.type === 'device-connected');
  assert.equal([connected?.session?.deviceConnected, connected?.session?.clientConnected], [true, true]);
  assert.is(mine.find((e) => e.type === 'client-refused')?.session?.clientsRefused, 1);
  const gone = mine.find((e) => e.type === 'client-disconnected');
  assert.is(gone?.session?.clientConnected, false);
  const seqs = mine.map((e) => e.session?.changeSeq ?? 0);
  assert.ok(
    seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!),
    'each event is a change',
  );
  const listed = (await proxy.admin.session('CF-EV'))?.changeSeq;
  assert.ok(listed !== undefined && listed >= (gone?.session?.changeSeq ?? 0));
  await proxy.admin.delete('CF-EV');
});

function openEvents(socketPath: string, into: ProxyEvent[]): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: '/v1/events' }, (res) => {
        let buffer = '';
        res.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          const lines = buffer.split('\n');
          buffer = lines.pop() ?? '';
          for (const line of lines) if (line) into.push(JSON.parse(line));
        });
        res.on('error', () => {});
        resolve(res);
      })
      .on('error', reject);
  });
}

test.run();
