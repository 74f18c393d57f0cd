// The per-session facts in the cluster mode: from the proxy into the
// ProxySession status (real kube-apiserver), the same in /status and
// /sessions; lifetime limits set with kubectl end sessions with their reasons.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startRigWithCrd, TestCluster } from '../helpers/cluster.ts';
import { connect, connectDevice, freePortRange, Received, waitFor } from '../helpers/net.ts';
import type { Rig } from '../kube/rig.ts';

const test = suite('session facts in cluster mode');
let rig: Rig | undefined;
let cluster: TestCluster | undefined;
let startError: unknown;
const sockets: net.Socket[] = [];

test.before(async () => {
  try {
    rig = await startRigWithCrd();
    cluster = await TestCluster.start(rig, { namespace: 'cccp-facts', portRange: await freePortRange(6) });
    await cluster.startOperator('operator-facts', { CCCP_ENDED_RETENTION_S: '60' });
    await cluster.waitForOperatorLeader();
  } catch (err) {
    startError = err;
  }
});

test.after(async () => {
  for (const socket of sockets) socket.destroy();
  await cluster?.stop();
  await rig?.stop();
});

function theCluster(): TestCluster {
  if (!cluster || startError) throw startError ?? new Error('cluster not started');
  return cluster;
}

type Status = Record<string, unknown>;

async function resourceStatus(serial: string): Promise<Status> {
  return ((await theCluster().session(serial))?.status ?? {}) as Status;
}

test("the proxy's per-side facts reach the ProxySession status and /status", async () => {
  const c = theCluster();
  const on = await c.control<{ port: number }>('/on?serial=CF-1&persistent=true&ip_whitelist=127.0.0.1&ip_whitelist=10.0.0.0/8');
  assert.is(on.status, 200, JSON.stringify(on.body));
  const device = new Received(await connectDevice(c.devicePort, 'CF-1', '\r', 'early!'));
  sockets.push(device.socket);
  await waitFor(async () => (await resourceStatus('CF-1')).droppedFromDevice === 6, 10_000, 'droppedFromDevice in the resource');
  const refused = new Received(await connect(on.body.port, { localAddress: '127.0.0.2' }));
  sockets.push(refused.socket);
  await refused.untilClosed(5000);
  const client = new Received(await connect(on.body.port));
  sockets.push(client.socket);
  await waitFor(async () => (await resourceStatus('CF-1')).clientConnected === true, 10_000, 'the client in the resource');
  device.socket.write('from-device');
  await client.untilLength(11);
  client.socket.write('from-client!!');
  await device.untilLength(13);
  await waitFor(async () => (await resourceStatus('CF-1')).transferredBytes === 24, 10_000, 'transferredBytes 24 in the resource');

  const status = await resourceStatus('CF-1');
  assert.is(status.bytesFromDevice, 11);
  assert.is(status.bytesFromClient, 13);
  assert.is(status.droppedFromDevice, 6);
  assert.is(status.droppedFromClient, 0);
  assert.is(status.clientsRefused, 1);
  assert.is(status.deviceAddress, `127.0.0.1:${device.socket.localPort}`);
  for (const field of ['deviceConnectedSince', 'clientConnectedSince', 'deviceLastActivity', 'clientLastActivity']) {
    assert.ok(!Number.isNaN(Date.parse(String(status[field]))), `${field} is a time: ${String(status[field])}`);
  }

  const view = await c.control<{
    device: Record<string, unknown>;
    client: Record<string, unknown>;
    clients_refused: number;
    ip_whitelist: string[];
    state: string;
  }>('/status?serial=CF-1');
  assert.is(view.status, 200);
  assert.is(view.body.state, 'active');
  assert.equal(view.body.ip_whitelist, ['127.0.0.1', '10.0.0.0/8']);
  assert.is(view.body.clients_refused, 1);
  assert.is(view.body.device.bytes_sent, 11);
  assert.is(view.body.device.bytes_dropped, 6);
  assert.is(view.body.device.connected_since, status.deviceConnectedSince);
  assert.is(view.body.client.last_activity, status.clientLastActivity);
  assert.is((await c.control('/off?serial=CF-1')).status, 200);
});

test('idleTimeoutSeconds and maxLifetimeSeconds set with kubectl end sessions with IdleTimeout and MaxLifetime', async () => {
  const c = theCluster();
  const manifest = (name: string, serial: string, extra: string) =>
    `apiVersion: cccp.tcxn.net/v1alpha1\nkind: ProxySession\nmetadata:\n  name: ${name}\nspec:\n  serial: ${serial}\n  persistent: true\n${extra}`;
  const applied = await c.kubectl(
    ['apply', '-f', '-'],
    `${manifest('cf-idle', 'CF-IDLE', '  idleTimeoutSeconds: 1\n')}---\n${manifest('cf-life', 'CF-LIFE', '  maxLifetimeSeconds: 2\n')}`,
  );
  assert.is(applied.code, 0, applied.stderr);
  await waitFor(async () => (await resourceStatus('CF-IDLE')).phase === 'Ended', 15_000, 'CF-IDLE to end');
  assert.is((await resourceStatus('CF-IDLE')).endedReason, 'IdleTimeout');
  await waitFor(async () => (await resourceStatus('CF-LIFE')).phase === 'Ended', 15_000, 'CF-LIFE to end');
  const life = await resourceStatus('CF-LIFE');
  assert.is(life.endedReason, 'MaxLifetime');
  assert.ok(typeof life.expiresAt === 'string', 'expiresAt was written while it ran');

  const ended = await c.control<{ code: string; ended_reason: string }>('/status?serial=CF-LIFE');
  assert.is(ended.status, 404);
  assert.is(ended.body.code, 'session_ended');
  assert.is(ended.body.ended_reason, 'MaxLifetime');
  const page = await c.control<{ sessions: Array<{ serial: string; state: string; ended_reason?: string }> }>('/sessions');
  const listed = page.body.sessions.filter((s) => s.serial.startsWith('CF-'));
  assert.equal(
    listed.map((s) => [s.serial, s.state, s.ended_reason]),
    [
      ['CF-IDLE', 'ended', 'IdleTimeout'],
      ['CF-LIFE', 'ended', 'MaxLifetime'],
    ],
  );

  const bad = await c.kubectl(['apply', '-f', '-'], manifest('cf-bad', 'CF-BAD', '  idleTimeoutSeconds: 0\n'));
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /idleTimeoutSeconds/);
});

test.run();
