import { IlmError, isIlmError } from './errors.js'
import { Draft, type EngineState } from './state.js'
import type { MessageId } from './ids.js'
import type { PeerStore, Receipt } from './store.js'

/**
 * One state change. `build` runs when its batch is assembled, against the
 * draft of everything queued before it; it returns what to do once the batch
 * has committed. Throwing from `build` rejects this intent alone.
 */
export type Intent<T> = (draft: Draft) => (receipts: readonly Receipt[]) => T

interface Built {
  readonly item: Queued
  readonly after: (receipts: readonly Receipt[]) => unknown
  /** The message ids this intent queues. */
  readonly ids: readonly MessageId[]
}

interface Queued {
  build: Intent<unknown>
  resolve(value: unknown): void
  reject(error: unknown): void
  several?: Several
}

/** An intent that queues several messages (the engine's sends of one turn), as the writer sees it. */
export interface Several {
  /** How many messages it queues: it counts for that many intents toward a batch's {@link MAX_BATCH}. */
  readonly size: number
  /**
   * The batch was refused for the `taken` ids: drop the parts that queue
   * them (settling those itself) and say whether anything is left to build
   * again into the next batch.
   */
  setAside(taken: ReadonlySet<MessageId>): boolean
}

/** The most intents one batch (one transaction) takes; the page's SEND_BATCH (src/client/messenger.ts) matches it. */
export const MAX_BATCH = 1024
const ignore = (): void => {}

/**
 * Group commit. Intents queue up while a transaction is in flight and the next
 * batch takes them all in one transaction; each promise settles only after
 * its own transaction committed. Batches never overlap, so counters
 * (e.g. seqs) are allocated against committed state and a failed batch
 * leaves no gap: its draft is discarded whole.
 */
export class Writer {
  readonly #queue: Queued[] = []
  /** Intents that ride along with the next batch instead of starting one, by key. */
  readonly #deferred = new Map<string, Queued>()
  #flushing = false
  #running = false
  #closed: IlmError | undefined
  #idle: Promise<void> = Promise.resolve()
  #settleIdle: () => void = () => {}

  constructor(
    private readonly store: PeerStore,
    private readonly state: EngineState,
    private readonly onFailure: (error: IlmError) => void,
    /** A batch took the deferred intents (none waits any more): what waited to commit them can stop waiting. */
    private readonly onDeferredTaken: () => void = ignore,
  ) {}

  /**
   * Queues `build` for the next batch. A batch refused for a message id this
   * intent queues rejects it with the store's `DUPLICATE_ID`, unless it is `several`
   * messages' intent: that one is told which of its ids are taken.
   */
  submit<T>(build: Intent<T>, several?: Several): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed)
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(several === undefined ? { build, resolve, reject } : { build, resolve, reject, several })
      if (!this.#running) this.#start()
    })
  }

  /**
   * Adds `build` to the next batch without starting one: it commits with the
   * next submitted intent, or when {@link flush} is called. Only for writes
   * whose loss in a crash is harmless or bounded. One per key: while one
   * waits, later deferrals under its key are dropped, so `build` reads what
   * to write when it runs. Failures go to `onFailure` only.
   */
  defer(key: string, build: Intent<unknown>): void {
    if (this.#closed || this.#deferred.has(key)) return
    this.#deferred.set(key, { build, resolve: ignore, reject: ignore })
  }

  /** Commits the deferred intents now (with whatever else is queued). */
  flush(): void {
    if (this.#deferred.size === 0) return
    this.#flushing = true
    if (!this.#running) this.#start()
  }

  /** Commits what is already queued or deferred, then refuses new intents with `reason`. */
  async close(reason: IlmError): Promise<void> {
    this.#closed ??= reason
    this.flush()
    await this.#idle
  }

  #start(): void {
    this.#running = true
    this.#idle = new Promise((resolve) => (this.#settleIdle = resolve))
    // A microtask first, so that a synchronous burst of submits shares a batch.
    queueMicrotask(() => void this.#drain())
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 || (this.#flushing && this.#deferred.size > 0)) {
      // Deferred intents first: an ack committed ahead of sends gives them room under maxPendingPerPeer.
      let count = 0
      let room = MAX_BATCH
      for (const item of this.#queue) {
        if (room <= 0) break
        room -= item.several?.size ?? 1
        count++
      }
      const batch = [...this.#deferred.values(), ...this.#queue.splice(0, count)]
      if (this.#deferred.size > 0) {
        this.#deferred.clear()
        this.onDeferredTaken()
      }
      this.#flushing = false
      await this.#commitBatch(batch)
    }
    this.#running = false
    this.#settleIdle()
  }

  async #commitBatch(batch: Queued[]): Promise<void> {
    const draft = new Draft(this.state)
    const built: Built[] = []
    for (const item of batch) {
      const mark = draft.mark()
      const queuedBefore = draft.queuedCount
      try {
        const after = item.build(draft)
        built.push({ item, after, ids: draft.queuedCount === queuedBefore ? [] : draft.queuedSince(queuedBefore) })
      } catch (error) {
        draft.rollback(mark)
        item.reject(error)
      }
    }
    const ops = draft.ops()
    let receipts: readonly Receipt[] = []
    try {
      if (ops.length > 0) receipts = await this.store.commit(ops)
    } catch (cause) {
      const error = isIlmError(cause) ? cause : new IlmError('STORE_FAILED', 'the store failed to commit', { cause })
      if (isIlmError(error, 'DUPLICATE_ID') && (await this.#setAsideTaken(built, error))) return
      for (const { item } of built) item.reject(error)
      this.onFailure(error)
      return
    }
    draft.applyTo(this.state)
    for (const { item, after } of built) {
      try {
        item.resolve(after(receipts))
      } catch (error) {
        item.reject(error)
      }
    }
  }

  /**
   * The store refused the batch because a message id in it is taken. An
   * intent queuing a taken id is rejected with the store's `refusal` (or, for
   * {@link Several}, drops what queues it); the others go back to the head
   * of the queue, to be built again into the next batch. False if no taken id
   * was found (the refusal is then a plain failure).
   */
  async #setAsideTaken(built: readonly Built[], refusal: IlmError): Promise<boolean> {
    const taken = new Set<MessageId>()
    try {
      await Promise.all(
        built.flatMap(({ ids }) =>
          ids.map(async (id) => {
            if ((await this.store.findMessage(id)) !== undefined) taken.add(id)
          }),
        ),
      )
    } catch {
      return false
    }
    if (taken.size === 0) return false
    const retry: Queued[] = []
    for (const { item, ids } of built) {
      if (!ids.some((id) => taken.has(id))) retry.push(item)
      else if (item.several === undefined) item.reject(refusal)
      else if (item.several.setAside(taken)) retry.push(item)
      else item.resolve(undefined)
    }
    this.#queue.unshift(...retry)
    return true
  }
}
