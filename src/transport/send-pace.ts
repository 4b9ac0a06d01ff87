/** The share of the relay's announced rate a client sends at: what it sends in a second never reaches the limit. */
const RATE_SHARE = 0.98
/** The client's bucket, in seconds of the rate: three quarters of the relay's burst (two seconds). */
const BURST_SECONDS = 1.5
/** Once over its budget, a client waits until this many seconds of it are back: waits are few, and longer than any timer's floor. */
const SLACK_SECONDS = 0.02

/**
 * A client's side of the relay's rate limit (`welcome`'s `framesPerSecond`):
 * a token bucket of three quarters of the relay's (which holds a burst of
 * twice the rate), refilled a little slower than the relay refills its own.
 * Every message the client sends takes a token, and the sender waits while
 * none is left, so the relay never has a frame to drop for the rate, which
 * would cost a retransmission and, kept up for `rateLimitCloseMs`, the
 * connection.
 *
 * The quarter the relay holds beyond this bucket (half a second of the rate)
 * covers what is sent without waiting: control messages, acks, and one frame
 * per sender already under way.
 */
export class SendPace {
  readonly #perMs: number
  readonly #capacity: number
  readonly #slack: number
  #tokens: number
  #at: number

  constructor(framesPerSecond: number, now: number) {
    this.#perMs = (framesPerSecond * RATE_SHARE) / 1000
    this.#capacity = framesPerSecond * BURST_SECONDS
    this.#slack = Math.max(1, framesPerSecond * SLACK_SECONDS)
    this.#tokens = this.#capacity
    this.#at = now
  }

  /** One message sent at `now`; returns {@link wait}'s answer after it. */
  take(now: number): number {
    this.#refill(now)
    this.#tokens -= 1
    return this.#waitMs()
  }

  /** How long to wait at `now` before sending more, in ms: 0 while a token is left, else until `slack` tokens are back. */
  wait(now: number): number {
    this.#refill(now)
    return this.#waitMs()
  }

  #waitMs(): number {
    return this.#tokens >= 1 ? 0 : Math.ceil((this.#slack - this.#tokens) / this.#perMs)
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#capacity, this.#tokens + Math.max(0, now - this.#at) * this.#perMs)
    this.#at = Math.max(this.#at, now)
  }
}
