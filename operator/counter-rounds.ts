// Counter looks for views that take counters on demand (see ProxyView): no
// feed says whose counters moved, so the sessions with a party attached (the
// only ones whose counters can move) are looked at in turn. Each waits at
// least `minIntervalMs` between looks, and at most `perSecond` looks go out
// over all sessions, so the cost is bounded however many sessions are busy:
// with 5,000 of them, the proxy answers `perSecond` lookups instead of
// serving 5,000 counter entries a second.
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
    private readonly look: (serial: string) => void,
    private readonly clock: Clock = systemClock,
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

  /** Looks at the serials whose time has come, oldest first, while the rate allows; then sleeps until the next. */
  private lookDue(): void {
    for (const [serial, dueAt] of this.line) {
      const now = this.clock.now();
      if (dueAt > now) {
        this.schedule(dueAt - now);
        return;
      }
      const waitMs = this.limiter.take(now);
      if (waitMs > 0) {
        this.schedule(waitMs);
        return;
      }
      this.line.delete(serial);
      this.look(serial);
    }
  }
}
