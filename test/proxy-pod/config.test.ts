// The proxy pod's dead-link settings from the environment.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { proxyOptionsFromEnv } from '../../proxy-pod/config.ts';

const base = { CCCP_ADMIN_SOCKET: '/tmp/admin.sock' };

test('keepalive idle 60 s and send timeout 60 s by default', () => {
  const config = proxyOptionsFromEnv(base);
  assert.is(config.keepaliveIdleMs, 60_000);
  assert.is(config.sendTimeoutMs, 60_000);
});

test('CCCP_KEEPALIVE_IDLE_S and CCCP_SEND_TIMEOUT_S are read in seconds; a send timeout of 0 turns it off', () => {
  const config = proxyOptionsFromEnv({ ...base, CCCP_KEEPALIVE_IDLE_S: '20', CCCP_SEND_TIMEOUT_S: '0' });
  assert.is(config.keepaliveIdleMs, 20_000);
  assert.is(config.sendTimeoutMs, 0);
});

test('an idle time of 0 (which Linux refuses) or a negative send timeout is refused naming the variable', () => {
  assert.throws(() => proxyOptionsFromEnv({ ...base, CCCP_KEEPALIVE_IDLE_S: '0' }), /CCCP_KEEPALIVE_IDLE_S/);
  assert.throws(() => proxyOptionsFromEnv({ ...base, CCCP_SEND_TIMEOUT_S: '-5' }), /CCCP_SEND_TIMEOUT_S/);
});

test.run();
