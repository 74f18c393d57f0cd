// The forwarded hop: what it costs a device to land on another proxy pod than
// its session's. Two proxy pod processes of one release (pods 0 and 1, each on
// its own loopback address, the peer port on, as the chart runs them) hold
// one session each on pod 1. The same-pod pair's device connects to pod 1
// itself; the forwarded pair's device connects to pod 0, which hands it to
// pod 1 over the peer port. Both pairs get the one-stream rows' throughput and
// 64-byte round trips in the same run, taking turns in rounds so that both see
// the same load from whatever else runs. Sessions are put over the admin API
// directly (no API server), as the peer tests do.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortRange, freePorts, waitFor } from '../test/helpers/net.ts';
import { podHost } from '../test/helpers/peers.ts';
import { type Started, startNodeProcess } from '../test/helpers/processes.ts';
import { AdminCaller } from '../test/helpers/proxy.ts';
import { closePairs, connect, joinPair, type Pair, PROXY_PROBE_RETRY_MS } from './join.ts';
import { percentile, roundTrips, throughput } from './load.ts';

export interface HopVariant {
  /** Bytes per second. */
  up: number;
  down: number;
  rttP50Us: number;
  rttP99Us: number;
}

export interface HopResult {
  samePod: HopVariant;
  forwarded: HopVariant;
}

const OWNER = 1;
const LANDING = 0;
/** Turns each pair takes at the load (throughput both ways, then round trips). */
const ROUNDS = 4;

export async function forwardedHop(opts: { bytes: number; roundTrips: number; log: (line: string) => void }): Promise<HopResult> {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-bench-hop-'));
  const pods: Started[] = [];
  const opened: Pair[] = [];
  try {
    const [devicePort, peerPort] = (await freePorts(2)) as [number, number];
    for (const ordinal of [0, 1]) {
      pods.push(
        await startNodeProcess(
          'proxy-pod/main.ts',
          {
            CCCP_ADMIN_SOCKET: join(dir, `admin-${ordinal}.sock`),
            CCCP_ADMIN_TOKEN: 'bench-hop-peer-token-0123456789',
            CCCP_DEVICE_PORT: String(devicePort),
            CCCP_BIND_HOST: podHost(ordinal),
            CCCP_PUBLIC_HOST: podHost(ordinal),
            CCCP_PROXY_HEALTH_PORT: '0',
            CCCP_LOG_LEVEL: 'info',
            CCCP_PEER_PORT: String(peerPort),
            CCCP_PROXY_REPLICAS: '2',
            CCCP_POD_ORDINAL: String(ordinal),
            CCCP_PEER_ADDRESS: `127.0.0.1{ordinal}:${peerPort}`,
          },
          /peer port listening[\s\S]*proxy pod ready/,
        ),
      );
    }
    const owner = new AdminCaller({ socketPath: join(dir, `admin-${OWNER}.sock`) });
    const { min } = await freePortRange(2);

    /** A session on pod 1 whose device registers on `landing`; resolves once one probe crossed. */
    const open = async (serial: string, port: number, landing: number): Promise<Pair> => {
      const put = await owner.put(serial, { port, persistent: true });
      if (put.status !== 200) throw new Error(`PUT ${serial} answered ${put.status}: ${JSON.stringify(put.body)}`);
      const device = await connect(devicePort, podHost(landing));
      device.write(`${serial}\r`);
      await waitFor(async () => (await owner.session(serial))?.deviceConnected === true, 10_000, `the device of ${serial} on pod ${OWNER}`);
      const pair = { client: await connect(port, podHost(OWNER)), device };
      opened.push(pair);
      await joinPair(pair, PROXY_PROBE_RETRY_MS);
      return pair;
    };
    const pairs = { samePod: await open('HOP-SAME', min, OWNER), forwarded: await open('HOP-FORWARDED', min + 1, LANDING) };
    // The two pairs take turns, so that both see the same load from whatever else runs on the machine.
    const variants = ['samePod', 'forwarded'] as const;
    const seconds = { samePod: { up: 0, down: 0 }, forwarded: { up: 0, down: 0 } };
    const times = { samePod: [] as number[], forwarded: [] as number[] };
    const share = opts.bytes / ROUNDS;
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
        seconds[v].up += share / (await throughput(pairs[v], share, 'client→device'));
        seconds[v].down += share / (await throughput(pairs[v], share, 'device→client'));
        times[v].push(...(await roundTrips(pairs[v], Math.ceil(opts.roundTrips / ROUNDS), 64, 250)));
      }
    }
    const result = (v: (typeof variants)[number]): HopVariant => {
      const sorted = times[v].sort((a, b) => a - b);
      return {
        up: opts.bytes / seconds[v].up,
        down: opts.bytes / seconds[v].down,
        rttP50Us: percentile(sorted, 50),
        rttP99Us: percentile(sorted, 99),
      };
    };
    const samePod = result('samePod');
    const forwarded = result('forwarded');
    for (const [what, v] of [
      ['same pod', samePod],
      [`forwarded (device on pod ${LANDING})`, forwarded],
    ] as const) {
      opts.log(
        `  ${what}: ↑ ${(v.up / 2 ** 20).toFixed(0)} MiB/s, ↓ ${(v.down / 2 ** 20).toFixed(0)} MiB/s, rtt p50 ${v.rttP50Us.toFixed(0)} µs p99 ${v.rttP99Us.toFixed(0)} µs`,
      );
    }
    return { samePod, forwarded };
  } finally {
    closePairs(opened);
    await Promise.all(pods.map((pod) => pod.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
