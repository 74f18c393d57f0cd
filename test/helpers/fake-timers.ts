// A manual clock implementing operator/work-queue.ts's Timers, for tests that
// must not wait for real time.
import type { Timers } from '../../operator/work-queue.ts';

export class FakeTimers implements Timers {
  private current = 0;
  private nextId = 1;
  private readonly tasks = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.tasks.set(id, { at: this.current + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.tasks.delete(handle as number);
  }

  get pending(): number {
    return this.tasks.size;
  }

  /** Moves time forward, firing due callbacks in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      await flush();
      const due = [...this.tasks.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.tasks.delete(due[0]);
      this.current = due[1].at;
      due[1].callback();
      await flush();
    }
    this.current = until;
    await flush();
  }
}

/** Lets pending promise callbacks run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
