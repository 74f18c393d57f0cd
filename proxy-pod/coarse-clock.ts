// A clock read once a second, for timestamps taken on the data plane's hot
// path: a per-chunk "last activity" stamp is one property read instead of a
// Date.now() call per chunk. Accurate to about a second, which is all
// /status promises and all an idle timeout needs.
let seconds = Math.floor(Date.now() / 1000);
let ticker: NodeJS.Timeout | undefined;

function tick(): void {
  seconds = Math.floor(Date.now() / 1000);
}

/** Whole seconds since the epoch, at most about one second old. */
export function coarseSeconds(): number {
  // Started on first use and unref'd, so it never keeps a process alive.
  if (ticker === undefined) {
    tick();
    ticker = setInterval(tick, 1000);
    ticker.unref();
  }
  return seconds;
}
