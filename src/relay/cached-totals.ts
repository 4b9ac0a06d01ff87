import type { Clock } from '../core/clock.js'
import type { MailboxTotals } from './mailbox/mailbox.js'

/** Totals as last read, and when (the clock's ms). */
export interface TotalsReading {
  readonly totals: MailboxTotals
  readonly at: number
}

/** Options of {@link CachedTotals}. */
export interface CachedTotalsOptions {
  /** Reads the totals: synchronously when that is cheap, or with a promise when it walks storage. */
  readonly read: () => MailboxTotals | Promise<MailboxTotals>
  /** An asynchronous read starts only once this many ms have passed since the last one ended (0: on every `get`, one at a time). */
  readonly intervalMs: number
  /** How long `get` waits for a read in progress before it answers with the last one (ms). */
  readonly waitMs: number
  /** Its timers must not hold the process (the relay's are unref'd). */
  readonly clock: Clock
  /** Told about a read that failed (`get` then answers with the last one). */
  readonly onError: (error: unknown) => void
}

/**
 * The mailbox's totals as the metrics show them. A synchronous read (counters
 * kept in memory) is taken on every `get`. An asynchronous one (a walk over
 * Redis) is started at most once per `intervalMs`, never two at a time; `get`
 * waits for it up to `waitMs`, then answers with the last good reading (its
 * `at` tells how old), so a slow or failing read never fails or stalls a
 * scrape. A failed read also counts as an attempt: the next one waits for the
 * interval too.
 */
export class CachedTotals {
  readonly #options: CachedTotalsOptions
  #last: TotalsReading | undefined
  #attemptAt = -Infinity
  #reading: Promise<void> | undefined
  #failures = 0

  constructor(options: CachedTotalsOptions) {
    this.#options = options
  }

  /** Reads that failed so far. */
  get failures(): number {
    return this.#failures
  }

  /** The current totals if they can be had within `waitMs`, else the last good ones; undefined before any read succeeded. */
  async get(): Promise<TotalsReading | undefined> {
    const { read, intervalMs, waitMs, clock } = this.#options
    const now = (): number => clock.now()
    if (this.#reading === undefined && now() - this.#attemptAt >= intervalMs) {
      this.#attemptAt = now()
      let result: MailboxTotals | Promise<MailboxTotals>
      try {
        result = read()
      } catch (error) {
        this.#failed(error)
        return this.#last
      }
      if (!(result instanceof Promise)) {
        this.#attemptAt = -Infinity
        return (this.#last = { totals: result, at: now() })
      }
      const reading = result.then(
        (totals) => void (this.#last = { totals, at: now() }),
        (error: unknown) => this.#failed(error),
      )
      this.#reading = reading.finally(() => {
        this.#reading = undefined
        this.#attemptAt = now()
      })
    }
    if (this.#reading !== undefined) await waitAtMost(clock, this.#reading, waitMs)
    return this.#last
  }

  #failed(error: unknown): void {
    this.#failures++
    this.#options.onError(error)
  }
}

/** Resolves when `promise` settles or after `ms`, whichever comes first. */
async function waitAtMost(clock: Clock, promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<Clock['setTimeout']> | undefined
  try {
    await Promise.race([promise, new Promise<void>((resolve) => void (timer = clock.setTimeout(resolve, ms)))])
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer)
  }
}
