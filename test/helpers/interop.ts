// Helpers for interoperability tests with real third-party programs (mbpoll,
// iperf, a pymodbus device): bounded runs of a command, long-running programs
// stopped with their process group, and a relay that turns any local TCP
// server into a "device" that registers at the proxy's device port.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { waitFor } from './net.ts';

/** Debian's interpreter, where python3-pymodbus is installed (a pyenv python3 on PATH may lack it). */
export const PYTHON = process.env.CCCP_INTEROP_PYTHON ?? '/usr/bin/python3';

/** Throws naming every missing program, with the command that installs them. */
export function requirePrograms(names: string[]): void {
  const missing = names.filter((name) => spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0);
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: run test/setup/install-deps.sh`);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {}
}

/** Runs a command to its end, killed (with its process group) after `timeoutMs`. */
export function runProgram(command: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Program {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Starts a long-running program; resolves once `ready` matches its output (or at once without one). */
export async function startProgram(command: string, args: string[], ready?: RegExp, timeoutMs = 10_000): Promise<Program> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running.add(child);
  let output = '';
  let done = false;
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      output += String(err);
      done = true;
      running.delete(child);
      resolve(null);
    });
    child.once('exit', (code) => {
      done = true;
      running.delete(child);
      resolve(code);
    });
  });
  const program: Program = {
    child,
    output: () => output,
    exited,
    async stop() {
      if (done) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
  if (ready) {
    await waitFor(() => ready.test(output) || done, timeoutMs, `${command} to be ready`).catch(async (err: Error) => {
      await program.stop();
      throw new Error(`${err.message}; output:\n${output.slice(-2000)}`);
    });
    if (done) throw new Error(`${command} exited before it was ready; output:\n${output.slice(-2000)}`);
  }
  return program;
}

/**
 * Makes a local TCP server look like a field device: connects to the proxy's
 * device port and sends `serial` + CR, then, when the first bytes from the
 * client arrive, connects to `targetPort` and joins the two connections.
 * Connecting lazily suits client-first protocols (iperf, Modbus) whose
 * servers time a test from the moment they accept.
 */
export class DeviceRelay {
  readonly upstream: net.Socket;
  private target: net.Socket | undefined;

  private constructor(upstream: net.Socket, readonly targetPort: number) {
    this.upstream = upstream;
    upstream.on('error', () => {});
    upstream.once('data', (first: Buffer) => {
      upstream.pause();
      const target = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true }, () => {
        target.setNoDelay(true);
        target.write(first);
        upstream.pipe(target);
        target.pipe(upstream);
        upstream.resume();
      });
      target.on('error', () => upstream.destroy());
      upstream.on('close', () => target.destroy());
      this.target = target;
    });
  }

  static async connect(devicePort: number, serial: string, targetPort: number): Promise<DeviceRelay> {
    const upstream = net.connect({ port: devicePort, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', resolve);
      upstream.once('error', reject);
    });
    upstream.setNoDelay(true);
    upstream.write(`${serial}\r`);
    return new DeviceRelay(upstream, targetPort);
  }

  close(): void {
    this.upstream.destroy();
    this.target?.destroy();
  }
}

