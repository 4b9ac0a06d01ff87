import type { Message } from '../core/api.js'
import { decodeContents } from '../core/contents.js'
import type { PeerId } from '../core/ids.js'
import type { PeerStore } from '../core/store.js'

/** How many of the messages a sync stored {@link Arrivals} keeps (the latest), so that a big mailbox drain costs bounded memory. */
export const ARRIVALS_KEPT = 100

/**
 * The messages one sync stored in the inbox, as the app's handlers will get
 * them in the next tab: seen as their inbox rows commit, never handed over
 * (the rows stay, and the handlers get them exactly once). Keeps the latest
 * {@link ARRIVALS_KEPT}, in the order they were stored.
 */
export class Arrivals {
  readonly #kept: Message[] = []

  /** Returns `handle` with its commits watched: every inbox row a commit stored is recorded once the commit resolved. */
  watch(handle: PeerStore, localId: PeerId): PeerStore {
    const commit = handle.commit.bind(handle)
    handle.commit = async (ops) => {
      const receipts = await commit(ops)
      for (const op of ops) {
        if (op.op !== 'putInbox') continue
        const { id, from, epoch, seq, contentKind, contents } = op.row
        const decoded = decodeContents(contentKind, contents)
        if (decoded !== undefined) this.#kept.push({ id, from, to: localId, seq, epoch, contents: decoded.value })
      }
      this.#kept.splice(0, Math.max(0, this.#kept.length - ARRIVALS_KEPT))
      return receipts
    }
    return handle
  }

  /** The latest messages stored so far, oldest first. */
  list(): readonly Message[] {
    return [...this.#kept]
  }
}
