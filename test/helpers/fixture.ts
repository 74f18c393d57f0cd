// What a suite shares (a built binary, the rig, a cluster), started once in
// `before` and stopped in `after`. uvu swallows an error thrown by a `before`
// hook, so a failed start is kept and rethrown by the getter in every test,
// which then fails with the cause instead of a confusing follow-up error.
import type { Test } from 'uvu';

export function suiteFixture<T>(test: Test, start: () => Promise<T>, stop?: (value: T) => Promise<unknown>): () => T {
  let value: { ok: true; value: T } | { ok: false; error: unknown } = { ok: false, error: new Error('the suite fixture has not started') };
  test.before(async () => {
    try {
      value = { ok: true, value: await start() };
    } catch (error) {
      value = { ok: false, error };
    }
  });
  if (stop) {
    test.after(async () => {
      if (value.ok) await stop(value.value);
    });
  }
  return () => {
    if (!value.ok) throw value.error;
    return value.value;
  };
}
