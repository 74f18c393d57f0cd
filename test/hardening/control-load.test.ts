// Hostile load on the standalone mode's Control API, with real processes on
// loopback and a live device/client pair exchanging 64 bytes every 50 ms
// beside the attack: idle and trickling connections far beyond the
// connection cap, the same at `ulimit -n 512`, a 30 s race of /on and /off
// for one serial, and paths that are almost right.
import { spawn } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { HostileHttpPlan, HostileHttpReport } from '../helpers/hostile-http.ts';
import { childPids, descriptorCount, type LivePair, percentile, startLivePair } from '../helpers/live-pair.ts';
import { connectDevice, sleep, waitFor } from '../helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('Control API under hostile load');

const CAP = 200;
/**
 * The attack comes from another loopback address than the test's own calls.
 * At the cap a newcomer takes room from its own address first, so only a
 * client that shares the attacker's address can lose a connection to it.
 */
const ATTACKER = '127.0.0.2';
const HEADER_TIMEOUT_S = 2;
/** The live pair's p99 round trip while the Control API is attacked (at rest it is a few ms). */
const PAIR_P99_BOUND_MS = 250;
/** Descriptors the standalone process may hold beyond the cap (its own files, the admin socket, the agent). */
const CONTROL_FD_SLACK = 60;
/** Descriptors the proxy process may gain while only the Control API is attacked. */
const PROXY_FD_SLACK = 10;

const running: RunningStandalone[] = [];
const pairs: LivePair[] = [];

test.after.each(async () => {
  for (const pair of pairs.splice(0)) pair.close();
  for (const app of running.splice(0)) await app.stop();
});

async function standalone(
  options: { env?: Record<string, string>; fdLimit?: number; rangeSize?: number } = {},
): Promise<RunningStandalone> {
  const app = await startStandalone({ rangeSize: options.rangeSize ?? 10, fdLimit: options.fdLimit, env: options.env ?? {} });
  running.push(app);
  return app;
}

async function livePair(app: RunningStandalone, serial: string): Promise<LivePair> {
  const on = await app.call(`/on?serial=${serial}&persistent=true`);
  assert.is(on.status, 200);
  const pair = await startLivePair(app.devicePort, serial, (on.body as { port: number }).port);
  pairs.push(pair);
  return pair;
}

/** Runs the hostile peer in its own process and resolves with its report. */
function hostile(plan: HostileHttpPlan): Promise<HostileHttpReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/hostile-http.ts', JSON.stringify(plan)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), (plan.seconds + 30) * 1000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(output) as HostileHttpReport);
      } catch {
        reject(new Error(`the hostile peer exited ${code} without a report: ${output}`));
      }
    });
  });
}

function proxyPid(app: RunningStandalone): number {
  const [pid] = childPids(app.process.child.pid!);
  assert.ok(pid, 'the standalone mode runs its proxy as a child process');
  return pid!;
}

test(`1,000 idle and 500 trickling connections from one address (reopened when closed) against a cap of ${CAP}: /on answers, the pair's p99 stays below ${PAIR_P99_BOUND_MS} ms, descriptors stay bounded, nothing is held past the head deadline`, async () => {
  const app = await standalone({
    env: { CCCP_HTTP_MAX_CONNECTIONS: String(CAP), CCCP_HTTP_HEADER_TIMEOUT_S: String(HEADER_TIMEOUT_S), CCCP_HTTP_IDLE_TIMEOUT_S: '1' },
  });
  const pair = await livePair(app, 'LIVE-PAIR');
  const proxy = proxyPid(app);
  await sleep(3000);
  const atRest = pair.mark();
  const proxyFdsBefore = descriptorCount(proxy);

  const attack = hostile({ port: Number(new URL(app.url).port), localAddress: ATTACKER, idle: 1000, trickle: 500, seconds: 8 });
  await sleep(2000);
  let controlFdsMax = 0;
  let proxyFdsMax = 0;
  const onTimes: number[] = [];
  for (let i = 0; i < 10; i++) {
    controlFdsMax = Math.max(controlFdsMax, descriptorCount(app.process.child.pid!));
    proxyFdsMax = Math.max(proxyFdsMax, descriptorCount(proxy));
    const started = Date.now();
    const on = await app.call(`/on?serial=DURING-${i}`);
    onTimes.push(Date.now() - started);
    assert.is(on.status, 200, `/on during the attack answered ${on.status}: ${JSON.stringify(on.body)}`);
    assert.is((await app.call(`/off?serial=DURING-${i}`)).status, 200);
    await sleep(300);
  }
  const report = await attack;
  const during = pair.mark();
  const p99Rest = percentile(atRest, 99);
  const p99Attack = percentile(during, 99);
  console.log(
    `  pair p99 ${p99Rest.toFixed(1)} ms at rest, ${p99Attack.toFixed(1)} ms under attack (${during.length} round trips, ${pair.late} late); ` +
      `/on took ${Math.max(...onTimes)} ms at most; control fds max ${controlFdsMax} (cap ${CAP}), proxy fds ${proxyFdsBefore} -> max ${proxyFdsMax}; ` +
      `attacker opened ${report.opened}, server closed ${report.closedByServer}, longest held ${report.longestHeldMs} ms`,
  );
  assert.ok(p99Attack < PAIR_P99_BOUND_MS, `pair p99 ${p99Attack} ms during the attack`);
  assert.ok(controlFdsMax <= CAP + CONTROL_FD_SLACK, `the Control API process held ${controlFdsMax} descriptors`);
  assert.ok(proxyFdsMax <= proxyFdsBefore + PROXY_FD_SLACK, `the proxy process went from ${proxyFdsBefore} to ${proxyFdsMax} descriptors`);
  // The head deadline, plus the server's timer slack and the attacker's own scheduling.
  assert.ok(report.longestHeldMs < HEADER_TIMEOUT_S * 1000 + 1500, `a connection was held ${report.longestHeldMs} ms`);
  assert.ok(report.opened > 1500, 'the attacker opened more connections than the cap');
});

test('600 idle connections from one address on a Control API at ulimit -n 512: /on answers and new devices attach', async () => {
  const app = await standalone({ fdLimit: 512 });
  const pair = await livePair(app, 'FD-PAIR');
  const attack = hostile({ port: Number(new URL(app.url).port), localAddress: ATTACKER, idle: 600, trickle: 0, seconds: 6, reopen: true });
  await sleep(2000);
  const on = await app.call('/on?serial=FD-NEW&persistent=true');
  assert.is(on.status, 200, `/on answered ${on.status}: ${JSON.stringify(on.body)}`);
  const device = await connectDevice(app.devicePort, 'FD-NEW');
  try {
    await waitFor(
      async () => {
        const status = await app.call('/status?serial=FD-NEW');
        return (status.body as { device_connected?: boolean }).device_connected === true;
      },
      5000,
      'the new device to attach',
    );
  } finally {
    device.destroy();
  }
  const report = await attack;
  const during = pair.mark();
  console.log(
    `  pair p99 ${percentile(during, 99).toFixed(1)} ms; attacker opened ${report.opened}, server closed ${report.closedByServer}`,
  );
  assert.ok(percentile(during, 99) < PAIR_P99_BOUND_MS);
});

test('/on and /off racing for one serial for 30 s from 50 clients (10 calling /on, 40 /off): every answer is 200, 404 for /off, or 409 with a code; no 5xx', async () => {
  const app = await standalone({ rangeSize: 4 });
  const seconds = Number(process.env.CCCP_RACE_SECONDS ?? 30);
  const until = Date.now() + seconds * 1000;
  const tally = new Map<string, number>();
  const unexpected: string[] = [];
  const client = async (index: number) => {
    while (Date.now() < until) {
      const path = index % 5 === 0 ? '/on?serial=RACE' : '/off?serial=RACE';
      const answer = await app.call(path);
      const code = (answer.body as { code?: string }).code;
      const key = `${path.slice(0, 4)} ${answer.status}${code ? ` ${code}` : ''}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
      const expected =
        answer.status === 200 ||
        (path.startsWith('/off') && answer.status === 404) ||
        (answer.status === 409 && code === 'session_switched_off');
      if (!expected && unexpected.length < 10) unexpected.push(`${key}: ${JSON.stringify(answer.body)}`);
    }
  };
  await Promise.all(Array.from({ length: 50 }, (_, i) => client(i)));
  console.log(`  ${[...tally].map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  assert.equal(unexpected, []);
  assert.ok((tally.get('/on? 200') ?? 0) > 0, 'some /on succeeded');
  // The store and the proxy agree afterwards: one more /on starts a session that listens.
  const on = await app.call('/on?serial=RACE');
  assert.is(on.status, 200);
});

test('only exact paths: /ON, /on/, /On and //on answer 404 and start nothing', async () => {
  const app = await standalone({ rangeSize: 2 });
  for (const path of ['/ON?serial=CASE', '/on/?serial=CASE', '/On?serial=CASE', '//on?serial=CASE', '/STATUS?serial=CASE', '/Metrics']) {
    const answer = await app.call(path);
    assert.is(answer.status, 404, `${path} answered ${answer.status}`);
  }
  assert.is((await app.call('/status?serial=CASE')).status, 404, 'no session was started');
  const metrics = (await app.call('/metrics')).body as string;
  assert.not.match(metrics, /route="\/on",status="200"/);
});

test.run();
