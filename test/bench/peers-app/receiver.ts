import { readStamp } from './payload.js'

/** What a {@link Receiver} saw of its phase. */
export interface Tally {
  readonly expected: number
  /** Distinct messages received. */
  readonly unique: number
  /** Arrivals of a message already received. */
  readonly duplicates: number
  /** Arrivals that were not messages of this phase (e.g. leftovers of an earlier one). */
  readonly other: number
  /** Shared-clock time of the first and of the last arrival (0 when none). */
  readonly first: number
  readonly last: number
  /** The longest wait between two consecutive first arrivals, ms (an outage shows here). */
  readonly longestGapMs: number
  /** Send -> first arrival of each message, ms, in arrival order. */
  readonly latencies: number[]
}

/**
 * Counts the arrivals of one phase: each message's first arrival and its
 * latency, and every further arrival as a duplicate. Calls `onHalf` once,
 * when half of the expected messages (rounded up) arrived.
 */
export class Receiver {
  #unique = 0
  #duplicates = 0
  #other = 0
  #first = 0
  #last = 0
  readonly #counts: Uint16Array
  readonly #latencies: Float64Array
  /** Shared-clock time of each first arrival, in arrival order. */
  readonly #arrivals: Float64Array
  #longestGap = 0
  #wake: (() => void) | undefined

  constructor(
    readonly phase: number,
    readonly expected: number,
    private readonly onHalf?: () => void,
  ) {
    this.#counts = new Uint16Array(expected)
    this.#latencies = new Float64Array(expected)
    this.#arrivals = new Float64Array(expected)
  }

  /** Records the arrival of `text` at shared-clock time `at`. */
  record(text: unknown, at: number): void {
    const stamp = typeof text === 'string' ? readStamp(text) : undefined
    if (stamp === undefined || stamp.phase !== this.phase || stamp.index >= this.expected) return void this.#other++
    const count = this.#counts[stamp.index]!
    this.#counts[stamp.index] = Math.min(count + 1, 0xffff)
    if (count > 0) return void this.#duplicates++
    this.#latencies[this.#unique] = at - stamp.sentAt
    this.#arrivals[this.#unique] = at
    if (this.#unique === 0) this.#first = at
    else this.#longestGap = Math.max(this.#longestGap, at - this.#last)
    this.#last = at
    this.#unique++
    if (this.#unique === Math.ceil(this.expected / 2)) this.onHalf?.()
    if (this.#unique === this.expected) this.#wake?.()
  }

  /**
   * Resolves once every expected message arrived and `settleMs` more passed
   * (to catch late duplicates), or once nothing new arrived for `quietMs`,
   * or after `timeoutMs`; with the tally.
   */
  async wait(timeoutMs: number, quietMs: number, settleMs: number): Promise<Tally> {
    const deadline = performance.now() + timeoutMs
    let seen = -1
    let quietSince = performance.now()
    while (this.#unique < this.expected && performance.now() < deadline) {
      const arrivals = this.#unique + this.#duplicates
      if (arrivals !== seen) [seen, quietSince] = [arrivals, performance.now()]
      else if (performance.now() - quietSince > quietMs) break
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        setTimeout(resolve, 50)
      })
    }
    if (this.#unique === this.expected && settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs))
    return this.tally()
  }

  /** How many messages first arrived before shared-clock time `at`. */
  countBefore(at: number): number {
    let count = 0
    while (count < this.#unique && this.#arrivals[count]! < at) count++
    return count
  }

  tally(): Tally {
    return {
      expected: this.expected,
      unique: this.#unique,
      duplicates: this.#duplicates,
      other: this.#other,
      first: this.#first,
      last: this.#last,
      longestGapMs: this.#longestGap,
      latencies: Array.from(this.#latencies.subarray(0, this.#unique)),
    }
  }
}
