// A token bucket, pure: the caller passes the time, so any clock drives it.

/**
 * A token bucket: `take` answers 0 when a write may go now, else how long to
 * wait. It holds at most `burst` tokens (default a second's worth): that
 * many may go at once after a quiet spell.
 */
export class RateLimiter {
  private tokens: number;
  private last = Number.NEGATIVE_INFINITY;
  private readonly capacity: number;

  constructor(
    private readonly perSecond: number,
    burst = perSecond,
  ) {
    this.capacity = Math.max(1, Math.min(burst, perSecond, 1e9));
    this.tokens = this.capacity;
  }

  take(nowMs: number): number {
    if (this.perSecond === Number.POSITIVE_INFINITY) return 0;
    if (this.last !== Number.NEGATIVE_INFINITY)
      this.tokens = Math.min(this.capacity, this.tokens + ((nowMs - this.last) / 1000) * this.perSecond);
    this.last = nowMs;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }
}
