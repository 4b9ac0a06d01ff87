import type { MessageId, PeerId } from './ids.js'
import type { InStreamState, OutboxRow, OutStreamState, StoreMeta, StoreOp } from './store.js'

/** The committed stream counters, mirrored in memory: O(peers). */
export class EngineState {
  readonly out = new Map<PeerId, OutStreamState>()
  readonly in = new Map<PeerId, InStreamState>()

  constructor(readonly meta: StoreMeta) {}
}

const ABSENT = Symbol('absent')
type Undo = () => void

/** Where a draft stood before an intent was built: {@link Draft.rollback} goes back to it. */
export interface DraftMark {
  readonly journal: number
  readonly rows: number
  readonly queued: number
}

/**
 * The state as it will be once the batch being built commits. Intents read
 * and write through it; row ops are kept in order, stream counters are
 * coalesced to one op per stream. `mark`/`rollback` undo a failed intent.
 */
export class Draft {
  readonly #out = new Map<PeerId, OutStreamState>()
  readonly #in = new Map<PeerId, InStreamState>()
  readonly #rows: StoreOp[] = []
  /** Undoes stream changes; rows and queued ids are undone by truncation (no closure per row). */
  readonly #journal: Undo[] = []
  /** The outbox rows this batch queues, by message id, and their ids in order. */
  readonly #queued = new Map<MessageId, OutboxRow>()
  readonly #queuedOrder: MessageId[] = []

  constructor(private readonly base: EngineState) {}

  get meta(): StoreMeta {
    return this.base.meta
  }

  outStream(to: PeerId): OutStreamState | undefined {
    return this.#out.get(to) ?? this.base.out.get(to)
  }

  inStream(from: PeerId): InStreamState | undefined {
    return this.#in.get(from) ?? this.base.in.get(from)
  }

  setOut(stream: OutStreamState): void {
    this.#journal.push(restore(this.#out, stream.to))
    this.#out.set(stream.to, stream)
  }

  setIn(stream: InStreamState): void {
    this.#journal.push(restore(this.#in, stream.from))
    this.#in.set(stream.from, stream)
  }

  write(op: StoreOp): void {
    this.#rows.push(op)
    if (op.op !== 'putOutbox') return
    this.#queued.set(op.row.id, op.row)
    this.#queuedOrder.push(op.row.id)
  }

  /** The row an earlier write of this batch queued message `id` with, if one did. */
  queued(id: MessageId): OutboxRow | undefined {
    return this.#queued.get(id)
  }

  /** How many message ids the intents built so far queue. */
  get queuedCount(): number {
    return this.#queuedOrder.length
  }

  /** The message ids queued from position `from` on, in order. */
  queuedSince(from: number): MessageId[] {
    return this.#queuedOrder.slice(from)
  }

  mark(): DraftMark {
    return { journal: this.#journal.length, rows: this.#rows.length, queued: this.#queuedOrder.length }
  }

  rollback(mark: DraftMark): void {
    while (this.#journal.length > mark.journal) this.#journal.pop()?.()
    this.#rows.length = mark.rows
    for (const id of this.#queuedOrder.splice(mark.queued)) this.#queued.delete(id)
  }

  /**
   * Every op of the batch: row ops in order, then one counter op per touched
   * stream. Acks are cumulative and only grow within a batch, so only the last
   * `ack` of each stream is kept, where it stands: a burst of acks costs the
   * store one range read, not one per ack. The rows an earlier ack settled are
   * still pending at that point, and no op between them writes such a row
   * (an `expire` is written only above the acked seq), so nothing else changes.
   */
  ops(): StoreOp[] {
    const lastAck = new Map<PeerId, StoreOp>()
    const queuedTop = new Map<PeerId, number>()
    for (const op of this.#rows) {
      if (op.op === 'ack') lastAck.set(op.to, op)
      else if (op.op === 'putOutbox') queuedTop.set(op.row.to, Math.max(op.row.seq, queuedTop.get(op.row.to) ?? -1))
    }
    const ops = this.#rows.filter((op) => op.op !== 'ack' || lastAck.get(op.to) === op)
    for (const stream of this.#out.values()) if (!this.#outImplied(stream, queuedTop.get(stream.to))) ops.push({ op: 'outStream', stream })
    for (const stream of this.#in.values()) ops.push({ op: 'inStream', stream })
    return ops
  }

  /**
   * Whether the store's snapshot gives `stream` without its op, from the
   * highest row this batch queues (see `OutStreamState.nextSeq`): only
   * `nextSeq` changed, to one above it. The stored record then lags only in
   * `nextSeq`, as `base` may already: any other change writes it whole. Saves
   * a put per send commit.
   */
  #outImplied(stream: OutStreamState, top: number | undefined): boolean {
    const base = this.base.out.get(stream.to)
    return base !== undefined && base.ackedUpTo === stream.ackedUpTo && base.storedUpTo === stream.storedUpTo && top === stream.nextSeq - 1
  }

  /** Makes the draft the committed state; call only after its ops committed. */
  applyTo(state: EngineState): void {
    for (const [to, stream] of this.#out) state.out.set(to, stream)
    for (const [from, stream] of this.#in) state.in.set(from, stream)
  }
}

function restore<K, V>(map: Map<K, V>, key: K): Undo {
  const previous: V | typeof ABSENT = map.has(key) ? (map.get(key) as V) : ABSENT
  return () => {
    if (previous === ABSENT) map.delete(key)
    else map.set(key, previous)
  }
}
