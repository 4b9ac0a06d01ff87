/**
 * The app's own conversation log, in IndexedDB (`intersession-demo:<name>`),
 * keyed by message id. intersession keeps a message only until it is
 * delivered; what a chat shows afterwards is the app's to keep.
 *
 * Writes are announced on a BroadcastChannel, so other tabs of the same name
 * show them too.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb'

/** Where a message this side sent stands: `sending` until intersession has it durably queued. */
export type OutgoingStatus = 'sending' | 'queued' | 'sent' | 'stored' | 'delivered' | 'expired' | 'failed'

export interface LogEntry {
  /** intersession's message id: the same on both sides. */
  readonly id: string
  /** The other side of the conversation. */
  readonly peer: string
  readonly direction: 'in' | 'out'
  readonly text: string
  /** This side's time: when it was sent, or received (ms since epoch). */
  readonly at: number
  /** When the sender wrote it, by the sender's clock. */
  readonly writtenAt: number
  readonly status: OutgoingStatus | 'received'
  /** Why it expired or failed. */
  readonly reason?: string
}

export interface Contact {
  readonly peer: string
  /** Time of the last message with this peer. */
  readonly lastAt: number
}

interface Schema extends DBSchema {
  messages: { key: string; value: LogEntry; indexes: { 'by-peer': [string, number]; 'by-status': string } }
  contacts: { key: string; value: Contact }
}

const RANK: Record<LogEntry['status'], number> = { sending: 0, queued: 1, sent: 2, stored: 3, delivered: 4, expired: 4, failed: 4, received: 4 }

/** Whether `next` is a later status than `current` (statuses only move forward). */
export function isLater(next: LogEntry['status'], current: LogEntry['status']): boolean {
  return RANK[next] > RANK[current]
}
/** How many of a conversation's latest messages are shown. */
export const CONVERSATION_LIMIT = 500

export class ConversationLog {
  readonly #db: IDBPDatabase<Schema>
  readonly #channel: BroadcastChannel
  readonly #listeners = new Set<(entry: LogEntry) => void>()

  private constructor(db: IDBPDatabase<Schema>, channel: BroadcastChannel) {
    this.#db = db
    this.#channel = channel
    channel.onmessage = (event: MessageEvent<LogEntry>) => this.#notify(event.data)
  }

  static async open(name: string): Promise<ConversationLog> {
    const db = await openDB<Schema>(`intersession-demo:${name}`, 1, {
      upgrade(db) {
        const messages = db.createObjectStore('messages', { keyPath: 'id' })
        messages.createIndex('by-peer', ['peer', 'at'])
        messages.createIndex('by-status', 'status')
        db.createObjectStore('contacts', { keyPath: 'peer' })
      },
    })
    return new ConversationLog(db, new BroadcastChannel(`intersession-demo:${name}`))
  }

  /**
   * Stores `entry` unless a message with its id is already there (intersession
   * may hand a message over again after a crash). Resolves once it is durable;
   * true if it was new.
   */
  async add(entry: LogEntry): Promise<boolean> {
    const tx = this.#db.transaction(['messages', 'contacts'], 'readwrite', { durability: 'strict' })
    const messages = tx.objectStore('messages')
    if ((await messages.getKey(entry.id)) !== undefined) {
      await tx.done
      return false
    }
    const contacts = tx.objectStore('contacts')
    const contact = await contacts.get(entry.peer)
    await messages.put(entry)
    await contacts.put({ peer: entry.peer, lastAt: Math.max(contact?.lastAt ?? 0, entry.at) })
    await tx.done
    this.#announce(entry)
    return true
  }

  /** Moves a sent message's status forward (never back, never out of delivered/expired/failed). */
  async advance(id: string, status: OutgoingStatus, reason?: string): Promise<void> {
    const tx = this.#db.transaction('messages', 'readwrite')
    const entry = await tx.store.get(id)
    if (entry === undefined || entry.direction !== 'out' || !isLater(status, entry.status)) {
      await tx.done
      return
    }
    const next: LogEntry = { ...entry, status, ...(reason !== undefined && { reason }) }
    await tx.store.put(next)
    await tx.done
    this.#announce(next)
  }

  /** The latest {@link CONVERSATION_LIMIT} messages with `peer`, oldest first. */
  async conversation(peer: string): Promise<LogEntry[]> {
    const range = IDBKeyRange.bound([peer, -Infinity], [peer, Infinity])
    const entries: LogEntry[] = []
    let cursor = await this.#db.transaction('messages').store.index('by-peer').openCursor(range, 'prev')
    while (cursor !== null && entries.length < CONVERSATION_LIMIT) {
      entries.push(cursor.value)
      cursor = await cursor.continue()
    }
    return entries.reverse()
  }

  /** Sent messages whose status may still change. */
  async unsettled(): Promise<LogEntry[]> {
    const index = this.#db.transaction('messages').store.index('by-status')
    const lists = await Promise.all((['sending', 'queued', 'sent', 'stored'] as const).map((status) => index.getAll(status)))
    return lists.flat()
  }

  /** Everyone this name has a conversation with. */
  contacts(): Promise<Contact[]> {
    return this.#db.getAll('contacts')
  }

  /** Calls `listener` with every entry added or changed, in this tab or another. */
  onChange(listener: (entry: LogEntry) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  close(): void {
    this.#channel.close()
    this.#db.close()
  }

  #announce(entry: LogEntry): void {
    this.#channel.postMessage(entry)
    this.#notify(entry)
  }

  #notify(entry: LogEntry): void {
    for (const listener of this.#listeners) listener(entry)
  }
}
