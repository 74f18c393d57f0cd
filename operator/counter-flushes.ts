// Status writes that only move counters, at most `perSecond` over all
// sessions, in turn, evenly spaced: the bucket holds one write, never a
// burst (ten at once, as batched counter looks found them, doubled the
// round-trip p99 of 1,000 sessions where the API server shares the cores).
// A session refused a write waits in one FIFO line and is handed a write
// when the bucket refills (`onGranted`, once, by one timer), instead of each
// waiting session asking again on a timer of its own: with a thousand busy
// sessions the retries cost most of a core while 50 of them a second got
// through.
import { type Clock, systemClock } from '../common/clock.ts';
import { envInteger } from '../common/env.ts';
import { RateLimiter } from '../common/rate-limiter.ts';

/**
 * The default of CCCP_COUNTER_FLUSHES_PER_S. Each counter-only write costs
 * the API server and etcd about 5 ms of CPU, and a release writes at this
 * rate for as long as its sessions move bytes (every install of the chart
 * in a cluster adds its own). At 50 a second the test rig's API server and
 * etcd took about half a core for it and, sharing the cores, made the proxy
 * pod's round-trip p99 with 5,000 sessions 5.3–13.1 ms, where it was
 * 2.1–6.3 ms at 10 and 1.1–1.7 ms with no writes (README, "Cluster mode:
 * the counter writes set the tail here"). Stored counters lag about busy
 * sessions ÷ this rate seconds; `/status` reads the live view.
 */
const DEFAULT_COUNTER_FLUSHES_PER_S = 10;

/** CCCP_COUNTER_FLUSHES_PER_S as the operator reads it (a ConfigError names a bad value). */
export function counterFlushesFromEnv(env: NodeJS.ProcessEnv): number {
  return envInteger(env, 'CCCP_COUNTER_FLUSHES_PER_S', DEFAULT_COUNTER_FLUSHES_PER_S, 1, 10_000);
}

export class CounterFlushes {
  private readonly limiter: RateLimiter;
  /** Serials refused a write, oldest first. */
  private readonly waiting = new Set<string>();
  /** Serials handed a write that have not written yet. */
  private readonly granted = new Set<string>();
  private timer: unknown;
  private stopped = false;

  constructor(
    perSecond: number,
    private readonly onGranted: (serial: string) => void,
    private readonly clock: Clock = systemClock,
  ) {
    this.limiter = new RateLimiter(perSecond, 1);
  }

  /**
   * Whether a counter-only write of `serial` may go now. When not, the serial
   * waits in line and `onGranted` is called for it once its turn comes.
   */
  mayWrite(serial: string): boolean {
    if (this.granted.delete(serial)) return true;
    if (this.waiting.has(serial)) return false;
    // Nobody waiting: the bucket decides; else the line goes first.
    if (this.waiting.size === 0 && this.limiter.take(this.clock.now()) === 0) return true;
    this.waiting.add(serial);
    this.schedule(0);
    return false;
  }

  /** True when a counter write of `serial` is to come: it waits in line, or its turn was handed out and not yet taken. */
  due(serial: string): boolean {
    return this.waiting.has(serial) || this.granted.has(serial);
  }

  /** A status write of `serial` went out (it carried the counters), or the session is gone: it leaves the line. */
  forget(serial: string): void {
    this.waiting.delete(serial);
    this.granted.delete(serial);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.grant();
    }, delayMs);
  }

  /** Hands out what the bucket holds, oldest first, and sleeps until the next token. */
  private grant(): void {
    for (const serial of this.waiting) {
      const waitMs = this.limiter.take(this.clock.now());
      if (waitMs > 0) {
        this.schedule(waitMs);
        return;
      }
      this.waiting.delete(serial);
      this.granted.add(serial);
      this.onGranted(serial);
    }
  }
}
