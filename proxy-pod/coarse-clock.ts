// A clock read once a second, for timestamps taken on the data plane's hot
// path: a per-chunk "last activity" stamp is one read of `coarseNowMs`
// instead of a Date.now() call per chunk. Accurate to about a second, which
// is all /status promises and all an idle timeout needs. Connects refresh
// it, so a byte received after a connect is never stamped before that connect.

/** How often the clock is read; a stamp lags the real time by at most this. */
export const COARSE_TICK_MS = 1000;

/** Milliseconds since the epoch, at most COARSE_TICK_MS old once the clock runs. */
export let coarseNowMs = Date.now();
let ticker: NodeJS.Timeout | undefined;

function tick(): void {
  coarseNowMs = Date.now();
}

/** Starts the ticker (idempotent); unref'd, so it never keeps a process alive. */
export function startCoarseClock(): void {
  if (ticker !== undefined) return;
  tick();
  ticker = setInterval(tick, COARSE_TICK_MS);
  ticker.unref();
}

/** Reads the real clock now (for rare events such as a connect) and returns it. */
export function refreshCoarseClock(): number {
  startCoarseClock();
  tick();
  return coarseNowMs;
}
