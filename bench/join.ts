// How the benchmark opens pairs and proves them joined, the same way for
// every target: a probe byte from the client that the device answers. Where
// the first byte is buffered until the far end exists (HAProxy, socat, a
// direct connection), one probe goes through as soon as both sockets are
// open. The proxy instead drops bytes while a party is missing, so for it the
// device registers first, the benchmark waits for the proxy's own signal that
// the device is attached (a `device-connected` event on the admin API's event
// stream), and only then connects the client and sends its one probe. A slow
// retry remains as a safety net, and every retry is counted and reported.
import net from 'node:net';
import type { ProxyEvent } from '../common/admin-protocol.ts';
import { type AdminEndpoint, ProxyAdminClient } from '../operator/proxy-admin-client.ts';

export interface Pair {
  client: net.Socket;
  device: net.Socket;
}

/** Pairs ready for load, and how often the benchmark had to fall back to a retry to join them. */
export interface OpenedPairs {
  pairs: Pair[];
  /** Probes sent beyond the first one of each pair. */
  probeRetries: number;
  /** Pairs whose device-attached signal did not come in time (proxy only). */
  signalsMissed: number;
  /** Of the opening, the seconds spent on /on calls (proxy only). */
  onSeconds?: number;
  /** /on calls answered request_timed_out and asked again (proxy only). */
  onRetries?: number;
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Waits until bytes flow end to end: the client sends 'p' (again every
 * `retryMs` until the device answers 'J'), then 'E' marks the end of the
 * probes so the device can discard them all. Resolves with the number of
 * probes sent after the first.
 */
export function joinPair(pair: Pair, retryMs: number, timeoutMs = 30_000): Promise<number> {
  const { client, device } = pair;
  return new Promise((resolve, reject) => {
    let answered = false;
    let retries = 0;
    const probe = setInterval(() => {
      retries++;
      client.write('p');
    }, retryMs);
    client.write('p');
    const timer = setTimeout(() => finish(new Error(`the pair did not join within ${timeoutMs / 1000} s`)), timeoutMs);
    const onDevice = (chunk: Buffer) => {
      if (!answered) {
        answered = true;
        device.write('J');
      }
      if (chunk.includes(0x45 /* E */)) finish();
    };
    const onClient = (chunk: Buffer) => {
      if (chunk.includes(0x4a /* J */)) {
        clearInterval(probe);
        client.off('data', onClient);
        client.write('E');
      }
    };
    function finish(error?: Error) {
      clearInterval(probe);
      clearTimeout(timer);
      device.off('data', onDevice);
      client.off('data', onClient);
      if (error) reject(error);
      else resolve(retries);
    }
    device.on('data', onDevice);
    client.on('data', onClient);
  });
}

/** Runs `make(0..count-1)` with at most `width` running at once; results in index order. */
export async function inBatches<T>(count: number, width: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await make(i);
      }
    }),
  );
  return out;
}

/** The proxy's own word that a device is attached to its session: `device-connected` events of the admin event stream. */
export class DeviceAttachments {
  private readonly seen = new Set<string>();
  private readonly waiting = new Map<string, () => void>();

  private constructor(private readonly admin: ProxyAdminClient) {}

  static async watch(endpoint: AdminEndpoint): Promise<DeviceAttachments> {
    const admin = new ProxyAdminClient({ endpoint });
    const attachments = new DeviceAttachments(admin);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the admin event stream did not connect within 10 s')), 10_000);
      admin.watchEvents({
        onEvent: (event) => attachments.onEvent(event),
        onConnectionChange: (connected) => {
          if (!connected) return;
          clearTimeout(timer);
          resolve();
        },
      });
    }).catch((error: unknown) => {
      admin.close();
      throw error;
    });
    return attachments;
  }

  private onEvent(event: ProxyEvent): void {
    if (event.type !== 'device-connected' || event.serial === undefined) return;
    const resolve = this.waiting.get(event.serial);
    if (resolve) {
      this.waiting.delete(event.serial);
      resolve();
    } else {
      this.seen.add(event.serial);
    }
  }

  /** True once the device of `serial` is attached; false when no signal came within `timeoutMs`. */
  attached(serial: string, timeoutMs: number): Promise<boolean> {
    if (this.seen.delete(serial)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(serial);
        resolve(false);
      }, timeoutMs);
      this.waiting.set(serial, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    this.admin.close();
  }
}

/** A slow retry, only a safety net: the proxy's signal makes the first probe enough. */
export const PROXY_PROBE_RETRY_MS = 1000;
/** The buffering forwarders' original probe period; with them the first probe is always enough. */
export const BUFFERED_PROBE_RETRY_MS = 25;

/** A Control API call, as the standalone mode's and the cluster's helpers make it. */
export type ControlCall = (path: string) => Promise<{ status: number; body: unknown }>;

/** Where an /on placed a session. */
export interface Placed {
  port: number;
  host: string;
}

/**
 * `count` persistent sessions `${prefix}-${i}` opened with `/on` (16 callers;
 * an /on that answers request_timed_out is asked again, at most twice, as the
 * API says is safe), in index order, and how many were asked again.
 */
export async function openSessions(control: ControlCall, prefix: string, count: number): Promise<{ placed: Placed[]; onRetries: number }> {
  let onRetries = 0;
  const on = async (i: number): Promise<Placed> => {
    for (let attempt = 1; ; attempt++) {
      const answer = await control(`/on?serial=${prefix}-${i}&persistent=true`);
      if (answer.status === 200) return answer.body as Placed;
      const code = (answer.body as { code?: string } | undefined)?.code;
      if (code !== 'request_timed_out' || attempt === 3) throw new Error(`/on answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      onRetries++;
    }
  };
  return { placed: await inBatches(count, 16, on), onRetries };
}

/** Opens `count` sessions (openSessions), then joins each pair (joinProxyPairs). */
export async function openProxyPairs(opts: {
  count: number;
  prefix: string;
  control: ControlCall;
  devicePort: number;
  host?: string;
  attachments: DeviceAttachments;
}): Promise<OpenedPairs & { ports: number[] }> {
  const { count, prefix, attachments } = opts;
  const started = performance.now();
  const { placed, onRetries } = await openSessions(opts.control, prefix, count);
  const onSeconds = (performance.now() - started) / 1000;
  const ports = placed.map((p) => p.port);
  const sessions = ports.map((port, i) => ({ serial: `${prefix}-${i}`, port }));
  const joined = await joinProxyPairs({ sessions, devicePort: opts.devicePort, host: opts.host, attachments });
  return { ...joined, ports, onSeconds, onRetries };
}

/**
 * For each session (its /on already answered): its device connects and
 * registers, the proxy says the device is attached, its client connects and
 * one probe crosses (50 pairs at a time).
 */
export async function joinProxyPairs(opts: {
  sessions: Array<{ serial: string; port: number }>;
  devicePort: number;
  host?: string | undefined;
  attachments: DeviceAttachments;
}): Promise<OpenedPairs> {
  const { sessions, attachments } = opts;
  let probeRetries = 0;
  let signalsMissed = 0;
  const pairs = await inBatches(sessions.length, 50, async (i) => {
    const { serial, port } = sessions[i]!;
    const attached = attachments.attached(serial, 5000);
    const device = await connect(opts.devicePort, opts.host);
    device.write(`${serial}\r`);
    if (!(await attached)) signalsMissed++;
    const pair = { client: await connect(port, opts.host), device };
    probeRetries += await joinPair(pair, PROXY_PROBE_RETRY_MS);
    return pair;
  });
  return { pairs, probeRetries, signalsMissed };
}

export function closePairs(pairs: Pair[]): void {
  for (const { client, device } of pairs) {
    client.destroy();
    device.destroy();
  }
}
