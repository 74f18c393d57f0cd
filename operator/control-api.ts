// The Control API: GET /on, /off, /status (see DESIGN.md and openapi.ts),
// plus /healthz, /readyz, /metrics and /openapi.json, at exactly these paths.
// Every error, expected or not, is turned into `{message}` (with a `code`
// where one is defined) by one middleware; client mistakes are 4xx, never 500.
import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../common/log.ts';
import { LogSummary } from '../common/log-summary.ts';
import { BearerTokens } from './bearer-tokens.ts';
import type { ControlMetrics } from './control-metrics.ts';
import { openApiDocument } from './openapi.ts';
import { parseOnQuery, parseSerialQuery, type QueryResult } from './query-validation.ts';
import { SessionCommandError, SessionConflictError, type SessionCommands } from './session-commands.ts';

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

/** An answer other than 200 that the Control API gives on purpose. */
export class ControlApiError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string) {
    super(message);
    this.name = 'ControlApiError';
  }
}

/** Every error body: a message for people, and a code for programs where one is defined. */
export function errorBody(message: string, code?: string): { message: string; code?: string } {
  return code === undefined ? { message } : { message, code };
}

const PUBLIC_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);
const ROUTES = new Set(['/on', '/off', '/status', ...PUBLIC_PATHS]);
/** Probes and scrapers call these all day; their lines would drown the rest. */
const UNLOGGED_ROUTES = new Set(['/metrics', '/healthz', '/readyz']);
/** Query parameters whose values never reach a log, whatever the level. */
const SECRET_PARAMETER = /token|auth|key|secret|pass|credential|signature/i;
const MAX_LOGGED_CHARS = 256;

function accepted<T>(result: QueryResult<T>): T {
  if (!result.ok) throw new ControlApiError(400, result.message);
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
    if (outcome.kind === 'no-ports') throw new ControlApiError(503, 'No available ports');
    ctx.body = { host: outcome.host, port: outcome.port };
  });

  router.get('/off', async (ctx) => {
    const { serial } = accepted(parseSerialQuery(ctx.querystring));
    const outcome = await commands.off(serial);
    if (outcome.kind === 'not-found') throw new ControlApiError(404, `No session for serial ${serial}`);
    ctx.body = {};
  });

  router.get('/status', async (ctx) => {
    const { serial } = accepted(parseSerialQuery(ctx.querystring));
    const outcome = await commands.status(serial);
    if (outcome.kind === 'not-found') throw new ControlApiError(404, `No session for serial ${serial}`);
    ctx.body = { device_connected: outcome.deviceConnected, client_connected: outcome.clientConnected, transferred: outcome.transferred };
  });

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', (ctx) => {
    const reason = options.notReadyReason();
    if (reason !== undefined) throw new ControlApiError(503, `Not ready: ${reason}`);
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
        const line: Record<string, unknown> = { method: ctx.method.slice(0, 16), route, status: ctx.status, ms: Math.round(seconds * 1000) };
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
      if (ctx.body === undefined && ctx.status === 404) throw new ControlApiError(404, `No such endpoint: ${ctx.path}`);
    } catch (error) {
      if (error instanceof ControlApiError) {
        ctx.status = error.status;
        ctx.body = errorBody(error.message, error.code);
        if (error.status === 405) ctx.set('Allow', 'GET');
        if (error.status === 401) ctx.set('WWW-Authenticate', 'Bearer');
      } else if (error instanceof SessionConflictError) {
        // Another caller's /off overtook this /on: not a failure of ours.
        ctx.status = 409;
        ctx.body = errorBody(error.message, error.code);
      } else if (error instanceof SessionCommandError) {
        ctx.status = 500;
        ctx.body = errorBody(error.message);
      } else {
        logger.error({ err: error, path: ctx.path }, 'unexpected error in the Control API');
        ctx.status = 500;
        ctx.body = errorBody('Internal error');
      }
    }
  });

  app.use(async (ctx, next) => {
    if (ctx.method !== 'GET') throw new ControlApiError(405, `Method ${ctx.method} is not allowed; use GET`);
    if (!PUBLIC_PATHS.has(ctx.path) && !tokens.admits(ctx.get('authorization') || undefined)) {
      throw new ControlApiError(401, 'A valid bearer token is required (Authorization: Bearer <token>)');
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
