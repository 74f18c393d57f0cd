// Cluster-mode figures against the test rig's real kube-apiserver (the same
// wiring as test/cluster/operator.test.ts): /on latency and /on + /off rate
// through ProxySession resources, and the time until 1,000 sessions listen
// again after `kill -9` of the proxy pod.
import { startRigWithCrd, TestCluster } from '../test/helpers/cluster.ts';
import { listeningPorts } from '../test/helpers/net.ts';
import { freePortRange } from '../test/helpers/standalone.ts';
import type { Rig } from '../test/kube/rig.ts';
import { type OnLatency, onOffPairsPerSecond, onToListening } from './control-plane.ts';

export interface ClusterFigures {
  on: OnLatency;
  pairsPerSecond: number;
  restart: { sessions: number; secondsFromSpawn: number; secondsFromReady: number };
}

export async function clusterFigures(opts: {
  onCount: number;
  pairSeconds: number;
  restartSessions: number;
  log: (line: string) => void;
}): Promise<ClusterFigures> {
  let rig: Rig | undefined;
  let cluster: TestCluster | undefined;
  try {
    rig = await startRigWithCrd();
    const portRange = await freePortRange(opts.restartSessions + 20);
    cluster = await TestCluster.start(rig, { namespace: 'cccp-bench', portRange });
    await cluster.startOperator('operator-a');
    await cluster.waitForOperatorLeader();
    const c = cluster;
    const call = (path: string) => c.control(path);
    opts.log(`cluster: /on latency over ${opts.onCount} calls`);
    const on = await onToListening(call, opts.onCount, 'CL-ON');
    opts.log(`cluster: /on + /off pairs for ${opts.pairSeconds} s`);
    const pairsPerSecond = await onOffPairsPerSecond(call, opts.pairSeconds, 'CL-PAIR');

    opts.log(`cluster: creating ${opts.restartSessions} sessions`);
    const ports: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < opts.restartSessions) {
          const i = next++;
          const answer = await c.control<{ port: number }>(`/on?serial=RESTART-${i}&persistent=true`);
          if (answer.status !== 200) throw new Error(`/on answered ${answer.status}: ${JSON.stringify(answer.body)}`);
          ports.push(answer.body.port);
        }
      }),
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
    return {
      on,
      pairsPerSecond,
      restart: { sessions: ports.length, secondsFromSpawn: (done - spawned) / 1000, secondsFromReady: (done - ready) / 1000 },
    };
  } finally {
    await cluster?.stop();
    await rig?.stop();
  }
}
