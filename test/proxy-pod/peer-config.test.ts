// The proxy pod's peer settings and public host from the environment.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { proxyOptionsFromEnv } from '../../proxy-pod/config.ts';

const base = { CCCP_ADMIN_SOCKET: '/tmp/admin.sock' };
const peers = {
  ...base,
  CCCP_PEER_PORT: '9100',
  CCCP_PROXY_REPLICAS: '3',
  CCCP_POD_ORDINAL: '1',
  CCCP_PEER_ADDRESS: 'cccp-proxy-{ordinal}.cccp-proxy-peers.acme.svc:9100',
  CCCP_ADMIN_TOKEN: 'a-token-of-sixteen-or-more',
};

test('no peer port: no peers, one pod as before', () => {
  assert.is(proxyOptionsFromEnv(base).peers, undefined);
  assert.is(proxyOptionsFromEnv({ ...peers, CCCP_PEER_PORT: '0' }).peers, undefined);
});

test('a peer port without CCCP_PROXY_REPLICAS, or with one replica, still listens: the operator tells the count (PUT /v1/peers)', () => {
  const untold: Record<string, string> = { ...peers, CCCP_POD_ORDINAL: '5' };
  delete untold.CCCP_PROXY_REPLICAS;
  const settings = proxyOptionsFromEnv(untold).peers;
  assert.equal([settings?.port, settings?.ordinal, settings?.replicas], [9100, 5, undefined]);
  assert.is(proxyOptionsFromEnv({ ...peers, CCCP_PROXY_REPLICAS: '1', CCCP_POD_ORDINAL: '0' }).peers?.replicas, 1);
  assert.throws(() => proxyOptionsFromEnv({ ...untold, CCCP_POD_ORDINAL: '64' }), /CCCP_POD_ORDINAL .* 0 to 63/);
});

test('the peer settings are read whole', () => {
  assert.equal(proxyOptionsFromEnv({ ...peers, CCCP_BIND_HOST: '10.0.0.5' }).peers, {
    port: 9100,
    bindHost: '10.0.0.5',
    ordinal: 1,
    replicas: 3,
    addressPattern: 'cccp-proxy-{ordinal}.cccp-proxy-peers.acme.svc:9100',
    token: 'a-token-of-sixteen-or-more',
  });
  assert.is(proxyOptionsFromEnv({ ...peers, CCCP_BIND_HOST: '10.0.0.5', CCCP_PEER_BIND_HOST: '0.0.0.0' }).peers?.bindHost, '0.0.0.0');
});

test('CCCP_POD_ORDINAL takes the ordinal or the StatefulSet pod name ending in it', () => {
  assert.is(proxyOptionsFromEnv({ ...peers, CCCP_POD_ORDINAL: 'cccp-proxy-2' }).peers?.ordinal, 2);
  assert.is(proxyOptionsFromEnv({ ...peers, CCCP_POD_ORDINAL: '0' }).peers?.ordinal, 0);
});

test('bad peer settings stop the start with a message naming the variable', () => {
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ CCCP_PEER_PORT: '70000' }, /CCCP_PEER_PORT/],
    [{ CCCP_PROXY_REPLICAS: '65' }, /CCCP_PROXY_REPLICAS/],
    [{ CCCP_POD_ORDINAL: '3' }, /CCCP_POD_ORDINAL .* 0 to 2/],
    [{ CCCP_POD_ORDINAL: '' }, /CCCP_POD_ORDINAL/],
    [{ CCCP_POD_ORDINAL: 'cccp-proxy' }, /CCCP_POD_ORDINAL/],
    [{ CCCP_PEER_ADDRESS: '' }, /CCCP_PEER_ADDRESS is required/],
    [{ CCCP_PEER_ADDRESS: 'cccp-proxy-0.peers:9100' }, /CCCP_PEER_ADDRESS must hold \{ordinal\}/],
    [{ CCCP_PEER_ADDRESS: 'cccp-proxy-{ordinal}.peers' }, /CCCP_PEER_ADDRESS must be host:port/],
    [{ CCCP_ADMIN_TOKEN: 'short' }, /peer port needs CCCP_ADMIN_TOKEN/],
  ];
  for (const [change, message] of refused)
    assert.throws(() => proxyOptionsFromEnv({ ...peers, ...change }), message, JSON.stringify(change));
});

test('the token comes from CCCP_ADMIN_TOKEN_FILE too, as for the admin API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-peer-token-'));
  try {
    writeFileSync(join(dir, 'token'), 'a-mounted-token-of-sixteen\n');
    const env: Record<string, string> = { ...peers, CCCP_ADMIN_TOKEN_FILE: join(dir, 'token') };
    delete env.CCCP_ADMIN_TOKEN;
    assert.is(proxyOptionsFromEnv(env).peers?.token, 'a-mounted-token-of-sixteen');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("CCCP_PUBLIC_HOST is the pod's public host when set", () => {
  assert.is(proxyOptionsFromEnv(base).publicHost, undefined);
  assert.is(proxyOptionsFromEnv({ ...base, CCCP_PUBLIC_HOST: '198.51.100.4' }).publicHost, '198.51.100.4');
});

test.run();
