// Subscribers to a stream of changes. A listener that throws must not break
// the source or the other listeners; its error goes to `onError`.
export class ChangeListeners<T> {
  private readonly listeners = new Set<(change: T) => void>();

  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  /** Returns the unsubscribe function. */
  subscribe(listener: (change: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(change: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
