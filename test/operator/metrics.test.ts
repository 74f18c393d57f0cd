// The operator's own metrics read the state they describe: the leader, the
// port range by state (leader only), proxy reachability, and every status
// write counted by its outcome.
import { Registry } from 'prom-client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemorySessionStore } from '../../operator/memory-session-store.ts';
import { OperatorMetrics, type ReconcilerView } from '../../operator/operator-metrics.ts';
import { PortAllocator } from '../../operator/port-allocator.ts';
import type { SessionStore } from '../../operator/session-store.ts';

const test = suite('operator metrics');

async function sample(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
  return Object.fromEntries(values.map((v) => [Object.values(v.labels).join(',') || 'value', v.value]));
}

test('the leader exports the ports of all pods by state and whether every pod is reachable; a replica that does not lead exports neither', async () => {
  let now = 0;
  const allocator = new PortAllocator({ min: 20000, max: 20009, now: () => now, quarantineMs: 1000 });
  allocator.allocate('A');
  allocator.allocate('B');
  allocator.quarantine(allocator.allocate('C')!);
  let reachable = true;
  const other = new PortAllocator({ min: 20010, max: 20014 });
  other.allocate('D');
  const pod = (name: string, a: PortAllocator, up: () => boolean) => ({
    name,
    reachable: up(),
    allocated: a.allocatedCount,
    quarantined: a.quarantinedCount(),
    size: a.size,
  });
  let reconciler: ReconcilerView | undefined = {
    podStates: () => [pod('proxy-0', allocator, () => reachable), pod('proxy-1', other, () => true)],
  };
  const registry = new Registry();
  new OperatorMetrics(registry, { leading: () => reconciler !== undefined, reconciler: () => reconciler, apiServerReachable: () => true });
  assert.equal(await sample(registry, 'cccp_operator_ports'), { allocated: 3, quarantined: 1, free: 11 });
  assert.equal(await sample(registry, 'cccp_operator_proxy_reachable'), { value: 1 });
  assert.equal(await sample(registry, 'cccp_operator_leader'), { value: 1 });
  assert.equal(await sample(registry, 'cccp_operator_apiserver_reachable'), { value: 1 });
  now = 2000;
  reachable = false;
  assert.equal(await sample(registry, 'cccp_operator_ports'), { allocated: 3, quarantined: 0, free: 12 }, 'quarantine over');
  assert.equal(await sample(registry, 'cccp_operator_proxy_reachable'), { value: 0 });
  reconciler = undefined;
  assert.equal(await sample(registry, 'cccp_operator_ports'), {});
  assert.equal(await sample(registry, 'cccp_operator_proxy_reachable'), {});
  assert.equal(await sample(registry, 'cccp_operator_leader'), { value: 0 });
});

test('status writes are counted as written, gone or error; every result exists from the start', async () => {
  const registry = new Registry();
  const metrics = new OperatorMetrics(registry, { leading: () => true, reconciler: () => undefined });
  assert.equal(await sample(registry, 'cccp_operator_status_writes_total'), { written: 0, gone: 0, error: 0 });
  assert.equal(await sample(registry, 'cccp_operator_apiserver_reachable'), {}, 'no API server in the standalone mode');
  const memory = new MemorySessionStore();
  let failing = false;
  const flaky: SessionStore = Object.assign(Object.create(memory) as SessionStore, {
    writeStatus: (serial: string, uid: string, status: Parameters<SessionStore['writeStatus']>[2]) =>
      failing ? Promise.reject(new Error('API server unavailable')) : memory.writeStatus(serial, uid, status),
  });
  const store = metrics.countStatusWrites(flaky);
  const { session } = await store.apply({ serial: 'S1', persistent: false, ipWhitelist: [] });
  assert.ok(await store.writeStatus('S1', session.uid, { phase: 'Pending' }));
  assert.is(await store.writeStatus('S1', 'another-uid', { phase: 'Pending' }), undefined);
  failing = true;
  await store.writeStatus('S1', session.uid, { phase: 'Active' }).then(
    () => assert.unreachable('the error must reach the caller'),
    (err: Error) => assert.is(err.message, 'API server unavailable'),
  );
  assert.equal(await sample(registry, 'cccp_operator_status_writes_total'), { written: 1, gone: 1, error: 1 });
  assert.is((await store.get('S1'))?.status.phase, 'Pending', 'reads pass through');
});

test('reconciles are counted by result and timed', async () => {
  const registry = new Registry();
  const metrics = new OperatorMetrics(registry, { leading: () => true, reconciler: () => undefined });
  metrics.observeReconcile(0.02, 'success');
  metrics.observeReconcile(0.3, 'error');
  assert.equal(await sample(registry, 'cccp_operator_reconciles_total'), { success: 1, error: 1 });
  const text = await registry.metrics();
  assert.match(text, /cccp_operator_reconcile_duration_seconds_count 2\b/);
  assert.match(text, /cccp_operator_reconcile_duration_seconds_bucket\{le="0.025"\} 1\b/);
});

test.run();
