// The proxy pod: the device port, the sessions it has been told to run, and
// the admin API through which the reconciler tells it. It keeps no durable
// state; `instanceId` tells the reconciler when it must program it again.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type {
  DeviceLookup,
  InstanceInfo,
  PeersSpec,
  PeersState,
  ProxyEvent,
  SessionList,
  SessionLookup,
  SessionSpec,
  SessionState,
} from '../common/admin-protocol.ts';
import { type Clock, systemClock } from '../common/clock.ts';
import type { HttpLimits } from '../common/http-limits.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { LogSummary } from '../common/log-summary.ts';
import { ActivitySweep } from './activity-sweep.ts';
import { AdminApi, AdminHttpError, type AdminListen, type ChangeListing } from './admin-api.ts';
import { ChangeFeed } from './change-feed.ts';
import { DeviceRegistry, type RegisteredDevice } from './device-registry.ts';
import { type ByteTotals, emptyByteTotals, ProxyMetrics } from './metrics.ts';
import { PeerLink, type PeerSettings } from './peer-link.ts';
import { describeProxyProtocol, PROXY_PROTOCOL_OFF, ProxyProtocolGate, type ProxyProtocolSettings } from './proxy-protocol.ts';
import { Session, type SessionEvent } from './session.ts';

export interface ProxyPodOptions {
  devicePort: number;
  bindHost?: string;
  /** The host clients reach this pod's session ports at, reported to the operator (e.g. its node's address). */
  publicHost?: string;
  admin: AdminListen;
  registrationTimeoutMs?: number;
  pendingTimeoutMs?: number;
  maxPending?: number;
  maxUnregistered?: number;
  deviceAllowlist?: string[];
  /** How long an ending session waits for a party to take its last bytes. */
  lingerMs?: number;
  /**
   * Idle time before TCP keepalive probes start on device and client
   * sockets. Node 20 then probes every second, ten times (measured with
   * strace), so a silently dead peer is closed about idle + 10 s after its
   * last packet.
   */
  keepaliveIdleMs?: number;
  /** A party that takes none of the bytes waiting for it for this long is disconnected; 0 turns it off. */
  sendTimeoutMs?: number;
  logger?: Logger;
  /** Interval of the rate-limited summaries of lines a peer can cause at will. */
  logSummaryMs?: number;
  /** Connection cap and timeouts of the admin API's HTTP server. */
  httpLimits?: HttpLimits;
  /** The other proxy pods of the release, to which devices without a session here are forwarded; none by default. */
  peers?: PeerSettings;
  /** PROXY protocol headers expected on the device port and the session ports; off by default. */
  proxyProtocol?: ProxyProtocolSettings;
  /** Process-wide metrics (resident memory, event-loop delay); off when several pods share a process. */
  processMetrics?: boolean;
  /** How often the activity sweep looks at the counters of sessions with a party (default 250 ms). */
  sweepIntervalMs?: number;
  clock?: Clock;
}

export class ProxyPod {
  readonly instanceId = randomUUID();
  readonly startedAt: Date;
  private readonly clock: Clock;
  readonly metrics: ProxyMetrics;
  private readonly logger: Logger;
  private readonly summary: LogSummary;
  private readonly sessions = new Map<string, Session>();
  /** Live sessions by port: a put checks its port without walking every session. */
  private readonly byPort = new Map<number, Session>();
  private readonly registry: DeviceRegistry;
  private readonly peers: PeerLink | undefined;
  private boundPeerPort = 0;
  private readonly proxyProtocol: ProxyProtocolGate;
  private readonly events = new EventEmitter();
  private seq = 0;
  private readonly feed = new ChangeFeed((serial, seq) => {
    const session = this.sessions.get(serial);
    if (session) session.changeSeq = seq;
  });
  private readonly sweep: ActivitySweep<Session>;
  /** Bytes counted by sessions already removed, so the Prometheus counters never go back. */
  private readonly removedBytes = emptyByteTotals();
  private admin: AdminApi | undefined;
  private boundDevicePort = 0;
  // Admin changes run one at a time: a put awaits its listen, and two puts
  // for one serial must not both bind.
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(private readonly opts: ProxyPodOptions) {
    this.clock = opts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.now());
    this.logger = opts.logger ?? createLogger('proxy-pod');
    this.metrics = new ProxyMetrics(opts.processMetrics ?? true);
    this.metrics.countBytes(() => this.byteTotals());
    this.sweep = new ActivitySweep<Session>({
      clock: this.clock,
      ...(opts.sweepIntervalMs !== undefined ? { intervalMs: opts.sweepIntervalMs } : {}),
      moved: (session) => this.changed(session, true),
    });
    this.summary = new LogSummary(this.logger, opts.logSummaryMs ?? 10_000);
    this.events.setMaxListeners(0);
    this.proxyProtocol = new ProxyProtocolGate({
      settings: opts.proxyProtocol ?? PROXY_PROTOCOL_OFF,
      maxWaiting: opts.maxUnregistered ?? 20_000,
      metrics: this.metrics,
      logger: this.logger,
      summary: this.summary,
      clock: this.clock,
    });
    this.registry = new DeviceRegistry(
      {
        port: opts.devicePort,
        bindHost: opts.bindHost,
        registrationTimeoutMs: opts.registrationTimeoutMs ?? 10_000,
        pendingTimeoutMs: opts.pendingTimeoutMs ?? 300_000,
        maxPending: opts.maxPending ?? 10_000,
        maxUnregistered: opts.maxUnregistered ?? 20_000,
        keepaliveIdleMs: opts.keepaliveIdleMs ?? 60_000,
        allowlist: opts.deviceAllowlist ?? [],
        metrics: this.metrics,
        logger: this.logger,
        clock: this.clock,
        summary: this.summary,
        proxyProtocol: this.proxyProtocol,
      },
      (device) => this.routeDevice(device),
    );
    this.peers = opts.peers && this.peerLink(opts.peers);
  }

  static async start(opts: ProxyPodOptions): Promise<ProxyPod> {
    const pod = new ProxyPod(opts);
    pod.boundDevicePort = await pod.registry.listen();
    pod.sweep.start();
    pod.admin = new AdminApi(pod, pod.logger, opts.httpLimits);
    try {
      pod.boundPeerPort = (await pod.peers?.listen()) ?? 0;
      await pod.admin.listen(opts.admin);
    } catch (err) {
      pod.sweep.stop();
      pod.metrics.close();
      await Promise.all([pod.registry.close(), pod.peers?.close()]);
      throw err;
    }
    pod.logger.info(
      {
        devicePort: pod.boundDevicePort,
        admin: pod.admin.where,
        instanceId: pod.instanceId,
        keepaliveIdleS: (opts.keepaliveIdleMs ?? 60_000) / 1000,
        sendTimeoutS: (opts.sendTimeoutMs ?? 60_000) / 1000,
        proxyProtocol: describeProxyProtocol(opts.proxyProtocol ?? PROXY_PROTOCOL_OFF),
      },
      'proxy pod started',
    );
    return pod;
  }

  get devicePort(): number {
    return this.boundDevicePort;
  }

  /** The peer port's bound port; 0 without peers. */
  get peerPort(): number {
    return this.boundPeerPort;
  }

  /** Where the admin API listens: a socket path, or host:port. */
  get adminAddress(): string {
    return this.admin?.where ?? '';
  }

  /** Creates or converges one session; resolves once its port listens. */
  put(serial: string, spec: SessionSpec): Promise<SessionState> {
    return this.exclusive(async () => {
      const existing = this.sessions.get(serial);
      if (existing?.live && existing.id === spec.id) {
        if (existing.port !== spec.port) {
          throw new AdminHttpError(
            409,
            'conflict',
            `session ${serial} listens on port ${existing.port}; delete it before moving it to ${spec.port}`,
          );
        }
        if (existing.update(spec)) this.changed(existing);
        return existing.state();
      }
      if (existing && !existing.live && existing.id === spec.id) {
        throw new AdminHttpError(
          409,
          'conflict',
          `session ${serial} (${spec.id}) has ended (${existing.state().endedReason}); put it with a new id to start again`,
        );
      }
      // A put with a new id is a new session: the old one, live or ended, goes.
      if (existing) {
        existing.end('Superseded');
        this.forget(existing);
      }
      const holder = this.byPort.get(spec.port);
      if (holder?.live) throw new AdminHttpError(409, 'port_unavailable', `port ${spec.port} is used by session ${holder.serial}`);

      const session = new Session(serial, spec, {
        bindHost: this.opts.bindHost,
        metrics: this.metrics,
        logger: this.logger,
        summary: this.summary,
        lingerMs: this.opts.lingerMs ?? 30_000,
        keepaliveIdleMs: this.opts.keepaliveIdleMs ?? 60_000,
        sendTimeoutMs: this.opts.sendTimeoutMs ?? 60_000,
        emit: (event) => this.publish(session, event),
        clock: this.clock,
        proxyProtocol: this.proxyProtocol,
      });
      await session.listen();
      this.sessions.set(serial, session);
      if (session.live) this.byPort.set(session.port, session);
      this.changed(session);
      this.metrics.sessions.inc();
      this.logger.info({ serial, port: spec.port, persistent: spec.persistent, whitelist: spec.ipWhitelist.length }, 'session listening');
      // A lifetime already past ends the session in listen(): the pending device waits on.
      const waiting = session.live ? this.registry.takePending(serial) : undefined;
      // The pending device's earlier bytes were discarded, so no CRLF is half-read.
      if (waiting) session.attachDevice(waiting, Buffer.alloc(0), false);
      // Created before announced: a peer's offer that crosses the announcement finds it.
      else if (session.live) this.peers?.announce(serial);
      return session.state();
    });
  }

  /** Ends and forgets one session; undefined when there was none. */
  delete(serial: string): Promise<SessionState | undefined> {
    return this.exclusive(async () => {
      const session = this.sessions.get(serial);
      if (!session) return undefined;
      session.end('Deleted');
      this.forget(session);
      return session.state();
    });
  }

  list(serials?: readonly string[]): SessionList {
    if (serials) return { ...this.info(), sessions: serials.flatMap((serial) => this.sessions.get(serial)?.state() ?? []) };
    return { ...this.info(), sessions: [...this.sessions.values()].map((s) => s.state()) };
  }

  /**
   * The change feed (see admin-protocol.ts): what changed after `since`, at
   * most `limit` sessions and removals; with `countersUpTo`, counter entries
   * (or with `skipCounters` nothing) for the sessions whose latest full
   * change is at or below it.
   */
  changes(
    since: number,
    instance: string | undefined,
    limit: number,
    countersUpTo: number | undefined,
    skipCounters: boolean,
  ): ChangeListing {
    const page = this.feed.read(since, limit, instance === this.instanceId, countersUpTo, skipCounters);
    const listing: ChangeListing = {
      batch: { ...this.info(), cursor: page.cursor, reset: page.reset, removed: page.removed, more: page.more },
      serials: page.changed,
      state: (serial) => this.sessions.get(serial)?.state(),
    };
    if (countersUpTo !== undefined && !skipCounters) {
      listing.counters = {
        serials: page.counters,
        // A full change since the read (the answer is written a slice at a time) is after the cursor: the next answer has it in full.
        entry: (serial) => (this.feed.fullSeqOf(serial) <= countersUpTo ? this.sessions.get(serial)?.counters() : undefined),
      };
    }
    return listing;
  }

  device(serial: string): DeviceLookup {
    return { ...this.info(), pending: this.registry.hasPending(serial) };
  }

  lookup(serial: string): SessionLookup {
    const session = this.sessions.get(serial);
    return { ...this.info(), ...(session ? { session: session.state() } : {}) };
  }

  info(): InstanceInfo {
    const info: InstanceInfo = { instanceId: this.instanceId, startedAt: this.startedAt.toISOString(), devicePort: this.boundDevicePort };
    if (this.opts.publicHost) info.publicHost = this.opts.publicHost;
    return info;
  }

  /** What this pod knows of its peers; 409 without a peer port. */
  peerRoster(): PeersState {
    return { ...this.info(), ...this.peerLinkOrConflict().state() };
  }

  /** The release has `replicas` pods (the operator tells each pod); the count must include this pod. */
  setPeers(spec: PeersSpec): PeersState {
    const link = this.peerLinkOrConflict();
    const { ordinal } = link.state();
    if (spec.replicas <= ordinal) {
      throw new AdminHttpError(
        400,
        'bad_request',
        `replicas must be above this pod's ordinal ${ordinal} (it is pod ${ordinal} of the release), not ${spec.replicas}`,
      );
    }
    return { ...this.info(), ...link.setReplicas(spec.replicas) };
  }

  /** Calls `listener` with each event from now on; returns the unsubscribe. */
  subscribe(listener: (event: ProxyEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  async stop(): Promise<void> {
    this.sweep.stop();
    this.metrics.close();
    await this.admin?.close();
    for (const session of this.sessions.values()) session.end('Deleted');
    this.sessions.clear();
    this.byPort.clear();
    await this.peers?.close();
    // Before the device port's close, which waits for every accepted connection.
    this.proxyProtocol.close();
    await this.registry.close();
    this.events.removeAllListeners();
    this.summary.close();
    this.logger.info({ instanceId: this.instanceId }, 'proxy pod stopped');
  }

  /** To the session here, else to the peers (which keep it pending here if no peer takes it). */
  private routeDevice(device: RegisteredDevice): boolean {
    return this.attachLocal(device) || (this.peers?.take(device) ?? false);
  }

  private attachLocal(device: RegisteredDevice): boolean {
    const session = this.sessions.get(device.serial);
    if (!session?.live) return false;
    session.attachDevice(device.socket, device.payload, device.endedWithCr);
    return true;
  }

  private peerLinkOrConflict(): PeerLink {
    if (!this.peers)
      throw new AdminHttpError(409, 'conflict', 'this proxy pod has no peer port (CCCP_PEER_PORT): it forwards to no other pod');
    return this.peers;
  }

  private peerLink(settings: PeerSettings): PeerLink {
    const { opts } = this;
    return new PeerLink(
      settings,
      {
        keepaliveIdleMs: opts.keepaliveIdleMs ?? 60_000,
        lingerMs: opts.lingerMs ?? 30_000,
        sendTimeoutMs: opts.sendTimeoutMs ?? 60_000,
        maxHeld: opts.maxPending ?? 10_000,
        metrics: this.metrics,
        logger: this.logger,
        summary: this.summary,
        clock: this.clock,
      },
      {
        hasLiveSession: (serial) => this.sessions.get(serial)?.live === true,
        attachLocal: (device) => this.attachLocal(device),
        settle: (device) => {
          if (!this.attachLocal(device)) this.registry.addPending(device);
        },
        takePending: (serial) => this.registry.takePending(serial),
        pendingSerials: () => this.registry.pendingSerials(),
      },
    );
  }

  /** Gives the session the feed's next seq, if it is still the one listed under its serial; `countersOnly` for the sweep's. */
  private changed(session: Session, countersOnly = false): void {
    if (this.sessions.get(session.serial) === session) session.changeSeq = this.feed.change(session.serial, countersOnly);
  }

  /** Removes the session from the list and the feed; its counts go on in the byte totals. */
  private forget(session: Session): void {
    if (this.sessions.get(session.serial) !== session) return;
    this.sessions.delete(session.serial);
    this.sweep.watch(session, false);
    session.changeSeq = this.feed.remove(session.serial, session.id);
    session.addBytesTo(this.removedBytes);
  }

  private byteTotals(): ByteTotals {
    const { device, client } = this.removedBytes;
    const totals: ByteTotals = { device: { ...device }, client: { ...client } };
    for (const session of this.sessions.values()) session.addBytesTo(totals);
    return totals;
  }

  private publish(session: Session, event: SessionEvent): void {
    this.sweep.watch(session, session.hasParty && session.live);
    if (event.type === 'session-ended' && this.byPort.get(session.port) === session) this.byPort.delete(session.port);
    this.changed(session);
    ++this.seq;
    // Nobody listens (the standalone mode between reconnects, most tests): no state to build.
    if (this.events.listenerCount('event') === 0) return;
    const full: ProxyEvent = {
      ...event,
      instanceId: this.instanceId,
      seq: this.seq,
      at: new Date(this.clock.now()).toISOString(),
      session: session.state(),
    };
    this.events.emit('event', full);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lock.then(work, work);
    this.lock = run.catch(() => undefined);
    return run;
  }
}
