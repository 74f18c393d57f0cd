// `release-cleanup`: run by the chart's pre-delete hook before `helm uninstall`
// removes the operator. It deletes every ProxySession of the namespace while
// the operator still runs, so each session ends the normal way (connections
// closed, finalizer removed by the reconciler). Whatever still carries the
// finalizer after CCCP_CLEANUP_WAIT_S (an operator that is down or broken)
// has it removed here: once the release is gone, nothing else ever would, and
// the session (and a namespace deletion) would hang in Terminating forever.

import { readFileSync } from 'node:fs';
import { ConfigError, envInteger, envString } from '../common/env.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { KeepAliveKubeConfig } from './kube/kube-config.ts';
import { ProxySessionClient } from './kube/proxysession-client.ts';
import { SESSION_FINALIZER } from './session-store.ts';

const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface CleanupResult {
  deleted: number;
  /** Sessions whose finalizer this run removed because the operator did not. */
  released: number;
}

export async function cleanUpRelease(client: ProxySessionClient, waitMs: number, logger: Logger): Promise<CleanupResult> {
  const { items } = await client.list();
  for (const session of items) {
    if (!session.metadata.deletionTimestamp) await client.delete(session.metadata.name, session.metadata.uid);
  }
  logger.info({ sessions: items.length }, 'sessions deleted; waiting for the operator to end them');
  // Bounded: a poll every 500 ms until nothing is left or the wait is over.
  const deadline = Date.now() + waitMs;
  let left = (await client.list()).items;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    left = (await client.list()).items;
  }
  let released = 0;
  for (const session of left) {
    const finalizers = session.metadata.finalizers.filter((f) => f !== SESSION_FINALIZER);
    if (finalizers.length === session.metadata.finalizers.length) continue;
    try {
      await client.patchFinalizers(session.metadata.name, session.metadata.resourceVersion, finalizers);
      released++;
    } catch (err) {
      // Changed meanwhile (the operator got to it after all) or gone: the next pass decides.
      logger.warn({ err, name: session.metadata.name }, 'finalizer removal raced; retrying');
      const fresh = await client.get(session.metadata.name);
      if (fresh?.metadata.finalizers.includes(SESSION_FINALIZER)) {
        await client.patchFinalizers(
          fresh.metadata.name,
          fresh.metadata.resourceVersion,
          fresh.metadata.finalizers.filter((f) => f !== SESSION_FINALIZER),
        );
        released++;
      }
    }
  }
  if (released > 0) logger.warn({ released }, 'the operator did not end these sessions in time; their finalizer was removed');
  return { deleted: items.length, released };
}

function namespaceFromEnv(env: NodeJS.ProcessEnv): string {
  const namespace = envString(env, 'CCCP_NAMESPACE') ?? envString(env, 'POD_NAMESPACE');
  if (namespace) return namespace;
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim();
  } catch {
    throw new ConfigError('set CCCP_NAMESPACE or POD_NAMESPACE: the namespace whose sessions to clean up');
  }
}

async function main(): Promise<void> {
  const logger = createLogger('cccp-release-cleanup');
  try {
    const namespace = namespaceFromEnv(process.env);
    const waitMs = envInteger(process.env, 'CCCP_CLEANUP_WAIT_S', 30, 0, 600) * 1000;
    const kubeConfig = new KeepAliveKubeConfig();
    kubeConfig.loadFromDefault();
    const result = await cleanUpRelease(new ProxySessionClient(kubeConfig, namespace, 'cccp-release-cleanup'), waitMs, logger);
    logger.info({ namespace, ...result }, 'release cleanup done');
    process.exit(0);
  } catch (err) {
    logger.fatal({ err }, 'release cleanup failed');
    process.exit(1);
  }
}

await main();
