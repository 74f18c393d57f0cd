// Faults under churn against the real API server: /on and /off run from
// several workers while the proxy pod and the operator are killed with
// SIGKILL at random (seeded) moments and started again. Afterwards every live
// session holds exactly one port, the proxy runs exactly the live sessions,
// no port is leaked and no resource is stuck with a finalizer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterFixture } from '../helpers/cluster.ts';
import { refuses, sleep, waitFor } from '../helpers/net.ts';
import { AdminCaller } from '../helpers/proxy.ts';

const test = suite('faults under churn');
const RANGE = 30;
const SERIALS = 24;
const CHURN_MS = Number(process.env.CCCP_CHURN_S ?? 40) * 1000;
const SEED = Number(process.env.CCCP_CHURN_SEED ?? 20261126);

const theCluster = clusterFixture(test, {
  namespace: 'cccp-faults',
  rangeSize: RANGE,
  operatorEnv: { CCCP_ENDED_RETENTION_S: '2', CCCP_REQUEST_TIMEOUT_S: '5' },
});

/** A small seeded PRNG (mulberry32), so a failing run can be repeated. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('kill -9 of the proxy pod and the operator at random moments during churn leaves every session consistent', async () => {
  const c = theCluster();
  const rand = random(SEED);
  const stopAt = Date.now() + CHURN_MS;
  const counts = { on: 0, off: 0, errors: 0, proxyKills: 0, operatorKills: 0 };

  const worker = async () => {
    while (Date.now() < stopAt) {
      const serial = `CHURN-${Math.floor(rand() * SERIALS)}`;
      const call = rand() < 0.6 ? `/on?serial=${serial}&persistent=true` : `/off?serial=${serial}`;
      const answer = await c.control(call).catch(() => undefined);
      if (!answer) {
        counts.errors++;
        await sleep(100);
      } else if (call.startsWith('/on')) counts.on++;
      else counts.off++;
    }
  };
  const faults = async () => {
    while (Date.now() < stopAt - 3000) {
      await sleep(3000 + rand() * 5000);
      if (rand() < 0.5) {
        await c.proxy!.kill9();
        counts.proxyKills++;
        await sleep(rand() * 1000);
        await c.startProxy();
      } else {
        await c.operators.get('operator-a')!.kill9();
        counts.operatorKills++;
        await sleep(rand() * 1000);
        await c.startOperator('operator-a', { CCCP_ENDED_RETENTION_S: '2', CCCP_REQUEST_TIMEOUT_S: '5' });
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), faults()]);
  console.log(
    `  churn: ${counts.on} /on, ${counts.off} /off, ${counts.errors} calls failed during faults; ${counts.proxyKills} proxy and ${counts.operatorKills} operator kills (seed ${SEED})`,
  );

  // Let the reconciler settle: nothing Pending, nothing being deleted.
  await waitFor(
    async () => {
      const sessions = await c.sessions();
      return sessions.every((s) => !s.metadata.deletionTimestamp && (s.status?.phase === 'Active' || s.status?.phase === 'Ended'));
    },
    60_000,
    'the sessions to settle',
  );

  const sessions = await c.sessions();
  const live = sessions.filter((s) => s.status?.phase === 'Active');
  const ports = live.map((s) => s.status!.port!);
  assert.is(new Set(ports).size, ports.length, `a port is held twice: ${ports.join(',')}`);
  assert.ok(
    sessions.every((s) => !s.metadata.deletionTimestamp),
    'no resource is stuck with a finalizer',
  );

  // The proxy runs exactly the live sessions, each on its stored port.
  const admin = new AdminCaller({ host: '127.0.0.1', port: c.adminPort }, 'cluster-test-admin-token-0123456789');
  await waitFor(
    async () => {
      const { body } = await admin.request<{ sessions: Array<{ serial: string; port: number; state: string }> }>('GET', '/v1/sessions');
      const listening = body.sessions.filter((s) => s.state === 'listening');
      return (
        listening.length === live.length &&
        live.every((s) => listening.some((p) => p.serial === s.spec.serial && p.port === s.status!.port))
      );
    },
    20_000,
    'the proxy to run exactly the live sessions',
  );
  for (const port of ports) assert.not.ok(await refuses(port), `port ${port} of a live session does not listen`);

  // No port leaked: the rest of the range can still be allocated, and no more.
  const free = RANGE - live.length;
  const extra = await Promise.all(Array.from({ length: free }, (_, i) => c.control<{ port: number }>(`/on?serial=FILL-${i}`)));
  const refused = extra.filter((a) => a.status !== 200);
  if (refused.length > 0 && process.env.CCCP_CHURN_DEBUG) {
    const lines = [...c.operators.values()]
      .map((o) => o.output())
      .join('\n')
      .split('\n');
    console.log(
      lines
        .filter((l) => /quarantin|warn|error|stored port/i.test(l))
        .slice(-40)
        .join('\n'),
    );
  }
  assert.ok(
    refused.length === 0,
    `only ${free - refused.length} of ${free} free ports could be allocated: ${JSON.stringify(refused)}; live ${ports.join(',')}`,
  );
  assert.is((await c.control('/on?serial=FILL-over')).status, 503);
  console.log(`  after the churn: ${live.length} live sessions, ${free} ports free and all allocatable, none duplicated, none stuck`);
});

test.run();
