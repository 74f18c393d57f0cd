// Typed HTTP client for the proxy pod's admin API (proxy-pod/admin-protocol.ts),
// over a Unix socket or TCP with a bearer token. Every answer is checked
// against the contract before it is returned, so nothing untyped leaks out.
import http from 'node:http';
import {
  ADMIN_ERROR_CODES,
  type AdminError,
  type ChangeBatch,
  ENDED_REASONS,
  type InstanceInfo,
  isOneOf,
  type PeersState,
  PROXY_EVENT_TYPES,
  type ProxyEvent,
  type SessionCounters,
  type SessionList,
  type SessionLookup,
  type SessionRemoval,
  type SessionSpec,
  type SessionState,
  type SideCounters,
  type SideState,
} from '../common/admin-protocol.ts';
import { type Clock, systemClock } from '../common/clock.ts';

export type AdminEndpoint = { socketPath: string } | { host: string; port: number; token: string };

export type AdminErrorCode = AdminError['code'] | 'unreachable' | 'bad_response';

export class AdminApiError extends Error {
  constructor(
    readonly status: number | undefined,
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }
}

export interface EventStreamHandlers {
  onEvent(event: ProxyEvent): void;
  /** Called when the stream connects (after its hello) or drops. */
  onConnectionChange?(connected: boolean, error?: Error): void;
}

export interface EventStream {
  close(): void;
}

/**
 * How the feed tells of sessions whose counters alone moved (see
 * admin-protocol.ts): as counter entries, or not at all (`skip`: the reader
 * asks for a session when it wants its counters). Undefined: in full states.
 */
export type FeedCounters = 'entries' | 'skip';

/** What the reconciler needs from the proxy; faked in unit tests. */
export interface ProxyAdmin {
  info(): Promise<InstanceInfo>;
  /** Every session, or those of `serials` the proxy runs (their live counters, say). */
  listSessions(serials?: readonly string[]): Promise<SessionList>;
  /**
   * The change feed: what changed after `since` (see admin-protocol.ts);
   * `counters` asks for counter entries or to skip moved counters,
   * `complete` names the cursor of the last answer with `more: false` when
   * `since` is not one.
   */
  changes(since: number, instance: string | undefined, limit?: number, counters?: FeedCounters, complete?: number): Promise<ChangeBatch>;
  /** Whether a device of this serial waits on the proxy for its session. */
  devicePending(serial: string): Promise<boolean>;
  /** One session by serial, with the instance that answered. */
  getSession(serial: string): Promise<SessionLookup>;
  putSession(serial: string, spec: SessionSpec): Promise<SessionState>;
  /** The removed session's last state, or undefined when the proxy did not know it. */
  deleteSession(serial: string): Promise<SessionState | undefined>;
  watchEvents(handlers: EventStreamHandlers): EventStream;
  /** Tells the proxy how many pods the release has, so it knows its peers. */
  putPeers(replicas: number): Promise<PeersState>;
  close(): void;
}

export interface ProxyAdminClientOptions {
  endpoint: AdminEndpoint;
  requestTimeoutMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** An event stream silent for this long is reconnected. */
  streamIdleMs?: number;
  clock?: Clock;
}

// ---- shape checks -------------------------------------------------------

type Json = Record<string, unknown>;

function fail(what: string): never {
  throw new AdminApiError(undefined, 'bad_response', `Admin API answered a malformed ${what}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(what);
  return value;
}

export function toInstanceInfo(value: unknown): InstanceInfo {
  if (
    !isObject(value) ||
    typeof value.instanceId !== 'string' ||
    typeof value.startedAt !== 'string' ||
    typeof value.devicePort !== 'number'
  ) {
    fail('instance info');
  }
  const info: InstanceInfo = { instanceId: value.instanceId, startedAt: value.startedAt, devicePort: value.devicePort };
  const publicHost = optionalString(value.publicHost, 'instance info');
  if (publicHost) info.publicHost = publicHost;
  return info;
}

/** One side's record; a proxy older than these fields answers none, read as zeros. */
function toSideState(value: unknown): SideState {
  if (!isObject(value)) return { forwardedBytes: 0, droppedBytes: 0 };
  const side: SideState = {
    forwardedBytes: typeof value.forwardedBytes === 'number' ? value.forwardedBytes : 0,
    droppedBytes: typeof value.droppedBytes === 'number' ? value.droppedBytes : 0,
  };
  const since = optionalString(value.connectedSince, 'session state');
  if (since !== undefined) side.connectedSince = since;
  const activity = optionalString(value.lastActivity, 'session state');
  if (activity !== undefined) side.lastActivity = activity;
  return side;
}

export function toSessionState(value: unknown): SessionState {
  const what = 'session state';
  if (!isObject(value)) fail(what);
  const v = value;
  if (
    typeof v.serial !== 'string' ||
    typeof v.id !== 'string' ||
    typeof v.port !== 'number' ||
    typeof v.persistent !== 'boolean' ||
    !Array.isArray(v.ipWhitelist) ||
    !v.ipWhitelist.every((e) => typeof e === 'string') ||
    (v.state !== 'listening' && v.state !== 'ended') ||
    typeof v.deviceConnected !== 'boolean' ||
    typeof v.clientConnected !== 'boolean' ||
    typeof v.transferredBytes !== 'number'
  ) {
    fail(what);
  }
  const state: SessionState = {
    serial: v.serial,
    id: v.id,
    port: v.port,
    persistent: v.persistent,
    ipWhitelist: v.ipWhitelist as string[],
    state: v.state,
    deviceConnected: v.deviceConnected,
    clientConnected: v.clientConnected,
    transferredBytes: v.transferredBytes,
    droppedBytes: typeof v.droppedBytes === 'number' ? v.droppedBytes : 0,
    listeningSince: optionalString(v.listeningSince, what) ?? '',
    device: toSideState(v.device),
    client: toSideState(v.client),
    clientsRefused: typeof v.clientsRefused === 'number' ? v.clientsRefused : 0,
    changeSeq: typeof v.changeSeq === 'number' ? v.changeSeq : 0,
  };
  const notAfter = optionalString(v.notAfter, what);
  if (notAfter !== undefined) state.notAfter = notAfter;
  if (typeof v.idleTimeoutSeconds === 'number') state.idleTimeoutSeconds = v.idleTimeoutSeconds;
  if (typeof v.timeoutSeconds === 'number') state.timeoutSeconds = v.timeoutSeconds;
  const reason = optionalString(v.endedReason, what);
  if (reason !== undefined) {
    if (!isOneOf(ENDED_REASONS, reason)) fail(what);
    state.endedReason = reason;
  }
  const deviceAddress = optionalString(v.deviceAddress, what);
  if (deviceAddress !== undefined) state.deviceAddress = deviceAddress;
  const clientAddress = optionalString(v.clientAddress, what);
  if (clientAddress !== undefined) state.clientAddress = clientAddress;
  const endedAt = optionalString(v.endedAt, what);
  if (endedAt !== undefined) state.endedAt = endedAt;
  return state;
}

export function toPeersState(value: unknown): PeersState {
  const info = toInstanceInfo(value);
  if (
    !isObject(value) ||
    typeof value.ordinal !== 'number' ||
    (value.replicas !== undefined && typeof value.replicas !== 'number') ||
    !Array.isArray(value.peers) ||
    !value.peers.every((o) => typeof o === 'number')
  ) {
    fail('peers state');
  }
  return {
    ...info,
    ordinal: value.ordinal,
    ...(typeof value.replicas === 'number' ? { replicas: value.replicas } : {}),
    peers: value.peers as number[],
  };
}

export function toSessionList(value: unknown): SessionList {
  const info = toInstanceInfo(value);
  if (!isObject(value) || !Array.isArray(value.sessions)) fail('session list');
  return { ...info, sessions: value.sessions.map(toSessionState) };
}

function toSessionRemoval(value: unknown): SessionRemoval {
  if (!isObject(value) || typeof value.serial !== 'string' || typeof value.id !== 'string' || typeof value.changeSeq !== 'number') {
    fail('change batch');
  }
  return { serial: value.serial, id: value.id, changeSeq: value.changeSeq };
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** One side of a counter entry: unlike a state's, every count must be there (no older proxy sends entries). */
function toSideCounters(value: unknown): SideCounters {
  if (!isObject(value) || !isCount(value.forwardedBytes) || !isCount(value.droppedBytes)) fail('counter entry');
  const side: SideCounters = { forwardedBytes: value.forwardedBytes, droppedBytes: value.droppedBytes };
  const activity = optionalString(value.lastActivity, 'counter entry');
  if (activity !== undefined) side.lastActivity = activity;
  return side;
}

export function toSessionCounters(value: unknown): SessionCounters {
  if (
    !isObject(value) ||
    typeof value.serial !== 'string' ||
    typeof value.id !== 'string' ||
    !isCount(value.changeSeq) ||
    !isCount(value.transferredBytes) ||
    !isCount(value.droppedBytes)
  ) {
    fail('counter entry');
  }
  return {
    serial: value.serial,
    id: value.id,
    changeSeq: value.changeSeq,
    transferredBytes: value.transferredBytes,
    droppedBytes: value.droppedBytes,
    device: toSideCounters(value.device),
    client: toSideCounters(value.client),
  };
}

export function toChangeBatch(value: unknown): ChangeBatch {
  const info = toInstanceInfo(value);
  if (
    !isObject(value) ||
    typeof value.cursor !== 'number' ||
    typeof value.reset !== 'boolean' ||
    typeof value.more !== 'boolean' ||
    !Array.isArray(value.sessions) ||
    !Array.isArray(value.removed) ||
    (value.counters !== undefined && !Array.isArray(value.counters))
  ) {
    fail('change batch');
  }
  const batch: ChangeBatch = {
    ...info,
    cursor: value.cursor,
    reset: value.reset,
    sessions: value.sessions.map(toSessionState),
    removed: value.removed.map(toSessionRemoval),
    more: value.more,
  };
  if (Array.isArray(value.counters)) batch.counters = value.counters.map(toSessionCounters);
  return batch;
}

export function toProxyEvent(value: unknown): ProxyEvent {
  const what = 'event';
  if (
    !isObject(value) ||
    !isOneOf(PROXY_EVENT_TYPES, value.type) ||
    typeof value.instanceId !== 'string' ||
    typeof value.seq !== 'number'
  ) {
    fail(what);
  }
  const event: ProxyEvent = {
    type: value.type,
    instanceId: value.instanceId,
    seq: value.seq,
    at: optionalString(value.at, what) ?? '',
  };
  for (const key of ['serial', 'id', 'address', 'reason'] as const) {
    const text = optionalString(value[key], what);
    if (text !== undefined) event[key] = text;
  }
  if (value.session !== undefined && value.session !== null) event.session = toSessionState(value.session);
  return event;
}

function toAdminError(status: number, body: unknown): AdminApiError {
  if (isObject(body) && isOneOf(ADMIN_ERROR_CODES, body.code) && typeof body.message === 'string') {
    return new AdminApiError(status, body.code, body.message);
  }
  return new AdminApiError(
    status,
    status === 401 ? 'unauthorized' : status === 404 ? 'not_found' : 'internal',
    `Admin API answered HTTP ${status}`,
  );
}

// ---- the client ---------------------------------------------------------

export class ProxyAdminClient implements ProxyAdmin {
  private readonly endpoint: AdminEndpoint;
  private readonly requestTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly streamIdleMs: number;
  private readonly clock: Clock;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly streams = new Set<EventStream>();

  constructor(options: ProxyAdminClientOptions) {
    this.endpoint = options.endpoint;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.reconnectMinMs = options.reconnectMinMs ?? 100;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 5_000;
    this.streamIdleMs = options.streamIdleMs ?? 45_000;
    this.clock = options.clock ?? systemClock;
  }

  async info(): Promise<InstanceInfo> {
    return toInstanceInfo(await this.requestJson('GET', '/v1/info'));
  }

  async listSessions(serials?: readonly string[]): Promise<SessionList> {
    const query = serials ? `?${new URLSearchParams(serials.map((serial) => ['serial', serial]))}` : '';
    return toSessionList(await this.requestJson('GET', `/v1/sessions${query}`));
  }

  /**
   * The change feed: what changed after `since` (a cursor of `instance`; none
   * for a full listing), at most `limit` items; with `counters`, counter
   * entries (or nothing, `skip`) for the sessions that need no more: `since`
   * is the cursor of an answer with `more: false`, or `complete` is (see
   * admin-protocol.ts).
   */
  async changes(
    since: number,
    instance: string | undefined,
    limit?: number,
    counters?: FeedCounters,
    complete?: number,
  ): Promise<ChangeBatch> {
    const query = new URLSearchParams({ since: String(since) });
    if (instance !== undefined) query.set('instance', instance);
    if (limit !== undefined) query.set('limit', String(limit));
    if (counters) query.set('counters', counters === 'skip' ? 'skip' : '1');
    if (counters && complete !== undefined) query.set('complete', String(complete));
    return toChangeBatch(await this.requestJson('GET', `/v1/changes?${query}`));
  }

  async devicePending(serial: string): Promise<boolean> {
    const value = await this.requestJson('GET', `/v1/devices/${encodeURIComponent(serial)}`);
    if (!isObject(value) || typeof value.pending !== 'boolean') fail('device lookup');
    return value.pending;
  }

  async getSession(serial: string): Promise<SessionLookup> {
    const value = await this.requestJson('GET', sessionPath(serial));
    const info = toInstanceInfo(value);
    const session = (value as { session?: unknown }).session;
    return session === undefined ? info : { ...info, session: toSessionState(session) };
  }

  async putSession(serial: string, spec: SessionSpec): Promise<SessionState> {
    return toSessionState(await this.requestJson('PUT', sessionPath(serial), spec));
  }

  async deleteSession(serial: string): Promise<SessionState | undefined> {
    try {
      return toSessionState(await this.requestJson('DELETE', sessionPath(serial)));
    } catch (error) {
      if (error instanceof AdminApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async putPeers(replicas: number): Promise<PeersState> {
    return toPeersState(await this.requestJson('PUT', '/v1/peers', { replicas }));
  }

  watchEvents(handlers: EventStreamHandlers): EventStream {
    let closed = false;
    let failures = 0;
    let request: http.ClientRequest | undefined;
    let retryHandle: unknown;
    const stream: EventStream = {
      close: () => {
        closed = true;
        if (retryHandle !== undefined) this.clock.clearTimeout(retryHandle);
        request?.destroy();
        this.streams.delete(stream);
      },
    };
    const scheduleReconnect = (error: Error) => {
      if (closed) return;
      request = undefined;
      handlers.onConnectionChange?.(false, error);
      failures += 1;
      const delay = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(failures - 1, 20));
      retryHandle = this.clock.setTimeout(() => {
        retryHandle = undefined;
        connect();
      }, delay);
    };
    const connect = () => {
      if (closed) return;
      let settled = false;
      const drop = (error: Error) => {
        if (settled) return;
        settled = true;
        scheduleReconnect(error);
      };
      request = http.request({ ...this.target('GET', '/v1/events'), agent: false }, (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          drop(new AdminApiError(response.statusCode, 'unreachable', `Event stream answered HTTP ${response.statusCode}`));
          return;
        }
        response.setEncoding('utf8');
        let buffered = '';
        // The proxy sends a heartbeat every 15 s; a longer silence means a stalled stream.
        response.socket.setTimeout(this.streamIdleMs, () => {
          request?.destroy();
          drop(new AdminApiError(undefined, 'unreachable', `Event stream silent for ${this.streamIdleMs} ms`));
        });
        response.on('data', (chunk: string) => {
          buffered += chunk;
          for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line === '') continue;
            let event: ProxyEvent;
            try {
              const parsed: unknown = JSON.parse(line);
              // Heartbeats and event types newer than this client only prove the stream is alive.
              if (isObject(parsed) && !isOneOf(PROXY_EVENT_TYPES, parsed.type)) continue;
              event = toProxyEvent(parsed);
            } catch (error) {
              request?.destroy();
              drop(error instanceof Error ? error : new Error(String(error)));
              return;
            }
            if (event.type === 'hello') {
              failures = 0;
              handlers.onConnectionChange?.(true);
            }
            handlers.onEvent(event);
          }
        });
        response.on('end', () => drop(new AdminApiError(undefined, 'unreachable', 'Event stream ended')));
        response.on('error', (error) => drop(error));
        response.on('close', () => drop(new AdminApiError(undefined, 'unreachable', 'Event stream closed')));
      });
      request.on('error', (error) => drop(error));
      request.end();
    };
    this.streams.add(stream);
    connect();
    return stream;
  }

  close(): void {
    for (const stream of [...this.streams]) stream.close();
    this.agent.destroy();
  }

  private target(method: string, path: string): http.RequestOptions {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if ('socketPath' in this.endpoint) return { method, path, socketPath: this.endpoint.socketPath, headers };
    headers.authorization = `Bearer ${this.endpoint.token}`;
    return { method, path, host: this.endpoint.host, port: this.endpoint.port, headers };
  }

  private requestJson(method: string, path: string, body?: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const options = this.target(method, path);
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      if (payload) {
        options.headers = { ...options.headers, 'content-type': 'application/json', 'content-length': payload.length };
      }
      const request = http.request({ ...options, agent: this.agent, timeout: this.requestTimeoutMs }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => reject(new AdminApiError(undefined, 'unreachable', `${method} ${path}: ${error.message}`)));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            if (status >= 200 && status < 300) {
              reject(new AdminApiError(status, 'bad_response', `${method} ${path}: answer is not JSON`));
              return;
            }
          }
          if (status >= 200 && status < 300) resolve(parsed);
          else reject(toAdminError(status, parsed));
        });
      });
      request.on('timeout', () => request.destroy(new Error(`timed out after ${this.requestTimeoutMs} ms`)));
      request.on('error', (error) => reject(new AdminApiError(undefined, 'unreachable', `${method} ${path}: ${error.message}`)));
      request.end(payload);
    });
  }
}

function sessionPath(serial: string): string {
  return `/v1/sessions/${encodeURIComponent(serial)}`;
}
