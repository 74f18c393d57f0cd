// /status at most about a second stale in every mode. The stored session
// says where a session runs and in which phase; its live fields (connections,
// counters, activity) come from the view of its proxy pod whenever that view
// knows this incarnation on this port. In a cluster, counter writes to the
// API server are rate-limited, so the stored counters may lag; the view,
// fed by the pod's change feed, does not. A view that takes counters on
// demand asks the pod for them when they are older than LIVE_MAX_AGE_MS.
import type { SessionState } from '../common/admin-protocol.ts';
import type { ProxyView } from './proxy-view.ts';
import { withLiveStatus } from './session-status.ts';
import type { ProxySession } from './session-store.ts';

/** Counters shown are at most this old when asked for, plus the time the pod takes to answer. */
export const LIVE_MAX_AGE_MS = 500;

export class LiveSessions {
  /**
   * @param views the view of each proxy pod, by pod name
   * @param firstPod the pod of a session stored before pods were named
   */
  constructor(
    private readonly views: ReadonlyMap<string, ProxyView>,
    private readonly firstPod: string,
  ) {}

  /** The session with its live fields as its pod reports them now, when the pod runs this incarnation; else as stored. */
  async overlay(session: ProxySession): Promise<ProxySession> {
    const { status } = session;
    if (status.phase !== 'Active' || session.deleting || status.port === undefined) return session;
    const view = this.views.get(status.proxy ?? this.firstPod);
    if (!view || !runs(view.get(session.serial), session)) return session;
    const state = await view.current(session.serial, LIVE_MAX_AGE_MS);
    if (!state || !runs(state, session)) return session;
    return { ...session, status: withLiveStatus(status, state) };
  }
}

/** The pod's state is of this incarnation, on its port, and listening. */
function runs(state: SessionState | undefined, session: ProxySession): state is SessionState {
  return state !== undefined && state.id === session.uid && state.port === session.status.port && state.state === 'listening';
}
