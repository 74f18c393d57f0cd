// Long-running helper processes of the test rig (etcd, kube-apiserver) that
// must never outlive the test process, however it ends.
//
// Each server runs under a small sh watchdog in a process group of its own:
// - the group lets stop() signal the server and the watchdog together;
// - the watchdog polls the test process and SIGKILLs the server once it is
//   gone, which covers the one exit no handler sees (SIGKILL of node, as the
//   test runner does after a deadline);
// - the watchdog also reaps the server, so "the watchdog exited" means "the
//   server is gone", whatever PID 1 of the machine does with orphans.
// On top of that, process 'exit', SIGINT and SIGTERM handlers kill every live
// group while any server runs.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

const watchdogScript = [
  'parent=$1; shift',
  '"$@" &',
  'server=$!',
  // Forward a stop request and keep waiting, so the server is reaped here.
  'trap \'kill -TERM "$server" 2>/dev/null\' TERM INT',
  'while kill -0 "$parent" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.2; done',
  'kill -KILL "$server" 2>/dev/null',
  'wait "$server"',
].join('\n');

export interface ServerProcess {
  readonly name: string;
  readonly logFile: string;
  /** Resolves with the exit code (or signal) once the server is gone. */
  readonly exited: Promise<string>;
  /** True until the server has exited. */
  running(): boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the server is gone. */
  stop(graceMs?: number): Promise<void>;
}

const liveGroups = new Set<number>();

export function startServerProcess(name: string, binary: string, args: string[], logFile: string): ServerProcess {
  const log = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn('sh', ['-c', watchdogScript, 'watchdog', String(process.pid), binary, ...args], {
      detached: true,
      stdio: ['ignore', log, log],
    });
  } finally {
    closeSync(log);
  }
  const pgid = child.pid;
  if (pgid === undefined) throw new Error(`could not start ${name} (${binary})`);
  trackGroup(pgid);

  let alive = true;
  const exited = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => {
      alive = false;
      untrackGroup(pgid);
      resolve(signal ?? `code ${code}`);
    });
  });

  return {
    name,
    logFile,
    exited,
    running: () => alive,
    async stop(graceMs = 10_000) {
      if (!alive) return;
      signalGroup(pgid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(pgid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // The server is reaped by now; the group may still hold a stray sleep.
      signalGroup(pgid, 'SIGKILL');
    },
  };
}

/** The last lines of a server's log, for error messages. */
export function logTail(logFile: string, lines = 40): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

/** SIGKILLs every server still running; synchronous, for exit handlers. */
export function killAllGroups(): void {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
}

function onSignal(signal: NodeJS.Signals): void {
  killAllGroups();
  // Installing a handler cancelled node's default exit; restore its meaning.
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

function trackGroup(pgid: number): void {
  if (liveGroups.size === 0) {
    process.on('exit', killAllGroups);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  liveGroups.add(pgid);
}

function untrackGroup(pgid: number): void {
  liveGroups.delete(pgid);
  if (liveGroups.size === 0) {
    process.off('exit', killAllGroups);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
