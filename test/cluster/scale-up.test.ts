// Scaling the proxy up against the rig's real kube-apiserver. The proxy
// processes start as the chart starts them: an ordinal and a peer port, but
// no pod count (it is in no pod template, so raising proxy.replicas restarts
// no pod). They know their peers only because the operator tells them
// (PUT /v1/peers). Then the release grows from 2 pods to 3 as `helm upgrade`
// does it: a third pod starts, and the operator restarts configured for 3,
// while live pairs on the first two pods keep their connections.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { PeersState } from '../../common/admin-protocol.ts';
import { clusterFixture, type PlacedSession, podAddress, type TestCluster } from '../helpers/cluster.ts';
import { keepTraffic } from '../helpers/live-pair.ts';
import { connect, Received, waitFor } from '../helpers/net.ts';
import { AdminCaller } from '../helpers/proxy.ts';

const test = suite('scaling the proxy up');
const sockets: net.Socket[] = [];

const theCluster = clusterFixture(test, {
  namespace: 'cccp-scale-up',
  rangeSize: 20,
  proxyPods: 2,
  podCountFromOperator: true,
  operatorEnv: { CCCP_PROXY_REPLICAS: '2' },
});

test.after(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

/** The device lands on pod `landing`, the client on the session's own pod; both directions are proved. */
async function pair(c: TestCluster, placed: PlacedSession, landing: number): Promise<{ device: Received; client: Received }> {
  const device = new Received(await connect(c.devicePort, { host: podAddress(landing) }));
  device.socket.write(`${placed.serial}\r`);
  const client = new Received(await connect(placed.port, { host: placed.host }));
  sockets.push(device.socket, client.socket);
  await waitFor(
    async () => (await c.session(placed.serial))?.status?.deviceConnected === true,
    10_000,
    `${placed.serial}'s device, landed on pod ${landing}, joined on ${placed.proxy}`,
  );
  client.socket.write('ping');
  await device.untilLength(4, 5000);
  device.socket.write('pong');
  await client.untilLength(4, 5000);
  return { device, client };
}

function podAdmin(c: TestCluster, ordinal: number): AdminCaller {
  const { port, token } = c.adminEndpoint;
  return new AdminCaller({ host: podAddress(ordinal), port }, token);
}

async function peersOf(c: TestCluster, ordinal: number): Promise<PeersState> {
  return (await podAdmin(c, ordinal).request<PeersState>('GET', '/v1/peers')).body;
}

test('pods started without a pod count learn it from the operator: a device on one pod is joined to its session on the other', async () => {
  const c = theCluster();
  await waitFor(async () => (await peersOf(c, 0)).replicas === 2 && (await peersOf(c, 1)).replicas === 2, 10_000, 'both pods told');
  assert.equal((await peersOf(c, 0)).peers, [1]);
  assert.equal((await peersOf(c, 1)).peers, [0]);
  const placed = [await c.place('TOLD-0'), await c.place('TOLD-1')];
  assert.equal(placed.map((p) => p.proxy).sort(), ['proxy-0', 'proxy-1']);
  // Each device lands on the pod its session is not on: forwarded both ways round.
  for (const p of placed) await pair(c, p, 1 - p.ordinal);
  for (const p of placed) assert.is((await c.control(`/off?serial=${p.serial}`)).status, 200);
});

test('2 → 3 pods: live pairs keep their connections; new sessions land on the new pod; devices cross to and from it', async () => {
  const c = theCluster();
  const live = [await c.place('LIVE-0'), await c.place('LIVE-1')];
  assert.equal(live.map((p) => p.proxy).sort(), ['proxy-0', 'proxy-1']);
  // One pair relayed between the pods, one on its own pod.
  const pairs = await Promise.all(live.map((p, i) => pair(c, p, i === 0 ? 1 - p.ordinal : p.ordinal)));
  // A session on pod 0 whose device comes later, through the new pod.
  const older = await c.place('OLDER');
  const bytesBefore = await Promise.all(live.map(async (p) => (await c.session(p.serial))?.status?.transferredBytes ?? 0));

  const traffic = keepTraffic(pairs, { bothWays: true, timeoutMs: 5000 });

  // What `helm upgrade --set proxy.replicas=3` does: pod 2 starts; the operator's Deployment (its env changed) rolls.
  await c.startProxy(2);
  assert.equal([(await peersOf(c, 2)).replicas, (await peersOf(c, 2)).peers], [undefined, []], 'pod 2 knows no peer yet');
  await c.startOperator('operator-b', { CCCP_PROXY_REPLICAS: '3' });
  await c.operators.get('operator-a')!.stop();
  c.operators.delete('operator-a');
  await waitFor(async () => (await c.waitForOperatorLeader()) === 'operator-b', 30_000, 'operator-b to lead');
  await waitFor(
    async () => (await Promise.all([0, 1, 2].map((o) => peersOf(c, o)))).every((p) => p.replicas === 3),
    15_000,
    'every pod told the release has 3',
  );
  assert.equal((await peersOf(c, 2)).peers, [0, 1]);

  const fresh = [await c.place('FRESH-0'), await c.place('FRESH-1')];
  assert.is(fresh[0]!.proxy, 'proxy-2', 'the next session goes to the new, empty pod');
  // Pod 2 never heard from pod 0: only the operator told it where the session lives.
  await pair(c, older, 2);
  // And the other way: a device on an old pod for a session on the new one.
  await pair(c, fresh[0]!, 0);

  const rounds = await traffic.stop();
  assert.ok(rounds > 10, `${rounds} rounds of traffic through the scale-up`);
  for (const [i, { device, client }] of pairs.entries()) {
    assert.not.ok(device.closed || client.closed, `${live[i]!.serial}: the same two connections, never closed`);
    const stored = (await c.session(live[i]!.serial))!.status!;
    assert.equal([stored.phase, stored.proxy, stored.port, stored.deviceConnected], ['Active', live[i]!.proxy, live[i]!.port, true]);
  }
  await waitFor(
    async () => {
      const now = await Promise.all(live.map(async (p) => (await c.session(p.serial))?.status?.transferredBytes ?? 0));
      return now.every((bytes, i) => bytes >= bytesBefore[i]! + 2 * rounds);
    },
    15_000,
    'the live sessions to count every byte of the traffic',
  );
  for (const p of [...live, older, ...fresh]) assert.is((await c.control(`/off?serial=${p.serial}`)).status, 200);
});

test.run();
