/** A listener of one event type. */
export type Listener<T> = (event: T) => void

/**
 * A minimal typed event emitter. A throwing listener never breaks the emitter
 * or the engine: its error goes to `onListenerError`.
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>()
  readonly #onListenerError: (error: unknown, event: keyof Events) => void

  constructor(onListenerError: (error: unknown, event: keyof Events) => void) {
    this.#onListenerError = onListenerError
  }

  /** Subscribes; returns the unsubscribe function. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    const entry = listener as Listener<never>
    set.add(entry)
    return () => void set.delete(entry)
  }

  /** True while `event` has a listener: lets a caller skip building an event nobody hears. */
  has(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0
  }

  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.#listeners.get(event)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        ;(listener as Listener<Events[K]>)(value)
      } catch (error) {
        this.#onListenerError(error, event)
      }
    }
  }

  /** Drops every listener. */
  clear(): void {
    this.#listeners.clear()
  }
}
