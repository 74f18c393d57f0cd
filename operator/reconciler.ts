// Level-based reconciler: a session's sync re-reads the stored session and
// the proxy's state from the ProxyView (never from the proxy itself), and
// converges them in small guarded steps: allocate a port, program the
// proxy, report the proxy's state into status. It is the only writer of port
// allocations (status.port) and of status.
//
// Triggers only say "look at this serial": store changes other than its own
// writes, what the ProxyView reports the reconciler must act on (a session
// ended, vanished, or runs another spec), a new proxy instance, and a
// periodic resync of the live sessions. Telemetry (connections, counters,
// activity) only queues the report step, never a sync; counter-only writes
// are rate-limited. Payloads of triggers are never trusted.
import type { ProxyEvent, SessionState } from '../common/admin-protocol.ts';
import { type Clock, systemClock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import { RateLimiter } from '../common/rate-limiter.ts';
import { type ReconcileResult, timedReconcile } from './operator-metrics.ts';
import type { PortAllocator } from './port-allocator.ts';
import { AdminApiError, type ProxyAdmin } from './proxy-admin-client.ts';
import { ProxyView } from './proxy-view.ts';
import {
  activeStatus,
  desiredProxySpec,
  endedStatus,
  failedStatus,
  liveStatus,
  pendingStatus,
  proxyMatches,
  sameBesidesTraffic,
  sameStatus,
} from './session-status.ts';
import {
  isLive,
  isTerminal,
  type ProxySession,
  type ProxySessionStatus,
  type SessionLimitDefaults,
  type SessionStore,
} from './session-store.ts';
import { WorkQueue, type WorkResult } from './work-queue.ts';

export interface ReconcilerOptions {
  store: SessionStore;
  admin: ProxyAdmin;
  allocator: PortAllocator;
  /** The host that /on answers (CCCP_PUBLIC_HOST). */
  publicHost: string;
  logger: Logger;
  /** How often the proxy's change feed is read (counters reach status about this late). */
  pollIntervalMs?: number;
  /** How often every live session is synced regardless of triggers. */
  resyncIntervalMs?: number;
  /** How long Ended and Failed sessions stay visible before they are deleted. */
  endedRetentionMs?: number;
  /** The proxy counts as reachable while its last answer is younger than this. */
  proxyStaleAfterMs?: number;
  concurrency?: number;
  /**
   * Status writes per second that only update the byte counter, over all
   * sessions (the API server's write load under steady traffic); unlimited
   * when absent.
   */
  counterFlushesPerSecond?: number;
  /** Lifetime limits for sessions that ask for none. */
  limitDefaults?: SessionLimitDefaults;
  /** Sees every proxy event (e.g. to record Kubernetes Events); never changes what is reconciled. */
  onProxyEvent?: (event: ProxyEvent) => void;
  /** Told the duration and result of every sync (metrics); reports are not syncs. */
  observeReconcile?: (seconds: number, result: ReconcileResult) => void;
  clock?: Clock;
  now?: () => Date;
}

/** How long a sync waits for the first listing of the proxy before it fails (and is retried with backoff). */
const SYNC_WAIT_FOR_PROXY_MS = 5_000;

/** What of a stored session triggers a sync: not status, which is the reconciler's own writing. */
function fingerprint(s: ProxySession): string {
  return `${s.uid}/${s.generation}/${s.deleting}/${s.hasFinalizer}/${s.status.phase ?? ''}`;
}

export class Reconciler {
  private readonly store: SessionStore;
  readonly view: ProxyView;
  readonly allocator: PortAllocator;
  private readonly publicHost: string;
  private readonly logger: Logger;
  private readonly resyncIntervalMs: number;
  private readonly endedRetentionMs: number;
  private readonly clock: Clock;
  private readonly now: () => Date;
  private readonly onProxyEvent: ((event: ProxyEvent) => void) | undefined;
  private readonly counterFlush: RateLimiter;
  private readonly limitDefaults: SessionLimitDefaults;
  private readonly observeReconcile: ReconcilerOptions['observeReconcile'];
  readonly queue: WorkQueue<string>;
  /** Serials whose next run is a full sync; a queued serial not in here only reports. */
  private readonly needsSync = new Set<string>();
  /** Per serial, the fingerprint last seen or written by us: our own writes trigger nothing. */
  private readonly seen = new Map<string, string>();
  private synced = false;
  private stopped = false;
  private resyncHandle: unknown;
  private unsubscribe: (() => void) | undefined;

  constructor(options: ReconcilerOptions) {
    this.store = options.store;
    this.allocator = options.allocator;
    this.publicHost = options.publicHost;
    this.logger = options.logger;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 30_000;
    this.endedRetentionMs = options.endedRetentionMs ?? 300_000;
    this.clock = options.clock ?? systemClock;
    this.onProxyEvent = options.onProxyEvent;
    this.limitDefaults = options.limitDefaults ?? {};
    this.counterFlush = new RateLimiter(options.counterFlushesPerSecond ?? Number.POSITIVE_INFINITY);
    this.now = options.now ?? (() => new Date(this.clock.now()));
    this.observeReconcile = options.observeReconcile;
    this.view = new ProxyView({
      admin: options.admin,
      logger: this.logger,
      pollIntervalMs: options.pollIntervalMs,
      staleAfterMs: options.proxyStaleAfterMs,
      clock: this.clock,
    });
    this.queue = new WorkQueue((serial) => this.run(serial), {
      concurrency: options.concurrency ?? 4,
      clock: this.clock,
      onError: (serial, error, retryInMs) => this.logger.warn({ serial, err: error, retryInMs }, 'reconcile failed; retrying'),
    });
  }

  /** Rebuilds the port table from the store, then starts watching the store and the proxy. */
  async start(): Promise<void> {
    const stored = await this.store.list();
    for (const session of stored) {
      const port = session.status.port;
      if (port === undefined || isTerminal(session)) continue;
      if (!this.allocator.reserve(port, session.serial)) {
        this.logger.warn({ serial: session.serial, port }, 'stored port is outside the range or taken; the session gets a new one');
      }
    }
    this.unsubscribe = this.store.subscribe((change) => {
      if (change.type === 'removed') {
        this.seen.delete(change.serial);
        this.sync(change.serial);
        return;
      }
      const print = fingerprint(change.session);
      if (this.seen.get(change.session.serial) === print) return;
      this.seen.set(change.session.serial, print);
      this.sync(change.session.serial);
    });
    this.view.start({
      sessionChanged: (serial, current) => {
        // A session the proxy ended frees its port now, not when the queue reaches it.
        if (current?.state === 'ended' && this.allocator.ownerOf(current.port) === serial) this.allocator.release(current.port);
        this.sync(serial);
      },
      telemetry: (serial, state) => {
        // In-process stores take it at once; others (and a session not Active yet) get the report step.
        if (this.store.writeTelemetry?.(serial, state.id, state.port, liveStatus(state))) return;
        this.queue.addUnlessDelayed(serial);
      },
      restarted: () => void this.resyncLive().catch((error: unknown) => this.logger.warn({ err: error }, 'resync failed')),
      event: this.onProxyEvent,
    });
    // Ended and Failed sessions too, once, so their retention time is scheduled.
    for (const session of stored) this.sync(session.serial);
    this.synced = true;
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.resyncHandle !== undefined) this.clock.clearTimeout(this.resyncHandle);
    await this.view.stop();
    await this.queue.stop();
  }

  /** Ready once the port table is rebuilt and the proxy answered recently. */
  isReady(): boolean {
    return this.synced && this.view.reachable();
  }

  /** The proxy answered (its feed, a request or its event stream) within proxyStaleAfterMs. */
  proxyReachable(): boolean {
    return this.view.reachable();
  }

  /** Queues a full sync of one serial. */
  sync(serial: string): void {
    this.needsSync.add(serial);
    this.queue.add(serial);
  }

  /** Queues a sync of every live stored session and of every session the proxy runs. */
  async resyncLive(): Promise<void> {
    for (const session of await this.store.list()) if (isLive(session) || session.deleting) this.sync(session.serial);
    for (const serial of this.view.serials()) this.sync(serial);
  }

  // ---- the queue's work ----------------------------------------------------

  private async run(serial: string): Promise<WorkResult | void> {
    if (!this.needsSync.delete(serial)) return this.reportOnly(serial);
    try {
      const result = await timedReconcile(() => this.reconcile(serial), this.observeReconcile);
      if (result?.requeueAfterMs !== undefined) this.needsSync.add(serial);
      return result;
    } catch (error) {
      // The retry is a sync again.
      this.needsSync.add(serial);
      throw error;
    }
  }

  /** One session's sync: decide what the stored session and the proxy's state call for. */
  async reconcile(serial: string): Promise<WorkResult | void> {
    if (!(await this.view.whenSynced(SYNC_WAIT_FOR_PROXY_MS))) throw new Error('the proxy has not been listed yet');
    const session = await this.store.get(serial);
    const proxied = this.view.get(serial);

    if (!session) return this.removeOrphan(serial, proxied);
    if (session.deleting) return this.finishDeletion(session, proxied);
    if (session.status.phase === 'Ended' || (session.status.phase === 'Failed' && !this.failedSpecChanged(session))) {
      return this.settleTerminal(session, proxied);
    }
    if (!session.hasFinalizer) {
      await this.setFinalizer(session, true);
      return { requeueAfterMs: 0 };
    }
    if (proxied && proxied.id === session.uid && proxied.state === 'ended') return this.markEnded(session, proxied);

    const allocated = await this.allocate(session);
    if (!allocated) return;
    const programmed = await this.program(allocated.session, allocated.port, proxied);
    if (programmed === 'retry') return { requeueAfterMs: 0 };
    if (!programmed) return;
    // Programmed and at once over (a lifetime already past): never show it Active.
    if (programmed.id === session.uid && programmed.state === 'ended') return this.markEnded(allocated.session, programmed);
    return this.report(allocated.session, allocated.port, programmed);
  }

  /** Telemetry moved: write it into status, unless the session is not (or no longer) Active on this port. */
  private async reportOnly(serial: string): Promise<WorkResult | void> {
    const session = await this.store.get(serial);
    const state = this.view.get(serial);
    const port = session?.status.port;
    if (!session || !state || session.deleting || session.status.phase !== 'Active' || port === undefined) return;
    if (state.id !== session.uid || state.port !== port || state.state !== 'listening') return;
    return this.report(session, port, state);
  }

  // ---- steps ---------------------------------------------------------------

  /** Step 1: the session's port, allocated and written durably before the proxy is told; undefined when it failed or vanished. */
  async allocate(session: ProxySession): Promise<{ session: ProxySession; port: number } | undefined> {
    const serial = session.serial;
    const owned = this.ownedPort(session);
    if (owned !== undefined) return { session, port: owned };
    const port = this.allocator.allocate(serial);
    if (port === undefined) {
      await this.writeStatus(session, failedStatus(session, 'NoAvailablePorts', 'No available ports', this.now()));
      this.logger.warn({ serial, range: `${this.allocator.min}-${this.allocator.max}` }, 'no available ports');
      return undefined;
    }
    // Durable before the proxy is told, so a restart cannot hand the port out twice.
    const written = await this.writeStatus(session, pendingStatus(session, this.publicHost, port, this.now()));
    if (!written) {
      this.allocator.release(port);
      return undefined;
    }
    return { session: written, port };
  }

  /**
   * Step 2: the proxy runs the session's spec on its port. The state it
   * runs, 'retry' when the port had to be given up (it is quarantined and
   * the next sync allocates another), undefined when there is nothing to run.
   */
  async program(session: ProxySession, port: number, proxied: SessionState | undefined): Promise<SessionState | 'retry' | undefined> {
    const serial = session.serial;
    const desired = desiredProxySpec(session, port, this.limitDefaults);
    if (proxyMatches(proxied, desired)) return proxied;
    // The proxy refuses to move a live session to another port: close it first.
    if (proxied && proxied.id === session.uid && proxied.state === 'listening' && proxied.port !== port) {
      await this.view.delete(serial);
    }
    try {
      const state = await this.view.put(serial, desired);
      this.logger.info({ serial, port, generation: session.generation }, 'proxy programmed');
      return state;
    } catch (error) {
      if (!(error instanceof AdminApiError && error.code === 'port_unavailable')) throw error;
      this.allocator.quarantine(port);
      this.logger.warn({ serial, port, err: error }, 'port cannot be bound; quarantined, allocating another');
      const { port: _dropped, ...rest } = session.status;
      await this.writeStatus(session, { ...rest, phase: 'Pending' });
      return 'retry';
    }
  }

  /**
   * Step 3: status says what the proxy runs. Connects, disconnects and phase
   * changes are written at once; a write that only moves counters waits its
   * turn under the flush rate.
   */
  async report(session: ProxySession, port: number, state: SessionState): Promise<WorkResult | void> {
    const next: ProxySessionStatus = activeStatus(session, this.publicHost, port, state, this.now());
    if (sameStatus(next, session.status)) return;
    if (sameBesidesTraffic(next, session.status)) {
      const waitMs = this.counterFlush.take(this.clock.now());
      if (waitMs > 0) return { requeueAfterMs: waitMs };
    }
    await this.writeStatus(session, next);
  }

  // ---- endings ---------------------------------------------------------------

  /** The proxy runs a session nobody wants (e.g. its record was removed). */
  private async removeOrphan(serial: string, proxied: SessionState | undefined): Promise<void> {
    if (proxied) {
      await this.view.delete(serial);
      this.logger.info({ serial, port: proxied.port }, 'removed a session the store does not hold');
    }
    this.allocator.releaseOwner(serial);
  }

  /** /off or a deleted resource: close the session in the proxy, free the port, let the record go. */
  private async finishDeletion(session: ProxySession, proxied: SessionState | undefined): Promise<void> {
    if (proxied) await this.view.delete(session.serial);
    this.releasePortOf(session);
    if (session.hasFinalizer) await this.setFinalizer(session, false);
    this.logger.info({ serial: session.serial, port: session.status.port }, 'session deleted');
  }

  /** Ended or Failed: nothing may run or stay allocated; the record goes after the retention time. */
  private async settleTerminal(session: ProxySession, proxied: SessionState | undefined): Promise<WorkResult | void> {
    if (proxied) await this.view.delete(session.serial);
    this.releasePortOf(session);
    if (session.hasFinalizer) await this.setFinalizer(session, false);
    const endedAt = Date.parse(session.status.endedAt ?? '');
    const age = Number.isNaN(endedAt) ? 0 : this.now().getTime() - endedAt;
    if (age >= this.endedRetentionMs) {
      await this.store.delete(session.serial, session.uid);
      return;
    }
    return { requeueAfterMs: this.endedRetentionMs - age };
  }

  /** The proxy reports the session over (timeout, a party left a non-persistent session). */
  private async markEnded(session: ProxySession, proxied: SessionState): Promise<WorkResult | void> {
    const reason = proxied.endedReason ?? 'Deleted';
    const written = await this.writeStatus(session, endedStatus(session, reason, proxied, this.now()));
    this.releasePortOf(session);
    await this.view.delete(session.serial);
    this.logger.info({ serial: session.serial, port: session.status.port, reason }, 'session ended');
    if (!written) return;
    return this.settleTerminal(written, undefined);
  }

  // ---- helpers -------------------------------------------------------------

  /** Writes status, remembering that the change it causes is our own. */
  private writeStatus(session: ProxySession, status: ProxySessionStatus): Promise<ProxySession | undefined> {
    this.seen.set(session.serial, fingerprint({ ...session, status }));
    return this.store.writeStatus(session.serial, session.uid, status);
  }

  private setFinalizer(session: ProxySession, present: boolean): Promise<ProxySession | undefined> {
    this.seen.set(session.serial, fingerprint({ ...session, hasFinalizer: present }));
    return this.store.setFinalizer(session.serial, session.uid, present);
  }

  /** The stored port if this session still holds it in the allocator (re-reserving it if needed). */
  private ownedPort(session: ProxySession): number | undefined {
    const port = session.status.port;
    if (port === undefined) return undefined;
    if (this.allocator.ownerOf(port) === session.serial) return port;
    return this.allocator.reserve(port, session.serial) ? port : undefined;
  }

  private releasePortOf(session: ProxySession): void {
    const port = session.status.port;
    if (port !== undefined && this.allocator.ownerOf(port) === session.serial) this.allocator.release(port);
  }

  /** A Failed session whose spec changed since (e.g. by kubectl apply) is tried again. */
  private failedSpecChanged(session: ProxySession): boolean {
    return session.generation > (session.status.observedGeneration ?? 0);
  }

  private scheduleResync(): void {
    if (this.stopped) return;
    this.resyncHandle = this.clock.setTimeout(() => {
      void this.resyncLive()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'resync failed'))
        .finally(() => this.scheduleResync());
    }, this.resyncIntervalMs);
  }
}
