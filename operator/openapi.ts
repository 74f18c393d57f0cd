// The OpenAPI 3.1 description of the Control API, served at /openapi.json.
// Built from control-api-contract.ts: the parameter schemas that
// query-validation.ts checks requests against and the reply schemas are the
// same objects, so the document cannot drift from the server. Tests validate
// it as OpenAPI 3.1, lint it with Redocly and generate clients from it.
import type { TSchema } from '@sinclair/typebox';
import {
  EmptySchema,
  EndpointSchema,
  ERROR_CODES,
  ErrorSchema,
  HealthSchema,
  LIST_PARAMETERS,
  ON_PARAMETERS,
  type QueryParameter,
  SERIAL_PARAMETERS,
  SessionPageSchema,
  type StatusReply,
  StatusSchema,
} from './control-api-contract.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A TypeBox schema as plain JSON for the document: no $id, references into components. */
function toDocumentSchema(schema: TSchema): Json {
  const strip = (value: unknown): Json => {
    if (Array.isArray(value)) return value.map(strip);
    if (value === null || typeof value !== 'object') return value as Json;
    const out: { [key: string]: Json } = {};
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$id') continue;
      out[key] = key === '$ref' && typeof inner === 'string' ? `#/components/schemas/${inner}` : strip(inner);
    }
    return out;
  };
  return strip(schema);
}

function parameter(p: QueryParameter): Json {
  const entry: { [key: string]: Json } = {
    name: p.name,
    in: 'query',
    required: p.required,
    description: p.description,
    schema: toDocumentSchema(p.schema),
    example: p.example as Json,
  };
  // Repeated keys (form, explode) is what generated clients send for arrays.
  if (p.decoding === 'list') Object.assign(entry, { style: 'form', explode: true });
  return entry;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const reply = (schema: string, description: string, example: Json, headers?: Json) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/json': { schema: ref(schema), example } },
});
const error = (code: keyof typeof ERROR_CODES, message: string, extra: { [key: string]: Json } = {}): Json => ({ code, message, ...extra });
const errorReply = (description: string, example: Json, headers?: Json) => reply('Error', description, example, headers);

const retryAfter = {
  'Retry-After': {
    description: 'Seconds after which a retry may succeed.',
    schema: { type: 'integer', minimum: 1 },
    example: 30,
  },
};

const statusExample: StatusReply = {
  device_connected: true,
  client_connected: true,
  transferred: 1342,
  serial: 'CLD-123456',
  state: 'active',
  created_at: '2026-11-26T06:00:00.000Z',
  host: 'proxy.acme.example',
  port: 20000,
  persistent: true,
  ip_whitelist: ['10.0.0.1', '192.168.0.0/24'],
  device: {
    connected: true,
    address: '100.64.3.7:51234',
    connected_since: '2026-11-26T06:00:05.000Z',
    last_activity: '2026-11-26T06:10:42.000Z',
    bytes_sent: 1100,
    bytes_dropped: 17,
  },
  client: {
    connected: true,
    address: '10.0.0.1:40022',
    connected_since: '2026-11-26T06:01:00.000Z',
    last_activity: '2026-11-26T06:10:41.000Z',
    bytes_sent: 242,
    bytes_dropped: 0,
  },
  clients_refused: 2,
};

const responses = {
  badRequest: errorReply(
    'A parameter is missing, malformed, repeated or unknown; `parameter` names it.',
    error('invalid_parameter', "Parameter 'timeout' must be a whole number of seconds from 1 to 86400", { parameter: 'timeout' }),
  ),
  unauthorized: errorReply(
    'Bearer tokens are configured and the request carries no valid one.',
    error('unauthorized', 'A valid bearer token is required (Authorization: Bearer <token>)'),
  ),
  methodNotAllowed: errorReply(
    'Only GET is allowed (the Allow header says so).',
    error('method_not_allowed', 'Method POST is not allowed; use GET'),
  ),
  internal: errorReply(
    'The session did not reach the requested state in time (request_timed_out; retrying is safe), could not be served (session_failed), or an internal error.',
    error('request_timed_out', 'Timed out after 10 s waiting for the proxy to listen for serial CLD-123456'),
  ),
};

const sessionTag = 'Sessions';
const opsTag = 'Operations';

const codeList = Object.entries(ERROR_CODES)
  .map(([code, { status, meaning }]) => `- \`${code}\` (${status}): ${meaning}`)
  .join('\n');

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'CCCP proxy Control API',
    version: '1.1.0',
    license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
    description: [
      'Starts, stops and inspects proxy sessions that join a SCADA client to an industrial device behind a mobile network. All endpoints are GET and answer JSON.',
      '',
      '## The device side',
      "The device opens a TCP connection to the proxy's device port and sends its serial followed by a carriage return (LF alone, or CR LF, also end it). " +
        'The proxy never answers; every byte after the line ending is payload. A device that registers before its session exists waits (its bytes are discarded) until /on creates it. ' +
        'The SCADA client connects to the host and port that /on returns, and the proxy joins the two connections byte for byte.',
      '',
      '## Counting',
      '`transferred` is the payload bytes forwarded between device and client, both directions together, cumulative over every reconnect of either side for the life of the session. ' +
        'Bytes a side sends while the other side is absent are discarded and counted as `bytes_dropped` of the sending side, never as transferred.',
      '',
      '## Query rules',
      'Queries are form-encoded: `+` means a space, so a literal plus is written `%2B`. Unknown parameters and repeated parameters are refused with 400, ' +
        'except `ip_whitelist`, whose repeated keys are merged with any comma-separated entries.',
      '',
      '## Evolution',
      'Reply objects are open: new members may be added in any version, and clients must ignore members they do not know. Members are never removed or retyped within a major version.',
      '',
      '## Errors',
      'Every error body carries `code` (stable, machine-readable) and `message` (for people). The codes:',
      codeList,
      '',
      'A request line and headers larger than 16 KiB are refused by the HTTP server itself with 431 and no body, on every path.',
    ].join('\n'),
  },
  servers: [{ url: '/', description: 'The Control API of this deployment.' }],
  tags: [
    { name: sessionTag, description: 'Start, stop, inspect and list sessions.' },
    { name: opsTag, description: 'Health, readiness, metrics and this document; no token needed.' },
  ],
  security: [{ bearerAuth: [] }, {}],
  paths: {
    '/on': {
      get: {
        operationId: 'sessionOn',
        tags: [sessionTag],
        summary: 'Start a session for a device, or update the live one',
        description:
          'Answers once the session port is listening. Idempotent: for a live session it answers the same host and port and applies ' +
          'the given parameters (absent ones take their defaults). A session that has ended is replaced by a new one.',
        parameters: ON_PARAMETERS.map(parameter),
        responses: {
          '200': reply('Endpoint', 'The session port is listening.', { host: 'proxy.acme.example', port: 20000 }),
          '400': responses.badRequest,
          '401': responses.unauthorized,
          '405': responses.methodNotAllowed,
          '409': errorReply(
            'session_switched_off: /off switched the session off while this /on was starting it. session_expired: the session reached its own max_lifetime or idle_timeout before it was listening.',
            error(
              'session_expired',
              'The session of serial CLD-123456 reached its max_lifetime before it was listening; /on again starts a new session',
              {
                serial: 'CLD-123456',
                ended_reason: 'MaxLifetime',
              },
            ),
          ),
          '500': responses.internal,
          '503': errorReply(
            'Every port of the range is in use; no session was left behind.',
            error('no_available_ports', 'No available ports'),
            retryAfter,
          ),
        },
      },
    },
    '/off': {
      get: {
        operationId: 'sessionOff',
        tags: [sessionTag],
        summary: 'Stop the session of a device',
        description: 'Answers 200 once the session has ended, both connections are closed and the port is free.',
        parameters: SERIAL_PARAMETERS.map(parameter),
        responses: {
          '200': reply('Empty', 'The session ended.', {}),
          '400': responses.badRequest,
          '401': responses.unauthorized,
          '404': errorReply(
            'No live session for this serial: session_not_found, or session_ended with its reason and time (the record is then cleared).',
            error('session_ended', 'The session of serial CLD-123456 ended at 2026-11-26T06:05:00.000Z: ClientConnectTimeout', {
              serial: 'CLD-123456',
              ended_reason: 'ClientConnectTimeout',
              ended_at: '2026-11-26T06:05:00.000Z',
            }),
          ),
          '405': responses.methodNotAllowed,
          '500': responses.internal,
        },
      },
    },
    '/status': {
      get: {
        operationId: 'sessionStatus',
        tags: [sessionTag],
        summary: 'State and history of the session of a device',
        description: 'At most one second stale. The first three members are those of the original service; the rest explain the session.',
        parameters: SERIAL_PARAMETERS.map(parameter),
        responses: {
          '200': reply('Status', 'The session is live (pending, active or stopping).', statusExample as unknown as Json),
          '400': responses.badRequest,
          '401': responses.unauthorized,
          '404': errorReply(
            'No live session: session_not_found, or session_ended (kept for the retention time) with why and when.',
            error('session_ended', 'The session of serial CLD-123456 ended at 2026-11-26T06:05:00.000Z: ClientConnectTimeout', {
              serial: 'CLD-123456',
              ended_reason: 'ClientConnectTimeout',
              ended_at: '2026-11-26T06:05:00.000Z',
            }),
          ),
          '405': responses.methodNotAllowed,
          '500': responses.internal,
        },
      },
    },
    '/sessions': {
      get: {
        operationId: 'listSessions',
        tags: [sessionTag],
        summary: 'List the sessions of this deployment, live and recently ended',
        description:
          'Ordered by serial. Ended and failed sessions are listed for the retention time. Follow next_cursor until it is absent.',
        parameters: LIST_PARAMETERS.map(parameter),
        responses: {
          '200': reply('SessionPage', 'One page of sessions.', {
            sessions: [statusExample as unknown as Json],
            next_cursor: 'Q0xELTEyMzQ1Ng',
          }),
          '400': responses.badRequest,
          '401': responses.unauthorized,
          '405': responses.methodNotAllowed,
          '500': responses.internal,
        },
      },
    },
    '/healthz': {
      get: {
        operationId: 'health',
        tags: [opsTag],
        summary: 'Liveness',
        description: 'Answers 200 while the process serves requests.',
        security: [],
        responses: { '200': reply('Health', 'The process serves requests.', { status: 'ok' }), '405': responses.methodNotAllowed },
      },
    },
    '/readyz': {
      get: {
        operationId: 'ready',
        tags: [opsTag],
        summary: 'Readiness',
        description: 'Ready once the reconciler has rebuilt its port table and reaches the proxy.',
        security: [],
        responses: {
          '200': reply('Health', 'Ready.', { status: 'ready' }),
          '405': responses.methodNotAllowed,
          '503': errorReply(
            'Not ready; the message says why.',
            error('not_ready', 'Not ready: the proxy has not answered yet'),
            retryAfter,
          ),
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        tags: [opsTag],
        summary: 'Prometheus metrics',
        description: 'Request counts and durations by route and status, in the Prometheus text format.',
        security: [],
        responses: {
          '200': {
            description: 'Prometheus text exposition format.',
            content: { 'text/plain': { schema: { type: 'string' }, example: 'cccp_control_requests_total{route="/on",status="200"} 1\n' } },
          },
          '405': responses.methodNotAllowed,
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        tags: [opsTag],
        summary: 'This document',
        description: 'The OpenAPI 3.1 document of this API.',
        security: [],
        responses: {
          '200': {
            description: 'The OpenAPI 3.1 document.',
            content: { 'application/json': { schema: { type: 'object' }, example: { openapi: '3.1.0' } } },
          },
          '405': responses.methodNotAllowed,
        },
      },
    },
  },
  components: {
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        description: 'Required only when CCCP_CONTROL_TOKENS is set. Health, readiness, metrics and this document need none.',
      },
    },
    schemas: {
      Endpoint: toDocumentSchema(EndpointSchema),
      Status: toDocumentSchema(StatusSchema),
      SessionPage: toDocumentSchema(SessionPageSchema),
      Empty: toDocumentSchema(EmptySchema),
      Error: toDocumentSchema(ErrorSchema),
      Health: toDocumentSchema(HealthSchema),
    },
  },
};
