/** What {@link exactlyOnceReport} found wrong between what was sent and what was received. */
export interface ExactlyOnceReport {
  /** Sent ids never received. */
  readonly lost: readonly string[]
  /** Received ids with how many times each was received, when more than once. */
  readonly duplicated: ReadonlyArray<{ readonly id: string; readonly times: number }>
  /** Ids whose first receipt came before that of an id sent earlier. */
  readonly reordered: readonly string[]
  /** Received ids that were never sent (e.g. another sender's): not an error, ignored by the other checks. */
  readonly foreign: readonly string[]
}

/**
 * Compares one sender's ids in the order it sent them with the ids the
 * receiver's handlers got, in the order it got them.
 */
export function exactlyOnceReport(sent: readonly string[], received: readonly string[]): ExactlyOnceReport {
  if (!Array.isArray(sent) || !Array.isArray(received)) throw new TypeError('sent and received must be arrays of ids')
  const position = new Map<string, number>()
  sent.forEach((id, i) => {
    if (position.has(id)) throw new RangeError(`id "${id}" was sent twice: sent ids must be unique`)
    position.set(id, i)
  })
  const times = new Map<string, number>()
  const foreign: string[] = []
  const reordered: string[] = []
  let highest = -1
  for (const id of received) {
    const at = position.get(id)
    if (at === undefined) {
      foreign.push(id)
      continue
    }
    const seen = times.get(id) ?? 0
    times.set(id, seen + 1)
    if (seen > 0) continue
    if (at < highest) reordered.push(id)
    else highest = at
  }
  return {
    lost: sent.filter((id) => !times.has(id)),
    duplicated: [...times].filter(([, n]) => n > 1).map(([id, n]) => ({ id, times: n })),
    reordered,
    foreign,
  }
}

/** Options of {@link expectExactlyOnce}. */
export interface ExactlyOnceOptions {
  /**
   * Accept a message handed to the handlers again. After a tab froze, reloaded
   * or its browser died, the SDK hands again up to `processBatch` messages
   * whose handlers had returned but whose "processed" mark was not committed
   * (docs/GUARANTEES.md): the app deduplicates side effects by `message.id`.
   * Default false.
   */
  readonly allowRedelivery?: boolean
}

/**
 * Throws unless every id of `sent` is in `received` exactly once (or at least
 * once, with `allowRedelivery`) and first received in the order sent; the
 * error lists the lost, duplicated and reordered ids.
 */
export function expectExactlyOnce(sent: readonly string[], received: readonly string[], options: ExactlyOnceOptions = {}): void {
  const report = exactlyOnceReport(sent, received)
  const duplicated = options.allowRedelivery === true ? [] : report.duplicated
  if (report.lost.length === 0 && duplicated.length === 0 && report.reordered.length === 0) return
  const list = (ids: readonly string[]): string => (ids.length > 10 ? `${ids.slice(0, 10).join(', ')}, … (${ids.length})` : ids.join(', '))
  const lines = [`expected ${sent.length} messages exactly once, in order; got ${received.length} receipts`]
  if (report.lost.length > 0) lines.push(`lost ${report.lost.length}: ${list(report.lost)}`)
  if (duplicated.length > 0) lines.push(`duplicated ${duplicated.length}: ${list(duplicated.map((d) => `${d.id}×${d.times}`))}`)
  if (report.reordered.length > 0) lines.push(`reordered ${report.reordered.length}: ${list(report.reordered)}`)
  throw new Error(lines.join('\n'))
}
