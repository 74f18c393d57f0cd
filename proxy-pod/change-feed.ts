// The change feed's bookkeeping (see admin-protocol.ts): which session
// changed when, and which were removed, so `GET /v1/changes?since=N` answers
// from a log instead of walking every session. Pure: serials in, serials out;
// the proxy pod turns them into states.
//
// Changes: every change appends (seq, serial) and records seq as the serial's
// latest; an entry whose seq is no longer its serial's latest is superseded
// and skipped. The log is sorted by seq (appends only), so `since` is a binary
// search, and it is compacted to its live entries once it holds more than
// twice as many as there are sessions.
//
// Removals: kept in a log of their own, bounded (see MAX_REMOVALS). When old
// removals are dropped, the floor rises to the newest dropped one: a cursor
// below it may have missed a removal, so it gets a full listing (`reset`).
// Sessions whose latest change is below the floor are given a new seq then,
// so that a full listing, which pages by seq, never hands out a cursor below
// the floor (it would start over at every page).
//
// Full changes: each serial's latest change that was not counters-only. A
// reader that asks gets the serials whose full change is at or below the
// cursor of its last complete read apart (`counters`): it needs their
// counters only (see admin-protocol.ts), or, if it says so, nothing: it
// asks for counters when it needs them. A restamp is counters-only: the
// full change it leaves is below the floor, and a cursor below the floor
// gets a reset. Full changes have a log of their own (compacted the same
// way), which a reader that skips counters walks instead of the change log:
// with 5,000 busy sessions the change log gains ~1,500 counters-only entries
// between two reads 300 ms apart, and walking them took a read 0.1 ms at the
// median and up to 1.6 ms on the data plane's event loop (3 µs without).

import type { SessionRemoval } from '../common/admin-protocol.ts';

/** Removals kept: at least this many of the latest, at most a quarter more (dropped in batches). */
export const MAX_REMOVALS = 10_000;

interface Entry {
  seq: number;
  serial: string;
}

export interface FeedPage {
  /** The cursor was another instance's, too old, or unknown: this page starts a full listing. */
  reset: boolean;
  /** Serials changed after the cursor, each once, in change order (but those in `counters`). */
  changed: string[];
  /** When asked for: the changed serials whose latest full change is at or below `countersUpTo`, in change order. */
  counters: string[];
  removed: SessionRemoval[];
  cursor: number;
  more: boolean;
}

export class ChangeFeed {
  private seq = 0;
  private readonly latest = new Map<string, number>();
  /** Seq of each serial's latest change that was not counters-only. */
  private readonly fullChanges = new Map<string, number>();
  private log: Entry[] = [];
  /** The full changes, in seq order; an entry is live while it is its serial's latest full change. */
  private fullLog: Entry[] = [];
  private removals: SessionRemoval[] = [];
  /** Seq of each serial's latest removal, while it is not put again. */
  private readonly removedAt = new Map<string, number>();
  private floorSeq = 0;

  /**
   * `restamped` hears of sessions given a new seq by the feed itself (when the
   * floor rises), so their holder can show it.
   */
  constructor(
    private readonly restamped: (serial: string, seq: number) => void = () => {},
    private readonly maxRemovals = MAX_REMOVALS,
  ) {}

  /** The last seq handed out. */
  get current(): number {
    return this.seq;
  }

  /** Cursors below this may have missed a removal and get a full listing. */
  get floor(): number {
    return this.floorSeq;
  }

  /** Sessions the feed knows (live or ended, not removed). */
  get size(): number {
    return this.latest.size;
  }

  /** Entries in the change log, superseded ones included (for tests of the compaction). */
  get logLength(): number {
    return this.log.length;
  }

  /** Entries in the log of full changes, superseded ones included (for tests). */
  get fullLogLength(): number {
    return this.fullLog.length;
  }

  /**
   * Records a change of the serial's session; returns its new changeSeq.
   * `countersOnly`: only its counters and activity times moved (a serial the
   * feed does not know has no state to add them to: its change is full).
   */
  change(serial: string, countersOnly = false): number {
    const seq = ++this.seq;
    if (!countersOnly || !this.latest.has(serial)) {
      this.fullChanges.set(serial, seq);
      this.fullLog.push({ seq, serial });
      if (this.fullLog.length > 2 * this.fullChanges.size + 64) this.fullLog = this.fullLog.filter(this.isLatestFull);
    }
    this.latest.set(serial, seq);
    this.removedAt.delete(serial);
    this.log.push({ seq, serial });
    if (this.log.length > 2 * this.latest.size + 64) this.log = this.log.filter(this.isLatest);
    return seq;
  }

  /** Records the removal of the serial's session (incarnation `id`); returns its changeSeq. */
  remove(serial: string, id: string): number {
    const seq = ++this.seq;
    this.latest.delete(serial);
    this.fullChanges.delete(serial);
    this.removedAt.set(serial, seq);
    this.removals.push({ serial, id, changeSeq: seq });
    if (this.removals.length > this.maxRemovals + Math.ceil(this.maxRemovals / 4)) this.dropOldRemovals();
    return seq;
  }

  /** The serial's latest changeSeq, 0 when the feed does not know it. */
  seqOf(serial: string): number {
    return this.latest.get(serial) ?? 0;
  }

  /** The serial's latest full (not counters-only) changeSeq, 0 when the feed does not know it. */
  fullSeqOf(serial: string): number {
    return this.fullChanges.get(serial) ?? 0;
  }

  /**
   * What changed after `since`, at most `limit` items (changes, counters and
   * removals together). `sameInstance` is false when the cursor came from
   * another instance (or none): the answer is then a full listing.
   * `countersUpTo` (at most `since`): serials whose latest full change is at
   * or below it go to `counters` instead of `changed` (not in a reset), or,
   * with `skipCounters`, are left out: the cursor passes them.
   */
  read(since: number, limit: number, sameInstance: boolean, countersUpTo?: number, skipCounters = false): FeedPage {
    const reset = !sameInstance || since < this.floorSeq || since > this.seq;
    const from = reset ? 0 : since;
    // A reset is in full.
    const countersOnly = (serial: string) => !reset && countersUpTo !== undefined && this.fullSeqOf(serial) <= countersUpTo;
    const skipped = (serial: string) => skipCounters && countersOnly(serial);
    // Skipping counters, only full changes can be news: each at its latest full change, not its latest change.
    const fullOnly = skipCounters && !reset && countersUpTo !== undefined;
    const log = fullOnly ? this.fullLog : this.log;
    const live = fullOnly ? this.isLatestFull : this.isLatest;
    const changed: string[] = [];
    const counterSerials: string[] = [];
    const removed: SessionRemoval[] = [];
    let i = firstAfter(log, from, entrySeq);
    // A full listing forgets everything unlisted, so its removals are not news.
    let r = reset ? this.removals.length : firstAfter(this.removals, from, removalSeq);
    let cursor = from;
    while (changed.length + counterSerials.length + removed.length < limit) {
      const change = log[i];
      const removal = this.removals[r];
      if (!change && !removal) break;
      if (change && (!removal || change.seq < removal.changeSeq)) {
        i++;
        if (!live(change)) continue;
        cursor = change.seq;
        if (!countersOnly(change.serial)) changed.push(change.serial);
        else if (!skipCounters) counterSerials.push(change.serial);
      } else if (removal) {
        r++;
        if (this.removedAt.get(removal.serial) !== removal.changeSeq) continue;
        removed.push(removal);
        cursor = removal.changeSeq;
      }
    }
    const more = this.nextLive(log, live, i, r, skipped);
    // Nothing left: skipped superseded entries and an empty answer still move the cursor to now.
    if (!more) cursor = this.seq;
    return { reset, changed, counters: counterSerials, removed, cursor, more };
  }

  /** True when a `live` change of `log` (not `skipped`) or a removal remains at or after the given positions. */
  private nextLive(
    log: readonly Entry[],
    live: (entry: Entry) => boolean,
    i: number,
    r: number,
    skipped: (serial: string) => boolean,
  ): boolean {
    for (; i < log.length; i++) {
      const entry = log[i] as Entry;
      if (live(entry) && !skipped(entry.serial)) return true;
    }
    for (; r < this.removals.length; r++) {
      const removal = this.removals[r] as SessionRemoval;
      if (this.removedAt.get(removal.serial) === removal.changeSeq) return true;
    }
    return false;
  }

  private readonly isLatest = (entry: Entry): boolean => this.latest.get(entry.serial) === entry.seq;
  private readonly isLatestFull = (entry: Entry): boolean => this.fullChanges.get(entry.serial) === entry.seq;

  private dropOldRemovals(): void {
    const dropped = this.removals.splice(0, this.removals.length - this.maxRemovals);
    for (const removal of dropped) {
      if (this.removedAt.get(removal.serial) === removal.changeSeq) this.removedAt.delete(removal.serial);
    }
    this.floorSeq = (dropped[dropped.length - 1] as SessionRemoval).changeSeq;
    // Sessions unchanged since before the floor move up to a fresh seq (see the header).
    // A cursor below the floor gets a reset, which reads the change log: full changes below it are never read again.
    this.fullLog.splice(0, firstAfter(this.fullLog, this.floorSeq, entrySeq));
    const stale = this.log.splice(0, firstAfter(this.log, this.floorSeq, entrySeq));
    for (const entry of stale) {
      if (this.latest.get(entry.serial) === entry.seq) this.restamped(entry.serial, this.change(entry.serial, true));
    }
  }
}

function entrySeq(entry: Entry): number {
  return entry.seq;
}

function removalSeq(removal: SessionRemoval): number {
  return removal.changeSeq;
}

/** Index of the first item whose seq is above `seq` (items sorted by seq). */
function firstAfter<T>(items: readonly T[], seq: number, seqOf: (item: T) => number): number {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (seqOf(items[mid] as T) <= seq) low = mid + 1;
    else high = mid;
  }
  return low;
}
