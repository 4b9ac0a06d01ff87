import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import type { RelayLimits } from './options.js'
import type { RelayLog } from './relay-log.js'
import type { RelayMetrics } from './metrics.js'
import type { RelayStats } from './stats.js'

/** What the HTTP side answers with, and where accepted WebSockets go. */
export interface RelayServerOptions {
  readonly host: string
  readonly port: number
  readonly limits: RelayLimits
  readonly log: RelayLog
  /** Serve `GET /peers`, the directory of logged-in peers (dev mode only: a real app knows its users' contacts). */
  readonly directory: boolean
  /** `/health`'s body (with `status`), and whether the relay is shutting down (503). */
  health(): { readonly closing: boolean; readonly stats: RelayStats }
  /** `GET /metrics`, in the Prometheus text format. */
  readonly metrics: RelayMetrics
  /** The logged-in peers, for `/peers`. */
  peers(): readonly string[]
  /** With `testControl`: serve `/test/...` and take peers offline and back through it. */
  readonly testControl: ((peer: string, online: boolean) => boolean) | undefined
  accept(ws: WebSocket, req: IncomingMessage): void
}

/** A listening HTTP + WebSocket server. */
export interface RelayServer {
  /** The port it listens on (the ephemeral one chosen when asked for 0). */
  readonly port: number
  /** `ws://host:port` */
  readonly url: string
  /** Stops listening and drops what is still connected (the relay closed its sockets before). */
  close(): Promise<void>
}

/**
 * Listens for HTTP (`GET /health`, `GET /metrics`, `GET /peers` in dev mode, 404 otherwise)
 * and WebSocket upgrades, and resolves once listening.
 */
export async function listen(options: RelayServerOptions): Promise<RelayServer> {
  const { host, port, limits, log } = options
  // A request that never finishes its headers (a slowloris upgrade) holds a socket: it gets as long as a login, checked every second.
  const httpTimeout = {
    headersTimeout: limits.authTimeoutMs,
    requestTimeout: limits.authTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.authTimeoutMs),
  }
  const server: Server = createServer(httpTimeout, (req, res) => onHttp(options, req, res))
  server.on('clientError', (_error, socket) => socket.destroy())
  const wss = new WebSocketServer({ server, maxPayload: limits.maxFrameBytes, perMessageDeflate: false, clientTracking: false })
  wss.on('error', (error) => log('error', 'server_error', { message: error.message }))
  wss.on('connection', (ws, req) => options.accept(ws, req))
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error)
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  server.on('error', (error) => log('error', 'server_error', { message: error.message }))
  const boundPort = (server.address() as AddressInfo).port
  return {
    port: boundPort,
    url: `ws://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
    async close() {
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}

function onHttp(options: RelayServerOptions, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '').split('?')[0]
  if (req.method === 'GET' && path === '/health') {
    const { closing, stats } = options.health()
    const body = JSON.stringify({ status: closing ? 'closing' : 'ok', ...stats })
    res.writeHead(closing ? 503 : 200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    res.end(body)
    return
  }
  if (req.method === 'GET' && path === '/metrics') {
    options.metrics.text().then(
      (text) => {
        res.writeHead(200, { 'content-type': options.metrics.contentType, 'cache-control': 'no-store' })
        res.end(text)
      },
      (error: unknown) => {
        options.log('error', 'metrics_failed', { message: error instanceof Error ? error.message : String(error) })
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end('{"error":"metrics failed"}')
      },
    )
    return
  }
  if (req.method === 'GET' && path === '/peers' && options.directory) {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'access-control-allow-origin': '*' })
    res.end(JSON.stringify({ peers: [...options.peers()].sort() }))
    return
  }
  if (options.testControl !== undefined && path?.startsWith('/test/') === true) {
    onTestControl(options.testControl, options.peers, req, res)
    return
  }
  res.writeHead(404, { 'content-type': 'application/json' })
  res.end('{"error":"not found"}')
}

/** `GET /test/peers`, `POST /test/offline?peer=ID`, `POST /test/online?peer=ID` (see `RelayOptions.testControl`). */
function onTestControl(control: (peer: string, online: boolean) => boolean, peers: () => readonly string[], req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://relay')
  const answer = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    res.end(JSON.stringify(body))
  }
  if (req.method === 'GET' && url.pathname === '/test/peers') {
    answer(200, { peers: [...peers()].sort() })
    return
  }
  const online = url.pathname === '/test/online' ? true : url.pathname === '/test/offline' ? false : undefined
  if (req.method !== 'POST' || online === undefined) {
    answer(404, { error: 'not found' })
    return
  }
  const peer = url.searchParams.get('peer') ?? ''
  if (!control(peer, online)) {
    answer(400, { error: 'peer must be a valid peer id' })
    return
  }
  answer(200, { peer, online })
}
