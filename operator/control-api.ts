// The Control API: GET /on, /off, /status, /sessions (see DESIGN.md and
// openapi.ts), plus /healthz, /readyz, /metrics and /openapi.json, at exactly
// these paths. Every error, expected or not, is turned into `{code, message}`
// by one middleware; client mistakes are 4xx, never 500.
import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../common/log.ts';
import { LogSummary } from '../common/log-summary.ts';
import { BearerTokens } from './bearer-tokens.ts';
import type { ErrorCode } from './control-api-contract.ts';
import type { ControlMetrics } from './control-metrics.ts';
import { openApiDocument } from './openapi.ts';
import { encodeCursor, parseListQuery, parseOnQuery, parseSerialQuery, type QueryResult } from './query-validation.ts';
import { SessionCommandError, type SessionCommands, SessionConflictError } from './session-commands.ts';
import type { ProxySession } from './session-store.ts';
import { statusReply } from './session-view.ts';

export interface ControlApiOptions {
  commands: SessionCommands;
  metrics: ControlMetrics;
  logger: Logger;
  /** Bearer tokens; empty admits every request. A BearerTokens instance may be replaced while serving (rotation). */
  tokens: readonly string[] | BearerTokens;
  /** Why the operator is not ready, or undefined when it is. */
  notReadyReason: () => string | undefined;
  /** Rate-limits the request lines; the caller closes it (flushing the last summaries) on stop. */
  summary?: LogSummary;
}

/** An answer other than 200 that the Control API gives on purpose; `code` is from the catalogue in control-api-contract.ts. */
export class ControlApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: ErrorCode,
    /** Further members of the error body (parameter, ended_reason, ...). */
    readonly details: Record<string, string> = {},
    /** Seconds for a Retry-After header. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ControlApiError';
  }
}

/** Retry-After on 503: ports free up as sessions end; readiness usually returns within seconds. */
const NO_PORTS_RETRY_AFTER_S = 30;
const NOT_READY_RETRY_AFTER_S = 5;

function notFound(serial: string): ControlApiError {
  return new ControlApiError(404, `No session for serial ${serial}`, 'session_not_found');
}

/** An ended or failed session still on record: the seed's 404, with why and when. */
function endedError(session: ProxySession): ControlApiError {
  const reason = session.status.endedReason ?? 'unknown';
  const at = session.status.endedAt ?? '';
  return new ControlApiError(
    404,
    `No session for serial ${session.serial}: it ended at ${at || 'an unknown time'} (${reason})`,
    'session_ended',
    {
      serial: session.serial,
      ended_reason: reason,
      ...(at ? { ended_at: at } : {}),
    },
  );
}

const PUBLIC_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);
const ROUTES = new Set(['/on', '/off', '/status', '/sessions', ...PUBLIC_PATHS]);
/** Probes and scrapers call these all day; their lines would drown the rest. */
const UNLOGGED_ROUTES = new Set(['/metrics', '/healthz', '/readyz']);
/** Query parameters whose values never reach a log, whatever the level. */
const SECRET_PARAMETER = /token|auth|key|secret|pass|credential|signature/i;
const MAX_LOGGED_CHARS = 256;

function accepted<T>(result: QueryResult<T>): T {
  if (!result.ok) throw new ControlApiError(400, result.message, result.code, { parameter: result.parameter });
  return result.value;
}

export function createControlApi(options: ControlApiOptions): Koa {
  const { commands, metrics, logger } = options;
  const tokens = options.tokens instanceof BearerTokens ? options.tokens : new BearerTokens(options.tokens);
  const summary = options.summary ?? new LogSummary(logger, 10_000);
  const app = new Koa();
  // Exact paths: `/ON` and `/on/` are unknown paths, not aliases.
  const router = new Router({ sensitive: true, strict: true });

  router.get('/on', async (ctx) => {
    const query = accepted(parseOnQuery(ctx.querystring));
    const outcome = await commands.on(query);
    if (outcome.kind === 'no-ports') throw new ControlApiError(503, 'No available ports', 'no_available_ports', {}, NO_PORTS_RETRY_AFTER_S);
    if (outcome.kind === 'expired') {
      throw new ControlApiError(
        409,
        `The session of serial ${query.serial} reached its ${outcome.reason === 'MaxLifetime' ? 'max_lifetime' : 'idle_timeout'} before it was listening; /on again starts a new session`,
        'session_expired',
        {
          serial: query.serial,
          ended_reason: outcome.reason,
        },
      );
    }
    ctx.body = { host: outcome.host, port: outcome.port };
  });

  router.get('/off', async (ctx) => {
    const { serial } = accepted(parseSerialQuery(ctx.querystring));
    const outcome = await commands.off(serial);
    if (outcome.kind === 'not-found') throw notFound(serial);
    if (outcome.kind === 'already-ended') throw endedError(outcome.session);
    ctx.body = {};
  });

  router.get('/status', async (ctx) => {
    const { serial } = accepted(parseSerialQuery(ctx.querystring));
    const outcome = await commands.status(serial);
    if (outcome.kind === 'not-found') throw notFound(serial);
    if (outcome.kind === 'ended') throw endedError(outcome.session);
    ctx.body = statusReply(outcome.session);
  });

  router.get('/sessions', async (ctx) => {
    const { limit, after } = accepted(parseListQuery(ctx.querystring));
    const page = await commands.list(limit, after);
    const last = page.sessions.at(-1);
    ctx.body = {
      sessions: page.sessions.map(statusReply),
      ...(page.more && last ? { next_cursor: encodeCursor(last.serial) } : {}),
    };
  });

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', (ctx) => {
    const reason = options.notReadyReason();
    if (reason !== undefined) throw new ControlApiError(503, `Not ready: ${reason}`, 'not_ready', {}, NOT_READY_RETRY_AFTER_S);
    ctx.body = { status: 'ready' };
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.contentType;
    ctx.body = await metrics.text();
  });

  router.get('/openapi.json', (ctx) => {
    ctx.body = openApiDocument;
  });

  // Outermost: one count per request, and a log line with the final status.
  // The line names the route and the serial, never the query (it may carry
  // anything, up to 16 KiB); at debug level the query is added with
  // secret-looking parameters removed. Lines are rate-limited per kind.
  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const route = ROUTES.has(ctx.path) ? ctx.path : 'other';
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ route, code: String(ctx.status) });
      metrics.duration.observe({ route, code: String(ctx.status) }, seconds);
      if (!UNLOGGED_ROUTES.has(route) || ctx.status >= 500) {
        const line: Record<string, unknown> = {
          method: ctx.method.slice(0, 16),
          route,
          status: ctx.status,
          ms: Math.round(seconds * 1000),
        };
        if (route === 'other') line.path = ctx.path.slice(0, MAX_LOGGED_CHARS);
        const serial = new URLSearchParams(ctx.querystring).get('serial');
        if (serial !== null) line.serial = serial.slice(0, MAX_LOGGED_CHARS);
        if (logger.isLevelEnabled('debug')) line.query = loggableQuery(ctx.querystring);
        if (ctx.status >= 500) summary.warn(line, 'control request failed');
        else if (ctx.status === 401 || ctx.status === 404 || ctx.status === 405) summary.info(line, 'control request refused');
        else summary.info(line, 'control request');
      }
    }
  });

  // The one place errors become answers.
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.body === undefined && ctx.status === 404) throw new ControlApiError(404, `No such endpoint: ${ctx.path}`, 'unknown_endpoint');
    } catch (error) {
      if (error instanceof ControlApiError) {
        ctx.status = error.status;
        ctx.body = { code: error.code, message: error.message, ...error.details };
        if (error.status === 405) ctx.set('Allow', 'GET');
        if (error.status === 401) ctx.set('WWW-Authenticate', 'Bearer');
        if (error.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(error.retryAfterSeconds));
      } else if (error instanceof SessionConflictError) {
        // Another caller's /off overtook this /on: not a failure of ours.
        ctx.status = 409;
        ctx.body = { code: error.code, message: error.message };
      } else if (error instanceof SessionCommandError) {
        ctx.status = 500;
        ctx.body = { code: error.code, message: error.message };
      } else {
        logger.error({ err: error, path: ctx.path }, 'unexpected error in the Control API');
        ctx.status = 500;
        ctx.body = { code: 'internal_error', message: 'Internal error' };
      }
    }
  });

  app.use(async (ctx, next) => {
    if (ctx.method !== 'GET') throw new ControlApiError(405, `Method ${ctx.method} is not allowed; use GET`, 'method_not_allowed');
    if (!PUBLIC_PATHS.has(ctx.path) && !tokens.admits(ctx.get('authorization') || undefined)) {
      throw new ControlApiError(401, 'A valid bearer token is required (Authorization: Bearer <token>)', 'unauthorized');
    }
    await next();
  });

  app.use(router.routes());
  return app;
}

/** The query for a debug line: parameters named like secrets dropped, bounded in length. */
function loggableQuery(querystring: string): string {
  const kept = new URLSearchParams();
  for (const [name, value] of new URLSearchParams(querystring)) {
    kept.append(name.slice(0, 64), SECRET_PARAMETER.test(name) ? '[redacted]' : value);
  }
  return kept.toString().slice(0, 4 * MAX_LOGGED_CHARS);
}
