// The readers of the admin API's event stream (GET /v1/events).
//
// Each event is serialized once for all readers, and the events of one turn
// of the event loop reach each reader in one write. Before, every event was
// its own JSON text and its own write system call for every reader: while
// 1,000 pairs joined (two events each, two readers), those writes were 28 %
// of the proxy process's CPU. A burst of connects is what devices coming
// back after a mobile network's outage make.
//
// A reader that stops reading is cut once more than MAX_WAITING_BYTES wait
// for it, instead of the process holding every event since: events are
// hints (the change feed is the record), and a reader that reconnects reads
// the feed from its cursor.
import type { ProxyEvent } from '../common/admin-protocol.ts';

/** What the fan-out needs of a reader's response. */
export interface EventReader {
  /** Queues `text`; false once the reader is behind. */
  write(text: string): boolean;
  /** Bytes queued and not yet taken by the reader. */
  readonly writableLength: number;
  /** Ended (the API closing): nothing more may be written. */
  readonly writableEnded: boolean;
  end(): void;
  destroy(): void;
}

/** Where the events come from: returns the unsubscribe. */
export type EventSource = (listener: (event: ProxyEvent) => void) => () => void;

/** About twice what 5,000 sessions' connects make (two events each, 700-770 bytes): only a reader that stopped is cut. */
export const MAX_WAITING_BYTES = 16 * 1024 * 1024;

export interface EventFanoutOptions {
  source: EventSource;
  /** Runs `flush` once the current turn of the event loop has handled its I/O. */
  schedule?: (flush: () => void) => void;
  /** Told of a reader cut for being too far behind. */
  onCut?: (waitingBytes: number) => void;
}

export class EventFanout {
  /** Each reader, and how many of the turn's lines it joined after. */
  private readonly readers = new Map<EventReader, number>();
  private lines: string[] = [];
  private unsubscribe: (() => void) | undefined;
  private readonly schedule: (flush: () => void) => void;

  constructor(private readonly opts: EventFanoutOptions) {
    this.schedule = opts.schedule ?? ((flush) => void setImmediate(flush));
  }

  /** `reader` gets every event from now on (and `first`, before them). */
  add(reader: EventReader, first: ProxyEvent | Record<string, unknown>): void {
    reader.write(line(first));
    this.readers.set(reader, this.lines.length);
    this.unsubscribe ??= this.opts.source((event) => this.queue(event));
  }

  /** Writes to `reader` alone (its heartbeat), after the events it has been sent. */
  send(reader: EventReader, event: ProxyEvent | Record<string, unknown>): void {
    if (this.readers.has(reader)) this.write(reader, line(event));
  }

  remove(reader: EventReader): void {
    if (!this.readers.delete(reader) || this.readers.size > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  get size(): number {
    return this.readers.size;
  }

  /** Ends every reader's stream (the API closing); nothing more is written to them. */
  endAll(): void {
    for (const reader of [...this.readers.keys()]) {
      this.remove(reader);
      reader.end();
    }
  }

  private queue(event: ProxyEvent): void {
    if (this.lines.length === 0) this.schedule(() => this.flush());
    this.lines.push(line(event));
  }

  private flush(): void {
    const lines = this.lines;
    this.lines = [];
    const all = lines.join('');
    for (const [reader, from] of this.readers) {
      this.readers.set(reader, 0);
      if (from < lines.length) this.write(reader, from === 0 ? all : lines.slice(from).join(''));
    }
  }

  private write(reader: EventReader, text: string): void {
    // Written after its end, a response emits an error nobody listens for.
    if (reader.writableEnded) return;
    reader.write(text);
    if (reader.writableLength <= MAX_WAITING_BYTES) return;
    this.opts.onCut?.(reader.writableLength);
    this.remove(reader);
    reader.destroy();
  }
}

function line(event: ProxyEvent | Record<string, unknown>): string {
  return `${JSON.stringify(event)}\n`;
}
