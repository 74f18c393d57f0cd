// Prometheus metrics of one proxy pod, in a registry of its own so that
// several pods (tests, the standalone mode) can live in one process.
//
// Nothing here runs per chunk: the byte counters are computed at scrape time
// from the sessions' own counts. prom-client's default process metrics are
// not collected (their GC observer alone cost ~25 % CPU per GiB in bulk
// transfers); the few process figures worth having are read at scrape.
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';

/** Byte counts by the side that sent them. */
export interface ByteTotals {
  device: { forwarded: number; dropped: number };
  client: { forwarded: number; dropped: number };
}

export function emptyByteTotals(): ByteTotals {
  return { device: { forwarded: 0, dropped: 0 }, client: { forwarded: 0, dropped: 0 } };
}

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
  readonly forwardedBytes: Counter<'from'>;
  readonly droppedBytes: Counter<'from'>;
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

  private byteTotals: () => ByteTotals = emptyByteTotals;
  private loopDelay: IntervalHistogram | undefined;

  /** `withProcessMetrics`: resident memory and event-loop delay (off when several pods share a process). */
  constructor(withProcessMetrics = true) {
    const totals = () => this.byteTotals();
    this.forwardedBytes = new Counter({
      name: 'cccp_proxy_forwarded_bytes_total',
      help: 'Payload bytes forwarded, by the side that sent them',
      labelNames: ['from'] as const,
      registers: [this.registry],
      collect() {
        const { device, client } = totals();
        this.reset();
        this.inc({ from: 'device' }, device.forwarded);
        this.inc({ from: 'client' }, client.forwarded);
      },
    });
    this.droppedBytes = new Counter({
      name: 'cccp_proxy_dropped_bytes_total',
      help: 'Payload bytes discarded because the other party was absent, by the side that sent them',
      labelNames: ['from'] as const,
      registers: [this.registry],
      collect() {
        const { device, client } = totals();
        this.reset();
        this.inc({ from: 'device' }, device.dropped);
        this.inc({ from: 'client' }, client.dropped);
      },
    });
    if (withProcessMetrics) this.addProcessMetrics();
  }

  /** Where the byte counters come from: every byte the pod's sessions (live or gone) have counted. */
  countBytes(totals: () => ByteTotals): void {
    this.byteTotals = totals;
  }

  close(): void {
    this.loopDelay?.disable();
  }

  private addProcessMetrics(): void {
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    this.loopDelay = loopDelay;
    new Gauge({
      name: 'cccp_proxy_event_loop_delay_max_seconds',
      help: 'Largest event-loop delay since the previous scrape',
      registers: [this.registry],
      collect() {
        // Nanoseconds; reset so each scrape sees its own interval (the first
        // 10 ms tick after a reset only restarts the measurement).
        this.set(loopDelay.max / 1e9);
        loopDelay.reset();
      },
    });
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size in bytes',
      registers: [this.registry],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
  }
}
