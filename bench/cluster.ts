// Cluster-mode figures against the test rig's real kube-apiserver (the same
// wiring as test/cluster/operator.test.ts: the proxy pod and one operator as
// processes of their own): /on latency and /on + /off rate through
// ProxySession resources, the many-sessions phase with the proxy pod fed by
// the operator, and the time until the first phase's sessions listen again
// after `kill -9` of the proxy pod.
import { mustKubectl, startRigWithCrd, TestCluster } from '../test/helpers/cluster.ts';
import { listeningPorts, sleep, waitFor } from '../test/helpers/net.ts';
import type { Rig } from '../test/kube/rig.ts';
import { type ApiFloor, apiWritesPerPair } from './api-floor.ts';
import { controlClient, type OnLatency, onOffPairsPerSecond, onToListening } from './control-plane.ts';
import { DeviceAttachments, inBatches, openProxyPairs } from './join.ts';
import { type ManySessionsResult, manySessions } from './many-sessions.ts';
import { operatorCaughtUp } from './operator-drain.ts';
import { sessionPortRange } from './ports.ts';
import { processesRunFrom } from './process-usage.ts';

/** Where the API floor's resources go: not the operator's namespace. */
const FLOOR_NAMESPACE = 'cccp-bench-floor';

export interface Restart {
  sessions: number;
  secondsFromSpawn: number;
  secondsFromReady: number;
}

/** Each figure is handed on as soon as it is measured, so a later failure keeps the earlier ones. */
export interface ClusterReport {
  onLatency(on: OnLatency): void;
  onOffRate(pairsPerSecond: number): void;
  apiFloor(floor: ApiFloor): void;
  manySessions(result: ManySessionsResult): void;
  restart(restart: Restart): void;
}

export async function clusterFigures(
  opts: {
    onCount: number;
    /** Unmeasured /on calls before the measured ones (the fresh operator's JIT warm-up). */
    onWarmup: number;
    pairSeconds: number;
    /** Pair counts of the many-sessions phases. */
    sessions: number[];
    seconds: number;
    /** Sessions for the restart figure when no many-sessions phase runs. */
    restartSessions: number;
    log: (line: string) => void;
  },
  report: ClusterReport,
): Promise<void> {
  let rig: Rig | undefined;
  let cluster: TestCluster | undefined;
  let attachments: DeviceAttachments | undefined;
  let control: ReturnType<typeof controlClient> | undefined;
  try {
    rig = await startRigWithCrd();
    const portRange = await sessionPortRange(Math.max(opts.restartSessions, ...opts.sessions) + 20);
    cluster = await TestCluster.start(rig, { namespace: 'cccp-bench', portRange, proxyMetrics: true });
    await cluster.startOperator('operator-a');
    await cluster.waitForOperatorLeader();
    const c = cluster;
    const binDir = rig.binDir;
    // The only operator keeps its Control API port for the whole run.
    control = controlClient(c.controlUrl());
    const call = control.call;

    const cold = await onToListening(call, opts.onWarmup, 'CL-WARM');
    opts.log(`cluster: first ${cold.count} /on of a fresh operator: p50 ${cold.p50Ms.toFixed(1)} ms p99 ${cold.p99Ms.toFixed(1)} ms`);
    opts.log(`cluster: /on latency over ${opts.onCount} calls`);
    report.onLatency(await onToListening(call, opts.onCount, 'CL-ON'));
    opts.log(`cluster: /on + /off pairs for ${opts.pairSeconds} s`);
    report.onOffRate(await onOffPairsPerSecond(call, opts.pairSeconds, 'CL-PAIR'));
    // In a namespace of its own, which the operator does not watch.
    opts.log(`cluster: a pair's API writes alone for ${opts.pairSeconds} s`);
    await mustKubectl(rig, ['create', 'namespace', FLOOR_NAMESPACE], true);
    report.apiFloor(await apiWritesPerPair(rig.kubeconfig, FLOOR_NAMESPACE, opts.pairSeconds, 'CL-FLOOR'));

    let restarted = false;
    for (const [index, count] of opts.sessions.entries()) {
      const prefix = `CL-MANY-${count}`;
      let ports: number[] = [];
      if (index > 0) {
        // Each phase starts from a fresh proxy pod, as each standalone phase starts a fresh target: the RSS it adds is its own.
        attachments?.close();
        await c.proxy!.stop();
        await c.startProxy();
      }
      attachments = await DeviceAttachments.watch(c.adminEndpoint);
      const signals = attachments;
      opts.log(`cluster: ${count} sessions`);
      const result = await manySessions(
        {
          // The proxy pod and the operator: the cluster's counterpart of the standalone mode's two processes.
          pids: () => [c.proxy!.child.pid!, ...[...c.operators.values()].map((o) => o.child.pid!)],
          proxyPid: () => c.proxy!.child.pid,
          restPids: () => processesRunFrom(binDir),
          metricsUrl: `http://127.0.0.1:${c.proxyHealthPort}/metrics`,
          openPairs: async (n) => {
            const opened = await openProxyPairs({ count: n, prefix, control: call, devicePort: c.devicePort, attachments: signals });
            ports = opened.ports;
            return opened;
          },
          // Each connect is written to status at once: the steady part starts once those writes are done.
          settle: () => operatorCaughtUp(c),
        },
        count,
        opts.seconds,
      );
      report.manySessions(result);
      // The pairs are closed; the sessions are persistent and go on listening.
      if (!restarted) {
        // The operator first catches up with the parties that just left, so the restart figure is the restart's alone.
        await waitFor(
          async () => {
            const idle = (await c.sessions())
              .filter((s) => s.spec.serial.startsWith(`${prefix}-`))
              .every((s) => s.status?.deviceConnected !== true && s.status?.clientConnected !== true);
            if (!idle) await sleep(500);
            return idle;
          },
          120_000,
          'the session statuses to show every party gone',
        );
        opts.log(`cluster: kill -9 of the proxy pod with ${ports.length} sessions`);
        report.restart(await listeningAgainAfterKill(c, ports));
        restarted = true;
      }
      if (index < opts.sessions.length - 1) {
        await inBatches(count, 16, (i) => call(`/off?serial=${prefix}-${i}`));
        await waitFor(
          () => {
            const open = listeningPorts();
            return ports.every((p) => !open.has(p));
          },
          120_000,
          `the ${count} sessions to stop listening after /off`,
        );
      }
    }
    if (!restarted) {
      opts.log(`cluster: creating ${opts.restartSessions} sessions`);
      const ports = await inBatches(opts.restartSessions, 16, async (i) => {
        const answer = await call(`/on?serial=RESTART-${i}&persistent=true`);
        if (answer.status !== 200) throw new Error(`/on answered ${answer.status}: ${JSON.stringify(answer.body)}`);
        return (answer.body as { port: number }).port;
      });
      report.restart(await listeningAgainAfterKill(c, ports));
    }
  } finally {
    attachments?.close();
    control?.close();
    await cluster?.stop();
    await rig?.stop();
  }
}

/** `kill -9` of the proxy pod, a new one started, and the time until every port listens again. */
async function listeningAgainAfterKill(c: TestCluster, ports: number[]): Promise<Restart> {
  await waitFor(
    () => {
      const open = listeningPorts();
      return ports.every((p) => open.has(p));
    },
    60_000,
    'every session to listen before the kill',
  );
  await c.proxy!.kill9();
  const spawned = performance.now();
  const proxy = await c.startProxy();
  const ready = performance.now();
  const deadline = spawned + 300_000;
  for (;;) {
    const open = listeningPorts();
    if (ports.every((p) => open.has(p))) break;
    if (performance.now() > deadline)
      throw new Error(`sessions not listening again within 300 s; proxy output:\n${proxy.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const done = performance.now();
  return { sessions: ports.length, secondsFromSpawn: (done - spawned) / 1000, secondsFromReady: (done - ready) / 1000 };
}
