// The operator's own counts (from its /metrics), and a wait until it has
// caught up with an opening: each connect of a pair is written to the
// session's status at once, so opening thousands of pairs leaves a backlog
// of status writes that the API server takes at its own pace (about 130 a
// second on the shared 2-core machine). A steady part measured meanwhile
// measures that backlog, not the sessions' steady state.
import { counterFlushesFromEnv } from '../operator/counter-flushes.ts';
import type { TestCluster } from '../test/helpers/cluster.ts';
import { request } from '../test/helpers/http.ts';

/** The operator's status writes and syncs so far. */
export async function operatorCounts(cluster: TestCluster, operator = 'operator-a'): Promise<{ writes: number; syncs: number }> {
  const text = (await request<string>(`${cluster.controlUrl(operator)}/metrics`, { timeoutMs: 30_000 })).body;
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(name))
      .reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
  return { writes: sum('cccp_operator_status_writes_total'), syncs: sum('cccp_operator_reconciles_total') };
}

/**
 * Waits until a second passes with no more status writes than the counter
 * flush rate allows (after at least two seconds, at most `maxSeconds`);
 * returns the seconds waited. The rate is by default the one the operators
 * started from this process read (they inherit its environment).
 */
export async function operatorCaughtUp(
  cluster: TestCluster,
  flushRate = counterFlushesFromEnv(process.env),
  maxSeconds = 120,
): Promise<number> {
  const started = performance.now();
  for (let waited = 0, last = await operatorCounts(cluster); waited < maxSeconds; waited++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = await operatorCounts(cluster);
    const settled = now.writes - last.writes <= flushRate + 2;
    last = now;
    if (settled && waited >= 2) break;
  }
  return (performance.now() - started) / 1000;
}
