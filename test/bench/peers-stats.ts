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

/**
 * What a feature costs as one ratio, 1 when it costs nothing and lower the
 * more it costs: `on / off` for a rate (`higher` is better), `off / on` for a
 * time (`lower` is better). NaN unless both are positive finite numbers.
 */
export function costRatio(better: 'higher' | 'lower', on: number, off: number): number {
  if (!(on > 0 && off > 0 && Number.isFinite(on) && Number.isFinite(off))) return NaN
  return Number((better === 'higher' ? on / off : off / on).toFixed(4))
}

/** The median of `values` (the mean of the middle two for an even count); NaN when empty or any is NaN. */
export function median(values: readonly number[]): number {
  if (values.length === 0 || values.some(Number.isNaN)) return NaN
  const sorted = ascending(values)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
