// The operator's view of one proxy pod: which sessions it runs and how they
// are doing, kept current from the proxy's change feed (read since a cursor)
// and its event stream (each event carries the session's state), never by
// listing every session on a timer. It owns the proxy bookkeeping: the
// instance id and restart detection, reachability, and the feed's cursor.
//
// Whoever holds the view asks it (`get`) instead of the proxy, and is told
// what changed: `sessionChanged` when something the reconciler acts on moved
// (a new or removed session, an end, another id, port or spec), `telemetry`
// when only connections, counters or activity moved, and `restarted` once a
// new proxy instance has been listed (it runs nothing it ran before).
//
// Counters: by default the feed carries them (counter entries), so the view
// is never more than a read behind. With `counters: 'on-demand'` it reads the
// feed without them (`counters=skip`) and `current` asks the proxy for a
// session whose counters may have moved since it was last told them: a
// proxy with thousands of busy sessions then serves a feed of real changes
// only, instead of an entry for nearly every session every second.
//
// Given the release's pod count, the view tells it to every proxy instance
// it meets (PUT /v1/peers) before that instance's first listing completes,
// so nothing is programmed on a pod that does not know its peers yet: a
// pod added by scaling up, or restarted, learns them from the operator, and
// no pod template carries the count.
import {
  type ChangeBatch,
  DEFAULT_CHANGE_BATCH,
  MAX_LISTED_SERIALS,
  type ProxyEvent,
  type SessionCounters,
  type SessionSpec,
  type SessionState,
  type SideCounters,
  type SideState,
} from '../common/admin-protocol.ts';
import { type Clock, systemClock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import { AdminApiError, type EventStream, type FeedCounters, type ProxyAdmin } from './proxy-admin-client.ts';

export interface ProxyViewListener {
  /** Something the reconciler acts on changed; `current` is undefined when the proxy no longer has the serial. */
  sessionChanged(serial: string, current: SessionState | undefined, previous: SessionState | undefined): void;
  /**
   * Only live telemetry moved (connections, addresses, counters, activity);
   * `countersOnly` when nothing but the byte counters and activity times did.
   */
  telemetry(serial: string, current: SessionState, countersOnly: boolean): void;
  /** A new proxy instance has been listed; everything must be programmed again. */
  restarted(instanceId: string): void;
  /** Every event of the proxy, as it came (e.g. to record Kubernetes Events). */
  event?(event: ProxyEvent): void;
}

export interface ProxyViewOptions {
  admin: ProxyAdmin;
  logger: Logger;
  /** How often the feed is read: counters reach the view about this late. */
  pollIntervalMs?: number;
  /** The proxy counts as reachable while its last answer is younger than this. */
  staleAfterMs?: number;
  /** Sessions per feed answer. */
  batchLimit?: number;
  /** The release's proxy pod count, told to each new instance (PUT /v1/peers); nothing is told without it. */
  replicas?: number;
  /**
   * 'feed' (the default): moved counters come with every read. 'on-demand':
   * they are left out of the feed, and `current` asks for them.
   */
  counters?: 'feed' | 'on-demand';
  clock?: Clock;
}

/** How long a local removal shadows older copies that may still be on their way. */
const REMOVAL_MEMORY_MS = 60_000;

export class ProxyView {
  private readonly admin: ProxyAdmin;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly staleAfterMs: number;
  private readonly batchLimit: number;
  private readonly replicas: number | undefined;
  /** The instance last told the pod count. */
  private peersToldTo: string | undefined;
  private readonly clock: Clock;
  private readonly sessions = new Map<string, SessionState>();
  /** Serials removed by our own DELETE: older copies of them (a late event) are not taken back. */
  private readonly removals = new Map<string, { changeSeq: number; at: number }>();
  private listener: ProxyViewListener | undefined;
  private instance: string | undefined;
  private reportedHost: string | undefined;
  private cursor = 0;
  /**
   * The cursor of the instance's last answer with `more: false` (none since a
   * reset): counter entries may be asked for up to it (see admin-protocol.ts).
   */
  private completeCursor: number | undefined;
  /** The instance that refused `counters=1` (older than counter entries): it is read in full states. */
  private countersRefusedBy: string | undefined;
  /** The instance that refused `complete` (older than it): pages after a read's first come in full states. */
  private completeRefusedBy: string | undefined;
  /** The instance that refused `counters=skip` (older than it): its moved counters come as entries. */
  private skipRefusedBy: string | undefined;
  /** The feed leaves counters out; `current` asks for them. */
  readonly countersOnDemand: boolean;
  /** A read since the last reset left moved counters out: held counters are as old as their state's `freshAt`. */
  private skipping = false;
  /** When each held state's counters were last known current (kept with counters on demand). */
  private readonly freshAt = new WeakMap<SessionState, number>();
  /** Counter lookups in flight, by serial: callers at the same moment share one. */
  private readonly lookups = new Map<string, Promise<void>>();
  /** Serials listed so far in a reset listing; the rest are dropped when it ends. */
  private listing: Set<string> | undefined;
  /** True once a listing of the current instance has completed. */
  private listed = false;
  private syncWaiters: Array<() => void> = [];
  private lastContact = Number.NEGATIVE_INFINITY;
  private events: EventStream | undefined;
  private pollHandle: unknown;
  private polling: Promise<void> | undefined;
  private pollAgain = false;
  private failing = false;
  /** The last counter lookup failed (logged once until one succeeds: /status may ask many times a second). */
  private lookupsFailing = false;
  private stopped = true;

  constructor(options: ProxyViewOptions) {
    this.admin = options.admin;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 400;
    this.staleAfterMs = options.staleAfterMs ?? 5_000;
    this.batchLimit = options.batchLimit ?? DEFAULT_CHANGE_BATCH;
    this.replicas = options.replicas;
    this.countersOnDemand = options.counters === 'on-demand';
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Starts reading the proxy; the first listing runs in the background (see
   * `whenSynced`). With a listener, as `listen` — one view can serve a
   * reader (the Control API's /status) before and after a reconciler listens.
   */
  start(listener?: ProxyViewListener): void {
    if (listener) this.listen(listener);
    if (!this.stopped) return;
    this.stopped = false;
    this.events = this.admin.watchEvents({
      onEvent: (event) => this.onEvent(event),
      onConnectionChange: (connected, error) => {
        if (!connected && !this.stopped) this.logger.warn({ err: error }, 'proxy event stream lost; reconnecting');
      },
    });
    this.pollNow();
  }

  /** Tells `listener` what changes from now on (one listener at a time). */
  listen(listener: ProxyViewListener): void {
    this.listener = listener;
  }

  unlisten(listener: ProxyViewListener): void {
    if (this.listener === listener) this.listener = undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.events?.close();
    if (this.pollHandle !== undefined) this.clock.clearTimeout(this.pollHandle);
    this.pollHandle = undefined;
    await this.polling;
    for (const wake of this.syncWaiters.splice(0)) wake();
  }

  /** The proxy's last known state of a session; undefined when it runs none (or is not listed yet). */
  get(serial: string): SessionState | undefined {
    return this.sessions.get(serial);
  }

  /**
   * The proxy's state of a session with counters at most `maxAgeMs` old: as
   * held, unless the feed leaves counters out and they may have moved since
   * (a party is connected), in which case the proxy is asked. Undefined when
   * the proxy runs none; a failed lookup answers with the held state.
   */
  async current(serial: string, maxAgeMs: number): Promise<SessionState | undefined> {
    await this.refreshCounters([serial], maxAgeMs);
    return this.sessions.get(serial);
  }

  /**
   * As `current` for many sessions, in one request for those whose counters
   * may have moved (a lookup already on its way is waited for, not repeated);
   * resolves when the view holds what the proxy answered.
   */
  async refreshCounters(serials: readonly string[], maxAgeMs: number): Promise<void> {
    const waits: Array<Promise<void>> = [];
    const stale: string[] = [];
    for (const serial of serials) {
      const inFlight = this.lookups.get(serial);
      const held = this.sessions.get(serial);
      if (inFlight) waits.push(inFlight);
      else if (held && this.countersStale(held, maxAgeMs)) stale.push(serial);
    }
    for (let from = 0; from < stale.length; from += MAX_LISTED_SERIALS) {
      const batch = stale.slice(from, from + MAX_LISTED_SERIALS);
      const lookup = this.lookUpCounters(batch).finally(() => {
        for (const serial of batch) if (this.lookups.get(serial) === lookup) this.lookups.delete(serial);
      });
      for (const serial of batch) this.lookups.set(serial, lookup);
      waits.push(lookup);
    }
    await Promise.all(waits);
  }

  serials(): IterableIterator<string> {
    return this.sessions.keys();
  }

  get size(): number {
    return this.sessions.size;
  }

  get instanceId(): string | undefined {
    return this.instance;
  }

  /** The host the proxy says its session ports are reached at, if it said one. */
  get publicHost(): string | undefined {
    return this.reportedHost;
  }

  /** A listing of the current proxy instance has completed, so `get` is authoritative up to the feed's delay. */
  get synced(): boolean {
    return this.listed;
  }

  /** The proxy answered (the feed, a request or its event stream) within staleAfterMs. */
  reachable(): boolean {
    return this.clock.now() - this.lastContact <= this.staleAfterMs;
  }

  /** Resolves when synced, or false after timeoutMs. */
  whenSynced(timeoutMs: number): Promise<boolean> {
    if (this.listed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        this.clock.clearTimeout(timer);
        resolve(this.listed);
      };
      const timer = this.clock.setTimeout(() => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== wake);
        resolve(this.listed);
      }, timeoutMs);
      this.syncWaiters.push(wake);
    });
  }

  /** Programs a session; the answer is taken into the view at once. */
  async put(serial: string, spec: SessionSpec): Promise<SessionState> {
    const state = await this.admin.putSession(serial, spec);
    this.lastContact = this.clock.now();
    this.removals.delete(serial);
    // The caller acts on the answer itself: no notice for its own change.
    this.take(state, false, false);
    return state;
  }

  /** Ends and removes a session; its last state, or undefined when the proxy had none. */
  async delete(serial: string): Promise<SessionState | undefined> {
    const last = await this.admin.deleteSession(serial);
    this.lastContact = this.clock.now();
    const known = this.sessions.get(serial);
    const changeSeq = Math.max(last?.changeSeq ?? 0, known?.changeSeq ?? 0);
    this.removals.set(serial, { changeSeq, at: this.clock.now() });
    this.sessions.delete(serial);
    return last;
  }

  // ---- the feed ------------------------------------------------------------

  /** Reads the feed now and resolves when that read (and any it was coalesced with) is done. */
  async refresh(): Promise<void> {
    this.pollNow();
    while (this.polling) await this.polling;
  }

  /** Reads the feed at once (coalesced with a read in flight). */
  pollNow(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    if (this.pollHandle !== undefined) this.clock.clearTimeout(this.pollHandle);
    this.pollHandle = undefined;
    this.polling = this.readFeed().finally(() => {
      this.polling = undefined;
      if (this.stopped) return;
      if (this.pollAgain) {
        this.pollAgain = false;
        this.pollNow();
        return;
      }
      this.pollHandle = this.clock.setTimeout(() => {
        this.pollHandle = undefined;
        this.pollNow();
      }, this.pollIntervalMs);
    });
  }

  /** Reads every waiting page of the feed; a failed read keeps the cursor, so nothing is lost. */
  private async readFeed(): Promise<void> {
    try {
      while (!this.stopped) {
        const batch = await this.readChanges();
        if (this.stopped) return;
        this.lastContact = this.clock.now();
        if (this.replicas !== undefined && batch.instanceId !== this.peersToldTo) {
          // A new instance is not listed (and so not programmed) before it knows its peers.
          if (batch.instanceId !== this.instance) this.listed = false;
          await this.tellPeers(batch.instanceId, this.replicas);
          if (this.stopped) return;
        }
        await this.lookUpUnheld(batch);
        if (this.stopped) return;
        this.apply(batch);
        if (!batch.more) break;
      }
      if (this.failing) this.logger.info('proxy reachable again');
      this.failing = false;
    } catch (error) {
      // Logged once per outage, not at every read; /readyz reports it meanwhile.
      if (!this.failing) this.logger.warn({ err: error }, 'reading the proxy change feed failed');
      this.failing = true;
    }
    this.forgetOldRemovals();
  }

  /**
   * One read of the feed; with counter entries when a complete cursor allows
   * them and the proxy takes them. Past a read's first page the cursor is a
   * page's (`more: true`), so the complete one goes along as `complete`:
   * with 5,000 busy sessions a read spans several pages, and without it all
   * but the first came as full states.
   */
  private async readChanges(): Promise<ChangeBatch> {
    const complete = this.countersRefusedBy === this.instance ? undefined : this.completeCursor;
    const midway = complete !== undefined && complete !== this.cursor;
    const byCounters = complete !== undefined && (!midway || this.completeRefusedBy !== this.instance);
    const counters: FeedCounters | undefined = !byCounters
      ? undefined
      : this.countersOnDemand && this.skipRefusedBy !== this.instance
        ? 'skip'
        : 'entries';
    try {
      const batch = await this.admin.changes(
        this.cursor,
        this.instance,
        this.batchLimit,
        counters,
        counters && midway ? complete : undefined,
      );
      // Until a reset (its listing is in full, see beginListing), held counters may be behind.
      if (counters === 'skip') this.skipping = true;
      return batch;
    } catch (error) {
      if (!counters || !(error instanceof AdminApiError) || error.status !== 400) throw error;
      if (counters === 'skip') {
        // A proxy older than `counters=skip` refuses it: its moved counters come as entries until it restarts.
        this.skipRefusedBy = this.instance;
        this.logger.info({ instanceId: this.instance, err: error }, 'the proxy takes no counters=skip: moved counters come in its feed');
        return this.readChanges();
      }
      if (midway) {
        // A proxy older than `complete` refuses it: past a read's first page it is read in full states.
        this.completeRefusedBy = this.instance;
        this.logger.info(
          { instanceId: this.instance, err: error },
          'the proxy takes no complete=: later pages of a read come in full states',
        );
        return this.admin.changes(this.cursor, this.instance, this.batchLimit);
      }
      // A proxy older than counter entries refuses the parameter: it is asked without until it restarts.
      this.countersRefusedBy = this.instance;
      this.logger.info({ instanceId: this.instance, err: error }, 'the proxy takes no counters=1: its feed is read in full states');
      return this.admin.changes(this.cursor, this.instance, this.batchLimit);
    }
  }

  /**
   * A counter entry adds to a state the view holds; for one it holds no
   * state of (or of another id), the session is asked for instead, before the
   * batch moves the cursor, so a failed request loses nothing.
   */
  private async lookUpUnheld(batch: ChangeBatch): Promise<void> {
    for (const entry of batch.counters ?? []) {
      if (this.sessions.get(entry.serial)?.id === entry.id) continue;
      const found = await this.admin.getSession(entry.serial);
      if (this.stopped) return;
      if (found.session && found.instanceId === this.instance) this.take(found.session, true);
    }
  }

  /**
   * PUT /v1/peers. A proxy that refuses it (it has no peer port, or it
   * predates the call) is still synced: it serves the devices that land on
   * it. A failure to reach it is retried with the next read.
   */
  private async tellPeers(instanceId: string, replicas: number): Promise<void> {
    try {
      const told = await this.admin.putPeers(replicas);
      this.peersToldTo = told.instanceId;
      this.logger.info({ replicas, peers: told.peers, instanceId: told.instanceId }, 'proxy told its peers');
    } catch (error) {
      if (!(error instanceof AdminApiError) || error.status === undefined || error.status >= 500 || error.status === 401) throw error;
      // With one pod there is nobody to forward to: a proxy without a peer port is the usual case then.
      const log = replicas > 1 ? this.logger.warn.bind(this.logger) : this.logger.debug.bind(this.logger);
      log({ err: error, replicas }, 'the proxy did not take its peers; devices that land on it reach only its own sessions');
      // Not asked again until it restarts.
      this.peersToldTo = instanceId;
    }
  }

  private apply(batch: ChangeBatch): void {
    this.reportedHost = batch.publicHost;
    if (batch.reset || batch.instanceId !== this.instance) this.beginListing(batch.instanceId);
    const listing = this.listing;
    for (const state of batch.sessions) {
      listing?.add(state.serial);
      this.take(state, true);
    }
    for (const entry of batch.counters ?? []) {
      if (this.takeCounters(entry)) listing?.add(entry.serial);
    }
    for (const removal of batch.removed) {
      listing?.delete(removal.serial);
      const known = this.sessions.get(removal.serial);
      if (known && known.changeSeq <= removal.changeSeq) {
        this.sessions.delete(removal.serial);
        this.listener?.sessionChanged(removal.serial, undefined, known);
      }
    }
    this.cursor = batch.cursor;
    if (!batch.more) this.completeCursor = batch.cursor;
    if (listing && !batch.more) this.endListing(listing, batch.instanceId);
  }

  /** A reset: the proxy lists everything again (a new instance, or our cursor was too old). */
  private beginListing(instanceId: string): void {
    if (instanceId !== this.instance) {
      const previous = this.instance;
      this.instance = instanceId;
      this.listed = false;
      this.removals.clear();
      if (previous !== undefined) this.logger.warn({ previous, instanceId }, 'proxy restarted; it runs nothing it ran before');
      // Nothing of the old instance runs any more.
      const gone = [...this.sessions.values()];
      this.sessions.clear();
      for (const state of gone) this.listener?.sessionChanged(state.serial, undefined, state);
    }
    this.listing = new Set();
    this.completeCursor = undefined;
    this.skipping = false;
  }

  private endListing(listing: Set<string>, instanceId: string): void {
    this.listing = undefined;
    for (const [serial, state] of this.sessions) {
      // A state newer than the listing's cursor came by an event while the listing was on its way.
      if (listing.has(serial) || state.changeSeq > this.cursor) continue;
      this.sessions.delete(serial);
      this.listener?.sessionChanged(serial, undefined, state);
    }
    const first = !this.listed;
    this.listed = true;
    for (const wake of this.syncWaiters.splice(0)) wake();
    if (first) this.listener?.restarted(instanceId);
  }

  // ---- events --------------------------------------------------------------

  private onEvent(event: ProxyEvent): void {
    this.lastContact = this.clock.now();
    if (event.type === 'hello') {
      // A new instance: read its listing now rather than at the next tick.
      if (event.instanceId !== this.instance) this.pollNow();
    } else if (event.instanceId === this.instance && event.session) {
      this.take(event.session, true);
    } else if (event.serial !== undefined) {
      this.pollNow();
    }
    this.listener?.event?.(event);
  }

  // ---- taking a state ------------------------------------------------------

  /** Stores a state unless a newer one (or our own removal) is already known, and says what kind of change it was. */
  private take(state: SessionState, fromFeed: boolean, notify = true): void {
    const serial = state.serial;
    const removal = this.removals.get(serial);
    if (fromFeed && removal && state.changeSeq <= removal.changeSeq) return;
    const previous = this.sessions.get(serial);
    if (previous && state.changeSeq !== 0 && state.changeSeq <= previous.changeSeq) return;
    this.sessions.set(serial, state);
    if (this.countersOnDemand) this.freshAt.set(state, this.clock.now());
    if (!this.listener || !notify) return;
    if (previous && !reconcilerCares(previous, state)) this.listener.telemetry(serial, state, onlyCountersMoved(previous, state));
    else this.listener.sessionChanged(serial, state, previous);
  }

  /**
   * Adds a counter entry to the state held of its serial and id, if that is
   * older; false when none is held (nothing is made up). The held state is
   * updated in place: with thousands of busy sessions, a new copy per entry
   * lived just long enough (until the session's next entry, about a second)
   * to reach V8's old generation, and its collections, run on helper threads,
   * took both cores from the proxy process in standalone mode.
   */
  private takeCounters(entry: SessionCounters): boolean {
    const held = this.sessions.get(entry.serial);
    if (held?.id !== entry.id) return false;
    if (entry.changeSeq <= held.changeSeq) return true;
    copyCounters(held, entry);
    held.changeSeq = entry.changeSeq;
    this.listener?.telemetry(entry.serial, held, true);
    return true;
  }

  /**
   * Asks the proxy for sessions' live counters, in one request. They can be
   * newer than a session's changeSeq says (the sweep has not stamped them
   * yet): a state of the same changeSeq gives the held one its counters in place.
   */
  private async lookUpCounters(serials: readonly string[]): Promise<void> {
    const asked = this.clock.now();
    try {
      const found = await this.admin.listSessions(serials);
      this.lastContact = this.clock.now();
      for (const state of found.sessions) this.takeLooked(state, found.instanceId, asked);
      if (this.lookupsFailing) this.logger.info('asking the proxy for counters works again');
      this.lookupsFailing = false;
    } catch (error) {
      if (!this.lookupsFailing) {
        this.logger.warn({ sessions: serials.length, err: error }, 'asking the proxy for counters failed; the last known ones are shown');
      }
      this.lookupsFailing = true;
    }
  }

  /** A state the proxy gave when asked at `asked`: taken if newer, its counters if as new; fresh as of then. */
  private takeLooked(state: SessionState, instanceId: string, asked: number): void {
    const held = this.sessions.get(state.serial);
    if (!held || instanceId !== this.instance || state.id !== held.id) return;
    if (state.changeSeq > held.changeSeq) this.take(state, true);
    else if (state.changeSeq === held.changeSeq) copyCounters(held, state);
    const now = this.sessions.get(state.serial);
    if (now) this.freshAt.set(now, asked);
  }

  /**
   * The held counters may be more than `maxAgeMs` behind: the feed leaves
   * them out, a party is attached (counters move only then; its leaving is a
   * full change, which carried them), and they were taken longer ago.
   */
  private countersStale(held: SessionState, maxAgeMs: number): boolean {
    if (!this.skipping || held.state !== 'listening') return false;
    if (!held.deviceConnected && !held.clientConnected) return false;
    return this.clock.now() - (this.freshAt.get(held) ?? Number.NEGATIVE_INFINITY) > maxAgeMs;
  }

  private forgetOldRemovals(): void {
    const before = this.clock.now() - REMOVAL_MEMORY_MS;
    for (const [serial, removal] of this.removals) {
      if (removal.at < before && removal.changeSeq <= this.cursor) this.removals.delete(serial);
    }
  }
}

/** What the sweep moves (a counter entry, or a looked-up state's), into the held state in place. */
function copyCounters(held: SessionState, from: SessionCounters): void {
  held.transferredBytes = from.transferredBytes;
  held.droppedBytes = from.droppedBytes;
  addCounters(held.device, from.device);
  addCounters(held.client, from.client);
}

function addCounters(side: SideState, counters: SideCounters): void {
  side.forwardedBytes = counters.forwardedBytes;
  side.droppedBytes = counters.droppedBytes;
  if (counters.lastActivity !== undefined) side.lastActivity = counters.lastActivity;
}

/** What a counter entry moves (see admin-protocol.ts), and `ipWhitelist`, which `reconcilerCares` compares. */
const COUNTER_OR_SPEC_KEYS: ReadonlySet<string> = new Set([
  'transferredBytes',
  'droppedBytes',
  'changeSeq',
  'device',
  'client',
  'ipWhitelist',
] satisfies ReadonlyArray<keyof SessionState>);
const SIDE_COUNTER_KEYS: ReadonlySet<string> = new Set(['forwardedBytes', 'droppedBytes', 'lastActivity'] satisfies ReadonlyArray<
  keyof SideCounters
>);

/**
 * Of two states the reconciler does not tell apart (`reconcilerCares` false):
 * true when nothing but byte counters and activity times differ, as with a
 * counter entry; false when a connection, an address or anything else moved.
 */
export function onlyCountersMoved(a: SessionState, b: SessionState): boolean {
  return (
    sameBesides(a, b, COUNTER_OR_SPEC_KEYS) &&
    sameBesides(a.device, b.device, SIDE_COUNTER_KEYS) &&
    sameBesides(a.client, b.client, SIDE_COUNTER_KEYS)
  );
}

function sameBesides<T extends object>(a: T, b: T, ignored: ReadonlySet<string>): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const key in x) if (!ignored.has(key) && x[key] !== y[key]) return false;
  for (const key in y) if (!ignored.has(key) && x[key] !== y[key]) return false;
  return true;
}

/** True when a and b differ in what the reconciler acts on: identity, port, spec or whether it ended. */
export function reconcilerCares(a: SessionState, b: SessionState): boolean {
  return (
    a.id !== b.id ||
    a.state !== b.state ||
    a.port !== b.port ||
    a.persistent !== b.persistent ||
    a.timeoutSeconds !== b.timeoutSeconds ||
    a.notAfter !== b.notAfter ||
    a.idleTimeoutSeconds !== b.idleTimeoutSeconds ||
    a.ipWhitelist.length !== b.ipWhitelist.length ||
    a.ipWhitelist.some((entry, i) => entry !== b.ipWhitelist[i])
  );
}
