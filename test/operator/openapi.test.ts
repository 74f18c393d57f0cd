// The OpenAPI document is valid OpenAPI 3.1, and real answers of the running
// standalone mode match its documented status codes and response schemas.
import { Validator } from '@seriousme/openapi-schema-validator';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ResponseChecker } from '../helpers/openapi-responses.ts';
import { startStandalone, type RunningStandalone } from '../helpers/standalone.ts';

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
  assert.ok(checker.problem('/off', 200, { extra: 1 }));
  assert.ok(checker.problem('/off', 503, { message: 'x' }), '503 is not documented for /off');
});

test.run();
