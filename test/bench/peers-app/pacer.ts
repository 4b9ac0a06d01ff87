/**
 * The paced sender of bench:peers: message `i` is due at `start + i / rate`
 * seconds. Each wake-up sends every message that is due (so a timer that
 * fires late, e.g. the browser's 4 ms clamp on nested timers, is caught up
 * at once instead of lowering the rate), then sleeps until the next is due.
 */

/** What the pacer needs from its surroundings (a page's clock and timers, or a test's fakes). */
export interface PacerClock {
  /** Milliseconds, monotonic. */
  now(): number
  /** Resolves after about `ms` milliseconds. */
  sleep(ms: number): Promise<void>
}

/** When a paced run issued its first and last message, on the pacer's clock. */
export interface PacedSpan {
  readonly firstAt: number
  readonly lastAt: number
  /** Messages issued (`count`, unless `stop` said stop). */
  readonly issued: number
}

/**
 * Calls `sendOne(i)` for i = 0..count-1, `ratePerSec` of them per second,
 * without waiting for what `sendOne` does. Stops early once `stop()` is true.
 */
export async function pace(count: number, ratePerSec: number, sendOne: (index: number) => void, clock: PacerClock, stop: () => boolean = () => false): Promise<PacedSpan> {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be a positive integer (got ${count})`)
  if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new RangeError(`ratePerSec must be a positive number (got ${ratePerSec})`)
  const intervalMs = 1000 / ratePerSec
  const start = clock.now()
  let next = 0
  let lastAt = start
  while (next < count && !stop()) {
    const now = clock.now()
    while (next < count && start + next * intervalMs <= now) sendOne(next++)
    lastAt = now
    if (next < count) await clock.sleep(start + next * intervalMs - clock.now())
  }
  return { firstAt: start, lastAt, issued: next }
}
