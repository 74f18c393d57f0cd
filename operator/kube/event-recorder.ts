// Records Kubernetes Events on ProxySessions (device and client connects and
// disconnects, refusals, the end). Best effort and bounded: Events are for
// people reading `kubectl describe`, so a burst beyond the rate limit is
// dropped (and counted) rather than queued without end.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../proxy-pod/log.ts';
import { API_VERSION, KIND, toKubeError } from './proxysession-client.ts';

export interface EventTarget {
  name: string;
  uid: string;
}

export interface RecordedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export class EventRecorder {
  private readonly api: CoreV1Api;
  private tokens: number;
  private lastRefill = Date.now();
  dropped = 0;

  constructor(kubeConfig: KubeConfig, private readonly namespace: string, private readonly logger: Logger, private readonly perSecond = 20) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
    this.tokens = perSecond;
  }

  record(target: EventTarget, event: RecordedEvent): void {
    if (!this.take()) {
      this.dropped++;
      return;
    }
    const now = new Date();
    void this.api
      .createNamespacedEvent({
        namespace: this.namespace,
        body: {
          metadata: { generateName: `${target.name}.`, namespace: this.namespace },
          involvedObject: { apiVersion: API_VERSION, kind: KIND, name: target.name, namespace: this.namespace, uid: target.uid },
          type: event.type,
          reason: event.reason,
          message: event.message,
          source: { component: 'cccp-operator' },
          reportingComponent: 'cccp-operator',
          reportingInstance: process.env.HOSTNAME ?? 'cccp-operator',
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      })
      .catch((err) => this.logger.debug({ err: toKubeError(err).message, reason: event.reason }, 'could not record event'));
  }

  private take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.lastRefill) / 1000) * this.perSecond);
    this.lastRefill = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
