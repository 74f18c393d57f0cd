// The contract of the proxy pod's internal admin API, shared by the proxy
// (server) and the reconciler (client). Plain JSON over HTTP:
//
//   GET    /v1/info                  -> InstanceInfo
//   GET    /v1/sessions[?serial=S…]  -> SessionList (live counters; with serials, those of them it runs)
//   GET    /v1/changes?since=N&instance=I&limit=L&counters=1|skip&complete=K -> ChangeBatch (the change feed)
//   GET    /v1/sessions/{serial}     -> SessionLookup (one session, or none)
//   GET    /v1/devices/{serial}      -> DeviceLookup (whether a device waits here for its session)
//   PUT    /v1/sessions/{serial}     SessionSpec -> SessionState (200), 400, 409
//   DELETE /v1/sessions/{serial}     -> 200 SessionState | 404
//   GET    /v1/events                -> NDJSON stream of ProxyEvent, first a "hello" (a reader 16 MiB behind is cut)
//   GET    /v1/peers                 -> PeersState | 409 (no peer port)
//   PUT    /v1/peers                 PeersSpec -> PeersState (200), 400, 409 (no peer port)
//
// {serial} is URL-encoded (a serial may hold '/', '?', '%' and the like).
// Every request needs `Authorization: Bearer <token>` when the API listens on
// TCP; on a Unix socket the file mode (0600) is the guard.
//
// The API is declarative: PUT the desired state, as often as you like. A
// session that ends by itself (timeout, a party closing a non-persistent
// session) stays listed with state "ended" and its reason until it is deleted
// or put again with another `id`, so a reconciler that missed the event still
// learns how it ended. After a restart `instanceId` changes and the list is
// empty: the caller must put every live session again.
//
// The peers. The release's pod count is not among a proxy pod's settings,
// so that scaling the release up changes no pod template and restarts no
// pod: the operator PUTs it to every pod it syncs with (first contact and
// each new instance) before it programs sessions there. The pod then offers
// devices to, and announces sessions to, ordinals 0..replicas-1 besides its
// own, and any pod that has contacted it. `replicas` is a whole number from
// 1 to 64 and must be above the pod's own ordinal; anything else, or any
// other field, is a 400 naming the field.
//
// The change feed. Every change of a session (a put that changes it, connect,
// disconnect, refusal, end, moved counters, removal) gives it the next
// `changeSeq` of the instance. `GET /v1/changes?since=N&instance=I` answers
// the sessions whose latest change is after N, each once with its current
// state, and the serials removed after N, in change order, at most `limit`
// (default 500, at most 5000) per answer; `cursor` is what to pass as `since`
// next, `more` says to ask again at once. A read that fails loses nothing:
// ask again with the same cursor. When I is absent or not this instance, or N
// is older than the oldest removal still remembered (the proxy keeps at least
// the last 10,000), or beyond the instance's latest change, the answer has
// `reset: true` and lists everything from the start: the reader forgets every
// session not listed by the time an answer says `more: false`. The pages
// after a reset are ordinary answers (they may carry removals). A session
// unchanged for so long that its changeSeq falls below the oldest removal
// remembered is given a fresh changeSeq (it shows as changed once). Counters are
// compared by a sweep of the connected sessions about every 250 ms, so a
// moved counter shows in the feed within about that long. Every event on
// /v1/events carries the session's state after it (with its changeSeq), so a
// reader need not ask after a connect.
//
// Counter entries. Most changes are the sweep's moved counters. A reader that
// adds `counters=1` gets, for a session whose latest full change (any change
// but moved counters: a put that changed it, a connect, a disconnect, a
// refusal, an end) is at or below N, a SessionCounters in `counters` instead
// of its state in `sessions`: what the sweep moves, and the changeSeq. Why
// that is enough: an answer with `more: false` has the instance's latest seq
// as its cursor C, so by then every session changed at or below C has been
// listed to the reader (where its latest change is), in full or as an entry
// on a state it held; a session whose latest full change is at or below C
// has so been given a state at least that new, which differs from its
// current one in counters alone. An answer with `more: true` promises less:
// its cursor is its last item's seq, and a session whose latest change lies
// past it was skipped, whatever its earlier changes. So with a cursor N of an
// answer with `more: true` a reader adds `complete=K`, K the cursor of its
// last answer with `more: false` (K <= N; a reset forgets it): the rule above
// then holds with K in place of N, since what K promised still holds and
// later pages only add to it. A reader that adds `counters=skip` instead is
// told nothing of such sessions (the cursor passes them): it asks for a
// session (GET /v1/sessions/{serial}) when it wants its counters, whose
// live values can be newer than its changeSeq says. Its answers come in the
// order of the sessions' latest full changes, and its page cursors are
// those: a session whose full change a page passed is in that page, whatever
// its later moved counters. Without `counters=1` or
// `skip` every session comes in full, as before; `complete` without one of
// them, or above N, is a 400. A reset answer is in full. A
// session restamped when the floor rises keeps its latest full change, which
// is below the floor: a cursor at or above the floor has seen it, one below
// gets a reset. A session that has a full change while its answer is being
// written is left out of it: that change is after the cursor, so the next
// answer lists it in full. A reader applies an entry to the state it holds
// of that serial and id, if older; holding none, it asks for the session
// (GET /v1/sessions/{serial}).

export interface SessionSpec {
  /** Opaque identity of this incarnation of the session (e.g. the resource uid). */
  id: string;
  port: number;
  persistent: boolean;
  /** IPs or CIDRs; empty admits every client. */
  ipWhitelist: string[];
  /** Seconds to wait for the first client; absent means forever. */
  timeoutSeconds?: number;
  /** ISO time at which the session ends with reason MaxLifetime; absent means never. */
  notAfter?: string;
  /** Seconds without a forwarded byte or a connect after which the session ends (IdleTimeout); absent means never. */
  idleTimeoutSeconds?: number;
}

/** Why a session ended on the proxy. */
export const ENDED_REASONS = [
  'ClientConnectTimeout',
  'DeviceDisconnected',
  'ClientDisconnected',
  'IdleTimeout',
  'MaxLifetime',
  'Deleted',
  'Superseded',
] as const;
export type EndedReason = (typeof ENDED_REASONS)[number];

/** What one side of a session has done. Timestamps are ISO; lastActivity is accurate to about a second. */
export interface SideState {
  /** Payload bytes this side sent that were forwarded to the other side. */
  forwardedBytes: number;
  /** Payload bytes this side sent while the other side was absent (discarded). */
  droppedBytes: number;
  /** When its current connection was made; absent while it is not connected. */
  connectedSince?: string;
  /** When it last sent a byte, kept after it disconnects; absent if it never did. */
  lastActivity?: string;
}

export interface SessionState extends SessionSpec {
  serial: string;
  state: 'listening' | 'ended';
  endedReason?: EndedReason;
  deviceConnected: boolean;
  clientConnected: boolean;
  deviceAddress?: string;
  clientAddress?: string;
  /** Payload bytes forwarded, both directions together. */
  transferredBytes: number;
  /** Payload bytes discarded because the other party was absent. */
  droppedBytes: number;
  device: SideState;
  client: SideState;
  /** Client connections closed because the whitelist did not admit them. */
  clientsRefused: number;
  /** ISO time the listener started. */
  listeningSince: string;
  endedAt?: string;
  /** The change-feed sequence number of this state (see the change feed above); 0 from a proxy without the feed. */
  changeSeq: number;
}

export interface InstanceInfo {
  instanceId: string;
  startedAt: string;
  devicePort: number;
  /** The host clients reach this pod's session ports at, when the pod knows it (CCCP_PUBLIC_HOST, e.g. its node's address). */
  publicHost?: string;
}

export interface SessionList extends InstanceInfo {
  sessions: SessionState[];
}

/** A session removed by a DELETE (or superseded by a put with another id), as the change feed reports it. */
export interface SessionRemoval {
  serial: string;
  /** The id of the removed incarnation. */
  id: string;
  changeSeq: number;
}

/** What the activity sweep moves on one side of a session. */
export type SideCounters = Pick<SideState, 'forwardedBytes' | 'droppedBytes' | 'lastActivity'>;

/** A change-feed entry for a session whose other fields the reader already holds (see the change feed above). */
export interface SessionCounters extends Pick<SessionState, 'serial' | 'id' | 'changeSeq' | 'transferredBytes' | 'droppedBytes'> {
  device: SideCounters;
  client: SideCounters;
}

/** One answer of the change feed. */
export interface ChangeBatch extends InstanceInfo {
  /** Pass as `since` next time (with this instanceId as `instance`). */
  cursor: number;
  /** The cursor was not this instance's or too old: this answer starts a full listing (see above). */
  reset: boolean;
  /** Sessions changed after `since`, each once, with its current state, in change order. */
  sessions: SessionState[];
  /** With `counters=1` (see above): sessions whose only changes after `since` are moved counters, each once, in change order. */
  counters?: SessionCounters[];
  /** Sessions removed after `since` and not put again since. */
  removed: SessionRemoval[];
  /** More changes are waiting: ask again at once with `cursor`. */
  more: boolean;
}

/** Largest `limit` of one change-feed answer, and the default. */
export const MAX_CHANGE_BATCH = 5000;
/** Serials one GET /v1/sessions?serial=… may name. */
export const MAX_LISTED_SERIALS = 500;
export const DEFAULT_CHANGE_BATCH = 500;

/** Body of PUT /v1/peers: how many proxy pods the release has (ordinals 0 to replicas-1). */
export interface PeersSpec {
  replicas: number;
}

/** What a proxy pod knows of the release's other pods. */
export interface PeersState extends InstanceInfo {
  /** This pod's StatefulSet ordinal. */
  ordinal: number;
  /** The pod count last told (or given at start); absent before anyone said. */
  replicas?: number;
  /** The ordinals devices are offered to and sessions announced to: the told ones besides this pod, and any that contacted it. */
  peers: number[];
}

/** Largest release, in proxy pods (StatefulSet ordinals 0 to 63). */
export const MAX_PROXY_REPLICAS = 64;

/** Whether a registered device of this serial waits on this pod for its session (the operator places the session there). */
export interface DeviceLookup extends InstanceInfo {
  pending: boolean;
}

/** One session by serial; `session` is absent when the proxy has none. */
export interface SessionLookup extends InstanceInfo {
  session?: SessionState;
}

export const PROXY_EVENT_TYPES = [
  'hello',
  'device-connected',
  'device-disconnected',
  'client-connected',
  'client-disconnected',
  'client-refused',
  'session-ended',
  // Sent every 15 s on an otherwise quiet stream, so a reader can tell quiet from dead.
  'heartbeat',
] as const;
export type ProxyEventType = (typeof PROXY_EVENT_TYPES)[number];

export interface ProxyEvent {
  type: ProxyEventType;
  instanceId: string;
  /** Increases by one per event within an instance. */
  seq: number;
  at: string;
  serial?: string;
  id?: string;
  address?: string;
  reason?: string;
  /** The session's state right after the event (absent on hello and heartbeat). */
  session?: SessionState;
}

export const ADMIN_ERROR_CODES = ['bad_request', 'unauthorized', 'not_found', 'port_unavailable', 'conflict', 'internal'] as const;

/** Body of every 4xx/5xx answer. `code` is stable, `message` is for people. */
export interface AdminError {
  code: (typeof ADMIN_ERROR_CODES)[number];
  message: string;
}

/** Membership test that narrows: `isOneOf(ENDED_REASONS, value)`. */
export function isOneOf<T extends string>(list: readonly T[], value: unknown): value is T {
  return (list as readonly unknown[]).includes(value);
}
