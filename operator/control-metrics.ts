// Prometheus metrics of the Control API, in its own Registry so that nothing
// else in the process (the proxy pod in standalone mode) mixes in.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SESSION_PHASES, type SessionStore } from './session-store.ts';

export class ControlMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'code'>;
  readonly duration: Histogram<'route' | 'code'>;

  constructor(store: SessionStore) {
    this.requests = new Counter({
      name: 'cccp_control_requests_total',
      help: 'Control API requests by route and HTTP status code',
      labelNames: ['route', 'code'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'cccp_control_request_duration_seconds',
      help: 'Control API request duration by route and HTTP status code (a 503 /on answers at once, a 200 waits for the port)',
      labelNames: ['route', 'code'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    new Gauge({
      name: 'cccp_sessions',
      help: 'Proxy sessions by phase (deleting sessions are counted apart)',
      labelNames: ['phase'],
      registers: [this.registry],
      async collect() {
        const counts = new Map<string, number>([...SESSION_PHASES, 'Deleting', 'New'].map((p) => [p, 0]));
        for (const session of await store.list()) {
          const phase = session.deleting ? 'Deleting' : (session.status.phase ?? 'New');
          counts.set(phase, (counts.get(phase) ?? 0) + 1);
        }
        for (const [phase, count] of counts) this.set({ phase }, count);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
