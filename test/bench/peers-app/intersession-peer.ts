import { connect } from 'intersession/client'
import type { Peer, PeerOptions } from './peer.js'

const UP_WITHIN_MS = 20_000

/**
 * intersession through the relay: `connect()` (engine in a worker, IndexedDB),
 * with end-to-end encryption as `encryption` says (on: the default; off:
 * `encryption: false` on both ends, the other half of the cost of encryption).
 * `send` resolves once the message is durably queued in IndexedDB; the
 * receiver's handler runs exactly once per message.
 */
export function intersessionPeer(encryption: boolean): (options: PeerOptions) => Promise<Peer> {
  return async ({ url, id, other, role, onMessage }) => {
    const messenger = await connect({ peerId: id, transport: { kind: 'websocket', url, token: `dev:${id}` }, ...(!encryption && { encryption: false }) })
    if (role === 'receiver') messenger.onMessage((message) => onMessage(message.contents))
    const deadline = performance.now() + UP_WITHIN_MS
    while ((messenger.role !== 'leader' || messenger.connection.status !== 'online') && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    if (messenger.role !== 'leader' || messenger.connection.status !== 'online') {
      await messenger.close()
      throw new Error(`intersession ${id} did not come up (role ${messenger.role}, connection ${messenger.connection.status})`)
    }
    return {
      send: (text) => messenger.send(other, text),
      close: () => messenger.close(),
    }
  }
}
