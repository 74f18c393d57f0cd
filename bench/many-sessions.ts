// One many-sessions phase against one forwarder: open and join N pairs,
// then every pair exchanges a small message once a second. What it costs the
// forwarder is read from /proc before the pairs open (the idle forwarder),
// before and after the steady part; the proxy's largest event-loop delay from
// its own metrics, once for the opening and once for the steady part.
import { scrapeEventLoopDelayMs } from './event-loop-delay.ts';
import { closePairs, type OpenedPairs } from './join.ts';
import { percentile, steadySessions } from './load.ts';
import { usageOf } from './process-usage.ts';

export interface SessionsUnderTest {
  /** The processes whose CPU and memory count (empty: not measured). */
  pids(): number[];
  /** The proxy process alone, when the forwarder has a control plane beside it. */
  proxyPid?(): number | undefined;
  /** Processes measured beside the forwarder, not counted in its figures (the test rig's API server and etcd). */
  restPids?(): number[];
  /** The proxy process's Prometheus metrics, for its event-loop delay. */
  metricsUrl?: string;
  openPairs(count: number): Promise<OpenedPairs>;
  /** Waits until the control plane has caught up with the opening (its status writes done); returns the seconds waited. */
  settle?(): Promise<number>;
}

export interface ProcessCost {
  /** CPU time over the steady part's wall time, in % of one core. */
  cpuPercent: number;
  rssBytes: number;
  pssBytes: number;
  processes: number;
  /** RSS at the end of the phase minus RSS before the pairs opened, over the pairs. */
  rssAddedPerPairBytes: number;
}

export interface ManySessionsResult {
  pairs: number;
  /** From the first /on or connect to the last joined pair. */
  openSeconds: number;
  probeRetries: number;
  signalsMissed: number;
  /** Of openSeconds, the /on calls (proxy only). */
  onSeconds: number | undefined;
  /** /on calls asked again after request_timed_out (proxy only). */
  onRetries: number;
  rttP99Us: number;
  roundTrips: number;
  lost: number;
  /** Undefined when nothing is measured (a direct connection). */
  cost: ProcessCost | undefined;
  proxyProcess: ProcessCost | undefined;
  /** CPU of `restPids` over the steady part, in % of one core; undefined without them. */
  restCpuPercent: number | undefined;
  /** Seconds between the last joined pair and the steady part, waiting for the control plane to catch up (`settle`). */
  settleSeconds: number | undefined;
  /** Largest event-loop delay of the proxy process; undefined when it does not report one. */
  loopDelayMs: { opening: number | undefined; steady: number | undefined } | undefined;
}

type Usage = ReturnType<typeof usageOf>;

/** CPU time between `before` and `after` over `wallSeconds`, in % of one core; undefined when no process was measured. */
export function cpuPercentOf(before: Usage, after: Usage, wallSeconds: number): number | undefined {
  return after.processes === 0 ? undefined : ((after.cpuSeconds - before.cpuSeconds) / wallSeconds) * 100;
}

/** What the pairs cost the processes: `idle` before they opened, `before` and `after` the steady part. */
export function costOf(idle: Usage, before: Usage, after: Usage, wallSeconds: number, pairs: number): ProcessCost | undefined {
  const cpuPercent = cpuPercentOf(before, after, wallSeconds);
  if (cpuPercent === undefined) return undefined;
  return {
    cpuPercent,
    rssBytes: after.rssBytes,
    pssBytes: after.pssBytes,
    processes: after.processes,
    rssAddedPerPairBytes: (after.rssBytes - idle.rssBytes) / pairs,
  };
}

export async function manySessions(target: SessionsUnderTest, count: number, seconds: number): Promise<ManySessionsResult> {
  // Asked again each time: socat forks a process per connection.
  const all = () => usageOf(target.pids());
  const proxy = () => {
    const pid = target.proxyPid?.();
    return usageOf(pid === undefined ? [] : [pid]);
  };
  const idle = all();
  const idleProxy = proxy();
  const rest = () => usageOf(target.restPids?.() ?? []);
  const metricsUrl = target.metricsUrl;
  if (metricsUrl) await scrapeEventLoopDelayMs(metricsUrl);

  const opening = performance.now();
  const opened = await target.openPairs(count);
  const openSeconds = (performance.now() - opening) / 1000;
  try {
    const openingDelay = metricsUrl ? await scrapeEventLoopDelayMs(metricsUrl) : undefined;
    const settleSeconds = await target.settle?.();
    // What the proxy's loop met while the control plane caught up is neither the opening's nor the steady part's.
    if (metricsUrl && settleSeconds !== undefined) await scrapeEventLoopDelayMs(metricsUrl);
    const before = [all(), proxy(), rest()] as const;
    const steadyStarted = performance.now();
    const { times, lost } = await steadySessions(opened.pairs, seconds);
    const after = [all(), proxy(), rest()] as const;
    const wall = (performance.now() - steadyStarted) / 1000;
    const steadyDelay = metricsUrl ? await scrapeEventLoopDelayMs(metricsUrl) : undefined;
    return {
      pairs: count,
      openSeconds,
      probeRetries: opened.probeRetries,
      signalsMissed: opened.signalsMissed,
      onSeconds: opened.onSeconds,
      onRetries: opened.onRetries ?? 0,
      settleSeconds,
      rttP99Us: percentile(times, 99),
      roundTrips: times.length,
      lost,
      cost: costOf(idle, before[0], after[0], wall, count),
      proxyProcess: costOf(idleProxy, before[1], after[1], wall, count),
      restCpuPercent: cpuPercentOf(before[2], after[2], wall),
      loopDelayMs: metricsUrl ? { opening: openingDelay, steady: steadyDelay } : undefined,
    };
  } finally {
    closePairs(opened.pairs);
  }
}
