// Control API tokens from a mounted file (CCCP_CONTROL_TOKENS_FILE), as the
// chart mounts its Secret: a rotation applies without a restart, and a file
// that turns unreadable or empty keeps the tokens in force. The standalone
// mode runs as a real process; the file is updated the way the kubelet
// updates a Secret volume (an atomic swap of the `..data` symlink).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, operatorConfigFromEnv } from '../../operator/config.ts';
import { projectSecretVolume } from '../helpers/helm.ts';
import { sleep, waitFor } from '../helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('Control API tokens file');
const dir = mkdtempSync(join(tmpdir(), 'cccp-tokens-'));
const mount = join(dir, 'control-tokens');
const FIRST = 'first-file-token-0123456789';
const SECOND = 'second-file-token-0123456789';
let app: RunningStandalone | undefined;

test.after(async () => {
  await app?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const statusWith = async (token: string) => (await app!.call('/status?serial=TF-1', { token })).status;

test('the tokens in the file are required from the start', async () => {
  projectSecretVolume(mount, { tokens: FIRST });
  app = await startStandalone({ rangeSize: 2, env: { CCCP_CONTROL_TOKENS_FILE: join(mount, 'tokens'), CCCP_LOG_LEVEL: 'info' } });
  assert.is(await statusWith(FIRST), 404);
  assert.is(await statusWith(SECOND), 401);
  assert.is((await app.call('/status?serial=TF-1')).status, 401);
});

test('a swapped Secret volume applies within the reload period, without a restart; the removed token gets 401', async () => {
  const pid = app!.process.child.pid;
  projectSecretVolume(mount, { tokens: `${FIRST},${SECOND}` });
  await waitFor(async () => (await statusWith(SECOND)) === 404, 5000, 'the added token to be accepted');
  assert.is(await statusWith(FIRST), 404, 'both during the overlap');
  projectSecretVolume(mount, { tokens: SECOND });
  await waitFor(async () => (await statusWith(FIRST)) === 401, 5000, 'the removed token to be refused');
  assert.is(await statusWith(SECOND), 404);
  assert.is(app!.process.child.pid, pid);
  assert.is(app!.process.child.exitCode, null, 'never restarted');
});

test('an empty or missing file keeps the tokens in force (authentication never turns off)', async () => {
  projectSecretVolume(mount, { tokens: '' });
  await sleep(2500);
  assert.is((await app!.call('/status?serial=TF-1')).status, 401, 'no token still refused after an empty read');
  assert.is(await statusWith(SECOND), 404);
  rmSync(mount, { recursive: true, force: true });
  await sleep(2500);
  assert.is(await statusWith(SECOND), 404);
  assert.match(app!.process.output(), 'control tokens file unusable; the tokens in force stay');
  assert.not.match(app!.process.output(), SECOND, 'tokens are never logged');
});

test('at start, an empty or missing file, or both variables, is a configuration error naming them', () => {
  const empty = join(dir, 'empty');
  writeFileSync(empty, ' \n');
  assert.throws(
    () => operatorConfigFromEnv({ CCCP_CONTROL_TOKENS_FILE: empty }),
    (err: Error) => err instanceof ConfigError && /holds no token/.test(err.message),
  );
  assert.throws(
    () => operatorConfigFromEnv({ CCCP_CONTROL_TOKENS_FILE: join(dir, 'nope') }),
    /CCCP_CONTROL_TOKENS_FILE .*nope cannot be read/,
  );
  assert.throws(() => operatorConfigFromEnv({ CCCP_CONTROL_TOKENS_FILE: empty, CCCP_CONTROL_TOKENS: FIRST }), /not both/);
  const spaced = join(dir, 'spaced');
  writeFileSync(spaced, 'has a space-0123456789');
  assert.throws(() => operatorConfigFromEnv({ CCCP_CONTROL_TOKENS_FILE: spaced }), /printable ASCII without spaces/);
});

test.run();
