import type { Clock } from '../core/clock.js'

/** The rate a {@link RateLimiter} allows. */
export interface RateLimit {
  /** Messages per second; the bucket holds twice as many (the burst). */
  readonly framesPerSecond: number
  /** How long the sender may stay over the rate before {@link RateLimiter.take} says `close`, in ms. */
  readonly rateLimitCloseMs: number
}

/** What to do with one message: pass it, drop it, or drop it and close the connection. */
export type RateVerdict = 'pass' | 'drop' | 'close'

/** Drops that come less than this far apart are one spell over the rate. */
const SPELL_GAP_MS = 1000

/**
 * A token bucket for one connection's messages, on an injected clock: it
 * starts full (burst 2x the rate) and refills continuously at the rate.
 * A message takes one token or is dropped; a connection that keeps being
 * dropped for `rateLimitCloseMs` is to be closed.
 */
export class RateLimiter {
  readonly #clock: Clock
  readonly #limit: RateLimit
  #tokens: number
  #refilledAt: number
  /** Start of the current spell over the rate (drops less than a second apart); undefined before the first drop. */
  #overSince: number | undefined = undefined
  #lastDropAt = 0

  constructor(clock: Clock, limit: RateLimit) {
    this.#clock = clock
    this.#limit = limit
    this.#tokens = limit.framesPerSecond * 2
    this.#refilledAt = clock.now()
  }

  /** Takes a token for one message. */
  take(): RateVerdict {
    const now = this.#clock.now()
    const { framesPerSecond } = this.#limit
    this.#tokens = Math.min(framesPerSecond * 2, this.#tokens + ((now - this.#refilledAt) * framesPerSecond) / 1000)
    this.#refilledAt = now
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return 'pass'
    }
    if (this.#overSince === undefined || now - this.#lastDropAt > SPELL_GAP_MS) this.#overSince = now
    this.#lastDropAt = now
    return now - this.#overSince >= this.#limit.rateLimitCloseMs ? 'close' : 'drop'
  }

  /** Takes `tokens` more for a message that costs more than one (it may leave the bucket in debt). */
  charge(tokens: number): void {
    this.#tokens -= tokens
  }
}
