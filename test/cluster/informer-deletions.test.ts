// The ProxySession informer against the real API server: a write's answer
// that arrives after the object was deleted must not bring it back into the
// cache (found by the soak: /on for such a serial then waited for the ghost
// to go away until it answered 500).
import { KubeConfig } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
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

test.run();
