// The many-sessions phase alone, the proxy beside HAProxy in the same run,
// repeated: for chasing the round-trip tail without the rest of the bench.
// Prints one line per target and run, and each run's ratios to HAProxy.
//
//   tsx bench/tail.ts [--sessions=1000] [--seconds=15] [--runs=2] [--targets=proxy,haproxy]
//                     [--before=DIR] [--proxy-node-options="--max-semi-space-size=16"] [--alt-node-options=...]
//                     [--alt-env="CCCP_STATUS_POLL_MS=1000 ..."] [--compiled]
//
// --compiled builds dist/ here (and in DIR) and runs the compiled JavaScript,
// as npm run bench does; without it the standalone modes run through tsx.
// --before=DIR adds another checkout's standalone mode (DIR/operator/standalone.ts,
// its node_modules in place) as the target "before", run right after "proxy".
// --proxy-node-options goes into NODE_OPTIONS of the standalone mode (both of
// its processes: the proxy process inherits it), e.g. V8 flags or --import of
// a profiling preload. --alt-node-options adds the target "alt": this
// checkout's standalone mode with those options instead, run right after "proxy".
// --alt-env does the same for environment variables of the standalone mode
// (space-separated NAME=value), alone or with --alt-node-options.
// --together opens every target's pairs first and then runs all their steady
// parts at once, in one window: on a shared, noisy machine each target's
// p99 then meets the same scheduler (the generator carries all the pairs).
import { closePairs, type Pair } from './join.ts';
import { percentile, steadySessions } from './load.ts';
import { cpuPercentOf, manySessions } from './many-sessions.ts';
import { usageOf } from './process-usage.ts';
import { startTarget, type Target, type TargetName } from './targets.ts';
import { benchArgs, build, useCompiledBuild } from './tools.ts';

const args = benchArgs();
const sessions = Number(args.get('sessions') ?? 1000);
const seconds = Number(args.get('seconds') ?? 15);
const runs = Number(args.get('runs') ?? 2);
const before = args.get('before');
const proxyNodeOptions = args.get('proxy-node-options');
const altNodeOptions = args.get('alt-node-options');
const altEnv = Object.fromEntries(
  (args.get('alt-env') ?? '')
    .split(' ')
    .filter((pair) => pair.includes('='))
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);
const hasAlt = altNodeOptions !== undefined || Object.keys(altEnv).length > 0;
const compiled = args.has('compiled');
if (compiled) {
  useCompiledBuild();
  if (before) build(before);
}
const beforeEntry = `${before}/${compiled ? 'dist/operator/standalone.js' : 'operator/standalone.ts'}`;
const targets = (args.get('targets') ?? 'proxy,haproxy')
  .split(',')
  .flatMap((t) => (t === 'proxy' ? ['proxy', ...(before ? ['before'] : []), ...(hasAlt ? ['alt'] : [])] : [t]));

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '–' : n.toFixed(digits));

async function startLabelled(label: string): Promise<Target> {
  const name: TargetName = label === 'before' || label === 'alt' ? 'proxy' : (label as TargetName);
  const saved = process.env.NODE_OPTIONS;
  const options = label === 'alt' ? altNodeOptions : name === 'proxy' ? proxyNodeOptions : undefined;
  if (options) process.env.NODE_OPTIONS = `${saved ?? ''} ${options}`.trim();
  try {
    return await startTarget(name, {
      maxPairs: sessions,
      ...(label === 'before' ? { entry: beforeEntry } : {}),
      ...(label === 'alt' ? { env: altEnv } : {}),
    });
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
}

/** Every target's pairs opened, then one steady window for all of them. */
async function together(run: number): Promise<void> {
  const started: Array<{ label: string; target: Target; pairs: Pair[] }> = [];
  try {
    for (const label of targets) {
      const target = await startLabelled(label);
      started.push({ label, target, pairs: [] });
      started.at(-1)!.pairs = (await target.openPairs(sessions)).pairs;
    }
    const pidsOf = (t: Target) => t.proxyPid?.() ?? t.pids()[0];
    const before = started.map(({ target }) => usageOf([pidsOf(target)].filter((p) => p !== undefined)));
    const t0 = performance.now();
    const results = await Promise.all(started.map(({ pairs }) => steadySessions(pairs, seconds)));
    const wall = (performance.now() - t0) / 1000;
    const after = started.map(({ target }) => usageOf([pidsOf(target)].filter((p) => p !== undefined)));
    const p99 = new Map<string, number>();
    const cpu = new Map<string, number>();
    started.forEach(({ label }, i) => {
      p99.set(label, percentile(results[i]!.times, 99));
      const percent = cpuPercentOf(before[i]!, after[i]!, wall);
      if (percent !== undefined) cpu.set(label, percent);
      console.log(
        `run ${run} ${label} (together): p99 ${fmt(p99.get(label))} µs, p50 ${fmt(percentile(results[i]!.times, 50))} µs` +
          ` (${results[i]!.times.length} trips, ${results[i]!.lost} lost), CPU ${fmt(cpu.get(label), 2)} %`,
      );
    });
    const peer = p99.get('haproxy');
    if (peer === undefined) return;
    for (const label of targets.filter((t) => t !== 'haproxy')) {
      console.log(`run ${run} ${label} ÷ haproxy (together): p99 ${((p99.get(label) ?? Number.NaN) / peer).toFixed(2)}×`);
    }
  } finally {
    for (const { target, pairs } of started) {
      closePairs(pairs);
      await target.stop();
    }
  }
}

for (let run = 1; run <= runs; run++) {
  if (args.has('together')) {
    await together(run);
    continue;
  }
  const p99 = new Map<string, number>();
  const cpu = new Map<string, number>();
  for (const label of targets) {
    const target = await startLabelled(label);
    try {
      const r = await manySessions(target, sessions, seconds);
      const cost = r.proxyProcess ?? r.cost;
      p99.set(label, r.rttP99Us);
      if (cost) cpu.set(label, cost.cpuPercent);
      console.log(
        `run ${run} ${label}: p99 ${fmt(r.rttP99Us)} µs (${r.roundTrips} trips, ${r.lost} lost), CPU ${fmt(cost?.cpuPercent, 2)} %` +
          `, RSS/session ${fmt(cost?.rssAddedPerPairBytes)} B, open ${fmt(r.openSeconds, 2)} s` +
          `, loop delay steady ${fmt(r.loopDelayMs?.steady, 1)} ms` +
          (r.proxyProcess
            ? `; both processes: CPU ${fmt(r.cost?.cpuPercent, 2)} %, RSS/session ${fmt(r.cost?.rssAddedPerPairBytes)} B`
            : ''),
      );
    } finally {
      await target.stop();
    }
  }
  const peer = p99.get('haproxy');
  const peerCpu = cpu.get('haproxy');
  if (peer === undefined || peerCpu === undefined) continue;
  for (const label of targets.filter((t) => t !== 'haproxy')) {
    const ratio = (p99.get(label) ?? Number.NaN) / peer;
    const cpuRatio = (cpu.get(label) ?? Number.NaN) / peerCpu;
    console.log(`run ${run} ${label} ÷ haproxy: p99 ${ratio.toFixed(2)}×, CPU ${cpuRatio.toFixed(2)}×`);
  }
}
process.exit(0);
