import TinyQueue from 'tinyqueue'

/** An entry waiting to expire, with its destination; `storedAt` decides when. */
export interface RetentionSlot<T extends { readonly storedAt: number }> {
  readonly to: string
  readonly entry: T
}

/** Stale slots a queue may keep beyond as many as it has live ones before it is compacted. */
const COMPACT_SLACK = 1_024

/** Slots as two parallel arrays (no object per slot: a mailbox may hold millions). */
interface Slots<T> {
  tos: string[]
  entries: (T | undefined)[]
}

/**
 * The entries of a mailbox that expire, by `storedAt`, so that a retention
 * sweep costs the entries it expires, not the entries stored. A relay stamps
 * `storedAt` from its clock as it stores, so entries mostly come in that
 * order: those go in a queue (O(1)); the rest (a clock stepped back, entries
 * loaded out of order) in a heap (O(log n), `tinyqueue`).
 *
 * Slots are not removed when their entry is (acked, removed, made a skip):
 * `live` tells, when a slot is reached, whether it still stands for its entry.
 * The owner counts live slots ({@link added}, {@link dropped}); once stale
 * slots outnumber them by {@link COMPACT_SLACK}, they are filtered out, so
 * memory stays within twice the live entries (amortized O(1) per drop).
 */
export class RetentionQueue<T extends { readonly storedAt: number }> {
  /** In ascending `storedAt` from `#head` on; taken slots are cleared. */
  #queue: Slots<T> = { tos: [], entries: [] }
  #head = 0
  /** The slots that came earlier than the queue's last, by `storedAt` (rare: an object each is fine). */
  #late = lateQueue<T>()
  #live = 0

  /** @param live Whether a slot still stands for an entry that expires (the owner's index holds it, unchanged). */
  constructor(private readonly live: (to: string, entry: T) => boolean) {}

  /** Slots held, stale ones included. */
  get slots(): number {
    return this.#queue.entries.length - this.#head + this.#late.length
  }

  /** Adds an entry that expires. */
  added(to: string, entry: T): void {
    this.#live++
    const { tos, entries } = this.#queue
    const last = entries.at(-1)
    if (this.#head === entries.length || last === undefined || last.storedAt <= entry.storedAt) {
      tos.push(to)
      entries.push(entry)
    } else this.#late.push({ to, entry })
  }

  /** An entry added before no longer expires (removed, or made a skip). */
  dropped(): void {
    this.#live--
    if (this.slots > 2 * this.#live + COMPACT_SLACK) this.#compact()
  }

  /**
   * Takes every live slot stored before `before`: the queue's, then the heap's, each in `storedAt` order. The caller
   * expires each entry taken at once (its slot is gone) and calls {@link dropped} for it.
   */
  take(before: number): RetentionSlot<T>[] {
    const out: RetentionSlot<T>[] = []
    const { tos, entries } = this.#queue
    for (let entry = entries[this.#head]; entry !== undefined && entry.storedAt < before; entry = entries[this.#head]) {
      const to = tos[this.#head] as string
      entries[this.#head++] = undefined
      if (this.live(to, entry)) out.push({ to, entry })
    }
    if (this.#head > COMPACT_SLACK && this.#head * 2 > entries.length) this.#keepQueue(() => true)
    const late = this.#late
    for (let slot = late.peek(); slot !== undefined && slot.entry.storedAt < before; slot = late.peek()) {
      late.pop()
      if (this.live(slot.to, slot.entry)) out.push(slot)
    }
    return out
  }

  #compact(): void {
    this.#keepQueue((to, entry) => this.live(to, entry))
    this.#late = lateQueue(this.#late.data.filter(({ to, entry }) => this.live(to, entry)))
  }

  /** Keeps the queue's slots from its head on that `keep` keeps, in order, from index 0. */
  #keepQueue(keep: (to: string, entry: T) => boolean): void {
    const { tos, entries } = this.#queue
    const kept: Slots<T> = { tos: [], entries: [] }
    for (let i = this.#head; i < entries.length; i++) {
      const entry = entries[i]
      const to = tos[i] as string
      if (entry !== undefined && keep(to, entry)) {
        kept.tos.push(to)
        kept.entries.push(entry)
      }
    }
    this.#queue = kept
    this.#head = 0
  }
}

function lateQueue<T extends { readonly storedAt: number }>(slots: RetentionSlot<T>[] = []): TinyQueue<RetentionSlot<T>> {
  return new TinyQueue(slots, (a, b) => a.entry.storedAt - b.entry.storedAt)
}
