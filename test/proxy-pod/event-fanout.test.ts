// The event stream's fan-out on its own: each event serialized once, the
// events of one turn in one write per reader, readers that join mid-turn get
// only what follows, a reader that stops reading is cut, and the source is
// subscribed to only while somebody reads.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProxyEvent } from '../../common/admin-protocol.ts';
import { EventFanout, type EventReader, MAX_WAITING_BYTES } from '../../proxy-pod/event-fanout.ts';

const test = suite('event fan-out');

class Reader implements EventReader {
  writes: string[] = [];
  writableLength = 0;
  writableEnded = false;
  destroyed = false;
  /** Bytes the reader has not taken: each write adds to it when set. */
  stalled = false;

  write(text: string): boolean {
    this.writes.push(text);
    if (this.stalled) this.writableLength += text.length;
    return !this.stalled;
  }

  end(): void {
    this.writableEnded = true;
  }

  destroy(): void {
    this.destroyed = true;
  }

  lines(): Array<{ type: string; seq: number }> {
    return this.writes
      .join('')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
  }
}

/** A source the test emits from, and a schedule it runs by hand (one call = the end of a turn). */
function rig() {
  const listeners = new Set<(event: ProxyEvent) => void>();
  let subscriptions = 0;
  const pending: Array<() => void> = [];
  const cut: number[] = [];
  const fanout = new EventFanout({
    source: (listener) => {
      subscriptions++;
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    schedule: (flush) => pending.push(flush),
    onCut: (bytes) => cut.push(bytes),
  });
  let seq = 0;
  const emit = (type: ProxyEvent['type'] = 'device-connected', extra: Partial<ProxyEvent> = {}) => {
    const event = { type, instanceId: 'i', seq: ++seq, at: 'now', ...extra } as ProxyEvent;
    for (const listener of listeners) listener(event);
  };
  const endTurn = () => {
    for (const flush of pending.splice(0)) flush();
  };
  return { fanout, emit, endTurn, listeners, cut, subscriptions: () => subscriptions };
}

const hello = { type: 'hello', instanceId: 'i', seq: 0, at: 'now' };

test('the events of one turn reach every reader in one write, after its hello', () => {
  const { fanout, emit, endTurn } = rig();
  const a = new Reader();
  const b = new Reader();
  fanout.add(a, hello);
  fanout.add(b, hello);
  for (let i = 0; i < 5; i++) emit();
  assert.is(a.writes.length, 1, 'nothing but the hello before the turn ends');
  endTurn();
  for (const reader of [a, b]) {
    assert.is(reader.writes.length, 2, 'the hello and one write for the turn');
    assert.equal(
      reader.lines().map((e) => e.seq),
      [0, 1, 2, 3, 4, 5],
    );
  }
  assert.is(a.writes[1], b.writes[1], 'the same text for both');
  emit();
  endTurn();
  assert.is(a.writes.length, 3, 'the next turn is a write of its own');
});

test('a reader that joins during a turn gets only the events after its hello', () => {
  const { fanout, emit, endTurn } = rig();
  const early = new Reader();
  fanout.add(early, hello);
  emit();
  emit();
  const late = new Reader();
  fanout.add(late, hello);
  emit();
  endTurn();
  assert.equal(
    early.lines().map((e) => e.seq),
    [0, 1, 2, 3],
  );
  assert.equal(
    late.lines().map((e) => e.seq),
    [0, 3],
  );
  emit();
  endTurn();
  assert.equal(
    late.lines().map((e) => e.seq),
    [0, 3, 4],
    'from the next turn on it gets everything',
  );
});

test('a reader with no event in its part of the turn gets no empty write', () => {
  const { fanout, emit, endTurn } = rig();
  fanout.add(new Reader(), hello);
  emit();
  const late = new Reader();
  fanout.add(late, hello);
  endTurn();
  assert.is(late.writes.length, 1);
});

test('a reader that stops reading is cut once more than the limit waits for it; the others go on', () => {
  const { fanout, emit, endTurn, cut } = rig();
  const stalled = new Reader();
  const reading = new Reader();
  fanout.add(stalled, hello);
  fanout.add(reading, hello);
  stalled.stalled = true;
  const big = 'x'.repeat(64 * 1024);
  const turns = Math.ceil(MAX_WAITING_BYTES / big.length) + 1;
  for (let i = 0; i < turns && !stalled.destroyed; i++) {
    emit('device-connected', { reason: big });
    endTurn();
  }
  assert.ok(stalled.destroyed, 'the stalled reader was cut');
  assert.is(cut.length, 1);
  assert.ok(cut[0]! > MAX_WAITING_BYTES);
  assert.is(fanout.size, 1);
  const before = stalled.writes.length;
  emit();
  endTurn();
  assert.is(stalled.writes.length, before, 'nothing more is written to a cut reader');
  assert.is(reading.lines().at(-1)?.type, 'device-connected', 'the reading one still gets events');
  assert.not.ok(reading.destroyed);
});

test('an ended reader gets nothing more, even the events of a turn it was in', () => {
  const { fanout, emit, endTurn } = rig();
  const ending = new Reader();
  const other = new Reader();
  fanout.add(ending, hello);
  fanout.add(other, hello);
  emit();
  ending.writableEnded = true;
  endTurn();
  fanout.send(ending, { type: 'heartbeat', instanceId: 'i', seq: 0, at: 'now' });
  assert.is(ending.writes.length, 1, 'the hello alone');
  assert.is(other.writes.length, 2);
});

test('closing ends every reader and unsubscribes; a turn pending then writes nothing', () => {
  const { fanout, emit, endTurn, listeners } = rig();
  const a = new Reader();
  const b = new Reader();
  fanout.add(a, hello);
  fanout.add(b, hello);
  emit();
  fanout.endAll();
  endTurn();
  for (const reader of [a, b]) {
    assert.ok(reader.writableEnded, 'ended');
    assert.is(reader.writes.length, 1, 'the hello alone');
  }
  assert.is(fanout.size, 0);
  assert.is(listeners.size, 0, 'unsubscribed');
});

test('the source is subscribed to while somebody reads, once, and a heartbeat goes to its reader alone', () => {
  const { fanout, emit, endTurn, listeners, subscriptions } = rig();
  assert.is(listeners.size, 0, 'no reader, no subscription (the proxy then builds no event)');
  const a = new Reader();
  const b = new Reader();
  fanout.add(a, hello);
  fanout.add(b, hello);
  assert.is(subscriptions(), 1);
  fanout.send(a, { type: 'heartbeat', instanceId: 'i', seq: 0, at: 'now' });
  assert.equal(
    a.lines().map((e) => e.type),
    ['hello', 'heartbeat'],
  );
  assert.is(b.writes.length, 1);
  fanout.remove(a);
  assert.is(listeners.size, 1, 'one reader left');
  fanout.send(a, { type: 'heartbeat', instanceId: 'i', seq: 0, at: 'now' });
  assert.is(a.writes.length, 2, 'a removed reader gets no heartbeat');
  fanout.remove(b);
  assert.is(listeners.size, 0, 'unsubscribed with the last reader');
  emit();
  endTurn();
  assert.is(b.writes.length, 1);
});

test.run();
