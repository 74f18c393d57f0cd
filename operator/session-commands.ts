// What /on, /off and /status do, in terms of the session store, without
// HTTP. The reconciler does the work; these write the desired state and wait
// (bounded) until the store shows it done.

import { type Clock, systemClock } from '../common/clock.ts';
import type { OnQuery } from './query-validation.ts';
import { isTerminal, type ProxySession, type ProxySessionSpec, type SessionStore } from './session-store.ts';
import { waitForSession } from './session-wait.ts';

export type OnOutcome =
  | { kind: 'listening'; host: string; port: number }
  | { kind: 'no-ports' }
  /** The session reached its own lifetime or idle limit before /on could answer. */
  | { kind: 'expired'; reason: 'MaxLifetime' | 'IdleTimeout' };

export type OffOutcome = { kind: 'ended' } | { kind: 'not-found' };

export type StatusOutcome =
  | { kind: 'found'; session: ProxySession }
  /** Ended or failed by itself, still within the retention time. */
  | { kind: 'ended'; session: ProxySession }
  | { kind: 'not-found' };

export type OffOutcomeWithHistory = OffOutcome | { kind: 'already-ended'; session: ProxySession };

/** The session did not get where it should within the time allowed, or failed; the Control API answers 500. */
export class SessionCommandError extends Error {
  constructor(
    message: string,
    readonly code: 'request_timed_out' | 'session_failed' = 'request_timed_out',
  ) {
    super(message);
    this.name = 'SessionCommandError';
  }
}

/**
 * What a caller asked for was overtaken by another caller: its session was
 * switched off by /off before it was listening. The Control API answers 409
 * with the code, so programs can tell it from a failure and call /on again.
 */
export class SessionConflictError extends Error {
  constructor(
    readonly code: 'session_switched_off',
    message: string,
  ) {
    super(message);
    this.name = 'SessionConflictError';
  }
}

export interface SessionCommandsOptions {
  /** Upper bound for one /on or /off. */
  timeoutMs?: number;
  /** Gives stored sessions their live fields as their proxy pods report them now (see LiveSessions). */
  live?: (sessions: readonly ProxySession[]) => Promise<ProxySession[]>;
  clock?: Clock;
}

/** /on restarts at most this often when it races with /off or a session ending. */
const MAX_ON_ATTEMPTS = 5;

export class SessionCommands {
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  private readonly live: (sessions: readonly ProxySession[]) => Promise<ProxySession[]>;

  constructor(
    private readonly store: SessionStore,
    options: SessionCommandsOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.clock = options.clock ?? systemClock;
    this.live = options.live ?? (async (sessions) => [...sessions]);
  }

  async on(query: OnQuery): Promise<OnOutcome> {
    const deadline = this.clock.now() + this.timeoutMs;
    const remaining = () => Math.max(0, deadline - this.clock.now());
    const spec: ProxySessionSpec = { serial: query.serial, persistent: query.persistent, ipWhitelist: query.ipWhitelist };
    if (query.timeoutSeconds !== undefined) spec.timeoutSeconds = query.timeoutSeconds;
    if (query.maxLifetimeSeconds !== undefined) spec.maxLifetimeSeconds = query.maxLifetimeSeconds;
    if (query.idleTimeoutSeconds !== undefined) spec.idleTimeoutSeconds = query.idleTimeoutSeconds;

    for (let attempt = 0; attempt < MAX_ON_ATTEMPTS && remaining() > 0; attempt++) {
      // An Ended or Failed record is history: a new session replaces it.
      const existing = await this.store.get(query.serial);
      if (existing && !existing.deleting && isTerminal(existing)) await this.store.delete(query.serial, existing.uid);

      const applied = await this.store.apply(spec);
      if (applied.outcome === 'deleting') {
        await this.waitUntilGone(applied.session, remaining());
        continue;
      }
      const { session } = applied;
      const wait = await waitForSession(
        this.store,
        query.serial,
        (s) => !s || s.uid !== session.uid || s.deleting || isTerminal(s) || isListening(s, session.generation),
        remaining(),
        this.clock,
      );
      const final = wait.session;
      if (!wait.reached) {
        throw new SessionCommandError(
          `Timed out after ${this.timeoutMs / 1000} s waiting for the proxy to listen for serial ${query.serial}`,
        );
      }
      if (final && final.uid === session.uid && isListening(final, session.generation)) {
        return { kind: 'listening', host: final.status.host ?? '', port: final.status.port ?? 0 };
      }
      if (final && final.uid === session.uid && final.status.phase === 'Failed' && final.status.endedReason === 'NoAvailablePorts') {
        if (applied.outcome === 'created') {
          // Leave nothing behind: the caller got no session.
          await this.store.delete(query.serial, session.uid);
          await this.waitUntilGone(session, remaining());
        }
        return { kind: 'no-ports' };
      }
      const reason = final?.status.endedReason;
      if (final && final.uid === session.uid && final.status.phase === 'Ended' && (reason === 'MaxLifetime' || reason === 'IdleTimeout')) {
        // Starting it again would end the same way (the lifetime counts from creation, or the limit is shorter than a start).
        return { kind: 'expired', reason };
      }
      if (final && final.uid === session.uid && final.status.phase === 'Failed' && !final.deleting) {
        throw new SessionCommandError(
          `Session for serial ${query.serial} failed: ${final.status.endedReason ?? 'unknown reason'}`,
          'session_failed',
        );
      }
      if (!final || (final.uid === session.uid && final.deleting)) {
        throw new SessionConflictError(
          'session_switched_off',
          `The session for serial ${query.serial} was switched off by /off before it was listening; call /on again to start a new one`,
        );
      }
      // Replaced by another caller's session, or ended by itself while starting: go on with what is there now.
    }
    if (remaining() <= 0) {
      throw new SessionCommandError(
        `Timed out after ${this.timeoutMs / 1000} s waiting for the previous session of serial ${query.serial} to close`,
      );
    }
    throw new SessionConflictError(
      'session_switched_off',
      `The sessions for serial ${query.serial} kept being switched off by /off while this /on started them; call /on again`,
    );
  }

  async off(serial: string): Promise<OffOutcomeWithHistory> {
    const existing = await this.store.get(serial);
    if (!existing) return { kind: 'not-found' };
    if (isTerminal(existing) && !existing.deleting) {
      // Nothing is running; clear the record so the answer and the store agree, and say how it ended.
      await this.store.delete(serial, existing.uid);
      return { kind: 'already-ended', session: existing };
    }
    const result = await this.store.delete(serial, existing.uid);
    // 'not-found' here: another caller removed the live session a moment ago; it is off, as asked.
    if (result === 'not-found') return { kind: 'ended' };
    const gone = await this.waitUntilGone(existing, this.timeoutMs);
    if (!gone)
      throw new SessionCommandError(`Timed out after ${this.timeoutMs / 1000} s waiting for the session of serial ${serial} to close`);
    return { kind: 'ended' };
  }

  async status(serial: string): Promise<StatusOutcome> {
    const session = await this.store.get(serial);
    if (!session) return { kind: 'not-found' };
    if (isTerminal(session)) return { kind: 'ended', session };
    // Being switched off: the seed's answer for it is 404.
    if (session.deleting) return { kind: 'not-found' };
    const [live] = await this.live([session]);
    return { kind: 'found', session: live ?? session };
  }

  /** A page of sessions ordered by serial (UTF-16 code units equal byte order for printable ASCII), after `after`. */
  async list(limit: number, after?: string): Promise<{ sessions: ProxySession[]; more: boolean }> {
    const all = (await this.store.list()).filter((s) => after === undefined || s.serial > after);
    all.sort((a, b) => (a.serial < b.serial ? -1 : a.serial > b.serial ? 1 : 0));
    return { sessions: await this.live(all.slice(0, limit)), more: all.length > limit };
  }

  private async waitUntilGone(session: ProxySession, timeoutMs: number): Promise<boolean> {
    const wait = await waitForSession(this.store, session.serial, (s) => !s || s.uid !== session.uid, timeoutMs, this.clock);
    return wait.reached;
  }
}

function isListening(session: ProxySession, generation: number): boolean {
  return (
    !session.deleting &&
    session.status.phase === 'Active' &&
    session.status.port !== undefined &&
    (session.status.observedGeneration ?? 0) >= generation
  );
}
