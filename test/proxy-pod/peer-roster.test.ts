// What a proxy pod knows of its peers, and PUT /v1/peers, through which the
// operator tells each pod the release's pod count (it is in no pod's
// settings, so scaling up restarts no pod). The roster alone, then pods of
// one release started without a count, over the real admin API.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminError, PeersState } from '../../common/admin-protocol.ts';
import { PeerRoster } from '../../proxy-pod/peer-roster.ts';
import { freePortRange, sleep, waitFor } from '../helpers/net.ts';
import { deviceOn, metricValue, type PodRelease, podHost, startRelease, waitForDevice } from '../helpers/peers.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';

const roster = suite('peer roster');

roster('the told count gives the ordinals below it besides this pod; nothing before anyone said', () => {
  const none = new PeerRoster(1);
  assert.equal([none.replicas, none.ordinals], [undefined, []]);
  const three = new PeerRoster(1, 3);
  assert.equal(three.ordinals, [0, 2]);
});

roster('a larger count adds ordinals and says which; a pod that made contact stays when the count shrinks', () => {
  const pod = new PeerRoster(0, 2);
  const shared = pod.ordinals;
  assert.equal(pod.setReplicas(4), [2, 3]);
  assert.equal(pod.setReplicas(4), [], 'the same count again adds nothing');
  assert.equal(pod.learn(5), [5]);
  assert.equal(pod.learn(5), []);
  assert.equal(pod.learn(0), [], 'itself is never a peer');
  assert.equal(pod.setReplicas(2), []);
  assert.equal(pod.ordinals, [1, 5]);
  assert.is(pod.ordinals, shared, 'changed in place: the forwarder and the announcer see it');
});

roster.run();

const api = suite('PUT /v1/peers');
let release: PodRelease;
let lonely: TestProxy;
const sockets: net.Socket[] = [];

api.before(async () => {
  // Started as the chart starts them: an ordinal and a peer port, no pod count.
  release = await startRelease(3, () => ({ peers: { replicas: undefined } }));
  lonely = await startProxy();
});

api.after(async () => {
  for (const s of sockets) s.destroy();
  await release?.stop();
  await lonely?.stop();
});

const putPeers = (ordinal: number, body: unknown) =>
  release.pods[ordinal]!.admin.request<PeersState & AdminError>('PUT', '/v1/peers', body as object);

api('a pod started without a count knows no peers until told', async () => {
  const { status, body } = await release.pods[2]!.admin.request<PeersState>('GET', '/v1/peers');
  assert.is(status, 200);
  assert.equal([body.ordinal, body.replicas, body.peers], [2, undefined, []]);
  assert.type(body.instanceId, 'string');
});

api('bad bodies are refused with a 400 naming the field, and change nothing', async () => {
  const refused: Array<[unknown, RegExp]> = [
    [[3], /body must be a JSON object/],
    // The body parser takes only objects and arrays.
    ['"3"', /not valid JSON: .*only supports object and array/],
    [{}, /replicas must be a whole number from 1 to 64, not null/],
    [{ replicas: '3' }, /replicas must be a whole number from 1 to 64, not "3"/],
    [{ replicas: 2.5 }, /replicas must be a whole number/],
    [{ replicas: 0 }, /replicas must be a whole number from 1 to 64, not 0/],
    [{ replicas: 65 }, /replicas must be a whole number from 1 to 64, not 65/],
    [{ replicas: 3, ordinal: 1 }, /unknown field "ordinal"/],
  ];
  for (const [body, message] of refused) {
    const answer = await putPeers(0, body);
    assert.is(answer.status, 400, JSON.stringify(body));
    assert.is(answer.body.code, 'bad_request');
    assert.match(answer.body.message, message, JSON.stringify(body));
  }
  const notJson = await release.pods[0]!.admin.request<AdminError>('PUT', '/v1/peers', '{"replicas":', {});
  assert.is(notJson.status, 400);
  assert.match(notJson.body.message, /not valid JSON/);
  assert.equal((await release.pods[0]!.admin.request<PeersState>('GET', '/v1/peers')).body.peers, []);
});

api('a count that leaves out the pod itself is refused, naming replicas and its ordinal', async () => {
  const answer = await putPeers(2, { replicas: 2 });
  assert.is(answer.status, 400);
  assert.match(answer.body.message, /replicas must be above this pod's ordinal 2/);
});

api('a pod without a peer port answers 409', async () => {
  const answer = await lonely.admin.request<AdminError>('PUT', '/v1/peers', { replicas: 2 });
  assert.equal([answer.status, answer.body.code], [409, 'conflict']);
  assert.match(answer.body.message, /no peer port \(CCCP_PEER_PORT\)/);
});

api('told the count, a pod forwards: a device that waited on it for want of peers is offered at once to the pods it learns', async () => {
  const serial = 'ROSTER-late';
  const { min } = await freePortRange(1);
  assert.is((await release.pods[0]!.admin.put(serial, { port: min })).status, 200);
  sockets.push(await deviceOn(podHost(1), release.devicePort, serial));
  await waitFor(async () => (await metricValue(release.pods[1]!, 'cccp_proxy_pending_devices')) === 1, 3000, 'the device pending on pod 1');
  await sleep(300);
  assert.is((await release.pods[0]!.admin.session(serial))?.deviceConnected, false, 'pod 1 knows no peer yet');

  const told = await putPeers(1, { replicas: 3 });
  assert.is(told.status, 200);
  assert.equal([told.body.ordinal, told.body.replicas, told.body.peers], [1, 3, [0, 2]]);
  await waitForDevice(release.pods[0]!, serial, 5000);
  assert.is(await metricValue(release.pods[1]!, 'cccp_proxy_pending_devices'), 0);
});

api('the same count again is accepted and changes nothing; pods that made contact stay known', async () => {
  // Pod 2 offers a device to pod 0 (which learns it), then pod 0 is told a count without it.
  assert.is((await putPeers(2, { replicas: 3 })).status, 200);
  sockets.push(await deviceOn(podHost(2), release.devicePort, 'ROSTER-nobody'));
  await waitFor(
    async () => (await release.pods[0]!.admin.request<PeersState>('GET', '/v1/peers')).body.peers.includes(2),
    3000,
    'pod 0 to learn pod 2 from its offer',
  );
  const once = await putPeers(0, { replicas: 2 });
  assert.equal([once.status, once.body.peers], [200, [1, 2]]);
  const twice = await putPeers(0, { replicas: 2 });
  assert.equal([twice.status, twice.body.replicas, twice.body.peers], [200, 2, [1, 2]]);
});

api.run();
