// The cluster mode against the rig's real kube-apiserver: the operator and
// the proxy pod run as real processes; only HTTP, TCP and kubectl are used.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterFixture, type ProxySessionJson, type TestCluster } from '../helpers/cluster.ts';
import { connect, connectDevice, Received, refuses, sleep, waitFor } from '../helpers/net.ts';

const test = suite('operator in cluster mode');
const sockets: net.Socket[] = [];
const RANGE_SIZE = 200;
const RETENTION_S = 4;

const theCluster = clusterFixture(test, {
  namespace: 'cccp-e2e',
  rangeSize: RANGE_SIZE,
  operatorEnv: { CCCP_ENDED_RETENTION_S: String(RETENTION_S) },
});

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

async function exchange(port: number, serial: string): Promise<{ device: Received; client: Received }> {
  const c = theCluster();
  const client = new Received(await connect(port));
  const device = new Received(await connectDevice(c.devicePort, serial));
  sockets.push(client.socket, device.socket);
  device.socket.write('ping');
  await client.untilLength(4, 5000);
  client.socket.write('pong');
  await device.untilLength(4, 5000);
  return { device, client };
}

test('/on creates a ProxySession that carries traffic; kubectl and /status agree; /off deletes it', async () => {
  const c = theCluster();
  const on = await c.control<{ host: string; port: number }>('/on?serial=E2E-1&persistent=true');
  assert.is(on.status, 200, JSON.stringify(on.body));
  assert.is(on.body.host, '127.0.0.1');
  const resource = await c.session('E2E-1');
  assert.is(resource?.status?.port, on.body.port);
  assert.is(resource?.status?.phase, 'Active');
  await exchange(on.body.port, 'E2E-1');

  await waitFor(async () => (await c.session('E2E-1'))?.status?.transferredBytes === 8, 5000, 'status to count 8 bytes');
  const table = await c.kubectl(['get', 'pxs']);
  const header = table.stdout.split('\n')[0]!;
  for (const column of ['NAME', 'SERIAL', 'PORT', 'PHASE', 'PROXY', 'DEVICE', 'CLIENT', 'TRANSFERRED', 'AGE']) assert.match(header, column);
  const row = table.stdout.split('\n').find((line) => line.includes('E2E-1'))!;
  assert.match(row, new RegExp(`E2E-1\\s+${on.body.port}\\s+Active\\s+proxy-0\\s+true\\s+true\\s+8\\s`));

  const status = await c.control('/status?serial=E2E-1');
  const stored = (await c.session('E2E-1'))!.status!;
  const { device_connected, client_connected, transferred } = status.body as Record<string, unknown>;
  assert.equal(
    { device_connected, client_connected, transferred },
    { device_connected: stored.deviceConnected, client_connected: stored.clientConnected, transferred: stored.transferredBytes },
  );

  assert.is((await c.control('/off?serial=E2E-1')).status, 200);
  assert.is(await c.session('E2E-1'), undefined);
  assert.ok(await refuses(on.body.port));
});

test('kubectl explain teaches every field of the resource', async () => {
  const c = theCluster();
  for (const field of [
    'spec.serial',
    'spec.persistent',
    'spec.ipWhitelist',
    'spec.timeoutSeconds',
    'status.phase',
    'status.port',
    'status.transferredBytes',
    'status.endedReason',
    'status.endedAt',
    'status.conditions',
  ]) {
    const explained = await c.kubectl(['explain', `proxysessions.${field}`]);
    assert.is(explained.code, 0, explained.stderr);
    const description = explained.stdout.split('DESCRIPTION:')[1]?.trim() ?? '';
    assert.ok(description.length > 20 && !description.startsWith('<empty>'), `${field} has no description: ${explained.stdout}`);
  }
});

test('a session that times out stays visible as Ended with its reason, then is deleted after the retention time', async () => {
  const c = theCluster();
  const on = await c.control<{ port: number }>('/on?serial=E2E-timeout&timeout=1');
  assert.is(on.status, 200);
  await waitFor(async () => (await c.session('E2E-timeout'))?.status?.phase === 'Ended', 10_000, 'phase Ended');
  const ended = await c.session('E2E-timeout');
  assert.is(ended?.status?.endedReason, 'ClientConnectTimeout');
  assert.is((await c.control('/status?serial=E2E-timeout')).status, 404);
  assert.ok(await refuses(on.body.port), 'the port is freed at once');
  const table = await c.kubectl(['get', 'pxs', '-o', 'wide']);
  assert.match(table.stdout, /E2E-timeout\s+\d+\s+Ended/);
  await waitFor(async () => (await c.session('E2E-timeout')) === undefined, (RETENTION_S + 10) * 1000, 'the ended session to be deleted');
});

test('connects, disconnects and the end of a session are recorded as Kubernetes Events', async () => {
  const c = theCluster();
  const on = await c.control<{ port: number }>('/on?serial=E2E-events');
  const { client } = await exchange(on.body.port, 'E2E-events');
  client.socket.end();
  await waitFor(async () => (await c.session('E2E-events'))?.status?.phase === 'Ended', 10_000, 'the session to end');
  const name = (await c.session('E2E-events'))!.metadata.name;
  let reasons: string[] = [];
  await waitFor(
    async () => {
      const { stdout } = await c.kubectl([
        'get',
        'events',
        '--field-selector',
        `involvedObject.name=${name}`,
        '-o',
        'jsonpath={.items[*].reason}',
      ]);
      reasons = stdout.split(/\s+/).filter(Boolean);
      return ['ClientConnected', 'DeviceConnected', 'ClientDisconnected', 'SessionEnded'].every((r) => reasons.includes(r));
    },
    10_000,
    'the events',
  ).catch(() => assert.unreachable(`events seen: ${reasons.join(', ')}`));
});

test('a ProxySession made with kubectl apply gets a port and carries traffic; kubectl delete frees it', async () => {
  const c = theCluster();
  const manifest = {
    apiVersion: 'cccp.tcxn.net/v1alpha1',
    kind: 'ProxySession',
    metadata: { name: 'by-hand' },
    spec: { serial: 'E2E-kubectl', persistent: true },
  };
  const applied = await c.kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
  assert.is(applied.code, 0, applied.stderr);
  let port = 0;
  await waitFor(
    async () => {
      const s = await c.session('E2E-kubectl');
      port = s?.status?.phase === 'Active' ? (s.status.port ?? 0) : 0;
      return port > 0;
    },
    10_000,
    'the applied session to become Active',
  );
  const { device } = await exchange(port, 'E2E-kubectl');
  assert.is((await c.control('/status?serial=E2E-kubectl')).status, 200, '/status sees a session made by kubectl');
  const deleted = await c.kubectl(['delete', 'pxs', 'by-hand', '--timeout=20s']);
  assert.is(deleted.code, 0, deleted.stderr);
  await device.untilClosed(5000);
  assert.ok(await refuses(port));
});

test('a second ProxySession for a serial shows Failed (DuplicateSerial) naming the holder, runs nothing, and goes after the holder', async () => {
  const c = theCluster();
  const on = await c.control<{ port: number }>('/on?serial=E2E-dup&persistent=true');
  assert.is(on.status, 200, JSON.stringify(on.body));
  const holder = await c.session('E2E-dup');
  const manifest = (persistent: boolean) =>
    JSON.stringify({
      apiVersion: 'cccp.tcxn.net/v1alpha1',
      kind: 'ProxySession',
      metadata: { name: 'dup-by-hand' },
      spec: { serial: 'E2E-dup', persistent },
    });
  // Creation times have a resolution of one second: a later second makes the hand-made one the newer.
  await sleep(1100);
  const applied = await c.kubectl(['apply', '-f', '-'], manifest(true));
  assert.is(applied.code, 0, applied.stderr);
  const markedAt = async (generation: number) => {
    let seen: ProxySessionJson | undefined;
    await waitFor(
      async () => {
        seen = await c.named('dup-by-hand');
        return seen?.status?.endedReason === 'DuplicateSerial' && seen.status.observedGeneration === generation;
      },
      10_000,
      `the duplicate to be marked at generation ${generation}: ${JSON.stringify(seen?.status)}`,
    );
    return seen!;
  };
  const duplicate = await markedAt(1);
  assert.is(duplicate.status?.phase, 'Failed');
  assert.is(duplicate.status?.port, undefined, 'a duplicate holds no port');
  const ready = duplicate.status?.conditions?.find((cond) => cond.type === 'Ready');
  assert.is(ready?.status, 'False');
  assert.match(ready?.message ?? '', `held by ProxySession ${holder?.metadata.name}`);
  assert.equal(duplicate.metadata.finalizers ?? [], [], 'nothing holds a duplicate back from kubectl delete');
  const table = await c.kubectl(['get', 'pxs', 'dup-by-hand']);
  assert.match(table.stdout, /Failed/);

  // The holder runs on, on its port, and /status answers for it.
  const status = await c.control<{ port: number }>('/status?serial=E2E-dup');
  assert.is(status.status, 200);
  assert.is(status.body.port, on.body.port);
  const stillHolding = await c.named(holder?.metadata.name ?? '');
  assert.is(stillHolding?.status?.phase, 'Active', JSON.stringify(stillHolding?.status));
  assert.is(stillHolding?.status?.port, on.body.port);
  await exchange(on.body.port, 'E2E-dup');

  // Edited while still a duplicate: marked again for the new generation.
  const edited = await c.kubectl(['apply', '-f', '-'], manifest(false));
  assert.is(edited.code, 0, edited.stderr);
  await markedAt(2);

  // The holder goes; the duplicate does not start but stays Failed, and goes after the retention time.
  assert.is((await c.control('/off?serial=E2E-dup')).status, 200);
  assert.ok(await refuses(on.body.port), 'the holder’s port is closed');
  const after = await c.named('dup-by-hand');
  assert.is(after?.status?.phase, 'Failed', JSON.stringify(after?.status));
  await waitFor(async () => (await c.named('dup-by-hand')) === undefined, (RETENTION_S + 10) * 1000, 'the failed duplicate to be deleted');
});

test('200 sessions created at once get 200 distinct ports; exhaustion gives 503 and leaves nothing behind', async () => {
  const c = theCluster();
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: RANGE_SIZE }, (_, i) => c.control<{ port: number }>(`/on?serial=BULK-${i}`)));
  console.log(`  ${RANGE_SIZE} concurrent /on answered in ${Date.now() - started} ms`);
  try {
    await checkBulk(c, answers);
  } finally {
    await Promise.all(Array.from({ length: RANGE_SIZE }, (_, i) => c.control(`/off?serial=BULK-${i}`)));
    await waitFor(async () => (await c.sessions()).length === 0, 30_000, 'every bulk session to go');
  }
});

async function checkBulk(c: TestCluster, answers: Array<{ status: number; body: { port: number } }>): Promise<void> {
  const failed = answers.filter((a) => a.status !== 200);
  assert.is(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
  const ports = new Set(answers.map((a) => a.body.port));
  assert.is(ports.size, RANGE_SIZE);
  const { min, max } = c.opts.portRange;
  assert.ok([...ports].every((p) => p >= min && p <= max));

  const extra = await c.control<{ message: string }>('/on?serial=BULK-extra');
  assert.is(extra.status, 503);
  assert.equal(extra.body, { code: 'no_available_ports', message: 'No available ports' });
  assert.is(await c.session('BULK-extra'), undefined, 'no resource left behind');
}

test('kill -9 of the proxy pod: every live session listens again on its same port within seconds', async () => {
  const c = theCluster();
  const serials = ['RESTART-1', 'RESTART-2', 'RESTART-3'];
  const ports = new Map<string, number>();
  for (const serial of serials) ports.set(serial, (await c.control<{ port: number }>(`/on?serial=${serial}&persistent=true`)).body.port);
  await c.proxy!.kill9();
  for (const port of ports.values()) assert.ok(await refuses(port), 'the killed proxy no longer listens');
  const restarted = Date.now();
  await c.startProxy();
  await waitFor(
    async () => (await Promise.all([...ports.values()].map((p) => refuses(p)))).every((r) => !r),
    10_000,
    'the sessions to listen again',
  );
  console.log(`  sessions listening again ${Date.now() - restarted} ms after the proxy restarted`);
  for (const serial of serials) {
    assert.is((await c.session(serial))?.status?.port, ports.get(serial), `${serial} kept its port`);
    await exchange(ports.get(serial)!, serial);
  }
  for (const serial of serials) await c.control(`/off?serial=${serial}`);
});

test('kill -9 of the operator: traffic keeps flowing; after restart no port is reallocated or duplicated', async () => {
  const c = theCluster();
  const serials = ['OPKILL-1', 'OPKILL-2'];
  const ports = new Map<string, number>();
  for (const serial of serials) ports.set(serial, (await c.control<{ port: number }>(`/on?serial=${serial}&persistent=true`)).body.port);
  const flows = await Promise.all(serials.map((s) => exchange(ports.get(s)!, s)));
  await c.operators.get('operator-a')!.kill9();
  // The data plane does not need the operator.
  flows[0]!.device.socket.write('still-here');
  await flows[0]!.client.untilLength(4 + 10, 3000);
  await c.startOperator('operator-a');
  await c.waitForOperatorLeader();
  const fresh = await c.control<{ port: number }>('/on?serial=OPKILL-3&persistent=true');
  assert.is(fresh.status, 200);
  assert.not.ok([...ports.values()].includes(fresh.body.port), 'a new session does not get a port still in use');
  await sleep(1000);
  for (const serial of serials) assert.is((await c.session(serial))?.status?.port, ports.get(serial), `${serial} kept its port`);
  const all = (await c.sessions()).map((s) => s.status?.port);
  assert.is(new Set(all).size, all.length, 'no port is held twice');
  flows[1]!.client.socket.write('after');
  await flows[1]!.device.untilLength(4 + 5, 3000);
  for (const serial of [...serials, 'OPKILL-3']) await c.control(`/off?serial=${serial}`);
});

test('two replicas: only the leader writes status; when it dies the other takes over', async () => {
  const c = theCluster();
  await c.startOperator('operator-b');
  const leader = await c.waitForOperatorLeader();
  const follower = leader === 'operator-a' ? 'operator-b' : 'operator-a';
  // The follower's Control API serves too; the leader's reconciler does the work.
  const on = await c.control<{ port: number }>('/on?serial=LEADER-1&persistent=true', follower);
  assert.is(on.status, 200);
  await exchange(on.body.port, 'LEADER-1');
  const writers = (await c.session('LEADER-1'))!.metadata.managedFields!.filter((f) => f.subresource === 'status').map((f) => f.manager);
  assert.equal([...new Set(writers)], [leader], `status written by ${writers.join(', ')}`);

  const killed = Date.now();
  await c.operators.get(leader)!.kill9();
  c.operators.delete(leader);
  await waitFor(async () => (await c.waitForOperatorLeader()) === follower, 20_000, 'the follower to take the lease');
  const after = await c.control<{ port: number }>('/on?serial=LEADER-2', follower);
  assert.is(after.status, 200);
  console.log(`  new leader serving ${Date.now() - killed} ms after the old one was killed (lease 4 s)`);
  const newWriters = (await c.session('LEADER-2'))!.metadata.managedFields!.filter((f) => f.subresource === 'status').map((f) => f.manager);
  assert.equal([...new Set(newWriters)], [follower]);
  for (const serial of ['LEADER-1', 'LEADER-2']) await c.control(`/off?serial=${serial}`, follower);
});

test('the API server stopped for 30 s: traffic flows, the operator recovers without a restart, no session is lost', async () => {
  const c = theCluster();
  const on = await c.control<{ port: number }>('/on?serial=OUTAGE-1&persistent=true');
  assert.is(on.status, 200);
  const flow = await exchange(on.body.port, 'OUTAGE-1');
  await theCluster().rig.stopApiServer();
  for (let i = 0; i < 6; i++) {
    await sleep(5000);
    flow.device.socket.write('x');
    await flow.client.untilLength(4 + i + 1, 3000);
  }
  await theCluster().rig.startApiServer();
  const after = await waitForOk(() => c.control<{ port: number }>('/on?serial=OUTAGE-2'), 60_000);
  assert.is(after.status, 200);
  assert.is((await c.session('OUTAGE-1'))?.status?.port, on.body.port, 'the session survived with its port');
  await waitFor(async () => (await c.session('OUTAGE-1'))?.status?.transferredBytes === 8 + 6, 10_000, 'status to catch up');
  for (const serial of ['OUTAGE-1', 'OUTAGE-2']) await c.control(`/off?serial=${serial}`);
});

async function waitForOk<T extends { status: number }>(call: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await call().catch(() => undefined);
    if (answer?.status === 200 || Date.now() > deadline) return answer ?? call();
    await sleep(1000);
  }
}

test.run();
