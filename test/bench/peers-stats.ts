/**
 * The arithmetic of bench:peers, kept apart so that its self-test
 * (test/unit/bench-peers-stats.test.ts) can plant the failures it must show:
 * percentiles, the delivered rate of a paced run, and how many sends had not
 * resolved.
 */

/** The `p` quantile (0..1) of ascending `sorted` (nearest rank, lower); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

/** `values` ascending, as a new array. */
export const ascending = (values: readonly number[]): number[] => [...values].sort((x, y) => x - y)

/** `value` to 2 decimals. */
export const ms2 = (value: number): number => Number(value.toFixed(2))

/**
 * The rate at which a paced run's messages reached the receiver, msgs/s:
 * `expected` messages were offered at `offeredPerSec` from `firstSendAt`,
 * and the last distinct one arrived at `lastArrivalAt` (same clock, ms).
 * Delivering all of them on schedule takes `(expected - 1) / offered`
 * seconds plus one latency; so the rate counts the distinct arrivals over
 * the schedule's span plus the span's overrun past it, which is what a
 * backlog or a loss shows up as. `latencyMs` is one message's own latency
 * (the run's p50), taken off so that an unloaded system scores the offered
 * rate exactly.
 */
export function deliveredRate(received: number, expected: number, offeredPerSec: number, firstSendAt: number, lastArrivalAt: number, latencyMs: number): number {
  if (received < 2 || expected < 2) return 0
  const scheduleMs = ((expected - 1) / offeredPerSec) * 1000
  const spanMs = Math.max(scheduleMs, lastArrivalAt - firstSendAt - Math.max(0, latencyMs))
  return ((received - 1) / spanMs) * 1000
}

/** Sends whose `resolvedAt` is still 0 (not resolved) out of the first `called`. */
export function unresolved(resolvedAt: ArrayLike<number>, called: number): number {
  let count = 0
  for (let i = 0; i < called; i++) if (!(resolvedAt[i]! > 0)) count++
  return count
}
