// Records Kubernetes Events on ProxySessions (device and client connects and
// disconnects, refusals, the end). Best effort and bounded: Events are for
// people reading `kubectl describe`, so a burst beyond the rate limit is
// dropped (and counted) rather than queued without end.
import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import { RateLimiter } from '../../common/rate-limiter.ts';
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

/** Where Events go: the Kubernetes API, or a test's list. */
export type EventSink = (body: CoreV1Event) => Promise<unknown>;

export interface EventRecorderOptions {
  perSecond?: number;
  clock?: Clock;
}

export class EventRecorder {
  private readonly limiter: RateLimiter;
  private readonly clock: Clock;
  dropped = 0;

  constructor(
    private readonly sink: EventSink,
    private readonly namespace: string,
    private readonly logger: Logger,
    options: EventRecorderOptions = {},
  ) {
    this.limiter = new RateLimiter(options.perSecond ?? 20);
    this.clock = options.clock ?? systemClock;
  }

  /** Records into the namespace's Events through the Kubernetes API. */
  static forCluster(kubeConfig: KubeConfig, namespace: string, logger: Logger, options: EventRecorderOptions = {}): EventRecorder {
    const api = kubeConfig.makeApiClient(CoreV1Api);
    return new EventRecorder((body) => api.createNamespacedEvent({ namespace, body }), namespace, logger, options);
  }

  record(target: EventTarget, event: RecordedEvent): void {
    if (this.limiter.take(this.clock.now()) > 0) {
      this.dropped++;
      return;
    }
    const now = new Date(this.clock.now());
    void this.sink({
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
    }).catch((err) => this.logger.debug({ err: toKubeError(err).message, reason: event.reason }, 'could not record event'));
  }
}
