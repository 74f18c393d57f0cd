// The ProxyView against a real proxy pod over its admin API: counters that
// moved without any other change come as counter entries, land in the state
// the view holds (in place) and are told as telemetry, never as a change to act on.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChangeBatch } from '../../common/admin-protocol.ts';
import { silentLogger } from '../../common/log.ts';
import { type FeedCounters, ProxyAdminClient } from '../../operator/proxy-admin-client.ts';
import { ProxyView, type ProxyViewListener, type ProxyViewOptions } from '../../operator/proxy-view.ts';
import { freePorts, Received, waitFor } from '../helpers/net.ts';
import { type JoinedPair, joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('proxy view: counter entries');
let proxy: TestProxy;
const cleanup: Array<() => unknown> = [];

/** The real client, keeping every feed answer it returned, the `complete` it was asked with, and the serials it listed. */
class RecordingClient extends ProxyAdminClient {
  readonly batches: ChangeBatch[] = [];
  readonly completes: Array<number | undefined> = [];
  readonly listed: string[][] = [];

  override async listSessions(serials?: readonly string[]) {
    this.listed.push([...(serials ?? [])]);
    return super.listSessions(serials);
  }

  override async changes(
    since: number,
    instance: string | undefined,
    limit?: number,
    counters?: FeedCounters,
    complete?: number,
  ): Promise<ChangeBatch> {
    const batch = await super.changes(since, instance, limit, counters, complete);
    this.batches.push(batch);
    this.completes.push(complete);
    return batch;
  }
}

test.before(async () => {
  proxy = await startProxy({ sweepIntervalMs: 50 });
});

test.after(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await proxy.stop();
});

/** A view of the test proxy through a RecordingClient, listed once; both closed after the tests. */
async function syncedView(options: Partial<ProxyViewOptions> = {}, listener?: ProxyViewListener) {
  const client = new RecordingClient({ endpoint: { socketPath: proxy.pod.adminAddress } });
  cleanup.push(() => client.close());
  const view = new ProxyView({ admin: client, logger: silentLogger(), pollIntervalMs: 60_000, ...options });
  view.start(listener);
  cleanup.push(() => view.stop());
  assert.ok(await view.whenSynced(5000));
  return { client, view };
}

/** A joined pair per serial, on the given ports, persistent; closed after the tests. */
async function joinedPairs(serials: readonly string[], ports: readonly number[], ipWhitelist: string[] = []) {
  const pairs = [];
  for (const [i, serial] of serials.entries()) {
    const pair = await joinPair(proxy.admin, proxy.pod.devicePort, serial, { port: ports[i] as number, persistent: true, ipWhitelist });
    cleanup.push(
      () => pair.device.destroy(),
      () => pair.client.destroy(),
    );
    pairs.push(pair);
  }
  return pairs;
}

test('moved counters come as counter entries: they land in get(), keep the rest of the state, and are telemetry', async () => {
  const heard: string[] = [];
  const { client, view } = await syncedView(
    {},
    {
      sessionChanged: (serial, current) => heard.push(`changed ${serial} ${current?.state ?? 'gone'}`),
      telemetry: (serial, current, countersOnly) =>
        heard.push(`telemetry ${serial} ${current.transferredBytes} ${countersOnly ? 'counters only' : 'more'}`),
      restarted: () => undefined,
    },
  );
  const [pair] = (await joinedPairs(['PV-CNT'], await freePorts(1), ['127.0.0.1'])) as [JoinedPair];
  await view.refresh();
  const joined = view.get('PV-CNT');
  assert.equal([joined?.deviceConnected, joined?.clientConnected, joined?.transferredBytes], [true, true, 0]);

  heard.length = 0;
  const received = new Received(pair.client);
  pair.device.write(Buffer.alloc(64, 0x61));
  await received.untilLength(64, 2000);
  await waitFor(
    async () => {
      await view.refresh();
      return view.get('PV-CNT')?.transferredBytes === 64;
    },
    3000,
    'the counters in the view',
  );
  const entries = client.batches.flatMap((b) => b.counters ?? []).filter((e) => e.serial === 'PV-CNT');
  assert.ok(entries.length > 0, 'they came as counter entries');
  assert.not.ok(
    client.batches.some((b) => b.sessions.some((s) => s.serial === 'PV-CNT' && s.transferredBytes === 64)),
    'and not as a full state',
  );
  const state = view.get('PV-CNT');
  // A copy per entry would live about a second, long enough to reach V8's old generation.
  assert.ok(state === joined, 'the held state is updated in place, not copied');
  assert.equal(
    [state?.device.forwardedBytes, state?.client.forwardedBytes, state?.droppedBytes, state?.changeSeq],
    [64, 0, 0, entries.at(-1)?.changeSeq],
  );
  assert.type(state?.device.lastActivity, 'string');
  assert.equal(
    [state?.deviceConnected, state?.clientConnected, state?.device.connectedSince, state?.clientAddress],
    [true, true, joined?.device.connectedSince, joined?.clientAddress],
    'what the entry does not carry is kept',
  );
  assert.equal(heard, ['telemetry PV-CNT 64 counters only']);
  assert.equal(state, await proxy.admin.session('PV-CNT'), 'the same state the proxy lists');
});

test('a read of several pages has counter entries on every page: past the first, it names the last complete cursor', async () => {
  const { client, view } = await syncedView({ batchLimit: 2 });
  const serials = ['PV-PAGE-0', 'PV-PAGE-1', 'PV-PAGE-2', 'PV-PAGE-3', 'PV-PAGE-4'];
  const pairs = await joinedPairs(serials, await freePorts(serials.length));
  await view.refresh();
  assert.ok(
    serials.every((serial) => view.get(serial)?.clientConnected),
    'every pair joined in the view',
  );

  const received = pairs.map((pair) => new Received(pair.client));
  for (const pair of pairs) pair.device.write(Buffer.alloc(8, 0x62));
  for (const r of received) await r.untilLength(8, 2000);
  // The proxy's sweep (every 50 ms here) has put every moved counter in the feed.
  await waitFor(
    async () => (await Promise.all(serials.map((serial) => proxy.admin.session(serial)))).every((s) => s?.transferredBytes === 8),
    3000,
    'the proxy to count the bytes',
  );
  await new Promise((resolve) => setTimeout(resolve, 150));
  client.batches.length = 0;
  client.completes.length = 0;
  await view.refresh();

  assert.ok(client.batches.length >= 3, `one read of pages of 2: ${client.batches.length} pages`);
  const later = client.batches.slice(1).filter((batch) => (batch.counters ?? []).length > 0);
  assert.ok(later.length >= 2, 'pages past the first carry counter entries too');
  const [first, ...rest] = client.completes;
  assert.is(first, undefined, "the first page's cursor is complete itself");
  assert.ok(
    rest.every((complete) => complete !== undefined && complete === rest[0]),
    `every page past the first names the one complete cursor: ${rest.join(', ')}`,
  );
  assert.not.ok(
    client.batches.some((batch) => batch.sessions.some((state) => serials.includes(state.serial))),
    'no moved session came as a full state',
  );
  for (const serial of serials) assert.equal(view.get(serial), await proxy.admin.session(serial), `${serial}: the state the proxy lists`);
});

test('counters on demand: moved counters stay out of the feed, and current() asks the proxy once they are older than asked', async () => {
  const heard: string[] = [];
  const { client, view } = await syncedView(
    { counters: 'on-demand' },
    {
      sessionChanged: (serial) => heard.push(`changed ${serial}`),
      telemetry: (serial, current) => heard.push(`telemetry ${serial} ${current.transferredBytes}`),
      restarted: () => undefined,
    },
  );
  const [pair] = (await joinedPairs(['PV-DEMAND'], await freePorts(1))) as [JoinedPair];
  await view.refresh();
  assert.equal(view.get('PV-DEMAND')?.clientConnected, true, 'the join is a full change: it comes in the feed');

  const received = new Received(pair.client);
  pair.device.write(Buffer.alloc(32, 0x63));
  await received.untilLength(32, 2000);
  await waitFor(async () => (await proxy.admin.session('PV-DEMAND'))?.changeSeq !== view.get('PV-DEMAND')?.changeSeq, 3000, 'the sweep');
  client.batches.length = 0;
  heard.length = 0;
  await view.refresh();
  assert.ok(client.batches.length > 0);
  assert.not.ok(
    client.batches.some((b) => (b.counters ?? []).length > 0 || b.sessions.some((s) => s.serial === 'PV-DEMAND')),
    'the feed says nothing of moved counters',
  );
  assert.is(view.get('PV-DEMAND')?.transferredBytes, 0, 'so the held counters are as of the join');

  const before = client.listed.length;
  assert.is((await view.current('PV-DEMAND', 60_000))?.transferredBytes, 0, 'younger than asked: held, not asked for');
  assert.is(client.listed.length, before);
  const [a, b] = await Promise.all([view.current('PV-DEMAND', 0), view.current('PV-DEMAND', 0)]);
  assert.equal([a?.transferredBytes, b?.transferredBytes, a?.device.forwardedBytes], [32, 32, 32], 'asked: the live counters');
  assert.is(client.listed.length, before + 1, 'two callers at one moment share one lookup');
  assert.is(view.get('PV-DEMAND')?.transferredBytes, 32, 'and the view holds them');
  assert.equal(heard, ['telemetry PV-DEMAND 32'], 'told as telemetry');
  assert.is((await view.current('PV-DEMAND', 60_000))?.transferredBytes, 32);
  assert.is(client.listed.length, before + 1, 'fresh now: not asked again');

  pair.client.write(Buffer.alloc(8, 0x64));
  await new Received(pair.device).untilLength(8, 2000);
  pair.client.destroy();
  pair.device.destroy();
  await waitFor(
    async () => {
      await view.refresh();
      const held = view.get('PV-DEMAND');
      return held?.clientConnected === false && held.deviceConnected === false;
    },
    3000,
    'both disconnects in the view',
  );
  await new Promise((resolve) => setTimeout(resolve, 5));
  const after = client.listed.length;
  const last = await view.current('PV-DEMAND', 0);
  assert.equal([last?.transferredBytes, last?.client.forwardedBytes], [40, 8], 'a disconnect is a full change and carries the last bytes');
  assert.is(client.listed.length, after, 'with no party attached the counters cannot move: nothing is asked');
});

test('counters on demand for many sessions: one request for those that may have moved', async () => {
  const { client, view } = await syncedView({ counters: 'on-demand' });
  const serials = ['PV-MANY-0', 'PV-MANY-1'];
  const ports = await freePorts(3);
  const pairs = await joinedPairs(serials, ports);
  // A session with no party: its counters cannot move, so it is never asked for.
  await proxy.admin.put('PV-MANY-IDLE', { port: ports[2]!, persistent: true });
  await view.refresh();
  for (const [i, pair] of pairs.entries()) {
    const received = new Received(pair.client);
    pair.device.write(Buffer.alloc(10 + i, 0x65));
    await received.untilLength(10 + i, 2000);
  }
  await new Promise((resolve) => setTimeout(resolve, 5));
  await view.refreshCounters([...serials, 'PV-MANY-IDLE', 'PV-MANY-UNKNOWN'], 0);
  assert.equal(client.listed, [serials], 'one request, for the sessions with a party');
  assert.equal(
    serials.map((serial) => view.get(serial)?.transferredBytes),
    [10, 11],
  );
  await view.refreshCounters(serials, 60_000);
  assert.is(client.listed.length, 1, 'fresh: nothing asked');
});

test.run();
