import type { MailboxEntry, MailboxLimits, MailboxRecord, PutResult } from './mailbox.js'

/** One destination's queue: entries in key order, with the totals the limits need. */
interface Box {
  readonly entries: Map<string, MailboxEntry>
  /** `from \0 epoch \0 seq` -> key of the `msg` or `skip` entry, to store each seq once. */
  readonly seqs: Map<string, string>
  bytes: number
}

const KEY_DIGITS = 16

/**
 * The in-memory side of a mailbox: entry metadata (never frames) per
 * destination, in order, and the rules of admission, acknowledgement and
 * expiry. Synchronous, so callers apply the resulting writes in the same
 * order. About 150 bytes per stored entry.
 */
export class MailboxIndex {
  readonly #boxes = new Map<string, Box>()
  #next = 0
  /** Over every destination, kept with each change: the metrics read them without a walk. */
  #entries = 0
  #bytes = 0

  /** Adds an entry read back from storage (in key order). */
  load(to: string, entry: MailboxEntry): void {
    this.#insert(to, entry)
    this.#next = Math.max(this.#next, Number(entry.key) + 1)
  }

  /** Decides whether `record` may be stored for `to`; if so, gives it its key and adds it. */
  admit(to: string, record: MailboxRecord, limits: MailboxLimits): PutResult & { added?: MailboxEntry } {
    const box = this.#boxes.get(to)
    const entries = box?.entries.size ?? 0
    const existing = isSeqEntry(record) ? box?.entries.get(box.seqs.get(seqKey(record)) ?? '') : undefined
    if (existing !== undefined) return { ok: true, duplicate: true, entry: existing }
    if (record.kind === 'msg') {
      if (entries >= limits.maxMessages) return { ok: false, reason: 'full_messages' }
      if ((box?.bytes ?? 0) + record.size > limits.maxBytes) return { ok: false, reason: 'full_bytes' }
    } else if (entries >= 2 * limits.maxMessages) return { ok: false, reason: 'full_messages' }
    const entry: MailboxEntry = { ...record, key: String(this.#next++).padStart(KEY_DIGITS, '0') }
    this.#insert(to, entry)
    return { ok: true, duplicate: false, entry, added: entry }
  }

  /** Up to `limit` entries of `to` after `after`, in order. */
  read(to: string, after: string | undefined, limit: number): MailboxEntry[] {
    const out: MailboxEntry[] = []
    for (const entry of this.#boxes.get(to)?.entries.values() ?? []) {
      if (out.length >= limit) break
      if (after === undefined || entry.key > after) out.push(entry)
    }
    return out
  }

  /** Removes and returns the keys of `msg`/`skip` entries of `(from, epoch)` with seq <= `upTo`. */
  ack(to: string, from: string, epoch: string, upTo: number): string[] {
    const box = this.#boxes.get(to)
    if (box === undefined) return []
    const keys: string[] = []
    for (const entry of box.entries.values()) {
      if (isSeqEntry(entry) && entry.from === from && entry.epoch === epoch && entry.seq <= upTo) keys.push(entry.key)
    }
    return this.remove(to, keys)
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
      if (isSeqEntry(entry)) box.seqs.delete(seqKey(entry))
      if (entry.kind === 'msg') this.#addBytes(box, -entry.size)
      removed.push(key)
    }
    if (box.entries.size === 0) this.#boxes.delete(to)
    return removed
  }

  /** Every entry stored before `before` that expires (all but skips), per destination. */
  due(before: number): { to: string; entry: MailboxEntry }[] {
    const out: { to: string; entry: MailboxEntry }[] = []
    for (const [to, box] of this.#boxes) {
      for (const entry of box.entries.values()) if (expires(entry) && entry.storedAt < before) out.push({ to, entry })
    }
    return out
  }

  /** Replaces a `msg` entry by its `skip` of `size` bytes, in place, failed for `reason`. */
  toSkip(to: string, key: string, size: number, reason: string): MailboxEntry | undefined {
    const box = this.#boxes.get(to)
    const entry = box?.entries.get(key)
    if (box === undefined || entry?.kind !== 'msg') return undefined
    const skip: MailboxEntry = { ...entry, kind: 'skip', size, reason }
    box.entries.set(key, skip)
    this.#addBytes(box, -entry.size)
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
    if (box === undefined) this.#boxes.set(to, (box = { entries: new Map(), seqs: new Map(), bytes: 0 }))
    box.entries.set(entry.key, entry)
    this.#entries++
    if (isSeqEntry(entry)) box.seqs.set(seqKey(entry), entry.key)
    if (entry.kind === 'msg') this.#addBytes(box, entry.size)
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

function seqKey(record: MailboxRecord): string {
  return `${record.from}\0${record.epoch}\0${record.seq}`
}
