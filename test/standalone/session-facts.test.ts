// Sessions explain themselves: every /status field, GET /sessions (paging,
// ordering, retention), and the lifetime limits ending sessions with their
// reasons, against the standalone mode over real HTTP and TCP.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openApiDocument } from '../../operator/openapi.ts';
import { connect, connectDevice, Received, sleep, waitFor } from '../helpers/net.ts';
import { ResponseChecker } from '../helpers/openapi-responses.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('session facts');
const RETENTION_S = 3;
let app: RunningStandalone;
let withDefaults: RunningStandalone;
const sockets: net.Socket[] = [];
const checker = new ResponseChecker(structuredClone(openApiDocument) as unknown as Record<string, unknown>);

interface Side {
  connected: boolean;
  address?: string;
  connected_since?: string;
  last_activity?: string;
  bytes_sent: number;
  bytes_dropped: number;
}
interface Status {
  device_connected: boolean;
  client_connected: boolean;
  transferred: number;
  serial: string;
  state: string;
  created_at: string;
  host?: string;
  port?: number;
  persistent: boolean;
  ip_whitelist: string[];
  timeout?: number;
  max_lifetime?: number;
  expires_at?: string;
  idle_timeout?: number;
  device: Side;
  client: Side;
  clients_refused: number;
  ended_reason?: string;
  ended_at?: string;
}
interface ErrorBody {
  code: string;
  message: string;
  ended_reason?: string;
  ended_at?: string;
}

test.before(async () => {
  app = await startStandalone({ rangeSize: 12, env: { CCCP_ENDED_RETENTION_S: String(RETENTION_S) } });
  withDefaults = await startStandalone({ rangeSize: 2, env: { CCCP_DEFAULT_IDLE_TIMEOUT_S: '1', CCCP_DEFAULT_MAX_LIFETIME_S: '3600' } });
});

test.after(async () => {
  for (const socket of sockets) socket.destroy();
  await app?.stop();
  await withDefaults?.stop();
});

async function status(serial: string, on = app): Promise<{ status: number; body: Status & ErrorBody }> {
  const answer = await on.call(`/status?serial=${encodeURIComponent(serial)}`);
  assert.is(checker.problem('/status', answer.status, answer.body), undefined);
  return { status: answer.status, body: answer.body as Status & ErrorBody };
}

function track<T extends net.Socket>(socket: T): T {
  sockets.push(socket);
  return socket;
}

const isoNear = (text: string | undefined, from: number, to: number) => {
  const at = Date.parse(text ?? '');
  return !Number.isNaN(at) && at >= from - 1500 && at <= to + 1500;
};

test('/status explains a live session: state, times, per-side addresses, bytes per direction, dropped bytes, refused clients', async () => {
  const started = Date.now();
  // Repeated keys, as generated clients send them, are merged with comma-separated entries.
  const on = await app.call('/on?serial=FACTS-1&persistent=true&ip_whitelist=127.0.0.1&ip_whitelist=10.0.0.0/8,192.168.1.7/24&timeout=600');
  assert.is(on.status, 200, JSON.stringify(on.body));
  const { port } = on.body as { port: number };

  // The device speaks before any client is there: those bytes are dropped and counted as the device's.
  const device = new Received(track(await connectDevice(app.devicePort, 'FACTS-1', '\r', 'early!')));
  await waitFor(async () => (await status('FACTS-1')).body.device.bytes_dropped === 6, 3000, 'the early bytes to count as dropped');

  // A client from an address outside the whitelist is refused and counted.
  const refused = new Received(track(await connect(port, { localAddress: '127.0.0.2' })));
  await refused.untilClosed(3000);

  const client = new Received(track(await connect(port)));
  await waitFor(async () => (await status('FACTS-1')).body.client_connected, 3000, 'the client to show as connected');
  device.socket.write('from-device');
  await client.untilLength(11);
  client.socket.write('from-client!!');
  await device.untilLength(13);
  const now = Date.now();
  await waitFor(async () => (await status('FACTS-1')).body.transferred === 24, 3000, 'transferred to reach 24');

  const { status: code, body } = await status('FACTS-1');
  assert.is(code, 200);
  // The seed's three fields, unchanged in meaning.
  assert.is(body.device_connected, true);
  assert.is(body.client_connected, true);
  assert.is(body.transferred, 24);
  assert.is(body.serial, 'FACTS-1');
  assert.is(body.state, 'active');
  assert.ok(isoNear(body.created_at, started, now), `created_at ${body.created_at}`);
  assert.is(body.port, port);
  assert.is(body.host, '127.0.0.1');
  assert.is(body.persistent, true);
  assert.equal(body.ip_whitelist, ['127.0.0.1', '10.0.0.0/8', '192.168.1.0/24']);
  assert.is(body.timeout, 600);
  assert.is(body.clients_refused, 1);
  assert.is(body.device.connected, true);
  assert.is(body.device.address, `127.0.0.1:${device.socket.localPort}`);
  assert.is(body.device.bytes_sent, 11);
  assert.is(body.device.bytes_dropped, 6);
  assert.ok(isoNear(body.device.connected_since, started, now), `device connected_since ${body.device.connected_since}`);
  assert.ok(isoNear(body.device.last_activity, started, now), `device last_activity ${body.device.last_activity}`);
  assert.is(body.client.connected, true);
  assert.is(body.client.address, `127.0.0.1:${client.socket.localPort}`);
  assert.is(body.client.bytes_sent, 13);
  assert.is(body.client.bytes_dropped, 0);
  assert.ok(isoNear(body.client.connected_since, started, now));
  assert.ok(isoNear(body.client.last_activity, started, now));
  assert.ok(Date.parse(body.client.connected_since!) >= Date.parse(body.device.connected_since!), 'the client came after the device');
  assert.is(body.ended_reason, undefined);

  // The client leaves: its address and connection time go, its last activity stays.
  client.socket.end();
  await waitFor(async () => !(await status('FACTS-1')).body.client_connected, 3000, 'the client to show as gone');
  const after = (await status('FACTS-1')).body;
  assert.is(after.client.address, undefined);
  assert.is(after.client.connected_since, undefined);
  assert.is(after.client.last_activity, body.client.last_activity);
  assert.is(after.transferred, 24, 'transferred is cumulative over reconnects');
  assert.is((await app.call('/off?serial=FACTS-1')).status, 200);
});

test("an ended session answers the seed's 404 with why and when (code session_ended); a never-created one says session_not_found", async () => {
  assert.is((await app.call('/on?serial=FACTS-END&timeout=1')).status, 200);
  await waitFor(async () => (await status('FACTS-END')).status === 404, 5000, 'the session to end by its timeout');
  const { body } = await status('FACTS-END');
  assert.is(body.code, 'session_ended');
  assert.is(body.ended_reason, 'ClientConnectTimeout');
  assert.ok(isoNear(body.ended_at, Date.now() - 5000, Date.now()));
  assert.match(body.message, /^No session for serial FACTS-END/);
  const never = await status('FACTS-NEVER');
  assert.is(never.status, 404);
  assert.is(never.body.code, 'session_not_found');
});

async function listAll(limit: number): Promise<{ pages: Status[][]; statuses: number[] }> {
  const pages: Status[][] = [];
  const statuses: number[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 20; i++) {
    const answer = await app.call(`/sessions?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    statuses.push(answer.status);
    assert.is(checker.problem('/sessions', answer.status, answer.body), undefined);
    const page = answer.body as { sessions: Status[]; next_cursor?: string };
    pages.push(page.sessions);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return { pages, statuses };
}

test('GET /sessions pages through every session in serial order, ended ones during retention only', async () => {
  const serials = ['LS-d', 'LS-a', 'LS-e', 'LS-c', 'LS-b'];
  for (const serial of serials) assert.is((await app.call(`/on?serial=${serial}&persistent=true`)).status, 200);
  assert.is((await app.call('/on?serial=LS-f&timeout=1')).status, 200);
  await waitFor(async () => (await status('LS-f')).status === 404, 5000, 'LS-f to end');

  const { pages } = await listAll(2);
  assert.ok(pages.every((page) => page.length <= 2));
  const listed = pages.flat().filter((s) => s.serial.startsWith('LS-'));
  assert.equal(
    listed.map((s) => s.serial),
    ['LS-a', 'LS-b', 'LS-c', 'LS-d', 'LS-e', 'LS-f'],
  );
  const all = pages.flat().map((s) => s.serial);
  assert.equal(all, [...all].sort(), 'ordered by serial across pages');
  assert.is(new Set(all).size, all.length, 'no session on two pages');
  const ended = listed.find((s) => s.serial === 'LS-f')!;
  assert.is(ended.state, 'ended');
  assert.is(ended.ended_reason, 'ClientConnectTimeout');
  assert.is(ended.port, undefined, 'an ended session holds no port');
  assert.ok(listed.filter((s) => s.serial !== 'LS-f').every((s) => s.state === 'active' && typeof s.port === 'number'));

  // After the retention time the ended record is gone from the list and from /status.
  await waitFor(
    async () => (await status('LS-f')).body.code === 'session_not_found',
    (RETENTION_S + 5) * 1000,
    'the ended record to expire',
  );
  const later = (await listAll(100)).pages.flat().map((s) => s.serial);
  assert.not.ok(later.includes('LS-f'));

  const bad = await app.call('/sessions?cursor=not*valid');
  assert.is(bad.status, 400);
  assert.is((bad.body as ErrorBody).code, 'invalid_parameter');
  assert.is((await app.call('/sessions?limit=0')).status, 400);
  assert.is((await app.call('/sessions?limit=501')).status, 400);
  for (const serial of serials) assert.is((await app.call(`/off?serial=${serial}`)).status, 200);
});

test('max_lifetime ends a busy session with reason MaxLifetime', async () => {
  const on = await app.call('/on?serial=LIFE-1&persistent=true&max_lifetime=2');
  assert.is(on.status, 200);
  const live = (await status('LIFE-1')).body;
  assert.is(live.max_lifetime, 2);
  await waitFor(async () => (await status('LIFE-1')).body.expires_at !== undefined, 3000, 'expires_at');
  const device = new Received(track(await connectDevice(app.devicePort, 'LIFE-1', '\r')));
  const client = new Received(track(await connect((on.body as { port: number }).port)));
  await waitFor(async () => (await status('LIFE-1')).body.client_connected, 3000, 'the client');
  // Traffic does not extend a lifetime.
  const chatter = setInterval(() => device.socket.writable && device.socket.write('x'), 200);
  try {
    await waitFor(async () => (await status('LIFE-1')).status === 404, 6000, 'the lifetime to end the session');
  } finally {
    clearInterval(chatter);
  }
  const { body } = await status('LIFE-1');
  assert.is(body.ended_reason, 'MaxLifetime');
  await client.untilClosed(3000);
  await device.untilClosed(3000);
});

test("lowering max_lifetime below the live session's age ends it: /on answers 409 session_expired, and /on again starts a new one", async () => {
  assert.is((await app.call('/on?serial=LIFE-2&persistent=true')).status, 200);
  await sleep(2100);
  const lowered = await app.call('/on?serial=LIFE-2&persistent=true&max_lifetime=1');
  assert.is(lowered.status, 409, JSON.stringify(lowered.body));
  assert.is(checker.problem('/on', 409, lowered.body), undefined);
  assert.is((lowered.body as ErrorBody).code, 'session_expired');
  assert.is((lowered.body as ErrorBody).ended_reason, 'MaxLifetime');
  const again = await app.call('/on?serial=LIFE-2&persistent=true&max_lifetime=60');
  assert.is(again.status, 200);
  assert.is((await status('LIFE-2')).body.state, 'active');
  assert.is((await app.call('/off?serial=LIFE-2')).status, 200);
});

test('idle_timeout ends a session only after the traffic stops, with reason IdleTimeout', async () => {
  const on = await app.call('/on?serial=IDLE-1&persistent=true&idle_timeout=2');
  assert.is(on.status, 200);
  const device = new Received(track(await connectDevice(app.devicePort, 'IDLE-1', '\r')));
  const client = new Received(track(await connect((on.body as { port: number }).port)));
  await waitFor(async () => (await status('IDLE-1')).body.client_connected, 3000, 'the client');
  const chatter = setInterval(() => device.socket.writable && device.socket.write('x'), 300);
  await sleep(3500);
  clearInterval(chatter);
  const busy = await status('IDLE-1');
  assert.is(busy.status, 200, 'a session with traffic is not idle');
  assert.is(busy.body.idle_timeout, 2);
  const quietFrom = Date.now();
  await waitFor(async () => (await status('IDLE-1')).status === 404, 6000, 'the idle limit to end the session');
  const waited = Date.now() - quietFrom;
  assert.ok(waited >= 1000, `ended ${waited} ms after the traffic stopped`);
  assert.is((await status('IDLE-1')).body.ended_reason, 'IdleTimeout');
  await client.untilClosed(3000);
});

test('the deployment default idle timeout applies to sessions that ask for none, and /status shows it', async () => {
  const on = await withDefaults.call('/on?serial=DEF-1&persistent=true');
  assert.is(on.status, 200);
  await waitFor(async () => (await status('DEF-1', withDefaults)).body.idle_timeout === 1, 3000, 'the default idle timeout to show');
  const live = (await status('DEF-1', withDefaults)).body;
  assert.ok(
    isoNear(live.expires_at, Date.now() + 3_600_000, Date.now() + 3_600_000),
    `expires_at ${live.expires_at} from the default max lifetime`,
  );
  await waitFor(async () => (await status('DEF-1', withDefaults)).status === 404, 5000, 'the default idle timeout to end it');
  assert.is((await status('DEF-1', withDefaults)).body.ended_reason, 'IdleTimeout');
});

test.run();
