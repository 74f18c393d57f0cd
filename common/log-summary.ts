// Log lines that anyone on the network can cause (a refused client, a device
// registering, a Control API request) go through here, so a flood cannot
// inflate the logs: per message, the first few lines of each interval are
// written in full, the rest are counted and reported in one summary line at
// the end of the interval ("312 more ... in the last 10 s", with the first and
// the last one). At debug level every line is written in full.
import { envInteger } from './env.ts';
import type { Logger } from './log.ts';

/** Full lines per message and interval before the rest are only counted. */
export const FULL_LINES_PER_INTERVAL = 10;

type Level = 'info' | 'warn';
type Fields = Record<string, unknown>;

interface Window {
  level: Level;
  written: number;
  suppressed: number;
  first: Fields | undefined;
  last: Fields | undefined;
  timer: NodeJS.Timeout;
}

export class LogSummary {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly fullLines = FULL_LINES_PER_INTERVAL,
  ) {}

  info(fields: Fields, message: string): void {
    this.write('info', fields, message);
  }

  warn(fields: Fields, message: string): void {
    this.write('warn', fields, message);
  }

  /** Writes the pending summaries now and stops the timers. */
  close(): void {
    for (const message of [...this.windows.keys()]) this.flush(message);
  }

  private write(level: Level, fields: Fields, message: string): void {
    if (!this.logger.isLevelEnabled(level)) return;
    if (this.logger.isLevelEnabled('debug')) {
      this.logger[level](fields, message);
      return;
    }
    let window = this.windows.get(message);
    if (!window) {
      const timer = setTimeout(() => this.flush(message), this.intervalMs);
      timer.unref();
      window = { level, written: 0, suppressed: 0, first: undefined, last: undefined, timer };
      this.windows.set(message, window);
    }
    if (window.written < this.fullLines) {
      window.written++;
      this.logger[level](fields, message);
      return;
    }
    const stamped = { ...fields, at: new Date().toISOString() };
    window.suppressed++;
    window.first ??= stamped;
    window.last = stamped;
  }

  private flush(message: string): void {
    const window = this.windows.get(message);
    if (!window) return;
    clearTimeout(window.timer);
    this.windows.delete(message);
    if (window.suppressed === 0) return;
    const seconds = this.intervalMs / 1000;
    this.logger[window.level](
      { summary: message, count: window.suppressed, intervalSeconds: seconds, first: window.first, last: window.last },
      `${window.suppressed} more "${message}" in the last ${seconds} s`,
    );
  }
}

/** CCCP_LOG_SUMMARY_S: the interval of the rate-limited log summaries (proxy pod and Control API). */
export function logSummaryMsFromEnv(env: NodeJS.ProcessEnv): number {
  return envInteger(env, 'CCCP_LOG_SUMMARY_S', 10, 1, 3600) * 1000;
}
