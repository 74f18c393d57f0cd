// JSON-line logs. Fields name serials and peer addresses; tokens are never
// logged, and the redaction below keeps an Authorization header out too.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(name: string): Logger {
  return pino({
    name,
    level: process.env.CCCP_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', '*.headers.authorization'], censor: '[redacted]' },
  });
}

/** A logger that writes nothing, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
