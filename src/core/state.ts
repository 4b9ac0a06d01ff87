import type { MessageId, PeerId } from './ids.js'
import type { InStreamState, OutStreamState, StoreMeta, StoreOp } from './store.js'

/** The committed stream counters, mirrored in memory: O(peers). */
export class EngineState {
  readonly out = new Map<PeerId, OutStreamState>()
  readonly in = new Map<PeerId, InStreamState>()

  constructor(readonly meta: StoreMeta) {}
}

const ABSENT = Symbol('absent')
type Undo = () => void

/**
 * The state as it will be once the batch being built commits. Intents read
 * and write through it; row ops are kept in order, stream counters are
 * coalesced to one op per stream. `mark`/`rollback` undo a failed intent.
 */
export class Draft {
  readonly #out = new Map<PeerId, OutStreamState>()
  readonly #in = new Map<PeerId, InStreamState>()
  readonly #rows: StoreOp[] = []
  readonly #journal: Undo[] = []
  /** Message ids this batch queues, with where each goes, and in order. */
  readonly #queued = new Map<MessageId, { readonly to: PeerId; readonly seq: number }>()
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
    this.#journal.push(() => void this.#rows.pop())
    if (op.op !== 'putOutbox') return
    const { id, to, seq } = op.row
    this.#queued.set(id, { to, seq })
    this.#queuedOrder.push(id)
    this.#journal.push(() => {
      this.#queued.delete(id)
      this.#queuedOrder.pop()
    })
  }

  /** Where an earlier intent of this batch queued message `id`, if one did. */
  queued(id: MessageId): { readonly to: PeerId; readonly seq: number } | undefined {
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

  mark(): number {
    return this.#journal.length
  }

  rollback(mark: number): void {
    while (this.#journal.length > mark) this.#journal.pop()?.()
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
    for (const op of this.#rows) if (op.op === 'ack') lastAck.set(op.to, op)
    const ops = this.#rows.filter((op) => op.op !== 'ack' || lastAck.get(op.to) === op)
    for (const stream of this.#out.values()) ops.push({ op: 'outStream', stream })
    for (const stream of this.#in.values()) ops.push({ op: 'inStream', stream })
    return ops
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
