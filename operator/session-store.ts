// The ProxySession store: what the Control API writes and the reconciler
// converges. The names mirror the ProxySession custom resource
// (cccp.tcxn.net/v1alpha1) so the Kubernetes store maps field for field;
// the memory store serves the standalone mode and tests.
import { ENDED_REASONS } from '../common/admin-protocol.ts';

export interface ProxySessionSpec {
  /** Immutable; also the store key (the resource name is derived from it). */
  serial: string;
  persistent: boolean;
  /** Normalized IPs or CIDRs; empty admits every client. */
  ipWhitelist: string[];
  /** Seconds to wait for the first client; absent means forever. */
  timeoutSeconds?: number;
  /** Seconds from creation after which the session ends; absent takes the deployment default. */
  maxLifetimeSeconds?: number;
  /** Seconds without forwarded bytes or a connect after which it ends; absent takes the deployment default. */
  idleTimeoutSeconds?: number;
}

/** Deployment-wide lifetime defaults for sessions that ask for none (CCCP_DEFAULT_MAX_LIFETIME_S, CCCP_DEFAULT_IDLE_TIMEOUT_S). */
export interface SessionLimitDefaults {
  maxLifetimeSeconds?: number;
  idleTimeoutSeconds?: number;
}

/** The limits that apply to a session: its own, else the deployment's. */
export function effectiveLimits(spec: ProxySessionSpec, defaults: SessionLimitDefaults): SessionLimitDefaults {
  const limits: SessionLimitDefaults = {};
  const maxLifetime = spec.maxLifetimeSeconds ?? defaults.maxLifetimeSeconds;
  if (maxLifetime !== undefined) limits.maxLifetimeSeconds = maxLifetime;
  const idle = spec.idleTimeoutSeconds ?? defaults.idleTimeoutSeconds;
  if (idle !== undefined) limits.idleTimeoutSeconds = idle;
  return limits;
}

export const SESSION_PHASES = ['Pending', 'Active', 'Ended', 'Failed'] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

/** Why a session is Ended (from the proxy) or Failed (from the reconciler). */
export const SESSION_END_REASONS = [...ENDED_REASONS, 'NoAvailablePorts', 'ProxyLost', 'DuplicateSerial'] as const;
export type SessionEndReason = (typeof SESSION_END_REASONS)[number];

export interface SessionCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/**
 * Every scalar field of a session's status and the kind of value it holds:
 * the one list the status type, the ProxySession parser, the status patch
 * and the status comparison derive from. A new field is one line here plus
 * the CRD schema (a test holds the two together).
 */
export const STATUS_SCALAR_KINDS = {
  phase: SESSION_PHASES,
  /** The proxy pod holding the session; with port, the allocation. */
  proxy: 'string',
  host: 'string',
  port: 'integer',
  deviceConnected: 'boolean',
  clientConnected: 'boolean',
  transferredBytes: 'integer',
  deviceAddress: 'string',
  clientAddress: 'string',
  /** When the device's / client's current connection was made. */
  deviceConnectedSince: 'string',
  clientConnectedSince: 'string',
  /** When the device / client last sent a byte (about a second's accuracy); kept after it leaves. */
  deviceLastActivity: 'string',
  clientLastActivity: 'string',
  /** Payload bytes each side sent that were forwarded (their sum is transferredBytes). */
  bytesFromDevice: 'integer',
  bytesFromClient: 'integer',
  /** Payload bytes each side sent while the other was absent (discarded). */
  droppedFromDevice: 'integer',
  droppedFromClient: 'integer',
  /** Client connections refused by the whitelist. */
  clientsRefused: 'integer',
  /** When the session ends by its lifetime limit (its own or the deployment default). */
  expiresAt: 'string',
  /** The idle limit in force (its own or the deployment default). */
  idleTimeoutSeconds: 'integer',
  endedReason: SESSION_END_REASONS,
  /** ISO time the session ended or failed; drives retention of ended records. */
  endedAt: 'string',
  observedGeneration: 'integer',
} as const;

export type StatusScalarKind = 'string' | 'integer' | 'boolean' | readonly string[];

type ValueOfKind<K> = K extends 'string'
  ? string
  : K extends 'integer'
    ? number
    : K extends 'boolean'
      ? boolean
      : K extends readonly (infer E)[]
        ? E
        : never;

export type StatusScalars = { -readonly [F in keyof typeof STATUS_SCALAR_KINDS]?: ValueOfKind<(typeof STATUS_SCALAR_KINDS)[F]> };

export const STATUS_SCALARS = Object.keys(STATUS_SCALAR_KINDS) as Array<keyof StatusScalars>;

export interface ProxySessionStatus extends StatusScalars {
  conditions?: SessionCondition[];
}

/** Whether value fits the kind of a status field. */
export function isOfKind(kind: StatusScalarKind, value: unknown): boolean {
  if (kind === 'string') return typeof value === 'string';
  if (kind === 'integer') return typeof value === 'number' && Number.isInteger(value);
  if (kind === 'boolean') return typeof value === 'boolean';
  return kind.includes(value as string);
}

/** The finalizer that makes deletion wait until the reconciler freed the port. */
export const SESSION_FINALIZER = 'cccp.tcxn.net/session-cleanup';

export interface ProxySession {
  serial: string;
  /** Identity of this incarnation; a session re-created for the same serial gets a new one. */
  uid: string;
  /** Increments on every spec change, never on status writes. */
  generation: number;
  creationTimestamp: string;
  /** metadata.finalizers holds SESSION_FINALIZER. */
  hasFinalizer: boolean;
  /** metadata.deletionTimestamp is set: deletion waits for the finalizer to go. */
  deleting: boolean;
  spec: ProxySessionSpec;
  status: ProxySessionStatus;
}

export type ApplyResult =
  | { outcome: 'created' | 'updated' | 'unchanged'; session: ProxySession }
  /** The existing session is being deleted; apply again once it is gone. */
  | { outcome: 'deleting'; session: ProxySession };

export type DeleteResult = 'deleted' | 'deleting' | 'not-found';

/** A session whose serial an older one holds, and the name of the resource that holds it. */
export interface Duplicate {
  session: ProxySession;
  heldBy: string;
}

export type SessionChange = { type: 'upserted'; session: ProxySession } | { type: 'removed'; serial: string; uid: string };

export interface SessionStore {
  get(serial: string): Promise<ProxySession | undefined>;
  list(): Promise<ProxySession[]>;
  /**
   * Create-or-update of the spec for spec.serial. A new session carries the
   * finalizer; an update bumps the generation only if the spec changed.
   */
  apply(spec: ProxySessionSpec): Promise<ApplyResult>;
  /**
   * Requests deletion (of that incarnation only, when uid is given). With the
   * finalizer present the session turns `deleting` until the reconciler
   * removes it; without it the session is gone at once.
   */
  delete(serial: string, uid?: string): Promise<DeleteResult>;
  /** Adds or removes the finalizer; removing it from a deleting session removes the session. */
  setFinalizer(serial: string, uid: string, present: boolean): Promise<ProxySession | undefined>;
  /** Replaces the status of that incarnation; undefined when it no longer exists. */
  writeStatus(serial: string, uid: string, status: ProxySessionStatus): Promise<ProxySession | undefined>;
  /**
   * Optional fast path for telemetry: sets the live fields (connections,
   * counters, activity) of the session of that uid if it is Active on that
   * port, in place and at once, without telling subscribers (nothing waits on
   * counters). False when the session is not that; the caller then writes
   * status the ordinary way. Only a store in the reconciler's own process
   * offers it.
   */
  writeTelemetry?(serial: string, uid: string, port: number, live: ProxySessionStatus): boolean;
  /**
   * Sessions that carry the serial besides its session, in a store where they
   * can exist (resources made with kubectl under other names), each with the
   * name of the resource that holds the serial. They run nothing.
   */
  duplicatesOf?(serial: string): Duplicate[];
  /** Calls the listener after every change; returns the unsubscribe function. */
  subscribe(listener: (change: SessionChange) => void): () => void;
}

/** Ended and Failed sessions hold no port and answer 404 to /status. */
export function isTerminal(session: ProxySession): boolean {
  return session.status.phase === 'Ended' || session.status.phase === 'Failed';
}

/** A session that should be listening: neither terminal nor being deleted. */
export function isLive(session: ProxySession): boolean {
  return !session.deleting && !isTerminal(session);
}

export function sameSpec(a: ProxySessionSpec, b: ProxySessionSpec): boolean {
  return (
    a.serial === b.serial &&
    a.persistent === b.persistent &&
    a.timeoutSeconds === b.timeoutSeconds &&
    a.maxLifetimeSeconds === b.maxLifetimeSeconds &&
    a.idleTimeoutSeconds === b.idleTimeoutSeconds &&
    a.ipWhitelist.length === b.ipWhitelist.length &&
    a.ipWhitelist.every((entry, i) => entry === b.ipWhitelist[i])
  );
}

// Copies of the known shapes, field by field: stores hand out copies on
// every read and write, and structuredClone was the largest cost of the
// status path with a thousand busy sessions.

export function copySpec(spec: ProxySessionSpec): ProxySessionSpec {
  const copy: ProxySessionSpec = { serial: spec.serial, persistent: spec.persistent, ipWhitelist: [...spec.ipWhitelist] };
  if (spec.timeoutSeconds !== undefined) copy.timeoutSeconds = spec.timeoutSeconds;
  if (spec.maxLifetimeSeconds !== undefined) copy.maxLifetimeSeconds = spec.maxLifetimeSeconds;
  if (spec.idleTimeoutSeconds !== undefined) copy.idleTimeoutSeconds = spec.idleTimeoutSeconds;
  return copy;
}

export function copyStatus(status: ProxySessionStatus): ProxySessionStatus {
  const copy: ProxySessionStatus = { ...status };
  if (status.conditions) copy.conditions = status.conditions.map((c) => ({ ...c }));
  return copy;
}

/**
 * A copy of status to keep: built by `fromEntries`, so statuses with the same
 * fields share one shape in V8 (a spread copy often gets a shape of its own,
 * about 0.8 kB each).
 */
export function statusToKeep(status: ProxySessionStatus): ProxySessionStatus {
  return Object.fromEntries(Object.entries(copyStatus(status))) as ProxySessionStatus;
}

export function copySession(session: ProxySession): ProxySession {
  return { ...session, spec: copySpec(session.spec), status: copyStatus(session.status) };
}
