// Several proxy pods of one release in this process, each on its own
// loopback address (127.0.0.10, .11, ...) so that they share the device port
// and peer port numbers as pods on different nodes do.
import type net from 'node:net';
import type { ProxyEvent } from '../../common/admin-protocol.ts';
import type { PeerSettings } from '../../proxy-pod/peer-link.ts';
import type { ProxyPodOptions } from '../../proxy-pod/proxy-pod.ts';
import { connect, freePorts, waitFor } from './net.ts';
import { startProxy, type TestProxy } from './proxy.ts';

export const PEER_TOKEN = 'peer-test-token-0123456789';

export interface PeerPod extends TestProxy {
  ordinal: number;
  host: string;
  events: ProxyEvent[];
}

/** A pod's options; `peers` amends the release's peer settings. */
export type PodOptions = Omit<Partial<ProxyPodOptions>, 'peers'> & { peers?: Partial<PeerSettings> };

export interface PodRelease {
  pods: PeerPod[];
  devicePort: number;
  peerPort: number;
  /** Starts (again) the pod of this ordinal, as a restarted pod comes back under the same identity. */
  start(ordinal: number, opts?: PodOptions): Promise<PeerPod>;
  stop(): Promise<void>;
}

export function podHost(ordinal: number): string {
  return `127.0.0.1${ordinal}`;
}

/** The peer address pattern of the release: 127.0.0.1{ordinal}:port. */
export function peerPattern(peerPort: number): string {
  return `127.0.0.1{ordinal}:${peerPort}`;
}

export async function startRelease(replicas: number, opts: (ordinal: number) => PodOptions = () => ({})): Promise<PodRelease> {
  const [devicePort, peerPort] = (await freePorts(2)) as [number, number];
  const pods: PeerPod[] = [];
  const start = async (ordinal: number, extra: PodOptions = {}): Promise<PeerPod> => {
    const own = opts(ordinal);
    const proxy = await startProxy({
      bindHost: podHost(ordinal),
      devicePort,
      lingerMs: 2000,
      ...own,
      ...extra,
      peers: {
        port: peerPort,
        bindHost: podHost(ordinal),
        ordinal,
        replicas,
        addressPattern: peerPattern(peerPort),
        token: PEER_TOKEN,
        ...own.peers,
        ...extra.peers,
      },
    });
    const events: ProxyEvent[] = [];
    proxy.pod.subscribe((event) => events.push(event));
    const pod = { ...proxy, ordinal, host: podHost(ordinal), events };
    pods[ordinal] = pod;
    return pod;
  };
  for (let ordinal = 0; ordinal < replicas; ordinal++) await start(ordinal);
  return {
    pods,
    devicePort,
    peerPort,
    start,
    async stop() {
      await Promise.all(pods.map((pod) => pod?.stop()));
    },
  };
}

/** Connects as a device to a pod's device port from `localAddress`, and sends its registration line and payload. */
export async function deviceOn(
  host: string,
  port: number,
  serial: string,
  opts: { payload?: Buffer | string; ending?: string; localAddress?: string } = {},
): Promise<net.Socket> {
  const socket = await connect(port, { host, localAddress: opts.localAddress });
  socket.write(Buffer.concat([Buffer.from(serial + (opts.ending ?? '\r'), 'latin1'), Buffer.from(opts.payload ?? '')]));
  return socket;
}

export async function waitForDevice(pod: TestProxy, serial: string, timeoutMs = 5000): Promise<void> {
  await waitFor(async () => (await pod.admin.session(serial))?.deviceConnected === true, timeoutMs, `the device of ${serial} on its pod`);
}

/** A gauge or counter of a pod's registry, summed over its labels. */
export async function metricValue(pod: TestProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = pod.pod.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
