import { io } from 'socket.io-client'
import type { Peer, PeerOptions } from './peer.js'

const UP_WITHIN_MS = 20_000

/**
 * Socket.IO over WebSocket only, the server with connection state recovery
 * on. The sender `emitWithAck`s each message with its destination; the
 * server forwards it to the room named after the receiver (a broadcast,
 * which recovery replays to a receiver that comes back) and then acks, so
 * `send` resolves once the server forwarded it. Reconnects are the client's
 * defaults (1 s, randomized, backing off to 5 s).
 */
export async function socketioPeer({ url, id, other, role, onMessage }: PeerOptions): Promise<Peer> {
  const socket = io(url, { transports: ['websocket'], auth: { id, role }, timeout: UP_WITHIN_MS })
  if (role === 'receiver') socket.on('m', (text: unknown) => onMessage(text))
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  })
  return {
    send: (text) => socket.emitWithAck('m', other, text),
    close: async () => void socket.disconnect(),
  }
}
