// The activity sweep: what turns the data plane's bare byte counts into
// activity times and change-feed entries, so that a chunk costs one integer
// add and nothing else. About every 250 ms it looks at the sessions that have
// a party attached (the only ones whose counters can move), a slice at a time
// with a turn of the event loop between slices, so 5,000 sessions never stall
// the data plane for the whole walk.
import type { Clock } from '../common/clock.ts';

export interface Sweepable {
  /** Stamps what moved since the last look with `nowMs`; true when anything did. */
  sweep(nowMs: number): boolean;
}

export interface ActivitySweepOptions<T extends Sweepable> {
  clock: Clock;
  /** Time between sweeps. */
  intervalMs?: number;
  /** Sessions looked at per turn of the event loop. */
  sliceSize?: number;
  /** Called for each session whose counters moved. */
  moved(session: T): void;
}

export const SWEEP_INTERVAL_MS = 250;
const SLICE_SIZE = 1000;

export class ActivitySweep<T extends Sweepable> {
  private readonly watched = new Set<T>();
  private readonly intervalMs: number;
  private readonly sliceSize: number;
  private timer: unknown;
  private running = false;
  private stopped = false;

  constructor(private readonly opts: ActivitySweepOptions<T>) {
    this.intervalMs = opts.intervalMs ?? SWEEP_INTERVAL_MS;
    this.sliceSize = opts.sliceSize ?? SLICE_SIZE;
  }

  /** Starts the timer (unref'd: it never keeps the process alive). */
  start(): void {
    this.stopped = false;
    this.timer ??= this.opts.clock.setInterval(() => this.sweep(), this.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    this.opts.clock.clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  /** Sessions with a party attached; the caller keeps this current. */
  watch(session: T, connected: boolean): void {
    if (connected) this.watched.add(session);
    else this.watched.delete(session);
  }

  get size(): number {
    return this.watched.size;
  }

  /** One walk over the watched sessions; a tick that finds the last walk still running is skipped. */
  private sweep(): void {
    if (this.running || this.watched.size === 0) return;
    this.running = true;
    const sessions = [...this.watched];
    const slice = (from: number) => {
      if (this.stopped) {
        this.running = false;
        return;
      }
      const now = this.opts.clock.now();
      const to = Math.min(from + this.sliceSize, sessions.length);
      for (let i = from; i < to; i++) {
        const session = sessions[i] as T;
        // Gone since the walk began: its detach already stamped its last bytes.
        if (this.watched.has(session) && session.sweep(now)) this.opts.moved(session);
      }
      if (to < sessions.length) setImmediate(slice, to);
      else this.running = false;
    };
    slice(0);
  }
}
