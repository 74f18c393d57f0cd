// The informer's copy of the namespace's ProxySessions. Copies of an object
// reach it from three sources that race one another: the watch, a relist,
// and the store's own writes (read back at once so a caller sees what it
// wrote). A copy is taken only if it is newer than the one held, and every
// deleted incarnation (uid) is remembered for a while as a tombstone, so a
// late copy of it (a write's answer or a GET that was in flight when the
// watch reported the deletion) can never bring it back. Lookups by serial
// and by uid are indexed, so no caller scans the namespace to find one
// session; every change goes through put and drop, which keep the indexes.
import type { ProxySessionResource } from './proxysession-client.ts';

export interface SessionCacheOptions {
  /** How long a deleted uid is remembered; longer than any request that may still answer with it. */
  tombstoneTtlMs?: number;
  now?: () => number;
}

/**
 * Orders two resourceVersions: negative, zero or positive as `a` is older,
 * the same or newer; undefined when they cannot be ordered. The API server
 * calls them opaque; every server in practice (etcd's revision) gives decimal
 * integers from one counter for all objects of a resource, which order
 * writes. Anything else is not ordered at all, rather than ordered wrongly.
 */
export function compareResourceVersions(a: string, b: string): number | undefined {
  if (a === b) return 0;
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return undefined;
  const x = BigInt(a);
  const y = BigInt(b);
  return x === y ? 0 : x < y ? -1 : 1;
}

/** An object whose deletion was ordered and that no finalizer holds any more is gone from the API. */
export function isGone(object: ProxySessionResource): boolean {
  return object.metadata.deletionTimestamp !== undefined && object.metadata.finalizers.length === 0;
}

const NONE: ReadonlyMap<string, ProxySessionResource> = new Map();

export class SessionCache {
  private readonly byName = new Map<string, ProxySessionResource>();
  private readonly byUid = new Map<string, ProxySessionResource>();
  /** serial → name → resource: the resources that carry a serial (nearly always one; kubectl may add more). */
  private readonly bySerial = new Map<string, Map<string, ProxySessionResource>>();
  /** uid → when it was deleted; in deletion order, so expiry pops from the front. */
  private readonly tombstones = new Map<string, number>();
  private readonly tombstoneTtlMs: number;
  private readonly now: () => number;

  constructor(options: SessionCacheOptions = {}) {
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? 10 * 60_000;
    this.now = options.now ?? Date.now;
  }

  get(name: string): ProxySessionResource | undefined {
    return this.byName.get(name);
  }

  values(): IterableIterator<ProxySessionResource> {
    return this.byName.values();
  }

  /** The cached copy of that incarnation. */
  withUid(uid: string): ProxySessionResource | undefined {
    return this.byUid.get(uid);
  }

  /** The cached resources that carry this serial, by name. */
  withSerial(serial: string): ReadonlyMap<string, ProxySessionResource> {
    return this.bySerial.get(serial) ?? NONE;
  }

  /** Every serial some cached resource carries. */
  serials(): IterableIterator<string> {
    return this.bySerial.keys();
  }

  get size(): number {
    return this.byName.size;
  }

  isDeleted(uid: string): boolean {
    this.expireTombstones();
    return this.tombstones.has(uid);
  }

  /**
   * Takes a copy if it is newer than the one held. Returns true when the
   * cache changed. A copy that shows the object gone is taken as its deletion.
   */
  upsert(object: ProxySessionResource): boolean {
    if (isGone(object)) return this.remove(object) !== undefined;
    if (this.isDeleted(object.metadata.uid)) return false;
    const known = this.byName.get(object.metadata.name);
    if (known && !isNewer(object, known)) return false;
    this.put(object);
    return true;
  }

  /**
   * Records the deletion of this incarnation and drops the cached copy unless
   * the cache already holds a newer incarnation under the same name. Returns
   * the copy that was dropped.
   */
  remove(object: ProxySessionResource): ProxySessionResource | undefined {
    this.bury(object.metadata.uid);
    const known = this.byName.get(object.metadata.name);
    if (!known) return undefined;
    if (known.metadata.uid !== object.metadata.uid && isNewer(known, object)) return undefined;
    this.drop(known);
    return known;
  }

  /**
   * Replaces the contents with a full list taken at listVersion. Returns what
   * was dropped and what was taken. A cached copy newer than the list (a write
   * read back after the list was taken) stays; a listed object whose uid is
   * known to be deleted stays deleted.
   */
  replaceAll(items: ProxySessionResource[], listVersion: string): { removed: ProxySessionResource[]; upserted: ProxySessionResource[] } {
    const listed = new Set(items.map((item) => item.metadata.name));
    const removed: ProxySessionResource[] = [];
    for (const [name, known] of this.byName) {
      if (listed.has(name)) continue;
      const order = compareResourceVersions(known.metadata.resourceVersion, listVersion);
      if (order !== undefined && order > 0) continue;
      this.drop(known);
      this.bury(known.metadata.uid);
      removed.push(known);
    }
    const upserted = items.filter((item) => this.upsert(item));
    return { removed, upserted };
  }

  /** Holds this copy under its name, replacing (and unindexing) the copy held before. */
  private put(object: ProxySessionResource): void {
    const known = this.byName.get(object.metadata.name);
    if (known) this.unindex(known);
    this.byName.set(object.metadata.name, object);
    this.byUid.set(object.metadata.uid, object);
    const { serial } = object.spec;
    const named = this.bySerial.get(serial) ?? new Map<string, ProxySessionResource>();
    named.set(object.metadata.name, object);
    this.bySerial.set(serial, named);
  }

  private drop(known: ProxySessionResource): void {
    this.byName.delete(known.metadata.name);
    this.unindex(known);
  }

  private unindex(known: ProxySessionResource): void {
    // Only if the index still points at this copy: another name may hold the uid or the serial too.
    if (this.byUid.get(known.metadata.uid) === known) this.byUid.delete(known.metadata.uid);
    const named = this.bySerial.get(known.spec.serial);
    if (named?.get(known.metadata.name) !== known) return;
    named.delete(known.metadata.name);
    if (named.size === 0) this.bySerial.delete(known.spec.serial);
  }

  private bury(uid: string): void {
    this.tombstones.delete(uid);
    this.tombstones.set(uid, this.now());
    this.expireTombstones();
  }

  private expireTombstones(): void {
    const cutoff = this.now() - this.tombstoneTtlMs;
    for (const [uid, at] of this.tombstones) {
      if (at > cutoff) break;
      this.tombstones.delete(uid);
    }
  }
}

/** Whether `incoming` should replace `known`: a later write of any incarnation under that name. */
function isNewer(incoming: ProxySessionResource, known: ProxySessionResource): boolean {
  const order = compareResourceVersions(incoming.metadata.resourceVersion, known.metadata.resourceVersion);
  // Unordered versions: the copy that arrived last is the best guess.
  return order === undefined ? true : order > 0;
}
