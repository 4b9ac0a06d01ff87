/**
 * The common shape of benchmark figures: every results file
 * (test/bench/results/<name>.json) carries `benchmark`, `date`, `machine` and
 * a `figures` array of {@link Figure}s, from which test/bench/report.ts builds
 * the results table.
 */

/** One measured figure and what it is compared with. */
export interface Figure {
  /** What was measured, e.g. `end to end, 20,000 × 64 B, both persisting`. */
  readonly figure: string
  readonly value: number
  /** Unit of `value` and `againstValue`, e.g. `msgs/s`, `ms`, `B`. */
  readonly unit: string
  /** The ceiling or peer measured in the same run (or the budget); `''` when the figure has none. */
  readonly against: string
  /** `null` when the figure has no ceiling, peer or budget. */
  readonly againstValue: number | null
  /** `value / againstValue`, or `null` without one. */
  readonly ratio: number | null
}

/** The fields every results file shares. */
export interface ResultsFile {
  readonly benchmark: string
  readonly date: string
  readonly machine: string
  readonly figures?: readonly Figure[]
}

/** A figure compared with `againstValue` (same unit): the ratio is `value / againstValue`, to 4 decimals. */
export function figure(name: string, value: number, unit: string, against: string, againstValue: number): Figure {
  if (!Number.isFinite(value) || !Number.isFinite(againstValue) || againstValue === 0) throw new RangeError(`${name}: cannot compare ${value} with ${againstValue}`)
  return { figure: name, value, unit, against, againstValue, ratio: Number((value / againstValue).toFixed(4)) }
}

/** A figure with nothing measured to compare it with (e.g. memory per connection). */
export function plainFigure(name: string, value: number, unit: string): Figure {
  if (!Number.isFinite(value)) throw new RangeError(`${name}: ${value} is not a number`)
  return { figure: name, value, unit, against: '', againstValue: null, ratio: null }
}
