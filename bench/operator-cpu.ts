// The operator's CPU in the cluster mode's many-sessions phase, alone: the
// test rig's kube-apiserver, one proxy pod and one operator as processes of
// their own, N pairs opened through the Control API, then every pair
// exchanges one small message a second. Prints the round-trip p50 and p99,
// the CPU seconds of the operator and of the proxy pod (the reference in the
// same run) over the steady part, and the test rig's API server and etcd's
// CPU. With --profile the operator is profiled (profile-on-signal.mjs) and
// its profile of the steady part is summed per function (bench/cpu-profile.ts).
//
//   npx tsx bench/operator-cpu.ts [--sessions=1000] [--seconds=20] [--runs=1] [--profile=DIR] [--flushes=N]
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRigWithCrd, TestCluster } from '../test/helpers/cluster.ts';
import { summarizeProfile } from './cpu-profile.ts';
import { closePairs, DeviceAttachments, openProxyPairs } from './join.ts';
import { percentile, steadySessions } from './load.ts';
import { operatorCaughtUp, operatorCounts } from './operator-drain.ts';
import { sessionPortRange } from './ports.ts';
import { processesRunFrom, usageOf } from './process-usage.ts';
import { benchArgs } from './tools.ts';

const args = benchArgs();
const sessions = Number(args.get('sessions') ?? 1000);
const seconds = Number(args.get('seconds') ?? 20);
const runs = Number(args.get('runs') ?? 1);
const profileDir = args.get('profile');
/** CCCP_COUNTER_FLUSHES_PER_S for the operator; its default when absent. */
const flushes = args.get('flushes');
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const PRELOAD = fileURLToPath(new URL('./profile-on-signal.mjs', import.meta.url));

// A rig of its own for each run, so no run inherits another's sessions.
for (let run = 1; run <= runs; run++) {
  const rig = await startRigWithCrd();
  try {
    const portRange = await sessionPortRange(sessions + 20);
    const cluster = await TestCluster.start(rig, { namespace: `cccp-opcpu-${run}`, portRange });
    let attachments: DeviceAttachments | undefined;
    try {
      const dir = profileDir ? join(profileDir, `run-${run}`) : undefined;
      if (dir) mkdirSync(dir, { recursive: true });
      const profileFile = dir ? join(dir, 'operator.cpuprofile') : undefined;
      await cluster.startOperator('operator-a', {
        ...(profileFile ? { NODE_OPTIONS: `--import=${PRELOAD}`, CCCP_PROFILE_FILE: profileFile } : {}),
        ...(flushes ? { CCCP_COUNTER_FLUSHES_PER_S: flushes } : {}),
      });
      await cluster.waitForOperatorLeader();
      attachments = await DeviceAttachments.watch(cluster.adminEndpoint);
      const operatorPid = cluster.operators.get('operator-a')!.child.pid!;
      const proxyPid = cluster.proxy!.child.pid!;
      log(`run ${run}: opening ${sessions} pairs`);
      const opened = await openProxyPairs({
        count: sessions,
        prefix: `OPCPU-${run}`,
        control: (path) => cluster.control(path),
        devicePort: cluster.devicePort,
        attachments,
      });
      // The opening's own status writes (a connect is written at once) drain first.
      const waited = await operatorCaughtUp(cluster, flushes === undefined ? undefined : Number(flushes), 60);
      log(`run ${run}: the operator caught up with the opening in ${waited.toFixed(0)} s`);
      if (profileFile) process.kill(operatorPid, 'SIGUSR2');
      const countsBefore = await operatorCounts(cluster);
      const rigPids = processesRunFrom(rig.binDir);
      const before = { operator: usageOf([operatorPid]), proxy: usageOf([proxyPid]), rig: usageOf(rigPids), at: performance.now() };
      const { times, lost } = await steadySessions(opened.pairs, seconds);
      const after = { operator: usageOf([operatorPid]), proxy: usageOf([proxyPid]), rig: usageOf(rigPids), at: performance.now() };
      if (profileFile) process.kill(operatorPid, 'SIGUSR2');
      const countsAfter = await operatorCounts(cluster);
      closePairs(opened.pairs);
      const wall = (after.at - before.at) / 1000;
      const operatorCpu = after.operator.cpuSeconds - before.operator.cpuSeconds;
      const proxyCpu = after.proxy.cpuSeconds - before.proxy.cpuSeconds;
      const rigCpu = after.rig.cpuSeconds - before.rig.cpuSeconds;
      log(
        `run ${run}: ${sessions} sessions, steady ${wall.toFixed(1)} s, ${times.length} round trips (${lost} lost): ` +
          `operator ${operatorCpu.toFixed(2)} CPU s (${((operatorCpu / wall) * 100).toFixed(1)} % of a core), ` +
          `proxy pod ${proxyCpu.toFixed(2)} CPU s (${((proxyCpu / wall) * 100).toFixed(1)} %), ` +
          `operator ÷ proxy ${(operatorCpu / proxyCpu).toFixed(2)}; ` +
          `API server and etcd ${((rigCpu / wall) * 100).toFixed(1)} %; ` +
          `${((countsAfter.writes - countsBefore.writes) / wall).toFixed(1)} status writes/s, ` +
          `${((countsAfter.syncs - countsBefore.syncs) / wall).toFixed(1)} syncs/s; ` +
          `round trip p50 ${percentile(times, 50).toFixed(0)} µs, p99 ${percentile(times, 99).toFixed(0)} µs`,
      );
      attachments.close();
      attachments = undefined;
      await cluster.stop();
      if (profileFile && existsSync(profileFile)) console.log(summarizeProfile(profileFile, { top: 45 }));
    } finally {
      attachments?.close();
      await cluster.stop();
    }
  } finally {
    await rig.stop();
  }
}
