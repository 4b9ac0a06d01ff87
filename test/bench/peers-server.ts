/**
 * A peer system's server for bench:peers, run as its own process (as the
 * intersession relay is): `node --import tsx test/bench/peers-server.ts mqtt|socketio`.
 * Listens on an ephemeral loopback port and prints one JSON line
 * `{"event":"listening","port":N}`.
 *
 * - `mqtt`: an aedes broker (in-memory persistence) behind a `ws`
 *   WebSocketServer, each socket handed to `aedes.handle` as a stream.
 * - `socketio`: a Socket.IO server, WebSocket transport only, connection state
 *   recovery on (its defaults: sessions kept 2 min). A receiver joins the room
 *   named after its id; a sender's `m` event `(to, contents, ack)` is
 *   broadcast to room `to` (which recovery stores and replays), then acked.
 */
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import { Server } from 'socket.io'
import { WebSocketServer, createWebSocketStream } from 'ws'

async function mqttBroker(http: HttpServer): Promise<void> {
  const aedes = await Aedes.createBroker()
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false })
  wss.on('connection', (socket, request) => {
    const stream = createWebSocketStream(socket)
    // A cut connection errors the stream; aedes sees the close either way.
    stream.on('error', () => {})
    aedes.handle(stream, request)
  })
}

function socketioServer(http: HttpServer): void {
  const io = new Server(http, { transports: ['websocket'], connectionStateRecovery: {}, cors: { origin: '*' } })
  io.on('connection', (socket) => {
    const { id, role } = socket.handshake.auth as { id?: unknown; role?: unknown }
    if (role === 'receiver' && typeof id === 'string' && !socket.recovered) void socket.join(id)
    socket.on('m', (to: unknown, contents: unknown, ack: unknown) => {
      if (typeof to !== 'string' || typeof ack !== 'function') return
      io.to(to).emit('m', contents)
      ack(true)
    })
  })
}

async function main(): Promise<void> {
  const kind = process.argv[2]
  const http = createServer()
  if (kind === 'mqtt') await mqttBroker(http)
  else if (kind === 'socketio') socketioServer(http)
  else throw new TypeError(`usage: peers-server.ts mqtt|socketio (got ${String(kind)})`)
  http.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ event: 'listening', port: (http.address() as AddressInfo).port }))
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
