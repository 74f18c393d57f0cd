// Parses and validates the query of the Control API's endpoints against the
// parameter schemas of control-api-contract.ts, the same objects the OpenAPI
// document publishes. Pure: takes the raw query string, returns a typed
// result and never throws for client input.
//
// Decisions (see README): '+' means a space, as in every form-encoded query
// (HTML forms, URLSearchParams, OpenAPI tooling), so a plus is written %2B;
// ip_whitelist may be given as repeated keys (what generated clients send)
// and the lists are merged; any other parameter given twice, or one the
// endpoint does not know, is refused, because a typo such as `timeot`
// silently ignored would leave a session without its timeout.
import { Value } from '@sinclair/typebox/value';
import ipaddr from 'ipaddr.js';
import {
  DEFAULT_PAGE_SIZE,
  type ErrorCode,
  LIST_PARAMETERS,
  MAX_SERIAL_BYTES,
  MAX_TIMEOUT_SECONDS,
  MAX_WHITELIST_ENTRIES,
  ON_PARAMETERS,
  type QueryParameter,
  SERIAL,
  SERIAL_PARAMETERS,
  WHITELIST_ENTRY,
} from './control-api-contract.ts';

export { MAX_SERIAL_BYTES, MAX_TIMEOUT_SECONDS, MAX_WHITELIST_ENTRIES };

export interface SerialQuery {
  serial: string;
}

/** /on parameters; absent ones take their defaults, so one call states the whole desired session. */
export interface OnQuery extends SerialQuery {
  persistent: boolean;
  /** Normalized IPs and CIDRs; empty admits every client. */
  ipWhitelist: string[];
  timeoutSeconds?: number;
  maxLifetimeSeconds?: number;
  idleTimeoutSeconds?: number;
}

export interface ListQuery {
  limit: number;
  /** The serial after which the page starts. */
  after?: string;
}

export type QueryRefusal = { ok: false; parameter: string; code: ErrorCode; message: string };
export type QueryResult<T> = { ok: true; value: T } | QueryRefusal;

function refuse(parameter: string, message: string, code: ErrorCode = 'invalid_parameter'): QueryRefusal {
  return { ok: false, parameter, code, message };
}

/** The raw texts of each given parameter, and whether any raw text held a '+'. */
interface RawParameter {
  values: string[];
  hadPlus: boolean;
}

/** Splits `a=1&b=2`, refusing unknown names, repeats of non-list parameters and bad percent-encoding. */
function splitQuery(query: string, allowed: readonly QueryParameter[]): QueryResult<Map<string, RawParameter>> {
  const names = allowed.map((p) => p.name);
  const params = new Map<string, RawParameter>();
  for (const segment of query.split('&')) {
    if (segment === '') continue;
    const eq = segment.indexOf('=');
    const rawName = eq === -1 ? segment : segment.slice(0, eq);
    const rawValue = eq === -1 ? '' : segment.slice(eq + 1);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replaceAll('+', ' '));
    } catch {
      return refuse(rawName, `Parameter name '${printable(rawName)}' has malformed percent-encoding`, 'unknown_parameter');
    }
    if (name === '')
      return refuse(
        '(unnamed)',
        `Parameter (unnamed) in '${printable(segment)}' has no name (allowed: ${names.join(', ')})`,
        'unknown_parameter',
      );
    const parameter = allowed.find((p) => p.name === name);
    if (!parameter) return refuse(name, `Unknown parameter '${printable(name)}' (allowed: ${names.join(', ')})`, 'unknown_parameter');
    try {
      value = decodeURIComponent(rawValue.replaceAll('+', ' '));
    } catch {
      return refuse(name, `Parameter '${name}' has malformed percent-encoding`);
    }
    const seen = params.get(name);
    if (seen && !parameter.repeatable) return refuse(name, `Parameter '${name}' is given more than once`, 'repeated_parameter');
    if (seen) {
      seen.values.push(value);
      seen.hadPlus ||= rawValue.includes('+');
    } else {
      params.set(name, { values: [value], hadPlus: rawValue.includes('+') });
    }
  }
  return { ok: true, value: params };
}

/** Keeps messages readable and log-safe when echoing client input. */
function printable(text: string): string {
  const clipped = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return clipped.replace(/[^\x20-\x7e]/g, '?');
}

/** A plain boolean (not a type guard), so a refusal can still look at the value. */
function conforms(schema: QueryParameter['schema'], value: unknown): boolean {
  return Value.Check(schema, value);
}

/** Turns the raw texts into the value the parameter's schema describes, then checks it against that schema. */
function decode(parameter: QueryParameter, raw: RawParameter): QueryResult<unknown> {
  let value: unknown;
  // Only a repeatable list parameter has several values; the others were refused before.
  const text = raw.values[0] ?? '';
  switch (parameter.decoding) {
    case 'string':
      value = text;
      break;
    case 'boolean':
      value = text === 'true' ? true : text === 'false' ? false : text;
      break;
    case 'integer':
      // Plain decimal digits only: no sign, exponent, fraction or spaces.
      value = /^[0-9]{1,16}$/.test(text) ? Number(text) : text;
      break;
    case 'list':
      value = raw.values.flatMap((v) => v.split(','));
      break;
  }
  if (conforms(parameter.schema, value)) return { ok: true, value };
  let message = parameter.invalid;
  if (parameter === SERIAL && raw.hadPlus) message += "; in a query '+' means a space, so write a plus as %2B";
  if (parameter.decoding === 'list' && Array.isArray(value)) {
    const entries = value as string[];
    const bad = entries.find((entry) => entry !== '' && !conforms(WHITELIST_ENTRY, entry));
    if (entries.includes('')) message = `Parameter '${parameter.name}' has an empty entry (omit the parameter to admit every client)`;
    else if (entries.length > MAX_WHITELIST_ENTRIES)
      message = `Parameter '${parameter.name}' may list at most ${MAX_WHITELIST_ENTRIES} entries`;
    else if (bad !== undefined) message = `Parameter '${parameter.name}' has an entry that is not an IP or CIDR: '${printable(bad)}'`;
  }
  return refuse(parameter.name, message);
}

/** Every parameter of `allowed` that was given, decoded and schema-checked; required ones present. */
function parseAgainst(query: string, allowed: readonly QueryParameter[]): QueryResult<Map<string, unknown>> {
  const split = splitQuery(query, allowed);
  if (!split.ok) return split;
  const values = new Map<string, unknown>();
  for (const parameter of allowed) {
    const raw = split.value.get(parameter.name);
    if (raw === undefined) {
      if (parameter.required) return refuse(parameter.name, `Parameter '${parameter.name}' is required`, 'missing_parameter');
      continue;
    }
    const decoded = decode(parameter, raw);
    if (!decoded.ok) return decoded;
    values.set(parameter.name, decoded.value);
  }
  return { ok: true, value: values };
}

/** A serial the device side could send: 1–64 bytes, each 0x21–0x7E. */
export function validateSerial(serial: string | undefined): QueryResult<string> {
  if (serial === undefined) return refuse('serial', "Parameter 'serial' is required", 'missing_parameter');
  const decoded = decode(SERIAL, { values: [serial], hadPlus: false });
  return decoded.ok ? { ok: true, value: serial } : decoded;
}

/**
 * One IP or CIDR, normalized: IPv4 in dotted decimal (no octal/hex forms),
 * IPv6 compressed, IPv4-mapped IPv6 turned into IPv4, CIDR host bits cleared.
 */
export function normalizeAddressOrCidr(entry: string): string | undefined {
  const slash = entry.indexOf('/');
  const addressText = slash === -1 ? entry : entry.slice(0, slash);
  const prefixText = slash === -1 ? undefined : entry.slice(slash + 1);
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(addressText)) {
    address = ipaddr.IPv4.parse(addressText);
  } else if (addressText.includes(':') && !addressText.includes('%') && ipaddr.IPv6.isValid(addressText)) {
    address = ipaddr.IPv6.parse(addressText);
  } else {
    return undefined;
  }
  let prefix = address.kind() === 'ipv4' ? 32 : 128;
  if (prefixText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(prefixText)) return undefined;
    const parsed = Number(prefixText);
    if (parsed > prefix) return undefined;
    prefix = parsed;
  }
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && prefix >= 96) {
    address = address.toIPv4Address();
    prefix -= 96;
  }
  if (prefixText === undefined) return address.toString();
  const network =
    address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${prefix}`);
  return `${network.toString()}/${prefix}`;
}

/** The schema admits any short strings; each must also be an IP or CIDR, which JSON Schema cannot say. */
function normalizeWhitelist(entries: string[]): QueryResult<string[]> {
  const normalized: string[] = [];
  for (const entry of entries) {
    const canonical = normalizeAddressOrCidr(entry);
    if (canonical === undefined) {
      return refuse('ip_whitelist', `Parameter 'ip_whitelist' has an entry that is not an IP or CIDR: '${printable(entry)}'`);
    }
    if (!normalized.includes(canonical)) normalized.push(canonical);
  }
  return { ok: true, value: normalized };
}

export function parseOnQuery(query: string): QueryResult<OnQuery> {
  const parsed = parseAgainst(query, ON_PARAMETERS);
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  const whitelist = normalizeWhitelist((v.get('ip_whitelist') as string[] | undefined) ?? []);
  if (!whitelist.ok) return whitelist;
  const value: OnQuery = {
    serial: v.get('serial') as string,
    persistent: (v.get('persistent') as boolean | undefined) ?? false,
    ipWhitelist: whitelist.value,
  };
  const timeout = v.get('timeout') as number | undefined;
  if (timeout !== undefined) value.timeoutSeconds = timeout;
  const maxLifetime = v.get('max_lifetime') as number | undefined;
  if (maxLifetime !== undefined) value.maxLifetimeSeconds = maxLifetime;
  const idleTimeout = v.get('idle_timeout') as number | undefined;
  if (idleTimeout !== undefined) value.idleTimeoutSeconds = idleTimeout;
  return { ok: true, value };
}

/** /off and /status take only the serial. */
export function parseSerialQuery(query: string): QueryResult<SerialQuery> {
  const parsed = parseAgainst(query, SERIAL_PARAMETERS);
  if (!parsed.ok) return parsed;
  return { ok: true, value: { serial: parsed.value.get('serial') as string } };
}

/** The cursor is the last serial of the previous page, base64url-encoded so it is opaque and query-safe. */
export function encodeCursor(serial: string): string {
  return Buffer.from(serial, 'utf8').toString('base64url');
}

/** GET /sessions: page size and where to start. */
export function parseListQuery(query: string): QueryResult<ListQuery> {
  const parsed = parseAgainst(query, LIST_PARAMETERS);
  if (!parsed.ok) return parsed;
  const value: ListQuery = { limit: (parsed.value.get('limit') as number | undefined) ?? DEFAULT_PAGE_SIZE };
  const cursor = parsed.value.get('cursor') as string | undefined;
  if (cursor !== undefined) {
    const after = Buffer.from(cursor, 'base64url').toString('utf8');
    if (!validateSerial(after).ok || encodeCursor(after) !== cursor)
      return refuse('cursor', "Parameter 'cursor' must be a next_cursor from a previous page");
    value.after = after;
  }
  return { ok: true, value };
}
