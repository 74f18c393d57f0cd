import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RateLimiter } from '../../common/rate-limiter.ts';

test('a full bucket lets a burst of its size through, then spaces writes evenly', () => {
  const limiter = new RateLimiter(5);
  const now = 10_000;
  for (let i = 0; i < 5; i++) assert.is(limiter.take(now), 0, `write ${i} of the burst`);
  assert.is(limiter.take(now), 200, 'the sixth waits one fifth of a second');
  assert.is(limiter.take(now + 200), 0, 'and goes once that has passed');
});

test('a bucket of burst 1 spaces every write, even after a quiet spell', () => {
  const limiter = new RateLimiter(10, 1);
  assert.is(limiter.take(0), 0);
  assert.is(limiter.take(0), 100);
  assert.is(limiter.take(60_000), 0);
  assert.is(limiter.take(60_000), 100, 'an idle minute banks one write, not ten');
});

test('unlimited never waits', () => {
  const limiter = new RateLimiter(Number.POSITIVE_INFINITY);
  for (let i = 0; i < 1000; i++) assert.is(limiter.take(0), 0);
});

test('the bucket refills with time, up to its size', () => {
  const limiter = new RateLimiter(2);
  limiter.take(0);
  limiter.take(0);
  assert.ok(limiter.take(0) > 0);
  assert.is(limiter.take(60_000), 0);
  assert.is(limiter.take(60_000), 0);
  assert.ok(limiter.take(60_000) > 0, 'an idle minute does not bank more than the size');
});

test.run();
