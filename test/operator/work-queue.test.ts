// WorkQueue: deduplication, one run per key at a time, backoff on failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkQueue } from '../../operator/work-queue.ts';
import { FakeClock, flush } from '../helpers/fake-clock.ts';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('a key added many times while waiting runs once', async () => {
  const runs: string[] = [];
  const gate = deferred();
  const queue = new WorkQueue<string>(
    async (key) => {
      if (key === 'blocker') await gate.promise;
      runs.push(key);
    },
    { concurrency: 1, clock: new FakeClock() },
  );
  queue.add('blocker');
  for (let i = 0; i < 10; i++) queue.add('a');
  gate.resolve();
  await queue.idle();
  assert.equal(runs, ['blocker', 'a']);
});

test('one key never runs twice at once; an add during a run causes exactly one more run', async () => {
  let active = 0;
  let maxActive = 0;
  let runs = 0;
  const gates = [deferred(), deferred()];
  const queue = new WorkQueue<string>(
    async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await gates[runs++]?.promise;
      active--;
    },
    { concurrency: 4, clock: new FakeClock() },
  );
  queue.add('a');
  await flush();
  queue.add('a');
  queue.add('a');
  gates[0]!.resolve();
  await flush();
  gates[1]!.resolve();
  await queue.idle();
  assert.is(maxActive, 1);
  assert.is(runs, 2);
});

test('different keys run concurrently up to the limit', async () => {
  let active = 0;
  let maxActive = 0;
  const gate = deferred();
  const queue = new WorkQueue<string>(
    async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    },
    { concurrency: 2, clock: new FakeClock() },
  );
  for (const key of ['a', 'b', 'c', 'd']) queue.add(key);
  await flush();
  assert.is(maxActive, 2);
  gate.resolve();
  await queue.idle();
});

test('a failing key is retried with exponential backoff, and success resets it', async () => {
  const clock = new FakeClock();
  const attempts: number[] = [];
  let failUntil = 3;
  const queue = new WorkQueue<string>(
    async () => {
      attempts.push(clock.now());
      if (attempts.length <= failUntil) throw new Error('boom');
    },
    { baseDelayMs: 100, maxDelayMs: 10_000, clock },
  );
  queue.add('a');
  await flush();
  await clock.advance(1000);
  assert.equal(attempts, [0, 100, 300, 700]);
  assert.is(queue.failuresOf('a'), 0);
  failUntil = 0;
});

test('backoff is capped at the maximum delay', async () => {
  const clock = new FakeClock();
  const attempts: number[] = [];
  const queue = new WorkQueue<string>(
    async () => {
      attempts.push(clock.now());
      throw new Error('always');
    },
    { baseDelayMs: 100, maxDelayMs: 400, clock },
  );
  queue.add('a');
  await clock.advance(1500);
  assert.equal(attempts, [0, 100, 300, 700, 1100, 1500]);
  await queue.stop();
  assert.is(clock.pending, 0, 'stop cancels the pending retry');
});

test('requeueAfterMs runs the key again later', async () => {
  const clock = new FakeClock();
  const attempts: number[] = [];
  const queue = new WorkQueue<string>(
    async () => {
      attempts.push(clock.now());
      return attempts.length < 3 ? { requeueAfterMs: 50 } : undefined;
    },
    { clock },
  );
  queue.add('a');
  await clock.advance(500);
  assert.equal(attempts, [0, 50, 100]);
});

test('an add supersedes a pending delayed retry', async () => {
  const clock = new FakeClock();
  const attempts: number[] = [];
  const queue = new WorkQueue<string>(
    async () => {
      attempts.push(clock.now());
      if (attempts.length === 1) throw new Error('once');
    },
    { baseDelayMs: 1000, clock },
  );
  queue.add('a');
  await flush();
  await clock.advance(10);
  queue.add('a');
  await clock.advance(2000);
  assert.equal(attempts, [0, 10]);
});

test('addUnlessDelayed does not cut a backoff short, add does', async () => {
  const clock = new FakeClock();
  const attempts: number[] = [];
  const queue = new WorkQueue<string>(
    async () => {
      attempts.push(clock.now());
      throw new Error('always');
    },
    { baseDelayMs: 1000, maxDelayMs: 1000, clock },
  );
  queue.add('a');
  await clock.advance(10);
  queue.addUnlessDelayed('a');
  await clock.advance(10);
  assert.equal(attempts, [0], 'the poll-style trigger waited for the backoff');
  queue.add('a');
  await clock.advance(10);
  assert.equal(attempts, [0, 20], 'a real change runs at once');
  await queue.stop();
});

test.run();
