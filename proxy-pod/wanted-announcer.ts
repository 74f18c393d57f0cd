// Tells the other pods which sessions this pod has just created without a
// device, so that one holding a pending device for such a serial offers it
// here. Serials are batched per peer: while one connection to a peer is on
// its way, new serials for it wait and leave together in the next.
import net from 'node:net';
import type { Logger } from '../common/log.ts';
import type { PeerMetrics } from './peer-metrics.ts';
import { encodeRequest, type PeerContactOptions } from './peer-protocol.ts';

/** `answerTimeoutMs` here: time for a batch to be written and the peer to close after it. */
export interface WantedAnnouncerOptions extends PeerContactOptions {
  metrics: PeerMetrics;
  logger: Logger;
  /** Whether the peer took the batch: a sign of whether it is up. */
  onResult(ordinal: number, delivered: boolean): void;
}

export class WantedAnnouncer {
  private readonly queued = new Map<number, Set<string>>();
  private readonly sending = new Map<number, net.Socket>();
  private closed = false;

  constructor(private readonly opts: WantedAnnouncerOptions) {}

  announce(serial: string): void {
    if (this.closed) return;
    for (const ordinal of this.opts.peers) {
      const serials = this.queued.get(ordinal) ?? new Set<string>();
      serials.add(serial);
      this.queued.set(ordinal, serials);
      this.flush(ordinal);
    }
  }

  close(): void {
    this.closed = true;
    this.queued.clear();
    for (const socket of this.sending.values()) socket.destroy();
  }

  /**
   * A peer that is down loses its batch: it holds no pending device then,
   * and after its restart it announces its own sessions.
   */
  private flush(ordinal: number): void {
    const serials = this.queued.get(ordinal);
    const endpoint = this.opts.endpoint(ordinal);
    if (this.closed || this.sending.has(ordinal) || !serials || serials.size === 0 || !endpoint) return;
    this.queued.delete(ordinal);
    const socket = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    this.sending.set(ordinal, socket);
    let delivered = false;
    let timer = setTimeout(() => socket.destroy(), this.opts.connectTimeoutMs);
    socket.on('error', () => {});
    socket.once('connect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(), this.opts.answerTimeoutMs);
      socket.write(encodeRequest(this.opts.token, { kind: 'wanted', from: this.opts.ordinal }));
      socket.end(`${[...serials].join('\n')}\n`);
    });
    // The peer closes after it has read everything.
    socket.on('end', () => (delivered = true));
    socket.resume();
    socket.once('close', () => {
      clearTimeout(timer);
      this.sending.delete(ordinal);
      this.opts.metrics.notices.inc({ result: delivered ? 'delivered' : 'undelivered' }, serials.size);
      this.opts.onResult(ordinal, delivered);
      if (!delivered) this.opts.logger.debug({ peer: ordinal, serials: serials.size }, 'sessions not announced to a peer');
      this.flush(ordinal);
    });
  }
}
