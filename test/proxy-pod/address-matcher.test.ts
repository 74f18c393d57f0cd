import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AddressMatcher, addressEntryError } from '../../proxy-pod/address-matcher.ts';

test('an empty list admits every address', () => {
  assert.ok(new AddressMatcher([]).admits('203.0.113.9'));
});

test('a single IP admits only itself', () => {
  const m = new AddressMatcher(['127.0.0.2']);
  assert.ok(m.admits('127.0.0.2'));
  assert.not.ok(m.admits('127.0.0.1'));
  assert.not.ok(m.admits('127.0.0.20'));
});

test('a CIDR admits the addresses inside it', () => {
  const m = new AddressMatcher(['10.1.0.0/16']);
  assert.ok(m.admits('10.1.255.3'));
  assert.not.ok(m.admits('10.2.0.1'));
});

test('IPv4-mapped IPv6 peers compare as IPv4, both ways', () => {
  assert.ok(new AddressMatcher(['192.0.2.0/24']).admits('::ffff:192.0.2.7'));
  assert.ok(new AddressMatcher(['::ffff:192.0.2.7']).admits('192.0.2.7'));
  assert.ok(new AddressMatcher(['::ffff:192.0.2.0/120']).admits('192.0.2.200'));
  assert.not.ok(new AddressMatcher(['::ffff:192.0.2.0/120']).admits('192.0.3.1'));
});

test('IPv6 entries match IPv6 peers only', () => {
  const m = new AddressMatcher(['2001:db8::/32']);
  assert.ok(m.admits('2001:db8::1'));
  assert.not.ok(m.admits('10.0.0.1'));
  assert.not.ok(new AddressMatcher(['0.0.0.0/0']).admits('2001:db8::1'));
});

test('an unknown or missing peer address is refused by a non-empty list', () => {
  const m = new AddressMatcher(['0.0.0.0/0']);
  assert.not.ok(m.admits(undefined));
  assert.not.ok(m.admits('not-an-ip'));
});

test('odd forms are refused as entries', () => {
  for (const bad of ['300.1.1.1', '10.0.0.0/33', '', 'localhost', '1.2.3', '10.0.0.1/', '::1/129', '1.2.3.4/-1', '0x7f.1']) {
    assert.ok(addressEntryError(bad), `accepted ${JSON.stringify(bad)}`);
  }
  assert.throws(() => new AddressMatcher(['127.0.0.1', 'nope']));
});

test.run();
