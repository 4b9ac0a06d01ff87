import type { Clock, TimerHandle } from '../core/clock.js'

/** Calls `fn` every `ms` milliseconds of `clock`, until the returned function is called. */
export function repeat(clock: Clock, ms: number, fn: () => void): () => void {
  let timer: TimerHandle | undefined
  let stopped = false
  const tick = (): void => {
    timer = clock.setTimeout(tick, ms)
    fn()
  }
  timer = clock.setTimeout(tick, ms)
  return () => {
    if (stopped) return
    stopped = true
    clock.clearTimeout(timer as TimerHandle)
  }
}
