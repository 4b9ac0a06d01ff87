import type { Clock, TimerHandle } from '../core/clock.js'

/**
 * The real clock: `Date.now()` and the global `setTimeout` / `clearTimeout`
 * (Node, browsers, workers). Timers keep a Node process alive as usual.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle: TimerHandle) => {
    globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0])
  },
}
