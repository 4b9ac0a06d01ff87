import { isIlmError } from '../core/errors.js'

/** One call waiting for its answer, as a target receives it. */
export interface Call<M extends string = string> {
  /** Unique per call among this {@link PendingCalls}' calls; the same on every attempt. */
  readonly id: string
  readonly method: M
  readonly args: readonly unknown[]
}

/** How an attempt ended. */
export type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown }

/** Where a call's outcome goes: its own promise, or its slot in a {@link PendingCalls.callMany} batch. */
interface Entry<M extends string> extends Call<M> {
  readonly resolve?: (value: unknown) => void
  readonly reject?: (error: unknown) => void
  readonly batch?: Batch
  readonly index: number
}

/** The calls of one {@link PendingCalls.callMany}: one promise for all of them. */
interface Batch {
  readonly outcomes: Outcome[]
  left: number
  resolve(outcomes: Outcome[]): void
}

// An engine that closed or lost its store under the call: it did not serve it.
const NOT_SERVED = new Set(['CLOSED', 'STORE_FENCED'])

/**
 * Calls to an engine that lives elsewhere and may move: the page's worker is
 * replaced after a freeze, the leader tab changes. Both hops (page to worker,
 * follower tab to leader) and the leader's own engine go through one of these.
 *
 * The retry rule, written once: a call stays pending until a target answers
 * it, and every time the target changes, every pending call goes to the new
 * target unchanged. That is safe for each method: reads repeat, and a `send`
 * carries its message id, which the store refuses to queue twice, so a send
 * that may have landed is found, never queued again.
 *
 * An answer settles the call unless it is an error from a target that is no
 * longer current, or an error saying the engine did not serve it (`CLOSED`,
 * `STORE_FENCED`): the call then waits for the next target.
 */
export class PendingCalls<M extends string, T> {
  readonly #calls = new Map<string, Entry<M>>()
  readonly #dispatch: (target: T, call: Call<M>) => void
  readonly #ended: ((call: Call<M>, ok: boolean) => void) | undefined
  #target: T | undefined
  #closed: Error | undefined
  // A counter, not a random id: answers come back to this instance only (across tabs, addressed
  // by the calling tab's own id), and a random id per call cost a getRandomValues per send.
  #nextId = 0

  /**
   * `dispatch` sends one attempt to a target; the answer comes back through
   * {@link settle}. `ended`, if given, hears of each call once it settled,
   * right after its promise did (so its continuations run first).
   */
  constructor(dispatch: (target: T, call: Call<M>) => void, ended?: (call: Call<M>, ok: boolean) => void) {
    this.#dispatch = dispatch
    this.#ended = ended
  }

  /** Where calls go now; `undefined` while there is nowhere to send them. */
  get target(): T | undefined {
    return this.#target
  }

  /** Makes a call; it goes to the current target now, or to the next one. */
  call(method: M, args: readonly unknown[]): Promise<unknown> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    return new Promise((resolve, reject) => this.#add({ id: String(this.#nextId++), method, args, resolve, reject, index: 0 }))
  }

  /**
   * Makes several calls of `method` at once, each as {@link call} makes one
   * (its own id, its own retries and outcome), but with one promise for them
   * all: it resolves once every one settled, with their outcomes in order.
   */
  callMany(method: M, calls: readonly (readonly unknown[])[]): Promise<Outcome[]> {
    const closed = this.#closed
    if (closed !== undefined) return Promise.resolve(calls.map(() => ({ ok: false, error: closed })))
    if (calls.length === 0) return Promise.resolve([])
    return new Promise((resolve) => {
      const batch: Batch = { outcomes: new Array<Outcome>(calls.length), left: calls.length, resolve }
      calls.forEach((args, index) => this.#add({ id: String(this.#nextId++), method, args, batch, index }))
    })
  }

  #add(entry: Entry<M>): void {
    this.#calls.set(entry.id, entry)
    if (this.#target !== undefined) this.#dispatch(this.#target, entry)
  }

  /** A new target (or none): every pending call is sent to it. */
  retarget(target: T | undefined): void {
    this.#target = target
    if (target === undefined) return
    for (const entry of [...this.#calls.values()]) if (this.#target === target) this.#dispatch(target, entry)
  }

  /** An answer from `from` to call `id`. */
  settle(from: T, id: string, outcome: Outcome): void {
    const entry = this.#calls.get(id)
    if (entry === undefined) return
    if (!outcome.ok && (from !== this.#target || (isIlmError(outcome.error) && NOT_SERVED.has(outcome.error.code)))) return
    this.#calls.delete(id)
    this.#end(entry, outcome)
  }

  /** Rejects every pending call and every later one with `error`. */
  close(error: Error): void {
    this.#closed = error
    this.#target = undefined
    const outcome: Outcome = { ok: false, error }
    for (const entry of this.#calls.values()) this.#end(entry, outcome)
    this.#calls.clear()
  }

  #end(entry: Entry<M>, outcome: Outcome): void {
    const batch = entry.batch
    if (batch !== undefined) {
      batch.outcomes[entry.index] = outcome
      if (--batch.left === 0) batch.resolve(batch.outcomes)
    } else if (outcome.ok) entry.resolve?.(outcome.value)
    else entry.reject?.(outcome.error)
    this.#ended?.(entry, outcome.ok)
  }
}
