// The Control API's 500 answers, in process: a store that no reconciler
// serves (so nothing ever listens) and a store that throws. These cannot be
// provoked from outside the real standalone mode.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { createControlApi } from '../../operator/control-api.ts';
import { ControlMetrics } from '../../operator/control-metrics.ts';
import { MemorySessionStore } from '../../operator/memory-session-store.ts';
import { openApiDocument } from '../../operator/openapi.ts';
import { SessionCommands } from '../../operator/session-commands.ts';
import { ResponseChecker } from '../helpers/openapi-responses.ts';

const test = suite('Control API errors');

class BrokenStore extends MemorySessionStore {
  override async get(): Promise<never> {
    throw new Error('store unreachable: secret-internal-detail');
  }
}

const servers: http.Server[] = [];

async function serve(store: MemorySessionStore, notReady?: string): Promise<string> {
  const app = createControlApi({
    commands: new SessionCommands(store, { timeoutMs: 300 }),
    metrics: new ControlMetrics(store),
    logger: silentLogger(),
    tokens: [],
    notReadyReason: () => notReady,
  });
  const server = http.createServer(app.callback());
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test.after(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

const checker = new ResponseChecker(structuredClone(openApiDocument) as unknown as Record<string, unknown>);

test('/on answers 500 {message} when the port does not listen in time', async () => {
  const url = await serve(new MemorySessionStore());
  const response = await fetch(`${url}/on?serial=SLOW`);
  const body = await response.json();
  assert.is(response.status, 500);
  assert.match((body as { message: string }).message, /Timed out/);
  assert.is(checker.problem('/on', 500, body), undefined);
});

test('an unexpected failure answers 500 {message} without internal details', async () => {
  const url = await serve(new BrokenStore());
  for (const path of ['/on?serial=X', '/off?serial=X', '/status?serial=X']) {
    const response = await fetch(url + path);
    const body = await response.json();
    assert.is(response.status, 500, path);
    assert.equal(body, { message: 'Internal error' });
    assert.is(checker.problem(path.split('?')[0]!, 500, body), undefined);
  }
});

test('/readyz answers 503 {message} until the reconciler is ready', async () => {
  const url = await serve(new MemorySessionStore(), 'the reconciler has not synced with the proxy yet');
  const response = await fetch(`${url}/readyz`);
  const body = await response.json();
  assert.is(response.status, 503);
  assert.match((body as { message: string }).message, /^Not ready/);
  assert.is(checker.problem('/readyz', 503, body), undefined);
});

test.run();
