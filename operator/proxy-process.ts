// The standalone mode's data plane: the proxy pod in a child process of its
// own, as in a cluster, so that no storm of Control API requests or
// registrations on one side stalls the other's event loop, and neither can
// take the other's file descriptors. The reconciler reaches it over the admin
// Unix socket. A proxy process that dies is started again on the same ports
// (the reconciler then programs it again, as after a pod restart).
import { type ChildProcess, fork } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../common/log.ts';
import type { ProxyProcessMessage } from '../common/proxy-process-messages.ts';

export interface ProxyProcessOptions {
  /** The proxy's environment (CCCP_* settings, CCCP_ADMIN_SOCKET among them). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** How long the process may take to report ready. */
  startTimeoutMs?: number;
}

const OWN_EXTENSION = extname(fileURLToPath(import.meta.url));
/** proxy-pod/main.ts beside this file, or main.js when running from dist/. */
const PROXY_ENTRY = fileURLToPath(new URL(`../proxy-pod/main${OWN_EXTENSION}`, import.meta.url));
const STOP_GRACE_MS = 5000;
/** Node options that load code before the entry point, as `--flag value` or `--flag=value`. */
const PRELOAD_FLAGS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);

/**
 * The Node options the proxy process starts with: the parent's (so
 * --max-old-space-size, --inspect and the like carry over), but compiled
 * JavaScript gets no TypeScript loader (tsx), even when the parent was
 * started with one: it would cost the proxy process memory and start time
 * for nothing. Under TypeScript the loader is what runs main.ts, so it stays.
 */
export function proxyExecArgv(parentExecArgv: readonly string[], compiled: boolean): string[] {
  if (!compiled) return [...parentExecArgv];
  const kept: string[] = [];
  for (let i = 0; i < parentExecArgv.length; i++) {
    const arg = parentExecArgv[i] ?? '';
    const eq = arg.indexOf('=');
    if (!PRELOAD_FLAGS.has(eq === -1 ? arg : arg.slice(0, eq))) {
      kept.push(arg);
      continue;
    }
    // The value is inline (--import=tsx) or the next argument (--import tsx).
    const option = eq === -1 ? parentExecArgv.slice(i, i + 2) : [arg];
    i += option.length - 1;
    const value = eq === -1 ? (option[1] ?? '') : arg.slice(eq + 1);
    if (!isTypeScriptLoader(value)) kept.push(...option);
  }
  return kept;
}

/**
 * The proxy process's young generation. Under its steady allocation (the
 * change feed's states, each chunk's Buffer) V8 grows it to two 16 MiB
 * semi-spaces: about 30 MB that, with 1,000 sessions, is 30 kB per session.
 * With 4 MiB a scavenge comes every ~0.6 s instead of every ~3 s, which
 * costs a little round-trip p99 (bench/results/tail-13.md). Left alone when
 * the parent's options or NODE_OPTIONS name a size. `npm start` gives the
 * standalone mode's own process the same size (its Control API and
 * ProxyView replace every session's state as counters move, and grew the
 * same way); the proxy process then inherits it with the parent's options.
 */
export const PROXY_SEMI_SPACE_FLAG = '--max-semi-space-size=4';

export function proxyV8Flags(parentExecArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const named = [...parentExecArgv, ...(nodeOptions ?? '').split(/\s+/)].some((arg) =>
    arg.replaceAll('_', '-').startsWith('--max-semi-space-size'),
  );
  return named ? [] : [PROXY_SEMI_SPACE_FLAG];
}

/** `tsx`, `tsx/esm`, or a path into a tsx installation. */
function isTypeScriptLoader(specifier: string): boolean {
  return /^tsx(\/|$)/.test(specifier) || /[/\\]node_modules[/\\]tsx[/\\]/.test(specifier);
}
const RESTART_DELAY_MS = 1000;

export class ProxyProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  devicePort = 0;

  private constructor(private readonly opts: ProxyProcessOptions) {}

  static async start(opts: ProxyProcessOptions): Promise<ProxyProcess> {
    const proxy = new ProxyProcess(opts);
    await proxy.spawn(opts.env);
    return proxy;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private spawn(env: NodeJS.ProcessEnv): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? 20_000;
    const execArgv = [...proxyExecArgv(process.execArgv, OWN_EXTENSION === '.js'), ...proxyV8Flags(process.execArgv, env.NODE_OPTIONS)];
    const child = fork(PROXY_ENTRY, [], { env, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the proxy process did not report ready within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      child.on('message', (message: ProxyProcessMessage) => {
        if (message.type !== 'ready' || ready) return;
        ready = true;
        clearTimeout(timer);
        this.devicePort = message.devicePort;
        resolve();
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        if (!ready) reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!ready) {
          reject(new Error(`the proxy process exited (${signal ?? `code ${code}`}) before it was ready; its log says why`));
          return;
        }
        if (this.stopping) return;
        this.opts.logger.error({ code, signal, pid: child.pid }, 'the proxy process exited; starting it again');
        this.restartTimer = setTimeout(() => this.restart(), RESTART_DELAY_MS);
      });
    });
  }

  private restart(): void {
    if (this.stopping) return;
    // The same device port, also when the first start picked a free one.
    this.spawn({ ...this.opts.env, CCCP_DEVICE_PORT: String(this.devicePort) }).then(
      () => this.opts.logger.info({ pid: this.child?.pid }, 'the proxy process is running again'),
      (error: unknown) => {
        this.opts.logger.error({ err: error }, 'the proxy process failed to start again');
        if (!this.stopping) this.restartTimer = setTimeout(() => this.restart(), RESTART_DELAY_MS);
      },
    );
  }
}
