/** What an {@link Election} needs from its host. */
export interface ElectionOptions {
  /** Leader heartbeat period; the watchdog checks at this pace. */
  readonly heartbeatMs: number
  /** Silence after which a follower takes the lock by force (plus up to one heartbeat of jitter). */
  readonly staleAfterMs: number
  /** Called with the lock held; leadership lasts until `release()`/`stop()` or a steal. Throwing gives the lock back. */
  lead(): Promise<void>
  /** The lock was taken from this leader (another tab stole it while this one was frozen). */
  demoted(): void
}

const RETRY_AFTER_FAILED_LEAD_MS = 1000

/**
 * One leader per identity across tabs, with the Web Locks API.
 *
 * Every candidate queues on the lock; the holder leads until it releases or
 * its tab goes away (the browser frees the lock). A *frozen* tab keeps its
 * locks, so followers also watch the leader's heartbeat and, when it stops,
 * take the lock with `steal`. The old leader learns it when it resumes: its
 * held request rejects with `AbortError`, and its store is fenced anyway.
 */
export class Election {
  readonly #name: string
  readonly #options: ElectionOptions
  #queued: AbortController | undefined
  #release: (() => void) | undefined
  #watchdog: ReturnType<typeof setInterval> | undefined
  #lastBeat = Date.now()
  #stopped = false
  readonly #jitter: number

  constructor(name: string, options: ElectionOptions) {
    this.#name = name
    this.#options = options
    this.#jitter = Math.random() * options.heartbeatMs
  }

  /** Joins the election. */
  start(): void {
    this.#queue(false)
    this.#watchdog = setInterval(() => this.#watch(), this.#options.heartbeatMs)
  }

  /** A leader heartbeat was heard. */
  leaderSeen(): void {
    this.#lastBeat = Date.now()
  }

  /** True while this tab holds the lock. */
  get leading(): boolean {
    return this.#release !== undefined
  }

  /** Gives up leadership now and queues again. */
  release(): void {
    const release = this.#release
    this.#release = undefined
    release?.()
    if (!this.#stopped && release !== undefined) this.#queue(false)
  }

  /** Leaves the election for good. */
  stop(): void {
    this.#stopped = true
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#queued?.abort()
    this.#queued = undefined
    const release = this.#release
    this.#release = undefined
    release?.()
  }

  #queue(steal: boolean): void {
    if (this.#stopped) return
    this.#queued?.abort()
    const controller = steal ? undefined : new AbortController()
    this.#queued = controller
    const options: LockOptions = steal ? { steal: true } : { signal: controller!.signal }
    navigator.locks.request(this.#name, options, () => this.#hold()).catch((error: unknown) => this.#lost(error, controller))
  }

  async #hold(): Promise<void> {
    this.#queued = undefined
    if (this.#stopped) return
    const held = new Promise<void>((resolve) => (this.#release = resolve))
    try {
      await this.#options.lead()
    } catch {
      this.#release = undefined
      setTimeout(() => this.#queue(false), RETRY_AFTER_FAILED_LEAD_MS)
      return
    }
    await held
  }

  #lost(error: unknown, controller: AbortController | undefined): void {
    if (controller?.signal.aborted === true) return // our own abort of a queued request
    if (!(error instanceof DOMException) || error.name !== 'AbortError') return
    // The lock was stolen from under us.
    const wasLeading = this.#release !== undefined
    this.#release = undefined
    if (wasLeading) this.#options.demoted()
    this.#lastBeat = Date.now()
    this.#queue(false)
  }

  #watch(): void {
    if (this.#stopped || this.leading) return
    if (Date.now() - this.#lastBeat < this.#options.staleAfterMs + this.#jitter) return
    this.#lastBeat = Date.now()
    this.#queue(true)
  }
}
