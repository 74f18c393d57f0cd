// Keeps a cache of the namespace's ProxySessions with list + watch, and
// reports every change. Unlike a bare watch it never stops for good: any
// error restarts it with backoff, a 410 (or any restart after an error)
// relists, and a watchdog relists when nothing at all (not even a bookmark)
// arrived for a while, since watches can stall silently.
import type { Logger } from '../../proxy-pod/log.ts';
import type { ProxySessionClient, ProxySessionResource, WatchEvent, WatchHandle } from './proxysession-client.ts';
import { ChangeListeners } from '../change-listeners.ts';

export type InformerChange = { type: 'upserted'; object: ProxySessionResource } | { type: 'removed'; object: ProxySessionResource };

export interface SessionInformerOptions {
  /** Relist when nothing arrived for this long. */
  silenceMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Late answers arrive within seconds; this many deleted uids covers far more than that under any churn. */
const MAX_DELETED_UIDS = 10_000;

export class SessionInformer {
  private readonly cache = new Map<string, ProxySessionResource>();
  /**
   * Uids of deleted objects. A write's answer read before the delete can
   * reach observe() after the DELETED event; without this it would bring a
   * deleting object back into the cache for good, and /on for its serial
   * would wait for it to go away until it timed out.
   */
  private readonly deletedUids = new Set<string>();
  private readonly listeners = new ChangeListeners<InformerChange>((err) => this.logger.error({ err }, 'ProxySession change listener failed'));
  private resourceVersion = '';
  private watch: WatchHandle | undefined;
  private stopped = false;
  private backoffMs: number;
  private lastHeard = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private generation = 0;
  private resolveSynced!: () => void;
  /** Resolves after the first successful list. */
  readonly synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));
  private readonly silenceMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(private readonly client: ProxySessionClient, private readonly logger: Logger, options: SessionInformerOptions = {}) {
    this.silenceMs = options.silenceMs ?? 120_000;
    this.initialBackoffMs = options.initialBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.backoffMs = this.initialBackoffMs;
  }

  start(): void {
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard > this.silenceMs) {
        this.logger.warn({ silentForMs: Date.now() - this.lastHeard }, 'ProxySession watch silent; relisting');
        this.restart(true, 0);
      }
    }, Math.min(this.silenceMs, 10_000));
    this.watchdog.unref();
    void this.run(true);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.restartTimer);
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
    clearTimeout(this.restartTimer);
    await this.relist();
    void this.run(false);
  }

  list(): ProxySessionResource[] {
    return [...this.cache.values()];
  }

  get(name: string): ProxySessionResource | undefined {
    return this.cache.get(name);
  }

  subscribe(listener: (change: InformerChange) => void): () => void {
    return this.listeners.subscribe(listener);
  }

  /** Takes an object the caller just wrote, so its own reads see it before the watch does. */
  observe(object: ProxySessionResource): void {
    this.upsert(object);
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
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.run(relist), delayMs);
  }

  private nextBackoff(): number {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs * 2);
    return delay;
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.client.list();
    this.lastHeard = Date.now();
    const present = new Set(items.map((item) => item.metadata.name));
    for (const [name, object] of this.cache) {
      if (!present.has(name)) {
        this.cache.delete(name);
        this.rememberDeleted(object.metadata.uid);
        this.listeners.emit({ type: 'removed', object });
      }
    }
    for (const item of items) {
      this.upsert(item);
    }
    this.resourceVersion = resourceVersion;
    this.resolveSynced();
  }

  private onEvent(event: WatchEvent): void {
    this.lastHeard = Date.now();
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
        this.rememberDeleted(event.object.metadata.uid);
        if (this.cache.get(event.object.metadata.name)?.metadata.uid === event.object.metadata.uid) this.cache.delete(event.object.metadata.name);
        this.listeners.emit({ type: 'removed', object: event.object });
        return;
      default:
        this.resourceVersion = event.object.metadata.resourceVersion;
        this.upsert(event.object);
    }
  }

  private rememberDeleted(uid: string): void {
    this.deletedUids.add(uid);
    // Uids are never reused; the oldest are forgotten once plenty are kept.
    if (this.deletedUids.size > MAX_DELETED_UIDS) this.deletedUids.delete(this.deletedUids.values().next().value!);
  }

  private upsert(object: ProxySessionResource): void {
    if (this.deletedUids.has(object.metadata.uid)) return;
    // A write the caller observed may be newer than a watch event still on its way.
    const known = this.cache.get(object.metadata.name);
    if (known && known.metadata.uid === object.metadata.uid && Number(known.metadata.resourceVersion) >= Number(object.metadata.resourceVersion)) return;
    this.cache.set(object.metadata.name, object);
    this.listeners.emit({ type: 'upserted', object });
  }
}
