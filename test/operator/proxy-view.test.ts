// The ProxyView against an in-memory proxy admin API with a change feed: what
// it takes from the feed and from events, what it tells its listener, and
// what it does after a restart, a lost cursor or a failed read; when it asks
// for counter entries, and what it does with one it cannot apply.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SessionCounters, SessionSpec, SessionState } from '../../common/admin-protocol.ts';
import { silentLogger } from '../../common/log.ts';
import { AdminApiError } from '../../operator/proxy-admin-client.ts';
import { ProxyView } from '../../operator/proxy-view.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeProxy } from '../helpers/fake-proxy-admin.ts';

const spec = (port: number, id = `id-${port}`): SessionSpec => ({ id, port, persistent: true, ipWhitelist: [] });

function setup(batchLimit = 500, proxy = new FakeProxy(), replicas?: number) {
  const clock = new FakeClock();
  const view = new ProxyView({
    admin: proxy,
    logger: silentLogger(),
    clock,
    pollIntervalMs: 300,
    batchLimit,
    ...(replicas !== undefined ? { replicas } : {}),
  });
  const heard: string[] = [];
  view.start({
    sessionChanged: (serial, current) => heard.push(`changed ${serial} ${current ? current.state : 'gone'}`),
    telemetry: (serial, current) => heard.push(`telemetry ${serial} ${current.transferredBytes}`),
    restarted: (instanceId) => heard.push(`restarted ${instanceId}`),
  });
  return { clock, proxy, view, heard };
}

test('the first listing is read in pages; the view is synced and announces the instance once, at the end', async () => {
  const running = new FakeProxy();
  for (let i = 0; i < 5; i++) await running.putSession(`S${i}`, spec(100 + i));
  const { proxy, view, heard } = setup(2, running);
  await view.refresh();
  assert.ok(view.synced);
  assert.is(view.size, 5);
  assert.is(proxy.feedReads, 4, 'pages of 2, 2 and 1, then the read refresh() asked for');
  assert.is(heard.filter((h) => h.startsWith('restarted')).length, 1);
  assert.is(heard.at(-1), 'restarted instance-1');
  assert.is(view.get('S3')?.port, 103);
});

test('counters and connects are telemetry; an end, a new id or another port is a change the reconciler acts on', async () => {
  const { proxy, view, heard } = setup();
  await view.refresh();
  await proxy.putSession('A', spec(100));
  await view.refresh();
  heard.length = 0;
  proxy.update('A', { transferredBytes: 10, deviceConnected: true });
  await view.refresh();
  proxy.end('A', 'DeviceDisconnected');
  await view.refresh();
  await proxy.putSession('A', spec(101, 'another'));
  await view.refresh();
  assert.equal(heard, ['telemetry A 10', 'changed A ended', 'changed A listening']);
});

test('telemetry says whether only counters and activity times moved', async () => {
  const { proxy, view } = setup();
  const heard: string[] = [];
  view.listen({
    sessionChanged: () => undefined,
    telemetry: (serial, _current, countersOnly) => heard.push(`${serial} ${countersOnly}`),
    restarted: () => undefined,
  });
  await proxy.putSession('A', spec(100));
  await view.refresh();
  const side = proxy.sessions.get('A')!.device;
  const moves: Array<Partial<SessionState>> = [
    { transferredBytes: 10, droppedBytes: 2 },
    { device: { ...side, forwardedBytes: 10, lastActivity: '2026-11-27T00:00:00.000Z' } },
    { deviceConnected: true },
    { deviceAddress: '127.0.0.1:4000' },
    { device: { ...side, connectedSince: '2026-11-27T00:00:01.000Z' } },
    { clientsRefused: 1 },
  ];
  for (const move of moves) {
    proxy.update('A', move);
    await view.refresh();
  }
  assert.equal(heard, ['A true', 'A true', 'A false', 'A false', 'A false', 'A false']);
});

test('a removal in the feed drops the session; a read that fails loses nothing', async () => {
  const { proxy, view, heard } = setup();
  await proxy.putSession('A', spec(100));
  await proxy.putSession('B', spec(101));
  await view.refresh();
  heard.length = 0;
  await proxy.deleteSession('A');
  proxy.update('B', { transferredBytes: 5 });
  proxy.failNextRead = new Error('connection reset');
  await view.refresh();
  assert.ok(view.get('A'), 'nothing applied from a failed read');
  await view.refresh();
  assert.is(view.get('A'), undefined);
  assert.is(view.get('B')?.transferredBytes, 5);
  assert.equal(heard.sort(), ['changed A gone', 'telemetry B 5']);
});

test('a state older than the one held, or than our own delete, is not taken back', async () => {
  const { proxy, view } = setup();
  await view.refresh();
  const first = await view.put('A', spec(100));
  proxy.update('A', { transferredBytes: 50 });
  await view.refresh();
  // An event delayed behind the feed, carrying the first state.
  proxy.emit({ type: 'client-connected', serial: 'A', session: { ...first } });
  assert.is(view.get('A')?.transferredBytes, 50);
  const last = (await view.delete('A')) as SessionState;
  proxy.emit({ type: 'client-disconnected', serial: 'A', session: { ...last } });
  assert.is(view.get('A'), undefined);
  await view.refresh();
  assert.is(view.get('A'), undefined);
});

test('an event carrying a newer state is taken at once, without a read', async () => {
  const { proxy, view, heard } = setup();
  await view.put('A', spec(100));
  await view.refresh();
  const reads = proxy.feedReads;
  heard.length = 0;
  proxy.update('A', { deviceConnected: true, deviceAddress: '127.0.0.1:4000' });
  proxy.emit({ type: 'device-connected', serial: 'A', session: { ...proxy.sessions.get('A')! } });
  assert.is(view.get('A')?.deviceConnected, true);
  assert.is(proxy.feedReads, reads);
  assert.equal(heard, ['telemetry A 0']);
});

test('a new instance: every old session is gone, the new listing is taken, and the restart is announced', async () => {
  const { proxy, view, heard, clock } = setup();
  await proxy.putSession('A', spec(100));
  await proxy.putSession('B', spec(101));
  await view.refresh();
  const before = view.instanceId;
  heard.length = 0;
  proxy.restart();
  await proxy.putSession('B', spec(101));
  proxy.emit({ type: 'hello' });
  await view.refresh();
  assert.is.not(view.instanceId, before);
  assert.is(view.get('A'), undefined);
  assert.is(view.get('B')?.changeSeq, 1);
  assert.equal(heard.sort(), ['changed A gone', 'changed B gone', 'changed B listening', `restarted ${proxy.instanceId}`].sort());
  await clock.advance(10);
  await view.stop();
});

test('a reset listing (cursor too old) drops what it no longer lists, keeps the rest, and is no restart', async () => {
  const { proxy, view, heard } = setup(1);
  await proxy.putSession('A', spec(100));
  await proxy.putSession('B', spec(101));
  await view.refresh();
  heard.length = 0;
  // The proxy forgot the removal of A: only a full listing can tell.
  proxy.sessions.delete('A');
  const realChanges = proxy.changes.bind(proxy);
  let resets = 0;
  proxy.changes = (since, instance, limit) =>
    realChanges(resets++ === 0 ? -1 : since, instance, limit).then((b) => ({ ...b, reset: resets === 1 }));
  await view.refresh();
  assert.is(view.get('A'), undefined);
  assert.ok(view.get('B'));
  assert.equal(heard, ['changed A gone']);
});

test('a session an event brought while a reset listing was on its way is kept: it is newer than the listing', async () => {
  const { proxy, view, heard } = setup();
  await proxy.putSession('A', spec(100));
  await view.refresh();
  heard.length = 0;
  const realChanges = proxy.changes.bind(proxy);
  let first = true;
  proxy.changes = async (since, instance, limit) => {
    if (!first) return realChanges(since, instance, limit);
    first = false;
    const listing = await realChanges(-1, instance, limit);
    // C is put after the listing was taken, and its event arrives before the listing does.
    await proxy.putSession('C', spec(102));
    proxy.emit({ type: 'device-connected', serial: 'C', session: { ...proxy.sessions.get('C')! } });
    return { ...listing, reset: true };
  };
  await view.refresh();
  assert.ok(view.get('A'));
  assert.is(view.get('C')?.port, 102);
  assert.equal(heard, ['changed C listening']);
});

test('the view is reachable while the proxy answers and not after staleAfterMs of failures', async () => {
  const { proxy, view, clock } = setup();
  await view.refresh();
  assert.ok(view.reachable());
  proxy.changes = async () => {
    throw new Error('down');
  };
  await clock.advance(6000);
  assert.not.ok(view.reachable());
  await view.stop();
});

test('given the pod count, the view tells it to each new instance before the listing completes, once per instance', async () => {
  const proxy = new FakeProxy();
  let toldWhenSynced: number | undefined;
  const { view, heard } = setup(500, proxy, 3);
  view.listen({
    sessionChanged: () => undefined,
    telemetry: () => undefined,
    restarted: (instanceId) => {
      toldWhenSynced = proxy.toldReplicas;
      heard.push(`restarted ${instanceId}`);
    },
  });
  await view.refresh();
  assert.ok(view.synced);
  assert.is(toldWhenSynced, 3, 'told before the restart notice (and so before any session is programmed)');
  await view.refresh();
  assert.equal(
    proxy.calls.filter((c) => c.startsWith('PEERS')),
    ['PEERS 3'],
    'not again for the same instance',
  );
  proxy.restart();
  proxy.toldReplicas = undefined;
  proxy.emit({ type: 'hello' });
  await view.refresh();
  assert.is(proxy.toldReplicas, 3, 'the restarted instance is told again');
  assert.equal(heard.at(-1), `restarted ${proxy.instanceId}`);
  await view.stop();
});

test('a proxy that cannot be reached for the count is not synced until it is told; one that refuses it is synced anyway', async () => {
  const proxy = new FakeProxy();
  const putPeers = proxy.putPeers.bind(proxy);
  proxy.putPeers = async () => {
    throw new AdminApiError(undefined, 'unreachable', 'PUT /v1/peers: connection refused');
  };
  const { view } = setup(500, proxy, 2);
  await view.refresh();
  assert.not.ok(view.synced, 'no listing before the pod knows its peers');
  proxy.putPeers = putPeers;
  await view.refresh();
  assert.ok(view.synced);
  assert.is(proxy.toldReplicas, 2);

  const older = new FakeProxy();
  older.failNextPeers = new AdminApiError(404, 'not_found', 'no such endpoint: PUT /v1/peers');
  const second = setup(500, older, 2);
  await second.view.refresh();
  assert.ok(second.view.synced, 'a proxy without the call (or without a peer port) still gets its sessions');
  await second.view.refresh();
  assert.equal(
    older.calls.filter((c) => c.startsWith('PEERS')),
    ['PEERS 2'],
    'asked once per instance',
  );
  await view.stop();
  await second.view.stop();
});

test('counter entries are asked for only with the cursor of an answer with more: false', async () => {
  const running = new FakeProxy();
  for (let i = 0; i < 5; i++) await running.putSession(`S${i}`, spec(100 + i));
  const asked: boolean[] = [];
  const read = running.changes.bind(running);
  running.changes = (since, instance, limit, counters) => {
    asked.push(counters === 'entries');
    return read(since, instance, limit);
  };
  const { view } = setup(2, running);
  await view.refresh();
  assert.equal(asked, [false, false, false, true], 'the first listing in pages of 2, 2 and 1; then a read from its end');
  running.failNextRead = new Error('connection reset');
  await view.refresh();
  await view.refresh();
  assert.equal(asked.slice(4), [true, true], 'a failed read keeps the cursor, and what it allows');
  await view.stop();
});

/** A proxy that sends every changed session as a counter entry, whether or not the reader holds it. */
function sendingCounters(proxy: FakeProxy): void {
  const read = proxy.changes.bind(proxy);
  const entry = (s: SessionState): SessionCounters => ({
    serial: s.serial,
    id: s.id,
    changeSeq: s.changeSeq,
    transferredBytes: s.transferredBytes,
    droppedBytes: s.droppedBytes,
    device: s.device,
    client: s.client,
  });
  proxy.changes = async (since, instance, limit) => {
    const batch = await read(since, instance, limit);
    return { ...batch, sessions: [], counters: batch.sessions.map(entry) };
  };
}

test('a counter entry for a session the view holds no state of, or another id of, is not applied: the session is asked for', async () => {
  const { proxy, view, heard } = setup();
  await proxy.putSession('A', spec(100));
  await view.refresh();
  heard.length = 0;
  await proxy.putSession('A', spec(100, 'another'));
  await proxy.putSession('B', spec(101));
  proxy.update('B', { transferredBytes: 7 });
  sendingCounters(proxy);
  const lookups: string[] = [];
  const lookup = proxy.getSession.bind(proxy);
  let down = true;
  proxy.getSession = async (serial) => {
    lookups.push(serial);
    if (down) throw new AdminApiError(undefined, 'unreachable', `GET /v1/sessions/${serial}: connection refused`);
    return lookup(serial);
  };
  await view.refresh();
  assert.is(view.get('A')?.id, 'id-100', 'nothing applied to the state of another id');
  assert.is(view.get('B'), undefined, 'no state made up from counters');
  down = false;
  await view.refresh();
  assert.equal(lookups, ['A', 'A', 'B'], 'the failed lookup kept the cursor: the entries came again');
  assert.is(view.get('A')?.id, 'another');
  assert.is(view.get('B')?.transferredBytes, 7);
  assert.equal(heard, ['changed A listening', 'changed B listening']);
  proxy.update('B', { transferredBytes: 9 });
  await view.refresh();
  assert.equal(lookups.length, 3, 'a held state takes the entry without a lookup');
  assert.is(view.get('B')?.transferredBytes, 9);
  assert.equal(heard.at(-1), 'telemetry B 9');
  await view.stop();
});

test('a proxy that refuses counters=1 (older than counter entries) is read in full states, and asked again once it restarts', async () => {
  const { proxy, view } = setup();
  const read = proxy.changes.bind(proxy);
  let refusals = 0;
  proxy.changes = async (since, instance, limit, counters) => {
    if (counters) {
      refusals += 1;
      throw new AdminApiError(400, 'bad_request', 'unknown query parameter "counters" (since, instance, limit)');
    }
    return read(since, instance, limit);
  };
  await proxy.putSession('A', spec(100));
  await view.refresh();
  proxy.update('A', { transferredBytes: 3 });
  await view.refresh();
  await view.refresh();
  assert.is(view.get('A')?.transferredBytes, 3, 'the feed is read all the same');
  assert.ok(view.reachable());
  assert.is(refusals, 1, 'asked once');
  proxy.restart();
  await proxy.putSession('A', spec(100));
  await view.refresh();
  await view.refresh();
  await view.refresh();
  assert.is(view.get('A')?.changeSeq, 1);
  assert.is(refusals, 2, 'a new instance may be a newer proxy: asked once more');
  await view.stop();
});

test('a proxy that takes counters=1 but refuses complete= reads later pages of a read in full states, and still counters on first pages', async () => {
  const { proxy, view } = setup(1);
  const read = proxy.changes.bind(proxy);
  const asked: string[] = [];
  proxy.changes = async (since, instance, limit, counters, complete) => {
    asked.push(`${counters ? 'counters' : 'full'}${complete === undefined ? '' : ' complete'}`);
    if (complete !== undefined)
      throw new AdminApiError(400, 'bad_request', 'unknown query parameter "complete" (since, instance, limit, counters)');
    return read(since, instance, limit, counters);
  };
  await proxy.putSession('A', spec(100));
  await proxy.putSession('B', spec(101));
  await view.refresh();
  assert.equal(asked, ['counters', 'counters complete', 'full'], 'the second page asks with complete=, is refused, and is read in full');
  assert.ok(view.get('B'), 'nothing is lost');
  asked.length = 0;
  proxy.update('A', { transferredBytes: 3 });
  proxy.update('B', { transferredBytes: 4 });
  await view.refresh();
  assert.equal([view.get('A')?.transferredBytes, view.get('B')?.transferredBytes], [3, 4]);
  assert.equal(asked, ['counters', 'full'], 'refused once: later pages in full without asking again');
  asked.length = 0;
  proxy.update('A', { transferredBytes: 5 });
  await view.refresh();
  assert.equal(asked, ['counters'], 'a first page still asks for counters');
  await view.stop();
});

test('without a pod count nothing is told', async () => {
  const { proxy, view } = setup();
  await view.refresh();
  assert.ok(view.synced);
  assert.equal(
    proxy.calls.filter((c) => c.startsWith('PEERS')),
    [],
  );
  await view.stop();
});

test.run();
