// Which peers answer. A peer that did not (no connection within the connect
// timeout, no answer in time) is skipped for a while, so that a pod that is
// down or hung costs the devices registering meanwhile nothing, instead of a
// timeout each. The serials it was skipped for are remembered: once it shows
// life again (an answer, a notice, or a probe after the pause), they are
// offered to it, so a device whose session is on a pod that was briefly
// unreachable is not left pending until it reconnects.
import type { Clock } from '../common/clock.ts';

export interface PeerAvailabilityOptions {
  clock: Clock;
  /** How long a peer that did not answer is skipped before it is probed again. */
  pauseMs: number;
  /** Serials remembered per peer at most; the oldest go first. */
  maxMissed: number;
  /**
   * Offers this pod's device of `serial`, if it still has one, to the peer;
   * true when an offer was started (or queued) for it.
   */
  offer(ordinal: number, serial: string): boolean;
}

export class PeerAvailability {
  private readonly pausedUntil = new Map<number, number>();
  private readonly missedSerials = new Map<number, Set<string>>();
  private readonly probes = new Map<number, unknown>();

  constructor(private readonly opts: PeerAvailabilityOptions) {}

  isPaused(ordinal: number): boolean {
    const until = this.pausedUntil.get(ordinal);
    return until !== undefined && this.opts.clock.now() < until;
  }

  /** The peer did not answer: skip it for the pause, then probe it. */
  failed(ordinal: number): void {
    this.pausedUntil.set(ordinal, this.opts.clock.now() + this.opts.pauseMs);
    this.scheduleProbe(ordinal);
  }

  /** A device of this serial was not offered to the peer, which was paused. */
  missed(ordinal: number, serial: string): void {
    const serials = this.missedSerials.get(ordinal) ?? new Set<string>();
    serials.delete(serial);
    serials.add(serial);
    if (serials.size > this.opts.maxMissed) {
      const oldest = serials.values().next().value;
      if (oldest !== undefined) serials.delete(oldest);
    }
    this.missedSerials.set(ordinal, serials);
    this.scheduleProbe(ordinal);
  }

  /** The peer answered or wrote: it is up, and what it missed is offered now. */
  alive(ordinal: number): void {
    this.pausedUntil.delete(ordinal);
    this.opts.clock.clearTimeout(this.probes.get(ordinal));
    this.probes.delete(ordinal);
    this.offerMissed(ordinal, false);
  }

  close(): void {
    for (const probe of this.probes.values()) this.opts.clock.clearTimeout(probe);
    this.probes.clear();
    this.missedSerials.clear();
  }

  private scheduleProbe(ordinal: number): void {
    if (this.probes.has(ordinal)) return;
    const probe = this.opts.clock.setTimeout(() => {
      this.probes.delete(ordinal);
      this.offerMissed(ordinal, true);
    }, this.opts.pauseMs);
    this.probes.set(ordinal, probe);
  }

  /**
   * With `probeOnly`, one offer goes out and the rest wait for its outcome
   * (alive or failed again): a peer still down then costs one connection
   * attempt per pause, not one per device.
   */
  private offerMissed(ordinal: number, probeOnly: boolean): void {
    const serials = this.missedSerials.get(ordinal);
    if (!serials) return;
    for (const serial of serials) {
      serials.delete(serial);
      if (this.opts.offer(ordinal, serial) && probeOnly) break;
    }
    if (serials.size === 0) this.missedSerials.delete(ordinal);
    // Should the probe not reach the peer after all (its device left), the rest are not forgotten.
    else if (probeOnly) this.scheduleProbe(ordinal);
  }
}
