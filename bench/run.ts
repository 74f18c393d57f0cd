// `npm run bench`: the proxy (standalone mode, one session per pair) against
// HAProxy (TCP mode), socat and a direct connection, all on loopback, every
// figure measured in the same run. Writes bench/results/latest.{json,md}.
//
//   --quick            256 MiB transfers, 5,000 round trips, 1,000 sessions for 5 s
//   --seconds=N        length of the many-sessions phase (default 30)
//   --sessions=A,B     pair counts for the many-sessions phase (default 1000,5000)
//   --mib=N            bytes per throughput run, in MiB (default 1024)
//   --round-trips=N    64-byte round trips (default 20000)
//   --targets=a,b      a subset of proxy,haproxy,socat,direct
//   --no-cluster       skip the cluster-mode figures (they need the test rig's binaries)
//   --out=NAME         write bench/results/NAME.{json,md} (default latest)
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { clusterFigures } from './cluster.ts';
import { onOffPairsPerSecond, onToListening } from './control-plane.ts';
import { closePairs, MiB, percentile, roundTrips, steadySessions, throughput } from './load.ts';
import { usageOf } from './process-usage.ts';
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
const opts = {
  mib: Number(args.get('mib') ?? (quick ? 256 : 1024)),
  roundTrips: Number(args.get('round-trips') ?? (quick ? 5000 : 20_000)),
  sessions: (args.get('sessions') ?? (quick ? '1000' : '1000,5000')).split(',').map(Number),
  seconds: Number(args.get('seconds') ?? (quick ? 5 : 30)),
  targets: (args.get('targets')?.split(',') as TargetName[] | undefined) ?? TARGETS,
  cluster: !args.has('no-cluster'),
  onCount: quick ? 200 : 1000,
  pairSeconds: quick ? 5 : 10,
  restartSessions: quick ? 200 : 1000,
};
const out = args.get('out') ?? 'latest';
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

ensurePrograms({ haproxy: 'haproxy', socat: 'socat' });

const started = Date.now();
const figures: Figure[] = [];
const notes: string[] = [
  'All load generators are the benchmark\'s own Node process (one event loop) on the same 2 cores as the forwarder under test; the "direct" column is that generator\'s own ceiling.',
  'HAProxy runs with nbthread 1 (the proxy is one event loop); socat forks one process per connection and is measured with all its children.',
  "CPU % is CPU time of the forwarding process(es) over the wall time of the phase (100 % = one core). RSS and PSS are summed over those processes at the end of the phase; PSS splits shared pages, so it is the fair memory figure for socat's forked children.",
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
    const [pair] = await target.openPairs(1);
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
for (const count of opts.sessions) {
  // The benchmark holds 2 sockets per pair; the proxy 2 plus a listener per session.
  const needed = count * 3 + 500;
  if (fdLimit < needed) {
    notes.push(`${count} sessions skipped: the open-file limit is ${fdLimit}, ${needed} are needed`);
    log(`skipping ${count} sessions: ulimit -n is ${fdLimit}`);
    continue;
  }
  const label = `${count.toLocaleString('en-US')} sessions, 1 msg/s each for ${opts.seconds} s`;
  const rss = figure({ id: `many-${count}-rss`, title: `${label}: RSS`, unit: 'MiB', better: 'lower', values: {} });
  const pss = figure({ id: `many-${count}-pss`, title: `${label}: PSS`, unit: 'MiB', better: 'lower', values: {} });
  const cpu = figure({ id: `many-${count}-cpu`, title: `${label}: CPU`, unit: '% of a core', better: 'lower', values: {} });
  const p99 = figure({ id: `many-${count}-rtt-p99`, title: `${label}: round trip p99`, unit: 'µs', better: 'lower', values: {} });
  const setup = figure({
    id: `many-${count}-setup`,
    title: `${label}: time to open and join all pairs`,
    unit: 's',
    better: 'lower',
    values: {},
  });
  await eachTarget(`${count} sessions`, count, async (target) => {
    const opened = performance.now();
    const pairs = await target.openPairs(count);
    setup.values[target.name] = (performance.now() - opened) / 1000;
    try {
      const before = usageOf(target.pids());
      const t0 = performance.now();
      const { times, lost } = await steadySessions(pairs, opts.seconds);
      const after = usageOf(target.pids());
      const wall = (performance.now() - t0) / 1000;
      if (target.name !== 'direct') {
        rss.values[target.name] = after.rssBytes / MiB;
        pss.values[target.name] = after.pssBytes / MiB;
        cpu.values[target.name] = ((after.cpuSeconds - before.cpuSeconds) / wall) * 100;
      }
      p99.values[target.name] = percentile(times, 99);
      if (lost > 0) notes.push(`${count} sessions, ${target.name}: ${lost} messages were not answered within a second`);
      log(
        `  ${target.name}: ${times.length} round trips, p99 ${p99.values[target.name]!.toFixed(0)} µs, RSS ${(after.rssBytes / MiB).toFixed(0)} MiB PSS ${(after.pssBytes / MiB).toFixed(0)} MiB in ${after.processes} process(es), CPU ${cpu.values[target.name]?.toFixed(1) ?? '–'} %`,
      );
    } finally {
      closePairs(pairs);
    }
  });
}

// 4. Control plane, standalone mode (no HAProxy or socat equivalent).
if (opts.targets.includes('proxy')) {
  log('control plane: standalone');
  const app = await startStandalone({ rangeSize: 50, env: { CCCP_LOG_LEVEL: 'warn' } });
  try {
    const call = (path: string) => app.call(path);
    const on = await onToListening(call, opts.onCount, 'CP-ON');
    figure({
      id: 'standalone-on-p50',
      title: `standalone: /on until the port accepts, p50 (${on.count} calls)`,
      unit: 'ms',
      better: 'lower',
      values: { proxy: on.p50Ms },
    });
    figure({
      id: 'standalone-on-p99',
      title: `standalone: /on until the port accepts, p99 (${on.count} calls)`,
      unit: 'ms',
      better: 'lower',
      values: { proxy: on.p99Ms },
    });
    const rate = await onOffPairsPerSecond(call, opts.pairSeconds, 'CP-PAIR');
    figure({
      id: 'standalone-on-off-rate',
      title: 'standalone: /on + /off pairs, one caller',
      unit: 'pairs/s',
      better: 'higher',
      values: { proxy: rate },
    });
    log(`  /on p50 ${on.p50Ms.toFixed(1)} ms p99 ${on.p99Ms.toFixed(1)} ms; ${rate.toFixed(0)} /on+/off pairs/s`);
  } finally {
    await app.stop();
  }
}

// 4 and 5 in cluster mode, against the test rig's kube-apiserver.
if (opts.cluster && opts.targets.includes('proxy')) {
  log('cluster mode (test rig)');
  try {
    const c = await clusterFigures({
      onCount: Math.min(opts.onCount, 300),
      pairSeconds: opts.pairSeconds,
      restartSessions: opts.restartSessions,
      log,
    });
    figure({
      id: 'cluster-on-p50',
      title: `cluster: /on until the port accepts, p50 (${c.on.count} calls)`,
      unit: 'ms',
      better: 'lower',
      values: { proxy: c.on.p50Ms },
    });
    figure({
      id: 'cluster-on-p99',
      title: `cluster: /on until the port accepts, p99 (${c.on.count} calls)`,
      unit: 'ms',
      better: 'lower',
      values: { proxy: c.on.p99Ms },
    });
    figure({
      id: 'cluster-on-off-rate',
      title: 'cluster: /on + /off pairs, one caller',
      unit: 'pairs/s',
      better: 'higher',
      values: { proxy: c.pairsPerSecond },
    });
    figure({
      id: 'cluster-restart',
      title: `cluster: ${c.restart.sessions} sessions listening again after kill -9 of the proxy pod`,
      unit: 's',
      better: 'lower',
      values: { proxy: c.restart.secondsFromSpawn },
      note: `${c.restart.secondsFromReady.toFixed(2)} s after the new pod was ready`,
    });
    log(
      `  /on p50 ${c.on.p50Ms.toFixed(1)} ms p99 ${c.on.p99Ms.toFixed(1)} ms; ${c.pairsPerSecond.toFixed(1)} pairs/s; restart ${c.restart.secondsFromSpawn.toFixed(2)} s`,
    );
  } catch (err) {
    log(`cluster mode failed: ${(err as Error).message}`);
    notes.push(`cluster-mode figures not measured: ${(err as Error).message.split('\n')[0]}`);
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
  },
  options: { ...opts },
  figures,
  notes,
};
const dir = fileURLToPath(new URL('./results/', import.meta.url));
write(results, `${dir}${out}.json`, `${dir}${out}.md`);
console.log(`\n${markdown(results)}`);
log(`wrote bench/results/${out}.json and .md`);
process.exit(0);
