// /status at most about a second stale in every mode. The stored session
// says where a session runs and in which phase; its live fields (connections,
// counters, activity) come from the view of its proxy pod whenever that view
// knows this incarnation on this port. In a cluster, counter writes to the
// API server are rate-limited, so the stored counters may lag; the view,
// fed by the pod's change feed, does not.
import type { ProxyView } from './proxy-view.ts';
import { withLiveStatus } from './session-status.ts';
import type { ProxySession } from './session-store.ts';

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
  overlay(session: ProxySession): ProxySession {
    const { status } = session;
    if (status.phase !== 'Active' || session.deleting || status.port === undefined) return session;
    const state = this.views.get(status.proxy ?? this.firstPod)?.get(session.serial);
    if (!state || state.id !== session.uid || state.port !== status.port || state.state !== 'listening') return session;
    return { ...session, status: withLiveStatus(status, state) };
  }
}
