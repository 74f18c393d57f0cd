// Operator settings from the environment: defaults and clear refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { operatorConfigFromEnv, parsePortRange } from '../../operator/config.ts';

test('defaults: control 8080, device 9000, range 20000-20099, public host localhost, all interfaces, no tokens', () => {
  const config = operatorConfigFromEnv({});
  assert.is(config.controlPort, 8080);
  assert.is(config.devicePort, 9000);
  assert.equal(config.portRange, { min: 20000, max: 20099 });
  assert.is(config.publicHost, 'localhost');
  assert.is(config.bindHost, undefined);
  assert.equal(config.controlTokens, []);
});

test('settings are read from CCCP_ variables', () => {
  const config = operatorConfigFromEnv({
    CCCP_CONTROL_PORT: '18080',
    CCCP_DEVICE_PORT: '19000',
    CCCP_PORT_RANGE: '30000-30009',
    CCCP_PUBLIC_HOST: 'proxy.example.com',
    CCCP_BIND_HOST: '127.0.0.1',
    CCCP_CONTROL_TOKENS: 'a-token, b-token',
  });
  assert.equal(
    [config.controlPort, config.devicePort, config.portRange, config.publicHost, config.bindHost, config.controlTokens],
    [18080, 19000, { min: 30000, max: 30009 }, 'proxy.example.com', '127.0.0.1', ['a-token', 'b-token']],
  );
});

test('a one-port range is inclusive', () => {
  assert.equal(parsePortRange('20000-20000'), { min: 20000, max: 20000 });
});

test('a reversed, out-of-bounds or malformed range is refused naming CCCP_PORT_RANGE', () => {
  for (const bad of ['20099-20000', '0-10', '65000-65536', '20000', '20000-', 'a-b', '20000:20099']) {
    assert.throws(() => operatorConfigFromEnv({ CCCP_PORT_RANGE: bad }), /CCCP_PORT_RANGE/, bad);
  }
});

test('a bad port number is refused naming its variable', () => {
  assert.throws(() => operatorConfigFromEnv({ CCCP_CONTROL_PORT: '80a' }), /CCCP_CONTROL_PORT/);
  assert.throws(() => operatorConfigFromEnv({ CCCP_DEVICE_PORT: '70000' }), /CCCP_DEVICE_PORT/);
});

test('a device or control port inside the session range is refused', () => {
  assert.throws(() => operatorConfigFromEnv({ CCCP_DEVICE_PORT: '20050' }), /inside CCCP_PORT_RANGE/);
  assert.throws(() => operatorConfigFromEnv({ CCCP_CONTROL_PORT: '20000' }), /inside CCCP_PORT_RANGE/);
});

test.run();
