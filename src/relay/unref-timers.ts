import type { Clock } from '../core/clock.js'

/**
 * `clock`, with every Node timer it sets unref'd: the relay's timers never
 * keep a process alive (its listening socket does, until `close()`). Handles
 * without `unref` (a manual clock's) are left alone.
 */
export function unrefTimers(clock: Clock): Clock {
  return {
    now: () => clock.now(),
    setTimeout: (fn, ms) => {
      const handle = clock.setTimeout(fn, ms)
      if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') handle.unref()
      return handle
    },
    clearTimeout: (handle) => clock.clearTimeout(handle),
  }
}
