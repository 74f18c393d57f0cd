// Metrics of the peer port and of device forwarding, in the pod's registry.
import { Counter, Gauge, type Registry } from 'prom-client';

export class PeerMetrics {
  readonly offers: Counter<'result'>;
  readonly offersReceived: Counter<'result'>;
  readonly relays: Gauge;
  readonly refused: Counter<'reason'>;
  readonly notices: Counter<'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.offers = new Counter({
      name: 'cccp_proxy_peer_offers_total',
      help: 'Devices offered to another proxy pod, by answer: accepted, declined, unreachable (no connection within the connect timeout), failed (no valid answer in time)',
      labelNames: ['result'] as const,
      registers,
    });
    this.offersReceived = new Counter({
      name: 'cccp_proxy_peer_offers_received_total',
      help: 'Devices other proxy pods offered to this one, by answer',
      labelNames: ['result'] as const,
      registers,
    });
    this.relays = new Gauge({
      name: 'cccp_proxy_peer_relays',
      help: 'Devices connected to this pod and relayed to their session on another pod',
      registers,
    });
    this.refused = new Counter({
      name: 'cccp_proxy_peer_refused_total',
      help: 'Peer-port connections closed before a valid request, by reason (bad-token, malformed, too-long, timeout, overload)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.notices = new Counter({
      name: 'cccp_proxy_peer_wanted_total',
      help: 'Serials of new sessions announced to another pod, by result (delivered, undelivered)',
      labelNames: ['result'] as const,
      registers,
    });
  }
}
