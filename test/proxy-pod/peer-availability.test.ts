// Which peers are skipped, and when the devices they missed are offered to them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PeerAvailability } from '../../proxy-pod/peer-availability.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function setup(opts: { have?: (serial: string) => boolean; maxMissed?: number } = {}) {
  const clock = new FakeClock(1_000_000);
  const offered: Array<[number, string]> = [];
  const availability = new PeerAvailability({
    clock,
    pauseMs: 5000,
    maxMissed: opts.maxMissed ?? 100,
    offer: (ordinal, serial) => {
      offered.push([ordinal, serial]);
      return opts.have?.(serial) ?? true;
    },
  });
  return { clock, offered, availability };
}

test('a peer that failed is skipped for the pause, then no longer', async () => {
  const { clock, availability } = setup();
  assert.is(availability.isPaused(1), false);
  availability.failed(1);
  assert.is(availability.isPaused(1), true);
  assert.is(availability.isPaused(2), false);
  await clock.advance(4999);
  assert.is(availability.isPaused(1), true);
  await clock.advance(1);
  assert.is(availability.isPaused(1), false);
});

test('after the pause one missed device probes the peer; the rest wait for the outcome', async () => {
  const { clock, offered, availability } = setup();
  availability.failed(1);
  for (const serial of ['A', 'B', 'C']) availability.missed(1, serial);
  await clock.advance(5000);
  assert.equal(offered, [[1, 'A']]);
  // The probe was answered: the rest go at once.
  availability.alive(1);
  assert.equal(offered, [
    [1, 'A'],
    [1, 'B'],
    [1, 'C'],
  ]);
  availability.alive(1);
  assert.is(offered.length, 3, 'each missed device is offered once');
});

test('a probe that fails again pauses the peer again, and the next pause probes with the next device', async () => {
  const { clock, offered, availability } = setup();
  availability.failed(1);
  availability.missed(1, 'A');
  availability.missed(1, 'B');
  await clock.advance(5000);
  assert.equal(offered, [[1, 'A']]);
  availability.failed(1);
  availability.missed(1, 'A');
  await clock.advance(5000);
  assert.equal(offered, [
    [1, 'A'],
    [1, 'B'],
  ]);
});

test('a missed device that is gone by the probe is skipped, and the probe goes to the next', async () => {
  const { clock, offered, availability } = setup({ have: (serial) => serial !== 'gone' });
  availability.failed(1);
  availability.missed(1, 'gone');
  availability.missed(1, 'here');
  availability.missed(1, 'later');
  await clock.advance(5000);
  assert.equal(offered, [
    [1, 'gone'],
    [1, 'here'],
  ]);
});

test('a notice from a peer (alive) ends its pause and offers what it missed', () => {
  const { offered, availability } = setup();
  availability.failed(2);
  availability.missed(2, 'A');
  availability.alive(2);
  assert.is(availability.isPaused(2), false);
  assert.equal(offered, [[2, 'A']]);
});

test('missed serials per peer are capped, the oldest dropped', () => {
  const { offered, availability } = setup({ maxMissed: 2 });
  availability.failed(1);
  for (const serial of ['A', 'B', 'C']) availability.missed(1, serial);
  availability.alive(1);
  assert.equal(offered, [
    [1, 'B'],
    [1, 'C'],
  ]);
});

test('close stops the probes', async () => {
  const { clock, offered, availability } = setup();
  availability.failed(1);
  availability.missed(1, 'A');
  availability.close();
  await clock.advance(10_000);
  assert.equal(offered, []);
  assert.is(clock.pending, 0);
});

test.run();
