import { IlmError, isIlmError } from './errors.js'
import { Draft, type EngineState } from './state.js'
import type { PeerStore, Receipt } from './store.js'

/**
 * One state change. `build` runs when its batch is assembled, against the
 * draft of everything queued before it; it returns what to do once the batch
 * has committed. Throwing from `build` rejects this intent alone.
 */
export type Intent<T> = (draft: Draft) => (receipts: readonly Receipt[]) => T

interface Queued {
  build: Intent<unknown>
  resolve(value: unknown): void
  reject(error: unknown): void
}

const MAX_BATCH = 1024

/**
 * Group commit. Intents queue up while a transaction is in flight and the next
 * batch takes them all in one transaction; each promise settles only after
 * its own transaction committed. Batches never overlap, so counters
 * (e.g. seqs) are allocated against committed state and a failed batch
 * leaves no gap: its draft is discarded whole.
 */
export class Writer {
  readonly #queue: Queued[] = []
  #running = false
  #closed: IlmError | undefined
  #idle: Promise<void> = Promise.resolve()
  #settleIdle: () => void = () => {}

  constructor(
    private readonly store: PeerStore,
    private readonly state: EngineState,
    private readonly onFailure: (error: IlmError) => void,
  ) {}

  submit<T>(build: Intent<T>): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed)
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ build, resolve: resolve as (value: unknown) => void, reject })
      if (!this.#running) this.#start()
    })
  }

  /** Commits what is already queued, then refuses new intents with `reason`. */
  async close(reason: IlmError): Promise<void> {
    this.#closed ??= reason
    await this.#idle
  }

  #start(): void {
    this.#running = true
    this.#idle = new Promise((resolve) => (this.#settleIdle = resolve))
    // A microtask first, so that a synchronous burst of submits shares a batch.
    queueMicrotask(() => void this.#drain())
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) await this.#commitBatch(this.#queue.splice(0, MAX_BATCH))
    this.#running = false
    this.#settleIdle()
  }

  async #commitBatch(batch: Queued[]): Promise<void> {
    const draft = new Draft(this.state)
    const built: Array<{ item: Queued; after: (receipts: readonly Receipt[]) => unknown }> = []
    for (const item of batch) {
      const mark = draft.mark()
      try {
        built.push({ item, after: item.build(draft) })
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
}
