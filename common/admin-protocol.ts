// The contract of the proxy pod's internal admin API, shared by the proxy
// (server) and the reconciler (client). Plain JSON over HTTP:
//
//   GET    /v1/info                  -> InstanceInfo
//   GET    /v1/sessions              -> SessionList (live counters)
//   GET    /v1/sessions/{serial}     -> SessionLookup (one session, or none)
//   PUT    /v1/sessions/{serial}     SessionSpec -> SessionState (200), 400, 409
//   DELETE /v1/sessions/{serial}     -> 200 SessionState | 404
//   GET    /v1/events                -> NDJSON stream of ProxyEvent, first a "hello"
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

export interface SessionSpec {
  /** Opaque identity of this incarnation of the session (e.g. the resource uid). */
  id: string;
  port: number;
  persistent: boolean;
  /** IPs or CIDRs; empty admits every client. */
  ipWhitelist: string[];
  /** Seconds to wait for the first client; absent means forever. */
  timeoutSeconds?: number;
}

/** Why a session ended on the proxy. */
export const ENDED_REASONS = ['ClientConnectTimeout', 'DeviceDisconnected', 'ClientDisconnected', 'Deleted', 'Superseded'] as const;
export type EndedReason = (typeof ENDED_REASONS)[number];

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
  /** ISO time the listener started. */
  listeningSince: string;
  endedAt?: string;
}

export interface InstanceInfo {
  instanceId: string;
  startedAt: string;
  devicePort: number;
}

export interface SessionList extends InstanceInfo {
  sessions: SessionState[];
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
