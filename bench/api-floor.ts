// The floor under the cluster mode's /on + /off rate: the API writes that one
// pair makes (create, status Pending with the port, status Active, delete,
// finalizer removal), made straight to the test rig's API server one after
// another, with no operator, proxy pod or watch in between. The operator's
// rate cannot pass it, and on a machine where these writes are slow it says
// how much of a pair's time is the API server's. The statuses are the
// operator's own (its builders, conditions included), so each write carries
// what the operator's carries.
import type { SessionState } from '../common/admin-protocol.ts';
import { KeepAliveKubeConfig } from '../operator/kube/kube-config.ts';
import { toSession } from '../operator/kube/kube-session-store.ts';
import { ProxySessionClient, resourceNameForSerial } from '../operator/kube/proxysession-client.ts';
import { activeStatus, pendingStatus } from '../operator/session-status.ts';
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
  const times = {
    create: [] as number[],
    pending: [] as number[],
    active: [] as number[],
    delete: [] as number[],
    finalizer: [] as number[],
  };
  const timed = async <T>(write: keyof typeof times, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    times[write].push(performance.now() - started);
    return result;
  };
  const place = { proxy: 'proxy-0', host: '127.0.0.1', port: 20000 };
  const started = performance.now();
  let pairs = 0;
  while (performance.now() - started < seconds * 1000) {
    const serial = `${prefix}-${pairs}`;
    const name = resourceNameForSerial(serial);
    const spec = { serial, persistent: false, ipWhitelist: [] };
    const created = await timed('create', () => client.create(name, spec, [SESSION_FINALIZER]));
    const uid = created.metadata.uid;
    const pending = await timed('pending', () => client.replaceStatus(name, uid, pendingStatus(toSession(created), place, new Date())));
    const listening = listeningState(serial, uid, place.port);
    await timed('active', () => client.replaceStatus(name, uid, activeStatus(toSession(pending), place, listening, new Date())));
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

/** What a proxy pod answers for a session it has just started listening for, nobody attached. */
function listeningState(serial: string, id: string, port: number): SessionState {
  const idle = { forwardedBytes: 0, droppedBytes: 0 };
  return {
    serial,
    id,
    port,
    persistent: false,
    ipWhitelist: [],
    state: 'listening',
    deviceConnected: false,
    clientConnected: false,
    transferredBytes: 0,
    droppedBytes: 0,
    device: idle,
    client: { ...idle },
    clientsRefused: 0,
    listeningSince: new Date().toISOString(),
    changeSeq: 1,
  };
}
