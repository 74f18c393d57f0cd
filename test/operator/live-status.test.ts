// /status takes a session's live fields from the view of its proxy pod when
// that pod runs this incarnation on this port; otherwise what is stored.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { LiveSessions } from '../../operator/live-status.ts';
import { ProxyView } from '../../operator/proxy-view.ts';
import type { ProxySession } from '../../operator/session-store.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeProxy } from '../helpers/fake-proxy-admin.ts';

async function setup() {
  const proxy = new FakeProxy();
  const view = new ProxyView({ admin: proxy, logger: silentLogger(), clock: new FakeClock() });
  view.start();
  await view.refresh();
  const live = new LiveSessions(new Map([['proxy-0', view]]), 'proxy-0');
  const state = await view.put('S', { id: 'uid-1', port: 100, persistent: true, ipWhitelist: [] });
  proxy.update('S', { transferredBytes: 42, deviceConnected: true, deviceAddress: '10.1.1.1:5000' });
  await view.refresh();
  const session: ProxySession = {
    serial: 'S',
    uid: 'uid-1',
    generation: 1,
    creationTimestamp: '',
    hasFinalizer: true,
    deleting: false,
    spec: { serial: 'S', persistent: true, ipWhitelist: [] },
    status: { phase: 'Active', proxy: 'proxy-0', host: 'h', port: 100, transferredBytes: 7, clientAddress: '10.9.9.9:1' },
  };
  return { view, live, state, session };
}

test('an Active session shows its pod’s live counters and connections; the rest of status is kept', async () => {
  const { live, session, view } = await setup();
  const shown = (await live.overlay([session]))[0]!.status;
  assert.equal(
    [shown.phase, shown.host, shown.port, shown.transferredBytes, shown.deviceConnected, shown.deviceAddress, shown.clientAddress],
    ['Active', 'h', 100, 42, true, '10.1.1.1:5000', undefined],
  );
  assert.is(session.status.transferredBytes, 7, 'the stored session is not changed');
  await view.stop();
});

test('another incarnation, another port, another pod, or a session not Active shows what is stored', async () => {
  const { live, session, view } = await setup();
  for (const other of [
    { ...session, uid: 'uid-2' },
    { ...session, status: { ...session.status, port: 101 } },
    { ...session, status: { ...session.status, proxy: 'proxy-9' } },
    { ...session, status: { ...session.status, phase: 'Pending' as const } },
    { ...session, deleting: true },
  ]) {
    assert.is((await live.overlay([other]))[0]?.status.transferredBytes, 7);
  }
  await view.stop();
});

test('with counters on demand, the Active sessions of a page are asked for in one request, once their counters may have moved', async () => {
  const proxy = new FakeProxy();
  const clock = new FakeClock();
  const view = new ProxyView({ admin: proxy, logger: silentLogger(), clock, pollIntervalMs: 60_000, counters: 'on-demand' });
  view.start();
  await view.refresh();
  const live = new LiveSessions(new Map([['proxy-0', view]]), 'proxy-0');
  const stored: ProxySession[] = [];
  for (const [i, serial] of ['A', 'B', 'C'].entries()) {
    await view.put(serial, { id: `uid-${serial}`, port: 100 + i, persistent: true, ipWhitelist: [] });
    stored.push({
      serial,
      uid: `uid-${serial}`,
      generation: 1,
      creationTimestamp: '',
      hasFinalizer: true,
      deleting: false,
      spec: { serial, persistent: true, ipWhitelist: [] },
      status: { phase: 'Active', proxy: 'proxy-0', host: 'h', port: 100 + i, transferredBytes: 0 },
    });
  }
  // A and B have a party; C has none, so its counters cannot move.
  proxy.update('A', { deviceConnected: true });
  proxy.update('B', { clientConnected: true });
  await view.refresh();
  await view.refresh();
  proxy.update('A', { transferredBytes: 5 });
  proxy.update('B', { transferredBytes: 6 });
  proxy.update('C', { transferredBytes: 7 });
  const asked: string[][] = [];
  const list = proxy.listSessions.bind(proxy);
  proxy.listSessions = (serials) => {
    asked.push([...(serials ?? [])]);
    return list(serials);
  };
  const fresh = await live.overlay(stored);
  assert.equal(asked, [], 'counters taken within the last 500 ms are shown as held');
  assert.equal(
    fresh.map((s) => s.status.transferredBytes),
    [0, 0, 0],
  );
  await clock.advance(501);
  const later = await live.overlay(stored);
  assert.equal(asked, [['A', 'B']], 'one request, for the sessions with a party');
  assert.equal(
    later.map((s) => s.status.transferredBytes),
    [5, 6, 0],
  );
  await view.stop();
});

test('a failed counter lookup shows the last known counters and is logged once until one works again', async () => {
  const proxy = new FakeProxy();
  const clock = new FakeClock();
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const view = new ProxyView({ admin: proxy, logger: pino({ level: 'info' }, sink), clock, pollIntervalMs: 60_000, counters: 'on-demand' });
  view.start();
  await view.refresh();
  await view.put('A', { id: 'uid-A', port: 100, persistent: true, ipWhitelist: [] });
  proxy.update('A', { deviceConnected: true });
  await view.refresh();
  await view.refresh();
  proxy.update('A', { transferredBytes: 9 });
  const list = proxy.listSessions.bind(proxy);
  let down = true;
  proxy.listSessions = async (serials) => {
    if (down) throw new Error('connection refused');
    return list(serials);
  };
  for (let i = 0; i < 3; i++) {
    await clock.advance(501);
    assert.is((await view.current('A', 500))?.transferredBytes, 0, 'the last known counters');
  }
  down = false;
  await clock.advance(501);
  assert.is((await view.current('A', 500))?.transferredBytes, 9);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(
    lines.filter((l) => String(l.msg).startsWith('asking the proxy for counters')).map((l) => l.msg),
    ['asking the proxy for counters failed; the last known ones are shown', 'asking the proxy for counters works again'],
  );
  await view.stop();
});

test.run();
