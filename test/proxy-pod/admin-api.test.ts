// The proxy pod's admin API over real HTTP: idempotent puts, bind errors,
// garbage, the token, the event stream, and the instance id across restarts.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminError, InstanceInfo, ProxyEvent, SessionList } from '../../common/admin-protocol.ts';
import { connect, connectDevice, freePort, freePorts, Received, waitFor } from '../helpers/net.ts';
import { type Started, startNodeProcess } from '../helpers/processes.ts';
import { AdminCaller, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('admin API');
const TOKEN = 'admin-token-0123456789abcdef';
let unix: TestProxy;
let dir: string;
let tcp: Started;
let tcpAdminPort: number;
let tcpDevicePort: number;
const cleanup: Array<() => unknown> = [];

test.before(async () => {
  unix = await startProxy();
  dir = mkdtempSync(join(tmpdir(), 'cccp-admin-'));
  [tcpAdminPort, tcpDevicePort] = (await freePorts(2)) as [number, number];
  tcp = await startTcpProxy();
});

test.after(async () => {
  for (const fn of cleanup.splice(0)) await fn();
  await unix.stop();
  await tcp.stop();
  rmSync(dir, { recursive: true, force: true });
});

function startTcpProxy(): Promise<Started> {
  return startNodeProcess(
    'proxy-pod/main.ts',
    {
      CCCP_ADMIN_PORT: String(tcpAdminPort),
      CCCP_ADMIN_BIND_HOST: '127.0.0.1',
      CCCP_ADMIN_TOKEN: TOKEN,
      CCCP_DEVICE_PORT: String(tcpDevicePort),
      CCCP_BIND_HOST: '127.0.0.1',
      CCCP_PROXY_HEALTH_PORT: '0',
    },
    /proxy pod ready/,
  );
}

const tcpAdmin = (token?: string) => new AdminCaller({ host: '127.0.0.1', port: tcpAdminPort }, token);

test('the same put twice changes nothing', async () => {
  const [port] = await freePorts(1);
  const first = await unix.admin.put('ADM-same', { port: port!, ipWhitelist: ['127.0.0.1'], timeoutSeconds: 60 });
  assert.is(first.status, 200);
  const client = await connect(port!);
  cleanup.push(() => client.destroy());
  await waitFor(async () => (await unix.admin.session('ADM-same'))?.clientConnected === true, 2000, 'the client');
  const connected = await unix.admin.session('ADM-same');
  const second = await unix.admin.put('ADM-same', { port: port!, ipWhitelist: ['127.0.0.1'], timeoutSeconds: 60 });
  assert.is(second.status, 200);
  assert.is(second.body.changeSeq, connected?.changeSeq, 'a put that changes nothing is no change in the feed');
  const after = await unix.admin.session('ADM-same');
  // The client's connect is a change of its own.
  const withoutClient = ({ clientConnected, clientAddress, client, changeSeq, ...rest }: typeof first.body) => rest;
  assert.equal(withoutClient(after!), withoutClient(first.body), 'the session is as the first put left it');
  assert.is(after?.listeningSince, first.body.listeningSince, 'the listener was not restarted');
  assert.ok(after?.clientConnected, 'the connected client survived the repeated put');
});

test('GET /v1/sessions?serial=… lists the named sessions the pod runs, in the order asked; bad lists are a 400', async () => {
  const [portA, portB] = (await freePorts(2)) as [number, number];
  assert.is((await unix.admin.put('ADM-list-a', { port: portA })).status, 200);
  assert.is((await unix.admin.put('ADM-list-b', { port: portB })).status, 200);
  const named = await unix.admin.request<SessionList>('GET', '/v1/sessions?serial=ADM-list-b&serial=ADM-none&serial=ADM-list-a');
  assert.is(named.status, 200);
  assert.equal(
    named.body.sessions.map((s) => [s.serial, s.port]),
    [
      ['ADM-list-b', portB],
      ['ADM-list-a', portA],
    ],
  );
  assert.type(named.body.instanceId, 'string');
  const one = await unix.admin.request<SessionList>('GET', '/v1/sessions?serial=ADM-list-a');
  assert.equal(
    one.body.sessions.map((s) => s.serial),
    ['ADM-list-a'],
  );
  const all = await unix.admin.request<SessionList>('GET', '/v1/sessions');
  assert.ok(all.body.sessions.length >= 2, 'no query: every session');
  const many = new URLSearchParams(Array.from({ length: 501 }, (_, i) => ['serial', `S${i}`]));
  for (const [query, message] of [
    ['serial=has%20space', /serial must be/],
    ['other=1', /unknown query parameter "other"/],
    [many.toString(), /at most 500 serials/],
  ] as const) {
    const answer = await unix.admin.request<AdminError>('GET', `/v1/sessions?${query}`);
    assert.is(answer.status, 400, query.slice(0, 40));
    assert.match(answer.body.message, message);
  }
  for (const serial of ['ADM-list-a', 'ADM-list-b']) await unix.admin.request('DELETE', `/v1/sessions/${serial}`);
});

test('GET /v1/devices/{serial} says whether a registered device waits here for its session', async () => {
  const before = await unix.admin.request<{ pending: boolean; instanceId: string }>('GET', '/v1/devices/ADM-waiting');
  assert.is(before.status, 200);
  assert.is(before.body.pending, false);
  assert.type(before.body.instanceId, 'string');
  const device = await connectDevice(unix.pod.devicePort, 'ADM-waiting');
  cleanup.push(() => device.destroy());
  await waitFor(
    async () => (await unix.admin.request<{ pending: boolean }>('GET', '/v1/devices/ADM-waiting')).body.pending,
    3000,
    'pending',
  );
  const bad = await unix.admin.request('GET', `/v1/devices/${encodeURIComponent('has space')}`);
  assert.is(bad.status, 400);
});

test('a put with new parameters applies them to the live session', async () => {
  const [port] = await freePorts(1);
  await unix.admin.put('ADM-update', { port: port!, persistent: false });
  const updated = await unix.admin.put('ADM-update', { port: port!, persistent: true, ipWhitelist: ['10.0.0.0/8'] });
  assert.is(updated.status, 200);
  assert.equal([updated.body.persistent, updated.body.ipWhitelist], [true, ['10.0.0.0/8']]);
  const refused = new Received(await connect(port!));
  cleanup.push(() => refused.socket.destroy());
  await refused.untilClosed(2000);
  assert.not.ok((await unix.admin.session('ADM-update'))?.clientConnected, 'the new whitelist refuses 127.0.0.1');
});

test('a port already bound by another process is reported as an error, and the pod keeps serving', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise((resolve) => blocker.close(resolve)));
  const taken = (blocker.address() as net.AddressInfo).port;
  const answer = await unix.admin.request<AdminError>('PUT', '/v1/sessions/ADM-taken', {
    id: 'x',
    port: taken,
    persistent: false,
    ipWhitelist: [],
  });
  assert.is(answer.status, 409);
  assert.is(answer.body.code, 'port_unavailable');
  assert.match(answer.body.message, String(taken));
  assert.is(await unix.admin.session('ADM-taken'), undefined);
  const free = await freePort();
  assert.is((await unix.admin.put('ADM-taken', { port: free })).status, 200, 'a later put on a free port works');
});

test('a port used by another session, and a port out of range, are errors', async () => {
  const [port] = await freePorts(1);
  await unix.admin.put('ADM-holder', { port: port! });
  const clash = await unix.admin.put('ADM-clash', { port: port! });
  assert.is(clash.status, 409);
  const outOfRange = await unix.admin.request('PUT', '/v1/sessions/ADM-range', {
    id: 'x',
    port: 70000,
    persistent: false,
    ipWhitelist: [],
  });
  assert.is(outOfRange.status, 400);
});

test('garbage requests get 4xx with a message', async () => {
  const cases: Array<[string, string, string | object | undefined, number]> = [
    ['PUT', '/v1/sessions/ADM-g', '{not json', 400],
    ['PUT', '/v1/sessions/ADM-g', [], 400],
    ['PUT', '/v1/sessions/ADM-g', { id: 'x', port: 'eighty', persistent: false, ipWhitelist: [] }, 400],
    ['PUT', '/v1/sessions/ADM-g', { id: 'x', port: 20000, persistent: 'yes', ipWhitelist: [] }, 400],
    ['PUT', '/v1/sessions/ADM-g', { id: 'x', port: 20000, persistent: false, ipWhitelist: ['300.1.1.1'] }, 400],
    ['PUT', '/v1/sessions/ADM-g', { id: 'x', port: 20000, persistent: false, ipWhitelist: [], timeoutSeconds: 0 }, 400],
    ['PUT', '/v1/sessions/ADM-g', { id: 'x', port: 20000, persistent: false, ipWhitelist: [], extra: 1 }, 400],
    ['PUT', `/v1/sessions/${encodeURIComponent('has space')}`, { id: 'x', port: 20000, persistent: false, ipWhitelist: [] }, 400],
    ['DELETE', '/v1/sessions/ADM-none', undefined, 404],
    ['GET', '/v1/nothing', undefined, 404],
    ['POST', '/v1/sessions', '{}', 405],
  ];
  for (const [method, path, body, status] of cases) {
    const answer = await unix.admin.request<{ message?: string }>(method, path, body);
    assert.is(answer.status, status, `${method} ${path} ${JSON.stringify(body)}`);
    assert.type(answer.body?.message, 'string', `${method} ${path} has a message`);
  }
  const huge = await unix.admin.request('PUT', '/v1/sessions/ADM-g', JSON.stringify({ id: 'x'.repeat(200_000) }));
  assert.is(huge.status, 413);
});

test('a serial with URL-special characters round-trips', async () => {
  const serial = 'A/B?C#D%E&F';
  const [port] = await freePorts(1);
  assert.is((await unix.admin.put(serial, { port: port! })).status, 200);
  assert.is((await unix.admin.session(serial))?.port, port);
  const device = await connectDevice(unix.pod.devicePort, serial);
  cleanup.push(() => device.destroy());
  await waitFor(async () => (await unix.admin.session(serial))?.deviceConnected === true, 2000, 'the device');
  assert.is((await unix.admin.delete(serial)).status, 200);
});

test('the Unix socket is created with mode 0600', () => {
  assert.is(statSync(unix.pod.adminAddress).mode & 0o777, 0o600);
});

test('on TCP, requests without the right token get 401', async () => {
  for (const caller of [tcpAdmin(), tcpAdmin('wrong-token-0123456789')]) {
    const answer = await caller.request<{ code: string }>('GET', '/v1/sessions');
    assert.is(answer.status, 401);
    assert.is(answer.body.code, 'unauthorized');
  }
  assert.is((await tcpAdmin().request('PUT', '/v1/sessions/X', { id: 'x', port: 20000, persistent: false, ipWhitelist: [] })).status, 401);
  assert.is((await tcpAdmin(TOKEN).request('GET', '/v1/sessions')).status, 200);
  assert.not.match(tcp.output(), TOKEN, 'the token never appears in the logs');
});

test('the event stream reports connects, disconnects and the end with its reason', async () => {
  const [port] = await freePorts(1);
  const events: ProxyEvent[] = [];
  const stream = await openEvents(unix.pod.adminAddress, events);
  cleanup.push(() => stream.destroy());
  await unix.admin.put('ADM-events', { port: port!, timeoutSeconds: 1 });
  const device = await connectDevice(unix.pod.devicePort, 'ADM-events');
  cleanup.push(() => device.destroy());
  await waitFor(() => events.some((e) => e.type === 'session-ended'), 4000, 'the session-ended event');
  const mine = events.filter((e) => e.serial === 'ADM-events');
  assert.equal(
    mine.map((e) => e.type),
    ['device-connected', 'device-disconnected', 'session-ended'],
  );
  assert.is(mine.at(-1)?.reason, 'ClientConnectTimeout');
  assert.is(events[0]?.type, 'hello');
  const seqs = mine.map((e) => e.seq);
  assert.ok(
    seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
    'sequence numbers increase',
  );
});

test('an ended session stays listed with its reason until deleted; the same id cannot revive it', async () => {
  const state = await unix.admin.session('ADM-events');
  assert.equal([state?.state, state?.endedReason], ['ended', 'ClientConnectTimeout']);
  const again = await unix.admin.put('ADM-events', { port: state!.port, timeoutSeconds: 1 });
  assert.is(again.status, 409);
  const fresh = await unix.admin.put('ADM-events', { port: state!.port, id: 'a-new-incarnation' });
  assert.is(fresh.status, 200);
  assert.is(fresh.body.state, 'listening');
});

test('after a restart the instance id differs and no session is left', async () => {
  const before = (await tcpAdmin(TOKEN).request<InstanceInfo>('GET', '/v1/info')).body.instanceId;
  await tcpAdmin(TOKEN).put('ADM-restart', { port: await freePort() });
  await tcp.kill9();
  tcp = await startTcpProxy();
  const after = await tcpAdmin(TOKEN).request<SessionList>('GET', '/v1/sessions');
  assert.type(before, 'string');
  assert.is.not(after.body.instanceId, before);
  assert.equal(after.body.sessions, []);
});

function openEvents(socketPath: string, into: ProxyEvent[]): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: '/v1/events' }, (res) => {
        let buffer = '';
        res.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          const lines = buffer.split('\n');
          buffer = lines.pop()!;
          for (const line of lines) if (line) into.push(JSON.parse(line));
        });
        res.on('error', () => {});
        resolve(res);
      })
      .on('error', reject);
  });
}

test.run();
