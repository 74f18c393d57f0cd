// A keyed work queue in the manner of controller-runtime's: adding a key that
// is already waiting does nothing, one key never runs twice at once (a key
// added while it runs runs once more afterwards), and a failing key is retried
// with exponential backoff. The clock is injected so tests control time.

import { type Clock, systemClock } from '../common/clock.ts';

/** What a handler may ask for besides success: run this key again later. */
export interface WorkResult {
  requeueAfterMs?: number;
}

export type WorkHandler<K> = (key: K) => Promise<WorkResult | void>;

export interface WorkQueueOptions {
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  clock?: Clock;
  onError?: (key: unknown, error: unknown, retryInMs: number) => void;
}

export class WorkQueue<K> {
  private readonly waiting: K[] = [];
  private readonly waitingSet = new Set<K>();
  private readonly running = new Set<K>();
  /** Keys added while running: they go back into the queue when they finish. */
  private readonly dirty = new Set<K>();
  private readonly delayed = new Map<K, { handle: unknown; dueAt: number }>();
  private readonly failures = new Map<K, number>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly clock: Clock;
  private readonly onError: WorkQueueOptions['onError'];
  private stopped = false;

  constructor(
    private readonly handler: WorkHandler<K>,
    options: WorkQueueOptions = {},
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.clock = options.clock ?? systemClock;
    this.onError = options.onError;
  }

  /** Queues key unless it is already waiting; a pending delayed retry is superseded. */
  add(key: K): void {
    if (this.stopped) return;
    this.cancelDelayed(key);
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waitingSet.has(key)) return;
    this.waitingSet.add(key);
    this.waiting.push(key);
    this.pump();
  }

  /**
   * Queues key unless a delayed run (a backoff retry or a requested requeue)
   * is already pending for it: for periodic triggers such as a poll, which
   * must not defeat the backoff of a failing key.
   */
  addUnlessDelayed(key: K): void {
    if (this.delayed.has(key)) return;
    this.add(key);
  }

  /** Queues key after delayMs; an earlier pending delay for the key wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const dueAt = this.clock.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.dueAt <= dueAt) return;
    this.cancelDelayed(key);
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { handle, dueAt });
  }

  /** Consecutive failures of key so far (0 after a success). */
  failuresOf(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  get length(): number {
    return this.waiting.length;
  }

  /** Resolves when nothing waits or runs (delayed retries do not count). */
  idle(): Promise<void> {
    if (this.waiting.length === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops waiting and delayed keys and waits for running handlers to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const key of [...this.delayed.keys()]) this.cancelDelayed(key);
    this.waiting.length = 0;
    this.waitingSet.clear();
    this.dirty.clear();
    await this.idle();
  }

  private cancelDelayed(key: K): void {
    const entry = this.delayed.get(key);
    if (!entry) return;
    this.clock.clearTimeout(entry.handle);
    this.delayed.delete(key);
  }

  private backoffMs(failures: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(failures - 1, 30));
  }

  private pump(): void {
    while (!this.stopped && this.running.size < this.concurrency) {
      const index = this.waiting.findIndex((key) => !this.running.has(key));
      if (index === -1) break;
      const [key] = this.waiting.splice(index, 1) as [K];
      this.waitingSet.delete(key);
      this.running.add(key);
      void this.run(key);
    }
    this.notifyIdle();
  }

  private async run(key: K): Promise<void> {
    let retryInMs: number | undefined;
    try {
      const result = await this.handler(key);
      this.failures.delete(key);
      retryInMs = result?.requeueAfterMs;
    } catch (error) {
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      retryInMs = this.backoffMs(failures);
      this.onError?.(key, error, retryInMs);
    } finally {
      this.running.delete(key);
    }
    if (this.dirty.delete(key)) this.add(key);
    else if (retryInMs !== undefined) this.addAfter(key, retryInMs);
    this.pump();
  }

  private notifyIdle(): void {
    if (this.waiting.length !== 0 || this.running.size !== 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
