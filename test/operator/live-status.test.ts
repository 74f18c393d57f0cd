// /status takes a session's live fields from the view of its proxy pod when
// that pod runs this incarnation on this port; otherwise what is stored.
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
  const shown = (await live.overlay(session)).status;
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
    assert.is((await live.overlay(other)).status.transferredBytes, 7);
  }
  await view.stop();
});

test.run();
