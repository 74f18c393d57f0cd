// PortAllocator: round-robin allocation, release, reserve and quarantine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PortAllocator } from '../../operator/port-allocator.ts';

test('allocates ports in order across the inclusive range', () => {
  const ports = new PortAllocator({ min: 100, max: 102 });
  assert.equal([ports.allocate('a'), ports.allocate('b'), ports.allocate('c')], [100, 101, 102]);
  assert.is(ports.allocate('d'), undefined);
});

test('an owner asking again gets the port it holds', () => {
  const ports = new PortAllocator({ min: 100, max: 102 });
  assert.is(ports.allocate('a'), 100);
  assert.is(ports.allocate('a'), 100);
  assert.is(ports.allocatedCount, 1);
});

test('a just-freed port is not handed out again while others are free', () => {
  const ports = new PortAllocator({ min: 100, max: 103 });
  ports.allocate('a');
  ports.allocate('b');
  ports.release(100);
  assert.is(ports.allocate('c'), 102);
  assert.is(ports.allocate('d'), 103);
  assert.is(ports.allocate('e'), 100, 'wraps around to the freed port once the rest is taken');
});

test('a freed port is handed out again when the range is otherwise exhausted', () => {
  const ports = new PortAllocator({ min: 100, max: 101 });
  ports.allocate('a');
  ports.allocate('b');
  ports.releaseOwner('b');
  assert.is(ports.allocate('c'), 101);
});

test('reserve rebuilds the table: reserved ports are skipped, conflicts and out-of-range refused', () => {
  const ports = new PortAllocator({ min: 100, max: 102 });
  assert.ok(ports.reserve(101, 'a'));
  assert.ok(ports.reserve(101, 'a'), 'idempotent for the same owner');
  assert.not.ok(ports.reserve(101, 'b'));
  assert.not.ok(ports.reserve(99, 'c'));
  assert.is(ports.allocate('b'), 100);
  assert.is(ports.allocate('c'), 102);
  assert.is(ports.ownerOf(101), 'a');
  assert.is(ports.portOf('c'), 102);
});

test('a quarantined port is skipped until its quarantine ends', () => {
  let now = 0;
  const ports = new PortAllocator({ min: 100, max: 101, quarantineMs: 1000, now: () => now });
  assert.is(ports.allocate('a'), 100);
  ports.quarantine(100);
  assert.is(ports.ownerOf(100), undefined);
  assert.is(ports.allocate('a'), 101);
  assert.is(ports.allocate('b'), undefined, 'only the quarantined port is left');
  now = 1000;
  assert.is(ports.allocate('b'), 100);
});

test('a reversed or out-of-bounds range is refused', () => {
  assert.throws(() => new PortAllocator({ min: 200, max: 100 }), /Invalid port range/);
  assert.throws(() => new PortAllocator({ min: 0, max: 100 }), /Invalid port range/);
  assert.throws(() => new PortAllocator({ min: 100, max: 65536 }), /Invalid port range/);
});

test.run();
