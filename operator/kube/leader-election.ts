// Leader election on a coordination.k8s.io Lease: every operator replica
// serves the Control API, one reconciles. The holder renews the lease every
// `renewEveryMs`; a replica takes it over once `leaseDurationSeconds` passed
// without a renewal. Writes carry the resourceVersion they read, so two
// replicas cannot both win the same round.
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import { toKubeError } from './proxysession-client.ts';

/** The three Lease calls the election makes. */
export type LeaseApi = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewEveryMs?: number;
  logger: Logger;
  onStartedLeading(): void;
  /** Called when a held lease could not be renewed in time; the process should stop reconciling at once. */
  onStoppedLeading(): void;
  clock?: Clock;
}

export class LeaderElector {
  private readonly durationS: number;
  private readonly renewEveryMs: number;
  private readonly clock: Clock;
  private timer: unknown;
  private leading = false;
  private lastRenewed = 0;
  /** When the API server last answered a Lease round trip (won or not). */
  private lastApiContact = Number.NEGATIVE_INFINITY;
  private stopped = false;
  /** The other holder's renewTime as we last saw it, and when we saw it change (our clock). */
  private observed: { holder: string; renewTime: string; seenAt: number } | undefined;

  constructor(
    private readonly api: LeaseApi,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.durationS = opts.leaseDurationSeconds ?? 15;
    this.renewEveryMs = opts.renewEveryMs ?? Math.floor((this.durationS * 1000) / 3);
  }

  static forCluster(kubeConfig: KubeConfig, opts: LeaderElectionOptions): LeaderElector {
    return new LeaderElector(kubeConfig.makeApiClient(CoordinationV1Api), opts);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The API server answered a Lease round trip within one lease duration. */
  apiServerReachable(): boolean {
    return this.clock.now() - this.lastApiContact <= this.durationS * 1000;
  }

  start(): void {
    void this.tick();
  }

  /** Stops campaigning; a leader gives the lease up so another can take it at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    if (this.leading) {
      this.leading = false;
      await this.release().catch((err) => this.opts.logger.warn({ err: toKubeError(err).message }, 'could not release the lease'));
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const won = await this.tryAcquireOrRenew();
      this.lastApiContact = this.clock.now();
      if (won) this.lastRenewed = this.clock.now();
      if (won && !this.leading) {
        this.leading = true;
        this.opts.logger.info({ identity: this.opts.identity, lease: this.opts.leaseName }, 'became leader');
        this.opts.onStartedLeading();
      }
      if (!won && this.leading) this.lose('another replica holds the lease');
    } catch (err) {
      this.opts.logger.warn({ err: toKubeError(err).message }, 'lease update failed');
    }
    // A leader that could not renew within the lease time must assume another took over.
    if (this.leading && this.clock.now() - this.lastRenewed > this.durationS * 1000) this.lose('lease not renewed in time');
    if (!this.stopped)
      this.timer = this.clock.setTimeout(() => void this.tick(), this.leading ? this.renewEveryMs : Math.min(this.renewEveryMs, 2000), {
        keepAlive: true,
      });
  }

  private lose(why: string): void {
    this.leading = false;
    this.opts.logger.warn({ identity: this.opts.identity, why }, 'stopped leading');
    this.opts.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName: name, identity } = this.opts;
    const now = new V1MicroTime(this.clock.now());
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (toKubeError(err).status !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: this.durationS, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    if (holder && holder !== identity && !this.expired(holder, spec.renewTime, spec.leaseDurationSeconds ?? this.durationS)) return false;
    const takingOver = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.durationS,
      renewTime: now,
      ...(takingOver ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      // resourceVersion in metadata makes this a compare-and-swap.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (toKubeError(err).conflict) return false;
      throw err;
    }
  }

  /**
   * Judged on our own clock, not the holder's: the lease is expired when its
   * renewTime has not changed for a whole lease duration since we first saw it.
   */
  private expired(holder: string, renewTime: Date | undefined, durationS: number): boolean {
    const stamp = renewTime ? new Date(renewTime).toISOString() : '';
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== stamp) {
      this.observed = { holder, renewTime: stamp, seenAt: this.clock.now() };
    }
    return this.clock.now() - this.observed.seenAt > durationS * 1000;
  }

  private async release(): Promise<void> {
    const { namespace, leaseName: name, identity } = this.opts;
    const lease = await this.api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    lease.spec = { ...lease.spec, holderIdentity: '', renewTime: new V1MicroTime(this.clock.now()) };
    await this.api.replaceNamespacedLease({ name, namespace, body: lease });
  }
}
