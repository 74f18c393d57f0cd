// Entry point of the proxy pod process. Started by the standalone mode as its
// child (with an IPC channel), it reports readiness over that channel and
// stops when the channel closes, so it never outlives its parent.
import { isEntryPoint } from '../common/entry-point.ts';
import { createLogger } from '../common/log.ts';
import type { ProxyProcessMessage } from '../common/proxy-process-messages.ts';
import { proxyOptionsFromEnv } from './config.ts';
import { HealthServer } from './health-server.ts';
import { ProxyPod } from './proxy-pod.ts';

async function main(): Promise<void> {
  const logger = createLogger('proxy-pod');
  try {
    const config = proxyOptionsFromEnv(process.env);
    const pod = await ProxyPod.start({ ...config, logger });
    const health = config.healthPort ? new HealthServer(pod.metrics.registry, config.httpLimits) : undefined;
    const healthPort = await health?.listen(config.healthPort, config.bindHost);
    logger.info({ devicePort: pod.devicePort, admin: pod.adminAddress, healthPort, instanceId: pod.instanceId }, 'proxy pod ready');

    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      await Promise.allSettled([health?.close(), pod.stop()]);
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    if (process.send) {
      process.on('disconnect', () => void stop('parent gone'));
      process.send({ type: 'ready', devicePort: pod.devicePort, adminAddress: pod.adminAddress } satisfies ProxyProcessMessage);
    }
  } catch (err) {
    logger.fatal({ err }, 'proxy pod failed to start');
    process.exit(1);
  }
}

if (isEntryPoint(import.meta.url)) await main();
