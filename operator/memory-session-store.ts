// In-memory SessionStore for the standalone mode and tests. Every operation
// completes its read-modify-write without awaiting in between, so concurrent
// callers (e.g. fifty /on for one serial) see one consistent session.
import { randomUUID } from 'node:crypto';
import { ChangeListeners } from './change-listeners.ts';
import { withLiveFields } from './session-status.ts';
import {
  type ApplyResult,
  copySession,
  copySpec,
  type DeleteResult,
  type ProxySession,
  type ProxySessionSpec,
  type ProxySessionStatus,
  SESSION_FINALIZER,
  type SessionChange,
  type SessionStore,
  sameSpec,
  statusToKeep,
} from './session-store.ts';

export interface MemorySessionStoreOptions {
  now?: () => Date;
  newUid?: () => string;
}

// Callers get copies (copySession), so nothing outside can mutate the stored
// state, as with a real API server.

export class MemorySessionStore implements SessionStore {
  readonly finalizer = SESSION_FINALIZER;
  private readonly sessions = new Map<string, ProxySession>();
  private readonly listeners = new ChangeListeners<SessionChange>();
  private readonly now: () => Date;
  private readonly newUid: () => string;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.now = options.now ?? (() => new Date());
    this.newUid = options.newUid ?? randomUUID;
  }

  async get(serial: string): Promise<ProxySession | undefined> {
    const session = this.sessions.get(serial);
    return session && copySession(session);
  }

  async list(): Promise<ProxySession[]> {
    return [...this.sessions.values()].map(copySession);
  }

  async apply(spec: ProxySessionSpec): Promise<ApplyResult> {
    const existing = this.sessions.get(spec.serial);
    if (existing?.deleting) return { outcome: 'deleting', session: copySession(existing) };
    if (existing && sameSpec(existing.spec, spec)) return { outcome: 'unchanged', session: copySession(existing) };
    if (existing) {
      existing.spec = copySpec(spec);
      existing.generation += 1;
      this.listeners.emit({ type: 'upserted', session: copySession(existing) });
      return { outcome: 'updated', session: copySession(existing) };
    }
    const created: ProxySession = {
      serial: spec.serial,
      uid: this.newUid(),
      generation: 1,
      creationTimestamp: this.now().toISOString(),
      hasFinalizer: true,
      deleting: false,
      spec: copySpec(spec),
      status: {},
    };
    this.sessions.set(spec.serial, created);
    this.listeners.emit({ type: 'upserted', session: copySession(created) });
    return { outcome: 'created', session: copySession(created) };
  }

  async delete(serial: string, uid?: string): Promise<DeleteResult> {
    const session = this.sessions.get(serial);
    if (!session || (uid !== undefined && session.uid !== uid)) return 'not-found';
    if (!session.hasFinalizer) {
      this.remove(session);
      return 'deleted';
    }
    if (!session.deleting) {
      session.deleting = true;
      this.listeners.emit({ type: 'upserted', session: copySession(session) });
    }
    return 'deleting';
  }

  async setFinalizer(serial: string, uid: string, present: boolean): Promise<ProxySession | undefined> {
    const session = this.sessions.get(serial);
    if (!session || session.uid !== uid) return undefined;
    if (session.hasFinalizer === present) return copySession(session);
    if (!present && session.deleting) {
      this.remove(session);
      return undefined;
    }
    session.hasFinalizer = present;
    this.listeners.emit({ type: 'upserted', session: copySession(session) });
    return copySession(session);
  }

  async writeStatus(serial: string, uid: string, status: ProxySessionStatus): Promise<ProxySession | undefined> {
    const session = this.sessions.get(serial);
    if (!session || session.uid !== uid) return undefined;
    session.status = statusToKeep(status);
    this.listeners.emit({ type: 'upserted', session: copySession(session) });
    return copySession(session);
  }

  writeTelemetry(serial: string, uid: string, port: number, live: ProxySessionStatus): boolean {
    const session = this.sessions.get(serial);
    if (!session || session.uid !== uid || session.deleting || session.status.phase !== 'Active' || session.status.port !== port) {
      return false;
    }
    session.status = withLiveFields(session.status, live);
    return true;
  }

  subscribe(listener: (change: SessionChange) => void): () => void {
    return this.listeners.subscribe(listener);
  }

  private remove(session: ProxySession): void {
    this.sessions.delete(session.serial);
    this.listeners.emit({ type: 'removed', serial: session.serial, uid: session.uid });
  }
}
