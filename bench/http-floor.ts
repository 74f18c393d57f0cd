// The floor under the standalone mode's /on figures: a bare HTTP request and
// answer between two Node processes over a Unix socket, on this machine and
// in the same run. An /on crosses three such hops (the caller, the Control
// API, the proxy process), so three of these tails add up in its tail.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OnLatency } from './control-plane.ts';
import { percentile } from './load.ts';

const SERVER = fileURLToPath(new URL('./http-floor-server.mjs', import.meta.url));

/** `count` sequential PUTs with a small body over one kept-alive connection, timed until the answer's end. */
export async function bareHttpRoundTrips(count: number): Promise<OnLatency> {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-bench-floor-'));
  const socketPath = join(dir, 'floor.sock');
  const child = fork(SERVER, [socketPath], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`the floor's server exited (${code}) before it listened`)));
    });
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await new Promise<void>((resolve, reject) => {
        const request = http.request({ socketPath, path: '/floor', method: 'PUT', agent }, (answer) => {
          answer.resume();
          answer.on('end', resolve);
        });
        request.on('error', reject);
        request.end('{"serial":"floor"}');
      });
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), count };
  } finally {
    agent.destroy();
    child.disconnect();
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
}
