// The ProxySession informer against the real API server: a write's answer
// that arrives after the object was deleted must not bring it back into the
// cache (found by the soak: /on for such a serial then waited for the ghost
// to go away until it answered 500). And the store's apply when its cache
// does not hold a resource the API server has (another replica made it a
// moment ago): the create's 409 leads to a read, never to a second session.
import { KubeConfig } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { KubeSessionStore } from '../../operator/kube/kube-session-store.ts';
import { ProxySessionClient, resourceNameForSerial } from '../../operator/kube/proxysession-client.ts';
import { SessionInformer } from '../../operator/kube/session-informer.ts';
import { SESSION_FINALIZER } from '../../operator/session-store.ts';
import { mustKubectl, startRigWithCrd } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/net.ts';
import type { Rig } from '../kube/rig.ts';

const test = suite('session informer');
const NAMESPACE = 'cccp-informer';
let rig: Rig | undefined;
let informer: SessionInformer | undefined;

test.before(async () => {
  rig = await startRigWithCrd();
  await mustKubectl(rig, ['create', 'namespace', NAMESPACE]);
});

test.after(async () => {
  informer?.stop();
  await rig?.stop();
});

test('an answer read before a delete does not bring the deleted object back', async () => {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(rig!.kubeconfig);
  const client = new ProxySessionClient(kubeConfig, NAMESPACE);
  informer = new SessionInformer(client, silentLogger());
  informer.start();
  await informer.synced;

  const name = resourceNameForSerial('GHOST-1');
  const created = await client.create(name, { serial: 'GHOST-1', persistent: true, ipWhitelist: [] }, [SESSION_FINALIZER]);
  await waitFor(() => informer!.get(name) !== undefined, 10_000, 'the object in the cache');
  assert.is((await client.delete(name, created.metadata.uid)).outcome, 'deleting');
  // Read while the finalizer still holds it, as KubeSessionStore.delete() does...
  const stale = (await client.get(name))!;
  assert.ok(stale.metadata.deletionTimestamp);
  // ...then the finalizer goes and the object with it.
  await client.patchFinalizers(name, stale.metadata.resourceVersion, []);
  await waitFor(() => informer!.get(name) === undefined, 10_000, 'the DELETED event');

  // The late answer arrives.
  informer.observe(stale);
  assert.is(informer.get(name), undefined, 'the deleted object is back in the cache');

  // A new incarnation under the same name is still taken.
  const again = await client.create(name, { serial: 'GHOST-1', persistent: true, ipWhitelist: [] }, []);
  informer.observe(again);
  assert.is(informer.get(name)?.metadata.uid, again.metadata.uid);
});

test('apply with a cache that lags: unchanged, updated, deleting and created, each as the API server has it', async () => {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(rig!.kubeconfig);
  const client = new ProxySessionClient(kubeConfig, NAMESPACE);
  // Never started: its cache holds only what this store writes, like a replica whose watch is behind.
  const lagging = new SessionInformer(client, silentLogger());
  const store = new KubeSessionStore(client, lagging, silentLogger());
  try {
    const spec = (serial: string, persistent = true) => ({ serial, persistent, ipWhitelist: [] });
    const made = await client.create(resourceNameForSerial('LAG-SAME'), spec('LAG-SAME'), [SESSION_FINALIZER]);
    const same = await store.apply(spec('LAG-SAME'));
    assert.is(same.outcome, 'unchanged');
    assert.is(same.session.uid, made.metadata.uid);

    const other = await client.create(resourceNameForSerial('LAG-EDIT'), spec('LAG-EDIT'), [SESSION_FINALIZER]);
    const edited = await store.apply(spec('LAG-EDIT', false));
    assert.is(edited.outcome, 'updated');
    assert.is(edited.session.uid, other.metadata.uid);
    assert.is((await client.get(resourceNameForSerial('LAG-EDIT')))?.spec.persistent, false);

    const going = await client.create(resourceNameForSerial('LAG-GOING'), spec('LAG-GOING'), [SESSION_FINALIZER]);
    await client.delete(going.metadata.name, going.metadata.uid);
    const deleting = await store.apply(spec('LAG-GOING'));
    assert.is(deleting.outcome, 'deleting');
    assert.is(deleting.session.uid, going.metadata.uid);
    await client.patchFinalizers(going.metadata.name, (await client.get(going.metadata.name))!.metadata.resourceVersion, []);

    const fresh = await store.apply(spec('LAG-NEW'));
    assert.is(fresh.outcome, 'created');
    assert.is((await client.get(resourceNameForSerial('LAG-NEW')))?.metadata.uid, fresh.session.uid);
    // One resource per serial, whatever the cache knew.
    const { items } = await client.list();
    for (const serial of ['LAG-SAME', 'LAG-EDIT', 'LAG-NEW']) assert.is(items.filter((r) => r.spec.serial === serial).length, 1, serial);
  } finally {
    store.close();
  }
});

test.run();
