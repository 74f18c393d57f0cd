// The Control API: GET /on, /off, /status (see DESIGN.md and openapi.ts),
// plus /healthz, /readyz, /metrics and /openapi.json. Every error, expected
// or not, is turned into `{message}` by one middleware; client mistakes are
// 4xx, never 500.
import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../common/log.ts';
import { BearerTokens } from './bearer-tokens.ts';
import type { ControlMetrics } from './control-metrics.ts';
import { openApiDocument } from './openapi.ts';
import { parseOnQuery, parseSerialQuery, type QueryResult } from './query-validation.ts';
import { SessionCommandError, type SessionCommands } from './session-commands.ts';

export interface ControlApiOptions {
  commands: SessionCommands;
  metrics: ControlMetrics;
  logger: Logger;
  /** Bearer tokens; empty admits every request. A BearerTokens instance may be replaced while serving (rotation). */
  tokens: readonly string[] | BearerTokens;
  /** Why the operator is not ready, or undefined when it is. */
  notReadyReason: () => string | undefined;
}

/** An answer other than 200 that the Control API gives on purpose. */
export class ControlApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ControlApiError';
  }
}

const PUBLIC_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);
const ROUTES = new Set(['/on', '/off', '/status', ...PUBLIC_PATHS]);

function accepted<T>(result: QueryResult<T>): T {
  if (!result.ok) throw new ControlApiError(400, result.message);
  return result.value;
}

export function createControlApi(options: ControlApiOptions): Koa {
  const { commands, metrics, logger } = options;
  const tokens = options.tokens instanceof BearerTokens ? options.tokens : new BearerTokens(options.tokens);
  const app = new Koa();
  const router = new Router();

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

  // Outermost: one log line and one count per request, with the final status.
  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const route = ROUTES.has(ctx.path) ? ctx.path : 'other';
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ route, code: String(ctx.status) });
      metrics.duration.observe({ route, code: String(ctx.status) }, seconds);
      // The query names serials and addresses only; headers (tokens) are never logged.
      const line = { method: ctx.method, path: ctx.path, query: ctx.querystring, status: ctx.status, ms: Math.round(seconds * 1000) };
      if (ctx.status >= 500) logger.warn(line, 'control request failed');
      else if (route !== '/metrics' && route !== '/healthz' && route !== '/readyz') logger.info(line, 'control request');
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
        ctx.body = { message: error.message };
        if (error.status === 405) ctx.set('Allow', 'GET');
        if (error.status === 401) ctx.set('WWW-Authenticate', 'Bearer');
      } else if (error instanceof SessionCommandError) {
        ctx.status = 500;
        ctx.body = { message: error.message };
      } else {
        logger.error({ err: error, path: ctx.path }, 'unexpected error in the Control API');
        ctx.status = 500;
        ctx.body = { message: 'Internal error' };
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
