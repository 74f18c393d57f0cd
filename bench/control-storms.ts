// The standalone mode's live pair under control-plane storms: a device and a
// client exchanging 64 bytes every 50 ms, its p99 round trip at rest, during
// 3,000 concurrent /on calls, at rest again with those sessions live, and
// during 3,000 registrations replacing one serial. With --before=DIR the same phases run, in the same run, against the
// standalone mode of another checkout (e.g. the commit before a change), so
// the two can be compared as ratios on the same (shared, noisy) machine.
//
//   tsx bench/control-storms.ts [--before=/path/to/checkout] [--count=3000] [--rounds=1] [--out=control-storms]
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile, startLivePair } from '../test/helpers/live-pair.ts';
import { sleep } from '../test/helpers/net.ts';
import { startStandalone } from '../test/helpers/standalone.ts';
import { benchArgs } from './tools.ts';

const args = benchArgs();
const count = Number(args.get('count') ?? 3000);
const rounds = Number(args.get('rounds') ?? 1);
const restSeconds = Number(args.get('rest-seconds') ?? 10);
const out = args.get('out') ?? 'control-storms';
const variants: Array<{ name: string; entry: string }> = [{ name: 'this checkout', entry: 'operator/standalone.ts' }];
if (args.has('before'))
  variants.unshift({ name: `before (${args.get('before')})`, entry: join(args.get('before')!, 'operator/standalone.ts') });
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

function storm(plan: Record<string, unknown>): Promise<{ statuses: Record<string, number>; ms: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/storm.ts', JSON.stringify(plan)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('exit', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(output));
      } catch {
        reject(new Error(`storm ${JSON.stringify(plan)} gave no report: ${output}`));
      }
    });
  });
}

interface Row {
  variant: string;
  round: number;
  phase: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  roundTrips: number;
  storm?: string;
}

const rows: Row[] = [];
const row = (variant: string, round: number, phase: string, times: number[], stormText?: string) => {
  const r: Row = {
    variant,
    round,
    phase,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    maxMs: times.at(-1) ?? NaN,
    roundTrips: times.length,
    storm: stormText,
  };
  rows.push(r);
  log(
    `${variant} #${round} ${phase}: p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms (${r.roundTrips})${stormText ? `; ${stormText}` : ''}`,
  );
};

for (let round = 1; round <= rounds; round++) {
  for (const variant of variants) {
    const app = await startStandalone({
      rangeSize: count + 100,
      entry: variant.entry,
      env: { CCCP_LOG_LEVEL: 'info', CCCP_REQUEST_TIMEOUT_S: '60' },
    });
    try {
      const on = await app.call('/on?serial=BENCH-PAIR&persistent=true');
      const pair = await startLivePair(app.devicePort, 'BENCH-PAIR', (on.body as { port: number }).port);
      await sleep(1000);
      pair.mark();
      await sleep(restSeconds * 1000);
      row(variant.name, round, 'at rest', pair.mark());

      const onStorm = await storm({ kind: 'on', url: app.url, count, prefix: `R${round}` });
      row(variant.name, round, `during ${count} concurrent /on`, pair.mark(), `${JSON.stringify(onStorm.statuses)} in ${onStorm.ms} ms`);
      await sleep(restSeconds * 1000);
      row(variant.name, round, `at rest with the ${count} sessions live`, pair.mark());
      await storm({ kind: 'off', url: app.url, count, prefix: `R${round}` });
      await sleep(2000);
      pair.mark();

      assert200(await app.call('/on?serial=BENCH-REPLACED&persistent=true'));
      const registrations = await storm({ kind: 'register', devicePort: app.devicePort, count, prefix: 'BENCH-REPLACED' });
      row(variant.name, round, `during ${count} registrations replacing one serial`, pair.mark(), `${registrations.ms} ms`);
      pair.close();
    } finally {
      await app.stop();
    }
  }
}

function assert200(answer: { status: number; body: unknown }): void {
  if (answer.status !== 200) throw new Error(`/on answered ${answer.status}: ${JSON.stringify(answer.body)}`);
}

const md = [
  `# Live pair under control-plane storms (${new Date().toISOString()})`,
  '',
  'A device and a client exchange 64 bytes every 50 ms through the standalone mode; the storms come from a separate process. The machine (2 cores) is shared with other work, so single figures are noisy: compare phases and variants within one run.',
  '',
  '| variant | round | phase | p50 ms | p99 ms | max ms | round trips | storm |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.variant} | ${r.round} | ${r.phase} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.maxMs.toFixed(1)} | ${r.roundTrips} | ${r.storm ?? ''} |`,
  ),
  '',
];
const dir = fileURLToPath(new URL('./results/', import.meta.url));
writeFileSync(join(dir, `${out}.md`), md.join('\n'));
writeFileSync(join(dir, `${out}.json`), `${JSON.stringify(rows, null, 2)}\n`);
log(`wrote bench/results/${out}.{md,json}`);
