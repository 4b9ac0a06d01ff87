import type { MailboxEntry, MailboxLimits, MailboxRecord, PutResult } from './mailbox.js'
import { RetentionQueue } from './retention-queue.js'

/** One destination's queue: entries in key order, with the totals the limits need. */
interface Box {
  /** The destination, as the box was made for it: one string for every retention slot of the box. */
  readonly to: string
  readonly entries: Map<string, MailboxEntry>
  /** Every key added, ascending, removed ones too until the next compaction: where a read after a key starts. */
  order: string[]
  /** `order` below this holds only removed keys. */
  head: number
  /** Removed keys still in `order`. */
  removed: number
  /** `from \0 epoch` -> that stream's seqs. */
  readonly streams: Map<string, Stream>
  bytes: number
}

/**
 * A stream's seqs in a box: `seqs` from `head` on, ascending, removed ones too until its acks pass them (the acks
 * passed those below); `keys`, the key of each seq's `msg` or `skip` entry, to store each seq once.
 */
interface Stream {
  seqs: number[]
  head: number
  readonly keys: Map<number, string>
}

/** Removed keys a box's `order` may keep before it is compacted, beyond as many as it has entries. */
const COMPACT_SLACK = 1_024

const KEY_DIGITS = 16
const KEY_FORM = new RegExp(`^\\d{${KEY_DIGITS}}$`)

/**
 * The in-memory side of a mailbox: entry metadata (never frames) per
 * destination, in order, and the rules of admission, acknowledgement and
 * expiry. Synchronous, so callers apply the resulting writes in the same
 * order. About 290 bytes per stored entry, its id included. A read costs a
 * binary search and the entries it returns; an ack, the entries it removes
 * (amortized); a retention sweep, the entries it expires: none walks a queue,
 * which may hold millions.
 */
export class MailboxIndex {
  readonly #boxes = new Map<string, Box>()
  /** The entries that expire, by when they were stored. */
  readonly #retention = new RetentionQueue<MailboxEntry>((to, entry) => this.#boxes.get(to)?.entries.get(entry.key) === entry)
  #next = 0
  /** Over every destination, kept with each change: the metrics read them without a walk. */
  #entries = 0
  #bytes = 0

  /** Adds an entry read back from storage (in key order). */
  load(to: string, record: MailboxRecord, key: string): void {
    const n = Number(key)
    // Made afresh: a key cut from a longer string keeps all of it.
    this.#insert(to, entryOf(record, KEY_FORM.test(key) ? keyOf(n) : key))
    this.#next = Math.max(this.#next, n + 1)
  }

  /** Decides whether `record` may be stored for `to`; if so, gives it its key and adds it. */
  admit(to: string, record: MailboxRecord, limits: MailboxLimits): PutResult & { added?: MailboxEntry } {
    const box = this.#boxes.get(to)
    const entries = box?.entries.size ?? 0
    const stored = isSeqEntry(record) ? box?.streams.get(streamKey(record.from, record.epoch))?.keys.get(record.seq) : undefined
    const existing = stored === undefined ? undefined : box?.entries.get(stored)
    if (existing !== undefined) return { ok: true, duplicate: true, entry: existing }
    if (record.kind === 'msg') {
      if (entries >= limits.maxMessages) return { ok: false, reason: 'full_messages' }
      if ((box?.bytes ?? 0) + record.size > limits.maxBytes) return { ok: false, reason: 'full_bytes' }
    } else if (entries >= 2 * limits.maxMessages) return { ok: false, reason: 'full_messages' }
    const entry = entryOf(record, keyOf(this.#next++))
    this.#insert(to, entry)
    return { ok: true, duplicate: false, entry, added: entry }
  }

  /** Up to `limit` entries of `to` after `after`, in order. */
  read(to: string, after: string | undefined, limit: number): MailboxEntry[] {
    const out: MailboxEntry[] = []
    const box = this.#boxes.get(to)
    if (box === undefined) return out
    const { order, entries } = box
    for (let i = after === undefined ? box.head : Math.max(box.head, firstAbove(order, after)); i < order.length && out.length < limit; i++) {
      const entry = entries.get(order[i] ?? '')
      if (entry !== undefined) out.push(entry)
    }
    return out
  }

  /** Removes and returns the keys of `msg`/`skip` entries of `(from, epoch)` with seq <= `upTo`, in key order. */
  ack(to: string, from: string, epoch: string, upTo: number): string[] {
    const box = this.#boxes.get(to)
    const name = streamKey(from, epoch)
    const stream = box?.streams.get(name)
    if (box === undefined || stream === undefined) return []
    const { seqs } = stream
    const keys: string[] = []
    for (let seq = seqs[stream.head]; seq !== undefined && seq <= upTo; seq = seqs[++stream.head]) {
      const key = stream.keys.get(seq)
      if (key !== undefined) keys.push(key)
    }
    if (stream.head === seqs.length) box.streams.delete(name)
    else if (stream.head > seqs.length / 2) {
      stream.seqs = seqs.slice(stream.head)
      stream.head = 0
    }
    // A seq stored again after it was removed came later than the seqs that were not: its key may be out of order.
    return this.remove(to, keys.sort())
  }

  /** Removes entries by key; returns the keys that were there. */
  remove(to: string, keys: readonly string[]): string[] {
    const box = this.#boxes.get(to)
    if (box === undefined) return []
    const removed: string[] = []
    for (const key of keys) {
      const entry = box.entries.get(key)
      if (entry === undefined) continue
      box.entries.delete(key)
      this.#entries--
      box.removed++
      if (expires(entry)) this.#retention.dropped()
      if (isSeqEntry(entry)) {
        const keys = box.streams.get(streamKey(entry.from, entry.epoch))?.keys
        if (keys?.get(entry.seq) === key) keys.delete(entry.seq)
      }
      if (entry.kind === 'msg') this.#addBytes(box, -entry.size)
      removed.push(key)
    }
    if (box.entries.size === 0) this.#boxes.delete(to)
    else if (removed.length > 0) compact(box)
    return removed
  }

  /**
   * Takes every entry stored before `before` that expires (`msg` and `ack`), each with its destination. The caller
   * expires every one taken, at once ({@link toSkip} or {@link remove}): it is not offered again.
   */
  takeDue(before: number): { to: string; entry: MailboxEntry }[] {
    return this.#retention.take(before)
  }

  /** Replaces a `msg` entry by its `skip` of `size` bytes, in place, failed for `reason`. */
  toSkip(to: string, key: string, size: number, reason: string): MailboxEntry | undefined {
    const box = this.#boxes.get(to)
    const entry = box?.entries.get(key)
    if (box === undefined || entry?.kind !== 'msg') return undefined
    const skip = entryOf({ ...entry, kind: 'skip', size, reason }, key)
    box.entries.set(key, skip)
    this.#addBytes(box, -entry.size)
    this.#retention.dropped()
    return skip
  }

  /** Entries and `msg` bytes of `to`. */
  size(to: string): { entries: number; bytes: number } {
    const box = this.#boxes.get(to)
    return { entries: box?.entries.size ?? 0, bytes: box?.bytes ?? 0 }
  }

  /** Entries and `msg` bytes over every destination. */
  totals(): { entries: number; bytes: number } {
    return { entries: this.#entries, bytes: this.#bytes }
  }

  #insert(to: string, entry: MailboxEntry): void {
    let box = this.#boxes.get(to)
    if (box === undefined) {
      box = { to, entries: new Map(), order: [], head: 0, removed: 0, streams: new Map(), bytes: 0 }
      this.#boxes.set(to, box)
    }
    // Keys only grow: a new one goes last.
    box.entries.set(entry.key, entry)
    box.order.push(entry.key)
    this.#entries++
    if (isSeqEntry(entry)) {
      const name = streamKey(entry.from, entry.epoch)
      const stream = box.streams.get(name)
      if (stream === undefined) box.streams.set(name, { seqs: [entry.seq], head: 0, keys: new Map([[entry.seq, entry.key]]) })
      else {
        insertSorted(stream, entry.seq)
        stream.keys.set(entry.seq, entry.key)
      }
    }
    if (entry.kind === 'msg') this.#addBytes(box, entry.size)
    if (expires(entry)) this.#retention.added(box.to, entry)
  }

  #addBytes(box: Box, bytes: number): void {
    box.bytes += bytes
    this.#bytes += bytes
  }
}

function expires(entry: MailboxEntry): boolean {
  return entry.kind === 'msg' || entry.kind === 'ack'
}

function isSeqEntry(record: MailboxRecord): boolean {
  return record.kind === 'msg' || record.kind === 'skip'
}

/**
 * An entry as a plain object of one shape: a spread that adds a field (`{ ...record, key }`) made an object of
 * 418 B where this makes one of 90 (Node 20), and a mailbox may hold millions. Fields a record does not know are
 * left out.
 */
function entryOf(record: MailboxRecord, key: string): MailboxEntry {
  const { kind, from, epoch, seq, id, size, storedAt, reason, expiresAt } = record
  if (expiresAt !== undefined) {
    return reason === undefined
      ? { kind, from, epoch, seq, id, size, storedAt, key, expiresAt }
      : { kind, from, epoch, seq, id, size, storedAt, key, reason, expiresAt }
  }
  return reason === undefined ? { kind, from, epoch, seq, id, size, storedAt, key } : { kind, from, epoch, seq, id, size, storedAt, key, reason }
}

const digits: number[] = new Array<number>(KEY_DIGITS)

/**
 * The key of the `n`th entry: `n` in KEY_DIGITS zero-padded digits, as one flat string (41 B; `padStart`'s string
 * is a tree of parts, 97 B, and a map that holds it as a key keeps both forms).
 */
function keyOf(n: number): string {
  if (n >= 10 ** KEY_DIGITS) return String(n)
  for (let i = KEY_DIGITS - 1; i >= 0; i--) {
    digits[i] = 0x30 + (n % 10)
    n = Math.floor(n / 10)
  }
  return String.fromCharCode(...digits)
}

function streamKey(from: string, epoch: string): string {
  return `${from}\0${epoch}`
}

/** The index in ascending `keys` of the first key greater than `key` (`keys.length` if none). */
function firstAbove(keys: readonly string[], key: string): number {
  let low = 0
  let high = keys.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if ((keys[mid] ?? '') <= key) low = mid + 1
    else high = mid
  }
  return low
}

/** Adds `seq` to the stream unless there: at the end, as seqs mostly come, or in its place. */
function insertSorted(stream: Stream, seq: number): void {
  const { seqs } = stream
  if (stream.head === seqs.length || seq > (seqs.at(-1) ?? -1)) {
    seqs.push(seq)
    return
  }
  let low = stream.head
  let high = seqs.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if ((seqs[mid] ?? seq) < seq) low = mid + 1
    else high = mid
  }
  if (seqs[low] !== seq) seqs.splice(low, 0, seq)
}

/** Moves the box's head past removed keys; drops them from `order` once they outnumber its entries (amortized O(1)). */
function compact(box: Box): void {
  const { order, entries } = box
  while (box.head < order.length && !entries.has(order[box.head] ?? '')) box.head++
  if (box.removed <= entries.size + COMPACT_SLACK) return
  box.order = order.filter((key) => entries.has(key))
  box.head = 0
  box.removed = 0
}
