// The proxy pod's admin API in memory, with a change feed, for unit tests of
// the reconciler and the ProxyView (the end-to-end tests use the real proxy).
import type {
  ChangeBatch,
  EndedReason,
  PeersState,
  ProxyEvent,
  SessionList,
  SessionLookup,
  SessionRemoval,
  SessionSpec,
  SessionState,
} from '../../common/admin-protocol.ts';
import {
  AdminApiError,
  type EventStream,
  type EventStreamHandlers,
  type FeedCounters,
  type ProxyAdmin,
} from '../../operator/proxy-admin-client.ts';

/** The proxy's admin API in memory, with a change feed, so the reconciler's view can be driven step by step. */
export class FakeProxy implements ProxyAdmin {
  instanceId = 'instance-1';
  sessions = new Map<string, SessionState>();
  removed: SessionRemoval[] = [];
  seq = 0;
  foreignPorts = new Set<number>();
  calls: string[] = [];
  feedReads = 0;
  /** Thrown by the next change-feed read, once. */
  failNextRead: Error | undefined;
  private readonly streams = new Set<EventStreamHandlers>();
  /** Called at each PUT, to look at the store at that moment. */
  onPut: (serial: string, spec: SessionSpec) => void = () => undefined;

  async info() {
    return { instanceId: this.instanceId, startedAt: '', devicePort: 9000 };
  }
  async listSessions(serials?: readonly string[]): Promise<SessionList> {
    const listed = serials ? serials.flatMap((serial) => this.sessions.get(serial) ?? []) : [...this.sessions.values()];
    return { ...(await this.info()), sessions: listed.map((s) => ({ ...s })) };
  }
  /** Every changed session in full: `counters` and `complete` (the fourth and fifth arguments) are not served. */
  async changes(
    since: number,
    instance: string | undefined,
    limit: number,
    _counters?: FeedCounters,
    _complete?: number,
  ): Promise<ChangeBatch> {
    this.feedReads += 1;
    const failure = this.failNextRead;
    this.failNextRead = undefined;
    if (failure) throw failure;
    const reset = instance !== this.instanceId;
    const from = reset ? 0 : since;
    const changed = [...this.sessions.values()].filter((s) => s.changeSeq > from).sort((a, b) => a.changeSeq - b.changeSeq);
    const page = changed.slice(0, limit);
    const removed = this.removed.filter((r) => r.changeSeq > from && (page.length === 0 || r.changeSeq <= page.at(-1)!.changeSeq));
    const more = changed.length > limit;
    const cursor = more ? page.at(-1)!.changeSeq : this.seq;
    return { ...(await this.info()), cursor, reset, sessions: page.map((s) => ({ ...s })), removed, more };
  }
  /** Serials whose device waits on this proxy. */
  pendingDevices = new Set<string>();
  async devicePending(serial: string): Promise<boolean> {
    return this.pendingDevices.has(serial);
  }
  async getSession(serial: string): Promise<SessionLookup> {
    const session = this.sessions.get(serial);
    return { ...(await this.info()), ...(session ? { session: { ...session } } : {}) };
  }
  async putSession(serial: string, spec: SessionSpec): Promise<SessionState> {
    this.calls.push(`PUT ${serial} ${spec.port}`);
    this.onPut(serial, spec);
    if (this.foreignPorts.has(spec.port)) throw new AdminApiError(409, 'port_unavailable', `port ${spec.port} in use`);
    const previous = this.sessions.get(serial);
    const keep = previous && previous.id === spec.id && previous.state === 'listening';
    const state: SessionState = {
      ...spec,
      serial,
      state: 'listening',
      deviceConnected: keep ? previous.deviceConnected : false,
      clientConnected: keep ? previous.clientConnected : false,
      transferredBytes: keep ? previous.transferredBytes : 0,
      droppedBytes: 0,
      changeSeq: ++this.seq,
      listeningSince: '',
      device: keep ? previous.device : { forwardedBytes: 0, droppedBytes: 0 },
      client: keep ? previous.client : { forwardedBytes: 0, droppedBytes: 0 },
      clientsRefused: keep ? previous.clientsRefused : 0,
    };
    this.sessions.set(serial, state);
    return { ...state };
  }
  async deleteSession(serial: string): Promise<SessionState | undefined> {
    this.calls.push(`DELETE ${serial}`);
    const state = this.sessions.get(serial);
    this.sessions.delete(serial);
    if (state) this.removed.push({ serial, id: state.id, changeSeq: ++this.seq });
    return state;
  }
  /** The pod count last told (PUT /v1/peers). */
  toldReplicas: number | undefined;
  /** Thrown by the next PUT /v1/peers, once. */
  failNextPeers: Error | undefined;
  async putPeers(replicas: number): Promise<PeersState> {
    this.calls.push(`PEERS ${replicas}`);
    const failure = this.failNextPeers;
    this.failNextPeers = undefined;
    if (failure) throw failure;
    this.toldReplicas = replicas;
    return { ...(await this.info()), ordinal: 0, replicas, peers: Array.from({ length: replicas - 1 }, (_, i) => i + 1) };
  }
  watchEvents(handlers: EventStreamHandlers): EventStream {
    this.streams.add(handlers);
    return { close: () => this.streams.delete(handlers) };
  }
  /** Sends an event to every open stream, as the proxy would. */
  emit(event: Omit<ProxyEvent, 'instanceId' | 'seq' | 'at'>): void {
    for (const stream of this.streams) stream.onEvent({ ...event, instanceId: this.instanceId, seq: 0, at: '' });
  }
  close(): void {}
  /** The proxy's own change of a session (traffic, a connect, an end). */
  update(serial: string, change: Partial<SessionState>): void {
    const state = this.sessions.get(serial)!;
    this.sessions.set(serial, { ...state, ...change, changeSeq: ++this.seq });
  }
  end(serial: string, reason: EndedReason): void {
    this.update(serial, { state: 'ended', endedReason: reason, deviceConnected: false, clientConnected: false });
  }
  restart(): void {
    this.sessions.clear();
    this.removed = [];
    this.seq = 0;
    this.instanceId = `instance-${Number(this.instanceId.split('-')[1]) + 1}`;
  }
}
