import type { SendReceipt } from './api.js'
import type { EncodedContents } from './contents.js'
import { IlmError } from './errors.js'
import type { MessageId, PeerId } from './ids.js'
import type { Draft } from './state.js'
import type { OutboxRow, OutStreamState, Receipt } from './store.js'
import type { Several } from './writer.js'

/**
 * The key of the engine's `send()` without a promise, for the worker's
 * batches of sends (one promise and one reaction per send less). Not
 * exported from the package: internal to intersession's own layers.
 */
export const sendSettled = Symbol('sendSettled')

/** One `send()` waiting for its batch to commit. */
export interface QueuedSend {
  readonly to: PeerId
  readonly id: MessageId
  readonly encoded: EncodedContents
  readonly ttlMs: number | undefined
  resolve(receipt: SendReceipt): void
  reject(error: unknown): void
  /** How often its id was found taken and then no message under it (pruned meanwhile): it was queued again. */
  retries: number
  /** Set when its batch is built: its seq, and its row unless an earlier send of the batch queued the same message. */
  seq: number
  row: OutboxRow | undefined
}

/** What a batch needs from its engine. */
export interface SendBatchHooks {
  readonly maxPendingPerPeer: number
  /** The batch committed: its sends, each with its row (or none, for a repeated id). */
  committed(sends: readonly QueuedSend[]): void
  /** The store holds this send's id already: the engine looks the message up. */
  taken(send: QueuedSend): void
}

/**
 * The sends of one turn as one writer intent: one build, one `after` and one
 * stream counter per peer for the whole batch instead of one of each per
 * message. Each send still ends on its own: one refused while the batch is
 * built (`QUEUE_FULL`, `DUPLICATE_ID`, `SEQ_EXHAUSTED`) rejects alone, and one
 * whose id the store holds is set aside while the rest commit.
 */
export class SendBatch implements Several {
  readonly #sends: QueuedSend[] = []

  constructor(private readonly hooks: SendBatchHooks) {}

  get size(): number {
    return this.#sends.length
  }

  add(send: QueuedSend): void {
    this.#sends.push(send)
  }

  /** The batch's intent (see `Intent` in writer.ts); `now` stamps its rows. */
  build(draft: Draft, now: number): (receipts: readonly Receipt[]) => void {
    const sends = this.#sends
    const streams = new Map<PeerId, { readonly stream: OutStreamState; next: number }>()
    let kept = 0
    for (const send of sends) {
      const refused = this.#place(draft, streams, send, now)
      if (refused === undefined) sends[kept++] = send
      else send.reject(refused)
    }
    sends.length = kept
    for (const { stream, next } of streams.values()) draft.setOut({ ...stream, nextSeq: next })
    return () => {
      this.hooks.committed(sends)
      for (const send of sends) send.resolve({ id: send.id, seq: send.seq })
    }
  }

  /** Rejects every send still in the batch. */
  fail(error: unknown): void {
    for (const send of this.#sends) send.reject(error)
    this.#sends.length = 0
  }

  setAside(taken: ReadonlySet<MessageId>): boolean {
    const sends = this.#sends
    let kept = 0
    for (const send of sends) {
      if (taken.has(send.id)) this.hooks.taken(send)
      else sends[kept++] = send
    }
    sends.length = kept
    return kept > 0
  }

  /** Writes `send`'s row into the draft; the error it is refused with, if it is. */
  #place(draft: Draft, streams: Map<PeerId, { readonly stream: OutStreamState; next: number }>, send: QueuedSend, now: number): IlmError | undefined {
    const { to, id } = send
    const earlier = draft.queued(id)
    if (earlier !== undefined) {
      if (earlier.to !== to) return new IlmError('DUPLICATE_ID', `message id ${id} was already used for another peer`)
      // The same send twice in one batch: one row, one outcome.
      send.seq = earlier.seq
      send.row = undefined
      return undefined
    }
    let counter = streams.get(to)
    if (counter === undefined) {
      const stream = draft.outStream(to) ?? { to, nextSeq: 0, ackedUpTo: -1 }
      streams.set(to, (counter = { stream, next: stream.nextSeq }))
    }
    if (counter.next >= Number.MAX_SAFE_INTEGER) return new IlmError('SEQ_EXHAUSTED', `the stream to ${to} has used every seq`)
    if (counter.next - counter.stream.ackedUpTo - 1 >= this.hooks.maxPendingPerPeer) {
      return new IlmError('QUEUE_FULL', `${this.hooks.maxPendingPerPeer} messages already wait for ${to}`)
    }
    const { encoded, ttlMs } = send
    const row: OutboxRow =
      ttlMs === undefined
        ? { to, seq: counter.next, id, contentKind: encoded.kind, contents: encoded.bytes, createdAt: now }
        : { to, seq: counter.next, id, contentKind: encoded.kind, contents: encoded.bytes, createdAt: now, expiresAt: now + ttlMs }
    draft.write({ op: 'putOutbox', row })
    counter.next++
    send.seq = row.seq
    send.row = row
    return undefined
  }
}
