// Waiting on the store until a session reaches a state, bounded in time.
// The Control API answers from the store only; it never asks the proxy.

import { type Clock, systemClock } from '../common/clock.ts';
import type { ProxySession, SessionStore } from './session-store.ts';

export type WaitResult = { reached: true; session: ProxySession | undefined } | { reached: false; session: ProxySession | undefined };

/**
 * Resolves with the first state of serial's session (undefined: no session)
 * that satisfies `reached`, or with the last seen state after timeoutMs.
 */
export async function waitForSession(
  store: SessionStore,
  serial: string,
  reached: (session: ProxySession | undefined) => boolean,
  timeoutMs: number,
  clock: Clock = systemClock,
): Promise<WaitResult> {
  let settle: (result: WaitResult) => void = () => undefined;
  const done = new Promise<WaitResult>((resolve) => (settle = resolve));
  let last: ProxySession | undefined;
  let finished = false;
  const check = (session: ProxySession | undefined) => {
    if (finished) return;
    last = session;
    if (reached(session)) {
      finished = true;
      settle({ reached: true, session });
    }
  };
  // Subscribe before reading, so a change between the read and the subscription is not missed.
  const unsubscribe = store.subscribe((change) => {
    if (change.type === 'removed' && change.serial === serial) check(undefined);
    else if (change.type === 'upserted' && change.session.serial === serial) check(change.session);
  });
  const timer = clock.setTimeout(() => {
    if (finished) return;
    finished = true;
    settle({ reached: false, session: last });
  }, timeoutMs);
  try {
    check(await store.get(serial));
    return await done;
  } finally {
    unsubscribe();
    clock.clearTimeout(timer);
  }
}
