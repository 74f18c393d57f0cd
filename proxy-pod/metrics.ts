// Prometheus metrics of one proxy pod, in a registry of its own so that
// several pods (tests, the standalone mode) can live in one process.
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly sessions = new Gauge({ name: 'cccp_proxy_sessions', help: 'Sessions listening on a port', registers: [this.registry] });
  readonly pendingDevices = new Gauge({
    name: 'cccp_proxy_pending_devices',
    help: 'Registered devices waiting for their session',
    registers: [this.registry],
  });
  readonly unregisteredConnections = new Gauge({
    name: 'cccp_proxy_unregistered_connections',
    help: 'Device-port connections that have not sent their serial yet',
    registers: [this.registry],
  });
  readonly connections = new Counter({
    name: 'cccp_proxy_connections_total',
    help: 'Accepted connections by side',
    labelNames: ['side'] as const,
    registers: [this.registry],
  });
  readonly connected = new Gauge({
    name: 'cccp_proxy_connected',
    help: 'Parties attached to a session by side',
    labelNames: ['side'] as const,
    registers: [this.registry],
  });
  readonly forwardedBytes = new Counter({
    name: 'cccp_proxy_forwarded_bytes_total',
    help: 'Payload bytes forwarded, by the side that sent them',
    labelNames: ['from'] as const,
    registers: [this.registry],
  });
  readonly droppedBytes = new Counter({
    name: 'cccp_proxy_dropped_bytes_total',
    help: 'Payload bytes discarded because the other party was absent, by the side that sent them',
    labelNames: ['from'] as const,
    registers: [this.registry],
  });
  readonly registrationsRejected = new Counter({
    name: 'cccp_proxy_registrations_rejected_total',
    help: 'Device connections closed before registering, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly registrations = new Counter({
    name: 'cccp_proxy_registrations_total',
    help: 'Device connections that sent a valid serial',
    registers: [this.registry],
  });
  readonly clientsRefused = new Counter({
    name: 'cccp_proxy_clients_refused_total',
    help: 'Client connections refused by a session whitelist',
    registers: [this.registry],
  });
  readonly proxyHeadersRefused = new Counter({
    name: 'cccp_proxy_protocol_refused_total',
    help: 'Connections closed for want of a valid PROXY protocol header, by listener (device, session) and reason',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });
  readonly sessionsEnded = new Counter({
    name: 'cccp_proxy_sessions_ended_total',
    help: 'Sessions ended, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Byte counters bound to their side once, so the per-chunk path does no label lookup. */
  readonly bytesFrom = {
    device: { forwarded: this.forwardedBytes.labels('device'), dropped: this.droppedBytes.labels('device') },
    client: { forwarded: this.forwardedBytes.labels('client'), dropped: this.droppedBytes.labels('client') },
  };

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
