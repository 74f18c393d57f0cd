// A change-feed answer is built a slice of sessions at a time, with turns of
// the event loop between slices (so forwarding goes on while a large answer
// is built), counter entries likewise after the states, and its pieces make
// the ChangeBatch the protocol promises. Written to a real HTTP response, it
// waits for a slow reader and stops for one that goes away.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChangeBatch, SessionCounters, SessionState } from '../../common/admin-protocol.ts';
import { type ChangeListing, changeBatchJson, STATES_PER_TURN, writeChanges } from '../../proxy-pod/admin-api.ts';

const test = suite('change batch JSON');

function stateOf(serial: string, changeSeq: number): SessionState {
  return {
    id: `id-${serial}`,
    port: 20_000 + changeSeq,
    persistent: true,
    ipWhitelist: ['127.0.0.1'],
    serial,
    state: 'listening',
    deviceConnected: true,
    clientConnected: true,
    transferredBytes: changeSeq * 32,
    droppedBytes: 0,
    device: { forwardedBytes: changeSeq * 16, droppedBytes: 0 },
    client: { forwardedBytes: changeSeq * 16, droppedBytes: 0 },
    clientsRefused: 0,
    listeningSince: '2026-01-01T00:00:00.000Z',
    changeSeq,
  };
}

/** Counts the turns of the event loop from now until stop(). */
function turnCounter(): { readonly turns: number; stop(): void } {
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get turns() {
      return turns;
    },
    stop: () => {
      ticking = false;
    },
  };
}

async function text(pieces: AsyncIterable<string>): Promise<string> {
  let all = '';
  for await (const piece of pieces) all += piece;
  return all;
}

test('the states of a large answer are taken a slice per turn of the event loop, and it parses to the ChangeBatch', async () => {
  const count = STATES_PER_TURN * 4 + 5;
  const serials = Array.from({ length: count }, (_, i) => `SER-${i}`);
  // One session went away after the feed was read: it is left out.
  const gone = 'SER-7';
  const loop = turnCounter();
  const takenAt: number[] = [];
  const listing: ChangeListing = {
    batch: {
      instanceId: 'instance-1',
      startedAt: '2026-01-01T00:00:00.000Z',
      devicePort: 9000,
      cursor: 900,
      reset: false,
      removed: [],
      more: true,
    },
    serials,
    state(serial) {
      takenAt.push(loop.turns);
      return serial === gone ? undefined : stateOf(serial, serials.indexOf(serial) + 1);
    },
  };
  const json = await text(changeBatchJson(listing));
  loop.stop();
  const batch = JSON.parse(json) as ChangeBatch;
  assert.equal(batch, {
    ...listing.batch,
    sessions: serials.filter((s) => s !== gone).map((s) => stateOf(s, serials.indexOf(s) + 1)),
  });
  assert.is(takenAt.length, count);
  const perTurn = new Map<number, number>();
  for (const turn of takenAt) perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
  assert.is(perTurn.size, Math.ceil(count / STATES_PER_TURN), `states taken in ${perTurn.size} turns: ${[...perTurn.values()]}`);
  assert.ok(Math.max(...perTurn.values()) <= STATES_PER_TURN, 'no turn takes more than a slice');
});

test('counter entries, when asked for, follow the states, a slice per turn too; one gone or fully changed meanwhile is left out', async () => {
  const states = Array.from({ length: STATES_PER_TURN + 3 }, (_, i) => `FULL-${i}`);
  const counted = Array.from({ length: STATES_PER_TURN * 2 }, (_, i) => `CNT-${i}`);
  const left = 'CNT-3';
  const entryOf = (serial: string): SessionCounters => ({
    serial,
    id: `id-${serial}`,
    changeSeq: 7,
    transferredBytes: 64,
    droppedBytes: 0,
    device: { forwardedBytes: 64, droppedBytes: 0, lastActivity: '2026-01-01T00:00:01.000Z' },
    client: { forwardedBytes: 0, droppedBytes: 0 },
  });
  const loop = turnCounter();
  const takenAt: number[] = [];
  const listing: ChangeListing = {
    batch: { instanceId: 'i', startedAt: 's', devicePort: 1, cursor: 9, reset: false, removed: [], more: false },
    serials: states,
    state(serial) {
      takenAt.push(loop.turns);
      return stateOf(serial, 5);
    },
    counters: {
      serials: counted,
      entry(serial) {
        takenAt.push(loop.turns);
        return serial === left ? undefined : entryOf(serial);
      },
    },
  };
  const batch = JSON.parse(await text(changeBatchJson(listing))) as ChangeBatch;
  loop.stop();
  assert.equal(batch, {
    ...listing.batch,
    sessions: states.map((s) => stateOf(s, 5)),
    counters: counted.filter((s) => s !== left).map(entryOf),
  });
  const perTurn = new Map<number, number>();
  for (const turn of takenAt) perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
  assert.equal(
    [...perTurn.values()],
    [STATES_PER_TURN, 3, STATES_PER_TURN, STATES_PER_TURN],
    'states, then entries, never two slices in one turn',
  );
});

test('an answer without sessions is the batch with an empty list', async () => {
  const batch = { instanceId: 'i', startedAt: 's', devicePort: 1, cursor: 0, reset: true, removed: [], more: false };
  assert.equal(JSON.parse(await text(changeBatchJson({ batch, serials: [], state: () => undefined }))), { ...batch, sessions: [] });
  const asked = { batch, serials: [], state: () => undefined, counters: { serials: [], entry: () => undefined } };
  assert.equal(
    JSON.parse(await text(changeBatchJson(asked))),
    { ...batch, sessions: [], counters: [] },
    'asked for: an empty list of entries',
  );
});

/** An HTTP server answering every request with writeChanges of `pieces` 8 kB pieces, failing before piece `failAt` if given (24 MB outlasts loopback's socket buffers); counts the pieces made and the answers closed early. */
async function pieceServer(pieces: number, failAt?: number) {
  const made = { pieces: 0, stopped: 0, failed: 0 };
  async function* answer(): AsyncGenerator<string> {
    try {
      for (let i = 0; i < pieces; i++) {
        if (i === failAt) throw new Error('made up');
        made.pieces++;
        yield 'x'.repeat(8192);
      }
    } finally {
      if (made.pieces < pieces) made.stopped++;
    }
  }
  const server = http.createServer((_req, res) => void writeChanges(res, answer()).catch(() => made.failed++));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { made, port, close: () => new Promise((resolve) => server.close(resolve)) };
}

test('written to HTTP: a reader that does not read holds the answer back; once it reads, it gets all of it', async () => {
  const pieces = 3000;
  const server = await pieceServer(pieces);
  try {
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get({ port: server.port, host: '127.0.0.1' }, resolve));
    res.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(server.made.pieces < pieces, `the answer waited for its reader: ${server.made.pieces} of ${pieces} pieces made`);
    let length = 0;
    res.on('data', (chunk: Buffer) => (length += chunk.length));
    res.resume();
    await new Promise((resolve) => res.on('end', resolve));
    assert.is(length, pieces * 8192);
    assert.is(server.made.stopped, 0);
  } finally {
    await server.close();
  }
});

test('written to HTTP: a reader that goes away stops the answer', async () => {
  const pieces = 3000;
  const server = await pieceServer(pieces);
  try {
    const req = http.get({ port: server.port, host: '127.0.0.1' }, (res) => {
      res.pause();
      setTimeout(() => req.destroy(), 100);
    });
    req.on('error', () => undefined);
    const deadline = Date.now() + 3000;
    while (server.made.stopped === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.is(server.made.stopped, 1, `the answer stopped after ${server.made.pieces} of ${pieces} pieces`);
  } finally {
    await server.close();
  }
});

test('written to HTTP: an answer that fails partway cuts the connection, so the reader cannot take it for whole', async () => {
  const server = await pieceServer(10, 3);
  try {
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get({ port: server.port, host: '127.0.0.1' }, (res) => {
        let length = 0;
        res.on('data', (chunk: Buffer) => (length += chunk.length));
        res.on('end', () => resolve(`ended after ${length} bytes`));
        res.on('error', () => resolve('cut'));
        res.on('aborted', () => resolve('cut'));
      });
      req.on('error', () => resolve('cut'));
      setTimeout(() => {
        req.destroy();
        resolve('left hanging');
      }, 3000).unref();
    });
    assert.is(outcome, 'cut');
    assert.is(server.made.failed, 1, 'the failure reaches the caller (the admin API logs it)');
  } finally {
    await server.close();
  }
});

test.run();
