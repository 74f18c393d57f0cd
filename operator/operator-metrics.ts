// Prometheus metrics of the operator's own work: leader election, the session
// port range, reachability of the API server and the proxy, reconciles and
// status writes. Registered beside the Control API's (one /metrics). The
// gauges read the state they describe when scraped; the counters are
// updated by the reconciler (observeReconcile) and the store wrapper.
import { performance } from 'node:perf_hooks';
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from 'prom-client';
import type { ProxySession, ProxySessionStatus, SessionStore } from './session-store.ts';

/** What the metrics read from a running reconciler. */
export interface ReconcilerView {
  podStates(): Array<{ name: string; reachable: boolean; allocated: number; quarantined: number; size: number }>;
}

export interface OperatorState {
  /** True while this replica reconciles (holds the Lease; always in the standalone mode). */
  leading(): boolean;
  /** The running reconciler; undefined on a replica that does not lead. */
  reconciler(): ReconcilerView | undefined;
  /** Whether the API server answered lately; absent in the standalone mode (no API server). */
  apiServerReachable?(): boolean;
}

export type ReconcileResult = 'success' | 'error';

export class OperatorMetrics {
  private readonly reconciles: Counter<'result'>;
  private readonly reconcileDuration: Histogram;
  private readonly statusWrites: Counter<'result'>;

  constructor(registry: Registry, state: OperatorState, options: { processMetrics?: boolean } = {}) {
    const registers = [registry];
    if (options.processMetrics) collectDefaultMetrics({ register: registry });
    new Gauge({
      name: 'cccp_operator_leader',
      help: '1 while this replica holds the Lease and reconciles, else 0',
      registers,
      collect() {
        this.set(state.leading() ? 1 : 0);
      },
    });
    // Only the leader knows the allocations; other replicas export no port series.
    new Gauge({
      name: 'cccp_operator_ports',
      help: 'Session ports of the range by state: allocated to a session, quarantined (another process held it), free',
      labelNames: ['state'] as const,
      registers,
      collect() {
        this.reset();
        const pods = state.reconciler()?.podStates();
        if (!pods) return;
        let allocated = 0;
        let quarantined = 0;
        let size = 0;
        for (const pod of pods) {
          allocated += pod.allocated;
          quarantined += pod.quarantined;
          size += pod.size;
        }
        this.set({ state: 'allocated' }, allocated);
        this.set({ state: 'quarantined' }, quarantined);
        this.set({ state: 'free' }, Math.max(0, size - allocated - quarantined));
      },
    });
    new LeaderOnlyGauge(state, {
      name: 'cccp_operator_proxy_reachable',
      help: '1 while every proxy pod answered the reconciler lately (admin API), else 0; exported by the leader only',
      registers,
      collect() {
        const pods = state.reconciler()?.podStates();
        if (pods) this.set(pods.every((pod) => pod.reachable) ? 1 : 0);
      },
    });
    if (state.apiServerReachable) {
      const reachable = state.apiServerReachable.bind(state);
      new Gauge({
        name: 'cccp_operator_apiserver_reachable',
        help: '1 while the Kubernetes API server answered this replica lately (its Lease round trips), else 0',
        registers,
        collect() {
          this.set(reachable() ? 1 : 0);
        },
      });
    }
    this.reconciles = new Counter({
      name: 'cccp_operator_reconciles_total',
      help: 'Reconciles of one session by result (an error is retried with backoff)',
      labelNames: ['result'] as const,
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'cccp_operator_reconcile_duration_seconds',
      help: 'Duration of one session reconcile',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.statusWrites = new Counter({
      name: 'cccp_operator_status_writes_total',
      help: 'ProxySession status writes by result: written, gone (the session was deleted or replaced meanwhile), error',
      labelNames: ['result'] as const,
      registers,
    });
    // Every result from the start, so rates and alerts see 0 rather than nothing.
    for (const result of ['success', 'error'] as const) this.reconciles.inc({ result }, 0);
    for (const result of ['written', 'gone', 'error'] as const) this.statusWrites.inc({ result }, 0);
  }

  readonly observeReconcile = (seconds: number, result: ReconcileResult): void => {
    this.reconciles.inc({ result });
    this.reconcileDuration.observe(seconds);
  };

  /** The store with every status write counted by result; other calls pass through. */
  countStatusWrites(store: SessionStore): SessionStore {
    const statusWrites = this.statusWrites;
    const telemetry = store.writeTelemetry?.bind(store);
    const duplicatesOf = store.duplicatesOf?.bind(store);
    return {
      ...(telemetry ? { writeTelemetry: telemetry } : {}),
      ...(duplicatesOf ? { duplicatesOf } : {}),
      get: (serial) => store.get(serial),
      list: () => store.list(),
      apply: (spec) => store.apply(spec),
      delete: (serial, uid) => store.delete(serial, uid),
      setFinalizer: (serial, uid, present) => store.setFinalizer(serial, uid, present),
      subscribe: (listener) => store.subscribe(listener),
      async writeStatus(serial: string, uid: string, status: ProxySessionStatus): Promise<ProxySession | undefined> {
        try {
          const written = await store.writeStatus(serial, uid, status);
          statusWrites.inc({ result: written ? 'written' : 'gone' });
          return written;
        } catch (error) {
          statusWrites.inc({ result: 'error' });
          throw error;
        }
      },
    };
  }
}

/**
 * A gauge without labels that only the leader exports: prom-client always
 * reports an unlabelled gauge (0 by default), and a 0 from a replica that
 * does not reconcile would read as "unreachable".
 */
class LeaderOnlyGauge extends Gauge {
  constructor(
    private readonly state: OperatorState,
    configuration: ConstructorParameters<typeof Gauge>[0],
  ) {
    super(configuration);
  }

  override async get(): ReturnType<Gauge['get']> {
    const metric = await super.get();
    return this.state.reconciler() ? metric : { ...metric, values: [] };
  }
}

/** Times a reconcile handler for observeReconcile. */
export function timedReconcile<T>(
  run: () => Promise<T>,
  observe: ((seconds: number, result: ReconcileResult) => void) | undefined,
): Promise<T> {
  if (!observe) return run();
  const started = performance.now();
  return run().then(
    (value) => {
      observe((performance.now() - started) / 1000, 'success');
      return value;
    },
    (error: unknown) => {
      observe((performance.now() - started) / 1000, 'error');
      throw error;
    },
  );
}
