/**
 * A loopback TCP proxy that can fail the network, for the fault runs of
 * bench:peers. Run as its own process with an IPC channel:
 * `node --import tsx test/bench/peers-proxy.ts <target port>`; prints one JSON
 * line `{"event":"listening","port":N,"control":M}`.
 *
 * `POST http://127.0.0.1:<control>/cut?ms=<ms>` (CORS-simple, so the
 * receiver's page can call it itself at the exact moment) resets every
 * connection the proxy carries, both the client's side and the server's
 * (each sees a TCP RST: a dropped network, not a close either end asked
 * for), and for `ms` resets every new connection as soon as it is accepted.
 * It sends the IPC message `{ begun: true }` then, once it carries connections
 * again, `{ cut: { at, resetSockets, refused } }` (`at`: when it reset, epoch ms).
 */
import { createServer as createHttpServer } from 'node:http'
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net'

const MAX_CUT_MS = 60_000
const target = Number(process.argv[2])
if (!Number.isSafeInteger(target) || target < 1 || target > 65535) throw new RangeError('usage: peers-proxy.ts <target port>')

const live = new Set<Socket>()
let refusing = false
let refused = 0

/** Tracks `socket` until it closes; errors (resets included) just end it. */
function track(socket: Socket): void {
  live.add(socket)
  socket.setNoDelay(true)
  socket.on('error', () => {})
  socket.on('close', () => live.delete(socket))
}

const proxy = createServer((client) => {
  if (refusing) {
    refused++
    client.on('error', () => {})
    client.resetAndDestroy()
    return
  }
  const upstream = createConnection({ host: '127.0.0.1', port: target })
  track(client)
  track(upstream)
  client.pipe(upstream)
  upstream.pipe(client)
  client.on('close', () => upstream.destroy())
  upstream.on('close', () => client.destroy())
})

/** Resets every carried connection and refuses new ones for `ms`. */
function cut(ms: number): void {
  const at = performance.timeOrigin + performance.now()
  refusing = true
  refused = 0
  const resetSockets = live.size
  for (const socket of [...live]) socket.resetAndDestroy()
  process.send?.({ begun: true })
  setTimeout(() => {
    refusing = false
    process.send?.({ cut: { at, resetSockets, refused } })
  }, ms)
}

const control = createHttpServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1')
  const ms = Number(url.searchParams.get('ms'))
  const valid = request.method === 'POST' && url.pathname === '/cut' && Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_CUT_MS
  if (valid && !refusing) cut(ms)
  response.writeHead(valid ? 204 : 400, { 'access-control-allow-origin': '*' }).end()
})

// The bench went away: so does the proxy.
process.on('disconnect', () => process.exit(0))

proxy.listen(0, '127.0.0.1', () => {
  control.listen(0, '127.0.0.1', () => {
    const port = (proxy.address() as AddressInfo).port
    console.log(JSON.stringify({ event: 'listening', port, control: (control.address() as AddressInfo).port }))
  })
})
