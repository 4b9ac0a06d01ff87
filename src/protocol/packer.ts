import { PACK_HEADER_BYTES, PACK_ITEM_BYTES, pack } from './relay.js'

/**
 * Gathers the envelopes sent within one turn (until a microtask runs) and
 * writes them as one message: the envelope alone, or a pack of several,
 * never over `maxBytes` (an envelope that would not fit starts the next one).
 * Used by both ends of the relay protocol.
 */
export class Packer {
  readonly #maxBytes: number
  readonly #write: (message: Uint8Array, envelopes: number) => void
  #items: Uint8Array[] = []
  #heads: (Uint8Array | undefined)[] = []
  #bytes = 0

  /** `write` gets each message and how many envelopes it carries. */
  constructor(maxBytes: number, write: (message: Uint8Array, envelopes: number) => void) {
    this.#maxBytes = maxBytes
    this.#write = write
  }

  /** Bytes taken and not written yet, as a pack carries them. */
  get pendingBytes(): number {
    return this.#bytes
  }

  /**
   * Takes an envelope, written with the others of this turn: `envelope` whole, or with `head` an
   * `envelopeHead` and `envelope` its frame (joined as the pack is written: no envelope is built apart).
   */
  add(envelope: Uint8Array, head?: Uint8Array): void {
    const bytes = PACK_ITEM_BYTES + envelope.byteLength + (head?.byteLength ?? 0)
    if (this.#bytes + bytes > this.#maxBytes - PACK_HEADER_BYTES) this.flush()
    if (this.#items.length === 0) queueMicrotask(() => this.flush())
    this.#items.push(envelope)
    this.#heads.push(head)
    this.#bytes += bytes
  }

  /** Writes what was taken now (what comes after it must not overtake it). */
  flush(): void {
    const items = this.#items
    const heads = this.#heads
    if (items.length === 0) return
    this.clear()
    this.#write(pack(items, heads), items.length)
  }

  /** Forgets what was taken, unwritten: the connection is gone. */
  clear(): void {
    this.#items = []
    this.#heads = []
    this.#bytes = 0
  }
}
