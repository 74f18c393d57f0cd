// Counter looks for views that take counters on demand (see ProxyView): no
// feed says whose counters moved, so the sessions with a party attached (the
// only ones whose counters can move) are looked at in turn. Each waits at
// least `minIntervalMs` between looks, and at most `perSecond` looks go out
// over all sessions, so the cost is bounded however many sessions are busy.
// Looks go out in batches at most every `batchMs` (one request to the proxy
// each): with 5,000 busy sessions and 50 looks a second, the proxy answers
// five small lookups a second instead of serving 5,000 counter entries.
import { type Clock, systemClock } from '../common/clock.ts';
import { RateLimiter } from '../common/rate-limiter.ts';

export class CounterRounds {
  private readonly limiter: RateLimiter;
  /** Serials to look at, with the time each may be looked at; insertion order is that time's order. */
  private readonly line = new Map<string, number>();
  private timer: unknown;
  private stopped = false;

  constructor(
    perSecond: number,
    private readonly minIntervalMs: number,
    private readonly look: (serials: string[]) => void,
    private readonly clock: Clock = systemClock,
    private readonly batchMs = 200,
  ) {
    this.limiter = new RateLimiter(perSecond);
  }

  /** The serial has a party attached: it is looked at once `minIntervalMs` has passed, in turn. Nothing if it waits already. */
  watch(serial: string): void {
    if (this.stopped || this.line.has(serial)) return;
    this.line.set(serial, this.clock.now() + this.minIntervalMs);
    if (this.line.size === 1) this.schedule(this.minIntervalMs);
  }

  /** The session ended, went, or has no party any more. */
  forget(serial: string): void {
    this.line.delete(serial);
  }

  /** Serials waiting for a look. */
  get size(): number {
    return this.line.size;
  }

  stop(): void {
    this.stopped = true;
    this.line.clear();
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.lookDue();
      },
      Math.max(0, delayMs),
    );
  }

  /**
   * Looks at the serials whose time has come, oldest first, as many as the
   * rate allows, in one batch; then sleeps until the next is due, and at
   * least `batchMs`, so the looks of that time go together.
   */
  private lookDue(): void {
    const now = this.clock.now();
    const batch: string[] = [];
    let nextMs: number | undefined;
    for (const [serial, dueAt] of this.line) {
      if (dueAt > now) {
        nextMs = dueAt - now;
        break;
      }
      const waitMs = this.limiter.take(now);
      if (waitMs > 0) {
        nextMs = waitMs;
        break;
      }
      this.line.delete(serial);
      batch.push(serial);
    }
    // Before the look: a serial it watches again waits behind those already in line.
    if (nextMs !== undefined) this.schedule(Math.max(nextMs, this.batchMs));
    if (batch.length > 0) this.look(batch);
  }
}
