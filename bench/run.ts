// `npm run bench`: the proxy (standalone mode, one session per pair) against
// HAProxy (TCP mode), socat and a direct connection, all on loopback, every
// figure measured in the same run; then the cluster mode (proxy pod and
// operator against the test rig's kube-apiserver) beside the same HAProxy
// figures; then the goals of issue 13, met or not. Writes
// bench/results/latest.{json,md}.
//
//   --quick              256 MiB transfers, 5,000 round trips, 1,000 sessions for 5 s (cluster too)
//   --seconds=N          length of the many-sessions phase's steady part (default 30)
//   --sessions=A,B       pair counts for the many-sessions phase (default 1000,5000)
//   --cluster-sessions=A pair counts for the cluster mode's phase (default as --sessions; "none" skips it)
//   --mib=N              bytes per throughput run, in MiB (default 1024)
//   --round-trips=N      64-byte round trips (default 20000)
//   --targets=a,b        a subset of proxy,haproxy,socat,direct
//   --no-cluster         skip the cluster-mode figures (they need the test rig's binaries)
//   --out=NAME           write bench/results/NAME.{json,md} (default latest)
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { clusterFigures } from './cluster.ts';
import { type OnLatency, onOffPairsPerSecond, onToListening } from './control-plane.ts';
import { EVENT_LOOP_DELAY_GAUGE } from './event-loop-delay.ts';
import { checkGoals } from './goals.ts';
import { BUFFERED_PROBE_RETRY_MS, closePairs, PROXY_PROBE_RETRY_MS } from './join.ts';
import { MiB, percentile, roundTrips, throughput } from './load.ts';
import { type ManySessionsResult, manySessions } from './many-sessions.ts';
import { PhaseFigures } from './phase-figures.ts';
import { type Figure, markdown, type Results, write } from './report.ts';
import { startStandalone, startTarget, TARGETS, type TargetName } from './targets.ts';
import { ensurePrograms, programVersion } from './tools.ts';

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k!, v ?? 'true'] as const;
  }),
);
const quick = args.has('quick');
const counts = (list: string) => (list === 'none' ? [] : list.split(',').map(Number));
const opts = {
  mib: Number(args.get('mib') ?? (quick ? 256 : 1024)),
  roundTrips: Number(args.get('round-trips') ?? (quick ? 5000 : 20_000)),
  sessions: counts(args.get('sessions') ?? (quick ? '1000' : '1000,5000')),
  clusterSessions: counts(args.get('cluster-sessions') ?? args.get('sessions') ?? (quick ? '1000' : '1000,5000')),
  seconds: Number(args.get('seconds') ?? (quick ? 5 : 30)),
  targets: (args.get('targets')?.split(',') as TargetName[] | undefined) ?? TARGETS,
  cluster: !args.has('no-cluster'),
  onCount: quick ? 200 : 1000,
  pairSeconds: quick ? 5 : 10,
  // Used only when no cluster phase runs: the restart figure otherwise takes the first phase's sessions.
  restartSessions: 1000,
};
const out = args.get('out') ?? 'latest';
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

ensurePrograms({ haproxy: 'haproxy', socat: 'socat' });

const started = Date.now();
const figures: Figure[] = [];
const notes: string[] = [
  'All load generators are the benchmark\'s own Node process (one event loop) on the same 2 cores as the forwarder under test; the "direct" column is that generator\'s own ceiling.',
  'HAProxy runs with nbthread 1 (the proxy is one event loop); socat forks one process per connection and is measured with all its children.',
  "CPU % is CPU time of the forwarding process(es) over the wall time of the phase's steady part (100 % = one core). RSS and PSS are summed over those processes at the end of the phase; PSS splits shared pages, so it is the fair memory figure for socat's forked children. RSS added per joined session is the RSS at the end of the phase minus the RSS of the idle forwarder before the pairs opened, over the pairs (kB = 1,000 bytes).",
  "The proxy's CPU and memory are those of the standalone mode's two node processes (the Control API with the reconciler, and the proxy process); tsx's esbuild helper processes are left out (production runs compiled JavaScript). The proxy process alone has rows of its own. In cluster mode the figures are the proxy pod process's, with the operator's CPU beside it in a row of its own; the HAProxy column of the cluster rows repeats HAProxy's figure of the same phase size measured above.",
  `Fair join probe: HAProxy, socat and a direct connection buffer the client's first byte until the far end is connected, so one 'p' from the client, answered by the device, proves a pair joined (a retry every ${BUFFERED_PROBE_RETRY_MS} ms stays, and is counted). The proxy drops bytes while a party is missing, so for it the device connects and registers first, the benchmark waits for the proxy's own device-connected event on its admin event stream (GET /v1/events), then connects the client and sends one probe; a retry every ${PROXY_PROBE_RETRY_MS} ms remains only as a safety net. The 'join probes retried' rows count every retry. Open and join time runs, for every target, from the first /on or connect to the last joined pair.`,
  `The proxy process's largest event-loop delay comes from its own gauge ${EVENT_LOOP_DELAY_GAUGE} (the largest delay since the previous scrape), scraped before the pairs open, after they joined, and after the steady part; "not reported" when the proxy has no such gauge.`,
];

function figure(f: Figure): Figure {
  figures.push(f);
  return f;
}

async function eachTarget(
  what: string,
  maxPairs: number,
  run: (t: Awaited<ReturnType<typeof startTarget>>) => Promise<void>,
): Promise<void> {
  for (const name of opts.targets) {
    log(`${what}: ${name}`);
    let target: Awaited<ReturnType<typeof startTarget>> | undefined;
    try {
      target = await startTarget(name, { maxPairs });
      await run(target);
    } catch (err) {
      log(`${what}: ${name} failed: ${(err as Error).message}`);
      notes.push(`${what} failed for ${name}: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      await target?.stop();
    }
  }
}

// 1. Single-stream throughput, and 2. 64-byte round trips, on one pair.
{
  const up = figure({
    id: 'throughput-up',
    title: `throughput client→device, ${opts.mib} MiB`,
    unit: 'MiB/s',
    better: 'higher',
    values: {},
  });
  const down = figure({
    id: 'throughput-down',
    title: `throughput device→client, ${opts.mib} MiB`,
    unit: 'MiB/s',
    better: 'higher',
    values: {},
  });
  const p50 = figure({
    id: 'rtt64-p50',
    title: `64-byte round trip p50 (${opts.roundTrips.toLocaleString('en-US')})`,
    unit: 'µs',
    better: 'lower',
    values: {},
  });
  const p99 = figure({
    id: 'rtt64-p99',
    title: `64-byte round trip p99 (${opts.roundTrips.toLocaleString('en-US')})`,
    unit: 'µs',
    better: 'lower',
    values: {},
  });
  await eachTarget('one stream', 1, async (target) => {
    const [pair] = (await target.openPairs(1)).pairs;
    try {
      up.values[target.name] = (await throughput(pair!, opts.mib * MiB, 'client→device')) / MiB;
      down.values[target.name] = (await throughput(pair!, opts.mib * MiB, 'device→client')) / MiB;
      const times = await roundTrips(pair!, opts.roundTrips);
      p50.values[target.name] = percentile(times, 50);
      p99.values[target.name] = percentile(times, 99);
      log(
        `  ${target.name}: ↑ ${up.values[target.name]!.toFixed(0)} MiB/s, ↓ ${down.values[target.name]!.toFixed(0)} MiB/s, rtt p50 ${p50.values[target.name]!.toFixed(0)} µs p99 ${p99.values[target.name]!.toFixed(0)} µs`,
      );
    } finally {
      closePairs([pair!]);
    }
  });
}

// 3. Many sessions at once, each exchanging a small message every second.
const fdLimit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
/** The benchmark holds 2 sockets per pair; the proxy 2 plus a listener per session. */
const fdsFor = (count: number) => count * 3 + 500;
const phaseLabel = (count: number) => `${count.toLocaleString('en-US')} sessions, 1 msg/s each for ${opts.seconds} s`;

function recordPhase(phase: PhaseFigures, name: TargetName, result: ManySessionsResult): void {
  const { line, notes: more } = phase.record(name, result);
  notes.push(...more);
  log(`  ${line}`);
}

for (const count of opts.sessions) {
  if (fdLimit < fdsFor(count)) {
    notes.push(`${count} sessions skipped: the open-file limit is ${fdLimit}, ${fdsFor(count)} are needed`);
    log(`skipping ${count} sessions: ulimit -n is ${fdLimit}`);
    continue;
  }
  const phase = new PhaseFigures(`many-${count}-`, phaseLabel(count), 'standalone');
  figures.push(...phase.all);
  await eachTarget(`${count} sessions`, count, async (target) => {
    recordPhase(phase, target.name, await manySessions(target, count, opts.seconds));
  });
}

/** /on until the port accepts, p50 and p99, in one mode. */
function onLatencyFigures(mode: 'standalone' | 'cluster', on: OnLatency): void {
  for (const [p, value] of [
    [50, on.p50Ms],
    [99, on.p99Ms],
  ] as const) {
    figure({
      id: `${mode}-on-p${p}`,
      title: `${mode}: /on until the port accepts, p${p} (${on.count} calls)`,
      unit: 'ms',
      better: 'lower',
      values: { proxy: value },
    });
  }
}

/** /on + /off pairs a second from one caller, in one mode. */
function onOffRateFigure(mode: 'standalone' | 'cluster', pairsPerSecond: number): void {
  figure({
    id: `${mode}-on-off-rate`,
    title: `${mode}: /on + /off pairs, one caller`,
    unit: 'pairs/s',
    better: 'higher',
    values: { proxy: pairsPerSecond },
  });
}

// 4. Control plane, standalone mode (no HAProxy or socat equivalent).
if (opts.targets.includes('proxy')) {
  log('control plane: standalone');
  const app = await startStandalone({ rangeSize: 50, env: { CCCP_LOG_LEVEL: 'warn' } });
  try {
    const call = (path: string) => app.call(path);
    const on = await onToListening(call, opts.onCount, 'CP-ON');
    onLatencyFigures('standalone', on);
    const rate = await onOffPairsPerSecond(call, opts.pairSeconds, 'CP-PAIR');
    onOffRateFigure('standalone', rate);
    log(`  /on p50 ${on.p50Ms.toFixed(1)} ms p99 ${on.p99Ms.toFixed(1)} ms; ${rate.toFixed(0)} /on+/off pairs/s`);
  } finally {
    await app.stop();
  }
}

// 4 and 5 in cluster mode, against the test rig's kube-apiserver; its
// many-sessions figures beside HAProxy's from the phase above.
if (opts.cluster && opts.targets.includes('proxy')) {
  log('cluster mode (test rig)');
  const started = performance.now();
  try {
    await clusterFigures(
      {
        onCount: Math.min(opts.onCount, 300),
        pairSeconds: opts.pairSeconds,
        sessions: opts.clusterSessions.filter((count) => fdLimit >= fdsFor(count)),
        seconds: opts.seconds,
        restartSessions: opts.restartSessions,
        log,
      },
      {
        onLatency(on) {
          onLatencyFigures('cluster', on);
          log(`  /on p50 ${on.p50Ms.toFixed(1)} ms p99 ${on.p99Ms.toFixed(1)} ms`);
        },
        onOffRate(pairsPerSecond) {
          onOffRateFigure('cluster', pairsPerSecond);
          log(`  ${pairsPerSecond.toFixed(1)} /on+/off pairs/s`);
        },
        manySessions(r) {
          const phase = new PhaseFigures(`cluster-many-${r.pairs}-`, `cluster: ${phaseLabel(r.pairs)}`, 'cluster');
          figures.push(...phase.all);
          recordPhase(phase, 'proxy', r);
          phase.borrowHaproxy(figures);
          log(`  cluster phase of ${r.pairs} sessions done ${((performance.now() - started) / 1000).toFixed(0)} s into cluster mode`);
        },
        restart(restart) {
          figure({
            id: 'cluster-restart',
            title: `cluster: ${restart.sessions.toLocaleString('en-US')} sessions listening again after kill -9 of the proxy pod, from its spawn`,
            unit: 's',
            better: 'lower',
            values: { proxy: restart.secondsFromSpawn },
          });
          figure({
            id: 'cluster-restart-from-ready',
            title: `cluster: ${restart.sessions.toLocaleString('en-US')} sessions listening again after kill -9 of the proxy pod, from its ready line`,
            unit: 's',
            better: 'lower',
            values: { proxy: restart.secondsFromReady },
          });
          log(
            `  restart: ${restart.secondsFromSpawn.toFixed(2)} s from spawn, ${restart.secondsFromReady.toFixed(2)} s from ready (goal ≤ 2 s from ready)`,
          );
        },
      },
    );
  } catch (err) {
    log(`cluster mode failed: ${(err as Error).message}`);
    notes.push(`cluster-mode figures not all measured: ${(err as Error).message.split('\n')[0]}`);
  }
  notes.push(
    `Cluster mode took ${((performance.now() - started) / 1000).toFixed(0)} s (rig start, /on figures, ${opts.clusterSessions.join(' and ')} sessions, restart).`,
  );
}

const results: Results = {
  startedAt: new Date(started).toISOString(),
  durationSeconds: (Date.now() - started) / 1000,
  machine: {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    haproxy: programVersion('haproxy', ['-v'], /version (\S+)/),
    socat: programVersion('socat', ['-V'], /socat version (\S+)/),
    openFiles: fdLimit,
  },
  options: { ...opts },
  figures,
  notes,
  goals: checkGoals(figures),
};
const dir = fileURLToPath(new URL('./results/', import.meta.url));
write(results, `${dir}${out}.json`, `${dir}${out}.md`);
console.log(`\n${markdown(results)}`);
log(`wrote bench/results/${out}.json and .md`);
process.exit(0);
