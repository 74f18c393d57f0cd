// The proxy pod's metrics: byte counters computed at scrape time stay exact
// (live sessions and removed ones alike), prom-client's default process
// metrics are gone, and the event-loop delay gauge reports the worst stall
// since the previous scrape.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { freePorts, Received, sleep, waitFor } from '../helpers/net.ts';
import { joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('proxy metrics');
const cleanup: Array<() => unknown> = [];

test.after(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function scrape(proxy: TestProxy): Promise<string> {
  return proxy.pod.metrics.registry.metrics();
}

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function bytes(proxy: TestProxy) {
  const text = await scrape(proxy);
  return {
    forwardedFromDevice: sample(text, 'cccp_proxy_forwarded_bytes_total', '{from="device"}'),
    forwardedFromClient: sample(text, 'cccp_proxy_forwarded_bytes_total', '{from="client"}'),
    droppedFromDevice: sample(text, 'cccp_proxy_dropped_bytes_total', '{from="device"}'),
    droppedFromClient: sample(text, 'cccp_proxy_dropped_bytes_total', '{from="client"}'),
  };
}

test('byte counters are exact at every scrape, and keep the bytes of removed and superseded sessions', async () => {
  const proxy = await startProxy();
  cleanup.push(() => proxy.stop());
  const [portA, portB] = (await freePorts(2)) as [number, number];
  assert.equal(await bytes(proxy), { forwardedFromDevice: 0, forwardedFromClient: 0, droppedFromDevice: 0, droppedFromClient: 0 });

  const a = await joinPair(proxy.admin, proxy.pod.devicePort, 'MET-A', { port: portA, persistent: true });
  cleanup.push(
    () => a.device.destroy(),
    () => a.client.destroy(),
  );
  const atClient = new Received(a.client);
  const atDevice = new Received(a.device);
  a.device.write(Buffer.alloc(100_000, 1));
  a.client.write(Buffer.alloc(7_000, 2));
  await atClient.untilLength(100_000);
  await atDevice.untilLength(7_000);
  assert.equal(await bytes(proxy), {
    forwardedFromDevice: 100_000,
    forwardedFromClient: 7_000,
    droppedFromDevice: 0,
    droppedFromClient: 0,
  });

  a.client.destroy();
  await waitFor(async () => (await proxy.admin.session('MET-A'))?.clientConnected === false, 2000, 'the client to go');
  a.device.write('dropped!');
  await waitFor(async () => (await bytes(proxy)).droppedFromDevice === 8, 2000, 'the dropped bytes');

  await proxy.admin.delete('MET-A');
  assert.equal(
    await bytes(proxy),
    { forwardedFromDevice: 100_000, forwardedFromClient: 7_000, droppedFromDevice: 8, droppedFromClient: 0 },
    'a deleted session keeps its bytes in the counters',
  );

  const b = await joinPair(proxy.admin, proxy.pod.devicePort, 'MET-B', { port: portB, persistent: true });
  cleanup.push(
    () => b.device.destroy(),
    () => b.client.destroy(),
  );
  const atB = new Received(b.client);
  b.device.write('0123456789');
  await atB.untilLength(10);
  await proxy.admin.put('MET-B', { port: portB, id: 'MET-B-second' });
  assert.equal(
    await bytes(proxy),
    { forwardedFromDevice: 100_010, forwardedFromClient: 7_000, droppedFromDevice: 8, droppedFromClient: 0 },
    'a superseded incarnation keeps its bytes too',
  );
});

test('no default process metrics; resident memory and the largest event-loop delay since the last scrape instead', async () => {
  const proxy = await startProxy({ processMetrics: true });
  cleanup.push(() => proxy.stop());
  const first = await scrape(proxy);
  assert.not.match(first, /^nodejs_/m, 'no nodejs_* defaults (their GC observer costs CPU in bulk transfers)');
  assert.not.match(first, /^process_cpu/m);
  assert.ok((sample(first, 'process_resident_memory_bytes') ?? 0) > 10 * 2 ** 20, 'resident memory, read at scrape');
  // The histogram takes its first sample after a reset as its new start.
  await sleep(30);

  const until = Date.now() + 120;
  while (Date.now() < until) {
    // Holds the event loop for 120 ms.
  }
  await sleep(50);
  const stalled = sample(await scrape(proxy), 'cccp_proxy_event_loop_delay_max_seconds') ?? 0;
  assert.ok(stalled >= 0.08, `the 120 ms stall shows (${stalled} s)`);
  await sleep(100);
  const after = sample(await scrape(proxy), 'cccp_proxy_event_loop_delay_max_seconds') ?? 1;
  assert.ok(after < stalled, `each scrape reports its own interval (${after} s after ${stalled} s)`);
});

test.run();
