// Time as a dependency: every part whose behaviour depends on time takes a
// Clock, so tests drive the watchdogs, backoffs, leases and rate limits by
// hand instead of waiting for them.

export interface TimerOptions {
  /**
   * Whether the pending timer alone keeps the process running. Off by
   * default: background timers (retries, resyncs, lingering sockets) must not
   * hold a process open that has nothing else to do. On for work that must
   * still happen, such as a retry before anything else is listening.
   */
  keepAlive?: boolean;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(callback: () => void, ms: number, options?: TimerOptions): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(callback: () => void, ms: number, options?: TimerOptions): unknown;
  clearInterval(handle: unknown): void;
}

const settle = (timer: NodeJS.Timeout, options: TimerOptions | undefined) => (options?.keepAlive ? timer : timer.unref());

/** The system clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms, options) => settle(setTimeout(callback, ms), options),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (callback, ms, options) => settle(setInterval(callback, ms), options),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};
