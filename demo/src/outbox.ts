/**
 * Sending: each message is written to the conversation log first (status
 * `sending`), under an id made here, then handed to intersession with that
 * id. intersession's `status` events move it on: queued, sent, delivered or
 * expired. A send that fails is marked `failed` with the reason.
 *
 * After a reload, messages still `sending` (the page died before intersession
 * confirmed them) are handed over again with the same id, which intersession
 * recognises, so none is queued twice; `queued` and `sent` ones ask
 * intersession where they stand now.
 */
import { isIlmError, type Messenger } from 'intersession/client'
import { chatContents } from './contents.js'
import type { ConversationLog, LogEntry } from './history.js'

export class Outbox {
  readonly #messenger: Messenger
  readonly #log: ConversationLog
  readonly #stop: () => void

  constructor(messenger: Messenger, log: ConversationLog) {
    this.#messenger = messenger
    this.#log = log
    this.#stop = messenger.on('status', ({ id, status, reason }) => {
      void log.advance(id, status, status === 'expired' ? 'expired: not delivered in time' : reason)
    })
  }

  /** Picks up where the last visit left off. */
  async resume(): Promise<void> {
    for (const entry of await this.#log.unsettled()) {
      if (entry.status === 'sending') void this.#handOver(entry)
      else void this.#refresh(entry.id)
    }
  }

  /** Queues `text` for `peer`; resolves once it is in the log (intersession's part follows). */
  async send(peer: string, text: string): Promise<void> {
    const now = Date.now()
    const entry: LogEntry = { id: newId(), peer, direction: 'out', text, at: now, writtenAt: now, status: 'sending' }
    await this.#log.add(entry)
    void this.#handOver(entry)
  }

  close(): void {
    this.#stop()
  }

  async #handOver(entry: LogEntry): Promise<void> {
    try {
      await this.#messenger.send(entry.peer, chatContents(entry.text, entry.writtenAt), { id: entry.id })
      await this.#log.advance(entry.id, 'queued')
    } catch (error) {
      await this.#log.advance(entry.id, 'failed', describe(error))
    }
  }

  async #refresh(id: string): Promise<void> {
    try {
      const status = await this.#messenger.status(id)
      if (status !== 'unknown') await this.#log.advance(id, status, status === 'expired' ? 'expired: not delivered in time' : undefined)
    } catch {
      // Closed meanwhile: the next visit asks again.
    }
  }
}

/** A fresh message id (random, url-safe); made here so that a repeated send is recognised. */
function newId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

function describe(error: unknown): string {
  if (isIlmError(error)) return `${error.code}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}
