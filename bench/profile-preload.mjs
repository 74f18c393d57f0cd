// A preload for profiling the proxy process of the standalone mode, where
// --cpu-prof cannot reach (NODE_OPTIONS refuses it):
//
//   PROFILE_START_MS=8000 PROFILE_MS=8000 tsx bench/tail.ts --runs=1 --targets=proxy \
//     --proxy-node-options="--import $PWD/bench/profile-preload.mjs"
//
// In the process whose arguments name proxy-pod/main, or PROFILE_PROCESS if
// set (operator/standalone: the Control API's process; the other processes
// ignore it), after PROFILE_START_MS it records for PROFILE_MS, then writes
// to PROFILE_DIR (default the system's temp directory) <pid>.cpuprofile (a
// CPU profile, PROFILE_INTERVAL_US sampling, open it in Chrome's DevTools)
// and <pid>.gc.json (each GC: ms into the window, duration, kind 1 =
// scavenge). PROFILE_KIND=heap writes a sampling heap profile
// (<pid>.heapprofile, garbage included) instead of the CPU profile.
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

if (process.argv.some((arg) => arg.includes(process.env.PROFILE_PROCESS ?? 'proxy-pod/main'))) {
  const env = process.env;
  const startMs = Number(env.PROFILE_START_MS ?? 8000);
  const windowMs = Number(env.PROFILE_MS ?? 8000);
  const dir = env.PROFILE_DIR ?? tmpdir();
  const heap = env.PROFILE_KIND === 'heap';
  const session = new inspector.Session();
  session.connect();
  const post = (method, params = {}) =>
    new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
  const gcs = [];
  let windowStart = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcs.push({ at: Math.round(entry.startTime - windowStart), ms: Number(entry.duration.toFixed(2)), kind: entry.detail?.kind });
    }
  });
  const record = async () => {
    windowStart = performance.now();
    observer.observe({ entryTypes: ['gc'] });
    if (heap) {
      await post('HeapProfiler.enable');
      await post('HeapProfiler.startSampling', {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    } else {
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: Number(env.PROFILE_INTERVAL_US ?? 250) });
      await post('Profiler.start');
    }
    await new Promise((resolve) => setTimeout(resolve, windowMs).unref());
    observer.disconnect();
    const { profile } = await post(heap ? 'HeapProfiler.stopSampling' : 'Profiler.stop');
    writeFileSync(join(dir, `${process.pid}.${heap ? 'heapprofile' : 'cpuprofile'}`), JSON.stringify(profile));
    writeFileSync(join(dir, `${process.pid}.gc.json`), JSON.stringify(gcs));
  };
  setTimeout(() => record().catch((err) => console.error('profile-preload:', err)), startMs).unref();
}
