// The typed admin client against a real proxy pod in this process: typed
// answers, errors by code, and an event stream that survives a proxy restart.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProxyEvent } from '../../common/admin-protocol.ts';
import { silentLogger } from '../../common/log.ts';
import { AdminApiError, type EventStream, ProxyAdminClient, toChangeBatch, toProxyEvent } from '../../operator/proxy-admin-client.ts';
import { ProxyPod } from '../../proxy-pod/proxy-pod.ts';
import { freePort, freePorts, waitFor } from '../helpers/net.ts';

const test = suite('proxy admin client');
const dir = mkdtempSync(join(tmpdir(), 'cccp-admin-client-'));
const socketPath = join(dir, 'admin.sock');
const cleanups: Array<() => unknown> = [];

const startPod = (admin: { socketPath: string } | { host: string; port: number; token: string } = { socketPath }) =>
  ProxyPod.start({ devicePort: 0, bindHost: '127.0.0.1', admin, logger: silentLogger(), processMetrics: false });

test.after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('info, put, list and delete answer typed values from the real proxy', async () => {
  const pod = await startPod();
  const client = new ProxyAdminClient({ endpoint: { socketPath } });
  try {
    const [port] = await freePorts(1);
    assert.is((await client.info()).instanceId, pod.instanceId);
    const state = await client.putSession('CLD/1', { id: 'uid-1', port: port!, persistent: true, ipWhitelist: ['127.0.0.1'] });
    assert.equal([state.serial, state.state, state.port, state.transferredBytes], ['CLD/1', 'listening', port, 0]);
    const list = await client.listSessions();
    assert.equal(
      list.sessions.map((s) => s.serial),
      ['CLD/1'],
    );
    assert.is((await client.deleteSession('CLD/1'))?.serial, 'CLD/1');
    assert.is(await client.deleteSession('CLD/1'), undefined, 'a second delete finds nothing');
  } finally {
    client.close();
    await pod.stop();
  }
});

test('a port held by another process is reported as port_unavailable', async () => {
  const pod = await startPod();
  const client = new ProxyAdminClient({ endpoint: { socketPath } });
  const holder = net.createServer();
  try {
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    const error = await client.putSession('A', { id: 'a', port, persistent: false, ipWhitelist: [] }).catch((e: unknown) => e);
    assert.instance(error, AdminApiError);
    assert.is((error as AdminApiError).code, 'port_unavailable');
  } finally {
    holder.close();
    client.close();
    await pod.stop();
  }
});

test('on TCP a wrong token is refused as unauthorized and the right one works', async () => {
  const port = await freePort();
  const token = 'a-long-enough-admin-token';
  const pod = await startPod({ host: '127.0.0.1', port, token });
  const wrong = new ProxyAdminClient({ endpoint: { host: '127.0.0.1', port, token: 'not-the-admin-token' } });
  const right = new ProxyAdminClient({ endpoint: { host: '127.0.0.1', port, token } });
  try {
    const error = await wrong.info().catch((e: unknown) => e);
    assert.is((error as AdminApiError).code, 'unauthorized');
    assert.is((await right.info()).instanceId, pod.instanceId);
  } finally {
    wrong.close();
    right.close();
    await pod.stop();
  }
});

test('an unreachable proxy is reported as unreachable, not as a crash', async () => {
  const client = new ProxyAdminClient({ endpoint: { socketPath: join(dir, 'nobody.sock') } });
  const error = await client.listSessions().catch((e: unknown) => e);
  assert.is((error as AdminApiError).code, 'unreachable');
  client.close();
});

test('the event stream starts with hello, delivers session events and reconnects to a restarted proxy', async () => {
  let pod = await startPod();
  const client = new ProxyAdminClient({ endpoint: { socketPath }, reconnectMinMs: 20, reconnectMaxMs: 200 });
  const events: ProxyEvent[] = [];
  let stream: EventStream | undefined;
  cleanups.push(
    () => stream?.close(),
    () => client.close(),
  );
  stream = client.watchEvents({ onEvent: (event) => events.push(event) });
  await waitFor(() => events.some((e) => e.type === 'hello' && e.instanceId === pod.instanceId), 3000, 'hello');
  const [port] = await freePorts(1);
  await client.putSession('EV-1', { id: 'ev', port: port!, persistent: false, ipWhitelist: [], timeoutSeconds: 1 });
  await waitFor(
    () => events.some((e) => e.type === 'session-ended' && e.serial === 'EV-1'),
    3000,
    'session-ended after the client timeout',
  );
  const ended = events.find((e) => e.type === 'session-ended' && e.serial === 'EV-1');
  assert.equal([ended?.session?.state, ended?.session?.endedReason], ['ended', 'ClientConnectTimeout'], 'the event carries the state');
  const first = pod.instanceId;
  await pod.stop();
  pod = await startPod();
  cleanups.push(() => pod.stop());
  await waitFor(() => events.some((e) => e.type === 'hello' && e.instanceId === pod.instanceId), 5000, 'hello from the restarted proxy');
  assert.is.not(pod.instanceId, first);
});

test('the change feed answers a checked ChangeBatch: a full listing first, then what changed after the cursor', async () => {
  const pod = await startPod();
  const client = new ProxyAdminClient({ endpoint: { socketPath } });
  try {
    const [portA, portB] = (await freePorts(2)) as [number, number];
    await client.putSession('CH-A', { id: 'a', port: portA, persistent: true, ipWhitelist: [] });
    const listing = await client.changes(0, undefined);
    assert.equal(
      [listing.reset, listing.instanceId, listing.sessions.map((s) => s.serial), listing.more],
      [true, pod.instanceId, ['CH-A'], false],
    );
    await client.putSession('CH-B', { id: 'b', port: portB, persistent: true, ipWhitelist: [] });
    await client.deleteSession('CH-A');
    const next = await client.changes(listing.cursor, listing.instanceId, 10);
    assert.is(next.reset, false);
    assert.equal(
      next.sessions.map((s) => [s.serial, s.changeSeq > listing.cursor]),
      [['CH-B', true]],
    );
    assert.equal(
      next.removed.map((r) => [r.serial, r.id]),
      [['CH-A', 'a']],
    );
    const error = await client.changes(0, undefined, 0).catch((e: unknown) => e);
    assert.instance(error, AdminApiError);
    assert.is((error as AdminApiError).code, 'bad_request');
  } finally {
    client.close();
    await pod.stop();
  }
});

test('a malformed change batch, counter entry or event session is a bad_response, not a crash', () => {
  const info = { instanceId: 'i', startedAt: 'now', devicePort: 1 };
  const side = { forwardedBytes: 64, droppedBytes: 0, lastActivity: '2026-01-01T00:00:00.000Z' };
  const entry = { serial: 'A', id: 'a', changeSeq: 4, transferredBytes: 64, droppedBytes: 0, device: side, client: side };
  const batch = { ...info, cursor: 4, reset: false, sessions: [], counters: [entry], removed: [], more: false };
  assert.equal(toChangeBatch(batch), batch, 'a well-formed counter entry');
  const malformed = [
    { ...info, cursor: '3', reset: false, sessions: [], removed: [], more: false },
    { ...info, cursor: 3, reset: false, sessions: [{}], removed: [], more: false },
    { ...info, cursor: 3, reset: false, sessions: [], removed: [{ serial: 'A' }], more: false },
    { ...info, cursor: 3, reset: false, sessions: [], removed: [] },
    { ...batch, counters: {} },
    { ...batch, counters: [{ ...entry, client: undefined }] },
    { ...batch, counters: [{ ...entry, id: undefined }] },
    { ...batch, counters: [{ ...entry, transferredBytes: -1 }] },
    { ...batch, counters: [{ ...entry, changeSeq: 1.5 }] },
    { ...batch, counters: [{ ...entry, device: { ...side, forwardedBytes: '64' } }] },
    { ...batch, counters: [{ ...entry, device: { droppedBytes: 0 } }] },
    { ...batch, counters: [{ ...entry, client: { ...side, lastActivity: 5 } }] },
  ];
  for (const value of malformed) {
    const error = (() => {
      try {
        toChangeBatch(value);
      } catch (e) {
        return e;
      }
    })();
    assert.instance(error, AdminApiError, JSON.stringify(value));
    assert.is((error as AdminApiError).code, 'bad_response');
  }
  assert.throws(
    () => toProxyEvent({ type: 'device-connected', instanceId: 'i', seq: 1, session: { serial: 3 } }),
    (e: unknown) => e instanceof AdminApiError,
  );
  assert.is(toProxyEvent({ type: 'heartbeat', instanceId: 'i', seq: 0 }).session, undefined);
});

test.run();
