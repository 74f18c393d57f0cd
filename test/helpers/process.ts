// Child processes for tests: started in their own process group, stopped
// (SIGTERM, then SIGKILL) in `after` hooks and on exit, never left behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitFor } from './net.ts';

const running = new Set<ChildProcess>();
// The test runner stops a file that outlives its deadline with SIGTERM: exit,
// so that the 'exit' handlers below (and the rig's) kill what was started.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => process.exit(signal === 'SIGTERM' ? 143 : 130));
}
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  }
});

export interface Started {
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  kill9(): Promise<void>;
  /** Resident memory of the process in bytes, from /proc. */
  rss(): number;
}

/**
 * Runs a TypeScript entry point with tsx and resolves once `ready` matches its
 * output. `prefix` wraps the command (e.g. `ip netns exec NS`); it must exec,
 * so the child's pid stays the program's.
 */
export async function startNodeProcess(entry: string, env: Record<string, string>, ready: RegExp, timeoutMs = 20_000, fdLimit?: number, prefix: string[] = []): Promise<Started> {
  const node = [...prefix, process.execPath, '--import', 'tsx', entry];
  // With a descriptor limit, a shell lowers it and then becomes the node process (same pid).
  const [command, ...args] = fdLimit ? ['bash', '-c', `ulimit -n ${fdLimit} && exec "$@"`, 'bash', ...node] : node;
  const child = spawn(command!, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child);
  let output = '';
  let exited = false;
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      exited = true;
      running.delete(child);
      resolve(code);
    }),
  );
  const started: Started = {
    child,
    output: () => output,
    async stop(graceMs = 5000) {
      if (exited) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
      }, graceMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      if (exited) return;
      process.kill(-child.pid!, 'SIGKILL');
      await exit;
    },
    rss() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
  };
  try {
    await waitFor(() => ready.test(output) || exited, timeoutMs, `${entry} to be ready`);
  } catch (err) {
    await started.stop(1000);
    throw new Error(`${(err as Error).message}; output:\n${output.slice(-2000)}`);
  }
  if (exited) throw new Error(`${entry} exited before it was ready; output:\n${output.slice(-2000)}`);
  return started;
}
