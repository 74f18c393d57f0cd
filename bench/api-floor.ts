// The floor under the cluster mode's /on + /off rate: the API writes that one
// pair makes (create, status Pending with the port, status Active, delete,
// finalizer removal), made straight to the test rig's API server one after
// another, with no operator, proxy pod or watch in between. The operator's
// rate cannot pass it, and on a machine where these writes are slow it says
// how much of a pair's time is the API server's.
import { KeepAliveKubeConfig } from '../operator/kube/kube-config.ts';
import { ProxySessionClient, resourceNameForSerial } from '../operator/kube/proxysession-client.ts';
import { SESSION_FINALIZER } from '../operator/session-store.ts';
import { percentile } from './load.ts';

export interface ApiFloor {
  pairsPerSecond: number;
  /** Each write's p50 in ms, in the order a pair makes them. */
  writeP50Ms: Record<string, number>;
}

/** Pairs of writes for `seconds`, one after another, under serials `${prefix}-N`. */
export async function apiWritesPerPair(kubeconfigPath: string, namespace: string, seconds: number, prefix: string): Promise<ApiFloor> {
  const kubeConfig = new KeepAliveKubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  const client = new ProxySessionClient(kubeConfig, namespace, 'cccp-bench-floor');
  const times: Record<string, number[]> = { create: [], pending: [], active: [], delete: [], finalizer: [] };
  const timed = async <T>(write: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    times[write]?.push(performance.now() - started);
    return result;
  };
  const place = { proxy: 'proxy-0', host: '127.0.0.1', port: 20000 };
  const started = performance.now();
  let pairs = 0;
  while (performance.now() - started < seconds * 1000) {
    const serial = `${prefix}-${pairs}`;
    const name = resourceNameForSerial(serial);
    const created = await timed('create', () => client.create(name, { serial, persistent: false, ipWhitelist: [] }, [SESSION_FINALIZER]));
    const uid = created.metadata.uid;
    await timed('pending', () => client.replaceStatus(name, uid, { phase: 'Pending', ...place, observedGeneration: 1 }));
    await timed('active', () =>
      client.replaceStatus(name, uid, { phase: 'Active', ...place, observedGeneration: 1, deviceConnected: false, clientConnected: false }),
    );
    const deleted = await timed('delete', () => client.delete(name, uid));
    if (deleted.outcome !== 'deleting')
      throw new Error(`deleting ${name} answered ${deleted.outcome}, not deleting (the finalizer holds it)`);
    await timed('finalizer', () => client.patchFinalizers(name, deleted.object.metadata.resourceVersion, []));
    pairs++;
  }
  const pairsPerSecond = pairs / ((performance.now() - started) / 1000);
  for (const list of Object.values(times)) list.sort((a, b) => a - b);
  const writeP50Ms = Object.fromEntries(Object.entries(times).map(([write, list]) => [write, percentile(list, 50)]));
  return { pairsPerSecond, writeP50Ms };
}
