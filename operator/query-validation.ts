// Parses and validates the query of /on, /off and /status. Pure: takes the
// raw query string, returns a typed result and never throws for client input.
//
// Decisions (see README): '+' means a space, as in every form-encoded query
// (HTML forms, URLSearchParams, OpenAPI tooling), so a plus is written %2B; a parameter given
// twice or one the endpoint does not know is refused, because a typo such as
// `timeot` silently ignored would leave a session without its timeout.
import ipaddr from 'ipaddr.js';

export const MAX_SERIAL_BYTES = 64;
export const MAX_TIMEOUT_SECONDS = 86_400;
export const MAX_WHITELIST_ENTRIES = 100;

export interface SerialQuery {
  serial: string;
}

/** /on parameters; absent ones take their defaults, so one call states the whole desired session. */
export interface OnQuery extends SerialQuery {
  persistent: boolean;
  /** Normalized IPs and CIDRs; empty admits every client. */
  ipWhitelist: string[];
  timeoutSeconds?: number;
}

export type QueryResult<T> =
  | { ok: true; value: T }
  | { ok: false; parameter: string; message: string };

const ON_PARAMETERS = ['serial', 'persistent', 'ip_whitelist', 'timeout'] as const;
const SERIAL_PARAMETERS = ['serial'] as const;

type Params = Map<string, string>;

function refuse(parameter: string, message: string): { ok: false; parameter: string; message: string } {
  return { ok: false, parameter, message };
}

/** Splits `a=1&b=2` into a map, refusing repeats, unknown names and bad percent-encoding. */
function parseParams(query: string, allowed: readonly string[]): QueryResult<Params> {
  const params: Params = new Map();
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
      return refuse(rawName, `Parameter name '${printable(rawName)}' has malformed percent-encoding`);
    }
    if (name === '') return refuse('(unnamed)', `Parameter (unnamed) in '${printable(segment)}' has no name (allowed: ${allowed.join(', ')})`);
    if (!allowed.includes(name)) {
      return refuse(name, `Unknown parameter '${printable(name)}' (allowed: ${allowed.join(', ')})`);
    }
    try {
      value = decodeURIComponent(rawValue.replaceAll('+', ' '));
    } catch {
      return refuse(name, `Parameter '${name}' has malformed percent-encoding`);
    }
    if (params.has(name)) return refuse(name, `Parameter '${name}' is given more than once`);
    params.set(name, value);
  }
  return { ok: true, value: params };
}

/** Keeps messages readable and log-safe when echoing client input. */
function printable(text: string): string {
  const clipped = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return clipped.replace(/[^\x20-\x7e]/g, '?');
}

/** A serial the device side could send: 1–64 bytes, each 0x21–0x7E. */
export function validateSerial(serial: string | undefined): QueryResult<string> {
  if (serial === undefined) return refuse('serial', "Parameter 'serial' is required");
  if (serial === '') return refuse('serial', "Parameter 'serial' must not be empty");
  if (serial.length > MAX_SERIAL_BYTES) {
    return refuse('serial', `Parameter 'serial' must be at most ${MAX_SERIAL_BYTES} bytes`);
  }
  for (let i = 0; i < serial.length; i++) {
    const code = serial.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) {
      return refuse('serial', "Parameter 'serial' may only contain printable ASCII without space (0x21-0x7E); in a query '+' means a space, so write a plus as %2B");
    }
  }
  return { ok: true, value: serial };
}

function validatePersistent(value: string | undefined): QueryResult<boolean> {
  if (value === undefined) return { ok: true, value: false };
  if (value === 'true') return { ok: true, value: true };
  if (value === 'false') return { ok: true, value: false };
  return refuse('persistent', "Parameter 'persistent' must be 'true' or 'false'");
}

function validateTimeout(value: string | undefined): QueryResult<number | undefined> {
  if (value === undefined) return { ok: true, value: undefined };
  const message = `Parameter 'timeout' must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`;
  if (!/^[0-9]{1,6}$/.test(value)) return refuse('timeout', message);
  const seconds = Number(value);
  if (seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) return refuse('timeout', message);
  return { ok: true, value: seconds };
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
  const network = address.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${prefix}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${prefix}`);
  return `${network.toString()}/${prefix}`;
}

function validateWhitelist(value: string | undefined): QueryResult<string[]> {
  if (value === undefined) return { ok: true, value: [] };
  if (value === '') {
    return refuse('ip_whitelist', "Parameter 'ip_whitelist' must list at least one IP or CIDR (omit it to admit every client)");
  }
  const entries = value.split(',');
  if (entries.length > MAX_WHITELIST_ENTRIES) {
    return refuse('ip_whitelist', `Parameter 'ip_whitelist' may list at most ${MAX_WHITELIST_ENTRIES} entries`);
  }
  const normalized: string[] = [];
  for (const entry of entries) {
    if (entry === '') return refuse('ip_whitelist', "Parameter 'ip_whitelist' has an empty entry");
    const canonical = normalizeAddressOrCidr(entry);
    if (canonical === undefined) {
      return refuse('ip_whitelist', `Parameter 'ip_whitelist' has an entry that is not an IP or CIDR: '${printable(entry)}'`);
    }
    if (!normalized.includes(canonical)) normalized.push(canonical);
  }
  return { ok: true, value: normalized };
}

export function parseOnQuery(query: string): QueryResult<OnQuery> {
  const params = parseParams(query, ON_PARAMETERS);
  if (!params.ok) return params;
  const serial = validateSerial(params.value.get('serial'));
  if (!serial.ok) return serial;
  const persistent = validatePersistent(params.value.get('persistent'));
  if (!persistent.ok) return persistent;
  const ipWhitelist = validateWhitelist(params.value.get('ip_whitelist'));
  if (!ipWhitelist.ok) return ipWhitelist;
  const timeout = validateTimeout(params.value.get('timeout'));
  if (!timeout.ok) return timeout;
  const value: OnQuery = { serial: serial.value, persistent: persistent.value, ipWhitelist: ipWhitelist.value };
  if (timeout.value !== undefined) value.timeoutSeconds = timeout.value;
  return { ok: true, value };
}

/** /off and /status take only the serial. */
export function parseSerialQuery(query: string): QueryResult<SerialQuery> {
  const params = parseParams(query, SERIAL_PARAMETERS);
  if (!params.ok) return params;
  const serial = validateSerial(params.value.get('serial'));
  if (!serial.ok) return serial;
  return { ok: true, value: { serial: serial.value } };
}
