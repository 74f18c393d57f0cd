// `npm run bench`: the proxy (standalone mode, one session per pair) against
// HAProxy (TCP mode), a bare Node forwarder, socat and a direct connection, all on loopback, every
// figure measured in the same run; then the cluster mode (proxy pod and
// operator against the test rig's kube-apiserver) beside the same HAProxy
// figures; then the scale-out figures (the forwarded hop between two proxy
// pods against a same-pod join, and sessions spread over several proxy pods,
// each pod beside HAProxy); then the goals of issue 13, met or not. Writes
// bench/results/latest.{json,md}.
//
//   --quick              256 MiB transfers, 5,000 round trips, 1,000 sessions for 5 s (cluster too)
//   --seconds=N          length of the many-sessions phase's steady part (default 30)
//   --sessions=A,B       pair counts for the many-sessions phase (default 1000,5000)
//   --cluster-sessions=A pair counts for the cluster mode's phase (default as --sessions; "none" skips it)
//   --mib=N              bytes per throughput run, in MiB (default 1024)
//   --round-trips=N      64-byte round trips (default 20000)
//   --targets=a,b        a subset of proxy,haproxy,node,socat,direct
//   --no-cluster         skip the single-pod cluster-mode figures (they need the test rig's binaries)
//   --no-hop             skip the forwarded-hop figures (two proxy pods, no API server; about 30 s)
//   --spread=PxN         P proxy pods × N sessions each through one operator, against the test rig, each pod
//                        beside HAProxy's N-session figures (run --sessions=N too); default none: 3x5000 alone
//                        takes 6–8 minutes on the shared 2-core machine, most of it the 15,000 /on calls
//   --sources            run the project's processes from the TypeScript sources through tsx instead of
//                        the compiled JavaScript in dist/ (built first, as `npm start` does)
//   --out=NAME           write bench/results/NAME.{json,md} (default latest)
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { clusterFigures } from './cluster.ts';
import { controlClient, type OnLatency, onOffPairsPerSecond, onToListening } from './control-plane.ts';
import { EVENT_LOOP_DELAY_GAUGE } from './event-loop-delay.ts';
import { checkGoals, GOALS, spreadGoals } from './goals.ts';
import { forwardedHop, type HopVariant } from './hop.ts';
import { bareHttpRoundTrips } from './http-floor.ts';
import { BUFFERED_PROBE_RETRY_MS, closePairs, type Pair, PROXY_PROBE_RETRY_MS } from './join.ts';
import { type Direction, MiB, percentile, roundTrips, throughput } from './load.ts';
import { type ManySessionsResult, manySessions } from './many-sessions.ts';
import { PhaseFigures } from './phase-figures.ts';
import { type Figure, markdown, type Results, write } from './report.ts';
import { spreadFigures } from './spread.ts';
import { startStandalone, startTarget, TARGETS, type TargetName } from './targets.ts';
import { benchArgs, ensurePrograms, programVersion, useCompiledBuild } from './tools.ts';

const args = benchArgs();
const quick = args.has('quick');
const counts = (list: string) => (list === 'none' ? [] : list.split(',').map(Number));
/** `--spread=3x5000`: pods and sessions per pod; undefined for "none". */
function spread(value: string): { pods: number; perPod: number } | undefined {
  if (value === 'none') return undefined;
  const match = /^(\d+)x(\d+)$/.exec(value);
  if (!match || Number(match[1]) < 2 || Number(match[2]) < 1)
    throw new Error(`--spread takes PODSxSESSIONS with at least 2 pods (e.g. 3x5000) or none, not "${value}"`);
  return { pods: Number(match[1]), perPod: Number(match[2]) };
}
const opts = {
  mib: Number(args.get('mib') ?? (quick ? 256 : 1024)),
  roundTrips: Number(args.get('round-trips') ?? (quick ? 5000 : 20_000)),
  sessions: counts(args.get('sessions') ?? (quick ? '1000' : '1000,5000')),
  clusterSessions: counts(args.get('cluster-sessions') ?? args.get('sessions') ?? (quick ? '1000' : '1000,5000')),
  seconds: Number(args.get('seconds') ?? (quick ? 5 : 30)),
  targets: (args.get('targets')?.split(',') as TargetName[] | undefined) ?? TARGETS,
  cluster: !args.has('no-cluster'),
  hop: !args.has('no-hop'),
  spread: spread(args.get('spread') ?? 'none'),
  onCount: quick ? 200 : 1000,
  // /on calls of a fresh process before the measured ones (its JIT warm-up), reported apart.
  onWarmup: quick ? 100 : 500,
  pairSeconds: quick ? 5 : 10,
  // Used only when no cluster phase runs: the restart figure otherwise takes the first phase's sessions.
  restartSessions: 1000,
  compiled: !args.has('sources'),
};
const out = args.get('out') ?? 'latest';
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

ensurePrograms({ haproxy: 'haproxy', socat: 'socat' });
if (opts.compiled) useCompiledBuild();

const started = Date.now();
// Other work on the machine shows in the load average: a busy machine makes every figure noisier.
const loadAtStart = loadavg()[0]!;
const figures: Figure[] = [];
const notes: string[] = [
  'All load generators are the benchmark\'s own Node process (one event loop) on the same 2 cores as the forwarder under test; the "direct" column is that generator\'s own ceiling.',
  'HAProxy runs with nbthread 1 (the proxy is one event loop); socat forks one process per connection and is measured with all its children.',
  'The "node" column is the least a Node process can do to forward TCP (bench/node-forwarder.mjs: one listener, a connection to the device per client, the two piped both ways; no sessions, counters, telemetry or control plane), on this machine\'s Node: a floor under what the proxy can reach in Node.',
  "The many-sessions load follows one schedule: pair i sends at i/n of every second, and a 1 ms tick sends whatever has come due. (Until this was so, a timer per pair let the pairs whose first timer fired late stay together: with 5,000 pairs, the 10 ms after the 20th of every second carried 2.5 times their share of the sends in one burst, and most round trips over 2 ms, for every target, were that burst's.)",
  "CPU % is CPU time of the forwarding process(es) over the wall time of the phase's steady part (100 % = one core). RSS and PSS are summed over those processes at the end of the phase; PSS splits shared pages, so it is the fair memory figure for socat's forked children. RSS added per joined session is the RSS at the end of the phase minus the RSS of the idle forwarder before the pairs opened, over the pairs (kB = 1,000 bytes).",
  `The proxy's CPU and memory are those of the standalone mode's two node processes (the Control API with the reconciler, and the proxy process); ${opts.compiled ? 'every process of the project runs the compiled JavaScript in dist/ (built at the start with npm run build), as npm start and the image run it' : 'they run from the TypeScript sources through tsx (--sources), whose esbuild helper processes are left out'}. The proxy process alone has rows of its own. In cluster mode the figures are the proxy pod process's, with the operator's CPU beside it in a row of its own; the HAProxy column of the cluster rows repeats HAProxy's figure of the same phase size measured above.`,
  `In cluster mode the steady part starts once the operator has caught up with the opening: each connect of a pair is written to its session's status at once, so opening thousands of pairs leaves a backlog of status writes that the test rig's API server takes at about 130 a second; the phase waits until a second passes with no more writes than the counter flush rate (CCCP_COUNTER_FLUSHES_PER_S, 10 a second by default), and the log gives the wait. Measured meanwhile, the steady part was the backlog's (the operator at 21 % of a core with 5,000 sessions, 8–9 % once caught up), and the API server, etcd and the operator took the cores the proxy pod and the load shared.`,
  `Fair join probe: HAProxy, socat and a direct connection buffer the client's first byte until the far end is connected, so one 'p' from the client, answered by the device, proves a pair joined (a retry every ${BUFFERED_PROBE_RETRY_MS} ms stays, and is counted). The proxy drops bytes while a party is missing, so for it the device connects and registers first, the benchmark waits for the proxy's own device-connected event on its admin event stream (GET /v1/events), then connects the client and sends one probe; a retry every ${PROXY_PROBE_RETRY_MS} ms remains only as a safety net. The 'join probes retried' rows count every retry. Open and join time runs, for every target, from the first /on or connect to the last joined pair.`,
  `/on until the port accepts is measured after ${opts.onWarmup} /on + /off calls (${Math.min(opts.onWarmup, 100)} in cluster mode) to the fresh process, which warm up its JIT: a Control API runs for days, and its first calls are slower (the standalone rows for those first calls show by how much).`,
  "The bench calls the Control API with Node's http client over kept-alive connections (as it times the floor below), not with fetch: with fetch its own garbage collection paused it for 6–12 ms every half second, and those pauses were the slowest /on calls.",
  "The floor under the cluster's /on + /off rate: the five API writes one pair makes (create, status Pending with the port, status Active, delete, finalizer removal; the statuses are the operator's own), made straight to the test rig's API server one after another, in a namespace the operator does not watch; no operator, proxy pod or watch in between. The log gives each write's p50.",
  "The floor under /on: a bare HTTP request and answer (a small PUT, one kept-alive connection) between the benchmark and a plain Node child process over a Unix socket, timed like /on. A standalone /on crosses three such hops (the caller, the Control API, the proxy process), so the tails of three such hops add up in its tail; the machine's wake-ups set them.",
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

/**
 * One stream's throughput is measured THROUGHPUT_RUNS times a direction and
 * its median reported, after a warm-up transfer: a forwarder runs for days,
 * and a fresh Node process's first transfers ran slower than its later ones
 * here (its JIT still compiling the forwarding path). On this shared machine
 * one transfer of the same build ranged from 843 to 1,798 MiB/s within a run.
 */
const THROUGHPUT_RUNS = 3;
const warmupMib = (mib: number) => Math.max(1, Math.round(mib / 4));

/** MiB/s of each measured transfer of `opts.mib`, after the warm-up one, sorted. */
async function transfers(pair: Pair, direction: Direction): Promise<number[]> {
  await throughput(pair, warmupMib(opts.mib) * MiB, direction);
  const rates: number[] = [];
  for (let i = 0; i < THROUGHPUT_RUNS; i++) rates.push((await throughput(pair, opts.mib * MiB, direction)) / MiB);
  return rates.sort((a, b) => a - b);
}

// 1. Single-stream throughput, and 2. 64-byte round trips, on one pair.
{
  const up = figure({
    id: 'throughput-up',
    title: `throughput client→device, median of ${THROUGHPUT_RUNS} × ${opts.mib} MiB after ${warmupMib(opts.mib)} MiB of warm-up`,
    unit: 'MiB/s',
    better: 'higher',
    values: {},
  });
  const down = figure({
    id: 'throughput-down',
    title: `throughput device→client, median of ${THROUGHPUT_RUNS} × ${opts.mib} MiB after ${warmupMib(opts.mib)} MiB of warm-up`,
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
      const ups = await transfers(pair!, 'client→device');
      const downs = await transfers(pair!, 'device→client');
      up.values[target.name] = percentile(ups, 50);
      down.values[target.name] = percentile(downs, 50);
      const times = await roundTrips(pair!, opts.roundTrips);
      p50.values[target.name] = percentile(times, 50);
      p99.values[target.name] = percentile(times, 99);
      log(
        `  ${target.name}: ↑ ${ups.map((r) => r.toFixed(0)).join(', ')} MiB/s, ↓ ${downs.map((r) => r.toFixed(0)).join(', ')} MiB/s, rtt p50 ${p50.values[target.name]!.toFixed(0)} µs p99 ${p99.values[target.name]!.toFixed(0)} µs`,
      );
    } finally {
      closePairs([pair!]);
    }
  });
}

// The forwarded hop: a device on another proxy pod than its session's, against one on the same pod.
if (opts.hop && opts.targets.includes('proxy')) {
  log('forwarded hop: two proxy pods, one session each on pod 1');
  try {
    const hop = await forwardedHop({ bytes: opts.mib * MiB, roundTrips: opts.roundTrips, log });
    hopFigures(hop.samePod, hop.forwarded);
    notes.push(
      "Forwarded hop: two proxy pod processes of one release (pods 0 and 1 on 127.0.0.10 and .11, the peer port on, sessions put over the admin API, no API server) hold one session each on pod 1. The same-pod pair's device registers on pod 1; the forwarded pair's device registers on pod 0, which hands it to pod 1 over the peer port, so its bytes cross both processes. Both pairs get the one-stream rows' load in the same run, taking turns in 4 rounds (each a quarter of the bytes both ways and of the round trips) so that both see the same load from the rest of the machine; their HAProxy column repeats HAProxy's one-stream figure above.",
    );
  } catch (err) {
    log(`forwarded hop failed: ${(err as Error).message}`);
    notes.push(`forwarded-hop figures not measured: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** The hop's rows: each variant beside HAProxy's one-stream figure of this run, then what the hop adds. */
function hopFigures(samePod: HopVariant, forwarded: HopVariant): void {
  const peer = (id: string) => figures.find((f) => f.id === id)?.values.haproxy;
  const variants = [
    ['forwarded', 'device on another pod, forwarded', forwarded],
    ['same-pod', 'device on the session’s pod', samePod],
  ] as const;
  for (const [key, label, v] of variants) {
    for (const [p, value] of [
      [50, v.rttP50Us],
      [99, v.rttP99Us],
    ] as const) {
      figure({
        id: `hop-rtt64-p${p}-${key}`,
        title: `two proxy pods, ${label}: 64-byte round trip p${p} (${opts.roundTrips.toLocaleString('en-US')})`,
        unit: 'µs',
        better: 'lower',
        values: { proxy: value, haproxy: peer(`rtt64-p${p}`) ?? null },
      });
    }
  }
  for (const p of [50, 99] as const) {
    const key = p === 50 ? 'rttP50Us' : 'rttP99Us';
    figure({
      id: `hop-rtt64-p${p}-added`,
      title: `two proxy pods: round trip p${p} added by the hop (forwarded − same pod)`,
      unit: 'µs',
      better: 'lower',
      values: { proxy: forwarded[key] - samePod[key] },
    });
  }
  for (const [key, label, v] of variants) {
    for (const [direction, dir, value] of [
      ['up', 'client→device', v.up],
      ['down', 'device→client', v.down],
    ] as const) {
      figure({
        id: `hop-throughput-${direction}-${key}`,
        title: `two proxy pods, ${label}: throughput ${dir}, ${opts.mib} MiB`,
        unit: 'MiB/s',
        better: 'higher',
        values: { proxy: value / MiB, haproxy: peer(`throughput-${direction}`) ?? null },
      });
    }
  }
  for (const [direction, dir] of [
    ['up', 'client→device'],
    ['down', 'device→client'],
  ] as const) {
    figure({
      id: `hop-throughput-${direction}-ratio`,
      title: `two proxy pods: throughput ${dir}, forwarded ÷ same pod`,
      unit: '×',
      better: 'higher',
      values: { proxy: forwarded[direction] / samePod[direction] },
    });
  }
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

/** A latency's p50 and p99 as figures `${id}-p50` and `-p99` of the proxy, titled by `title(p)`. */
function latencyFigures(id: string, title: (p: 50 | 99) => string, latency: OnLatency): void {
  for (const [p, value] of [
    [50, latency.p50Ms],
    [99, latency.p99Ms],
  ] as const) {
    figure({ id: `${id}-p${p}`, title: title(p), unit: 'ms', better: 'lower', values: { proxy: value } });
  }
}

/** /on until the port accepts, p50 and p99, in one mode. */
function onLatencyFigures(mode: 'standalone' | 'cluster', on: OnLatency): void {
  latencyFigures(`${mode}-on`, (p) => `${mode}: /on until the port accepts, p${p} (${on.count} calls)`, on);
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
  const { call, close } = controlClient(app.url);
  try {
    const cold = await onToListening(call, opts.onWarmup, 'CP-WARM');
    latencyFigures(
      'standalone-on-cold',
      (p) => `standalone: /on until the port accepts, the first ${cold.count} calls of a fresh process, p${p}`,
      cold,
    );
    const on = await onToListening(call, opts.onCount, 'CP-ON');
    onLatencyFigures('standalone', on);
    const rate = await onOffPairsPerSecond(call, opts.pairSeconds, 'CP-PAIR');
    onOffRateFigure('standalone', rate);
    const floor = await bareHttpRoundTrips(opts.onCount * 3);
    latencyFigures(
      'http-floor',
      (p) => `floor under /on: a bare HTTP request between two Node processes (Unix socket), p${p} (${floor.count} calls)`,
      floor,
    );
    log(
      `  /on p50 ${on.p50Ms.toFixed(1)} ms p99 ${on.p99Ms.toFixed(1)} ms (first ${cold.count} calls: p99 ${cold.p99Ms.toFixed(1)} ms); ${rate.toFixed(0)} /on+/off pairs/s;` +
        ` bare HTTP between two processes p50 ${floor.p50Ms.toFixed(2)} ms p99 ${floor.p99Ms.toFixed(2)} ms`,
    );
  } finally {
    close();
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
        onWarmup: Math.min(opts.onWarmup, 100),
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
        apiFloor(floor) {
          figure({
            id: 'cluster-api-floor',
            title: "floor under the cluster's /on + /off: a pair's five API writes alone, one after another",
            unit: 'pairs/s',
            better: 'higher',
            values: { proxy: floor.pairsPerSecond },
          });
          const writes = Object.entries(floor.writeP50Ms).map(([write, ms]) => `${write} ${ms.toFixed(1)}`);
          log(`  a pair's API writes alone: ${floor.pairsPerSecond.toFixed(1)} pairs/s; p50 ms: ${writes.join(', ')}`);
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

// Sessions spread over several proxy pods, each pod's figures beside HAProxy's phase of as many sessions.
const spreadPhase = opts.targets.includes('proxy') ? opts.spread : undefined;
if (spreadPhase) {
  const { pods, perPod } = spreadPhase;
  const label = `cluster, ${pods} pods × ${phaseLabel(perPod)}`;
  log(`spread: ${pods} proxy pods × ${perPod} sessions (test rig)`);
  if (fdLimit < fdsFor(perPod)) {
    notes.push(`${label} skipped: the open-file limit is ${fdLimit}, ${fdsFor(perPod)} are needed per process`);
  } else {
    try {
      const r = await spreadFigures({ pods, perPod, seconds: opts.seconds, log });
      r.byPod.forEach((result, ordinal) => {
        const phase = new PhaseFigures(`spread-${pods}x${perPod}-pod${ordinal}-`, `${label}, pod ${ordinal}`, 'pod');
        figures.push(...phase.all);
        recordPhase(phase, 'proxy', result);
        phase.borrowHaproxy(figures, `many-${perPod}-`);
      });
      const whole = `${label}, all pods`;
      figure({
        id: `spread-${pods}x${perPod}-rtt-p99`,
        title: `${whole}: round trip p99 (HAProxy: its ${perPod.toLocaleString('en-US')} sessions)`,
        unit: 'µs',
        better: 'lower',
        values: { proxy: r.rttP99Us, haproxy: figures.find((f) => f.id === `many-${perPod}-rtt-p99`)?.values.haproxy ?? null },
      });
      figure({
        id: `spread-${pods}x${perPod}-on`,
        title: `${whole}: /on for all ${(pods * perPod).toLocaleString('en-US')} sessions (16 callers, one operator)`,
        unit: 's',
        better: 'lower',
        values: { proxy: r.onSeconds },
      });
      figure({
        id: `spread-${pods}x${perPod}-operator-cpu`,
        title: `${whole}: CPU of the operator, steady part`,
        unit: '% of a core',
        better: 'lower',
        values: { proxy: r.operatorCpuPercent },
      });
      figure({
        id: `spread-${pods}x${perPod}-wall`,
        title: `${whole}: whole phase (rig start to the end of the load)`,
        unit: 's',
        better: 'lower',
        values: { proxy: r.wallSeconds },
      });
      log(`  spread: all pods p99 ${r.rttP99Us.toFixed(0)} µs; phase took ${r.wallSeconds.toFixed(0)} s`);
      // A load generator starved of CPU sends late and reads late: fewer messages, and round trips that include its own delay.
      const due = perPod * opts.seconds;
      const behind = r.byPod.filter((p) => p.roundTrips < 0.9 * due);
      notes.push(
        `${label}: largest event-loop delay of each pod's load generator during the steady part: ${r.generatorLoopDelayMs.map((ms) => `${ms.toFixed(0)} ms`).join(', ')} (what of the round-trip tail is the generators' own).`,
      );
      if (behind.length > 0)
        notes.push(
          `${label}: the load generators fell behind (round trips completed per pod: ${r.byPod.map((p) => p.roundTrips.toLocaleString('en-US')).join(', ')} of ${due.toLocaleString('en-US')} due); their round-trip times then include their own event-loop delay as well as the proxy's.`,
        );
      notes.push(
        `${label}: the operator placed ${r.byPod.map((p) => p.pairs.toLocaleString('en-US')).join(', ')} sessions on pods ${r.byPod.map((_, o) => o).join(', ')}. Each pod's "time to open and join" runs from the first of all ${(pods * perPod).toLocaleString('en-US')} /on calls (one operator, 16 callers) to that pod's last joined pair, the pods' joins running at once; its HAProxy figure is HAProxy opening ${perPod.toLocaleString('en-US')} pairs. Devices register on their session's own pod (the hop rows measure the forwarded case). Each pod's pairs are held by a load-generator process of their own (one process cannot hold ${(pods * perPod * 2).toLocaleString('en-US')} sockets under the open-file limit of ${fdLimit}); all pods' round trips together give the "all pods" p99. The proxy pods, the operator, the kube-apiserver, etcd and ${pods} load generators share the machine's ${cpus().length} cores, so these figures are bound by CPU contention.`,
      );
    } catch (err) {
      log(`spread failed: ${(err as Error).message}`);
      notes.push(`${label}: not measured: ${(err as Error).message.split('\n')[0]}`);
    }
  }
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
    load1mAtStart: loadAtStart.toFixed(1),
    load1mAtEnd: loadavg()[0]!.toFixed(1),
  },
  options: { ...opts },
  figures,
  notes,
  goals: checkGoals(figures, [...GOALS, ...(spreadPhase ? spreadGoals(spreadPhase.pods, spreadPhase.perPod) : [])]),
};
const dir = fileURLToPath(new URL('./results/', import.meta.url));
write(results, `${dir}${out}.json`, `${dir}${out}.md`);
console.log(`\n${markdown(results)}`);
log(`wrote bench/results/${out}.json and .md`);
process.exit(0);
