// Sessions spread over several proxy pods of one release (3 × 5,000 by
// default) against the test rig's real kube-apiserver: the proxy pods as
// processes of their own on 127.0.0.10, .11, ... with the peer port on, one
// operator told of the replicas and giving each pod its own slice of the port
// range, as the chart's loadBalancer mode does. The /on calls go through the
// operator; then each pod's pairs are joined and loaded by a load-generator
// child of their own (one process cannot hold every pair's two sockets under
// the open-file limit), all at once. Each pod gets the figures of the
// single-pod many-sessions phase, measured from its own process.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { podAddress, startRigWithCrd, TestCluster } from '../test/helpers/cluster.ts';
import type { Rig } from '../test/kube/rig.ts';
import { scrapeEventLoopDelayMs } from './event-loop-delay.ts';
import { openSessions } from './join.ts';
import { percentile } from './load.ts';
import { costOf, type ManySessionsResult } from './many-sessions.ts';
import { operatorCaughtUp } from './operator-drain.ts';
import { sessionPortRange } from './ports.ts';
import { usageOf } from './process-usage.ts';
import type { FromLoad, ToLoad } from './spread-load.ts';

export interface SpreadResult {
  pods: number;
  /** Per pod, in ordinal order; `pairs` is the sessions the operator placed on it. */
  byPod: ManySessionsResult[];
  /** All pods' round trips together. */
  rttP99Us: number;
  /** The /on calls for every session of the release, through the one operator. */
  onSeconds: number;
  /** Largest event-loop delay of each pod's load generator during the steady part. */
  generatorLoopDelayMs: number[];
  /** The operator's CPU over the steady part, in % of one core. */
  operatorCpuPercent: number;
  /** From the rig's start to the end of the load. */
  wallSeconds: number;
}

const LOAD = fileURLToPath(new URL('./spread-load.ts', import.meta.url));
/** Ports of each pod's slice beyond its share, so the least-loaded placement never runs a pod out. */
const SLICE_SPARE = 20;

/** A load-generator child, asked one thing at a time. */
class LoadChild {
  private readonly child: ChildProcess;
  private output = '';

  constructor(readonly ordinal: number) {
    this.child = fork(LOAD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child.stdout!.on('data', (c: Buffer) => (this.output += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => (this.output += c.toString()));
  }

  ask<T extends FromLoad['type']>(message: ToLoad, answer: T, timeoutMs: number): Promise<Extract<FromLoad, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`load child ${this.ordinal}: no ${answer} within ${timeoutMs / 1000} s`)), timeoutMs);
      const onMessage = (reply: FromLoad) => {
        if (reply.type === answer) done(undefined, reply as Extract<FromLoad, { type: T }>);
        else if (reply.type === 'failed') done(new Error(`load child ${this.ordinal}: ${reply.message}`));
      };
      const onExit = (code: number | null) => done(new Error(`load child ${this.ordinal} exited (${code}): ${this.output.slice(-1000)}`));
      const done = (error?: Error, reply?: Extract<FromLoad, { type: T }>) => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (error) reject(error);
        else resolve(reply!);
      };
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(message);
    });
  }

  /** Closing the channel makes the child close its pairs and exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export async function spreadFigures(opts: {
  pods: number;
  perPod: number;
  seconds: number;
  log: (line: string) => void;
}): Promise<SpreadResult> {
  const { pods, perPod } = opts;
  const total = pods * perPod;
  const started = performance.now();
  let rig: Rig | undefined;
  let cluster: TestCluster | undefined;
  const children: LoadChild[] = [];
  try {
    rig = await startRigWithCrd();
    const slice = perPod + SLICE_SPARE;
    const portRange = await sessionPortRange(pods * slice);
    cluster = await TestCluster.start(rig, { namespace: 'cccp-bench-spread', portRange, proxyMetrics: true, proxyPods: pods });
    await cluster.startOperator('operator-a', { CCCP_PORT_SLICE_SIZE: String(slice) });
    await cluster.waitForOperatorLeader();
    const c = cluster;
    const ordinals = Array.from({ length: pods }, (_, i) => i);
    for (const ordinal of ordinals) children.push(new LoadChild(ordinal));
    const podPid = (ordinal: number) => c.proxies[ordinal]!.child.pid!;
    const operatorPid = () => c.operators.get('operator-a')!.child.pid!;
    const metricsUrl = (ordinal: number) => `http://${podAddress(ordinal)}:${c.proxyHealthPort}/metrics`;

    const idle = ordinals.map((o) => usageOf([podPid(o)]));
    await Promise.all(ordinals.map((o) => scrapeEventLoopDelayMs(metricsUrl(o))));

    opts.log(`spread: /on for ${total} sessions over ${pods} proxy pods (slices of ${slice} ports)`);
    const opening = performance.now();
    const prefix = `SPREAD-${pods}X${perPod}`;
    const { placed, onRetries } = await openSessions((path) => c.control(path), prefix, total);
    const onSeconds = (performance.now() - opening) / 1000;
    const byHost = new Map(ordinals.map((o) => [podAddress(o), [] as Array<{ serial: string; port: number }>]));
    placed.forEach((p, i) => {
      const sessions = byHost.get(p.host);
      if (!sessions) throw new Error(`/on placed ${prefix}-${i} at ${p.host}, none of the ${pods} pods`);
      sessions.push({ serial: `${prefix}-${i}`, port: p.port });
    });
    const counts = ordinals.map((o) => byHost.get(podAddress(o))!.length);
    opts.log(`spread: /on took ${onSeconds.toFixed(1)} s (${onRetries} asked again); sessions per pod ${counts.join(', ')}; joining`);

    const joined = await Promise.all(
      children.map(async (child, o) => {
        const reply = await child.ask(
          {
            type: 'open',
            host: podAddress(o),
            devicePort: c.devicePort,
            admin: { ...c.adminEndpoint, host: podAddress(o) },
            sessions: byHost.get(podAddress(o))!,
          },
          'opened',
          600_000,
        );
        return { ...reply, openSeconds: (performance.now() - opening) / 1000 };
      }),
    );
    opts.log(`spread: joined, per pod ${joined.map((j) => `${j.openSeconds.toFixed(1)} s`).join(', ')} from the first /on`);
    const openingDelay = await Promise.all(ordinals.map((o) => scrapeEventLoopDelayMs(metricsUrl(o))));
    // Each connect is written to status at once: the steady part starts once those writes are done.
    const settleSeconds = await operatorCaughtUp(c);
    opts.log(`spread: the operator caught up with the opening ${settleSeconds.toFixed(0)} s later`);
    await Promise.all(ordinals.map((o) => scrapeEventLoopDelayMs(metricsUrl(o))));

    const before = ordinals.map((o) => usageOf([podPid(o)]));
    const operatorBefore = usageOf([operatorPid()]);
    const steadyStarted = performance.now();
    const steady = await Promise.all(
      children.map((child) => child.ask({ type: 'steady', seconds: opts.seconds }, 'steady-done', (opts.seconds + 60) * 1000)),
    );
    const after = ordinals.map((o) => usageOf([podPid(o)]));
    const operatorAfter = usageOf([operatorPid()]);
    const wall = (performance.now() - steadyStarted) / 1000;
    const steadyDelay = await Promise.all(ordinals.map((o) => scrapeEventLoopDelayMs(metricsUrl(o))));

    const byPod = ordinals.map((o): ManySessionsResult => {
      const times = steady[o]!.times;
      const cost = costOf(idle[o]!, before[o]!, after[o]!, wall, counts[o]!);
      return {
        pairs: counts[o]!,
        openSeconds: joined[o]!.openSeconds,
        probeRetries: joined[o]!.probeRetries,
        signalsMissed: joined[o]!.signalsMissed,
        onSeconds,
        onRetries,
        settleSeconds,
        rttP99Us: percentile(times, 99),
        roundTrips: times.length,
        lost: steady[o]!.lost,
        cost,
        proxyProcess: cost,
        restCpuPercent: undefined,
        loopDelayMs: { opening: openingDelay[o], steady: steadyDelay[o] },
      };
    });
    const all = steady.flatMap((s) => s.times).sort((a, b) => a - b);
    return {
      pods,
      byPod,
      rttP99Us: percentile(all, 99),
      generatorLoopDelayMs: steady.map((s) => s.loopDelayMaxMs),
      onSeconds,
      operatorCpuPercent: ((operatorAfter.cpuSeconds - operatorBefore.cpuSeconds) / wall) * 100,
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await cluster?.stop();
    await rig?.stop();
  }
}
