// Pure status merging: how a ProxySession's status follows from the proxy's
// view of it. No I/O; the reconciler decides when to write.
import type { SessionSpec, SessionState } from '../common/admin-protocol.ts';
import {
  effectiveLimits,
  type ProxySession,
  type ProxySessionStatus,
  type SessionCondition,
  type SessionEndReason,
  type SessionLimitDefaults,
  STATUS_SCALARS,
} from './session-store.ts';

export const READY = 'Ready';

/** What the proxy should run for this session on this port. */
export function desiredProxySpec(session: ProxySession, port: number, defaults: SessionLimitDefaults = {}): SessionSpec {
  const spec: SessionSpec = {
    id: session.uid,
    port,
    persistent: session.spec.persistent,
    ipWhitelist: [...session.spec.ipWhitelist],
  };
  if (session.spec.timeoutSeconds !== undefined) spec.timeoutSeconds = session.spec.timeoutSeconds;
  const limits = effectiveLimits(session.spec, defaults);
  const created = Date.parse(session.creationTimestamp);
  // The lifetime counts from the session's creation, so a proxy restart or a repeated /on does not extend it.
  if (limits.maxLifetimeSeconds !== undefined && !Number.isNaN(created))
    spec.notAfter = new Date(created + limits.maxLifetimeSeconds * 1000).toISOString();
  if (limits.idleTimeoutSeconds !== undefined) spec.idleTimeoutSeconds = limits.idleTimeoutSeconds;
  return spec;
}

/** True when the proxy already runs exactly the desired spec and is listening. */
export function proxyMatches(state: SessionState | undefined, desired: SessionSpec): boolean {
  return (
    state !== undefined &&
    state.state === 'listening' &&
    state.id === desired.id &&
    state.port === desired.port &&
    state.persistent === desired.persistent &&
    state.timeoutSeconds === desired.timeoutSeconds &&
    state.notAfter === desired.notAfter &&
    state.idleTimeoutSeconds === desired.idleTimeoutSeconds &&
    state.ipWhitelist.length === desired.ipWhitelist.length &&
    state.ipWhitelist.every((entry, i) => entry === desired.ipWhitelist[i])
  );
}

/** Sets the condition, keeping its transition time when its status did not change. */
export function withCondition(
  conditions: SessionCondition[] | undefined,
  next: Omit<SessionCondition, 'lastTransitionTime'>,
  now: Date,
): SessionCondition[] {
  const others = (conditions ?? []).filter((c) => c.type !== next.type);
  const previous = conditions?.find((c) => c.type === next.type);
  const lastTransitionTime = previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString();
  return [...others, { ...next, lastTransitionTime }];
}

/** The status fields that follow the proxy's live state of a session: connections, addresses, counters, activity. */
export const LIVE_FIELDS = [
  'deviceConnected',
  'clientConnected',
  'transferredBytes',
  'bytesFromDevice',
  'bytesFromClient',
  'droppedFromDevice',
  'droppedFromClient',
  'clientsRefused',
  'deviceAddress',
  'clientAddress',
  'deviceConnectedSince',
  'clientConnectedSince',
  'deviceLastActivity',
  'clientLastActivity',
] as const satisfies ReadonlyArray<keyof ProxySessionStatus>;

/** The proxy's view of a session as status fields (LIVE_FIELDS); without a state, everything is zero and disconnected. */
export function liveStatus(state: SessionState | undefined): ProxySessionStatus {
  const counters: ProxySessionStatus = {
    deviceConnected: state?.deviceConnected ?? false,
    clientConnected: state?.clientConnected ?? false,
    transferredBytes: state?.transferredBytes ?? 0,
    bytesFromDevice: state?.device.forwardedBytes ?? 0,
    bytesFromClient: state?.client.forwardedBytes ?? 0,
    droppedFromDevice: state?.device.droppedBytes ?? 0,
    droppedFromClient: state?.client.droppedBytes ?? 0,
    clientsRefused: state?.clientsRefused ?? 0,
  };
  if (state?.deviceConnected && state.deviceAddress) counters.deviceAddress = state.deviceAddress;
  if (state?.clientConnected && state.clientAddress) counters.clientAddress = state.clientAddress;
  if (state?.deviceConnected && state.device.connectedSince) counters.deviceConnectedSince = state.device.connectedSince;
  if (state?.clientConnected && state.client.connectedSince) counters.clientConnectedSince = state.client.connectedSince;
  if (state?.device.lastActivity) counters.deviceLastActivity = state.device.lastActivity;
  if (state?.client.lastActivity) counters.clientLastActivity = state.client.lastActivity;
  return counters;
}

/** A copy of status with its live fields (LIVE_FIELDS) taken from the proxy's state. */
export function withLiveStatus(status: ProxySessionStatus, state: SessionState): ProxySessionStatus {
  return withLiveFields({ ...status }, liveStatus(state));
}

const LIVE_FIELD_SET: ReadonlySet<string> = new Set(LIVE_FIELDS);

/**
 * Status with its live fields (LIVE_FIELDS) those of `live`; one absent there
 * is absent in the result. When status has the same live fields as `live`
 * (the usual case: counters moved), their values are set in place and status
 * is returned. Otherwise a new object is returned, built by `fromEntries`.
 * Adding and deleting fields one by one turns a stored status into a
 * dictionary-mode object in V8, and spreads give each copy a shape of its
 * own; either costs about 0.8 kB per session where statuses are kept.
 */
export function withLiveFields(status: ProxySessionStatus, live: ProxySessionStatus): ProxySessionStatus {
  const target = status as Record<string, unknown>;
  if (LIVE_FIELDS.every((field) => (live[field] === undefined) === (target[field] === undefined))) {
    for (const field of LIVE_FIELDS) if (live[field] !== undefined) target[field] = live[field];
    return status;
  }
  const entries = Object.entries(status).filter(([key]) => !LIVE_FIELD_SET.has(key));
  for (const field of LIVE_FIELDS) if (live[field] !== undefined) entries.push([field, live[field]]);
  return Object.fromEntries(entries) as ProxySessionStatus;
}

/** Status fields that move with traffic alone; writes that change only these are rate-limited. */
export const TRAFFIC_FIELDS = [
  'transferredBytes',
  'bytesFromDevice',
  'bytesFromClient',
  'droppedFromDevice',
  'droppedFromClient',
  'deviceLastActivity',
  'clientLastActivity',
] as const satisfies ReadonlyArray<keyof ProxySessionStatus>;

const TRAFFIC_FIELD_SET: ReadonlySet<string> = new Set(TRAFFIC_FIELDS);

/** True when a and b differ at most in traffic counters. */
export function sameBesidesTraffic(a: ProxySessionStatus, b: ProxySessionStatus): boolean {
  return sameStatus(a, b, TRAFFIC_FIELD_SET);
}

/** Where a session is served: the proxy pod, the host clients reach it at, and the port. */
export interface Placement {
  proxy: string;
  host: string;
  port: number;
}

/** A pod and port are allocated and about to be programmed. */
export function pendingStatus(session: ProxySession, { proxy, host, port }: Placement, now: Date): ProxySessionStatus {
  const status: ProxySessionStatus = {
    phase: 'Pending',
    proxy,
    host,
    port,
    deviceConnected: false,
    clientConnected: false,
    transferredBytes: 0,
    conditions: withCondition(
      session.status.conditions,
      {
        type: READY,
        status: 'False',
        reason: 'PortAllocated',
        message: `Port ${port} allocated; programming the proxy`,
        observedGeneration: session.generation,
      },
      now,
    ),
  };
  if (session.status.observedGeneration !== undefined) status.observedGeneration = session.status.observedGeneration;
  return status;
}

/** The proxy listens on the port with the spec of session.generation. */
export function activeStatus(session: ProxySession, { proxy, host, port }: Placement, state: SessionState, now: Date): ProxySessionStatus {
  return {
    phase: 'Active',
    proxy,
    host,
    port,
    ...liveStatus(state),
    ...(state.notAfter !== undefined ? { expiresAt: state.notAfter } : {}),
    ...(state.idleTimeoutSeconds !== undefined ? { idleTimeoutSeconds: state.idleTimeoutSeconds } : {}),
    observedGeneration: session.generation,
    conditions: withCondition(
      session.status.conditions,
      {
        type: READY,
        status: 'True',
        reason: 'Listening',
        message: `Listening on port ${port}`,
        observedGeneration: session.generation,
      },
      now,
    ),
  };
}

export function endedStatus(
  session: ProxySession,
  reason: SessionEndReason,
  state: SessionState | undefined,
  now: Date,
): ProxySessionStatus {
  // The last counters stay readable during the retention time; connections are over.
  const last: ProxySessionStatus = state ? liveStatus(state) : { ...session.status };
  const built: ProxySessionStatus = {
    ...session.status,
    phase: 'Ended',
    ...liveStatus(undefined),
    transferredBytes: last.transferredBytes ?? 0,
    bytesFromDevice: last.bytesFromDevice ?? 0,
    bytesFromClient: last.bytesFromClient ?? 0,
    droppedFromDevice: last.droppedFromDevice ?? 0,
    droppedFromClient: last.droppedFromClient ?? 0,
    clientsRefused: last.clientsRefused ?? 0,
    ...(last.deviceLastActivity ? { deviceLastActivity: last.deviceLastActivity } : {}),
    ...(last.clientLastActivity ? { clientLastActivity: last.clientLastActivity } : {}),
    endedReason: reason,
    endedAt: now.toISOString(),
    conditions: withCondition(
      session.status.conditions,
      {
        type: READY,
        status: 'False',
        reason,
        message: `Session ended: ${reason}`,
        observedGeneration: session.generation,
      },
      now,
    ),
  };
  // Taken out by a rest pattern, not deleted: a deleted field makes the kept status a slower, larger object in V8.
  const { deviceAddress: _d, clientAddress: _c, deviceConnectedSince: _ds, clientConnectedSince: _cs, ...status } = built;
  return status;
}

export function failedStatus(session: ProxySession, reason: SessionEndReason, message: string, now: Date): ProxySessionStatus {
  return {
    phase: 'Failed',
    deviceConnected: false,
    clientConnected: false,
    transferredBytes: 0,
    endedReason: reason,
    endedAt: now.toISOString(),
    observedGeneration: session.generation,
    conditions: withCondition(
      session.status.conditions,
      {
        type: READY,
        status: 'False',
        reason,
        message,
        observedGeneration: session.generation,
      },
      now,
    ),
  };
}

const NOTHING: ReadonlySet<string> = new Set();

/**
 * Structural equality of statuses, so unchanged counters cause no write
 * (absent and undefined are equal); fields in `ignoring` are not compared.
 */
export function sameStatus(a: ProxySessionStatus, b: ProxySessionStatus, ignoring: ReadonlySet<string> = NOTHING): boolean {
  return STATUS_SCALARS.every((field) => ignoring.has(field) || a[field] === b[field]) && sameConditions(a.conditions, b.conditions);
}

function sameConditions(a: SessionCondition[] | undefined, b: SessionCondition[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.length === b.length &&
    a.every((c, i) => {
      const d = b[i];
      if (d === undefined) return false;
      return (
        c.type === d.type &&
        c.status === d.status &&
        c.reason === d.reason &&
        c.message === d.message &&
        c.lastTransitionTime === d.lastTransitionTime &&
        c.observedGeneration === d.observedGeneration
      );
    })
  );
}
