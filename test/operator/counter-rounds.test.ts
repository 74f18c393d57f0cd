import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CounterRounds } from '../../operator/counter-rounds.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function setup(perSecond: number, minIntervalMs: number) {
  const clock = new FakeClock();
  const looked: string[] = [];
  const rounds = new CounterRounds(perSecond, minIntervalMs, (serial) => looked.push(`${clock.now()} ${serial}`), clock);
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
  assert.equal(looked, ['100 A', '100 B'], 'the bucket starts full');
  await clock.advance(1500);
  assert.equal(looked, ['100 A', '100 B', '600 C', '1100 D', '1600 E']);
});

test('a serial watched again from its own look waits its interval behind the others; forget and stop end it', async () => {
  const clock = new FakeClock();
  const looked: string[] = [];
  const rounds: CounterRounds = new CounterRounds(
    1000,
    50,
    (serial) => {
      looked.push(`${clock.now()} ${serial}`);
      if (serial === 'A') rounds.watch('A');
    },
    clock,
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
