// Events are rate-limited: a burst beyond the bucket is dropped and counted,
// and the bucket refills with time.
import type { CoreV1Event } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { EventRecorder } from '../../operator/kube/event-recorder.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const test = suite('event recorder');

test('a burst beyond the rate is dropped and counted; the rate comes back with time', async () => {
  const clock = new FakeClock(1_000_000);
  const sent: CoreV1Event[] = [];
  const recorder = new EventRecorder(async (body) => sent.push(body), 'ns', silentLogger(), { perSecond: 5, clock });
  const target = { name: 'pxs-a', uid: 'u1' };
  for (let i = 0; i < 8; i++) recorder.record(target, { type: 'Normal', reason: 'DeviceConnected', message: `event ${i}` });
  assert.is(sent.length, 5);
  assert.is(recorder.dropped, 3);
  await clock.advance(200);
  recorder.record(target, { type: 'Normal', reason: 'DeviceConnected', message: 'after 200 ms' });
  recorder.record(target, { type: 'Normal', reason: 'DeviceConnected', message: 'too soon' });
  assert.equal(sent.map((e) => e.message).slice(5), ['after 200 ms']);
  assert.is(recorder.dropped, 4);
  const last = sent.at(-1)!;
  assert.equal(last.involvedObject, {
    apiVersion: 'cccp.tcxn.net/v1alpha1',
    kind: 'ProxySession',
    name: 'pxs-a',
    namespace: 'ns',
    uid: 'u1',
  });
  assert.equal(last.lastTimestamp, new Date(1_000_200));
});

test.run();
