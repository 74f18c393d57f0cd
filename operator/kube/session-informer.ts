// Keeps a cache of the namespace's ProxySessions with list + watch, and
// reports every change. Unlike a bare watch it never stops for good: any
// error restarts it with backoff, a 410 (or any restart after an error)
// relists, and a watchdog relists when nothing at all (not even a bookmark)
// arrived for a while, since watches can stall silently. The cache
// (session-cache.ts) orders the copies that race in from the watch, relists
// and the store's own writes, and never resurrects a deleted object.

import { type Clock, systemClock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import { ChangeListeners } from '../change-listeners.ts';
import type { ProxySessionClient, ProxySessionResource, WatchEvent, WatchHandle } from './proxysession-client.ts';
import { SessionCache } from './session-cache.ts';

export type InformerChange = { type: 'upserted'; object: ProxySessionResource } | { type: 'removed'; object: ProxySessionResource };

/** The two calls the informer makes: the ProxySession client, or a test's script. */
export type SessionSource = Pick<ProxySessionClient, 'list' | 'watch'>;

export interface SessionInformerOptions {
  clock?: Clock;
  /** Relist when nothing arrived for this long. */
  silenceMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long a deleted object's uid is remembered, so no late copy of it returns. */
  tombstoneTtlMs?: number;
}

export class SessionInformer {
  private readonly cache: SessionCache;
  private readonly listeners = new ChangeListeners<InformerChange>((err) =>
    this.logger.error({ err }, 'ProxySession change listener failed'),
  );
  private resourceVersion = '';
  private watch: WatchHandle | undefined;
  private stopped = false;
  private backoffMs: number;
  private lastHeard: number;
  private watchdog: unknown;
  private restartTimer: unknown;
  private readonly clock: Clock;
  private generation = 0;
  private resolveSynced!: () => void;
  /** Resolves after the first successful list. */
  readonly synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));
  private readonly silenceMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly client: SessionSource,
    private readonly logger: Logger,
    options: SessionInformerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.lastHeard = this.clock.now();
    this.silenceMs = options.silenceMs ?? 120_000;
    this.initialBackoffMs = options.initialBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.backoffMs = this.initialBackoffMs;
    this.cache = new SessionCache({
      now: () => this.clock.now(),
      ...(options.tombstoneTtlMs === undefined ? {} : { tombstoneTtlMs: options.tombstoneTtlMs }),
    });
  }

  start(): void {
    this.watchdog = this.clock.setInterval(
      () => {
        const silentForMs = this.clock.now() - this.lastHeard;
        if (silentForMs > this.silenceMs) {
          this.logger.warn({ silentForMs }, 'ProxySession watch silent; relisting');
          this.restart(true, 0);
        }
      },
      Math.min(this.silenceMs, 10_000),
    );
    void this.run(true);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearInterval(this.watchdog);
    this.clock.clearTimeout(this.restartTimer);
    this.watch?.abort();
  }

  /**
   * Lists again now and resumes watching from there. A new leader calls this
   * before it rebuilds its port table, so no allocation made by the previous
   * leader can be missing from a cache that went stale during an outage.
   */
  async refresh(): Promise<void> {
    this.generation++;
    this.watch?.abort();
    this.watch = undefined;
    this.clock.clearTimeout(this.restartTimer);
    await this.relist();
    void this.run(false);
  }

  list(): ProxySessionResource[] {
    return [...this.cache.values()];
  }

  get(name: string): ProxySessionResource | undefined {
    return this.cache.get(name);
  }

  /** The cached copy of that incarnation, without a scan. */
  withUid(uid: string): ProxySessionResource | undefined {
    return this.cache.withUid(uid);
  }

  /** The cached resources that carry this serial (by name), without a scan. */
  withSerial(serial: string): ReadonlyMap<string, ProxySessionResource> {
    return this.cache.withSerial(serial);
  }

  /** Every serial some cached resource carries. */
  serials(): IterableIterator<string> {
    return this.cache.serials();
  }

  subscribe(listener: (change: InformerChange) => void): () => void {
    return this.listeners.subscribe(listener);
  }

  /**
   * Takes a copy the caller just wrote or read, so its own reads see it
   * before the watch does; a copy older than what the cache holds, or of an
   * object already deleted, is ignored.
   */
  observe(object: ProxySessionResource): void {
    this.upsert(object);
  }

  /** Takes the store's word that this incarnation is gone (its own delete, or a write that found it missing). */
  forget(object: ProxySessionResource): void {
    this.remove(object);
  }

  private async run(relist: boolean): Promise<void> {
    const generation = ++this.generation;
    try {
      if (relist || !this.resourceVersion) await this.relist();
      if (this.stopped || generation !== this.generation) return;
      this.watch = await this.client.watch(
        this.resourceVersion,
        (event) => generation === this.generation && this.onEvent(event),
        (err) => {
          if (generation !== this.generation || this.stopped) return;
          // A watch that ends cleanly (its timeout) resumes from where it was.
          if (err) this.logger.warn({ err: err.message }, 'ProxySession watch failed; restarting');
          this.restart(Boolean(err), err ? this.nextBackoff() : 0);
        },
      );
      this.backoffMs = this.initialBackoffMs;
    } catch (err) {
      if (this.stopped || generation !== this.generation) return;
      this.logger.warn({ err: (err as Error).message }, 'ProxySession list failed; retrying');
      this.restart(true, this.nextBackoff());
    }
  }

  private restart(relist: boolean, delayMs: number): void {
    if (this.stopped) return;
    this.generation++;
    this.watch?.abort();
    this.watch = undefined;
    this.clock.clearTimeout(this.restartTimer);
    this.restartTimer = this.clock.setTimeout(() => void this.run(relist), delayMs, { keepAlive: true });
  }

  private nextBackoff(): number {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs * 2);
    return delay;
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.client.list();
    this.lastHeard = this.clock.now();
    const { removed, upserted } = this.cache.replaceAll(items, resourceVersion);
    for (const object of removed) this.listeners.emit({ type: 'removed', object });
    for (const object of upserted) this.listeners.emit({ type: 'upserted', object });
    this.resourceVersion = resourceVersion;
    this.resolveSynced();
  }

  private onEvent(event: WatchEvent): void {
    this.lastHeard = this.clock.now();
    switch (event.type) {
      case 'BOOKMARK':
        this.resourceVersion = event.resourceVersion;
        return;
      case 'ERROR':
        // 410 Gone: our resourceVersion is too old; everything must be relisted.
        this.logger.info({ status: event.status, message: event.message }, 'ProxySession watch error; relisting');
        this.restart(true, event.status === 410 ? 0 : this.nextBackoff());
        return;
      case 'DELETED':
        this.resourceVersion = event.object.metadata.resourceVersion;
        this.remove(event.object);
        return;
      default:
        this.resourceVersion = event.object.metadata.resourceVersion;
        this.upsert(event.object);
    }
  }

  private upsert(object: ProxySessionResource): void {
    const wasPresent = this.cache.get(object.metadata.name);
    if (!this.cache.upsert(object)) return;
    const now = this.cache.get(object.metadata.name);
    if (now) this.listeners.emit({ type: 'upserted', object: now });
    // A copy that shows the object gone removed it.
    else if (wasPresent) this.listeners.emit({ type: 'removed', object: wasPresent });
  }

  private remove(object: ProxySessionResource): void {
    const dropped = this.cache.remove(object);
    if (dropped) this.listeners.emit({ type: 'removed', object: dropped });
  }
}
