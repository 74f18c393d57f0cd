// The change feed's bookkeeping on its own: order, each session once, paging,
// removals, the floor and the full listing it forces, re-put serials, the
// compaction of the log, and which sessions a reader that asks gets as
// counter entries.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ChangeFeed } from '../../proxy-pod/change-feed.ts';

const test = suite('change feed');

/** Reads every page from `since` to the end, as a reader would. */
function readAll(feed: ChangeFeed, since: number, limit: number, sameInstance = true) {
  const pages = [];
  let cursor = since;
  let same = sameInstance;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = feed.read(cursor, limit, same);
    pages.push(page);
    cursor = page.cursor;
    same = true;
    if (!page.more) break;
  }
  return { pages, cursor, changed: pages.flatMap((p) => p.changed), removed: pages.flatMap((p) => p.removed.map((r) => r.serial)) };
}

test('changes come in change order, each session once with its latest seq', () => {
  const feed = new ChangeFeed();
  assert.is(feed.change('A'), 1);
  assert.is(feed.change('B'), 2);
  assert.is(feed.change('A'), 3);
  assert.is(feed.change('C'), 4);
  const page = feed.read(0, 100, true);
  assert.equal(page.changed, ['B', 'A', 'C']);
  assert.is(page.reset, false);
  assert.is(page.more, false);
  assert.is(page.cursor, 4);
  assert.equal(feed.read(2, 100, true).changed, ['A', 'C'], 'only what changed after the cursor');
  assert.equal(feed.read(4, 100, true).changed, []);
  assert.is(feed.read(4, 100, true).cursor, 4, 'an empty answer keeps the cursor');
  assert.is(feed.seqOf('A'), 3);
});

test('a page holds at most `limit` items; `more` and `cursor` lead through the rest', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 10; i++) feed.change(`S${i}`);
  feed.remove('S3', 'id-3');
  const first = feed.read(0, 4, true);
  assert.equal(first.changed, ['S0', 'S1', 'S2', 'S4']);
  assert.ok(first.more);
  assert.is(first.cursor, 5);
  const all = readAll(feed, 0, 4);
  assert.equal(all.changed, ['S0', 'S1', 'S2', 'S4', 'S5', 'S6', 'S7', 'S8', 'S9']);
  assert.equal(all.removed, ['S3']);
  assert.is(all.cursor, feed.current);
  assert.equal(
    all.pages.map((p) => p.changed.length + p.removed.length),
    [4, 4, 2],
  );
});

test('a change made between two pages is seen once, later', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 6; i++) feed.change(`S${i}`);
  const first = feed.read(0, 3, true);
  assert.equal(first.changed, ['S0', 'S1', 'S2']);
  feed.change('S1');
  feed.change('S4');
  const rest = readAll(feed, first.cursor, 3);
  assert.equal(rest.changed, ['S3', 'S5', 'S1', 'S4']);
});

test('removals come in change order with the removed incarnation, and a removed serial no longer shows as changed', () => {
  const feed = new ChangeFeed();
  feed.change('A');
  feed.change('B');
  const removedSeq = feed.remove('A', 'uid-a');
  const page = feed.read(0, 100, true);
  assert.equal(page.changed, ['B']);
  assert.equal(page.removed, [{ serial: 'A', id: 'uid-a', changeSeq: removedSeq }]);
  assert.is(feed.seqOf('A'), 0);
  assert.is(feed.size, 1);
});

test('a serial removed and put again shows as changed, and its removal is gone from the feed', () => {
  const feed = new ChangeFeed();
  feed.change('A');
  const cursor = feed.read(0, 100, true).cursor;
  feed.remove('A', 'uid-1');
  feed.change('A');
  const page = feed.read(cursor, 100, true);
  assert.equal(page.changed, ['A']);
  assert.equal(page.removed, [], 'the new incarnation replaces the old one under its serial');
  feed.remove('A', 'uid-2');
  const again = feed.read(cursor, 100, true);
  assert.equal(again.changed, []);
  assert.equal(
    again.removed.map((r) => r.id),
    ['uid-2'],
    'only the latest removal',
  );
});

test('another instance (or none) gets a full listing from the start, without removals, paged', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 5; i++) feed.change(`S${i}`);
  feed.remove('S0', 'x');
  const first = feed.read(6, 2, false);
  assert.ok(first.reset);
  assert.equal(first.changed, ['S1', 'S2']);
  assert.equal(first.removed, []);
  const all = readAll(feed, 6, 2, false);
  assert.equal(all.changed, ['S1', 'S2', 'S3', 'S4']);
  assert.equal(
    all.pages.map((p) => p.reset),
    [true, false, false],
    'only the first page starts the listing',
  );
  assert.equal(all.removed, ['S0'], 'the pages after the first are ordinary answers, removals included');
  assert.ok(feed.read(feed.current + 5, 10, true).reset, 'a cursor from the future is no cursor of this instance');
});

test('removals are bounded; a cursor below the floor gets a full listing that pages to the end without starting over', () => {
  const feed = new ChangeFeed(undefined, 8);
  const restamped: string[] = [];
  const watched = new ChangeFeed((serial) => restamped.push(serial), 8);
  for (const f of [feed, watched]) {
    for (let i = 0; i < 5; i++) f.change(`LIVE${i}`);
    for (let i = 0; i < 11; i++) {
      f.change(`GONE${i}`);
      f.remove(`GONE${i}`, `id${i}`);
    }
  }
  assert.ok(watched.floor > 5, 'old removals were dropped: the floor rose');
  assert.equal(restamped, ['LIVE0', 'LIVE1', 'LIVE2', 'LIVE3', 'LIVE4'], 'sessions older than the floor got a fresh seq');
  const page = watched.read(3, 2, true);
  assert.ok(page.reset, 'a cursor below the floor may have missed a removal');
  const all = readAll(watched, 3, 2);
  assert.equal(all.changed, ['LIVE0', 'LIVE1', 'LIVE2', 'LIVE3', 'LIVE4']);
  assert.equal(all.pages.filter((p) => p.reset).length, 1, 'the listing pages on without a second reset');
  const fresh = watched.read(watched.floor, 100, true);
  assert.not.ok(fresh.reset, 'a cursor at the floor misses nothing');
});

test('at least the last MAX removals stay answerable', () => {
  const feed = new ChangeFeed(undefined, 100);
  feed.change('KEEP');
  const start = feed.current;
  for (let i = 0; i < 100; i++) feed.remove(`R${i}`, `id${i}`);
  const page = feed.read(start, 1000, true);
  assert.not.ok(page.reset);
  assert.is(page.removed.length, 100);
});

test('the log is compacted once superseded entries outnumber the live ones, and answers stay the same', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 100; i++) feed.change(`S${i}`);
  let longest = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i += 7) feed.change(`S${i}`);
    longest = Math.max(longest, feed.logLength);
  }
  assert.ok(longest <= 2 * 100 + 64 + 1, `log stays within twice the sessions (was ${longest})`);
  const all = readAll(feed, 0, 30);
  assert.is(all.changed.length, 100);
  assert.is(new Set(all.changed).size, 100);
  const tail = all.changed.slice(-15);
  assert.equal(
    tail,
    Array.from({ length: 15 }, (_, k) => `S${k * 7}`),
    'the most recently changed last',
  );
});

test('asked for, sessions whose latest full change is at or below the cursor come apart as counters; the rest in full', () => {
  const feed = new ChangeFeed();
  feed.change('A');
  feed.change('B');
  feed.change('C');
  const cursor = feed.read(0, 100, true, 0).cursor;
  feed.change('A', true);
  feed.change('B', true);
  feed.change('B');
  feed.change('C', true);
  feed.change('D', true);
  feed.change('D', true);
  assert.is(feed.fullSeqOf('A'), 1, 'moved counters leave the full change where it was');
  assert.is(feed.fullSeqOf('B'), feed.seqOf('B'));
  assert.is(feed.fullSeqOf('D'), cursor + 5, "a serial's first change is full, counters-only or not");
  const page = feed.read(cursor, 100, true, cursor);
  assert.equal(page.counters, ['A', 'C'], 'counters only since the cursor, in change order');
  assert.equal(page.changed, ['B', 'D'], 'a full change after the cursor, or a session new since it, comes in full');
  const unasked = feed.read(cursor, 100, true);
  assert.equal(unasked.changed, ['A', 'B', 'C', 'D'], 'a reader that does not ask gets every session in full');
  assert.equal(unasked.counters, []);
  const older = feed.read(0, 100, true, 0);
  assert.equal(older.counters, [], 'a cursor below every full change: all in full');
});

test('asked to skip them, sessions whose counters alone moved are left out, and the cursor passes them', () => {
  const feed = new ChangeFeed();
  for (const serial of ['A', 'B', 'C']) feed.change(serial);
  const cursor = feed.read(0, 100, true, 0).cursor;
  feed.change('A', true);
  feed.change('B');
  feed.change('C', true);
  const page = feed.read(cursor, 100, true, cursor, true);
  assert.equal([page.changed, page.counters, page.more, page.cursor], [['B'], [], false, feed.current]);
  const quiet = feed.read(cursor, 1, true, cursor, true);
  assert.equal([quiet.changed, quiet.more], [['B'], false], 'skipped entries count toward neither `limit` nor `more`');
  feed.change('A', true);
  const none = feed.read(page.cursor, 100, true, page.cursor, true);
  assert.equal(
    [none.changed, none.counters, none.more, none.cursor],
    [[], [], false, feed.current],
    'nothing but moved counters: an empty page at now',
  );
  const reset = feed.read(cursor, 100, false, cursor, true);
  assert.equal(reset.changed, ['B', 'C', 'A'], 'a reset is in full');
  const entries = feed.read(cursor, 100, true, cursor);
  assert.equal(entries.counters, ['C', 'A'], 'asked for entries instead, the same changes come as entries');
});

test('skipping counters, a read pages through the full changes alone: each session with one after the complete cursor comes once, in full', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 10; i++) feed.change(`S${i}`);
  const complete = feed.current;
  let live = 10;
  const moveAll = () => {
    for (let i = 0; i < live; i++) feed.change(`S${i}`, true);
  };
  feed.change('S3');
  moveAll();
  feed.change('S7');
  moveAll();
  feed.change('S1');
  feed.remove('S9', 'id-9');
  live = 9;
  moveAll();
  const pages = [];
  let since = complete;
  for (let guard = 0; guard < 10; guard++) {
    const page = feed.read(since, 1, true, complete, true);
    pages.push([page.changed, page.counters, page.removed.map((r) => r.serial), page.more]);
    since = page.cursor;
    if (!page.more) break;
  }
  assert.equal(pages, [
    [['S3'], [], [], true],
    [['S7'], [], [], true],
    [['S1'], [], [], true],
    [[], [], ['S9'], false],
  ]);
  assert.is(since, feed.current, 'the last page ends at now');
  const full = readAll(feed, complete, 100);
  assert.equal(
    new Set(full.changed),
    new Set(['S0', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7', 'S8']),
    'read without skipping, every moved session',
  );
});

test('the log of full changes is compacted too, and a skipping read still finds each session once', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 100; i++) feed.change(`S${i}`);
  const complete = feed.current;
  let longest = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i += 7) feed.change(`S${i}`);
    for (let i = 0; i < 100; i += 3) feed.change(`S${i}`, true);
    longest = Math.max(longest, feed.fullLogLength);
  }
  assert.ok(longest <= 2 * 100 + 64 + 1, `within twice the sessions (was ${longest})`);
  const page = feed.read(complete, 1000, true, complete, true);
  assert.equal(
    page.changed,
    Array.from({ length: 15 }, (_, k) => `S${k * 7}`),
    'the sessions with full changes, once each, in the order of their latest',
  );
});

test('counter entries count toward `limit` and page in change order with the states and removals', () => {
  const feed = new ChangeFeed();
  for (let i = 0; i < 6; i++) feed.change(`S${i}`);
  const cursor = feed.current;
  for (let i = 0; i < 6; i++) feed.change(`S${i}`, i % 2 === 0);
  feed.remove('S5', 'id-5');
  const pages = [];
  let since = cursor;
  for (let guard = 0; guard < 10; guard++) {
    const page = feed.read(since, 2, true, cursor);
    pages.push([page.counters, page.changed, page.removed.map((r) => r.serial)]);
    since = page.cursor;
    if (!page.more) break;
  }
  assert.equal(pages, [
    [['S0'], ['S1'], []],
    [['S2'], ['S3'], []],
    [['S4'], [], ['S5']],
  ]);
});

test('counters up to the last complete cursor: a session whose full change came between it and a later page cursor is in full', () => {
  const feed = new ChangeFeed();
  feed.change('A');
  feed.change('B');
  const complete = feed.read(0, 100, true).cursor;
  // After the complete read: B connects (a full change), then both move counters. B's full change is
  // superseded by its counters in the log, so a page cursor past it never listed it to the reader.
  feed.change('B');
  feed.change('X');
  feed.change('A', true);
  feed.change('B', true);
  const first = feed.read(complete, 1, true, complete);
  assert.equal([first.changed, first.counters, first.more], [['X'], [], true]);
  const second = feed.read(first.cursor, 100, true, complete);
  assert.equal([second.counters, second.changed], [['A'], ['B']], "B's full change is above the complete cursor: in full");
  const unsafe = feed.read(first.cursor, 100, true, first.cursor);
  assert.equal(unsafe.counters, ['A', 'B'], 'counters up to the page cursor would have given B as an entry (what the rule is for)');
});

test('a reset is in full even when counters are asked for: another instance, a cursor from the future, one below the floor', () => {
  const feed = new ChangeFeed(undefined, 8);
  feed.change('A');
  const cursor = feed.current;
  feed.change('A', true);
  assert.equal(feed.read(cursor, 100, true, cursor).counters, ['A'], 'the same cursor of this instance: counters');
  for (const page of [feed.read(cursor, 100, false, cursor), feed.read(feed.current + 1, 100, true, feed.current + 1)]) {
    assert.ok(page.reset);
    assert.equal([page.changed, page.counters], [['A'], []]);
  }
  for (let i = 0; i < 11; i++) {
    feed.change(`GONE${i}`);
    feed.remove(`GONE${i}`, `id${i}`);
  }
  assert.ok(feed.floor > cursor);
  const below = feed.read(cursor, 100, true, cursor);
  assert.ok(below.reset, 'the cursor is below the floor');
  assert.equal([below.changed, below.counters], [['A'], []]);
});

test('a session restamped when the floor rises keeps its full change: counters at or above the floor, in full below it', () => {
  const restamped: string[] = [];
  const feed = new ChangeFeed((serial) => restamped.push(serial), 8);
  feed.change('OLD');
  feed.change('OLD', true);
  feed.change('BUSY');
  const beforeFloor = feed.current;
  for (let i = 0; i < 11; i++) {
    feed.change(`GONE${i}`);
    feed.remove(`GONE${i}`, `id${i}`);
    // A session that changes in full all along is never below the floor.
    feed.change('BUSY');
  }
  assert.equal(restamped, ['OLD'], 'only the session whose latest change fell below the floor');
  assert.ok(feed.seqOf('OLD') > feed.floor);
  assert.is(feed.fullSeqOf('OLD'), 1, 'the restamp is no full change');
  // A reader at the floor has seen every change below it, the old session's included.
  const atFloor = feed.read(feed.floor, 100, true, feed.floor);
  assert.not.ok(atFloor.reset);
  assert.equal([atFloor.counters, atFloor.changed], [['OLD'], ['BUSY']]);
  // One below may not have: a reset, every session in full.
  const listing = readAll(feed, beforeFloor, 1);
  assert.ok(listing.pages[0]?.reset);
  assert.equal(listing.changed.sort(), ['BUSY', 'OLD']);
});

test.run();
