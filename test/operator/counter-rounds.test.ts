import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CounterRounds } from '../../operator/counter-rounds.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function setup(perSecond: number, minIntervalMs: number, batchMs = 0) {
  const clock = new FakeClock();
  const looked: string[] = [];
  const rounds = new CounterRounds(
    perSecond,
    minIntervalMs,
    (serials) => looked.push(`${clock.now()} ${serials.join(',')}`),
    clock,
    batchMs,
  );
  return { clock, looked, rounds };
}

test('a watched serial is looked at once its interval has passed, once; watching it again while it waits changes nothing', async () => {
  const { clock, looked, rounds } = setup(100, 1000);
  rounds.watch('A');
  await clock.advance(400);
  rounds.watch('B');
  rounds.watch('A');
  await clock.advance(599);
  assert.equal(looked, []);
  await clock.advance(1);
  assert.equal(looked, ['1000 A']);
  await clock.advance(400);
  assert.equal(looked, ['1000 A', '1400 B']);
  await clock.advance(5000);
  assert.is(looked.length, 2, 'looked at once each: the caller watches again while a party is attached');
  assert.is(clock.pending, 0, 'nothing waits: no timer left');
});

test('at most perSecond looks over all serials, in the order they came; one timer however many wait', async () => {
  const { clock, looked, rounds } = setup(2, 100);
  for (const serial of ['A', 'B', 'C', 'D', 'E']) rounds.watch(serial);
  assert.is(clock.pending, 1);
  await clock.advance(100);
  assert.equal(looked, ['100 A,B'], 'the bucket starts full: one batch');
  await clock.advance(1500);
  assert.equal(looked, ['100 A,B', '600 C', '1100 D', '1600 E']);
});

test('looks due within batchMs of each other go out together, as many as the rate allows', async () => {
  const { clock, looked, rounds } = setup(20, 100, 250);
  for (let i = 0; i < 30; i++) {
    rounds.watch(`S${i}`);
    await clock.advance(10);
  }
  await clock.advance(2000);
  const sizes = looked.map((line) => (line.split(' ')[1] as string).split(',').length);
  assert.is(
    sizes.reduce((a, b) => a + b, 0),
    30,
    'every serial looked at once',
  );
  const times = looked.map((line) => Number(line.split(' ')[0]));
  assert.ok(
    times.every((t, i) => i === 0 || t - (times[i - 1] as number) >= 250),
    `at least batchMs apart: ${times.join(', ')}`,
  );
  assert.ok(looked.length <= 5, `a few batches, not one look each: ${looked.join(' | ')}`);
});

test('a serial watched again from its own look waits its interval behind the others; forget and stop end it', async () => {
  const clock = new FakeClock();
  const looked: string[] = [];
  const rounds: CounterRounds = new CounterRounds(
    1000,
    50,
    (serials) => {
      looked.push(`${clock.now()} ${serials.join(',')}`);
      if (serials.includes('A')) rounds.watch('A');
    },
    clock,
    0,
  );
  rounds.watch('A');
  await clock.advance(10);
  rounds.watch('B');
  await clock.advance(150);
  assert.equal(looked, ['50 A', '60 B', '100 A', '150 A']);
  rounds.watch('C');
  rounds.forget('A');
  await clock.advance(100);
  assert.equal(looked.slice(4), ['210 C'], 'A is forgotten');
  rounds.watch('D');
  rounds.stop();
  assert.is(clock.pending, 0);
  rounds.watch('E');
  await clock.advance(100);
  assert.is(looked.length, 5, 'stopped: nothing is looked at');
});

test.run();
