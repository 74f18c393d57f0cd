// The proxy pods the operator programs, from CCCP_PROXY_REPLICAS and the
// address and name patterns with {ordinal}.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../common/env.ts';
import { proxyPodsFromEnv } from '../../operator/main.ts';

test('one pod by default: the address as given', () => {
  assert.equal(proxyPodsFromEnv({ CCCP_ADMIN_ADDRESS: '[::1]:9001' }), [{ ordinal: 0, name: 'proxy-0', host: '::1', port: 9001 }]);
});

test('several pods: {ordinal} in the address and the name gives each its own', () => {
  const pods = proxyPodsFromEnv({
    CCCP_PROXY_REPLICAS: '3',
    CCCP_ADMIN_ADDRESS: 'rel-proxy-{ordinal}.rel-proxy-pods.ns.svc:9001',
    CCCP_PROXY_POD_NAME: 'rel-proxy-{ordinal}',
  });
  assert.equal(
    pods.map((p) => `${p.ordinal} ${p.name} ${p.host}:${p.port}`),
    [
      '0 rel-proxy-0 rel-proxy-0.rel-proxy-pods.ns.svc:9001',
      '1 rel-proxy-1 rel-proxy-1.rel-proxy-pods.ns.svc:9001',
      '2 rel-proxy-2 rel-proxy-2.rel-proxy-pods.ns.svc:9001',
    ],
  );
});

test('bad settings stop the start with a message naming the variable', () => {
  const message = (env: NodeJS.ProcessEnv) => {
    try {
      proxyPodsFromEnv(env);
    } catch (error) {
      assert.instance(error, ConfigError);
      return (error as Error).message;
    }
    return 'no error';
  };
  assert.match(message({}), 'CCCP_ADMIN_ADDRESS must name');
  assert.match(message({ CCCP_ADMIN_ADDRESS: 'proxy:9001', CCCP_PROXY_REPLICAS: '2' }), 'must hold {ordinal}');
  assert.match(message({ CCCP_ADMIN_ADDRESS: 'proxy-{ordinal}:9001', CCCP_PROXY_REPLICAS: '0' }), 'CCCP_PROXY_REPLICAS');
});

test.run();
