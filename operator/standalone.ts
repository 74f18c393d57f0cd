// `npm start`: the whole product without a cluster. The proxy pod runs in a
// child process of its own (as in a cluster, so control-plane load cannot
// stall live sessions); the memory session store, the reconciler and the
// Control API run here, the same code as in a cluster. The reconciler reaches
// the proxy through its admin API on a private Unix socket, exactly as it
// would over the pod network.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isEntryPoint } from '../common/entry-point.ts';
import { limitConnections } from '../common/http-limits.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { LogSummary } from '../common/log-summary.ts';
import { listen } from '../common/sockets.ts';
import { proxyOptionsFromEnv } from '../proxy-pod/config.ts';
import { BearerTokens } from './bearer-tokens.ts';
import { type OperatorConfig, operatorConfigFromEnv, proxyPodTargets, reconcilerSettings } from './config.ts';
import { createControlApi } from './control-api.ts';
import { ControlMetrics } from './control-metrics.ts';
import { ControlTokensFile } from './control-tokens-file.ts';
import { LiveSessions } from './live-status.ts';
import { MemorySessionStore } from './memory-session-store.ts';
import { OperatorMetrics } from './operator-metrics.ts';
import { ProxyAdminClient } from './proxy-admin-client.ts';
import { ProxyProcess } from './proxy-process.ts';
import { ProxyView } from './proxy-view.ts';
import { Reconciler } from './reconciler.ts';
import { SessionCommands } from './session-commands.ts';

/** The name the standalone mode's one proxy process goes by (status.proxy). */
const STANDALONE_PROXY = 'proxy-0';
export interface Standalone {
  controlUrl: string;
  devicePort: number;
  /** The proxy's child process. */
  proxyPid: number | undefined;
  stop(): Promise<void>;
}

export async function startStandalone(env: NodeJS.ProcessEnv, logger: Logger): Promise<Standalone> {
  const config: OperatorConfig = operatorConfigFromEnv(env);
  const cleanups: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => logger.warn({ err: error }, 'error while stopping'));
    }
  };
  try {
    // The admin socket lives in a fresh directory only this user can enter.
    const socketDir = await mkdtemp(join(tmpdir(), 'cccp-'));
    cleanups.push(() => rm(socketDir, { recursive: true, force: true }));
    await chmod(socketDir, 0o700);
    const socketPath = join(socketDir, 'admin.sock');

    const proxyEnv: NodeJS.ProcessEnv = {
      ...env,
      CCCP_ADMIN_SOCKET: socketPath,
      CCCP_DEVICE_PORT: String(config.devicePort),
      // The standalone mode has no proxy health port unless one is asked for.
      CCCP_PROXY_HEALTH_PORT: env.CCCP_PROXY_HEALTH_PORT ?? '0',
    };
    // Bad proxy settings stop the start here, with the message, before a process is made.
    proxyOptionsFromEnv(proxyEnv);
    const proxy = await ProxyProcess.start({ env: proxyEnv, logger: logger.child({ part: 'proxy-process' }) });
    cleanups.push(() => proxy.stop());
    await chmod(socketPath, 0o600);

    const store = new MemorySessionStore();
    const admin = new ProxyAdminClient({ endpoint: { socketPath } });
    cleanups.push(async () => admin.close());
    // Counters are asked for when /status shows them: nothing else here reads them, and a feed that
    // carried them would hand the proxy process an entry for nearly every busy session each second.
    const view = new ProxyView({
      admin,
      logger: logger.child({ part: 'proxy-view' }),
      pollIntervalMs: config.pollIntervalMs,
      counters: 'on-demand',
    });
    view.start();
    cleanups.push(() => view.stop());
    const metrics = new ControlMetrics(store);
    // Always the leader; process metrics come with the proxy pod's registry.
    const operatorMetrics = new OperatorMetrics(metrics.registry, { leading: () => true, reconciler: () => reconciler });
    const reconciler: Reconciler = new Reconciler({
      ...reconcilerSettings(config),
      store: operatorMetrics.countStatusWrites(store),
      pods: proxyPodTargets(config, [{ name: STANDALONE_PROXY, admin, view }]),
      logger: logger.child({ part: 'reconciler' }),
      observeReconcile: operatorMetrics.observeReconcile,
    });
    await reconciler.start();
    cleanups.push(() => reconciler.stop());

    const tokens = new BearerTokens(config.controlTokens);
    if (config.controlTokensFile) {
      const tokensFile = new ControlTokensFile(
        config.controlTokensFile,
        tokens,
        config.controlTokens,
        logger.child({ part: 'control-tokens' }),
      );
      tokensFile.start();
      cleanups.push(async () => tokensFile.stop());
    }
    const summary = new LogSummary(logger.child({ part: 'control-api' }), config.logSummaryMs);
    cleanups.push(async () => summary.close());
    const live = new LiveSessions(new Map([[STANDALONE_PROXY, view]]), STANDALONE_PROXY);
    const app = createControlApi({
      commands: new SessionCommands(store, { timeoutMs: config.requestTimeoutMs, live: (sessions) => live.overlay(sessions) }),
      metrics,
      logger: logger.child({ part: 'control-api' }),
      tokens,
      notReadyReason: () => (reconciler.isReady() ? undefined : 'the reconciler has not synced with the proxy yet'),
      summary,
    });
    const server = http.createServer(app.callback());
    limitConnections(server, config.httpLimits, (what) =>
      summary.warn({ what, limit: config.httpLimits.maxConnections }, 'control connection closed by the limits'),
    );
    await listen(server, { port: config.controlPort, host: config.controlBindHost });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const address = server.address() as AddressInfo;
    const controlHost = config.controlBindHost ?? 'localhost';
    const controlUrl = `http://${controlHost.includes(':') ? `[${controlHost}]` : controlHost}:${address.port}`;
    const bindText = config.bindHost ?? 'all interfaces';
    process.stdout.write(
      `Control API listening on ${controlUrl}\n` +
        `Device port ${proxy.devicePort} listening on ${bindText}\n` +
        `Session ports ${config.portRange.min}-${config.portRange.max} on ${bindText}, answered as host ${config.publicHost}\n`,
    );
    return { controlUrl, devicePort: proxy.devicePort, proxyPid: proxy.pid, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function main(): Promise<void> {
  const logger = createLogger('cccp-standalone');
  let running: Standalone;
  try {
    running = await startStandalone(process.env, logger);
  } catch (error) {
    logger.fatal({ err: error }, 'standalone mode failed to start');
    process.stderr.write(`cccp: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    void running.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

// Run only as the entry point, so tests and embedders can import startStandalone.
if (isEntryPoint(import.meta.url)) await main();
