// SessionStore backed by ProxySession resources in one namespace. Reads come
// from the informer's cache (as a controller's do); writes go to the API
// server and are observed into the cache at once, so a caller reads its own
// writes. A resource made with kubectl under any name is a session like one
// made by /on; if two resources carry one serial, the older one is the
// session and the newer are duplicates (the reconciler marks them Failed,
// DuplicateSerial).
import type { Logger } from '../../common/log.ts';
import { ChangeListeners } from '../change-listeners.ts';
import {
  type ApplyResult,
  copySpec,
  copyStatus,
  type DeleteResult,
  type Duplicate,
  type ProxySession,
  type ProxySessionSpec,
  type ProxySessionStatus,
  SESSION_FINALIZER,
  type SessionChange,
  type SessionStore,
  sameSpec,
} from '../session-store.ts';
import { KubeApiError, type ProxySessionClient, type ProxySessionResource, resourceNameForSerial } from './proxysession-client.ts';
import type { SessionInformer } from './session-informer.ts';

/** apply and setFinalizer retry this often on write conflicts. */
const MAX_CONFLICT_RETRIES = 5;

export class KubeSessionStore implements SessionStore {
  private readonly listeners = new ChangeListeners<SessionChange>((err) => this.logger.error({ err }, 'session change listener failed'));
  private readonly unsubscribe: () => void;

  constructor(
    private readonly client: ProxySessionClient,
    private readonly informer: SessionInformer,
    private readonly logger: Logger,
  ) {
    this.unsubscribe = informer.subscribe((change) => {
      const serial = change.object.spec.serial;
      const current = this.resourceFor(serial);
      if (current) this.listeners.emit({ type: 'upserted', session: toSession(current) });
      else this.listeners.emit({ type: 'removed', serial, uid: change.object.metadata.uid });
    });
  }

  close(): void {
    this.unsubscribe();
  }

  async get(serial: string): Promise<ProxySession | undefined> {
    const resource = this.resourceFor(serial);
    return resource && toSession(resource);
  }

  async list(): Promise<ProxySession[]> {
    const sessions: ProxySession[] = [];
    for (const serial of this.informer.serials()) {
      const resource = this.resourceFor(serial);
      if (resource) sessions.push(toSession(resource));
    }
    return sessions;
  }

  /** The resources carrying the serial that are not its session (an older one holds it). */
  duplicatesOf(serial: string): Duplicate[] {
    const named = this.informer.withSerial(serial);
    if (named.size < 2) return [];
    const holder = this.resourceFor(serial);
    const duplicates: Duplicate[] = [];
    for (const r of named.values()) if (holder && r !== holder) duplicates.push({ session: toSession(r), heldBy: holder.metadata.name });
    return duplicates;
  }

  async apply(spec: ProxySessionSpec): Promise<ApplyResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        // The cache is trusted first: a resource it does not hold yet (another replica's, a moment
        // old) makes the create below fail with 409, and the next attempt reads it from the API.
        const existing = this.resourceFor(spec.serial) ?? (attempt > 0 ? await this.fetch(resourceNameForSerial(spec.serial)) : undefined);
        if (existing?.metadata.deletionTimestamp) return { outcome: 'deleting', session: toSession(existing) };
        if (existing && sameSpec(existing.spec, spec)) return { outcome: 'unchanged', session: toSession(existing) };
        if (existing) {
          const updated = await this.patchSpecOf(existing, spec);
          if (!updated && attempt >= MAX_CONFLICT_RETRIES)
            throw new Error(`ProxySession ${existing.metadata.name} kept changing while its spec was written`);
          if (!updated) continue;
          return { outcome: 'updated', session: toSession(updated) };
        }
        // The name is derived from the serial: concurrent creators collide
        // here (409) instead of making two sessions.
        const created = await this.client.create(resourceNameForSerial(spec.serial), spec, [SESSION_FINALIZER]);
        this.informer.observe(created);
        return { outcome: 'created', session: toSession(created) };
      } catch (err) {
        if (!(err instanceof KubeApiError && err.conflict) || attempt >= MAX_CONFLICT_RETRIES) throw err;
      }
    }
  }

  async delete(serial: string, uid?: string): Promise<DeleteResult> {
    const resource = this.resourceFor(serial) ?? (await this.fetch(resourceNameForSerial(serial)));
    if (!resource || (uid !== undefined && resource.metadata.uid !== uid)) return 'not-found';
    const result = await this.client.delete(resource.metadata.name, resource.metadata.uid);
    // Our own reads must see the deletion at once, not when the watch reports it.
    if (result.outcome === 'deleting') this.informer.observe(result.object);
    else this.informer.forget(resource);
    return result.outcome;
  }

  async setFinalizer(serial: string, uid: string, present: boolean): Promise<ProxySession | undefined> {
    for (let attempt = 0; ; attempt++) {
      const resource = this.byUid(serial, uid) ?? (await this.fetch(resourceNameForSerial(serial)));
      if (!resource || resource.metadata.uid !== uid) return undefined;
      const has = resource.metadata.finalizers.includes(SESSION_FINALIZER);
      if (has === present) return toSession(resource);
      const finalizers = present
        ? [...resource.metadata.finalizers, SESSION_FINALIZER]
        : resource.metadata.finalizers.filter((f) => f !== SESSION_FINALIZER);
      try {
        const updated = await this.client.patchFinalizers(resource.metadata.name, resource.metadata.resourceVersion, finalizers);
        this.informer.observe(updated);
        // Without finalizers a deleting resource is gone now.
        return updated.metadata.deletionTimestamp && finalizers.length === 0 ? undefined : toSession(updated);
      } catch (err) {
        if (err instanceof KubeApiError && err.notFound) {
          this.informer.forget(resource);
          return undefined;
        }
        if (!(err instanceof KubeApiError && err.conflict) || attempt >= MAX_CONFLICT_RETRIES) throw err;
        // Someone else changed it: read it again and retry.
        await this.reread(resource);
      }
    }
  }

  async writeStatus(serial: string, uid: string, status: ProxySessionStatus): Promise<ProxySession | undefined> {
    const resource = this.byUid(serial, uid);
    if (!resource) return undefined;
    return this.writeResourceStatus(resource, status);
  }

  /** Writes status to that incarnation of a resource. */
  private async writeResourceStatus(resource: ProxySessionResource, status: ProxySessionStatus): Promise<ProxySession | undefined> {
    try {
      const updated = await this.client.replaceStatus(resource.metadata.name, resource.metadata.uid, status);
      this.informer.observe(updated);
      return toSession(updated);
    } catch (err) {
      // Gone, or the name now holds another incarnation (uid precondition).
      if (err instanceof KubeApiError && (err.notFound || err.conflict)) {
        await this.reread(resource);
        return undefined;
      }
      throw err;
    }
  }

  subscribe(listener: (change: SessionChange) => void): () => void {
    return this.listeners.subscribe(listener);
  }

  /** The resource that is the serial's session: the oldest of those that carry it. */
  private resourceFor(serial: string): ProxySessionResource | undefined {
    let chosen: ProxySessionResource | undefined;
    for (const r of this.informer.withSerial(serial).values()) {
      if (!chosen || older(r, chosen)) chosen = r;
    }
    return chosen;
  }

  private byUid(serial: string, uid: string): ProxySessionResource | undefined {
    const resource = this.informer.withUid(uid);
    return resource?.spec.serial === serial ? resource : undefined;
  }

  private async fetch(name: string): Promise<ProxySessionResource | undefined> {
    const resource = await this.client.get(name);
    if (resource) this.informer.observe(resource);
    return resource;
  }

  /**
   * Patches the spec of that incarnation. Undefined when the cached copy was
   * stale (the incarnation is gone or was replaced); the cache then holds what
   * the API holds, so the caller can decide again.
   */
  private async patchSpecOf(resource: ProxySessionResource, spec: ProxySessionSpec): Promise<ProxySessionResource | undefined> {
    try {
      const updated = await this.client.patchSpec(resource.metadata.name, resource.metadata.uid, spec);
      this.informer.observe(updated);
      return updated;
    } catch (err) {
      if (!(err instanceof KubeApiError && (err.notFound || err.conflict))) throw err;
      await this.reread(resource);
      return undefined;
    }
  }

  /** Reads the resource's name again after a write found the cached copy stale. */
  private async reread(resource: ProxySessionResource): Promise<void> {
    const fresh = await this.fetch(resource.metadata.name);
    if (!fresh || fresh.metadata.uid !== resource.metadata.uid) this.informer.forget(resource);
  }
}

/**
 * Whether a holds the serial before b: the older; within one second (the
 * timestamps' resolution) the one already given a port, so a resource
 * applied in the same second as a running session does not displace it;
 * then the name.
 */
function older(a: ProxySessionResource, b: ProxySessionResource): boolean {
  if (a.metadata.creationTimestamp !== b.metadata.creationTimestamp) return a.metadata.creationTimestamp < b.metadata.creationTimestamp;
  const placed = (r: ProxySessionResource) => r.status.port !== undefined;
  if (placed(a) !== placed(b)) return placed(a);
  return a.metadata.name < b.metadata.name;
}

export function toSession(resource: ProxySessionResource): ProxySession {
  return {
    serial: resource.spec.serial,
    uid: resource.metadata.uid,
    generation: resource.metadata.generation,
    creationTimestamp: resource.metadata.creationTimestamp,
    hasFinalizer: resource.metadata.finalizers.includes(SESSION_FINALIZER),
    deleting: resource.metadata.deletionTimestamp !== undefined,
    spec: copySpec(resource.spec),
    status: copyStatus(resource.status),
  };
}
