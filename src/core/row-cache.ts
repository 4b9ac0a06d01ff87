import type { OutboxRow } from './store.js'

/** Rows a stream keeps in memory at most, beyond those in its send window (in flight). */
export const ROW_CACHE_ROWS = 4096
/** Contents bytes a stream keeps in memory at most. */
export const ROW_CACHE_BYTES = 4 * 1024 * 1024

/**
 * The outbox rows of one stream held in memory, by seq, bounded in rows and
 * contents bytes: a row the sender just committed is sent from here instead
 * of being read back from the store. A row that does not fit is simply not
 * held; the store still has it.
 */
export class RowCache {
  readonly #rows = new Map<number, OutboxRow>()
  #bytes = 0
  /** No row below it is held. */
  #low = 0

  constructor(
    readonly maxRows: number = ROW_CACHE_ROWS,
    readonly maxBytes: number = ROW_CACHE_BYTES,
  ) {}

  get size(): number {
    return this.#rows.size
  }

  get(seq: number): OutboxRow | undefined {
    return this.#rows.get(seq)
  }

  /** Holds `row` if there is room (a row replacing one of the same seq always fits its own room); false if not held. */
  set(row: OutboxRow): boolean {
    const old = this.#rows.get(row.seq)
    const bytes = this.#bytes - (old?.contents.byteLength ?? 0) + row.contents.byteLength
    if (old === undefined && (this.#rows.size >= this.maxRows || bytes > this.maxBytes)) return false
    if (old !== undefined && bytes > this.maxBytes) {
      this.delete(row.seq)
      return false
    }
    this.#rows.set(row.seq, row)
    this.#bytes = bytes
    if (row.seq < this.#low) this.#low = row.seq
    return true
  }

  delete(seq: number): void {
    const old = this.#rows.get(seq)
    if (old === undefined) return
    this.#rows.delete(seq)
    this.#bytes -= old.contents.byteLength
  }

  /** Drops every row with seq <= `upTo`: O(rows dropped) in the usual case of acks that move a little. */
  dropUpTo(upTo: number): void {
    if (this.#rows.size === 0 || upTo < this.#low) return
    if (upTo - this.#low < this.#rows.size) {
      for (let seq = this.#low; seq <= upTo; seq++) this.delete(seq)
    } else {
      for (const seq of this.#rows.keys()) if (seq <= upTo) this.delete(seq)
    }
    this.#low = upTo + 1
  }

  clear(): void {
    this.#rows.clear()
    this.#bytes = 0
    this.#low = 0
  }
}
