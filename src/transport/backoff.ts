/** Bounds of an exponential backoff, in milliseconds. */
export interface BackoffOptions {
  /** The ceiling of the first delay (default 500). */
  readonly initialMs?: number
  /** The largest ceiling, reached after a few attempts (default 30 000). */
  readonly maxMs?: number
}

/** Past this exponent the ceiling is `maxMs` for any sane bounds; keeps `2 ** attempt` finite. */
const MAX_EXPONENT = 52

/**
 * The delay before retry number `attempt` (0 for the first retry):
 * exponential backoff with full jitter, `random() * min(maxMs, initialMs * 2 ** attempt)`.
 * Full jitter spreads a crowd of clients that lost the same server across the
 * whole window, so they do not come back in lockstep.
 *
 * @param random a uniform draw in [0, 1) (default `Math.random`); values outside are clamped.
 * @throws RangeError on a negative or non-integer attempt, or bounds that are not `0 < initialMs <= maxMs`.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { initialMs, maxMs } = backoffBounds(options)
  if (!Number.isSafeInteger(attempt) || attempt < 0) throw new RangeError(`backoffDelay: invalid attempt ${String(attempt)}`)
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, MAX_EXPONENT))
  return Math.floor(unitDraw(random()) * ceiling)
}

/** A random draw clamped into [0, 1] (0 when it is not a finite number). */
export function unitDraw(draw: number): number {
  return Number.isFinite(draw) ? Math.min(Math.max(draw, 0), 1) : 0
}

/**
 * The bounds with defaults applied and checked.
 * @throws RangeError unless `0 < initialMs <= maxMs`, both finite.
 */
export function backoffBounds(options: BackoffOptions = {}): Required<BackoffOptions> {
  const { initialMs = 500, maxMs = 30_000 } = options
  if (!(Number.isFinite(initialMs) && initialMs > 0)) throw new RangeError(`backoff: initialMs must be positive, got ${String(initialMs)}`)
  if (!(Number.isFinite(maxMs) && maxMs >= initialMs)) {
    throw new RangeError(`backoff: maxMs must be at least initialMs, got ${String(maxMs)}`)
  }
  return { initialMs, maxMs }
}
