// The soak: the standalone mode and the cluster mode under churn, steady
// traffic and injected faults for a given time, writing a report as it goes.
//
//   npm run soak                                  one hour, report in bench/results/soak-1h.{json,md}
//   tsx test/soak/soak.ts --minutes 3 --out DIR/x  a short run (test/soak.test.ts)
//
// What runs (all on this machine: loopback and namespaces it creates):
// - the standalone mode inside a network namespace playing its pod, with
//   hundreds of persistent sessions carrying steady verified traffic over a
//   clean link, and a few devices on emulated mobile links (300 ms RTT,
//   jitter, 2 % loss, 1 Mbit/s, reordering) that are blackholed in turn
//   and come back from another address, as a device that changed cells;
// - churn workers: /on, traffic, /off; non-persistent sessions ended by a
//   party; client-connect timeouts; device replacement; reconnects;
// - bulk transfers (hundreds of MiB) across one session, alternating
//   direction, watched for stalls;
// - the cluster mode (real kube-apiserver and etcd, proxy pod in its own
//   namespace, one operator) with persistent sessions carrying traffic,
//   churn, and kill -9 of the proxy and the operator in turn;
// - RSS and descriptors of every process each minute.
// At the end every session is switched off and checked: bytes exact,
// `transferred` exact, no port left listening, no serial stuck.
import { createWriteStream, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRigWithCrd, TestCluster } from '../helpers/cluster.ts';
import { sleep } from '../helpers/net.ts';
import { MOBILE_LINK, NetLab } from '../helpers/netlab.ts';
import { type Started, startNodeProcess } from '../helpers/processes.ts';
import type { Rig } from '../kube/rig.ts';
import { type Endpoint, Pair } from './pair.ts';
import { childPids, pidsWith, type Trend, trendOf, type Usage, usageOf } from './usage.ts';

export interface SoakOptions {
  minutes: number;
  /** Persistent standalone sessions with steady traffic on the clean link. */
  steadySessions: number;
  /** Standalone devices on emulated mobile links. */
  shapedDevices: number;
  churnWorkers: number;
  /** Persistent cluster sessions with traffic. */
  clusterSessions: number;
  /** Seconds between kill -9 of the proxy pod or the operator (alternating). */
  killEveryS: number;
  /** Seconds between bulk transfers, and their size. */
  bulkEveryS: number;
  bulkMiB: number;
  /** Seconds between blackholes of a shaped link. */
  blackholeEveryS: number;
  /** Report path without extension. */
  out: string;
  /** Minutes at the end whose samples make the trend. */
  trendMinutes: number;
}

export interface Fault {
  kind: 'kill-proxy' | 'kill-operator' | 'blackhole';
  atMinute: number;
  recovered: boolean;
  /** Seconds until detected (blackhole) and until everything worked again. */
  detectedS?: number;
  recoveredS?: number;
  detail?: string;
}

interface Sample {
  minute: number;
  /** 'end': taken after every session was switched off, left out of the trend. */
  phase: 'run' | 'end';
  processes: Record<string, Usage | undefined>;
}

export interface SoakReport {
  startedAt: string;
  endedAt?: string;
  minutesPlanned: number;
  minutesRun: number;
  finished: boolean;
  settings: Omit<SoakOptions, 'out'> & { keepaliveIdleS: number; mobileLink: typeof MOBILE_LINK };
  sessions: { started: number; ended: number; byKind: Record<string, number> };
  bytes: { delivered: number; bulkDelivered: number; shapedDelivered: number };
  bulk: Array<{ atMinute: number; direction: string; MiB: number; seconds: number; MiBps: number; stalledAtMiB?: number }>;
  mismatchedBytes: number;
  /** Bytes sent that never arrived (not counting those lost to a killed proxy). */
  lostBytes: number;
  transferredMismatches: Array<{ serial: string; expected: number; reported: number | undefined }>;
  leakedPorts: { standalone: number[]; cluster: number[] };
  stuckSerials: Array<{ serial: string; what: string }>;
  faults: Fault[];
  errors: Array<{ atMinute: number; what: string }>;
  samples: Sample[];
  trends: Record<string, { rssMiB?: Trend; fds?: Trend; restarts: number }>;
  verdict: { pass: boolean; reasons: string[] };
}

const CONTROL_PORT = 8080;
const DEVICE_PORT = 9000;
const KEEPALIVE_IDLE_S = 15;

type ControlAnswer = { status: number; body: Record<string, unknown> };

export async function runSoak(opts: SoakOptions, log: (line: string) => void = (l) => console.log(l)): Promise<SoakReport> {
  const t0 = Date.now();
  const minute = () => Math.round(((Date.now() - t0) / 60_000) * 100) / 100;
  const stopAt = t0 + opts.minutes * 60_000;
  const running = () => Date.now() < stopAt;
  /** Sleeps, but not past the end of the run. */
  const pause = (ms: number) => sleep(Math.max(0, Math.min(ms, stopAt - Date.now())));
  const report: SoakReport = {
    startedAt: new Date(t0).toISOString(),
    minutesPlanned: opts.minutes,
    minutesRun: 0,
    finished: false,
    settings: { ...opts, out: undefined, keepaliveIdleS: KEEPALIVE_IDLE_S, mobileLink: MOBILE_LINK } as SoakReport['settings'],
    sessions: { started: 0, ended: 0, byKind: {} },
    bytes: { delivered: 0, bulkDelivered: 0, shapedDelivered: 0 },
    bulk: [],
    mismatchedBytes: 0,
    lostBytes: 0,
    transferredMismatches: [],
    leakedPorts: { standalone: [], cluster: [] },
    stuckSerials: [],
    faults: [],
    errors: [],
    samples: [],
    trends: {},
    verdict: { pass: false, reasons: [] },
  };
  delete (report.settings as Partial<SoakOptions>).out;
  const error = (what: string) => {
    report.errors.push({ atMinute: minute(), what });
    log(`  error at ${minute()} min: ${what}`);
  };
  const started = (kind: string) => {
    report.sessions.started++;
    report.sessions.byKind[kind] = (report.sessions.byKind[kind] ?? 0) + 1;
  };

  // Everything that must be stopped at the end, last first.
  const cleanups: Array<() => Promise<unknown>> = [];
  let lab: NetLab | undefined;
  let clusterLab: NetLab | undefined;
  let rig: Rig | undefined;
  let cluster: TestCluster | undefined;
  let standalone: Started | undefined;
  try {
    // ---- the standalone mode in its namespace
    lab = await NetLab.create({ links: opts.shapedDevices * 2, shape: MOBILE_LINK, seed: 18 });
    cleanups.push(() => lab!.destroy());
    standalone = await startNodeProcess(
      'operator/standalone.ts',
      {
        CCCP_CONTROL_PORT: String(CONTROL_PORT),
        CCCP_CONTROL_BIND_HOST: '0.0.0.0',
        CCCP_DEVICE_PORT: String(DEVICE_PORT),
        CCCP_BIND_HOST: '0.0.0.0',
        CCCP_PUBLIC_HOST: lab.nsAddr,
        CCCP_PORT_RANGE: '20000-20999',
        CCCP_LOG_LEVEL: 'warn',
        CCCP_KEEPALIVE_IDLE_S: String(KEEPALIVE_IDLE_S),
        CCCP_ENDED_RETENTION_S: '20',
      },
      /Session ports /,
      60_000,
      undefined,
      lab.exec,
    );
    cleanups.push(() => standalone!.stop());
    toLogFile('standalone', standalone);
    const s = standalone;
    const controlBase = `http://${lab.nsAddr}:${CONTROL_PORT}`;
    const control = (path: string) => call(controlBase, path);
    const cleanDevice: Endpoint = { host: lab.nsAddr, port: DEVICE_PORT };
    log(`logs of the processes in ${logDir}`);
    log(`standalone in namespace ${lab.ns} at ${controlBase} (pid ${s.child.pid})`);

    /** Polls /status until `ok` holds; undefined when it did not within the time. */
    const statusUntil = async (serial: string, ok: (a: ControlAnswer) => boolean, timeoutMs: number, base = controlBase) => {
      const deadline = Date.now() + timeoutMs;
      let last: ControlAnswer | undefined;
      while (Date.now() < deadline) {
        last = await call(base, `/status?serial=${serial}`).catch(() => undefined);
        if (last && ok(last)) return last;
        await sleep(200);
      }
      return undefined;
    };
    const bothConnected = (a: ControlAnswer) => a.status === 200 && a.body.device_connected === true && a.body.client_connected === true;

    /** /on, device, client, both seen by the proxy. */
    const openPair = async (serial: string, query: string, device: Endpoint, base = controlBase, host = lab!.nsAddr): Promise<Pair> => {
      const on = await call(base, `/on?serial=${serial}${query}`);
      if (on.status !== 200) throw new Error(`/on ${serial}: ${on.status} ${JSON.stringify(on.body)}`);
      const pair = new Pair(serial, Number(on.body.port));
      await pair.connectDevice(device);
      await pair.connectClient({ host, port: pair.port });
      if (!(await statusUntil(serial, bothConnected, 60_000, base))) {
        pair.close();
        throw new Error(`${serial}: the proxy did not show both parties connected`);
      }
      return pair;
    };

    /** Waits until everything sent has arrived; false on timeout. */
    const quiesce = async (pair: Pair, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (pair.inFlight > 0 && Date.now() < deadline) await sleep(50);
      return pair.inFlight === 0;
    };

    /** /status reports exactly the bytes both ends received (it may be a poll behind). */
    const checkTransferred = async (pair: Pair, base = controlBase) => {
      const expected = pair.delivered - pair.transferredBase;
      const answer = await statusUntil(pair.serial, (a) => a.status === 200 && a.body.transferred === expected, 5000, base);
      if (!answer) {
        const last = await call(base, `/status?serial=${pair.serial}`).catch(() => undefined);
        report.transferredMismatches.push({ serial: pair.serial, expected, reported: last?.body.transferred as number | undefined });
        error(`${pair.serial}: transferred ${String(last?.body.transferred)} instead of ${expected}`);
      }
    };

    // Counted when a session ends, so nothing of it is kept for the rest of the run.
    const retire = (pair: Pair) => {
      report.sessions.ended++;
      report.bytes.delivered += pair.delivered;
      report.mismatchedBytes += pair.mismatched;
    };

    // ---- steady sessions
    const steady: Pair[] = [];
    for (let i = 0; i < opts.steadySessions; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, opts.steadySessions - i) }, (_, j) =>
          openPair(`STEADY-${i + j}`, '&persistent=true', cleanDevice),
        ),
      );
      steady.push(...batch);
      for (const _ of batch) started('steady');
    }
    log(`${steady.length} steady sessions open (${minute()} min)`);

    // ---- devices on mobile links: link 2k is the device's usual cell, 2k+1 the one it moves to
    const shaped: Array<{ pair: Pair; link: number }> = [];
    for (let k = 0; k < opts.shapedDevices; k++) {
      const link = lab.links[2 * k]!;
      shaped.push({
        pair: await openPair(`MOBILE-${k}`, '&persistent=true', { host: link.nsAddr, port: DEVICE_PORT, localAddress: link.hostAddr }),
        link: 2 * k,
      });
      started('mobile');
    }
    log(`${shaped.length} mobile devices open (${minute()} min)`);

    // ---- the cluster mode
    clusterLab = await NetLab.create({ links: 0 });
    cleanups.push(() => clusterLab!.destroy());
    rig = await startRigWithCrd();
    cleanups.push(() => rig!.stop());
    cluster = await TestCluster.start(rig, {
      namespace: 'cccp-soak',
      portRange: { min: 20_000, max: 20_199 },
      proxyNetns: { exec: clusterLab.exec, address: clusterLab.nsAddr },
      proxyEnv: { CCCP_KEEPALIVE_IDLE_S: String(KEEPALIVE_IDLE_S) },
    });
    cleanups.push(() => cluster!.stop());
    const operatorEnv = { CCCP_ENDED_RETENTION_S: '20', CCCP_LEASE_DURATION_S: '4' };
    toLogFile('proxy-pod', cluster.proxy!);
    toLogFile('operator', await cluster.startOperator('soak-operator', operatorEnv));
    await cluster.waitForOperatorLeader();
    const c = cluster;
    const clusterBase = () => c.controlUrl('soak-operator');
    const clusterDevice = (): Endpoint => ({ host: clusterLab!.nsAddr, port: c.devicePort });
    const clusterPairs: Pair[] = [];
    for (let i = 0; i < opts.clusterSessions; i++) {
      clusterPairs.push(await openPair(`KUBE-${i}`, '&persistent=true', clusterDevice(), clusterBase(), clusterLab.nsAddr));
      started('cluster');
    }
    log(`cluster mode up with ${clusterPairs.length} sessions (${minute()} min)`);
    // Cluster pairs are reconnected after each proxy kill; until then they carry nothing.
    let clusterPaused = false;

    // ---- sampling each minute
    const processes = (): Record<string, number | undefined> => ({
      driver: process.pid,
      standalone: s.child.pid,
      // The standalone mode runs its data plane as a child process.
      'standalone proxy-pod': childPids(s.child.pid)[0],
      'link-emulator': pidsWith('link_emulator.py')[0],
      'cluster proxy-pod': c.proxy?.child.pid,
      'cluster operator': c.operators.get('soak-operator')?.child.pid,
      'kube-apiserver': pidsWith(`${rig!.binDir}/kube-apiserver`)[0],
      etcd: pidsWith(`${rig!.binDir}/etcd`, rig!.dataDir)[0],
    });
    const restarts: Record<string, number> = { 'cluster proxy-pod': 0, 'cluster operator': 0 };
    let phase: Sample['phase'] = 'run';
    const sample = () => {
      const entry: Sample = { minute: minute(), phase, processes: {} };
      for (const [name, pid] of Object.entries(processes())) entry.processes[name] = pid ? usageOf(pid) : undefined;
      report.samples.push(entry);
      const line = Object.entries(entry.processes)
        .map(([n, u]) => `${n} ${u?.rssMiB ?? '-'}M/${u?.fds ?? '-'}fd`)
        .join(', ');
      log(`[${entry.minute} min] ${line}`);
      report.minutesRun = minute();
      writeReport(opts.out, report);
    };
    sample();
    const sampler = setInterval(sample, 60_000);
    cleanups.push(async () => clearInterval(sampler));

    // ---- steady traffic: every second, a little from each side of each session
    const traffic = setInterval(() => {
      for (const pair of steady)
        if (Math.random() < 0.5) pair.send(32 + Math.floor(Math.random() * 480), 32 + Math.floor(Math.random() * 480));
      for (const { pair } of shaped)
        if (pair.connected && !pair.paused) pair.send(1024 + Math.floor(Math.random() * 2048), 1024 + Math.floor(Math.random() * 2048));
      if (!clusterPaused)
        for (const pair of clusterPairs)
          if (pair.connected) pair.send(64 + Math.floor(Math.random() * 192), 64 + Math.floor(Math.random() * 192));
    }, 1000);
    cleanups.push(async () => clearInterval(traffic));

    // ---- churn
    let churnSerial = 0;
    const churnOnce = async (worker: number) => {
      const serial = `CHURN-${worker}-${churnSerial++}`;
      const kind = ['party-leaves', 'off', 'timeout', 'replace', 'reconnect'][Math.floor(Math.random() * 5)]!;
      started(kind);
      if (kind === 'timeout') {
        const on = await control(`/on?serial=${serial}&timeout=2`);
        if (on.status !== 200) return error(`/on ${serial}: ${on.status}`);
        if (!(await statusUntil(serial, (a) => a.status === 404, 15_000)))
          report.stuckSerials.push({ serial, what: 'a session without a client did not time out' });
        report.sessions.ended++;
        return;
      }
      const persistent = kind !== 'party-leaves';
      const pair = await openPair(serial, persistent ? '&persistent=true' : '', cleanDevice);
      const exchange = async () => {
        pair.send(1 + Math.floor(Math.random() * 8192), 1 + Math.floor(Math.random() * 8192));
        if (!(await quiesce(pair, 15_000))) error(`${serial}: bytes did not arrive (${pair.inFlight} in flight)`);
      };
      await exchange();
      if (kind === 'replace') {
        const old = pair.device!;
        pair.newStreams();
        await pair.connectDevice(cleanDevice);
        const closed = await waitClosed(old, 10_000);
        if (!closed) error(`${serial}: the replaced device connection was not closed`);
        await statusUntil(serial, bothConnected, 10_000);
        await exchange();
      }
      if (kind === 'reconnect') {
        pair.device!.end();
        await statusUntil(serial, (a) => a.status === 200 && a.body.device_connected === false, 10_000);
        pair.newStreams();
        await pair.connectDevice(cleanDevice);
        await statusUntil(serial, bothConnected, 10_000);
        await exchange();
      }
      await checkTransferred(pair);
      if (kind === 'party-leaves') {
        (Math.random() < 0.5 ? pair.device : pair.client)!.end();
      } else {
        const off = await control(`/off?serial=${serial}`);
        if (off.status !== 200) report.stuckSerials.push({ serial, what: `/off answered ${off.status}` });
      }
      if (!(await statusUntil(serial, (a) => a.status === 404, 15_000)))
        report.stuckSerials.push({ serial, what: `still live after ${kind}` });
      const gone = await Promise.all([waitClosed(pair.device!, 15_000), waitClosed(pair.client!, 15_000)]);
      if (!gone.every(Boolean)) error(`${serial}: a party was not disconnected when the session ended`);
      pair.close();
      retire(pair);
    };
    const churnWorker = async (worker: number) => {
      while (running()) {
        await churnOnce(worker).catch((err: Error) => error(`churn: ${err.message}`));
        await sleep(200 + Math.random() * 800);
      }
    };

    // ---- bulk transfers: one session, a large stream in one direction at a time
    const bulkPair = await openPair('BULK', '&persistent=true', cleanDevice);
    started('bulk');
    const bulkOnce = async (n: number) => {
      const direction = n % 2 === 0 ? 'device-to-client' : 'client-to-device';
      const total = opts.bulkMiB * 1024 * 1024;
      const from = direction === 'device-to-client' ? bulkPair.device! : bulkPair.client!;
      const stream = direction === 'device-to-client' ? bulkPair.up : bulkPair.down;
      const begin = Date.now();
      const startOffset = stream.checker.offset;
      let sent = 0;
      let lastProgress = Date.now();
      let lastSeen = startOffset;
      let stalledAtMiB: number | undefined;
      while (sent < total || stream.checker.offset - startOffset < total) {
        if (sent < total && from.writableLength < 4 * 1024 * 1024) {
          const n = Math.min(256 * 1024, total - sent);
          from.write(stream.writer.next(n));
          sent += n;
          continue;
        }
        if (stream.checker.offset !== lastSeen) {
          lastSeen = stream.checker.offset;
          lastProgress = Date.now();
        } else if (Date.now() - lastProgress > 30_000) {
          stalledAtMiB = Math.round(((lastSeen - startOffset) / 1048576) * 10) / 10;
          error(`bulk ${direction} stalled at ${stalledAtMiB} MiB`);
          break;
        }
        await sleep(5);
      }
      const seconds = (Date.now() - begin) / 1000;
      report.bulk.push({
        atMinute: minute(),
        direction,
        MiB: opts.bulkMiB,
        seconds: Math.round(seconds * 10) / 10,
        MiBps: Math.round((opts.bulkMiB / seconds) * 10) / 10,
        ...(stalledAtMiB !== undefined ? { stalledAtMiB } : {}),
      });
      report.bytes.bulkDelivered += stream.checker.offset - startOffset;
      log(
        `  bulk ${direction}: ${opts.bulkMiB} MiB in ${seconds.toFixed(1)} s${stalledAtMiB !== undefined ? `, STALLED at ${stalledAtMiB} MiB` : ''}`,
      );
      await checkTransferred(bulkPair);
    };
    const bulkLoop = async () => {
      let n = 0;
      await sleep(Math.min(20_000, opts.bulkEveryS * 1000));
      while (running()) {
        await bulkOnce(n++).catch((err: Error) => error(`bulk: ${err.message}`));
        await pause(opts.bulkEveryS * 1000);
      }
    };

    // ---- blackholes on mobile links: detected, then the device returns from another address
    const blackholeOnce = async (n: number) => {
      const entry = shaped[n % shaped.length]!;
      const { pair } = entry;
      const at = minute();
      const begin = Date.now();
      // Nothing in flight when the link dies, so every byte sent is accounted for exactly.
      pair.paused = true;
      if (!(await quiesce(pair, 60_000))) error(`${pair.serial}: bytes did not arrive before the blackhole`);
      await lab!.shape(entry.link, { blackhole: true });
      // Keepalive: idle, then 10 probes a second apart; plus the status poll.
      const detected = await statusUntil(
        pair.serial,
        (a) => a.status === 200 && a.body.device_connected === false,
        (KEEPALIVE_IDLE_S + 90) * 1000,
      );
      const detectedS = (Date.now() - begin) / 1000;
      // The device gives up its dead connection and comes back from its other cell.
      pair.device!.destroy();
      pair.newStreams();
      const other = entry.link % 2 === 0 ? entry.link + 1 : entry.link - 1;
      const otherLink = lab!.links[other]!;
      await pair.connectDevice({ host: otherLink.nsAddr, port: DEVICE_PORT, localAddress: otherLink.hostAddr });
      const back = await statusUntil(pair.serial, bothConnected, 60_000);
      await lab!.shape(entry.link, { blackhole: false });
      entry.link = other;
      pair.paused = false;
      const fault: Fault = {
        kind: 'blackhole',
        atMinute: at,
        recovered: !!detected && !!back,
        detectedS: Math.round(detectedS * 10) / 10,
        recoveredS: Math.round(((Date.now() - begin) / 1000) * 10) / 10,
      };
      if (!detected) fault.detail = 'not reported disconnected in time';
      report.faults.push(fault);
      log(`  blackhole ${pair.serial}: disconnected after ${fault.detectedS} s, back from another address: ${!!back}`);
    };
    const blackholeLoop = async () => {
      let n = 0;
      await sleep(Math.min(30_000, opts.blackholeEveryS * 1000));
      while (running() && shaped.length > 0) {
        await blackholeOnce(n++).catch((err: Error) => error(`blackhole: ${err.message}`));
        await pause(opts.blackholeEveryS * 1000);
      }
    };

    // ---- the cluster: churn, and kill -9 of the proxy pod or the operator
    let kubeChurnSerial = 0;
    let clusterFaultActive = false;
    const clusterChurnLoop = async () => {
      while (running()) {
        const serial = `KCHURN-${kubeChurnSerial++ % 40}`;
        const on = await call(clusterBase(), `/on?serial=${serial}&persistent=true`).catch(() => undefined);
        if (on?.status === 200) started('cluster-churn');
        else if (!clusterFaultActive) {
          // The resource as the API server has it, for whoever looks into this.
          const stored = await c.session(serial).catch(() => undefined);
          error(
            `cluster /on ${serial}: ${on?.status ?? 'no answer'} ${JSON.stringify(on?.body)}; ProxySession: ${JSON.stringify(stored ? { uid: stored.metadata.uid, deleting: !!stored.metadata.deletionTimestamp, status: stored.status } : null)}`,
          );
        }
        await sleep(500 + Math.random() * 1500);
        const off = await call(clusterBase(), `/off?serial=${serial}`).catch(() => undefined);
        if (off?.status === 200) report.sessions.ended++;
        await sleep(200 + Math.random() * 800);
      }
    };

    /** After a proxy kill: every cluster pair's port listens again and bytes flow. */
    const reconnectClusterPairs = async (deadline: number) => {
      for (const pair of clusterPairs) {
        while (Date.now() < deadline) {
          try {
            pair.close();
            pair.newStreams();
            pair.transferredBase = pair.delivered;
            await pair.connectDevice(clusterDevice());
            await pair.connectClient({ host: clusterLab!.nsAddr, port: pair.port });
            if (await statusUntil(pair.serial, bothConnected, 10_000, clusterBase())) break;
          } catch {
            await sleep(500);
          }
        }
      }
      for (const pair of clusterPairs) pair.send(100, 100);
      return (await Promise.all(clusterPairs.map((p) => quiesce(p, Math.max(1000, deadline - Date.now()))))).every(Boolean);
    };

    const killOnce = async (n: number) => {
      const which = n % 2 === 0 ? 'kill-proxy' : 'kill-operator';
      const at = minute();
      const begin = Date.now();
      clusterFaultActive = true;
      let recovered = false;
      let detail: string | undefined;
      try {
        if (which === 'kill-proxy') {
          clusterPaused = true;
          await c.proxy!.kill9();
          await sleep(500 + Math.random() * 1500);
          toLogFile('proxy-pod', await c.startProxy());
          restarts['cluster proxy-pod']!++;
          // Bytes in flight died with the proxy: the pairs start new streams on new connections.
          recovered = await reconnectClusterPairs(Date.now() + 90_000);
          clusterPaused = false;
          if (!recovered) detail = 'cluster sessions did not carry bytes again within 90 s';
        } else {
          await c.operators.get('soak-operator')!.kill9();
          await sleep(500 + Math.random() * 1500);
          toLogFile('operator', await c.startOperator('soak-operator', operatorEnv));
          restarts['cluster operator']!++;
          const ready = await waitUntil(async () => (await call(clusterBase(), '/readyz').catch(() => undefined))?.status === 200, 90_000);
          // A new session works end to end.
          const probe = ready
            ? await openPair(`KPROBE-${n}`, '&persistent=true', clusterDevice(), clusterBase(), clusterLab!.nsAddr).catch(() => undefined)
            : undefined;
          if (probe) {
            started('cluster-probe');
            probe.send(1000, 1000);
            recovered = await quiesce(probe, 20_000);
            await checkTransferred(probe, clusterBase());
            await call(clusterBase(), `/off?serial=${probe.serial}`);
            probe.close();
            retire(probe);
          }
          if (!recovered) detail = ready ? 'a new session did not carry bytes' : 'the operator was not ready within 90 s';
        }
      } catch (err) {
        detail = (err as Error).message;
      }
      clusterFaultActive = false;
      const fault: Fault = {
        kind: which,
        atMinute: at,
        recovered,
        recoveredS: Math.round(((Date.now() - begin) / 1000) * 10) / 10,
        ...(detail ? { detail } : {}),
      };
      report.faults.push(fault);
      log(`  ${which}: recovered ${recovered} after ${fault.recoveredS} s${detail ? ` (${detail})` : ''}`);
    };
    const killLoop = async () => {
      let n = 0;
      await sleep(Math.min(45_000, opts.killEveryS * 1000));
      while (running()) {
        await killOnce(n++);
        await pause(opts.killEveryS * 1000);
      }
    };

    await Promise.all([
      ...Array.from({ length: opts.churnWorkers }, (_, w) => churnWorker(w)),
      bulkLoop(),
      blackholeLoop(),
      clusterChurnLoop(),
      killLoop(),
    ]);
    clearInterval(traffic);
    clearInterval(sampler);
    sample();
    phase = 'end';
    log(`churn over at ${minute()} min; checking every session`);

    // ---- the end: everything arrives, counters are exact, every session switches off cleanly
    const standalonePairs = [...steady, ...shaped.map((m) => m.pair), bulkPair];
    for (const pair of [...standalonePairs, ...clusterPairs]) {
      if (!(await quiesce(pair, 60_000))) {
        report.lostBytes += pair.inFlight;
        error(`${pair.serial}: ${pair.inFlight} bytes never arrived`);
      }
    }
    for (const pair of standalonePairs) await checkTransferred(pair);
    for (const pair of clusterPairs) await checkTransferred(pair, clusterBase());
    for (const pair of standalonePairs) {
      const off = await control(`/off?serial=${pair.serial}`);
      if (off.status !== 200) report.stuckSerials.push({ serial: pair.serial, what: `/off answered ${off.status}` });
      retire(pair);
      pair.close();
    }
    for (const pair of clusterPairs) {
      const off = await call(clusterBase(), `/off?serial=${pair.serial}`);
      if (off.status !== 200) report.stuckSerials.push({ serial: pair.serial, what: `/off answered ${off.status} (cluster)` });
      retire(pair);
      pair.close();
    }
    // Churn sessions whose /off fell into a fault are still live: switching them off here ends them.
    for (let i = 0; i < 40; i++) {
      if ((await call(clusterBase(), `/off?serial=KCHURN-${i}`).catch(() => undefined))?.status === 200) report.sessions.ended++;
    }
    // No serial left live anywhere, and only the fixed ports listen.
    const stillLive: string[] = [];
    for (const pair of standalonePairs) if ((await control(`/status?serial=${pair.serial}`)).status !== 404) stillLive.push(pair.serial);
    for (const pair of clusterPairs)
      if ((await call(clusterBase(), `/status?serial=${pair.serial}`)).status !== 404) stillLive.push(pair.serial);
    for (const serial of stillLive) report.stuckSerials.push({ serial, what: 'live after /off' });
    await waitUntil(async () => (await nsListeningPorts(lab!)).length <= 2, 15_000);
    report.leakedPorts.standalone = (await nsListeningPorts(lab)).filter((p) => p !== CONTROL_PORT && p !== DEVICE_PORT);
    await waitUntil(
      async () => (await nsListeningPorts(clusterLab!)).filter((p) => p !== c.devicePort && p !== c.adminPort).length === 0,
      30_000,
    );
    report.leakedPorts.cluster = (await nsListeningPorts(clusterLab)).filter((p) => p !== c.devicePort && p !== c.adminPort);
    const sessions = await c.sessions();
    for (const item of sessions) {
      if (item.metadata.deletionTimestamp)
        report.stuckSerials.push({ serial: item.spec.serial, what: 'ProxySession stuck while being deleted' });
      else if (item.status?.phase === 'Active' || item.status?.phase === 'Pending')
        report.stuckSerials.push({ serial: item.spec.serial, what: `ProxySession ${item.status?.phase} after /off` });
    }
    report.bytes.shapedDelivered = shaped.reduce((n, m) => n + m.pair.delivered, 0);
    sample();
    report.trends = trends(report.samples, opts.trendMinutes, restarts);
    report.finished = true;
  } catch (err) {
    error(`the soak stopped: ${(err as Error).stack ?? String(err)}`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    report.endedAt = new Date().toISOString();
    report.minutesRun = minute();
    report.verdict = verdict(report);
    writeReport(opts.out, report);
  }
  return report;
}

const logDir = mkdtempSync(join(tmpdir(), 'cccp-soak-logs-'));

/**
 * Sends a child's output to a file from now on instead of keeping it in
 * memory: over an hour the soak's own RSS would otherwise grow with it.
 */
function toLogFile(name: string, started: Started): void {
  const file = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  file.write(started.output());
  for (const stream of [started.child.stdout!, started.child.stderr!]) {
    stream.removeAllListeners('data');
    stream.on('data', (chunk: Buffer) => file.write(chunk));
  }
  started.child.once('exit', () => file.end());
}

function verdict(report: SoakReport): SoakReport['verdict'] {
  const reasons: string[] = [];
  if (!report.finished) reasons.push('the run did not finish');
  if (report.mismatchedBytes > 0) reasons.push(`${report.mismatchedBytes} mismatched bytes`);
  if (report.lostBytes > 0) reasons.push(`${report.lostBytes} bytes lost`);
  if (report.transferredMismatches.length > 0)
    reasons.push(`${report.transferredMismatches.length} sessions with a wrong transferred count`);
  const leaked = report.leakedPorts.standalone.length + report.leakedPorts.cluster.length;
  if (leaked > 0) reasons.push(`${leaked} leaked ports`);
  if (report.stuckSerials.length > 0) reasons.push(`${report.stuckSerials.length} stuck serials`);
  const unrecovered = report.faults.filter((f) => !f.recovered).length;
  if (unrecovered > 0) reasons.push(`${unrecovered} faults not recovered`);
  const stalls = report.bulk.filter((b) => b.stalledAtMiB !== undefined).length;
  if (stalls > 0) reasons.push(`${stalls} bulk transfers stalled`);
  // A few minutes cannot tell growth from warming up: short runs report their trend without judging it.
  const judged = report.settings.trendMinutes >= 20 ? Object.entries(report.trends) : [];
  for (const [name, t] of judged) {
    if (t.restarts > 0) continue; // restarted processes start over; their trend is not a leak
    if (t.rssMiB?.grows) reasons.push(`${name} RSS grows by ${t.rssMiB.fittedChange} MiB over the trend window`);
    if (t.fds?.grows) reasons.push(`${name} descriptors grow by ${t.fds.fittedChange} over the trend window`);
  }
  if (report.errors.length > 0) reasons.push(`${report.errors.length} errors`);
  return { pass: reasons.length === 0, reasons };
}

function trends(samples: Sample[], windowMinutes: number, restarts: Record<string, number>): SoakReport['trends'] {
  const run = samples.filter((s) => s.phase === 'run');
  const last = run.at(-1)?.minute ?? 0;
  const window = run.filter((s) => s.minute >= last - windowMinutes);
  const names = new Set(window.flatMap((s) => Object.keys(s.processes)));
  const out: SoakReport['trends'] = {};
  for (const name of names) {
    const rss = window.flatMap((s) => (s.processes[name] ? [[s.minute, s.processes[name]!.rssMiB] as [number, number]] : []));
    const fds = window.flatMap((s) => (s.processes[name] ? [[s.minute, s.processes[name]!.fds] as [number, number]] : []));
    out[name] = { rssMiB: trendOf(rss), fds: trendOf(fds), restarts: restarts[name] ?? 0 };
  }
  return out;
}

export function writeReport(out: string, report: SoakReport): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(`${out}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${out}.md`, markdown(report));
}

function markdown(r: SoakReport): string {
  const lines: string[] = [];
  const gib = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  lines.push(`# Soak report`, '');
  lines.push(
    `Started ${r.startedAt}, ${r.endedAt ? `ended ${r.endedAt}` : 'still running'}; ${r.minutesRun.toFixed(1)} of ${r.minutesPlanned} minutes; ${r.finished ? 'finished' : 'not finished'}.`,
  );
  lines.push(
    '',
    `**Verdict: ${r.verdict.pass ? 'pass' : 'fail'}**${r.verdict.reasons.length ? ` (${r.verdict.reasons.join('; ')})` : ''}`,
    '',
  );
  lines.push('| what | value |', '| --- | --- |');
  lines.push(`| sessions started / ended | ${r.sessions.started} / ${r.sessions.ended} |`);
  lines.push(
    `| sessions by kind | ${Object.entries(r.sessions.byKind)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')} |`,
  );
  lines.push(
    `| bytes delivered and verified | ${r.bytes.delivered} (${gib(r.bytes.delivered)}); bulk ${gib(r.bytes.bulkDelivered)}; over mobile links ${(r.bytes.shapedDelivered / 1048576).toFixed(1)} MiB |`,
  );
  lines.push(`| mismatched bytes | ${r.mismatchedBytes} |`);
  lines.push(`| bytes lost | ${r.lostBytes} |`);
  lines.push(`| sessions with a wrong \`transferred\` | ${r.transferredMismatches.length} |`);
  lines.push(`| leaked ports | standalone ${r.leakedPorts.standalone.length}, cluster ${r.leakedPorts.cluster.length} |`);
  lines.push(`| stuck serials | ${r.stuckSerials.length} |`);
  const byKind = (k: Fault['kind']) => r.faults.filter((f) => f.kind === k);
  for (const kind of ['kill-proxy', 'kill-operator', 'blackhole'] as const) {
    const list = byKind(kind);
    const rec = list.filter((f) => f.recovered).length;
    const worst = Math.max(0, ...list.map((f) => f.recoveredS ?? 0));
    const detect = list.filter((f) => f.detectedS !== undefined).map((f) => f.detectedS!);
    lines.push(
      `| faults ${kind} | ${list.length}, recovered ${rec}; slowest recovery ${worst} s${detect.length ? `; detected after ${Math.min(...detect)}-${Math.max(...detect)} s` : ''} |`,
    );
  }
  const stalls = r.bulk.filter((b) => b.stalledAtMiB !== undefined);
  const rates = r.bulk.map((b) => b.MiBps);
  lines.push(
    `| bulk transfers | ${r.bulk.length} of ${r.settings.bulkMiB} MiB, ${stalls.length} stalled; ${rates.length ? `${Math.min(...rates)}-${Math.max(...rates)} MiB/s` : ''} |`,
  );
  lines.push(`| errors | ${r.errors.length} |`);
  lines.push('', `## Trend over the last ${r.settings.trendMinutes} minutes`, '');
  if (r.settings.trendMinutes < 20) lines.push('A run this short cannot tell growth from warming up: the trend is shown, not judged.', '');
  lines.push(
    'Least-squares fit of each minute\'s sample; "grows" means a fitted change above 3 × the residual noise, above 5 % of the mean and above 2 units. Restarted processes (killed on purpose) start over and are not judged.',
    '',
  );
  lines.push(
    '| process | restarts | RSS MiB mean (min-max) | RSS change over window | RSS noise | fds mean (min-max) | fds change | fds noise | grows |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [name, t] of Object.entries(r.trends)) {
    const grows = (t.rssMiB?.grows ? 'RSS ' : '') + (t.fds?.grows ? 'fds' : '');
    lines.push(
      `| ${name} | ${t.restarts} | ${t.rssMiB?.mean ?? '-'} (${t.rssMiB?.min ?? '-'}-${t.rssMiB?.max ?? '-'}) | ${t.rssMiB?.fittedChange ?? '-'} | ${t.rssMiB?.noise ?? '-'} | ${t.fds?.mean ?? '-'} (${t.fds?.min ?? '-'}-${t.fds?.max ?? '-'}) | ${t.fds?.fittedChange ?? '-'} | ${t.fds?.noise ?? '-'} | ${grows || 'no'} |`,
    );
  }
  lines.push('', '## Samples (RSS MiB / open descriptors)', '');
  const names = [...new Set(r.samples.flatMap((s) => Object.keys(s.processes)))];
  lines.push(`| minute | ${names.join(' | ')} |`, `| --- | ${names.map(() => '---').join(' | ')} |`);
  for (const s of r.samples)
    lines.push(
      `| ${s.minute.toFixed(1)} | ${names.map((n) => (s.processes[n] ? `${s.processes[n]!.rssMiB} / ${s.processes[n]!.fds}` : '-')).join(' | ')} |`,
    );
  if (r.faults.length) {
    lines.push(
      '',
      '## Faults',
      '',
      '| minute | kind | recovered | detected after s | recovered after s | detail |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const f of r.faults)
      lines.push(`| ${f.atMinute} | ${f.kind} | ${f.recovered} | ${f.detectedS ?? ''} | ${f.recoveredS ?? ''} | ${f.detail ?? ''} |`);
  }
  if (r.bulk.length) {
    lines.push(
      '',
      '## Bulk transfers',
      '',
      '| minute | direction | MiB | seconds | MiB/s | stalled at MiB |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const b of r.bulk)
      lines.push(`| ${b.atMinute} | ${b.direction} | ${b.MiB} | ${b.seconds} | ${b.MiBps} | ${b.stalledAtMiB ?? ''} |`);
  }
  if (r.errors.length || r.stuckSerials.length || r.transferredMismatches.length) {
    lines.push('', '## Problems', '');
    for (const e of r.errors.slice(0, 100)) lines.push(`- ${e.atMinute} min: ${e.what.split('\n')[0]}`);
    for (const s of r.stuckSerials) lines.push(`- stuck ${s.serial}: ${s.what}`);
    for (const t of r.transferredMismatches) lines.push(`- ${t.serial}: transferred ${t.reported} instead of ${t.expected}`);
  }
  return `${lines.join('\n')}\n`;
}

async function call(base: string, path: string): Promise<ControlAnswer> {
  const response = await fetch(base + path, { signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  return { status: response.status, body };
}

function waitClosed(socket: { destroyed: boolean; once(event: 'close', f: () => void): unknown }, timeoutMs: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition().catch(() => false)) return true;
    await sleep(250);
  }
  return false;
}

/** Ports listening inside a lab's namespace. */
async function nsListeningPorts(lab: NetLab): Promise<number[]> {
  const { execFile } = await import('node:child_process');
  const text = await new Promise<string>((resolve, reject) =>
    execFile(lab.exec[0]!, [...lab.exec.slice(1), 'cat', '/proc/net/tcp', '/proc/net/tcp6'], (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === '0A') ports.add(parseInt(fields[1]!.split(':').pop()!, 16));
  }
  return [...ports].sort((a, b) => a - b);
}

/** The settings of `npm run soak` (an hour) and of the short run in `npm test`. */
export function soakSettings(minutes: number, steadySessions: number, out: string): SoakOptions {
  const short = minutes < 10;
  return {
    minutes,
    steadySessions,
    shapedDevices: 4,
    churnWorkers: 4,
    clusterSessions: short ? 10 : 30,
    killEveryS: short ? 40 : 150,
    bulkEveryS: short ? 30 : 180,
    bulkMiB: short ? 160 : 512,
    blackholeEveryS: short ? 40 : 240,
    out,
    trendMinutes: Math.min(40, minutes),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '60' },
      out: { type: 'string', default: 'bench/results/soak-1h' },
      sessions: { type: 'string', default: '300' },
    },
  });
  const minutes = Number(values.minutes);
  const report = await runSoak(soakSettings(minutes, Number(values.sessions), values.out!));
  console.log(
    `soak ${report.verdict.pass ? 'passed' : 'FAILED'}: ${report.verdict.reasons.join('; ') || 'all checks held'}; report ${values.out}.md`,
  );
  process.exit(report.verdict.pass ? 0 : 1);
}

if (process.argv[1]?.endsWith('soak.ts')) await main();
