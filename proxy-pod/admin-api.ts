// The proxy pod's internal admin API (see admin-protocol.ts for the contract).
// On TCP every request needs the bearer token; on a Unix socket the socket
// file's mode (0600) is the guard.

import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, unlink } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';
import {
  type AdminError,
  type ChangeBatch,
  DEFAULT_CHANGE_BATCH,
  type DeviceLookup,
  type InstanceInfo,
  MAX_CHANGE_BATCH,
  MAX_LISTED_SERIALS,
  MAX_PROXY_REPLICAS,
  type PeersSpec,
  type PeersState,
  type ProxyEvent,
  type SessionCounters,
  type SessionList,
  type SessionLookup,
  type SessionSpec,
  type SessionState,
} from '../common/admin-protocol.ts';
import { type HttpLimits, limitConnections } from '../common/http-limits.ts';
import type { Logger } from '../common/log.ts';
import { listen } from '../common/sockets.ts';
import { addressEntryError } from './address-matcher.ts';
import { EventFanout } from './event-fanout.ts';
import { isValidSerial } from './registration.ts';
import { PortUnavailableError } from './session.ts';

export type AdminListen = { socketPath: string } | { host: string; port: number; token: string };

/**
 * A change-feed answer as the proxy pod hands it over: everything but the
 * sessions' states and counter entries, which the admin API takes and
 * serializes a slice at a time (see `changeBatchJson`).
 */
export interface ChangeListing {
  batch: Omit<ChangeBatch, 'sessions' | 'counters'>;
  /** The changed sessions' serials, in change order. */
  serials: readonly string[];
  /** A session's current state; undefined once it is gone (its removal is then after the batch's cursor). */
  state(serial: string): SessionState | undefined;
  /** Asked for with `counters=1` (and `complete`): the sessions that get counter entries. */
  counters?: CounterListing;
}

export interface CounterListing {
  /** Their serials, in change order. */
  serials: readonly string[];
  /** A session's counter entry; undefined once it is gone or had a full change (either is after the batch's cursor). */
  entry(serial: string): SessionCounters | undefined;
}

/** What the admin API needs of the proxy pod. */
export interface AdminTarget {
  info(): InstanceInfo;
  /** Every session, or those of `serials` the pod runs. */
  list(serials?: readonly string[]): SessionList;
  /**
   * `countersUpTo`: counter entries for sessions whose latest full change is
   * at or below it, or with `skipCounters` nothing for them (see admin-protocol.ts).
   */
  changes(
    since: number,
    instance: string | undefined,
    limit: number,
    countersUpTo: number | undefined,
    skipCounters: boolean,
  ): ChangeListing;
  lookup(serial: string): SessionLookup;
  device(serial: string): DeviceLookup;
  put(serial: string, spec: SessionSpec): Promise<SessionState>;
  delete(serial: string): Promise<SessionState | undefined>;
  subscribe(listener: (event: ProxyEvent) => void): () => void;
  peerRoster(): PeersState;
  setPeers(spec: PeersSpec): PeersState;
}

/** Thrown for requests the admin API refuses; becomes `{code, message}`. */
export class AdminHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: AdminError['code'],
    message: string,
  ) {
    super(message);
    this.name = 'AdminHttpError';
  }
}

export const MAX_TIMEOUT_SECONDS = 86_400;
/** Idle limits stay below what one Node timer can hold. */
export const MAX_LIMIT_SECONDS = 604_800;
const MAX_WHITELIST_ENTRIES = 256;
const HEARTBEAT_MS = 15_000;
/**
 * Session states (or counter entries) taken and serialized per turn of the
 * event loop in a change-feed answer. With 1,000 busy sessions a read every 300 ms holds
 * about 300 changed sessions, 4-6 ms of work in one piece: the data plane's
 * round-trip p99. A slice of 32 is about 0.2 ms.
 */
export const STATES_PER_TURN = 32;

export class AdminApi {
  private readonly server: http.Server;
  private readonly events: EventFanout;
  private socketPath: string | undefined;
  where = '';

  constructor(
    private readonly target: AdminTarget,
    private readonly logger: Logger,
    limits?: HttpLimits,
  ) {
    this.server = http.createServer();
    this.events = new EventFanout({
      source: (listener) => target.subscribe(listener),
      onCut: (waitingBytes) => logger.warn({ waitingBytes }, 'event stream reader cut: it stopped reading'),
    });
    if (limits) limitConnections(this.server, limits);
  }

  async listen(how: AdminListen): Promise<void> {
    const tokenDigest = 'token' in how ? digest(how.token) : undefined;
    if ('token' in how && how.token.length < 16) throw new Error('the admin token must be at least 16 characters');
    this.server.on('request', this.app(tokenDigest).callback());
    if ('socketPath' in how) {
      // A socket file left by a killed process would make listen fail.
      await unlink(how.socketPath).catch(() => undefined);
      await listen(this.server, { path: how.socketPath });
      await chmod(how.socketPath, 0o600);
      this.socketPath = how.socketPath;
      this.where = how.socketPath;
    } else {
      await listen(this.server, { port: how.port, host: how.host });
      const address = this.server.address() as AddressInfo;
      this.where = `${address.address}:${address.port}`;
    }
  }

  get port(): number | undefined {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : undefined;
  }

  async close(): Promise<void> {
    this.events.endAll();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    if (this.socketPath) await unlink(this.socketPath).catch(() => undefined);
  }

  private app(tokenDigest: Buffer | undefined): Koa {
    const app = new Koa();
    // A reader that goes away ends its event stream; that is no error. Others
    // go to the log instead of Koa's default print to stderr.
    app.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') this.logger.error({ err }, 'admin API error');
    });
    const router = new Router();
    const target = this.target;

    router.get('/v1/info', (ctx) => {
      ctx.body = target.info();
    });
    router.get('/v1/sessions', (ctx) => {
      ctx.body = target.list(parseSessionsQuery(ctx.query));
    });
    router.get('/v1/changes', (ctx) => {
      const { since, instance, limit, countersUpTo, skipCounters } = parseChangesQuery(ctx.query);
      const listing = target.changes(since, instance, limit, countersUpTo, skipCounters);
      ctx.respond = false;
      void writeChanges(ctx.res, changeBatchJson(listing)).catch((err: unknown) =>
        this.logger.error({ err, path: ctx.path }, 'admin request failed'),
      );
    });
    router.get('/v1/sessions/:serial', (ctx) => {
      ctx.body = target.lookup(serialParam(ctx.params.serial));
    });
    router.get('/v1/devices/:serial', (ctx) => {
      ctx.body = target.device(serialParam(ctx.params.serial));
    });
    router.put('/v1/sessions/:serial', async (ctx) => {
      const serial = serialParam(ctx.params.serial);
      ctx.body = await target.put(serial, parseSpec(ctx.request.body));
    });
    router.delete('/v1/sessions/:serial', async (ctx) => {
      const serial = serialParam(ctx.params.serial);
      const ended = await target.delete(serial);
      if (!ended) throw new AdminHttpError(404, 'not_found', `no session for serial ${serial}`);
      ctx.body = ended;
    });
    router.get('/v1/peers', (ctx) => {
      ctx.body = target.peerRoster();
    });
    router.put('/v1/peers', (ctx) => {
      ctx.body = target.setPeers(parsePeersSpec(ctx.request.body));
    });
    router.get('/v1/events', (ctx) => this.eventStream(ctx));

    app.use(async (ctx, next) => {
      try {
        await next();
        if (ctx.status === 404 && ctx.body === undefined)
          throw new AdminHttpError(404, 'not_found', `no such endpoint: ${ctx.method} ${ctx.path}`);
      } catch (err) {
        const failure = toAdminError(err);
        if (failure.status >= 500) this.logger.error({ err, path: ctx.path }, 'admin request failed');
        ctx.status = failure.status;
        ctx.body = { code: failure.code, message: failure.message } satisfies AdminError;
      }
    });
    app.use(async (ctx, next) => {
      if (tokenDigest && !bearerMatches(ctx.get('authorization'), tokenDigest)) {
        throw new AdminHttpError(401, 'unauthorized', 'a valid bearer token is required');
      }
      await next();
    });
    app.use(
      bodyParser({
        enableTypes: ['json'],
        jsonLimit: '64kb',
        onError: (err) => {
          if ('status' in err && err.status === 413) throw new AdminHttpError(413, 'bad_request', 'the body is larger than 64 KiB');
          throw new AdminHttpError(400, 'bad_request', `the body is not valid JSON: ${err.message}`);
        },
      }),
    );
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
    return app;
  }

  /** The event stream: written straight to the response, by the fan-out (and the heartbeat). */
  private eventStream(ctx: Koa.Context): void {
    ctx.respond = false;
    ctx.req.socket.setTimeout(0);
    const res = ctx.res;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const { instanceId } = this.target.info();
    this.events.add(res, { type: 'hello', instanceId, seq: 0, at: new Date().toISOString() });
    // Lets the reader tell a quiet stream from a dead one.
    const heartbeat = setInterval(
      () => this.events.send(res, { type: 'heartbeat', instanceId, seq: 0, at: new Date().toISOString() }),
      HEARTBEAT_MS,
    );
    res.on('close', () => {
      clearInterval(heartbeat);
      this.events.remove(res);
    });
  }
}

/**
 * The ChangeBatch of `listing` as JSON text in pieces: the head, then the
 * states (and the counter entries, if asked) STATES_PER_TURN at a time with
 * a turn of the event loop between slices, so forwarding goes on while a
 * large answer is built; each piece goes to the socket as it is made, and no
 * copy of the whole answer is held. A state taken after a yield may be newer
 * than the batch's cursor; the reader then sees that session again in its
 * next read, which is harmless. A session gone meanwhile is left out: its
 * removal comes after the cursor.
 */
export async function* changeBatchJson(listing: ChangeListing): AsyncGenerator<string> {
  const head = JSON.stringify(listing.batch);
  yield `${head.slice(0, -1)},"sessions":[`;
  yield* jsonItems(listing.serials, (serial) => listing.state(serial), false);
  const { counters } = listing;
  if (counters) {
    yield '],"counters":[';
    yield* jsonItems(counters.serials, (serial) => counters.entry(serial), listing.serials.length > 0);
  }
  yield ']}';
}

/**
 * Writes a change-feed answer's pieces to `res` as they are made, straight
 * from the strings (a stream in between converted each piece to a Buffer of
 * its own and added a few turns of stream bookkeeping per piece). A reader
 * that goes away ends the answer; a failure while it is made cuts the
 * connection, so the reader cannot take part of it for the whole.
 */
export async function writeChanges(res: http.ServerResponse, pieces: AsyncGenerator<string>): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
  try {
    for await (const piece of pieces) {
      if (res.destroyed) return;
      // A reader slower than the answer is made: wait for it (or for it to go).
      if (!res.write(piece)) await drainedOrClosed(res);
    }
  } catch (error) {
    // The status is sent: a cut connection is how the reader learns the answer is not whole.
    res.destroy();
    throw error;
  }
  res.end();
}

function drainedOrClosed(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}

/** The items of `serials` that `take` still finds, a slice per turn (the first after a turn too with `turnFirst`), without brackets. */
async function* jsonItems<T>(
  serials: readonly string[],
  take: (serial: string) => T | undefined,
  turnFirst: boolean,
): AsyncGenerator<string> {
  let first = true;
  for (let from = 0; from < serials.length; from += STATES_PER_TURN) {
    if (from > 0 || turnFirst) await nextTurn();
    const items: T[] = [];
    const to = Math.min(from + STATES_PER_TURN, serials.length);
    for (let i = from; i < to; i++) {
      const item = take(serials[i] as string);
      if (item) items.push(item);
    }
    if (items.length === 0) continue;
    // The slice's array without its brackets, after a comma unless it is the first.
    const json = JSON.stringify(items);
    yield first ? json.slice(1, -1) : `,${json.slice(1, -1)}`;
    first = false;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Compares hashes so neither length nor content leaks through timing. */
function bearerMatches(header: string, expected: Buffer): boolean {
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const presented = match?.[1];
  return presented !== undefined && timingSafeEqual(digest(presented), expected);
}

function serialParam(raw: string | undefined): string {
  if (raw === undefined || !isValidSerial(raw)) {
    throw new AdminHttpError(400, 'bad_request', 'serial must be 1-64 printable ASCII characters without spaces');
  }
  return raw;
}

/**
 * GET /v1/sessions: no query lists every session; `serial` (repeated, at
 * most MAX_LISTED_SERIALS) lists those of them the pod runs, e.g. for their
 * live counters. Anything else is refused.
 */
export function parseSessionsQuery(query: Record<string, string | string[] | undefined>): string[] | undefined {
  const bad = (message: string) => new AdminHttpError(400, 'bad_request', message);
  for (const key of Object.keys(query)) if (key !== 'serial') throw bad(`unknown query parameter "${key}" (serial)`);
  const raw = query.serial;
  if (raw === undefined) return undefined;
  const serials = Array.isArray(raw) ? raw : [raw];
  if (serials.length > MAX_LISTED_SERIALS) throw bad(`at most ${MAX_LISTED_SERIALS} serials per request, not ${serials.length}`);
  return serials.map(serialParam);
}

const CHANGES_QUERY_KEYS: ReadonlySet<string> = new Set(['since', 'instance', 'limit', 'counters', 'complete']);

/**
 * The change feed's query: `since` (default 0), `instance` (absent: a full
 * listing), `limit`, `counters` (1: counter entries, skip: no word of moved
 * counters, see admin-protocol.ts; 0 or absent: full states), `complete`
 * (with counters=1 or skip, the cursor of the reader's last answer with
 * `more: false`, at most `since`; absent: `since` is one); anything else is
 * refused. `countersUpTo`: counter entries (or, with `skipCounters`, nothing)
 * for sessions whose latest full change is at or below it; undefined: full states.
 */
export function parseChangesQuery(query: Record<string, string | string[] | undefined>): {
  since: number;
  instance: string | undefined;
  limit: number;
  countersUpTo: number | undefined;
  skipCounters: boolean;
} {
  const bad = (message: string) => new AdminHttpError(400, 'bad_request', message);
  const single = (name: string): string | undefined => {
    const value = query[name];
    if (Array.isArray(value)) throw bad(`${name} must be given once`);
    return value;
  };
  for (const key of Object.keys(query)) {
    if (!CHANGES_QUERY_KEYS.has(key)) throw bad(`unknown query parameter "${key}" (${[...CHANGES_QUERY_KEYS].join(', ')})`);
  }
  const wholeNumber = (text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
    return Number.isSafeInteger(value) ? value : Number.NaN;
  };
  const sinceText = single('since');
  const since = wholeNumber(sinceText, 0);
  if (Number.isNaN(since)) throw bad(`since must be a whole number of 0 or more (a cursor), not "${sinceText?.slice(0, 40)}"`);
  const limitText = single('limit');
  const limit = wholeNumber(limitText, DEFAULT_CHANGE_BATCH);
  if (!(limit >= 1 && limit <= MAX_CHANGE_BATCH))
    throw bad(`limit must be a whole number from 1 to ${MAX_CHANGE_BATCH}, not "${limitText?.slice(0, 40)}"`);
  const instance = single('instance');
  if (instance !== undefined && (instance.length < 1 || instance.length > 128))
    throw bad('instance must be the instanceId of an earlier answer (1-128 characters)');
  const countersText = single('counters');
  if (countersText !== undefined && countersText !== '0' && countersText !== '1' && countersText !== 'skip')
    throw bad(`counters must be 1 (counter entries), skip (none) or 0 (full states), not "${countersText.slice(0, 40)}"`);
  const byCounters = countersText === '1' || countersText === 'skip';
  const skipCounters = countersText === 'skip';
  const completeText = single('complete');
  if (completeText === undefined) return { since, instance, limit, countersUpTo: byCounters ? since : undefined, skipCounters };
  const complete = wholeNumber(completeText, 0);
  if (!byCounters) throw bad('complete goes with counters=1 or counters=skip only');
  if (!(complete <= since))
    throw bad(
      `complete must be a whole number no greater than since (a cursor of an answer with more: false), not "${completeText.slice(0, 40)}"`,
    );
  return { since, instance, limit, countersUpTo: complete, skipCounters };
}

/** Validates a PUT body field by field; unknown fields are refused so typos do not pass silently. */
export function parseSpec(body: unknown): SessionSpec {
  const bad = (message: string) => new AdminHttpError(400, 'bad_request', message);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object');
  const input = body as Record<string, unknown>;
  const known = new Set(['id', 'port', 'persistent', 'ipWhitelist', 'timeoutSeconds', 'notAfter', 'idleTimeoutSeconds']);
  for (const key of Object.keys(input)) if (!known.has(key)) throw bad(`unknown field "${key}"`);
  const { id, port, persistent, ipWhitelist, timeoutSeconds, notAfter, idleTimeoutSeconds } = input;
  if (typeof id !== 'string' || id.length < 1 || id.length > 128) throw bad('id must be a string of 1-128 characters');
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65_535)
    throw bad('port must be a whole number from 1 to 65535');
  if (typeof persistent !== 'boolean') throw bad('persistent must be true or false');
  if (!Array.isArray(ipWhitelist) || ipWhitelist.length > MAX_WHITELIST_ENTRIES)
    throw bad(`ipWhitelist must be an array of at most ${MAX_WHITELIST_ENTRIES} IPs or CIDRs`);
  for (const entry of ipWhitelist) {
    const problem = typeof entry === 'string' ? addressEntryError(entry) : 'entries must be strings';
    if (problem) throw bad(`ipWhitelist: ${problem}`);
  }
  if (
    timeoutSeconds !== undefined &&
    (!Number.isInteger(timeoutSeconds) || (timeoutSeconds as number) < 1 || (timeoutSeconds as number) > MAX_TIMEOUT_SECONDS)
  ) {
    throw bad(`timeoutSeconds must be a whole number from 1 to ${MAX_TIMEOUT_SECONDS}`);
  }
  if (notAfter !== undefined && (typeof notAfter !== 'string' || Number.isNaN(Date.parse(notAfter))))
    throw bad('notAfter must be an ISO date-time');
  if (
    idleTimeoutSeconds !== undefined &&
    (!Number.isInteger(idleTimeoutSeconds) || (idleTimeoutSeconds as number) < 1 || (idleTimeoutSeconds as number) > MAX_LIMIT_SECONDS)
  ) {
    throw bad(`idleTimeoutSeconds must be a whole number from 1 to ${MAX_LIMIT_SECONDS}`);
  }
  return {
    ...(notAfter !== undefined ? { notAfter: notAfter as string } : {}),
    ...(idleTimeoutSeconds !== undefined ? { idleTimeoutSeconds: idleTimeoutSeconds as number } : {}),
    id,
    port: port as number,
    persistent,
    ipWhitelist: ipWhitelist as string[],
    ...(timeoutSeconds !== undefined ? { timeoutSeconds: timeoutSeconds as number } : {}),
  };
}

/** The body of PUT /v1/peers: exactly `replicas`, a whole number from 1 to 64. */
export function parsePeersSpec(body: unknown): PeersSpec {
  const bad = (message: string) => new AdminHttpError(400, 'bad_request', message);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object: {"replicas": N}');
  const input = body as Record<string, unknown>;
  for (const key of Object.keys(input)) if (key !== 'replicas') throw bad(`unknown field "${key}" (replicas)`);
  const { replicas } = input;
  if (!Number.isInteger(replicas) || (replicas as number) < 1 || (replicas as number) > MAX_PROXY_REPLICAS)
    throw bad(`replicas must be a whole number from 1 to ${MAX_PROXY_REPLICAS}, not ${JSON.stringify(replicas ?? null).slice(0, 40)}`);
  return { replicas: replicas as number };
}

function toAdminError(err: unknown): { status: number; code: AdminError['code']; message: string } {
  if (err instanceof AdminHttpError) return err;
  if (err instanceof PortUnavailableError) return { status: 409, code: 'port_unavailable', message: err.message };
  // koa's own HTTP errors (405 from allowedMethods, 413 from the body parser).
  const status = err instanceof Error && 'status' in err && typeof err.status === 'number' ? err.status : 500;
  if (status >= 400 && status < 500) return { status, code: 'bad_request', message: (err as Error).message };
  return { status: 500, code: 'internal', message: 'internal error' };
}
