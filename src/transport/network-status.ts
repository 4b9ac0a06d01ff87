/**
 * Tells a transport when its environment loses or regains the network, so it
 * can drop a socket that is most likely dead at once instead of waiting for
 * its heartbeat, and retry at once when the network is back.
 */
export interface NetworkStatusSource {
  /**
   * Calls `listener(false)` when the network is lost and `listener(true)` when
   * it is back (repeats are possible and harmless). Returns the remover.
   */
  subscribe(listener: (online: boolean) => void): () => void
}

/** What {@link isEventTarget} checks for. */
export interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void
  removeEventListener(type: string, listener: () => void): void
}

/**
 * The environment's own signals, where they exist (Node 20 has none):
 *
 * - `online` / `offline` on `scope` (a window, or a worker scope in Firefox);
 * - `change` on `navigator.connection`, read with `navigator.onLine`. Chromium
 *   fires no `online` / `offline` in workers (the handlers are commented out
 *   of its `WorkerGlobalScope`), but `navigator.onLine` and the Network
 *   Information `change` event work there, at the same moment the window's
 *   `offline` fires.
 *
 * `navigator.onLine === false` is reliable (no network at all); `true` only
 * means "maybe": a transport keeps dialling either way.
 */
export function environmentNetworkStatus(scope: unknown = globalThis): NetworkStatusSource {
  return {
    subscribe(listener) {
      const removers: (() => void)[] = []
      const listen = (target: unknown, type: string, handler: () => void): void => {
        if (!isEventTarget(target)) return
        target.addEventListener(type, handler)
        removers.push(() => target.removeEventListener(type, handler))
      }
      const navigator = (scope as { navigator?: { onLine?: unknown; connection?: unknown } } | undefined)?.navigator
      const onLine = (): boolean | undefined => (typeof navigator?.onLine === 'boolean' ? navigator.onLine : undefined)
      let last = onLine()
      const report = (online: boolean): void => {
        last = online
        listener(online)
      }
      listen(scope, 'online', () => report(true))
      listen(scope, 'offline', () => report(false))
      // Also fires on bandwidth estimates: only a change of onLine is news.
      listen(navigator?.connection, 'change', () => {
        const now = onLine()
        if (now !== undefined && now !== last) report(now)
      })
      return () => {
        for (const remove of removers.splice(0)) remove()
      }
    },
  }
}

/** Whether `value` can stand in for a {@link NetworkStatusSource}. */
export function isNetworkStatusSource(value: unknown): value is NetworkStatusSource {
  return typeof value === 'object' && value !== null && typeof (value as { subscribe?: unknown }).subscribe === 'function'
}

/** Whether `value` has `addEventListener` and `removeEventListener`. */
export function isEventTarget(value: unknown): value is EventTargetLike {
  if (typeof value !== 'object' || value === null) return false
  const t = value as Record<string, unknown>
  return typeof t.addEventListener === 'function' && typeof t.removeEventListener === 'function'
}
