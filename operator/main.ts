// `operator`: the cluster mode. Every replica serves the Control API over
// ProxySession resources; the replica holding the Lease also runs the
// reconciler that programs the proxy pod through its admin API. Kubernetes
// access comes from KUBECONFIG, or the in-cluster service account.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isEntryPoint } from '../common/entry-point.ts';
import { adminTokenFromEnv, ConfigError, envInteger, envString } from '../common/env.ts';
import { limitConnections } from '../common/http-limits.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { LogSummary } from '../common/log-summary.ts';
import { listen } from '../common/sockets.ts';
import { BearerTokens } from './bearer-tokens.ts';
import { operatorConfigFromEnv, proxyPodTargets, reconcilerSettings } from './config.ts';
import { createControlApi } from './control-api.ts';
import { ControlMetrics } from './control-metrics.ts';
import { ControlTokensFile } from './control-tokens-file.ts';
import { counterFlushesFromEnv } from './counter-flushes.ts';
import { ensureAdminToken } from './kube/admin-token-secret.ts';
import { EventRecorder } from './kube/event-recorder.ts';
import { KeepAliveKubeConfig } from './kube/kube-config.ts';
import { KubeSessionStore } from './kube/kube-session-store.ts';
import { LeaderElector } from './kube/leader-election.ts';
import { ProxySessionClient } from './kube/proxysession-client.ts';
import { ServiceHosts } from './kube/service-hosts.ts';
import { proxyEventToKubeEvent } from './kube/session-events.ts';
import { SessionInformer } from './kube/session-informer.ts';
import { LiveSessions } from './live-status.ts';
import { OperatorMetrics } from './operator-metrics.ts';
import { ProxyAdminClient } from './proxy-admin-client.ts';
import { ProxyView } from './proxy-view.ts';
import { Reconciler } from './reconciler.ts';
import { SessionCommands } from './session-commands.ts';

const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface ClusterConfig {
  namespace: string;
  identity: string;
  leaseName: string;
  leaseDurationSeconds: number;
  /** Status writes per second that only move byte counters (CCCP_COUNTER_FLUSHES_PER_S). */
  counterFlushesPerSecond: number;
  /** The token itself (CCCP_ADMIN_TOKEN or _FILE), or the Secret to read and fill it from (CCCP_ADMIN_TOKEN_SECRET). */
  admin: { token: string } | { tokenSecret: string };
  /** The proxy pods, by StatefulSet ordinal (CCCP_PROXY_REPLICAS, CCCP_ADMIN_ADDRESS, CCCP_PROXY_POD_NAME). */
  proxies: ProxyPodAddress[];
}

/** One proxy pod: its StatefulSet ordinal, its pod name (status.proxy), its admin API and its own Service, if any. */
export interface ProxyPodAddress {
  ordinal: number;
  name: string;
  host: string;
  port: number;
  /** The pod's LoadBalancer Service, whose address /on answers (CCCP_PROXY_SERVICE_NAME). */
  service?: string;
}

const ORDINAL = /\{ordinal\}/g;

/**
 * The proxy pods from CCCP_PROXY_REPLICAS and the patterns CCCP_ADMIN_ADDRESS
 * (host:port) and CCCP_PROXY_POD_NAME, in which {ordinal} stands for the
 * pod's StatefulSet ordinal (its stable name in the headless Service).
 */
export function proxyPodsFromEnv(env: NodeJS.ProcessEnv): ProxyPodAddress[] {
  const replicas = envInteger(env, 'CCCP_PROXY_REPLICAS', 1, 1, 64);
  const adminAddress = envString(env, 'CCCP_ADMIN_ADDRESS');
  const match = adminAddress ? /^(.+):(\d{1,5})$/.exec(adminAddress) : null;
  if (!adminAddress || !match) throw new ConfigError('CCCP_ADMIN_ADDRESS must name the proxy pod admin API as host:port');
  if (replicas > 1 && !adminAddress.includes('{ordinal}')) {
    throw new ConfigError(
      `CCCP_ADMIN_ADDRESS must hold {ordinal} when CCCP_PROXY_REPLICAS is ${replicas}, so each pod has its own address`,
    );
  }
  const namePattern = envString(env, 'CCCP_PROXY_POD_NAME') ?? 'proxy-{ordinal}';
  const servicePattern = envString(env, 'CCCP_PROXY_SERVICE_NAME');
  return Array.from({ length: replicas }, (_, ordinal) => ({
    ordinal,
    name: namePattern.replace(ORDINAL, String(ordinal)),
    host: (match[1] ?? '').replace(ORDINAL, String(ordinal)).replace(/^\[|\]$/g, ''),
    port: Number(match[2]),
    ...(servicePattern ? { service: servicePattern.replace(ORDINAL, String(ordinal)) } : {}),
  }));
}

export function clusterConfigFromEnv(env: NodeJS.ProcessEnv): ClusterConfig {
  const proxies = proxyPodsFromEnv(env);
  return {
    namespace: envString(env, 'CCCP_NAMESPACE') ?? envString(env, 'POD_NAMESPACE') ?? readNamespaceFile() ?? 'default',
    identity: envString(env, 'POD_NAME') ?? `${envString(env, 'HOSTNAME') ?? 'operator'}-${randomUUID().slice(0, 8)}`,
    leaseName: envString(env, 'CCCP_LEASE_NAME') ?? 'cccp-operator',
    leaseDurationSeconds: envInteger(env, 'CCCP_LEASE_DURATION_S', 15, 2, 300),
    counterFlushesPerSecond: counterFlushesFromEnv(env),
    admin: adminTokenSource(env),
    proxies,
  };
}

function adminTokenSource(env: NodeJS.ProcessEnv): { token: string } | { tokenSecret: string } {
  const tokenSecret = envString(env, 'CCCP_ADMIN_TOKEN_SECRET');
  return tokenSecret ? { tokenSecret } : { token: adminTokenFromEnv(env) };
}

function readNamespaceFile(): string | undefined {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface RunningOperator {
  controlUrl: string;
  stop(): Promise<void>;
}

export async function startOperator(env: NodeJS.ProcessEnv, logger: Logger): Promise<RunningOperator> {
  const config = operatorConfigFromEnv(env);
  const cluster = clusterConfigFromEnv(env);
  const kubeConfig = new KeepAliveKubeConfig();
  kubeConfig.loadFromDefault();
  // Before anything starts: without the admin token there is nothing to do (the pod restarts and retries).
  const adminToken =
    'token' in cluster.admin ? cluster.admin.token : await ensureAdminToken(kubeConfig, cluster.namespace, cluster.admin.tokenSecret);

  const client = new ProxySessionClient(kubeConfig, cluster.namespace, cluster.identity);
  const informer = new SessionInformer(client, logger.child({ part: 'informer' }));
  informer.start();
  await informer.synced;
  const store = new KubeSessionStore(client, informer, logger.child({ part: 'store' }));
  const serviceNames = cluster.proxies.flatMap((pod) => (pod.service ? [pod.service] : []));
  const serviceHosts =
    serviceNames.length > 0
      ? ServiceHosts.forCluster(kubeConfig, cluster.namespace, serviceNames, logger.child({ part: 'services' }))
      : undefined;
  await serviceHosts?.start();
  // Every replica keeps a view of every pod, leading or not: /status reads live counters there.
  const proxyAdmins = cluster.proxies.map((pod) => {
    const admin = new ProxyAdminClient({ endpoint: { host: pod.host, port: pod.port, token: adminToken } });
    const view = new ProxyView({
      admin,
      logger: logger.child({ part: 'proxy-view', proxy: pod.name }),
      pollIntervalMs: config.pollIntervalMs,
      // Moved counters stay out of the feed: /status asks for them, and the reconciler looks at busy sessions in turn.
      counters: 'on-demand',
      // Each pod learns the release's size from here, not from its own template (see "Scaling the proxy").
      replicas: cluster.proxies.length,
    });
    view.start();
    return {
      name: pod.name,
      admin,
      view,
      ...(pod.service && serviceHosts ? { serviceHost: () => serviceHosts.host(pod.service ?? '') } : {}),
    };
  });
  const live = new LiveSessions(new Map(proxyAdmins.map((pod) => [pod.name, pod.view])), proxyAdmins[0]?.name ?? '');
  // Checked before anything starts, so bad slices stop the start with their message.
  proxyPodTargets(config, proxyAdmins);
  const recorder = EventRecorder.forCluster(kubeConfig, cluster.namespace, logger.child({ part: 'events' }));

  let reconciler: Reconciler | undefined;
  const controlMetrics = new ControlMetrics(store);
  const metrics = new OperatorMetrics(
    controlMetrics.registry,
    { leading: () => elector.isLeader, reconciler: () => reconciler, apiServerReachable: () => elector.apiServerReachable() },
    { processMetrics: true },
  );
  // Starting and stopping the reconciler run one after another, so a lease
  // lost and won again in quick succession never leaves two running.
  let transition: Promise<void> = Promise.resolve();
  const startReconciling = () => {
    transition = transition.then(async () => {
      reconciler = newReconciler();
      await informer.refresh().catch((err: unknown) => logger.warn({ err }, 'relist before reconciling failed'));
      await reconciler.start().catch((err: unknown) => logger.error({ err }, 'reconciler failed to start'));
    });
  };
  const stopReconciling = () => {
    transition = transition.then(async () => {
      await reconciler?.stop();
      reconciler = undefined;
    });
  };
  const newReconciler = () =>
    new Reconciler({
      ...reconcilerSettings(config),
      store: metrics.countStatusWrites(store),
      pods: proxyPodTargets(config, proxyAdmins),
      logger: logger.child({ part: 'reconciler' }),
      observeReconcile: metrics.observeReconcile,
      // Each step waits on the API server; more keys in flight keep a burst of /on quick.
      concurrency: 16,
      counterFlushesPerSecond: cluster.counterFlushesPerSecond,
      // The views take counters on demand: status gets them by looks, in turn.
      counterLooks: true,
      onProxyEvent: (event) => {
        const resource = event.id === undefined ? undefined : informer.withUid(event.id);
        const session = resource?.spec.serial === event.serial ? resource : undefined;
        const kubeEvent = proxyEventToKubeEvent(event);
        if (session && kubeEvent) recorder.record({ name: session.metadata.name, uid: session.metadata.uid }, kubeEvent);
      },
    });
  const elector = LeaderElector.forCluster(kubeConfig, {
    namespace: cluster.namespace,
    leaseName: cluster.leaseName,
    identity: cluster.identity,
    leaseDurationSeconds: cluster.leaseDurationSeconds,
    logger: logger.child({ part: 'leader-election' }),
    onStartedLeading: startReconciling,
    // Another replica may reconcile now: stop at once rather than race it, and campaign on.
    onStoppedLeading: stopReconciling,
  });
  elector.start();

  const tokens = new BearerTokens(config.controlTokens);
  const tokensFile = config.controlTokensFile
    ? new ControlTokensFile(config.controlTokensFile, tokens, config.controlTokens, logger.child({ part: 'control-tokens' }))
    : undefined;
  tokensFile?.start();
  const summary = new LogSummary(logger.child({ part: 'control-api' }), config.logSummaryMs);
  const app = createControlApi({
    commands: new SessionCommands(store, { timeoutMs: config.requestTimeoutMs, live: (sessions) => live.overlay(sessions) }),
    metrics: controlMetrics,
    logger: logger.child({ part: 'control-api' }),
    tokens,
    // Every replica serves /on from the cache; the leader is ready once its reconciler reaches the proxy.
    notReadyReason: () => (reconciler && !reconciler.isReady() ? 'the reconciler has not reached the proxy yet' : undefined),
    summary,
  });
  const server = http.createServer(app.callback());
  limitConnections(server, config.httpLimits, (what) =>
    summary.warn({ what, limit: config.httpLimits.maxConnections }, 'control connection closed by the limits'),
  );
  await listen(server, { port: config.controlPort, host: config.controlBindHost });
  const { port } = server.address() as AddressInfo;
  const controlUrl = `http://${config.controlBindHost ?? 'localhost'}:${port}`;
  logger.info({ controlUrl, namespace: cluster.namespace, identity: cluster.identity }, 'operator ready');

  return {
    controlUrl,
    async stop() {
      tokensFile?.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      stopReconciling();
      await transition;
      await elector.stop();
      summary.close();
      informer.stop();
      store.close();
      await Promise.all(proxyAdmins.map((pod) => pod.view.stop()));
      for (const { admin } of proxyAdmins) admin.close();
      serviceHosts?.stop();
    },
  };
}

async function main(): Promise<void> {
  const logger = createLogger('cccp-operator');
  let running: RunningOperator | undefined;
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  try {
    running = await startOperator(process.env, logger);
  } catch (err) {
    logger.fatal({ err }, 'operator failed to start');
    process.exit(1);
  }
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
}

if (isEntryPoint(import.meta.url)) await main();
