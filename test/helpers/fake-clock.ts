// A manual Clock for tests that must not wait for real time: timers fire
// only when the test advances it.
import type { Clock } from '../../common/clock.ts';

interface Task {
  at: number;
  callback: () => void;
  /** Set for intervals: fires again this long after each run. */
  every?: number;
}

export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private readonly tasks = new Map<number, Task>();

  constructor(start = 0) {
    this.current = start;
  }

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

  setInterval(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    const every = Math.max(1, ms);
    this.tasks.set(id, { at: this.current + every, callback, every });
    return id;
  }

  clearInterval(handle: unknown): void {
    this.tasks.delete(handle as number);
  }

  get pending(): number {
    return this.tasks.size;
  }

  /** Moves time forward, firing due callbacks in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      await flush();
      const due = [...this.tasks.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, task] = due;
      if (task.every === undefined) this.tasks.delete(id);
      else task.at += task.every;
      this.current = task.at - (task.every ?? 0);
      task.callback();
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
