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

test('PROXY protocol: off on both listeners by default, with a 5 s header deadline and every source trusted', () => {
  assert.equal(proxyOptionsFromEnv(base).proxyProtocol, { device: 'off', sessions: 'off', trustedSources: [], headerTimeoutMs: 5000 });
});

test('PROXY protocol: modes per listener, trusted sources and the deadline are read', () => {
  const config = proxyOptionsFromEnv({
    ...base,
    CCCP_PROXY_PROTOCOL_DEVICE: 'v2',
    CCCP_PROXY_PROTOCOL_SESSIONS: 'ANY',
    CCCP_PROXY_PROTOCOL_TRUSTED: '10.0.0.0/8, 2001:db8::1',
    CCCP_PROXY_PROTOCOL_TIMEOUT_S: '3',
  });
  assert.equal(config.proxyProtocol, {
    device: 'v2',
    sessions: 'any',
    trustedSources: ['10.0.0.0/8', '2001:db8::1'],
    headerTimeoutMs: 3000,
  });
});

test('PROXY protocol: a bad mode, address or deadline is refused naming the variable and what it accepts', () => {
  assert.throws(
    () => proxyOptionsFromEnv({ ...base, CCCP_PROXY_PROTOCOL_DEVICE: 'on' }),
    (err: Error) => err.message === 'CCCP_PROXY_PROTOCOL_DEVICE must be one of off, v1, v2, any, not "on"',
  );
  assert.throws(() => proxyOptionsFromEnv({ ...base, CCCP_PROXY_PROTOCOL_SESSIONS: 'v3' }), /CCCP_PROXY_PROTOCOL_SESSIONS must be one of/);
  assert.throws(
    () => proxyOptionsFromEnv({ ...base, CCCP_PROXY_PROTOCOL_TRUSTED: '10.0.0.0/33' }),
    /CCCP_PROXY_PROTOCOL_TRUSTED: "10.0.0.0\/33"/,
  );
  assert.throws(() => proxyOptionsFromEnv({ ...base, CCCP_PROXY_PROTOCOL_TIMEOUT_S: '0' }), /CCCP_PROXY_PROTOCOL_TIMEOUT_S/);
});

test.run();
