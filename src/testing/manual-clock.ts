import type { Clock, TimerHandle } from '../core/clock.js'

/** One scheduled callback; also serves as its opaque handle. */
interface ManualTimer {
  readonly clock: ManualClock
  readonly due: number
  /** Tie-breaker: timers due at the same time fire in the order they were set. */
  readonly order: number
  /** Cleared when the timer fires or is cancelled. */
  fn: (() => void) | undefined
}

/** Above this many callbacks in one `advance()`, a timer loop is assumed. */
const ADVANCE_LOOP_LIMIT = 1_000_000

/**
 * A {@link Clock} whose time only moves when a test says so, for
 * deterministic tests of timeouts, retransmissions and expiry.
 *
 * Timers fire in due-time order, and in the order they were set when due at
 * the same time. A callback sees `now()` equal to its own due time. Timer
 * callbacks run synchronously inside `advance` / `next` / `runAll`; a callback
 * that throws stops that call (the error propagates, time stays at that
 * timer's due time, later timers stay pending). Promise continuations started
 * by a callback run only after the call returns.
 *
 * ```ts
 * const clock = new ManualClock()
 * clock.setTimeout(() => console.log('fired'), 100)
 * clock.advance(99) // nothing
 * clock.advance(1) // fired
 * ```
 */
export class ManualClock implements Clock {
  /** The default start time, 2025-01-01T00:00:00Z: fixed, and not 0 so "unset" bugs show. */
  static readonly DEFAULT_START = Date.UTC(2025, 0, 1)

  #now: number
  #order = 0
  #live = 0
  #running = false
  /** A binary min-heap on (due, order); cancelled timers stay until popped or compacted. */
  #heap: ManualTimer[] = []

  /** @param start the initial `now()`: epoch milliseconds or a Date (default {@link ManualClock.DEFAULT_START}). */
  constructor(start: number | Date = ManualClock.DEFAULT_START) {
    const ms = start instanceof Date ? start.getTime() : start
    if (!Number.isFinite(ms)) throw new RangeError(`ManualClock: invalid start time ${String(start)}`)
    this.#now = ms
  }

  /** The current virtual time in epoch milliseconds. */
  now(): number {
    return this.#now
  }

  /** Schedules `fn` at `now() + ms`; a negative or non-finite `ms` counts as 0 (as in browsers). */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (typeof fn !== 'function') throw new TypeError('ManualClock.setTimeout: fn must be a function')
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
    const timer: ManualTimer = { clock: this, due: this.#now + delay, order: this.#order++, fn }
    this.#push(timer)
    this.#live++
    return timer
  }

  /** Cancels a timer; unknown, fired or already cancelled handles are ignored. */
  clearTimeout(handle: TimerHandle): void {
    if (typeof handle !== 'object' || handle === null) return
    const timer = handle as Partial<ManualTimer>
    if (timer.clock !== this || timer.fn === undefined) return
    timer.fn = undefined
    this.#live--
    // Lazy deletion; rebuild when mostly garbage so set/clear churn stays bounded.
    if (this.#heap.length > 64 && this.#live < this.#heap.length / 2) this.#compact()
  }

  /** How many timers are scheduled and not yet fired or cancelled. */
  get pending(): number {
    return this.#live
  }

  /**
   * Moves time forward by `ms`, firing every timer due up to the new time,
   * including timers set by callbacks during this call that fall in the window.
   * Returns how many callbacks ran.
   */
  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`ManualClock.advance: invalid duration ${ms}`)
    const target = this.#now + ms
    const fired = this.#run((timer) => timer.due <= target, ADVANCE_LOOP_LIMIT)
    this.#now = target
    return fired
  }

  /**
   * Jumps to the next timer's due time and fires that one timer (not others
   * due at the same time). Returns false, leaving time unchanged, when none is pending.
   */
  next(): boolean {
    return this.#run(() => true, 1, false) === 1
  }

  /**
   * Fires timers, jumping time forward, until none is pending (including timers
   * set by callbacks). Returns how many callbacks ran. Throws when more than
   * `limit` would run: a callback that always re-arms a timer never settles,
   * use `advance` for those.
   */
  runAll(limit = 1000): number {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`ManualClock.runAll: invalid limit ${limit}`)
    return this.#run(() => true, limit)
  }

  #run(take: (timer: ManualTimer) => boolean, limit: number, throwOnLimit = true): number {
    if (this.#running) throw new Error('ManualClock: advance/next/runAll called from inside a timer callback')
    this.#running = true
    let fired = 0
    try {
      for (;;) {
        const timer = this.#peekLive()
        if (timer === undefined || !take(timer)) break
        if (fired >= limit) {
          if (!throwOnLimit) break
          throw new Error(`ManualClock: more than ${limit} timers fired; assuming a timer loop`)
        }
        this.#pop()
        const fn = timer.fn as () => void
        timer.fn = undefined
        this.#live--
        if (timer.due > this.#now) this.#now = timer.due
        fired++
        fn()
      }
    } finally {
      this.#running = false
    }
    return fired
  }

  #peekLive(): ManualTimer | undefined {
    for (;;) {
      const top = this.#heap[0]
      if (top === undefined || top.fn !== undefined) return top
      this.#pop()
    }
  }

  #compact(): void {
    const live = this.#heap.filter((t) => t.fn !== undefined)
    this.#heap = []
    for (const timer of live) this.#push(timer)
  }

  #push(timer: ManualTimer): void {
    const heap = this.#heap
    heap.push(timer)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = heap[parent] as ManualTimer
      if (!before(timer, p)) break
      heap[i] = p
      i = parent
    }
    heap[i] = timer
  }

  #pop(): void {
    const heap = this.#heap
    const last = heap.pop()
    if (last === undefined || heap.length === 0) return
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= heap.length) break
      const r = l + 1
      let child = l
      if (r < heap.length && before(heap[r] as ManualTimer, heap[l] as ManualTimer)) child = r
      const c = heap[child] as ManualTimer
      if (!before(c, last)) break
      heap[i] = c
      i = child
    }
    heap[i] = last
  }
}

function before(a: ManualTimer, b: ManualTimer): boolean {
  return a.due < b.due || (a.due === b.due && a.order < b.order)
}
