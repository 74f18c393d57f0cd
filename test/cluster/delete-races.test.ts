// Every way a session is deleted, raced against the next session for the
// same serial, in cluster mode against the real API server. The informer's
// cache must never bring back an object the watch has deleted, so no serial
// may ever be left stuck behind a session that is already gone.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterFixture } from '../helpers/cluster.ts';
import { connect, sleep, waitFor } from '../helpers/net.ts';

const test = suite('session deletion races in cluster mode');
const RANGE_SIZE = 8;
const FILLERS = Array.from({ length: RANGE_SIZE }, (_, i) => `FILL-${i}`);

// A short request timeout makes a stuck serial fail fast instead of after 10 s.
const theCluster = clusterFixture(test, {
  namespace: 'cccp-races',
  rangeSize: RANGE_SIZE,
  operatorEnv: { CCCP_REQUEST_TIMEOUT_S: '5', CCCP_ENDED_RETENTION_S: '2' },
});

type Endpoint = { host: string; port: number; message?: string };

async function on(query: string): Promise<{ status: number; body: Endpoint }> {
  return theCluster().control<Endpoint>(`/on?${query}`);
}

async function expectListening(query: string, what: string): Promise<number> {
  const answer = await on(query);
  assert.is(answer.status, 200, `${what}: ${JSON.stringify(answer.body)}`);
  (await connect(answer.body.port)).destroy();
  return answer.body.port;
}

/** The serial is not stuck: /on gets a listening port and /off ends it. */
async function assertNotStuck(serial: string, what: string): Promise<void> {
  // Persistent, so the test's own connection closing does not end it.
  await expectListening(`serial=${serial}&persistent=true`, `${what}: /on ${serial}`);
  const off = await theCluster().control(`/off?serial=${serial}`);
  assert.is(off.status, 200, `${what}: /off ${serial}: ${JSON.stringify(off.body)}`);
}

test('a full range: every retry is 503, the first retry after a port frees gets it, 50 rounds', async () => {
  const c = theCluster();
  for (const serial of FILLERS) await expectListening(`serial=${serial}&persistent=true`, `filling with ${serial}`);

  for (let round = 0; round < 50; round++) {
    const what = `round ${round}`;
    for (let retry = 0; retry < 2; retry++) {
      const full = await on('serial=LATE&persistent=true');
      assert.is(full.status, 503, `${what}, retry ${retry} while full: ${JSON.stringify(full.body)}`);
      assert.equal(full.body, { code: 'no_available_ports', message: 'No available ports' });
    }
    const freed = FILLERS[round % RANGE_SIZE]!;
    const off = await c.control(`/off?serial=${freed}`);
    assert.is(off.status, 200, `${what}: /off ${freed}`);
    await expectListening('serial=LATE&persistent=true', `${what}: first retry after ${freed} freed its port`);
    assert.is((await c.control('/off?serial=LATE')).status, 200, `${what}: /off LATE`);
    await expectListening(`serial=${freed}&persistent=true`, `${what}: refilling with ${freed}`);
  }

  for (const serial of FILLERS) assert.is((await c.control(`/off?serial=${serial}`)).status, 200);
  assert.equal(await c.sessions(), []);
  await assertNotStuck('LATE', 'after the rounds');
});

test('/off racing a new /on for the same serial: no 5xx, never stuck, 30 rounds', async () => {
  const c = theCluster();
  for (let round = 0; round < 30; round++) {
    const what = `round ${round}`;
    await expectListening('serial=RACE&persistent=true', `${what}: first /on`);
    const [off, again] = await Promise.all([c.control('/off?serial=RACE'), on('serial=RACE&persistent=true')]);
    assert.ok(off.status === 200 || off.status === 404, `${what}: /off answered ${off.status} ${JSON.stringify(off.body)}`);
    assert.ok(again.status === 200 || again.status === 409, `${what}: racing /on answered ${again.status} ${JSON.stringify(again.body)}`);
    await assertNotStuck('RACE', what);
  }
});

test('kubectl delete followed at once by kubectl apply of the same serial: a new session every time, 15 rounds', async () => {
  const c = theCluster();
  const manifest = (round: number) =>
    `apiVersion: cccp.tcxn.net/v1alpha1\nkind: ProxySession\nmetadata:\n  name: kubectl-made\n  labels:\n    round: "${round}"\nspec:\n  serial: KUBECTL-1\n  persistent: true\n`;
  let previousUid = '';
  for (let round = 0; round < 15; round++) {
    const what = `round ${round}`;
    if (round > 0) {
      const deleted = await c.kubectl(['delete', 'pxs', 'kubectl-made']);
      assert.is(deleted.code, 0, `${what}: kubectl delete: ${deleted.stderr}`);
    }
    const applied = await c.kubectl(['apply', '-f', '-'], manifest(round));
    assert.is(applied.code, 0, `${what}: kubectl apply: ${applied.stderr}`);
    let port = 0;
    await waitFor(
      async () => {
        const s = await c.session('KUBECTL-1');
        if (s?.status?.phase !== 'Active' || s.metadata.uid === previousUid || s.status.port === undefined) return false;
        previousUid = s.metadata.uid;
        port = s.status.port;
        return true;
      },
      10_000,
      `${what}: the applied session to become Active`,
    );
    (await connect(port)).destroy();
    const status = await c.control('/status?serial=KUBECTL-1');
    assert.is(status.status, 200, `${what}: /status ${JSON.stringify(status.body)}`);
  }
  assert.is((await c.kubectl(['delete', 'pxs', 'kubectl-made'])).code, 0);
  await assertNotStuck('KUBECTL-1', 'after the rounds');
});

test('a session that ends by its timeout, then /on at once: a new session every time, 15 rounds', async () => {
  const c = theCluster();
  for (let round = 0; round < 15; round++) {
    const what = `round ${round}`;
    await expectListening('serial=EXPIRES&timeout=1', `${what}: /on with a timeout`);
    // Around the moment the timeout fires: before, during and after the session ends.
    await sleep(800 + (round % 5) * 100);
    const again = await on('serial=EXPIRES');
    assert.is(again.status, 200, `${what}: /on after the timeout: ${JSON.stringify(again.body)}`);
    // The new session has no timeout: it must outlive the old one's.
    await sleep(300);
    const status = await c.control('/status?serial=EXPIRES');
    assert.is(status.status, 200, `${what}: /status of the new session: ${JSON.stringify(status.body)}`);
    assert.is((await c.control('/off?serial=EXPIRES')).status, 200, `${what}: /off`);
  }
  await assertNotStuck('EXPIRES', 'after the rounds');
});

test.run();
