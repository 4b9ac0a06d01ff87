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
 * distinct arrivals over the span from the first arrival to the last, which
 * is the schedule's span ((expected - 1) / offered) when the system keeps
 * up, and longer when a backlog builds (the latency grows along the run) or
 * messages are lost. A span shorter than the schedule (a late first message,
 * then the rest caught up) counts as the schedule: no system delivers
 * faster than it is offered.
 */
export function deliveredRate(received: number, expected: number, offeredPerSec: number, firstArrivalAt: number, lastArrivalAt: number): number {
  if (received < 2 || expected < 2) return 0
  const scheduleMs = ((expected - 1) / offeredPerSec) * 1000
  return ((received - 1) / Math.max(scheduleMs, lastArrivalAt - firstArrivalAt)) * 1000
}

/** Sends whose `resolvedAt` is still 0 (not resolved) out of the first `called`. */
export function unresolved(resolvedAt: ArrayLike<number>, called: number): number {
  let count = 0
  for (let i = 0; i < called; i++) if (!(resolvedAt[i]! > 0)) count++
  return count
}
