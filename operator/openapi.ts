// The OpenAPI 3.1 description of the Control API, served at /openapi.json.
// Tests validate it as OpenAPI 3.1 and check real answers against its schemas,
// so it has to say exactly what control-api.ts does.
import { MAX_SERIAL_BYTES, MAX_TIMEOUT_SECONDS, MAX_WHITELIST_ENTRIES } from './query-validation.ts';

const json = (schemaName: string, description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${schemaName}` } } },
});

const serialParameter = {
  name: 'serial',
  in: 'query',
  required: true,
  description: `The device serial as the device sends it: 1-${MAX_SERIAL_BYTES} bytes of printable ASCII without space (0x21-0x7E). Percent-encode reserved characters; a literal '+' stays '+'.`,
  schema: { type: 'string', minLength: 1, maxLength: MAX_SERIAL_BYTES, pattern: '^[!-~]+$' },
};

const commonErrors = {
  '400': json('Message', 'A parameter is missing, malformed, repeated or unknown; the message names it.'),
  '401': json('Message', 'Bearer tokens are configured and the request carries no valid one.'),
  '405': json('Message', 'Only GET is allowed.'),
  // Answered by Node's HTTP parser before the application sees the request.
  '431': { description: 'The request line and headers together exceed 16 KiB; no body.' },
  '500': json('Message', 'The session did not reach the requested state in time, or an internal error.'),
};

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'CCCP proxy Control API',
    version: '1.0.0',
    description:
      'Starts, stops and inspects proxy sessions that join a SCADA client to a device behind a mobile network. ' +
      'All endpoints are GET and answer JSON. Unknown or repeated query parameters are refused with 400.',
  },
  servers: [{ url: '/' }],
  security: [{ bearerAuth: [] }, {}],
  paths: {
    '/on': {
      get: {
        operationId: 'sessionOn',
        summary: 'Start a session for a device, or update the live one',
        description:
          'Answers once the session port is listening. Idempotent: for a live session it answers the same host and port and applies ' +
          'the given parameters (absent ones take their defaults). A session that has ended is replaced by a new one.',
        parameters: [
          serialParameter,
          {
            name: 'persistent',
            in: 'query',
            required: false,
            description: 'true: device and client may reconnect freely until /off. false: the session ends when either closes.',
            schema: { type: 'string', enum: ['true', 'false'], default: 'false' },
          },
          {
            name: 'ip_whitelist',
            in: 'query',
            required: false,
            description: 'Comma-separated IPs or CIDRs that clients may connect from; absent admits every client.',
            style: 'form',
            explode: false,
            schema: { type: 'array', minItems: 1, maxItems: MAX_WHITELIST_ENTRIES, items: { type: 'string', minLength: 1 } },
          },
          {
            name: 'timeout',
            in: 'query',
            required: false,
            description: 'Seconds to wait for the first client before the session ends; absent waits forever.',
            schema: { type: 'integer', minimum: 1, maximum: MAX_TIMEOUT_SECONDS },
          },
        ],
        responses: {
          '200': json('Endpoint', 'The session port is listening.'),
          ...commonErrors,
          '409': json('Conflict', "Another caller's /off switched off the session before it listened (code switched_off); call /on again to start a new one."),
          '503': json('Message', 'Every port of the range is in use; no session was left behind.'),
        },
      },
    },
    '/off': {
      get: {
        operationId: 'sessionOff',
        summary: 'Stop the session of a device',
        description: 'Answers 200 once the session has ended, both connections are closed and the port is free.',
        parameters: [serialParameter],
        responses: {
          '200': json('Empty', 'The session ended.'),
          ...commonErrors,
          '404': json('Message', 'No live session for this serial.'),
        },
      },
    },
    '/status': {
      get: {
        operationId: 'sessionStatus',
        summary: 'Live state of the session of a device',
        description: 'At most one second stale.',
        parameters: [serialParameter],
        responses: {
          '200': json('Status', 'The session is live.'),
          ...commonErrors,
          '404': json('Message', 'No live session for this serial (none, or it has ended).'),
        },
      },
    },
    '/healthz': {
      get: {
        operationId: 'health',
        summary: 'Liveness',
        security: [],
        responses: { '200': json('Health', 'The process serves requests.'), '405': commonErrors['405'] },
      },
    },
    '/readyz': {
      get: {
        operationId: 'ready',
        summary: 'Readiness: the reconciler has synced and reaches the proxy',
        security: [],
        responses: {
          '200': json('Health', 'Ready.'),
          '405': commonErrors['405'],
          '503': json('Message', 'Not ready; the message says why.'),
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        security: [],
        responses: {
          '200': { description: 'Prometheus text exposition format.', content: { 'text/plain': { schema: { type: 'string' } } } },
          '405': commonErrors['405'],
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document',
        security: [],
        responses: {
          '200': { description: 'The OpenAPI 3.1 document.', content: { 'application/json': { schema: { type: 'object' } } } },
          '405': commonErrors['405'],
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
      Endpoint: {
        type: 'object',
        required: ['host', 'port'],
        additionalProperties: false,
        properties: {
          host: { type: 'string', minLength: 1, description: 'Where the client connects (CCCP_PUBLIC_HOST).' },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
        },
      },
      Status: {
        type: 'object',
        required: ['device_connected', 'client_connected', 'transferred'],
        additionalProperties: false,
        properties: {
          device_connected: { type: 'boolean' },
          client_connected: { type: 'boolean' },
          transferred: { type: 'integer', minimum: 0, description: 'Payload bytes forwarded, both directions together.' },
        },
      },
      Empty: { type: 'object', additionalProperties: false, maxProperties: 0 },
      Message: {
        type: 'object',
        required: ['message'],
        additionalProperties: false,
        properties: { message: { type: 'string', minLength: 1 } },
      },
      Conflict: {
        type: 'object',
        required: ['message', 'code'],
        additionalProperties: false,
        properties: { message: { type: 'string', minLength: 1 }, code: { type: 'string', enum: ['switched_off'] } },
      },
      Health: {
        type: 'object',
        required: ['status'],
        additionalProperties: false,
        properties: { status: { type: 'string', enum: ['ok', 'ready'] } },
      },
    },
  },
} as const;
