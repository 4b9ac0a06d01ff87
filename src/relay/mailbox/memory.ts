import { MemoryKeyDirectory } from '../key-directory.js'
import { MailboxIndex } from './mailbox-index.js'
import type { Mailbox, MailboxEntry, MailboxItem, MailboxLimits, MailboxRecord, PutResult, Tombstone } from './mailbox.js'

/**
 * A {@link Mailbox} in memory: for tests and for a relay that may lose what it
 * holds on restart. Frames are copied in and out.
 */
export class MemoryMailbox implements Mailbox {
  readonly #index = new MailboxIndex()
  /** `to \0 key` -> frame. */
  readonly #frames = new Map<string, Uint8Array>()
  readonly #keys = new MemoryKeyDirectory()
  #closed = false

  async put(to: string, record: MailboxRecord, frame: Uint8Array, limits: MailboxLimits): Promise<PutResult> {
    this.#check()
    const { added, ...result } = this.#index.admit(to, record, limits)
    if (added !== undefined) this.#frames.set(frameKey(to, added.key), Uint8Array.from(frame))
    return result
  }

  async read(to: string, after: string | undefined, limit: number): Promise<readonly MailboxItem[]> {
    this.#check()
    return this.#index.read(to, after, limit).map((entry) => ({ entry, frame: Uint8Array.from(this.#frames.get(frameKey(to, entry.key)) ?? []) }))
  }

  async ack(to: string, from: string, epoch: string, upTo: number): Promise<number> {
    this.#check()
    return this.#drop(to, this.#index.ack(to, from, epoch, upTo))
  }

  async remove(to: string, keys: readonly string[]): Promise<void> {
    this.#check()
    this.#drop(to, this.#index.remove(to, keys))
  }

  async expire(before: number, tombstone: Tombstone): Promise<readonly { to: string; entry: MailboxEntry }[]> {
    this.#check()
    const expired: { to: string; entry: MailboxEntry }[] = []
    for (const { to, entry } of this.#index.takeDue(before)) {
      if (entry.kind !== 'msg') {
        this.#drop(to, this.#index.remove(to, [entry.key]))
        continue
      }
      const skip = tombstone(to, entry)
      this.#index.toSkip(to, entry.key, skip.byteLength, 'retention')
      this.#frames.set(frameKey(to, entry.key), skip)
      expired.push({ to, entry })
    }
    return expired
  }

  async size(to: string): Promise<{ entries: number; bytes: number }> {
    this.#check()
    return this.#index.size(to)
  }

  totals(): { entries: number; bytes: number } {
    return this.#index.totals()
  }

  async putKeys(peer: string, bundle: Uint8Array): Promise<void> {
    this.#check()
    await this.#keys.putKeys(peer, bundle)
  }

  async getKeys(peer: string): Promise<Uint8Array | undefined> {
    this.#check()
    return this.#keys.getKeys(peer)
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  #drop(to: string, keys: readonly string[]): number {
    for (const key of keys) this.#frames.delete(frameKey(to, key))
    return keys.length
  }

  #check(): void {
    if (this.#closed) throw new Error('mailbox closed')
  }
}

function frameKey(to: string, key: string): string {
  return `${to}\0${key}`
}
