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

  /**
   * The sessions with their live fields as their pods report them now, for
   * each whose pod runs this incarnation; else as stored. Counters are asked
   * for in one request per pod (see ProxyView.refreshCounters).
   */
  async overlay(sessions: readonly ProxySession[]): Promise<ProxySession[]> {
    const views = sessions.map((session) => this.viewOf(session));
    const asked = new Map<ProxyView, string[]>();
    for (const [i, session] of sessions.entries()) {
      const view = views[i];
      if (!view) continue;
      const serials = asked.get(view) ?? [];
      serials.push(session.serial);
      asked.set(view, serials);
    }
    await Promise.all([...asked].map(([view, serials]) => view.refreshCounters(serials, LIVE_MAX_AGE_MS)));
    return sessions.map((session, i) => {
      // Asked again after the lookup: what it brought may be another incarnation's or an end.
      const state = views[i]?.get(session.serial);
      return runs(state, session) ? { ...session, status: withLiveStatus(session.status, state) } : session;
    });
  }

  /** The view of the session's pod, when the session is Active there and the pod runs this incarnation on its port. */
  private viewOf(session: ProxySession): ProxyView | undefined {
    const { status } = session;
    if (status.phase !== 'Active' || session.deleting || status.port === undefined) return undefined;
    const view = this.views.get(status.proxy ?? this.firstPod);
    return view && runs(view.get(session.serial), session) ? view : undefined;
  }
}

/** The pod's state is of this incarnation, on its port, and listening. */
function runs(state: SessionState | undefined, session: ProxySession): state is SessionState {
  return state !== undefined && state.id === session.uid && state.port === session.status.port && state.state === 'listening';
}
