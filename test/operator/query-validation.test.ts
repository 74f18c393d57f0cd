// The /on, /off and /status query parser: what it accepts, how it normalizes,
// and that every refusal names the parameter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  encodeCursor,
  normalizeAddressOrCidr,
  parseListQuery,
  parseOnQuery,
  parseSerialQuery,
  type QueryResult,
} from '../../operator/query-validation.ts';

function refused(query: string, parameter: string, parse: (q: string) => QueryResult<unknown> = parseOnQuery) {
  const result = parse(query);
  assert.is(result.ok, false, `expected ${query} to be refused`);
  if (!result.ok) {
    assert.is(result.parameter, parameter);
    assert.ok(result.message.includes(parameter), `message "${result.message}" names ${parameter}`);
  }
}

test('a serial alone gives the defaults: not persistent, no whitelist, no timeout', () => {
  assert.equal(parseOnQuery('serial=CLD-123456'), { ok: true, value: { serial: 'CLD-123456', persistent: false, ipWhitelist: [] } });
});

test('all /on parameters are parsed and typed', () => {
  const result = parseOnQuery('serial=A1&persistent=true&ip_whitelist=10.0.0.1,192.168.0.0/16&timeout=30');
  assert.equal(result, {
    ok: true,
    value: { serial: 'A1', persistent: true, ipWhitelist: ['10.0.0.1', '192.168.0.0/16'], timeoutSeconds: 30 },
  });
});

test('a serial may hold any printable ASCII without space, percent-encoded; + is a space as in every form-encoded query', () => {
  const result = parseOnQuery(`serial=${encodeURIComponent('a/b?c%d&e=f+g')}`);
  assert.is(result.ok && result.value.serial, 'a/b?c%d&e=f+g');
  const plus = parseSerialQuery('serial=A%2BB');
  assert.is(plus.ok && plus.value.serial, 'A+B');
  const space = parseSerialQuery('serial=A+B');
  assert.ok(!space.ok && space.parameter === 'serial' && space.message.includes('%2B'), 'a + reads as a space, which a serial cannot hold');
});

test('a 64-byte serial is accepted and a 65-byte one refused', () => {
  assert.ok(parseSerialQuery(`serial=${'x'.repeat(64)}`).ok);
  refused(`serial=${'x'.repeat(65)}`, 'serial', parseSerialQuery);
});

test('a missing, empty or unprintable serial is refused naming serial', () => {
  refused('', 'serial');
  refused('persistent=true', 'serial');
  refused('serial=', 'serial');
  refused('serial=A%20B', 'serial');
  refused('serial=A%0DB', 'serial');
  refused('serial=%C3%A9', 'serial');
  refused('serial', 'serial');
});

test('persistent takes only true or false', () => {
  for (const bad of ['yes', '1', 'TRUE', '']) refused(`serial=A&persistent=${bad}`, 'persistent');
  const no = parseOnQuery('serial=A&persistent=false');
  assert.is(no.ok && no.value.persistent, false);
});

test('timeout is a whole number of seconds from 1 to 86400', () => {
  for (const bad of ['0', '-1', '1.5', '1e3', '86401', 'abc', '', ' 5', '9999999999'])
    refused(`serial=A&timeout=${encodeURIComponent(bad)}`, 'timeout');
  const max = parseOnQuery('serial=A&timeout=86400');
  assert.is(max.ok && max.value.timeoutSeconds, 86400);
});

test('ip_whitelist refuses junk, bad prefixes and empty entries', () => {
  for (const bad of [
    '300.1.1.1',
    '10.0.0.0/33',
    '10.0.0.1,,10.0.0.2',
    '10.0.0.1,',
    '',
    'host.example',
    '010.0.0.1',
    '0x7f.0.0.1',
    '10.1',
    'fe80::1%25eth0',
    '::1/129',
    '10.0.0.0/-1',
    '10.0.0.0/',
  ]) {
    refused(`serial=A&ip_whitelist=${encodeURIComponent(bad)}`, 'ip_whitelist');
  }
});

test('ip_whitelist entries are normalized: mapped IPv6 to IPv4, host bits cleared, IPv6 compressed, duplicates dropped', () => {
  const result = parseOnQuery(
    `serial=A&ip_whitelist=${encodeURIComponent('::ffff:10.1.2.3,::ffff:10.0.0.0/104,192.168.1.7/24,2001:DB8:0:0:0:0:0:1,10.1.2.3')}`,
  );
  assert.equal(result.ok && result.value.ipWhitelist, ['10.1.2.3', '10.0.0.0/8', '192.168.1.0/24', '2001:db8::1']);
  assert.is(normalizeAddressOrCidr('::/0'), '::/0');
  assert.is(normalizeAddressOrCidr('0.0.0.0/0'), '0.0.0.0/0');
});

test('a parameter given twice is refused naming it', () => {
  refused('serial=A&serial=B', 'serial');
  refused('serial=A&timeout=5&timeout=5', 'timeout');
});

test('an unknown parameter is refused naming it, so a typo is not silently ignored', () => {
  refused('serial=A&timeot=5', 'timeot');
  refused('serial=A&persistent=true', 'persistent', parseSerialQuery);
});

test('malformed percent-encoding is refused naming the parameter', () => {
  refused('serial=%E0%A4%A', 'serial');
  refused('serial=A&timeout=%zz', 'timeout');
});

test('ip_whitelist as repeated keys is merged with comma-separated entries, in order, without duplicates', () => {
  const result = parseOnQuery('serial=A&ip_whitelist=10.0.0.1&ip_whitelist=192.168.0.0/24,10.0.0.1&ip_whitelist=::1');
  assert.equal(result.ok && result.value.ipWhitelist, ['10.0.0.1', '192.168.0.0/24', '::1']);
  refused('serial=A&ip_whitelist=10.0.0.1&ip_whitelist=', 'ip_whitelist');
  refused(`serial=A&${Array.from({ length: 101 }, (_, i) => `ip_whitelist=10.0.0.${i % 250}`).join('&')}`, 'ip_whitelist');
  refused('serial=A&ip_whitelist=10.0.0.1&ip_whitelist=host.example', 'ip_whitelist');
});

test('refusals carry a machine-readable code', () => {
  const code = (query: string, parse: (q: string) => QueryResult<unknown> = parseOnQuery) => {
    const result = parse(query);
    return result.ok ? 'accepted' : result.code;
  };
  assert.is(code('persistent=true'), 'missing_parameter');
  assert.is(code('serial=A&timeout=0'), 'invalid_parameter');
  assert.is(code('serial=A&timeot=5'), 'unknown_parameter');
  assert.is(code('serial=A&serial=B'), 'repeated_parameter');
  assert.is(code('serial=A&persistent=true&persistent=true'), 'repeated_parameter');
});

test('the %2B hint appears only where a + was written', () => {
  const plus = parseSerialQuery('serial=A+B');
  assert.ok(!plus.ok && plus.message.includes('%2B'));
  const accent = parseSerialQuery('serial=%C3%A9');
  assert.ok(!accent.ok && !accent.message.includes('%2B'), 'no plus, no hint');
});

test('max_lifetime and idle_timeout are whole seconds from 1 to 604800', () => {
  const result = parseOnQuery('serial=A&max_lifetime=604800&idle_timeout=1');
  assert.ok(result.ok && result.value.maxLifetimeSeconds === 604800 && result.value.idleTimeoutSeconds === 1);
  for (const bad of ['0', '604801', '1.5', '-1', '']) {
    refused(`serial=A&max_lifetime=${bad}`, 'max_lifetime');
    refused(`serial=A&idle_timeout=${bad}`, 'idle_timeout');
  }
});

test('/sessions takes limit (1-500, default 100) and a cursor that round-trips a serial', () => {
  assert.equal(parseListQuery(''), { ok: true, value: { limit: 100 } });
  assert.equal(parseListQuery(`limit=5&cursor=${encodeCursor('a/b+c')}`), { ok: true, value: { limit: 5, after: 'a/b+c' } });
  for (const bad of ['limit=0', 'limit=501', 'cursor=', 'cursor=***', `cursor=${encodeCursor('has space')}`, 'serial=A']) {
    assert.not.ok(parseListQuery(bad).ok, bad);
  }
});

test.run();
