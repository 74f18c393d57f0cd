// Level-based reconciler: a session's sync re-reads the stored session and
// the proxy's state from the ProxyView of its pod (never from the proxy
// itself), and converges them in small guarded steps: allocate a pod and a
// port, program that pod, report its state into status. It is the only
// writer of allocations (status.proxy and status.port) and of status.
//
// Each proxy pod has its own view and its own port allocator (a slice of the
// range, or the whole range when each pod has a node of its own). A new
// session goes to the least-loaded reachable pod; a pod that restarts gets
// its own sessions again and nobody else's.
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
import { withTimeout } from '../common/timeout.ts';
import { CounterFlushes } from './counter-flushes.ts';
import { CounterRounds } from './counter-rounds.ts';
import { type ReconcileResult, timedReconcile } from './operator-metrics.ts';
import type { PortAllocator } from './port-allocator.ts';
import { AdminApiError, type ProxyAdmin } from './proxy-admin-client.ts';
import { ProxyView, type ProxyViewListener } from './proxy-view.ts';
import {
  activeStatus,
  desiredProxySpec,
  endedStatus,
  failedStatus,
  liveStatus,
  type Placement,
  pendingStatus,
  proxyMatches,
  sameBesidesTraffic,
  sameStatus,
} from './session-status.ts';
import {
  type Duplicate,
  isLive,
  isTerminal,
  type ProxySession,
  type ProxySessionStatus,
  type SessionLimitDefaults,
  type SessionStore,
} from './session-store.ts';
import { WorkQueue, type WorkResult } from './work-queue.ts';

/** One proxy pod the reconciler programs. */
export interface ProxyPodTarget {
  /** The pod's name (its StatefulSet identity), written to status.proxy. */
  name: string;
  admin: ProxyAdmin;
  /** The pod's ports. */
  allocator: PortAllocator;
  /** The host /on answers for the pod's sessions unless the pod reports its own or its Service has one. */
  publicHost: string;
  /** The address of the pod's own load balancer, once the cloud has given one. */
  serviceHost?: () => string | undefined;
  /** A view of the pod kept by the caller (shared, e.g. with /status); otherwise the reconciler makes and owns one. */
  view?: ProxyView;
}

/** A pod as the reconciler keeps it. */
export interface Pod extends ProxyPodTarget {
  view: ProxyView;
  /** The reconciler made the view and stops it. */
  ownsView: boolean;
  listener?: ProxyViewListener;
}

export interface ReconcilerOptions {
  store: SessionStore;
  /** The proxy pods, at least one; a session whose status names none of them has lost its pod. */
  pods: ProxyPodTarget[];
  logger: Logger;
  /** How often the proxy's change feed is read (counters reach status about this late). */
  pollIntervalMs?: number;
  /** How often every live session is synced regardless of triggers (spread over the interval, see `resyncStep`). */
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
  /**
   * Sessions of a pod whose view takes counters on demand get looks at their
   * counters while a party is attached, so status counters keep up (see
   * CounterRounds). Off where nothing reads counters from status but through
   * the view (the standalone mode's /status).
   */
  counterLooks?: boolean;
  /** Lifetime limits for sessions that ask for none. */
  limitDefaults?: SessionLimitDefaults;
  /** Sees every proxy event (e.g. to record Kubernetes Events); never changes what is reconciled. */
  onProxyEvent?: (event: ProxyEvent) => void;
  /** Told the duration and result of every sync (metrics); reports are not syncs. */
  observeReconcile?: (seconds: number, result: ReconcileResult) => void;
  clock?: Clock;
  now?: () => Date;
}

/** How long placement waits for the pods to say where the device is before it places without knowing. */
const DEVICE_LOOKUP_MS = 250;
/**
 * With a pod's counters on demand (see ProxyView), a session with a party
 * attached has its counters looked at about this often, as the flush rate allows.
 */
const COUNTER_LOOK_MS = 1_000;
/** The periodic resync syncs a slice of its round this often. */
const RESYNC_STEP_MS = 1_000;

/** How long a sync waits for the first listing of the proxy before it fails (and is retried with backoff). */
const SYNC_WAIT_FOR_PROXY_MS = 5_000;

/** What of a stored session triggers a sync: not status, which is the reconciler's own writing. */
function fingerprint(s: ProxySession): string {
  return `${s.uid}/${s.generation}/${s.deleting}/${s.hasFinalizer}/${s.status.phase ?? ''}`;
}

export class Reconciler {
  private readonly store: SessionStore;
  private readonly pods = new Map<string, Pod>();
  /** A session stored before pods were named (no status.proxy) belongs to the first. */
  private readonly firstPod: Pod;
  private readonly logger: Logger;
  private readonly resyncIntervalMs: number;
  private readonly endedRetentionMs: number;
  private readonly clock: Clock;
  private readonly now: () => Date;
  private readonly onProxyEvent: ((event: ProxyEvent) => void) | undefined;
  private readonly counterFlushes: CounterFlushes;
  private readonly counterRounds: CounterRounds;
  private readonly counterLooks: boolean;
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
  /** The periodic resync's round: the serials it syncs, and how many it has synced so far. */
  private resyncRound: string[] = [];
  private resyncDone = 0;
  private unsubscribe: (() => void) | undefined;

  constructor(options: ReconcilerOptions) {
    this.store = options.store;
    this.logger = options.logger;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 30_000;
    this.endedRetentionMs = options.endedRetentionMs ?? 300_000;
    this.clock = options.clock ?? systemClock;
    this.onProxyEvent = options.onProxyEvent;
    this.limitDefaults = options.limitDefaults ?? {};
    this.now = options.now ?? (() => new Date(this.clock.now()));
    this.observeReconcile = options.observeReconcile;
    for (const target of options.pods) {
      if (this.pods.has(target.name)) throw new Error(`proxy pod ${target.name} is named twice`);
      const view =
        target.view ??
        new ProxyView({
          admin: target.admin,
          logger: this.logger.child({ proxy: target.name }),
          pollIntervalMs: options.pollIntervalMs,
          staleAfterMs: options.proxyStaleAfterMs,
          clock: this.clock,
        });
      this.pods.set(target.name, { ...target, view, ownsView: target.view === undefined });
    }
    const first = this.pods.values().next().value;
    if (!first) throw new Error('the reconciler needs at least one proxy pod');
    this.firstPod = first;
    this.queue = new WorkQueue((serial) => this.run(serial), {
      concurrency: options.concurrency ?? 4,
      clock: this.clock,
      onError: (serial, error, retryInMs) => this.logger.warn({ serial, err: error, retryInMs }, 'reconcile failed; retrying'),
    });
    // A granted turn is a report like any telemetry; it reads the counters of that moment.
    this.counterFlushes = new CounterFlushes(
      options.counterFlushesPerSecond ?? Number.POSITIVE_INFINITY,
      (serial) => this.queue.addUnlessDelayed(serial),
      this.clock,
    );
    this.counterLooks = options.counterLooks ?? false;
    // Looks at most as often as counter writes may go: a look that finds moved counters is reported.
    this.counterRounds = new CounterRounds(
      options.counterFlushesPerSecond ?? Number.POSITIVE_INFINITY,
      COUNTER_LOOK_MS,
      (serials) => void this.lookAtCounters(serials),
      this.clock,
    );
  }

  /** Rebuilds the port tables from the store, then starts watching the store and the proxy pods. */
  async start(): Promise<void> {
    const stored = await this.store.list();
    for (const session of stored) {
      const port = session.status.port;
      if (port === undefined || isTerminal(session)) continue;
      const pod = this.podOf(session);
      if (!pod?.allocator.reserve(port, session.serial)) {
        this.logger.warn(
          { serial: session.serial, proxy: session.status.proxy, port },
          'stored pod and port are not this release’s or taken; the session gets new ones',
        );
      }
    }
    this.unsubscribe = this.store.subscribe((change) => {
      if (change.type === 'removed') {
        this.seen.delete(change.serial);
        this.sync(change.serial);
        return;
      }
      const print = fingerprint(change.session);
      // A resource made by hand for a serial another holds changes nothing of the session: it is marked.
      if (this.seen.get(change.session.serial) === print && !this.unsettledDuplicates(change.session.serial).length) return;
      this.seen.set(change.session.serial, print);
      this.sync(change.session.serial);
    });
    for (const pod of this.pods.values()) this.watch(pod);
    // Ended and Failed sessions too, once, so their retention time is scheduled.
    for (const session of stored) this.sync(session.serial);
    // A shared view may have been listed before we listened: what the pods run is looked at too.
    for (const pod of this.pods.values()) for (const serial of pod.view.serials()) this.sync(serial);
    this.synced = true;
    this.scheduleResync(this.resyncIntervalMs);
  }

  private watch(pod: Pod): void {
    pod.listener = {
      sessionChanged: (serial, current) => {
        // A session the proxy ended frees its port now, not when the queue reaches it.
        if (current?.state === 'ended' && pod.allocator.ownerOf(current.port) === serial) pod.allocator.release(current.port);
        this.sync(serial);
      },
      telemetry: (serial, state, countersOnly) => {
        // In-process stores take it at once; others (and a session not Active yet) get the report step.
        if (this.store.writeTelemetry?.(serial, state.id, state.port, liveStatus(state))) return;
        // Moved counters of a session whose counter write is already to come add nothing: that write reads them.
        if (countersOnly && this.counterFlushes.due(serial)) return;
        this.queue.addUnlessDelayed(serial);
      },
      restarted: () => void this.resyncPod(pod).catch((error: unknown) => this.logger.warn({ err: error }, 'resync failed')),
      event: this.onProxyEvent,
    };
    pod.view.start(pod.listener);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.resyncHandle !== undefined) this.clock.clearTimeout(this.resyncHandle);
    this.counterFlushes.stop();
    this.counterRounds.stop();
    await Promise.all(
      [...this.pods.values()].map(async (pod) => {
        if (pod.listener) pod.view.unlisten(pod.listener);
        if (pod.ownsView) await pod.view.stop();
      }),
    );
    await this.queue.stop();
  }

  /** Ready once the port tables are rebuilt and some proxy pod answered recently. */
  isReady(): boolean {
    return this.synced && this.proxyReachable();
  }

  /** Some proxy pod answered (its feed, a request or its event stream) within proxyStaleAfterMs. */
  proxyReachable(): boolean {
    for (const pod of this.pods.values()) if (pod.view.reachable()) return true;
    return false;
  }

  /** Each pod's name, whether it is reachable, and its port counts. */
  podStates(): Array<{ name: string; reachable: boolean; allocated: number; quarantined: number; size: number }> {
    return [...this.pods.values()].map((pod) => ({
      name: pod.name,
      reachable: pod.view.reachable(),
      allocated: pod.allocator.allocatedCount,
      quarantined: pod.allocator.quarantinedCount(),
      size: pod.allocator.size,
    }));
  }

  /** One pod by name, with its view and its port table. */
  pod(name: string): Pod | undefined {
    return this.pods.get(name);
  }

  /** Queues a full sync of one serial. */
  sync(serial: string): void {
    this.needsSync.add(serial);
    this.queue.add(serial);
  }

  /** Queues a sync of every live stored session and of every session a pod runs. */
  async resyncLive(): Promise<void> {
    for (const serial of await this.resyncSerials()) this.sync(serial);
  }

  /** Every live or deleting stored session, and every session a pod runs, once each. */
  private async resyncSerials(): Promise<string[]> {
    const serials = new Set<string>();
    for (const session of await this.store.list()) if (isLive(session) || session.deleting) serials.add(session.serial);
    for (const pod of this.pods.values()) for (const serial of pod.view.serials()) serials.add(serial);
    return [...serials];
  }

  /**
   * One step of the periodic resync: the next slice of the round, sized so
   * the round takes about `resyncIntervalMs`; a new round is listed when one
   * ends. Before, every session was queued at once: with 5,000 sessions,
   * 5,000 syncs in one go every 30 s on the cores the proxy shares; spread,
   * about 170 a second.
   */
  private async resyncStep(): Promise<void> {
    if (this.resyncDone >= this.resyncRound.length) {
      this.resyncRound = await this.resyncSerials();
      this.resyncDone = 0;
    }
    const steps = Math.max(1, Math.floor(this.resyncIntervalMs / RESYNC_STEP_MS));
    const slice = Math.ceil(this.resyncRound.length / steps);
    const end = Math.min(this.resyncRound.length, this.resyncDone + slice);
    for (let i = this.resyncDone; i < end; i++) this.sync(this.resyncRound[i] as string);
    this.resyncDone = end;
  }

  /** A pod restarted: its own sessions (and what it runs now) are synced; the other pods' are not touched. */
  private async resyncPod(pod: Pod): Promise<void> {
    for (const session of await this.store.list()) {
      if ((isLive(session) || session.deleting) && (this.podOf(session) === pod || session.status.proxy === undefined)) {
        this.sync(session.serial);
      }
    }
    for (const serial of pod.view.serials()) this.sync(serial);
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

  /** One session's sync: decide what the stored session and its pod's state call for. */
  async reconcile(serial: string): Promise<WorkResult | void> {
    await this.markDuplicates(serial);
    const session = await this.store.get(serial);
    const pod = session ? this.podOf(session) : undefined;
    // What another pod runs under this serial is left over (a moved or lost session): it goes.
    await this.removeStrays(serial, pod);
    if (!session) return this.forgetSerial(serial);
    if (session.status.phase === 'Ended' || (session.status.phase === 'Failed' && !this.failedSpecChanged(session))) {
      return this.settleTerminal(session, pod);
    }
    if (session.status.proxy !== undefined && !pod) {
      // Its pod is no longer part of the release (the proxy was scaled down).
      return session.deleting ? this.finishDeletion(session, undefined) : this.markLost(session);
    }
    if (pod) await this.listed(pod);
    const proxied = pod?.view.get(serial);
    if (session.deleting) return this.finishDeletion(session, pod);
    if (!session.hasFinalizer) {
      await this.setFinalizer(session, true);
      return { requeueAfterMs: 0 };
    }
    if (pod && proxied && proxied.id === session.uid && proxied.state === 'ended') return this.markEnded(session, pod, proxied);

    const allocated = await this.allocate(session);
    if (!allocated) return;
    const placed = allocated.pod;
    if (placed !== pod) await this.listed(placed);
    const programmed = await this.program(allocated.session, placed, allocated.port, placed.view.get(serial));
    if (programmed === 'retry') return { requeueAfterMs: 0 };
    if (!programmed) return;
    // Programmed and at once over (a lifetime already past): never show it Active.
    if (programmed.id === session.uid && programmed.state === 'ended') return this.markEnded(allocated.session, placed, programmed);
    return this.report(allocated.session, placed, allocated.port, programmed);
  }

  /** Telemetry moved: write it into status, unless the session is not (or no longer) Active there. */
  private async reportOnly(serial: string): Promise<WorkResult | void> {
    const session = await this.store.get(serial);
    const pod = session && this.podOf(session);
    const state = pod?.view.get(serial);
    const port = session?.status.port;
    if (!session || !pod || !state || session.deleting || session.status.phase !== 'Active' || port === undefined) return;
    if (state.id !== session.uid || state.port !== port || state.state !== 'listening') return;
    return this.report(session, pod, port, state);
  }

  // ---- steps ---------------------------------------------------------------

  /**
   * Step 1: the session's pod and port. A session keeps what it holds; a new
   * one gets a port on the least-loaded reachable pod, written durably
   * before the pod is told. Undefined when it failed (no port anywhere) or vanished.
   */
  async allocate(session: ProxySession): Promise<{ session: ProxySession; pod: Pod; port: number } | undefined> {
    const serial = session.serial;
    const held = this.podOf(session);
    const owned = held && this.ownedPort(session, held);
    if (held && owned !== undefined) return { session, pod: held, port: owned };
    const reachable = [...this.pods.values()].filter((pod) => pod.view.reachable() && pod.view.synced);
    if (reachable.length === 0) throw new Error('no proxy pod is reachable to place the session on');
    // A pod where the device already waits comes first: it joins without a hop between pods.
    const waiting = await this.podWithDevice(serial, reachable);
    // Ordered by load after the lookup and allocated without a pause, so concurrent syncs see each other's ports.
    const load = (pod: Pod) => pod.allocator.allocatedCount / pod.allocator.size;
    const candidates = reachable.sort((a, b) => (a === waiting ? -1 : b === waiting ? 1 : load(a) - load(b)));
    for (const pod of candidates) {
      const port = pod.allocator.allocate(serial);
      if (port === undefined) continue;
      // Durable before the pod is told, so a restart cannot hand the port out twice.
      const written = await this.writeStatus(session, pendingStatus(session, this.placement(pod, port), this.now()));
      if (!written) {
        pod.allocator.release(port);
        return undefined;
      }
      return { session: written, pod, port };
    }
    await this.writeStatus(session, failedStatus(session, 'NoAvailablePorts', 'No available ports', this.now()));
    this.logger.warn({ serial, pods: candidates.length }, 'no available ports');
    return undefined;
  }

  /**
   * Step 2: the pod runs the session's spec on its port. The state it runs,
   * 'retry' when the port had to be given up (it is quarantined and the
   * next sync allocates another), undefined when there is nothing to run.
   */
  async program(
    session: ProxySession,
    pod: Pod,
    port: number,
    proxied: SessionState | undefined,
  ): Promise<SessionState | 'retry' | undefined> {
    const serial = session.serial;
    const desired = desiredProxySpec(session, port, this.limitDefaults);
    if (proxyMatches(proxied, desired)) return proxied;
    // The proxy refuses to move a live session to another port: close it first.
    if (proxied && proxied.id === session.uid && proxied.state === 'listening' && proxied.port !== port) {
      await pod.view.delete(serial);
    }
    try {
      const state = await pod.view.put(serial, desired);
      this.logger.info({ serial, proxy: pod.name, port, generation: session.generation }, 'proxy programmed');
      return state;
    } catch (error) {
      if (!(error instanceof AdminApiError && error.code === 'port_unavailable')) throw error;
      pod.allocator.quarantine(port);
      this.logger.warn({ serial, proxy: pod.name, port, err: error }, 'port cannot be bound; quarantined, allocating another');
      const { port: _dropped, proxy: _pod, ...rest } = session.status;
      await this.writeStatus(session, { ...rest, phase: 'Pending' });
      return 'retry';
    }
  }

  /**
   * Step 3: status says what the pod runs. Connects, disconnects and phase
   * changes are written at once; a write that only moves counters waits its
   * turn under the flush rate (the session is reported again then).
   */
  async report(session: ProxySession, pod: Pod, port: number, state: SessionState): Promise<void> {
    this.watchCounters(pod, state);
    const next: ProxySessionStatus = activeStatus(session, this.placement(pod, port), state, this.now());
    if (sameStatus(next, session.status)) return;
    if (sameBesidesTraffic(next, session.status) && !this.counterFlushes.mayWrite(session.serial)) return;
    await this.writeStatus(session, next);
  }

  // ---- endings ---------------------------------------------------------------

  /**
   * Resources made with kubectl for a serial an older resource holds run
   * nothing: they show Failed (DuplicateSerial) and name the holder, so
   * `kubectl get pxs` says why. One edited while still a duplicate is marked
   * again (its generation moved); one that outlives the holder stays Failed.
   * The finalizer of a deleting one (it held the serial once) is removed.
   */
  private async markDuplicates(serial: string): Promise<void> {
    // Not this.writeStatus or this.setFinalizer: the serial's own session (its seen print, its counters) is not touched.
    for (const { session, heldBy } of this.unsettledDuplicates(serial)) {
      if (session.deleting) {
        // One that held the serial before (it carries the finalizer) runs nothing now: its deletion is not held up.
        await this.store.setFinalizer(serial, session.uid, false);
        continue;
      }
      const message = `Serial ${serial} is already held by ProxySession ${heldBy}, created before this one; delete this resource`;
      await this.store.writeStatus(serial, session.uid, failedStatus(session, 'DuplicateSerial', message, this.now()));
      this.logger.warn({ serial, uid: session.uid, heldBy }, 'a second ProxySession for one serial is marked Failed');
    }
  }

  /** Duplicates not yet marked for their generation, and deleting ones our finalizer still holds. */
  private unsettledDuplicates(serial: string): Duplicate[] {
    return (this.store.duplicatesOf?.(serial) ?? []).filter(({ session }) =>
      session.deleting
        ? session.hasFinalizer
        : !(session.status.endedReason === 'DuplicateSerial' && (session.status.observedGeneration ?? 0) >= session.generation),
    );
  }

  /** Removes the serial from every pod but `keep` (a session nobody wants there). */
  private async removeStrays(serial: string, keep: Pod | undefined): Promise<void> {
    for (const pod of this.pods.values()) {
      if (pod === keep) continue;
      const stray = pod.view.get(serial);
      if (!stray) continue;
      await pod.view.delete(serial);
      if (pod.allocator.ownerOf(stray.port) === serial) pod.allocator.release(stray.port);
      this.logger.info({ serial, proxy: pod.name, port: stray.port }, 'removed a session the store does not place there');
    }
  }

  /** No stored session: no port may stay allocated to the serial. */
  private forgetSerial(serial: string): void {
    for (const pod of this.pods.values()) pod.allocator.releaseOwner(serial);
    this.counterFlushes.forget(serial);
    this.counterRounds.forget(serial);
  }

  // ---- counters on demand ----------------------------------------------------

  /** A session whose pod gives counters on demand gets looks while a party is attached (see CounterRounds). */
  private watchCounters(pod: Pod, state: SessionState): void {
    if (!this.counterLooks || !pod.view.countersOnDemand) return;
    if (state.state === 'listening' && (state.deviceConnected || state.clientConnected)) this.counterRounds.watch(state.serial);
    else this.counterRounds.forget(state.serial);
  }

  /**
   * A batch of looks: each pod's view asks it for those sessions' counters in
   * one request; moved ones come back as telemetry, which queues the report
   * (and its rate-limited write). Those still with a party are watched again.
   */
  private async lookAtCounters(serials: readonly string[]): Promise<void> {
    await Promise.all(
      [...this.pods.values()].map(async (pod) => {
        const held = serials.filter((serial) => pod.view.get(serial) !== undefined);
        if (held.length === 0 || this.stopped) return;
        await pod.view.refreshCounters(held, COUNTER_LOOK_MS / 2);
        for (const serial of held) {
          const state = pod.view.get(serial);
          if (state) this.watchCounters(pod, state);
        }
      }),
    );
  }

  /** /off or a deleted resource: close the session in its pod, free the port, let the record go. */
  private async finishDeletion(session: ProxySession, pod: Pod | undefined): Promise<void> {
    if (pod?.view.get(session.serial)) await pod.view.delete(session.serial);
    if (pod) this.releasePortOf(session, pod);
    if (session.hasFinalizer) await this.setFinalizer(session, false);
    this.logger.info({ serial: session.serial, proxy: pod?.name, port: session.status.port }, 'session deleted');
  }

  /** Ended or Failed: nothing may run or stay allocated; the record goes after the retention time. */
  private async settleTerminal(session: ProxySession, pod: Pod | undefined): Promise<WorkResult | void> {
    if (pod?.view.get(session.serial)) await pod.view.delete(session.serial);
    if (pod) this.releasePortOf(session, pod);
    if (session.hasFinalizer) await this.setFinalizer(session, false);
    const endedAt = Date.parse(session.status.endedAt ?? '');
    const age = Number.isNaN(endedAt) ? 0 : this.now().getTime() - endedAt;
    if (age >= this.endedRetentionMs) {
      await this.store.delete(session.serial, session.uid);
      return;
    }
    return { requeueAfterMs: this.endedRetentionMs - age };
  }

  /** The pod reports the session over (timeout, a party left a non-persistent session). */
  private async markEnded(session: ProxySession, pod: Pod, proxied: SessionState): Promise<WorkResult | void> {
    const reason = proxied.endedReason ?? 'Deleted';
    const written = await this.writeStatus(session, endedStatus(session, reason, proxied, this.now()));
    this.releasePortOf(session, pod);
    await pod.view.delete(session.serial);
    this.logger.info({ serial: session.serial, proxy: pod.name, port: session.status.port, reason }, 'session ended');
    if (!written) return;
    return this.settleTerminal(written, undefined);
  }

  /** The session's pod is no longer part of the release (the proxy was scaled down): it ends. */
  private async markLost(session: ProxySession): Promise<WorkResult | void> {
    const message = `Proxy pod ${session.status.proxy} is no longer part of the release`;
    const written = await this.writeStatus(session, failedStatus(session, 'ProxyLost', message, this.now()));
    this.logger.warn({ serial: session.serial, proxy: session.status.proxy }, 'session lost its proxy pod');
    if (!written) return;
    return this.settleTerminal(written, undefined);
  }

  // ---- helpers -------------------------------------------------------------

  /** The pod a session is placed on: the one status names, else (a record from before pods were named) the first. */
  private podOf(session: ProxySession): Pod | undefined {
    const name = session.status.proxy;
    if (name === undefined) return session.status.port === undefined ? undefined : this.firstPod;
    return this.pods.get(name);
  }

  private placement(pod: Pod, port: number): Placement {
    // What the pod says (its node, with hostNetwork), else its load balancer, else the configured host.
    return { proxy: pod.name, host: pod.view.publicHost ?? pod.serviceHost?.() ?? pod.publicHost, port };
  }

  /** The first pod (of several) that says the serial's device waits there; asked in parallel, briefly. */
  private async podWithDevice(serial: string, pods: Pod[]): Promise<Pod | undefined> {
    if (pods.length < 2) return undefined;
    const answers = await Promise.all(
      pods.map((pod) => withTimeout(pod.admin.devicePending(serial), DEVICE_LOOKUP_MS, `${pod.name}'s answer`).catch(() => false)),
    );
    return pods[answers.indexOf(true)];
  }

  /** Waits (bounded) for the pod's first listing, so its view is authoritative. */
  private async listed(pod: Pod): Promise<void> {
    if (!(await pod.view.whenSynced(SYNC_WAIT_FOR_PROXY_MS))) throw new Error(`proxy pod ${pod.name} has not been listed yet`);
  }

  /** Writes status, remembering that the change it causes is our own. */
  private writeStatus(session: ProxySession, status: ProxySessionStatus): Promise<ProxySession | undefined> {
    this.seen.set(session.serial, fingerprint({ ...session, status }));
    // Every status write carries the counters of its moment.
    this.counterFlushes.forget(session.serial);
    return this.store.writeStatus(session.serial, session.uid, status);
  }

  private setFinalizer(session: ProxySession, present: boolean): Promise<ProxySession | undefined> {
    this.seen.set(session.serial, fingerprint({ ...session, hasFinalizer: present }));
    return this.store.setFinalizer(session.serial, session.uid, present);
  }

  /** The stored port if this session still holds it in its pod's allocator (re-reserving it if needed). */
  private ownedPort(session: ProxySession, pod: Pod): number | undefined {
    const port = session.status.port;
    if (port === undefined) return undefined;
    if (pod.allocator.ownerOf(port) === session.serial) return port;
    return pod.allocator.reserve(port, session.serial) ? port : undefined;
  }

  private releasePortOf(session: ProxySession, pod: Pod): void {
    const port = session.status.port;
    if (port !== undefined && pod.allocator.ownerOf(port) === session.serial) pod.allocator.release(port);
  }

  /** A Failed session whose spec changed since (e.g. by kubectl apply) is tried again. */
  private failedSpecChanged(session: ProxySession): boolean {
    return session.generation > (session.status.observedGeneration ?? 0);
  }

  /** The first round starts an interval after `start` synced everything; its steps follow each other. */
  private scheduleResync(delayMs = Math.min(RESYNC_STEP_MS, this.resyncIntervalMs)): void {
    if (this.stopped) return;
    this.resyncHandle = this.clock.setTimeout(() => {
      void this.resyncStep()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'resync failed'))
        .finally(() => this.scheduleResync());
    }, delayMs);
  }
}
