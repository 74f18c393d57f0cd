// Level-based reconciler: reconcile(serial) re-reads the stored session and
// the proxy's current list, and converges them in small guarded steps. It is
// the only writer of port allocations (status.port) and of status.
//
// Triggers only say "look at this serial": store changes, proxy events, a
// poll that compares live counters with status (so /status is at most about
// one poll interval stale), a full resync when the proxy restarted, and a
// periodic full resync. Payloads of triggers are never trusted.
import type { InstanceInfo, ProxyEvent, SessionList, SessionLookup, SessionSpec, SessionState } from '../common/admin-protocol.ts';
import { type Clock, systemClock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import { RateLimiter } from '../common/rate-limiter.ts';
import { type ReconcileResult, timedReconcile } from './operator-metrics.ts';
import type { PortAllocator } from './port-allocator.ts';
import { AdminApiError, type EventStream, type ProxyAdmin } from './proxy-admin-client.ts';
import {
  activeStatus,
  desiredProxySpec,
  driftedSerials,
  endedStatus,
  failedStatus,
  pendingStatus,
  proxyMatches,
  sameBesidesTraffic,
  sameStatus,
} from './session-status.ts';
import { isTerminal, type ProxySession, type ProxySessionStatus, type SessionLimitDefaults, type SessionStore } from './session-store.ts';
import { WorkQueue, type WorkResult } from './work-queue.ts';

export interface ReconcilerOptions {
  store: SessionStore;
  admin: ProxyAdmin;
  allocator: PortAllocator;
  /** The host that /on answers (CCCP_PUBLIC_HOST). */
  publicHost: string;
  logger: Logger;
  /** How often live counters are compared with status. */
  pollIntervalMs?: number;
  /** How often every session is reconciled regardless of triggers. */
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
  /** Told the duration and result of every reconcile (metrics). */
  observeReconcile?: (seconds: number, result: ReconcileResult) => void;
  clock?: Clock;
  now?: () => Date;
}

export class Reconciler {
  private readonly store: SessionStore;
  private readonly admin: ProxyAdmin;
  readonly allocator: PortAllocator;
  private readonly publicHost: string;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly resyncIntervalMs: number;
  private readonly endedRetentionMs: number;
  private readonly proxyStaleAfterMs: number;
  private readonly clock: Clock;
  private readonly now: () => Date;
  private readonly onProxyEvent: ((event: ProxyEvent) => void) | undefined;
  private readonly counterFlush: RateLimiter;
  private readonly limitDefaults: SessionLimitDefaults;
  /**
   * The proxy's list from the last poll, and when each serial last changed
   * in the proxy (our PUT or DELETE, or an event). A reconcile reads the
   * list instead of asking the proxy when the list is younger than the
   * serial's last change: with many sessions whose counters move, one list
   * per poll replaces one request per session.
   */
  private listed: { requestedAt: number; list: SessionList; bySerial: Map<string, SessionState> } | undefined;
  private readonly changedAt = new Map<string, number>();
  readonly queue: WorkQueue<string>;
  private instanceId: string | undefined;
  private synced = false;
  private lastProxyContact = Number.NEGATIVE_INFINITY;
  private stopped = false;
  private pollFailing = false;
  private pollHandle: unknown;
  private resyncHandle: unknown;
  private polling: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private events: EventStream | undefined;
  /** Per serial, what of a stored session should trigger a reconcile (status writes should not). */
  private readonly seen = new Map<string, string>();

  constructor(options: ReconcilerOptions) {
    this.store = options.store;
    this.admin = options.admin;
    this.allocator = options.allocator;
    this.publicHost = options.publicHost;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 300;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 30_000;
    this.endedRetentionMs = options.endedRetentionMs ?? 300_000;
    this.proxyStaleAfterMs = options.proxyStaleAfterMs ?? 5_000;
    this.clock = options.clock ?? systemClock;
    this.onProxyEvent = options.onProxyEvent;
    this.limitDefaults = options.limitDefaults ?? {};
    this.counterFlush = new RateLimiter(options.counterFlushesPerSecond ?? Number.POSITIVE_INFINITY);
    this.now = options.now ?? (() => new Date(this.clock.now()));
    const observeReconcile = options.observeReconcile;
    this.queue = new WorkQueue((serial) => timedReconcile(() => this.reconcile(serial), observeReconcile), {
      concurrency: options.concurrency ?? 4,
      clock: this.clock,
      onError: (serial, error, retryInMs) => this.logger.warn({ serial, err: error, retryInMs }, 'reconcile failed; retrying'),
    });
  }

  /** Rebuilds the port table from the store, then starts watching. */
  async start(): Promise<void> {
    for (const session of await this.store.list()) {
      const port = session.status.port;
      if (port === undefined || isTerminal(session)) continue;
      if (!this.allocator.reserve(port, session.serial)) {
        this.logger.warn({ serial: session.serial, port }, 'stored port is outside the range or taken; the session gets a new one');
      }
    }
    this.unsubscribe = this.store.subscribe((change) => {
      if (change.type === 'removed') {
        this.seen.delete(change.serial);
        this.queue.add(change.serial);
        return;
      }
      const s = change.session;
      const fingerprint = `${s.uid}/${s.generation}/${s.deleting}/${s.hasFinalizer}/${s.status.phase ?? ''}`;
      if (this.seen.get(s.serial) === fingerprint) return;
      this.seen.set(s.serial, fingerprint);
      this.queue.add(s.serial);
    });
    this.synced = true;
    this.events = this.admin.watchEvents({
      onEvent: (event) => {
        this.lastProxyContact = this.clock.now();
        if (event.type === 'hello') this.noteInstance(event.instanceId);
        else if (event.serial !== undefined) {
          this.changedAt.set(event.serial, this.clock.now());
          this.queue.add(event.serial);
        }
        this.onProxyEvent?.(event);
      },
      onConnectionChange: (connected, error) => {
        if (!connected) this.logger.warn({ err: error }, 'proxy event stream lost; reconnecting');
      },
    });
    await this.resyncAll();
    this.schedulePoll();
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.events?.close();
    if (this.pollHandle !== undefined) this.clock.clearTimeout(this.pollHandle);
    if (this.resyncHandle !== undefined) this.clock.clearTimeout(this.resyncHandle);
    await this.polling;
    await this.queue.stop();
  }

  /** Ready once the port table is rebuilt and the proxy answered recently. */
  isReady(): boolean {
    return this.synced && this.proxyReachable();
  }

  /** The proxy answered (a request or its event stream) within proxyStaleAfterMs. */
  proxyReachable(): boolean {
    return this.clock.now() - this.lastProxyContact <= this.proxyStaleAfterMs;
  }

  /** Enqueues every stored session and every session the proxy runs. */
  async resyncAll(): Promise<void> {
    const serials = new Set((await this.store.list()).map((s) => s.serial));
    try {
      const list = await this.admin.listSessions();
      this.noteContact(list);
      for (const state of list.sessions) serials.add(state.serial);
    } catch (error) {
      this.logger.warn({ err: error }, 'proxy unreachable during resync');
    }
    for (const serial of serials) this.queue.add(serial);
  }

  // ---- one serial ----------------------------------------------------------

  async reconcile(serial: string): Promise<WorkResult | void> {
    const session = await this.store.get(serial);
    const lookup = this.cachedLookup(serial) ?? (await this.admin.getSession(serial));
    this.noteContact(lookup);
    const proxied = lookup.session;

    if (!session) return this.removeOrphan(serial, proxied);
    if (session.deleting) return this.finishDeletion(session, proxied);
    if (session.status.phase === 'Ended' || (session.status.phase === 'Failed' && !this.failedSpecChanged(session))) {
      return this.settleTerminal(session, proxied);
    }
    if (!session.hasFinalizer) {
      await this.store.setFinalizer(serial, session.uid, true);
      return { requeueAfterMs: 0 };
    }
    if (proxied && proxied.id === session.uid && proxied.state === 'ended') return this.markEnded(session, proxied);
    return this.converge(session, proxied);
  }

  /** The proxy runs a session nobody wants (e.g. its record was removed). */
  private async removeOrphan(serial: string, proxied: SessionState | undefined): Promise<void> {
    if (proxied) {
      await this.deleteFromProxy(serial);
      this.logger.info({ serial, port: proxied.port }, 'removed a session the store does not hold');
    }
    this.allocator.releaseOwner(serial);
  }

  /** /off or a deleted resource: close the session in the proxy, free the port, let the record go. */
  private async finishDeletion(session: ProxySession, proxied: SessionState | undefined): Promise<void> {
    if (proxied) await this.deleteFromProxy(session.serial);
    this.releasePortOf(session);
    if (session.hasFinalizer) await this.store.setFinalizer(session.serial, session.uid, false);
    this.logger.info({ serial: session.serial, port: session.status.port }, 'session deleted');
  }

  /** Ended or Failed: nothing may run or stay allocated; the record goes after the retention time. */
  private async settleTerminal(session: ProxySession, proxied: SessionState | undefined): Promise<WorkResult | void> {
    if (proxied) await this.deleteFromProxy(session.serial);
    this.releasePortOf(session);
    if (session.hasFinalizer) await this.store.setFinalizer(session.serial, session.uid, false);
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
    const written = await this.store.writeStatus(session.serial, session.uid, endedStatus(session, reason, proxied, this.now()));
    this.releasePortOf(session);
    await this.deleteFromProxy(session.serial);
    this.logger.info({ serial: session.serial, port: session.status.port, reason }, 'session ended');
    if (!written) return;
    return this.settleTerminal(written, undefined);
  }

  /** A live session: make sure it has a port, the proxy runs its spec there, and status says so. */
  private async converge(session: ProxySession, proxied: SessionState | undefined): Promise<WorkResult | void> {
    const serial = session.serial;
    let port = this.ownedPort(session);
    if (port === undefined) {
      port = this.allocator.allocate(serial);
      if (port === undefined) {
        await this.store.writeStatus(serial, session.uid, failedStatus(session, 'NoAvailablePorts', 'No available ports', this.now()));
        this.logger.warn({ serial, range: `${this.allocator.min}-${this.allocator.max}` }, 'no available ports');
        return;
      }
      // The allocation is durable before the proxy is told, so a restart cannot hand the port out twice.
      const written = await this.store.writeStatus(serial, session.uid, pendingStatus(session, this.publicHost, port, this.now()));
      if (!written) {
        this.allocator.release(port);
        return;
      }
      session = written;
    }

    const desired = desiredProxySpec(session, port, this.limitDefaults);
    let state = proxied;
    if (!proxyMatches(proxied, desired)) {
      // The proxy refuses to move a live session to another port: close it first.
      if (proxied && proxied.id === session.uid && proxied.state === 'listening' && proxied.port !== port) {
        await this.deleteFromProxy(serial);
      }
      try {
        state = await this.putToProxy(serial, desired);
      } catch (error) {
        if (error instanceof AdminApiError && error.code === 'port_unavailable') {
          this.allocator.quarantine(port);
          this.logger.warn({ serial, port, err: error }, 'port cannot be bound; quarantined, allocating another');
          const { port: _dropped, ...rest } = session.status;
          await this.store.writeStatus(serial, session.uid, { ...rest, phase: 'Pending' });
          return { requeueAfterMs: 0 };
        }
        throw error;
      }
      this.logger.info({ serial, port, generation: session.generation }, 'proxy programmed');
    }
    if (!state) return;
    // Programmed and at once over (a lifetime already past): never show it Active.
    if (state.id === session.uid && state.state === 'ended') return this.markEnded(session, state);
    const next: ProxySessionStatus = activeStatus(session, this.publicHost, port, state, this.now());
    if (sameStatus(next, session.status)) return;
    // A write that only moves the byte counter waits its turn; connects,
    // disconnects and phase changes are written at once.
    if (sameBesidesTraffic(next, session.status)) {
      const waitMs = this.counterFlush.take(this.clock.now());
      if (waitMs > 0) return { requeueAfterMs: waitMs };
    }
    await this.store.writeStatus(serial, session.uid, next);
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

  private cachedLookup(serial: string): SessionLookup | undefined {
    const listed = this.listed;
    if (!listed || listed.list.instanceId !== this.instanceId || this.clock.now() - listed.requestedAt > this.pollIntervalMs * 2)
      return undefined;
    if ((this.changedAt.get(serial) ?? Number.NEGATIVE_INFINITY) >= listed.requestedAt) return undefined;
    const session = listed.bySerial.get(serial);
    const { sessions: _all, ...info } = listed.list;
    return session ? { ...info, session } : info;
  }

  private async putToProxy(serial: string, spec: SessionSpec): Promise<SessionState> {
    this.changedAt.set(serial, this.clock.now());
    try {
      return await this.admin.putSession(serial, spec);
    } finally {
      this.changedAt.set(serial, this.clock.now());
    }
  }

  private async deleteFromProxy(serial: string): Promise<SessionState | undefined> {
    this.changedAt.set(serial, this.clock.now());
    try {
      return await this.admin.deleteSession(serial);
    } finally {
      this.changedAt.set(serial, this.clock.now());
    }
  }

  // ---- triggers ------------------------------------------------------------

  private noteContact(answer: InstanceInfo): void {
    this.lastProxyContact = this.clock.now();
    this.noteInstance(answer.instanceId);
  }

  /** A new proxy instance has forgotten every session: reprogram them all. */
  private noteInstance(instanceId: string): void {
    if (this.instanceId === instanceId) return;
    const previous = this.instanceId;
    this.instanceId = instanceId;
    if (previous !== undefined) {
      this.logger.warn({ previous, instanceId }, 'proxy restarted; resyncing every session');
      void this.resyncAll().catch((error: unknown) => this.logger.warn({ err: error }, 'resync failed'));
    }
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollHandle = this.clock.setTimeout(() => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        this.schedulePoll();
      });
    }, this.pollIntervalMs);
  }

  /** Enqueues the serials whose live counters or state moved since the last status write. */
  private async poll(): Promise<void> {
    try {
      const requestedAt = this.clock.now();
      const [sessions, list] = await Promise.all([this.store.list(), this.admin.listSessions()]);
      this.noteContact(list);
      this.listed = { requestedAt, list, bySerial: new Map(list.sessions.map((state) => [state.serial, state])) };
      // Changes older than this list no longer keep a serial from using it.
      for (const [serial, at] of this.changedAt) if (at < requestedAt) this.changedAt.delete(serial);
      for (const serial of driftedSerials(sessions, list.sessions)) this.queue.addUnlessDelayed(serial);
      if (this.pollFailing) this.logger.info('proxy reachable again');
      this.pollFailing = false;
    } catch (error) {
      // Logged once per outage, not three times a second; /readyz reports it meanwhile.
      if (!this.pollFailing) this.logger.warn({ err: error }, 'polling the proxy failed');
      this.pollFailing = true;
    }
  }

  private scheduleResync(): void {
    if (this.stopped) return;
    this.resyncHandle = this.clock.setTimeout(() => {
      void this.resyncAll()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'resync failed'))
        .finally(() => this.scheduleResync());
    }, this.resyncIntervalMs);
  }
}
