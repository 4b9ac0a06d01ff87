/// <reference types="node" />
import { ClassicLevel } from 'classic-level'
import { MailboxIndex } from './mailbox-index.js'
import type { Mailbox, MailboxEntry, MailboxItem, MailboxLimits, MailboxRecord, PutResult, Tombstone } from './mailbox.js'

type Db = ClassicLevel<string, Uint8Array>
type Write = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const META = 'm\0'
const FRAME = 'f\0'
const KEYS = 'k\0'

/** Options of {@link LevelMailbox.open}. */
export interface LevelMailboxOptions {
  /**
   * Sync every write to disk (`fsync`/`fdatasync` of LevelDB's log) before
   * its promise resolves. Default `true`: a `put` that resolved survives a
   * power loss or an OS crash, which is what lets the relay answer `stored`.
   * `false` resolves once LevelDB handed the write to the OS: it still
   * survives a crash of the relay process (SIGKILL), not of the machine.
   */
  readonly sync?: boolean
}

/**
 * The embedded on-disk {@link Mailbox} (LevelDB through `classic-level`),
 * the relay's default. Layout, one LevelDB directory:
 * - `m\0<to>\0<key>`: the entry's record as JSON;
 * - `f\0<to>\0<key>`: the frame bytes;
 * - `k\0<peer>`: the peer's key bundle (the relay's key directory), read from disk when asked;
 *
 * where `<key>` is a 16-digit counter, so keys sort per destination in
 * arrival order. Every change is one atomic batch, synced to disk before its
 * promise resolves (group commit: the writes called while a batch is being
 * written and synced go together into the next one, one sync per batch).
 * The records (not the
 * frames) are loaded into memory at open, about 150 bytes per entry, so
 * limits, acks and expiry never scan the disk.
 */
export class LevelMailbox implements Mailbox {
  readonly #db: Db
  readonly #index: MailboxIndex
  readonly #sync: boolean
  /** Every disk operation, in call order: a read sees the writes called before it. */
  #chain: Promise<unknown> = Promise.resolve()
  #closing: Promise<void> | undefined
  /** The batch that the next write joins, until the chain reaches it. */
  #batch: { readonly writes: Write[]; readonly done: Promise<void> } | undefined

  private constructor(db: Db, index: MailboxIndex, sync: boolean) {
    this.#db = db
    this.#index = index
    this.#sync = sync
  }

  /** Opens (creating if needed) the mailbox in directory `dir` and loads its index. */
  static async open(dir: string, options: LevelMailboxOptions = {}): Promise<LevelMailbox> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('mailbox dir must be a non-empty string')
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
    const sync = options.sync ?? true
    if (typeof sync !== 'boolean') throw new TypeError('options.sync must be a boolean')
    const db: Db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    await db.open()
    const index = new MailboxIndex()
    try {
      for await (const [key, value] of db.iterator({ gte: META, lt: 'm\x01' })) {
        const [, to, entryKey] = key.split('\0')
        if (to === undefined || entryKey === undefined) continue
        index.load(to, JSON.parse(decoder.decode(value)) as MailboxRecord, entryKey)
      }
    } catch (error) {
      await db.close()
      throw error
    }
    return new LevelMailbox(db, index, sync)
  }

  async put(to: string, record: MailboxRecord, frame: Uint8Array, limits: MailboxLimits): Promise<PutResult> {
    this.#check()
    const { added, ...result } = this.#index.admit(to, record, limits)
    if (added === undefined) return result
    try {
      await this.#write([put(metaKey(to, added.key), encoder.encode(JSON.stringify(record))), put(frameKey(to, added.key), frame)])
    } catch (error) {
      this.#index.remove(to, [added.key])
      throw error
    }
    return result
  }

  async read(to: string, after: string | undefined, limit: number): Promise<readonly MailboxItem[]> {
    this.#check()
    return this.#run(async () => {
      const entries = this.#index.read(to, after, limit)
      const frames = await this.#db.getMany(entries.map((entry) => frameKey(to, entry.key)))
      const items: MailboxItem[] = []
      entries.forEach((entry, i) => {
        const frame = frames[i]
        if (frame !== undefined) items.push({ entry, frame: Uint8Array.from(frame) })
      })
      return items
    })
  }

  async ack(to: string, from: string, epoch: string, upTo: number): Promise<number> {
    this.#check()
    const keys = this.#index.ack(to, from, epoch, upTo)
    if (keys.length > 0) await this.#write(keys.flatMap((key) => dropEntry(to, key)))
    return keys.length
  }

  async remove(to: string, keys: readonly string[]): Promise<void> {
    this.#check()
    const removed = this.#index.remove(to, keys)
    if (removed.length > 0) await this.#write(removed.flatMap((key) => dropEntry(to, key)))
  }

  async expire(before: number, tombstone: Tombstone): Promise<readonly { to: string; entry: MailboxEntry }[]> {
    this.#check()
    const writes: Write[] = []
    const expired: { to: string; entry: MailboxEntry }[] = []
    for (const { to, entry } of this.#index.takeDue(before)) {
      if (entry.kind !== 'msg') {
        for (const key of this.#index.remove(to, [entry.key])) writes.push(...dropEntry(to, key))
        continue
      }
      const frame = tombstone(to, entry)
      const skip = this.#index.toSkip(to, entry.key, frame.byteLength, 'retention')
      if (skip === undefined) continue
      const { key: _key, ...record } = skip
      writes.push(put(metaKey(to, entry.key), encoder.encode(JSON.stringify(record))), put(frameKey(to, entry.key), frame))
      expired.push({ to, entry })
    }
    if (writes.length > 0) await this.#write(writes)
    return expired
  }

  async size(to: string): Promise<{ entries: number; bytes: number }> {
    this.#check()
    return this.#index.size(to)
  }

  totals(): { entries: number; bytes: number } {
    return this.#index.totals()
  }

  /** Written like an entry: in the next group-committed batch, synced unless `sync: false`. */
  async putKeys(peer: string, bundle: Uint8Array): Promise<void> {
    this.#check()
    await this.#write([put(KEYS + peer, Uint8Array.from(bundle))])
  }

  async getKeys(peer: string): Promise<Uint8Array | undefined> {
    this.#check()
    const bundle = await this.#run(() => this.#db.get(KEYS + peer))
    return bundle === undefined ? undefined : Uint8Array.from(bundle)
  }

  close(): Promise<void> {
    this.#closing ??= this.#chain.then(
      () => this.#db.close(),
      () => this.#db.close(),
    )
    return this.#closing
  }

  /**
   * Group commit: writes called while the chain is busy (a batch being
   * written and synced, or a read) share the next batch, written and synced
   * once; each caller's promise resolves when that batch is on disk. Writes
   * only ever move earlier than a read, never past another write.
   */
  #write(writes: Write[]): Promise<void> {
    if (this.#batch === undefined) {
      const batch: Write[] = []
      const done = this.#run(() => {
        this.#batch = undefined
        return this.#db.batch(batch, { sync: this.#sync })
      })
      this.#batch = { writes: batch, done }
    }
    this.#batch.writes.push(...writes)
    return this.#batch.done
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#chain.then(fn, fn)
    this.#chain = result.catch(() => {})
    return result
  }

  #check(): void {
    if (this.#closing !== undefined) throw new Error('mailbox closed')
  }
}

function put(key: string, value: Uint8Array): Write {
  return { type: 'put', key, value }
}

function dropEntry(to: string, key: string): Write[] {
  return [
    { type: 'del', key: metaKey(to, key) },
    { type: 'del', key: frameKey(to, key) },
  ]
}

function metaKey(to: string, key: string): string {
  return `${META}${to}\0${key}`
}

function frameKey(to: string, key: string): string {
  return `${FRAME}${to}\0${key}`
}
