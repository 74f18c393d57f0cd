// The Kubernetes store's reads come from the informer's indexes: the serial's
// session is the oldest resource that carries it, whatever name it has, and a
// new incarnation or a deletion changes the answer at once. Only reads are
// exercised here (the informer is fed in-process, the client is never
// called); writes against the real API server are in test/cluster/.
import { KubeConfig } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { KubeSessionStore } from '../../operator/kube/kube-session-store.ts';
import { ProxySessionClient, type ProxySessionResource } from '../../operator/kube/proxysession-client.ts';
import { SessionInformer } from '../../operator/kube/session-informer.ts';
import type { SessionChange } from '../../operator/session-store.ts';

const test = suite('kube session store reads');

function resource(name: string, uid: string, resourceVersion: string, serial: string, created: string): ProxySessionResource {
  return {
    metadata: { name, namespace: 'ns', uid, resourceVersion, generation: 1, creationTimestamp: created, finalizers: [] },
    spec: { serial, persistent: false, ipWhitelist: [] },
    status: {},
  };
}

function setup() {
  const kubeConfig = new KubeConfig();
  // Never reached: reads are served from the cache.
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'none', server: 'https://127.0.0.1:1' }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  const client = new ProxySessionClient(kubeConfig, 'ns');
  const informer = new SessionInformer(client, silentLogger());
  const store = new KubeSessionStore(client, informer, silentLogger());
  const changes: string[] = [];
  store.subscribe((c: SessionChange) => changes.push(c.type === 'removed' ? `removed ${c.serial} ${c.uid}` : `upserted ${c.session.uid}`));
  return { informer, store, changes };
}

test('the serial is the oldest resource carrying it; list has one session per serial; the rest are duplicates', async () => {
  const { informer, store } = setup();
  informer.observe(resource('pxs-a', 'u1', '10', 'A', '2026-01-01T00:00:05Z'));
  informer.observe(resource('by-hand', 'u2', '11', 'A', '2026-01-01T00:00:01Z'));
  informer.observe(resource('pxs-b', 'u3', '12', 'B', '2026-01-01T00:00:02Z'));
  assert.is((await store.get('A'))?.uid, 'u2');
  assert.is(await store.get('C'), undefined);
  assert.equal((await store.list()).map((s) => `${s.serial} ${s.uid}`).sort(), ['A u2', 'B u3']);
  assert.equal(
    store.duplicatesOf('A').map((d) => `${d.session.uid} held by ${d.heldBy}`),
    ['u1 held by by-hand'],
  );
  assert.equal(store.duplicatesOf('B'), []);
  assert.equal(store.duplicatesOf('C'), []);
});

test('within one second the resource already on a port holds the serial, else the first name', async () => {
  const { informer, store } = setup();
  const second = '2026-01-01T00:00:05Z';
  const running = { ...resource('pxs-a', 'u1', '10', 'A', second), status: { phase: 'Active' as const, port: 20001 } };
  informer.observe(running);
  // Applied by hand in the same second, with a name that sorts first: the running session keeps the serial.
  informer.observe(resource('a-by-hand', 'u2', '11', 'A', second));
  assert.is((await store.get('A'))?.uid, 'u1');
  assert.equal(
    store.duplicatesOf('A').map((d) => `${d.session.uid} held by ${d.heldBy}`),
    ['u2 held by pxs-a'],
  );
  // Neither on a port: the name decides.
  informer.observe(resource('b-first', 'u3', '12', 'B', second));
  informer.observe(resource('b-second', 'u4', '13', 'B', second));
  assert.is((await store.get('B'))?.uid, 'u3');
});

test('a deletion or a new incarnation changes what the serial finds at once', async () => {
  const { informer, store, changes } = setup();
  const old = resource('by-hand', 'u2', '11', 'A', '2026-01-01T00:00:01Z');
  informer.observe(resource('pxs-a', 'u1', '10', 'A', '2026-01-01T00:00:05Z'));
  informer.observe(old);
  informer.forget(old);
  assert.is((await store.get('A'))?.uid, 'u1', 'the remaining resource holds the serial');
  // The name is deleted and created again, read back before the watch reports the deletion.
  informer.observe(resource('pxs-a', 'u4', '20', 'A', '2026-01-01T00:01:00Z'));
  assert.is((await store.get('A'))?.uid, 'u4');
  assert.is((await store.list()).length, 1);
  informer.forget(resource('pxs-a', 'u4', '21', 'A', '2026-01-01T00:01:00Z'));
  assert.is(await store.get('A'), undefined);
  assert.equal(await store.list(), []);
  assert.equal(changes, ['upserted u1', 'upserted u2', 'upserted u1', 'upserted u4', 'removed A u4']);
});

test.run();
