// The activity sweep on its own: every 250 ms it looks only at the watched
// sessions, reports those whose counters moved, and walks them in slices of
// at most 1,000 with a turn of the event loop between slices.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ActivitySweep, type Sweepable } from '../../proxy-pod/activity-sweep.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const test = suite('activity sweep');

class Counted implements Sweepable {
  counted = 0;
  private seen = 0;
  looks: number[] = [];

  constructor(
    readonly name: string,
    private readonly onLook: () => void = () => {},
  ) {}

  sweep(nowMs: number): boolean {
    this.looks.push(nowMs);
    this.onLook();
    if (this.counted === this.seen) return false;
    this.seen = this.counted;
    return true;
  }
}

test('only watched sessions are looked at, every 250 ms, and only moved counters are reported', async () => {
  const clock = new FakeClock(1000);
  const moved: string[] = [];
  const sweep = new ActivitySweep<Counted>({ clock, moved: (s) => moved.push(s.name) });
  const busy = new Counted('busy');
  const quiet = new Counted('quiet');
  const unwatched = new Counted('unwatched');
  sweep.watch(busy, true);
  sweep.watch(quiet, true);
  sweep.start();
  busy.counted = 10;
  unwatched.counted = 10;
  await clock.advance(250);
  assert.equal(moved, ['busy']);
  assert.equal(busy.looks, [1250]);
  assert.equal(quiet.looks, [1250]);
  assert.equal(unwatched.looks, [], 'a session without a party is never looked at');
  await clock.advance(250);
  assert.equal(moved, ['busy'], 'counters that stayed put are not reported again');
  sweep.watch(busy, false);
  busy.counted = 20;
  await clock.advance(250);
  assert.equal(busy.looks.length, 2, 'unwatched: no more looks');
  sweep.stop();
  await clock.advance(1000);
  assert.is(quiet.looks.length, 3, 'stopped: no more sweeps');
});

test('2,500 sessions are walked in slices of at most 1,000, with a turn of the event loop between slices', async () => {
  const clock = new FakeClock(0);
  const sweep = new ActivitySweep<Counted>({ clock, moved: () => {} });
  // A slice runs without a break; a microtask runs only between slices: count the runs of looks.
  const slices: number[] = [];
  let inSlice = false;
  const onLook = () => {
    if (!inSlice) {
      inSlice = true;
      slices.push(0);
      queueMicrotask(() => {
        inSlice = false;
      });
    }
    slices[slices.length - 1] = (slices.at(-1) ?? 0) + 1;
  };
  const sessions = Array.from({ length: 2500 }, (_, i) => new Counted(`S${i}`, onLook));
  for (const session of sessions) sweep.watch(session, true);
  sweep.start();
  await clock.advance(250);
  assert.equal(slices, [1000, 1000, 500]);
  assert.ok(
    sessions.every((s) => s.looks.length === 1),
    'each looked at once',
  );
  sweep.stop();
});

test.run();
