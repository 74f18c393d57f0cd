// The one source of the Control API's contract: the query parameters and the
// reply shapes as TypeBox schemas (plain JSON Schema 2020-12, the dialect of
// OpenAPI 3.1), and the catalogue of error codes. query-validation.ts checks
// requests against these schemas and openapi.ts publishes the same objects,
// so the document and the server cannot disagree about a rule.
import { type Static, type TSchema, Type } from '@sinclair/typebox';

export const MAX_SERIAL_BYTES = 64;
export const MAX_TIMEOUT_SECONDS = 86_400;
/** Lifetime limits stay below what one Node timer can hold (about 24.8 days). */
export const MAX_LIFETIME_SECONDS = 604_800;
export const MAX_WHITELIST_ENTRIES = 100;
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 100;

// ---- parameters -----------------------------------------------------------

/** How a parameter's raw query text becomes the value its schema checks. */
export type ParameterDecoding = 'string' | 'boolean' | 'integer' | 'list';

export interface QueryParameter {
  name: string;
  required: boolean;
  decoding: ParameterDecoding;
  /** Repeated keys are merged (lists only); every other parameter given twice is refused. */
  repeatable: boolean;
  schema: TSchema;
  description: string;
  example: unknown;
  /** The 400 message when the value breaks the schema; names the parameter and the rule. */
  invalid: string;
}

const serialSchema = Type.String({
  minLength: 1,
  maxLength: MAX_SERIAL_BYTES,
  // Printable ASCII without space, 0x21-0x7E: exactly what a device can register with.
  pattern: '^[!-~]+$',
  examples: ['CLD-123456'],
});

export const SERIAL: QueryParameter = {
  name: 'serial',
  required: true,
  decoding: 'string',
  repeatable: false,
  schema: serialSchema,
  description:
    `The device serial as the device sends it: 1-${MAX_SERIAL_BYTES} bytes of printable ASCII without space (0x21-0x7E). ` +
    "The query is form-encoded, so '+' means a space (which no serial holds): write a plus as %2B, and percent-encode " +
    "'&', '%', '#', '=' and the like.",
  example: 'CLD-123456',
  invalid: `Parameter 'serial' must be 1-${MAX_SERIAL_BYTES} bytes of printable ASCII without space (0x21-0x7E)`,
};

export const PERSISTENT: QueryParameter = {
  name: 'persistent',
  required: false,
  decoding: 'boolean',
  repeatable: false,
  schema: Type.Boolean({ default: false }),
  description:
    'true: device and client may disconnect and reconnect freely until /off. false: the session ends when either closes its connection.',
  example: true,
  invalid: "Parameter 'persistent' must be 'true' or 'false'",
};

// Only these characters can spell an IP or CIDR, and 49 is the longest (a
// full IPv4-mapped IPv6 address with /128): a query of 100 entries then
// stays far below Node's 16 KiB header limit.
export const WHITELIST_ENTRY = Type.String({
  minLength: 1,
  maxLength: 49,
  pattern: '^[0-9A-Fa-f.:/]+$',
  description: 'An IPv4 or IPv6 address or CIDR (dotted decimal IPv4, no zone id).',
  examples: ['10.0.0.0/24'],
});

export const IP_WHITELIST: QueryParameter = {
  name: 'ip_whitelist',
  required: false,
  decoding: 'list',
  repeatable: true,
  schema: Type.Array(WHITELIST_ENTRY, { minItems: 1, maxItems: MAX_WHITELIST_ENTRIES }),
  description:
    `IPs or CIDRs that clients may connect from, 1-${MAX_WHITELIST_ENTRIES} entries; absent admits every client. ` +
    'Give them comma-separated (ip_whitelist=10.0.0.1,192.168.0.0/24) or as repeated keys ' +
    '(ip_whitelist=10.0.0.1&ip_whitelist=192.168.0.0/24); both forms may be mixed and are merged.',
  example: ['10.0.0.1', '192.168.0.0/24'],
  invalid: `Parameter 'ip_whitelist' must list 1-${MAX_WHITELIST_ENTRIES} IPs or CIDRs`,
};

export const TIMEOUT: QueryParameter = {
  name: 'timeout',
  required: false,
  decoding: 'integer',
  repeatable: false,
  schema: Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_SECONDS }),
  description: 'Seconds to wait for the first client before the session ends (reason ClientConnectTimeout); absent waits forever.',
  example: 60,
  invalid: `Parameter 'timeout' must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`,
};

export const MAX_LIFETIME: QueryParameter = {
  name: 'max_lifetime',
  required: false,
  decoding: 'integer',
  repeatable: false,
  schema: Type.Integer({ minimum: 1, maximum: MAX_LIFETIME_SECONDS }),
  description:
    "Seconds from the session's creation after which it ends (reason MaxLifetime), whatever it is doing. " +
    "Absent takes the deployment's default (none unless configured).",
  example: 43_200,
  invalid: `Parameter 'max_lifetime' must be a whole number of seconds from 1 to ${MAX_LIFETIME_SECONDS}`,
};

export const IDLE_TIMEOUT: QueryParameter = {
  name: 'idle_timeout',
  required: false,
  decoding: 'integer',
  repeatable: false,
  schema: Type.Integer({ minimum: 1, maximum: MAX_LIFETIME_SECONDS }),
  description:
    'Seconds without a byte forwarded in either direction (and without a party connecting) after which the session ends ' +
    "(reason IdleTimeout). Bytes dropped because the other side is absent are not activity. Absent takes the deployment's default (none unless configured).",
  example: 3_600,
  invalid: `Parameter 'idle_timeout' must be a whole number of seconds from 1 to ${MAX_LIFETIME_SECONDS}`,
};

export const LIMIT: QueryParameter = {
  name: 'limit',
  required: false,
  decoding: 'integer',
  repeatable: false,
  schema: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
  description: `Sessions per page, 1-${MAX_PAGE_SIZE}.`,
  example: 50,
  invalid: `Parameter 'limit' must be a whole number from 1 to ${MAX_PAGE_SIZE}`,
};

export const CURSOR: QueryParameter = {
  name: 'cursor',
  required: false,
  decoding: 'string',
  repeatable: false,
  schema: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }),
  description: 'The next_cursor of the previous page; absent starts at the first session.',
  example: 'Q0xELTEyMzQ1Ng',
  invalid: "Parameter 'cursor' must be a next_cursor from a previous page",
};

export const ON_PARAMETERS = [SERIAL, PERSISTENT, IP_WHITELIST, TIMEOUT, MAX_LIFETIME, IDLE_TIMEOUT] as const;
export const SERIAL_PARAMETERS = [SERIAL] as const;
export const LIST_PARAMETERS = [LIMIT, CURSOR] as const;

// ---- replies --------------------------------------------------------------

// Reply objects are open: a client must ignore members it does not know, so
// fields added later are not breaking changes. Errors are open too.

const timestamp = (description: string) => Type.String({ format: 'date-time', description, examples: ['2026-11-26T06:00:00.000Z'] });

export const EndpointSchema = Type.Object(
  {
    host: Type.String({
      minLength: 1,
      description: "Where the client connects (the deployment's public host).",
      examples: ['proxy.acme.example'],
    }),
    port: Type.Integer({ minimum: 1, maximum: 65535, examples: [20000] }),
  },
  { $id: 'Endpoint', description: 'Where the SCADA client connects.' },
);

const SideSchema = (side: 'device' | 'client') =>
  Type.Object(
    {
      connected: Type.Boolean({ description: `Whether the ${side} is connected now.` }),
      address: Type.Optional(
        Type.String({
          description: `Source address (ip:port) of the ${side}'s current connection.`,
          examples: [side === 'device' ? '100.64.3.7:51234' : '10.0.0.1:40022'],
        }),
      ),
      connected_since: Type.Optional(timestamp(`When the ${side}'s current connection was made.`)),
      last_activity: Type.Optional(timestamp(`When the ${side} last sent a byte (to the second), kept after it disconnects.`)),
      bytes_sent: Type.Integer({ minimum: 0, description: `Payload bytes the ${side} sent that were forwarded to the other side.` }),
      bytes_dropped: Type.Integer({
        minimum: 0,
        description: `Payload bytes the ${side} sent while the other side was absent; discarded, not in transferred.`,
      }),
    },
    { description: `The ${side} side of the session.` },
  );

const sessionFacts = {
  serial: Type.String({ minLength: 1, examples: ['CLD-123456'] }),
  state: Type.Unsafe<'pending' | 'active' | 'stopping' | 'ended' | 'failed'>({
    type: 'string',
    enum: ['pending', 'active', 'stopping', 'ended', 'failed'],
    description:
      'pending: being set up; active: listening; stopping: /off is closing it; ended: it ended (see ended_reason), kept for the retention time; failed: it could not be served.',
  }),
  created_at: timestamp('When the session was created.'),
  host: Type.Optional(Type.String({ description: 'Where the client connects, once a port is allocated.' })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'The session port, while it holds one.' })),
  persistent: Type.Boolean(),
  ip_whitelist: Type.Array(Type.String(), { description: 'Normalized whitelist; empty admits every client.' }),
  timeout: Type.Optional(Type.Integer({ description: 'Seconds to wait for the first client.' })),
  max_lifetime: Type.Optional(Type.Integer({ description: 'The lifetime limit asked for by /on, in seconds.' })),
  expires_at: Type.Optional(
    timestamp('When the session ends by its lifetime limit (its own or the deployment default), once the proxy runs it.'),
  ),
  idle_timeout: Type.Optional(Type.Integer({ description: 'Effective idle limit in seconds (asked for, or the deployment default).' })),
  device: SideSchema('device'),
  client: SideSchema('client'),
  clients_refused: Type.Integer({ minimum: 0, description: 'Client connections closed because the whitelist did not admit them.' }),
  ended_reason: Type.Optional(
    Type.String({
      description:
        'Why it ended or failed: ClientConnectTimeout, DeviceDisconnected, ClientDisconnected, IdleTimeout, MaxLifetime, Deleted, Superseded, NoAvailablePorts, ProxyLost.',
      examples: ['ClientConnectTimeout'],
    }),
  ),
  ended_at: Type.Optional(timestamp('When it ended or failed.')),
};

const seedStatus = {
  device_connected: Type.Boolean({ description: 'The device is connected now (same as device.connected).' }),
  client_connected: Type.Boolean({ description: 'A client is connected now (same as client.connected).' }),
  transferred: Type.Integer({
    minimum: 0,
    description:
      'Payload bytes forwarded between device and client, both directions together, cumulative over every reconnect of either side ' +
      'for the life of the session. Bytes a side sends while the other side is absent are discarded and not counted (see bytes_dropped).',
  }),
};

export const StatusSchema = Type.Object(
  { ...seedStatus, ...sessionFacts },
  { $id: 'Status', description: 'A session and what it has done.' },
);

export const SessionPageSchema = Type.Object(
  {
    sessions: Type.Array(Type.Ref('Status'), { description: 'Ordered by serial (byte order).' }),
    next_cursor: Type.Optional(Type.String({ description: 'Pass as cursor for the next page; absent on the last page.' })),
  },
  { $id: 'SessionPage', description: "One page of this deployment's sessions, live and recently ended." },
);

export const EmptySchema = Type.Object({}, { $id: 'Empty', description: 'No content; members may be added later.' });

export const HealthSchema = Type.Object(
  { status: Type.Unsafe<'ok' | 'ready'>({ type: 'string', enum: ['ok', 'ready'] }) },
  { $id: 'Health' },
);

// ---- errors ---------------------------------------------------------------

/** Every machine-readable error code, with the status it comes with and what it means. */
export const ERROR_CODES = {
  missing_parameter: { status: 400, meaning: 'A required parameter is absent.' },
  invalid_parameter: { status: 400, meaning: 'A parameter breaks its rule; `parameter` names it.' },
  unknown_parameter: { status: 400, meaning: 'The endpoint takes no parameter of that name (a typo is refused, not ignored).' },
  repeated_parameter: { status: 400, meaning: 'A parameter other than ip_whitelist is given more than once.' },
  unauthorized: { status: 401, meaning: 'Tokens are configured and the request carries no valid one.' },
  unknown_endpoint: { status: 404, meaning: 'No such path.' },
  session_not_found: { status: 404, meaning: 'No session for this serial: never created, switched off, or its record expired.' },
  session_ended: { status: 404, meaning: 'The session ended by itself or failed; ended_reason and ended_at say why and when.' },
  method_not_allowed: { status: 405, meaning: 'Only GET is served.' },
  session_switched_off: { status: 409, meaning: 'The session was switched off while this request was working on it.' },
  session_expired: {
    status: 409,
    meaning:
      "The session reached its max_lifetime or idle_timeout (ended_reason) before /on could answer, e.g. a max_lifetime shorter than the live session's age; /on again starts a new one.",
  },
  request_timed_out: {
    status: 500,
    meaning: 'The session did not reach the requested state within the request timeout; retrying is safe.',
  },
  session_failed: { status: 500, meaning: 'The session could not be served; the message says why.' },
  internal_error: { status: 500, meaning: 'An unexpected failure; logged with details.' },
  no_available_ports: {
    status: 503,
    meaning: 'Every port of the range is in use; nothing was left behind. Retry-After says when to try again.',
  },
  not_ready: { status: 503, meaning: 'The operator is not ready (readiness probe).' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ErrorSchema = Type.Object(
  {
    code: Type.String({
      description: "Stable, machine-readable: one of the codes listed in the document's info.",
      examples: ['invalid_parameter'],
    }),
    message: Type.String({
      minLength: 1,
      description: 'For people; its wording may change.',
      examples: ["Parameter 'timeout' must be a whole number of seconds from 1 to 86400"],
    }),
    parameter: Type.Optional(Type.String({ description: 'The offending query parameter (400 only).', examples: ['timeout'] })),
    serial: Type.Optional(Type.String({ description: 'The serial asked about (session_ended).' })),
    ended_reason: Type.Optional(Type.String({ description: 'Why the session ended (session_ended).', examples: ['ClientConnectTimeout'] })),
    ended_at: Type.Optional(timestamp('When the session ended (session_ended).')),
  },
  { $id: 'Error', description: 'Every error body. Decide on `code`; `message` is for people.' },
);

export type StatusReply = Static<typeof StatusSchema>;
export type SessionPageReply = Static<typeof SessionPageSchema>;
export type ErrorReply = Static<typeof ErrorSchema>;
export type SideReply = StatusReply['device'];
