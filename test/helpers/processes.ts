// Child processes for tests, in one place: every one runs in its own process
// group, is stopped (SIGTERM, then SIGKILL) by the test or on exit, and is
// never left behind. `runProgram` runs a tool to its end within a deadline;
// `startProcess` starts a long-running one and waits until it is ready.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { proxyV8Flags } from '../../operator/proxy-process.ts';
import { waitFor } from './net.ts';

const running = new Set<ChildProcess>();
// The test runner stops a file that outlives its deadline with SIGTERM: exit,
// so that the 'exit' handlers below (and the rig's) kill what was started.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => process.exit(signal === 'SIGTERM' ? 143 : 130));
}
process.on('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {}
}

function track(command: string, args: string[], env?: Record<string, string>, cwd?: string): ChildProcess {
  const child = spawn(command, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    ...(env ? { env: { ...process.env, ...env } } : {}),
    ...(cwd ? { cwd } : {}),
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Written to the program's standard input, which is then closed. */
  input?: string;
}

/** Runs a program to its end; it is killed with its process group after `timeoutMs`. */
export function runProgram(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = track(command, args, options.env, options.cwd);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${command} ${args.join(' ')}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A run's result with its exit code; throws when it was killed (its deadline passed). */
export function finished(what: string, result: RunResult): RunResult & { code: number } {
  if (result.code === null) throw new Error(`${what}: killed before it finished; stderr: ${result.stderr.slice(-500)}`);
  return { ...result, code: result.code };
}

export interface Started {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr together. */
  output(): string;
  /** Resolves with the exit code once it exited (null when killed or it never started). */
  exited: Promise<number | null>;
  /** SIGTERM to the process, then SIGKILL to its group after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  kill9(): Promise<void>;
  /** Resident memory of the process in bytes, from /proc. */
  rss(): number;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Resolve once the output matches; without it, at once. */
  ready?: RegExp;
  timeoutMs?: number;
  /** Lowers the descriptor limit (RLIMIT_NOFILE) of the process. */
  fdLimit?: number;
}

/** Starts a long-running program; rejects with its output if it exits or is not ready in time. */
export async function startProcess(command: string, args: string[], options: StartOptions = {}): Promise<Started> {
  // With a descriptor limit, a shell lowers it and then becomes the program (same pid).
  const [cmd, ...argv] = options.fdLimit
    ? ['bash', '-c', `ulimit -n ${options.fdLimit} && exec "$@"`, 'bash', command, ...args]
    : [command, ...args];
  const child = track(cmd as string, argv, options.env);
  child.stdin?.end();
  let output = '';
  let done = false;
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      output += String(err);
      done = true;
      resolve(null);
    });
    child.once('exit', (code) => {
      done = true;
      resolve(code);
    });
  });
  const started: Started = {
    child,
    output: () => output,
    exited,
    async stop(graceMs = 5000) {
      if (done) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      if (done) return;
      killGroup(child, 'SIGKILL');
      await exited;
    },
    rss() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
    },
  };
  const { ready } = options;
  if (ready) {
    try {
      await waitFor(() => ready.test(output) || done, options.timeoutMs ?? 20_000, `${command} to be ready`);
    } catch (err) {
      await started.stop(1000);
      throw new Error(`${(err as Error).message}; output:\n${output.slice(-2000)}`);
    }
    if (done) throw new Error(`${command} exited before it was ready; output:\n${output.slice(-2000)}`);
  }
  return started;
}

/**
 * NODE_OPTIONS for a project process started as the chart and `npm start`
 * start it: with the proxy's young-generation size, unless `nodeOptions`
 * (the caller's, e.g. a bench comparing sizes) already names one.
 */
export function withProxyYoungGeneration(nodeOptions: string | undefined = process.env.NODE_OPTIONS): string {
  return [nodeOptions, ...proxyV8Flags([], nodeOptions)].filter(Boolean).join(' ');
}

/**
 * Set (to "1") by the benchmark once it has built `dist/`: the project's
 * entry points then run as the compiled JavaScript production runs, without
 * tsx, so their CPU and memory are the product's.
 */
export const RUN_COMPILED_ENV = 'CCCP_RUN_COMPILED';

/** The product's source directories, whose entry points have a compiled twin in dist/. */
const COMPILED_SOURCES = /^(common|operator|proxy-pod)\/.+\.ts$/;

/**
 * Runs an entry point of the project (a path relative to the project root, or
 * another checkout's file) with tsx, or its compiled twin in dist/ without
 * tsx when RUN_COMPILED_ENV is set (a .js entry always runs as it is);
 * resolves once `ready` matches its output.
 * `prefix` wraps the command (e.g. `ip netns exec NS`); it must exec, so the
 * child's pid stays the program's.
 */
export function startNodeProcess(
  entry: string,
  env: Record<string, string>,
  ready: RegExp,
  timeoutMs = 20_000,
  fdLimit?: number,
  prefix: string[] = [],
): Promise<Started> {
  const script = process.env[RUN_COMPILED_ENV] === '1' && COMPILED_SOURCES.test(entry) ? `dist/${entry.replace(/\.ts$/, '.js')}` : entry;
  // JavaScript (compiled, or another checkout's dist/) needs no loader.
  const run = script.endsWith('.js') ? [script] : ['--import', 'tsx', script];
  const [command, ...args] = [...prefix, process.execPath, ...run];
  return startProcess(command as string, args, { env, ready, timeoutMs, ...(fdLimit ? { fdLimit } : {}) });
}
