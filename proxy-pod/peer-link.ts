// The proxy pods of a release, seen from one of them. Devices keep one
// address (the device port, balanced over all pods); whichever pod a device
// lands on, it is joined to its session, which may live on another pod:
//
// - a device registering here for a serial with no session here is offered
//   to the peers in turn and relayed to the one that accepts
//   (device-forwarder.ts); if none does, it waits here as pending;
// - a session created here with no device waiting here is announced to the
//   peers (wanted-announcer.ts), and a peer holding a pending device for it
//   offers it here;
// - the peer port (peer-port.ts) takes both from the other pods.
//
// Every peer-port connection carries the admin token (peer-protocol.ts).
import type net from 'node:net';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { DeviceForwarder } from './device-forwarder.ts';
import type { RegisteredDevice } from './device-registry.ts';
import type { ProxyMetrics } from './metrics.ts';
import { PeerMetrics } from './peer-metrics.ts';
import { PeerPort } from './peer-port.ts';
import { type PeerContactOptions, type PeerEndpoint, peerEndpoint } from './peer-protocol.ts';
import { PeerRoster } from './peer-roster.ts';
import { WantedAnnouncer } from './wanted-announcer.ts';

export interface PeerSettings {
  /** The peer port this pod listens on. */
  port: number;
  bindHost?: string;
  /** This pod's StatefulSet ordinal. */
  ordinal: number;
  /** The release's pod count at start, if known; the operator tells it otherwise (PUT /v1/peers). */
  replicas?: number;
  /** host:port of each pod's peer port, with {ordinal} for the pod's ordinal. */
  addressPattern: string;
  /** The admin token, which every peer-port connection must carry. */
  token: string;
  /** A peer that does not accept the connection within this is skipped. */
  connectTimeoutMs?: number;
  /** A peer that does not answer an offer within this is skipped. */
  answerTimeoutMs?: number;
}

export interface PeerLinkContext {
  keepaliveIdleMs: number;
  lingerMs: number;
  sendTimeoutMs: number;
  /** Devices held for offers at most (the pending cap). */
  maxHeld: number;
  metrics: ProxyMetrics;
  logger: Logger;
  summary: LogSummary;
  clock: Clock;
}

export interface PeerLinkHooks {
  hasLiveSession(serial: string): boolean;
  /** Attaches the device to this pod's live session of its serial; false when there is none. */
  attachLocal(device: RegisteredDevice): boolean;
  /** No peer took the device: attach it here if its session appeared meanwhile, else keep it pending. */
  settle(device: RegisteredDevice): void;
  takePending(serial: string): net.Socket | undefined;
  /** Serials of the devices pending here. */
  pendingSerials(): Iterable<string>;
}

/** What this pod knows of its peers (GET and PUT /v1/peers). */
export interface PeerRosterState {
  ordinal: number;
  /** The release's pod count as last told; absent before anyone said. */
  replicas?: number;
  /** The other pods' ordinals devices are offered to and sessions announced to. */
  peers: number[];
}

export const DEFAULT_PEER_CONNECT_TIMEOUT_MS = 1_000;
export const DEFAULT_PEER_ANSWER_TIMEOUT_MS = 3_000;

export class PeerLink {
  readonly metrics: PeerMetrics;
  private readonly forwarder: DeviceForwarder;
  private readonly announcer: WantedAnnouncer;
  private readonly peerPort: PeerPort;
  private readonly roster: PeerRoster;
  private readonly logger: Logger;

  constructor(
    private readonly settings: PeerSettings,
    ctx: PeerLinkContext,
    private readonly hooks: PeerLinkHooks,
  ) {
    this.logger = ctx.logger;
    this.metrics = new PeerMetrics(ctx.metrics.registry);
    // Shared by the forwarder and the announcer.
    this.roster = new PeerRoster(settings.ordinal, settings.replicas);
    const peers = this.roster.ordinals;
    const endpoints = new Map<number, PeerEndpoint | undefined>();
    const endpoint = (ordinal: number) => {
      if (!endpoints.has(ordinal)) endpoints.set(ordinal, peerEndpoint(settings.addressPattern, ordinal));
      return endpoints.get(ordinal);
    };
    const contact: PeerContactOptions = {
      ordinal: settings.ordinal,
      peers,
      endpoint,
      token: settings.token,
      connectTimeoutMs: settings.connectTimeoutMs ?? DEFAULT_PEER_CONNECT_TIMEOUT_MS,
      answerTimeoutMs: settings.answerTimeoutMs ?? DEFAULT_PEER_ANSWER_TIMEOUT_MS,
    };
    this.forwarder = new DeviceForwarder(
      {
        ...contact,
        keepaliveIdleMs: ctx.keepaliveIdleMs,
        lingerMs: ctx.lingerMs,
        sendTimeoutMs: ctx.sendTimeoutMs,
        maxHeld: ctx.maxHeld,
        metrics: this.metrics,
        logger: ctx.logger,
        summary: ctx.summary,
        clock: ctx.clock,
      },
      hooks,
    );
    this.announcer = new WantedAnnouncer({
      ...contact,
      metrics: this.metrics,
      logger: ctx.logger,
      onResult: (ordinal, delivered) => (delivered ? this.forwarder.peerAlive(ordinal) : this.forwarder.peerFailed(ordinal)),
    });
    this.peerPort = new PeerPort(
      {
        port: settings.port,
        bindHost: settings.bindHost,
        token: settings.token,
        metrics: this.metrics,
        logger: ctx.logger,
        summary: ctx.summary,
      },
      {
        hasLiveSession: hooks.hasLiveSession,
        attachLocal: hooks.attachLocal,
        wanted: (serial, from) => this.forwarder.wanted(serial, from),
        heardFrom: (ordinal) => {
          // A pod added since this one was told the count (a release scaled up) joins it.
          this.offerPending(this.roster.learn(ordinal));
          if (ordinal !== settings.ordinal) this.forwarder.peerAlive(ordinal);
        },
      },
    );
  }

  /** The release has `replicas` pods (the operator says so): devices waiting here are offered to the pods this adds. */
  setReplicas(replicas: number): PeerRosterState {
    const before = this.roster.replicas;
    const added = this.roster.setReplicas(replicas);
    if (before !== replicas) this.logger.info({ replicas, peers: this.roster.ordinals, added }, 'peers set');
    this.offerPending(added);
    return this.state();
  }

  state(): PeerRosterState {
    const { replicas } = this.roster;
    return { ordinal: this.settings.ordinal, ...(replicas !== undefined ? { replicas } : {}), peers: [...this.roster.ordinals] };
  }

  /**
   * A device that waits here because no known pod had its session may
   * belong to a pod just learned of (e.g. it registered before this pod was
   * told its peers): it is offered there.
   */
  private offerPending(added: number[]): void {
    if (added.length === 0) return;
    const serials = [...this.hooks.pendingSerials()];
    for (const ordinal of added) this.forwarder.offerWaiting(ordinal, serials);
  }

  async listen(): Promise<number> {
    const port = await this.peerPort.listen();
    const { ordinal, addressPattern } = this.settings;
    this.logger.info(
      { peerPort: port, ordinal, replicas: this.roster.replicas ?? 'not told yet', peers: addressPattern },
      'peer port listening',
    );
    return port;
  }

  /** Takes a registered device that has no session here, to offer it to the peers; false: keep it pending. */
  take(device: RegisteredDevice): boolean {
    return this.forwarder.take(device);
  }

  /** A session was created here and no device waited here for it. */
  announce(serial: string): void {
    this.announcer.announce(serial);
  }

  async close(): Promise<void> {
    this.announcer.close();
    this.forwarder.close();
    await this.peerPort.close();
  }
}
