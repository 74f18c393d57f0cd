// Optional bearer tokens (CCCP_CONTROL_TOKENS), end to end.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('Control API tokens');
const TOKENS = ['first-secret-token', 'second-secret-token'];
let app: RunningStandalone;

test.before(async () => {
  app = await startStandalone({ rangeSize: 2, env: { CCCP_CONTROL_TOKENS: TOKENS.join(','), CCCP_LOG_LEVEL: 'debug' } });
});

test.after(async () => {
  await app.stop();
});

test('without a token /on, /off and /status answer 401 {message} and do nothing', async () => {
  for (const path of ['/on?serial=AU-1', '/off?serial=AU-1', '/status?serial=AU-1']) {
    const answer = await app.call(path);
    assert.is(answer.status, 401, path);
    assert.type((answer.body as { message: string }).message, 'string');
    assert.is(answer.headers.get('www-authenticate'), 'Bearer');
  }
  assert.is((await app.call('/status?serial=AU-1', { token: TOKENS[0] })).status, 404, 'the refused /on created nothing');
});

test('a wrong token, or a prefix of a right one, answers 401', async () => {
  for (const token of ['nope', TOKENS[0]!.slice(0, -1), `${TOKENS[0]}x`, TOKENS.join(',')]) {
    assert.is((await app.call('/status?serial=AU-1', { token })).status, 401, token);
  }
});

test('either configured token works', async () => {
  const on = await app.call('/on?serial=AU-2', { token: TOKENS[0] });
  assert.is(on.status, 200);
  assert.is((await app.call('/status?serial=AU-2', { token: TOKENS[1] })).status, 200);
  assert.is((await app.call('/off?serial=AU-2', { token: TOKENS[1] })).status, 200);
});

test('health, readiness, metrics and the OpenAPI document need no token', async () => {
  for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
    assert.is((await app.call(path)).status, 200, path);
  }
});

test('no token appears in the logs, even at debug level', () => {
  const output = app.process.output();
  assert.match(output, /control request/, 'requests were logged');
  for (const token of TOKENS) assert.not.ok(output.includes(token), 'a token was logged');
});

test.run();
