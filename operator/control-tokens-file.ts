// Rotation of the Control API tokens without a restart. In a cluster the
// tokens are a mounted Secret: the kubelet swaps the file's contents in place
// (an atomic symlink swap) within about a minute of the Secret changing, so a
// poll of the file's contents catches every update, whichever way it was made.
// A read that fails or names no token keeps the tokens in force (fail closed).
import type { Logger } from '../common/log.ts';
import type { BearerTokens } from './bearer-tokens.ts';
import { readControlTokensFile } from './config.ts';

export class ControlTokensFile {
  private timer: NodeJS.Timeout | undefined;
  private current: string;

  constructor(
    private readonly file: string,
    private readonly tokens: BearerTokens,
    initial: readonly string[],
    private readonly logger: Logger,
    private readonly intervalMs = 2000,
  ) {
    this.current = initial.join(',');
  }

  start(): void {
    this.timer = setInterval(() => this.reload(), this.intervalMs);
    this.timer.unref();
  }

  /** Re-reads the file; applies it when it changed and is valid. */
  reload(): void {
    let next: string[];
    try {
      next = readControlTokensFile(this.file);
    } catch (err) {
      this.logger.error({ err }, 'control tokens file unusable; the tokens in force stay');
      return;
    }
    const text = next.join(',');
    if (text === this.current) return;
    this.current = text;
    this.tokens.replace(next);
    // Never the tokens themselves: only how many there are.
    this.logger.info({ count: next.length }, 'control tokens reloaded');
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
