/**
 * Receiving: every message intersession hands over is appended to the
 * conversation log before the handler returns, so it counts as processed
 * only once it is stored. intersession may hand a message over again after a
 * crash; the log keeps the first copy (same id).
 */
import type { Messenger } from 'intersession/client'
import { readContents } from './contents.js'
import type { ConversationLog } from './history.js'

export function receiveInto(messenger: Messenger, log: ConversationLog): () => void {
  return messenger.onMessage(async (message) => {
    const at = Date.now()
    const { text, writtenAt } = readContents(message.contents, at)
    await log.add({ id: message.id, peer: message.from, direction: 'in', text, at, writtenAt, status: 'received' })
  })
}
