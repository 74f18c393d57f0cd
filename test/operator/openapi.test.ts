// The OpenAPI document is valid OpenAPI 3.1, and real answers of the running
// standalone mode match its documented status codes and response schemas.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ResponseChecker } from '../helpers/openapi-responses.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('OpenAPI document');
const TOKEN = 'openapi-test-token';
let app: RunningStandalone;
let document: Record<string, unknown>;

test.before(async () => {
  app = await startStandalone({ rangeSize: 1, env: { CCCP_CONTROL_TOKENS: TOKEN } });
  document = (await app.call('/openapi.json')).body as Record<string, unknown>;
});

test.after(async () => {
  await app.stop();
});

test('the document served at /openapi.json is valid OpenAPI 3.1', async () => {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(document));
  assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
  assert.is(validator.version, '3.1');
});

test('real answers of every endpoint match the documented status and response schema', async () => {
  const checker = new ResponseChecker(document);
  const calls: Array<[string, string, number, { token?: string; method?: string }?]> = [
    ['/on', '/on?serial=OA-1&persistent=true&ip_whitelist=127.0.0.1&timeout=60', 200],
    ['/on', '/on?serial=OA-1&persistent=true', 200],
    ['/on', '/on?serial=OA-1&persistent=true&ip_whitelist=127.0.0.1&ip_whitelist=10.0.0.0/8&max_lifetime=3600&idle_timeout=600', 200],
    ['/on', '/on?serial=OA-2', 503],
    ['/on', '/on?serial=OA-2&timeout=0', 400],
    ['/on', '/on?serial=OA-2', 401, { token: '' }],
    ['/on', '/on?serial=OA-2', 405, { method: 'POST' }],
    ['/status', '/status?serial=OA-1', 200],
    ['/status', '/status?serial=OA-2', 404],
    ['/status', '/status?serial=', 400],
    ['/status', '/status?serial=OA-1', 401, { token: 'wrong' }],
    ['/off', '/off?serial=OA-1', 200],
    ['/off', '/off?serial=OA-1', 404],
    ['/off', '/off?bogus=1', 400],
    ['/off', '/off?serial=OA-1', 401, { token: '' }],
    ['/sessions', '/sessions?limit=1', 200],
    ['/sessions', '/sessions?limit=x', 400],
    ['/sessions', '/sessions', 401, { token: '' }],
    ['/healthz', '/healthz', 200, { token: '' }],
    ['/readyz', '/readyz', 200, { token: '' }],
    ['/openapi.json', '/openapi.json', 200, { token: '' }],
    ['/healthz', '/healthz', 405, { method: 'DELETE' }],
  ];
  for (const [route, url, expected, options = {}] of calls) {
    const answer = await app.call(url, { token: options.token ?? TOKEN, method: options.method });
    assert.is(answer.status, expected, `${options.method ?? 'GET'} ${url}: ${JSON.stringify(answer.body)}`);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
    assert.is(checker.problem(route, answer.status, answer.body), undefined);
  }
  const metrics = await app.call('/metrics');
  assert.is(checker.problem('/metrics', metrics.status, metrics.body, 'text/plain'), undefined);
});

test('an answer that breaks the schema is caught (the check is not vacuous)', () => {
  const checker = new ResponseChecker(document);
  assert.ok(checker.problem('/on', 200, { host: 'h', port: 'x' }));
  assert.ok(checker.problem('/status', 200, { device_connected: true }));
  assert.ok(checker.problem('/off', 404, { message: 'no code' }));
  assert.ok(checker.problem('/status', 200, { device_connected: true, client_connected: true, transferred: -1 }));
  assert.ok(checker.problem('/off', 503, { message: 'x' }), '503 is not documented for /off');
});

test('503 carries a code and Retry-After', async () => {
  assert.is((await app.call('/on?serial=OA-HOLD', { token: TOKEN })).status, 200);
  const answer = await app.call('/on?serial=OA-FULL', { token: TOKEN });
  assert.is(answer.status, 503);
  assert.equal(answer.body, { code: 'no_available_ports', message: 'No available ports' });
  assert.is(answer.headers.get('retry-after'), '30');
  assert.is((await app.call('/off?serial=OA-HOLD', { token: TOKEN })).status, 200);
});

type Operation = { tags?: string[]; parameters?: Array<Record<string, unknown>>; responses: Record<string, Record<string, unknown>> };
const operations = () =>
  Object.entries(document.paths as Record<string, { get: Operation }>).map(([path, item]) => [path, item.get] as const);

test('every response has a body with a schema and an example; 431 is described once, in info', () => {
  const checker = new ResponseChecker(document);
  for (const [path, operation] of operations()) {
    assert.ok(operation.tags?.length, `${path} has a tag`);
    assert.not.ok('431' in operation.responses, `${path} lists no bodiless 431`);
    for (const [status, response] of Object.entries(operation.responses)) {
      const content = response.content as Record<string, { schema?: unknown; example?: unknown }> | undefined;
      assert.ok(content, `${path} ${status} has a body`);
      for (const [type, media] of Object.entries(content!)) {
        assert.ok(media.schema, `${path} ${status} ${type} has a schema`);
        assert.ok(media.example !== undefined, `${path} ${status} ${type} has an example`);
        assert.is(
          checker.problem(path, Number(status), media.example, type),
          undefined,
          `${path} ${status}: the example matches its schema`,
        );
      }
    }
  }
  assert.match((document.info as { description: string }).description, /431/);
});

test('reply schemas are open to additions (no additionalProperties: false anywhere)', () => {
  assert.not.match(JSON.stringify(document), /"additionalProperties":false/);
});

test('every parameter example is accepted by the server, and persistent is a boolean', async () => {
  for (const [path, operation] of operations()) {
    for (const parameter of operation.parameters ?? []) {
      assert.ok(parameter.example !== undefined, `${path} ${String(parameter.name)} has an example`);
    }
  }
  const on = operations().find(([path]) => path === '/on')![1];
  const example = (name: string) => on.parameters!.find((p) => p.name === name)!.example;
  assert.equal(on.parameters!.find((p) => p.name === 'persistent')!.schema, { type: 'boolean', default: false });
  const whitelist = (example('ip_whitelist') as string[]).map((e) => `ip_whitelist=${encodeURIComponent(e)}`).join('&');
  const query =
    `serial=${encodeURIComponent(String(example('serial')))}&persistent=${example('persistent')}&${whitelist}` +
    `&timeout=${example('timeout')}&max_lifetime=${example('max_lifetime')}&idle_timeout=${example('idle_timeout')}`;
  const answer = await app.call(`/on?${query}`, { token: TOKEN });
  assert.ok(answer.status === 200 || answer.status === 503, `${answer.status} ${JSON.stringify(answer.body)}`);
});

test('the + rule is stated once and as the server applies it', async () => {
  const text = JSON.stringify(document);
  assert.not.match(text, /literal '\+' stays/);
  const serial = operations()
    .find(([path]) => path === '/status')![1]
    .parameters!.find((p) => p.name === 'serial')!;
  assert.match(String(serial.description), /'\+' means a space/);
  const plus = await app.call('/status?serial=A+B', { token: TOKEN });
  assert.is(plus.status, 400);
  assert.match((plus.body as { message: string }).message, /%2B/);
  const accent = await app.call('/status?serial=%C3%A9', { token: TOKEN });
  assert.is(accent.status, 400);
  assert.not.match((accent.body as { message: string }).message, /%2B/, 'the %2B hint only where a + was written');
});

/** Redocly lint with recommended-strict; answers the problems it reports as rule ids. */
async function redoclyProblems(doc: unknown): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-redocly-'));
  try {
    writeFileSync(join(dir, 'openapi.json'), JSON.stringify(doc));
    const redocly = fileURLToPath(new URL('../../node_modules/.bin/redocly', import.meta.url));
    const config = fileURLToPath(new URL('../redocly/redocly.yaml', import.meta.url));
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(redocly, ['lint', '--config', config, '--format', 'json', join(dir, 'openapi.json')], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', () => {
        clearTimeout(timer);
        resolve(out);
      });
    });
    const report = JSON.parse(output) as { problems: Array<{ ruleId: string; severity: string }> };
    return report.problems.map((p) => `${p.severity}:${p.ruleId}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('Redocly lint with recommended-strict finds nothing, and does find a removed license (not vacuous)', async () => {
  assert.equal(await redoclyProblems(document), []);
  const { license: _license, ...info } = document.info as Record<string, unknown>;
  assert.equal(await redoclyProblems({ ...document, info }), ['error:info-license']);
});

test.run();
