import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CounterFlushes } from '../../operator/counter-flushes.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function setup(perSecond: number) {
  const clock = new FakeClock();
  const granted: string[] = [];
  const flushes = new CounterFlushes(perSecond, (serial) => granted.push(`${clock.now()} ${serial}`), clock);
  return { clock, granted, flushes };
}

test('writes go one at a time, evenly spaced, never in a burst; the refused wait in line and get their turn in order, one timer for all', async () => {
  const { clock, granted, flushes } = setup(2);
  assert.ok(flushes.mayWrite('A'));
  for (const serial of ['B', 'C', 'D', 'E']) assert.not.ok(flushes.mayWrite(serial));
  assert.not.ok(flushes.mayWrite('C'), 'asking again does not jump the line');
  assert.is(clock.pending, 1, 'one timer, however many wait');
  await clock.advance(1500);
  assert.equal(granted, ['500 B', '1000 C', '1500 D']);
  await clock.advance(500);
  assert.equal(granted.at(-1), '2000 E');
  assert.is(clock.pending, 0, 'nobody waits: no timer left');
  assert.ok(flushes.mayWrite('D'), 'a granted turn is a write');
  assert.not.ok(flushes.mayWrite('D'), 'once');
});

test('a newcomer queues behind those already waiting, even when a token is back', async () => {
  const { clock, granted, flushes } = setup(1);
  assert.ok(flushes.mayWrite('A'));
  assert.not.ok(flushes.mayWrite('B'));
  await clock.advance(999);
  assert.not.ok(flushes.mayWrite('C'));
  await clock.advance(1001);
  assert.equal(granted, ['1000 B', '2000 C']);
});

test('a session that wrote anyway (a connect) or is gone leaves the line, and stop ends the timer', async () => {
  const { clock, granted, flushes } = setup(1);
  flushes.mayWrite('A');
  flushes.mayWrite('B');
  flushes.mayWrite('C');
  flushes.forget('B');
  await clock.advance(1000);
  assert.equal(granted, ['1000 C']);
  flushes.mayWrite('D');
  flushes.stop();
  assert.is(clock.pending, 0);
});

test.run();
