// Every row of the Control API table, end to end: the standalone mode runs as
// a child process and is driven only through HTTP and TCP on loopback.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { refuses, waitFor } from '../helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('Control API');
let app: RunningStandalone;

test.before(async () => {
  app = await startStandalone({ rangeSize: 5 });
});

test.after(async () => {
  assert.is(await app.stop(), 0, 'the standalone mode exits 0 on SIGTERM');
});

/** What a client that knows only the seed's fields reads from a body. */
function seedView(body: unknown, fields: string[]): Record<string, unknown> {
  const record = body as Record<string, unknown>;
  return Object.fromEntries(fields.filter((f) => f in record).map((f) => [f, record[f]]));
}

function inRange(port: unknown): boolean {
  return typeof port === 'number' && port >= app.range.min && port <= app.range.max;
}

test('/on answers 200 {host, port} with the public host and a range port that listens', async () => {
  // Persistent: the test's own probe connection closing must not end it before /off.
  const answer = await app.call('/on?serial=ON-1&persistent=true');
  assert.is(answer.status, 200);
  assert.equal(Object.keys(answer.body as object).sort(), ['host', 'port']);
  const { host, port } = answer.body as { host: string; port: number };
  assert.is(host, '127.0.0.1');
  assert.ok(inRange(port), `port ${port} in ${app.range.min}-${app.range.max}`);
  assert.is(await refuses(port), false, 'the port accepts connections once /on answered');
  assert.is((await app.call('/off?serial=ON-1')).status, 200);
});

test('/on for a live session answers 200 with the same host and port', async () => {
  const first = await app.call('/on?serial=ON-2');
  const again = await app.call('/on?serial=ON-2&persistent=true&timeout=60');
  assert.is(again.status, 200);
  assert.equal(again.body, first.body);
  assert.is((await app.call('/off?serial=ON-2')).status, 200);
});

test('50 concurrent /on for one serial yield one session and one port', async () => {
  const answers = await Promise.all(Array.from({ length: 50 }, () => app.call('/on?serial=BURST&persistent=true')));
  assert.equal([...new Set(answers.map((a) => a.status))], [200]);
  const ports = new Set(answers.map((a) => (a.body as { port: number }).port));
  assert.is(ports.size, 1);
  const metrics = (await app.call('/metrics')).body as string;
  assert.match(metrics, /cccp_sessions\{phase="Active"\} 1\b/);
  assert.is((await app.call('/off?serial=BURST')).status, 200);
});

test('/status of a live session answers 200 {device_connected, client_connected, transferred}', async () => {
  await app.call('/on?serial=ST-1&persistent=true');
  const answer = await app.call('/status?serial=ST-1');
  assert.is(answer.status, 200);
  assert.equal(seedView(answer.body, ['device_connected', 'client_connected', 'transferred']), {
    device_connected: false,
    client_connected: false,
    transferred: 0,
  });
  await app.call('/off?serial=ST-1');
});

test('/status of an unknown serial answers 404 {message}', async () => {
  const answer = await app.call('/status?serial=NOBODY');
  assert.is(answer.status, 404);
  assert.equal(answer.body, { code: 'session_not_found', message: 'No session for serial NOBODY' });
});

test('/off answers 200 {} once the port is freed; the port then refuses connections and a second /off answers 404', async () => {
  const { port } = (await app.call('/on?serial=OFF-1&persistent=true')).body as { port: number };
  const off = await app.call('/off?serial=OFF-1');
  assert.is(off.status, 200);
  assert.equal(off.body, {});
  assert.ok(await refuses(port), 'nothing listens on the port after /off');
  assert.is((await app.call('/status?serial=OFF-1')).status, 404);
  const again = await app.call('/off?serial=OFF-1');
  assert.is(again.status, 404);
  assert.equal(again.body, { code: 'session_not_found', message: 'No session for serial OFF-1' });
});

test('/off of an unknown serial answers 404 {message}', async () => {
  const answer = await app.call('/off?serial=NEVER-ON');
  assert.is(answer.status, 404);
  assert.type((answer.body as { message: string }).message, 'string');
});

test('a session that ended (client timeout) answers 404 to /status, and /on starts a new one', async () => {
  const first = await app.call('/on?serial=TO-1&timeout=1');
  assert.is(first.status, 200);
  await waitFor(async () => (await app.call('/status?serial=TO-1')).status === 404, 4000, 'the session to end after its timeout');
  assert.ok(await refuses((first.body as { port: number }).port), 'the ended session freed its port');
  const second = await app.call('/on?serial=TO-1&persistent=true');
  assert.is(second.status, 200);
  assert.is((await app.call('/status?serial=TO-1')).status, 200);
  assert.is((await app.call('/off?serial=TO-1')).status, 200);
});

test('/on with bad parameters answers 400 {message} naming the parameter', async () => {
  const cases: Array<[string, string]> = [
    ['/on', 'serial'],
    ['/on?serial=', 'serial'],
    [`/on?serial=${'x'.repeat(65)}`, 'serial'],
    ['/on?serial=A%20B', 'serial'],
    ['/on?serial=A&serial=B', 'serial'],
    ['/on?serial=A&persistent=yes', 'persistent'],
    ['/on?serial=A&timeout=0', 'timeout'],
    ['/on?serial=A&timeout=86401', 'timeout'],
    ['/on?serial=A&timeout=1.5', 'timeout'],
    ['/on?serial=A&ip_whitelist=300.1.1.1', 'ip_whitelist'],
    ['/on?serial=A&ip_whitelist=10.0.0.0/33', 'ip_whitelist'],
    ['/on?serial=A&ip_whitelist=10.0.0.1,,10.0.0.2', 'ip_whitelist'],
    ['/on?serial=A&ip_whitelist=', 'ip_whitelist'],
    ['/on?serial=A&timeot=5', 'timeot'],
    ['/off', 'serial'],
    ['/off?serial=A&persistent=true', 'persistent'],
    ['/status?serial=', 'serial'],
    ['/status?serial=A&serial=A', 'serial'],
  ];
  for (const [path, parameter] of cases) {
    const answer = await app.call(path);
    assert.is(answer.status, 400, path);
    const { message } = answer.body as { message: string };
    assert.ok(message.includes(parameter), `${path}: "${message}" names ${parameter}`);
    assert.equal(Object.keys(answer.body as object).sort(), ['code', 'message', 'parameter']);
    assert.is((answer.body as { parameter: string }).parameter, parameter, path);
  }
  assert.is((await app.call('/status?serial=A')).status, 404, 'no refused /on left a session behind');
});

test('any method but GET answers 405 {message} with Allow: GET', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const answer = await app.call('/on?serial=M-1', { method });
    assert.is(answer.status, 405, method);
    assert.is(answer.headers.get('allow'), 'GET');
    assert.type((answer.body as { message: string }).message, 'string');
  }
  assert.is((await app.call('/status?serial=M-1')).status, 404, 'a refused method created nothing');
});

test('an unknown path answers 404 {message}', async () => {
  const answer = await app.call('/nope');
  assert.is(answer.status, 404);
  assert.equal(answer.body, { code: 'unknown_endpoint', message: 'No such endpoint: /nope' });
});

test('/healthz and /readyz answer 200; /metrics counts requests by route and status', async () => {
  assert.equal((await app.call('/healthz')).body, { status: 'ok' });
  assert.equal((await app.call('/readyz')).body, { status: 'ready' });
  const metrics = await app.call('/metrics');
  assert.is(metrics.status, 200);
  assert.match(metrics.body as string, /cccp_control_requests_total\{route="\/on",code="400"\} \d+/);
  assert.match(metrics.body as string, /cccp_sessions\{phase="Active"\} 0\b/);
});

test.run();
