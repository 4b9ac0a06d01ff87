/// <reference types="node" />
/**
 * The intersession relay: a WebSocket server that authenticates peers and
 * forwards opaque engine frames between them, stamping the sender's
 * authenticated id on every frame. With a {@link Mailbox} (store and forward)
 * it also holds `msg` and `ack` frames for offline peers and drains them, in
 * order, when the peer logs in; without one it keeps no state beyond live
 * connections, and messages wait in the senders' stores.
 *
 * Protocol: `../protocol/relay.ts`. Close codes: {@link CLOSE_CODES}.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { jwtVerify } from 'jose'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { decodeFrame, encodeFrame, peekKind } from '../core/codec.js'
import type { AckFrame, MsgFrame } from '../core/frame.js'
import { isPeerId, type Epoch, type MessageId, type PeerId } from '../core/ids.js'
import type { RelayCluster } from './cluster/cluster.js'
import type { Mailbox, MailboxEntry, MailboxRecord } from './mailbox/mailbox.js'
import { CLOSE_CODES, envelope, openEnvelope, parseClientControl, type FailureReason, type RelayControl } from '../protocol/relay.js'

/** What a custom verifier may return: the peer id, optionally with the credential's expiry (ms since epoch). */
export type VerifyResult = string | { readonly peerId: string; readonly expiresAt?: number }

/**
 * Checks a login token and returns the peer id it proves. Throw (or reject)
 * to refuse the login with AUTH_FAILED; an error whose `code` is
 * `'ERR_JWT_EXPIRED'` or `'AUTH_EXPIRED'` refuses it with AUTH_EXPIRED.
 */
export type VerifyToken = (token: string) => VerifyResult | Promise<VerifyResult>

/** Limits, all on by default. */
export interface RelayLimits {
  /** Largest WebSocket message (envelope or control) in bytes; larger closes 1009. Default 1 MiB + 64 KiB. */
  readonly maxFrameBytes: number
  /** Messages per second per connection (token bucket, burst 2x). Excess is dropped. Default 2,000. */
  readonly framesPerSecond: number
  /** How long a connection may stay over its rate before it is closed RATE_LIMITED, in ms. Default 3,000. */
  readonly rateLimitCloseMs: number
  /** A frame is not forwarded while the destination socket has more than this many bytes queued. Default 8 MiB. */
  readonly maxPendingBytes: number
  /**
   * Open sockets (authenticated or not). Beyond it the oldest socket that has
   * not sent `auth` yet is closed FULL to make room, or, if there is none, the
   * newcomer. Default 10,000.
   */
  readonly maxConnections: number
  /**
   * Time to send `auth` and be verified, in ms; then AUTH_TIMEOUT. Also the
   * longest an HTTP request (or WebSocket upgrade) may take to arrive. Default 10,000.
   */
  readonly authTimeoutMs: number
  /** WebSocket ping interval in ms; no pong by the next ping closes IDLE. Default 15,000. */
  readonly pingIntervalMs: number
  /** Mailbox: entries held per offline peer; a message beyond it fails `full_messages`. Default 10,000. */
  readonly mailboxMaxMessages: number
  /** Mailbox: message bytes held per offline peer; a message beyond it fails `full_bytes`. Default 64 MiB. */
  readonly mailboxMaxBytes: number
  /** Mailbox: how long a message waits for its receiver before it fails `retention`, in ms. Default 7 days. */
  readonly mailboxRetentionMs: number
}

/** The default {@link RelayLimits}. */
export const DEFAULT_RELAY_LIMITS: RelayLimits = Object.freeze({
  maxFrameBytes: 1024 * 1024 + 64 * 1024,
  framesPerSecond: 2000,
  rateLimitCloseMs: 3000,
  maxPendingBytes: 8 * 1024 * 1024,
  maxConnections: 10_000,
  authTimeoutMs: 10_000,
  pingIntervalMs: 15_000,
  mailboxMaxMessages: 10_000,
  mailboxMaxBytes: 64 * 1024 * 1024,
  mailboxRetentionMs: 7 * 24 * 3600 * 1000,
})

/** A structured log entry: `{ time, level, event, ...fields }`. */
export interface RelayLogEntry {
  readonly time: string
  readonly level: 'debug' | 'info' | 'warn' | 'error'
  readonly event: string
  readonly [field: string]: unknown
}

/** Options of {@link createRelay}. Exactly one of `verify`, `jwtSecret` and `dev: true` must be given. */
export interface RelayOptions {
  /** Interface to listen on. Default `'127.0.0.1'` (loopback only). */
  readonly host?: string
  /** TCP port; 0 (the default) picks an ephemeral one. */
  readonly port?: number
  /** Custom authentication: token -> peer id. */
  readonly verify?: VerifyToken
  /** HS256 JWT secret: a token is valid when signed with it, `sub` is the peer id and `exp` has not passed. */
  readonly jwtSecret?: string | Uint8Array
  /** INSECURE demo mode: the token `dev:<peerId>` logs in as any peer. */
  readonly dev?: boolean
  readonly limits?: Partial<RelayLimits>
  /**
   * Store and forward: frames for offline peers are kept here (the relay
   * closes it on `close()`). Without it, such frames are refused `offline`.
   */
  readonly mailbox?: Mailbox
  /**
   * Makes this relay one node of many (e.g. `createRedisCluster`): frames,
   * signals and presence reach peers connected to other nodes, and a login
   * here replaces the same peer's connection on any node. Give the nodes a
   * shared mailbox too (e.g. `RedisMailbox`). The relay closes it on `close()`.
   */
  readonly cluster?: RelayCluster
  /** Receives structured log entries. Default: JSON lines on stdout. */
  readonly logger?: (entry: RelayLogEntry) => void
}

/**
 * Why something was refused or a connection closed, as counted in
 * {@link RelayStats.refusals}:
 * - `auth_failed`, `auth_expired`, `auth_timeout`: logins refused / sessions ended (AUTH_* codes)
 * - `replaced`: a connection closed by a newer login of the same id (REPLACED)
 * - `malformed`: bad control message or envelope, or a message before auth (PROTOCOL)
 * - `too_big`: message over `maxFrameBytes` (1009)
 * - `rate`: a message dropped for exceeding `framesPerSecond`
 * - `rate_limited`: a connection closed for staying over the rate (RATE_LIMITED)
 * - `offline`: a frame or signal for a peer that is not connected and that the mailbox does not hold (`undeliverable` 'offline')
 * - `forged`: a frame for the mailbox whose own `from`/`to` differ from its envelope, or undecodable: dropped
 * - `mailbox_full`: a message refused by a full mailbox (the sender gets `failed`)
 * - `slow`: a frame or signal not forwarded because the destination is too far behind (`undeliverable` 'slow')
 * - `slow_control`: a control message (presence, undeliverable, pong…) to a client too far behind, dropped
 * - `idle`: a connection closed for not answering pings (IDLE)
 * - `full`: a connection refused at the connection limit (FULL)
 * - `unavailable`: a login refused, or a frame not routed, because the cluster backend is unreachable (UNAVAILABLE / `undeliverable` 'offline')
 */
export type RefusalReason =
  | 'auth_failed'
  | 'auth_expired'
  | 'auth_timeout'
  | 'replaced'
  | 'malformed'
  | 'too_big'
  | 'rate'
  | 'rate_limited'
  | 'offline'
  | 'forged'
  | 'mailbox_full'
  | 'slow'
  | 'slow_control'
  | 'idle'
  | 'full'
  | 'unavailable'

const REFUSAL_REASONS: readonly RefusalReason[] = [
  'auth_failed',
  'auth_expired',
  'auth_timeout',
  'replaced',
  'malformed',
  'too_big',
  'rate',
  'rate_limited',
  'offline',
  'forged',
  'mailbox_full',
  'slow',
  'slow_control',
  'idle',
  'full',
  'unavailable',
]

/** Counters of a relay, since it started (except the gauges `connections`, `authenticated`, `pendingBytes`). */
export interface RelayStats {
  /** Open sockets, authenticated or not. */
  readonly connections: number
  /** Open, authenticated sockets (= peers online). */
  readonly authenticated: number
  /** Sockets accepted since start. */
  readonly accepted: number
  /** Envelopes received from authenticated peers (including dropped and malformed ones). */
  readonly framesIn: number
  /** Envelopes forwarded to peers. */
  readonly framesOut: number
  /** Control messages received / sent. */
  readonly controlIn: number
  readonly controlOut: number
  /** WebSocket message bytes received / sent (envelopes and control). */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Bytes queued on all sockets right now (bounded by ~`maxPendingBytes` per socket). */
  readonly pendingBytes: number
  /** Mailbox: entries stored, entries sent to peers as they logged in, messages expired by retention. */
  readonly stored: number
  readonly drained: number
  readonly expired: number
  /**
   * Mailbox operations that failed (logged as `mailbox_failed`), e.g. a put
   * Redis did not make durable as its policy asks: no `stored` was sent, so
   * the sender still holds the message and retransmits it.
   */
  readonly mailboxFailures: number
  readonly refusals: Readonly<Record<RefusalReason, number>>
}

/** A running relay. */
export interface RelayHandle {
  readonly host: string
  readonly port: number
  /** `ws://host:port` */
  readonly url: string
  stats(): RelayStats
  /**
   * Graceful shutdown: stops accepting, closes every socket with 1001
   * (GOING_AWAY) so clients reconnect (elsewhere), then the server.
   * Idempotent: later calls return the same promise.
   */
  close(): Promise<void>
}

interface Conn {
  readonly ws: WebSocket
  readonly session: string
  readonly remote: string
  readonly openedAt: number
  state: 'auth' | 'verifying' | 'open' | 'closed'
  id: PeerId | undefined
  watching: Set<PeerId>
  /** Messages that arrived while the token was being verified (the socket is paused meanwhile). */
  queue: { data: Buffer; isBinary: boolean }[]
  queuedBytes: number
  tokens: number
  refilledAt: number
  overSince: number | undefined
  lastDropAt: number
  alive: boolean
  /** Sending the mailbox: live frames for this peer wait in `held` until it is done. */
  draining: boolean
  /** Told (by another node) of new mailbox entries during a drain: read again when it ends. */
  redrain: boolean
  /** Key of the last mailbox entry sent on this connection: a later drain goes on from there. */
  mailAfter: string | undefined
  held: Uint8Array[]
  heldBytes: number
  authTimer: ReturnType<typeof setTimeout> | undefined
  expiryTimer: ReturnType<typeof setTimeout> | undefined
  killTimer: ReturnType<typeof setTimeout> | undefined
}

const MAX_TIMER_MS = 2 ** 31 - 1
const MAX_QUEUED_DURING_AUTH = 64
/** Extra token cost of a `watch` per this many peers (it fans out into presence messages). */
const WATCH_PEERS_PER_TOKEN = 100
/** Mailbox entries read per step of a drain. */
const DRAIN_BATCH = 256
const DRAIN_POLL_MS = 10

/**
 * Where a frame's destination is: connected to this relay; possibly connected
 * to another node of the cluster (the cluster says, and if not it is
 * offline); or offline (its frames go to the mailbox, if any).
 */
type Route =
  | { readonly kind: 'local'; readonly conn: Conn }
  | { readonly kind: 'elsewhere'; readonly cluster: RelayCluster }
  | { readonly kind: 'offline' }
const encoder = new TextEncoder()

/**
 * Starts a relay and resolves once it is listening.
 * @throws TypeError unless exactly one of `verify`, `jwtSecret`, `dev: true` is given, or on a mistyped option.
 * @throws RangeError for a limit out of range.
 */
export async function createRelay(options: RelayOptions): Promise<RelayHandle> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('host must be a non-empty string')
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError('port must be an integer in 0..65535')
  const limits = resolveLimits(options.limits)
  const logger = options.logger ?? defaultLogger
  if (typeof logger !== 'function') throw new TypeError('logger must be a function')
  const log = (level: RelayLogEntry['level'], event: string, fields: Record<string, unknown> = {}): void => {
    try {
      logger({ time: new Date().toISOString(), level, event, ...fields })
    } catch {
      // A broken logger must not break the relay.
    }
  }
  const authMode = resolveAuth(options)

  const refusals = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>
  const counters = { accepted: 0, framesIn: 0, framesOut: 0, controlIn: 0, controlOut: 0, bytesIn: 0, bytesOut: 0, stored: 0, drained: 0, expired: 0, mailboxFailures: 0 }
  const mailbox = options.mailbox
  if (mailbox !== undefined && (typeof mailbox !== 'object' || mailbox === null || typeof mailbox.put !== 'function')) {
    throw new TypeError('mailbox must implement Mailbox')
  }
  const boxLimits = { maxMessages: limits.mailboxMaxMessages, maxBytes: limits.mailboxMaxBytes }
  const cluster = options.cluster
  if (cluster !== undefined && (typeof cluster !== 'object' || cluster === null || typeof cluster.claim !== 'function')) {
    throw new TypeError('cluster must implement RelayCluster')
  }
  const conns = new Set<Conn>()
  const byId = new Map<PeerId, Conn>()
  /** peer -> connections watching it, so presence fan-out is O(watchers). */
  const watchers = new Map<PeerId, Set<Conn>>()
  /** Last presence announced of each watched peer: a cluster reports a local login too, once is enough. */
  const announced = new Map<PeerId, boolean>()
  let closing: Promise<void> | undefined
  let shuttingDown = false
  let drained: (() => void) | undefined

  // A request that never finishes its headers (a slowloris upgrade) holds a socket: it gets as long as a login, checked every second.
  const httpTimeout = { headersTimeout: limits.authTimeoutMs, requestTimeout: limits.authTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.authTimeoutMs) }
  await cluster?.start({ frame: fromCluster, text: textFromCluster, replaced: replacedElsewhere, mail: mailArrived, presence: announce })
  const server: Server = createServer(httpTimeout, onHttp)
  server.on('clientError', (_error, socket) => socket.destroy())
  const wss = new WebSocketServer({ server, maxPayload: limits.maxFrameBytes, perMessageDeflate: false, clientTracking: false })
  wss.on('error', (error) => log('error', 'server_error', { message: error.message }))
  wss.on('connection', onConnection)

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
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:${boundPort}`
  const pingTimer = setInterval(pingAll, limits.pingIntervalMs)
  pingTimer.unref()
  let sweeping = false
  const sweepTimer = mailbox === undefined ? undefined : setInterval(sweep, Math.max(50, Math.min(60_000, Math.floor(limits.mailboxRetentionMs / 10))))
  sweepTimer?.unref()

  if (authMode.kind === 'dev') {
    log('warn', 'dev_mode', {
      message: 'INSECURE DEV MODE: any client can log in as any peer with the token "dev:<peerId>". Never expose this relay.',
    })
  }
  log('info', 'listening', { url, host, port: boundPort, auth: authMode.kind, mailbox: mailbox !== undefined, node: cluster?.nodeId, limits })

  // ---- HTTP ----------------------------------------------------------------

  function onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0]
    if (req.method === 'GET' && path === '/health') {
      const body = JSON.stringify({ status: shuttingDown ? 'closing' : 'ok', ...stats() })
      res.writeHead(shuttingDown ? 503 : 200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end(body)
      return
    }
    if (req.method === 'GET' && path === '/peers' && authMode.kind === 'dev') {
      // A directory of who is connected, for demos only: a real app knows its users' contacts.
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'access-control-allow-origin': '*' })
      res.end(JSON.stringify({ peers: [...byId.keys()].sort() }))
      return
    }
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end('{"error":"not found"}')
  }

  // ---- connections ---------------------------------------------------------

  function onConnection(ws: WebSocket, req: IncomingMessage): void {
    ws.on('error', (error: Error & { code?: string }) => {
      // ws closes the socket itself (1009 for oversize, 1002/1007 for bad framing).
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') count(conn, 'too_big')
      else count(conn, 'malformed', { message: error.message })
    })
    const now = Date.now()
    const conn: Conn = {
      ws,
      session: randomUUID(),
      remote: req.socket.remoteAddress ?? '',
      openedAt: now,
      state: 'auth',
      id: undefined,
      watching: new Set(),
      queue: [],
      queuedBytes: 0,
      tokens: limits.framesPerSecond * 2,
      refilledAt: now,
      overSince: undefined,
      lastDropAt: 0,
      alive: true,
      draining: false,
      redrain: false,
      mailAfter: undefined,
      held: [],
      heldBytes: 0,
      authTimer: undefined,
      expiryTimer: undefined,
      killTimer: undefined,
    }
    counters.accepted++
    conns.add(conn)
    ws.on('close', (code: number) => onClose(conn, code))
    if (shuttingDown) return closeConn(conn, CLOSE_CODES.GOING_AWAY, 'relay shutting down')
    if (conns.size > limits.maxConnections && !evictOneLoggingIn(conn)) return refuse(conn, 'full', CLOSE_CODES.FULL, 'relay full')
    conn.authTimer = setTimeout(() => refuse(conn, 'auth_timeout', CLOSE_CODES.AUTH_TIMEOUT, 'no auth in time'), limits.authTimeoutMs)
    conn.authTimer.unref()
    ws.on('pong', () => (conn.alive = true))
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = toBuffer(data)
      counters.bytesIn += buf.byteLength
      conn.alive = true
      if (conn.state === 'verifying') {
        // The socket is paused, so only what was already read arrives here; still, bound it.
        conn.queuedBytes += buf.byteLength
        if (conn.queue.length >= MAX_QUEUED_DURING_AUTH || conn.queuedBytes > limits.maxFrameBytes) {
          return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'too much sent before welcome')
        }
        conn.queue.push({ data: buf, isBinary })
        return
      }
      onMessage(conn, buf, isBinary)
    })
  }

  /**
   * At the limit, the oldest socket that has not even sent `auth` makes room
   * (closed FULL), so sockets that never log in cannot lock peers out until
   * the login timeout; a login takes milliseconds. False if there is none.
   */
  function evictOneLoggingIn(newcomer: Conn): boolean {
    for (const other of conns) {
      if (other === newcomer || other.state !== 'auth') continue
      refuse(other, 'full', CLOSE_CODES.FULL, 'relay full')
      return true
    }
    return false
  }

  function onMessage(conn: Conn, data: Buffer, isBinary: boolean): void {
    if (conn.state === 'closed') return
    if (conn.state === 'auth') {
      const control = isBinary ? undefined : parseClientControl(data.toString('utf8'))
      if (control?.t !== 'auth') return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'expected auth first')
      counters.controlIn++
      void authenticate(conn, control.token)
      return
    }
    if (isBinary) counters.framesIn++
    else counters.controlIn++
    if (!takeToken(conn)) return
    if (isBinary) return route(conn, data)
    const control = parseClientControl(data.toString('utf8'))
    if (control === undefined) return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'malformed control message')
    switch (control.t) {
      case 'auth':
        return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'already authenticated')
      case 'ping':
        sendControl(conn, { t: 'pong', n: control.n })
        return
      case 'watch': {
        if (!control.peers.every(isPeerId)) return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'watch: invalid peer id')
        conn.tokens -= Math.floor(control.peers.length / WATCH_PEERS_PER_TOKEN) // fan-out cost, may go into debt
        return watch(conn, control.peers)
      }
      case 'signal': {
        if (!isPeerId(control.to)) return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'signal: invalid peer id')
        const dest = byId.get(control.to)
        const signal: RelayControl = { t: 'signal', from: conn.id!, data: control.data }
        if (dest === undefined || dest.ws.readyState !== dest.ws.OPEN) {
          if (cluster === undefined) return undeliverable(conn, control.to, 'offline')
          const to = control.to
          return void cluster.sendText(to, JSON.stringify(signal)).then(
            (sent) => sent || undeliverable(conn, to, 'offline'),
            (error: unknown) => unavailable(conn, to, 'signal', error),
          )
        }
        if (dest.ws.bufferedAmount > limits.maxPendingBytes) return undeliverable(conn, control.to, 'slow')
        sendControl(dest, signal, true)
        return
      }
    }
  }

  async function authenticate(conn: Conn, token: string): Promise<void> {
    conn.state = 'verifying'
    conn.ws.pause()
    let peerId: string
    let expiresAt: number | undefined
    try {
      const result = await authMode.verify(token)
      if (typeof result === 'string') peerId = result
      else if (typeof result === 'object' && result !== null && typeof result.peerId === 'string') {
        peerId = result.peerId
        expiresAt = typeof result.expiresAt === 'number' && Number.isFinite(result.expiresAt) ? result.expiresAt : undefined
      } else throw new TypeError('verify returned neither a peer id nor { peerId }')
    } catch (error) {
      if (conn.state !== 'verifying') return
      const code = (error as { code?: unknown } | null)?.code
      const expired = code === 'ERR_JWT_EXPIRED' || code === 'AUTH_EXPIRED'
      const reason = expired ? 'token expired' : 'authentication failed'
      log('warn', 'auth_refused', { session: conn.session, remote: conn.remote, reason, detail: errorMessage(error) })
      return refuse(conn, expired ? 'auth_expired' : 'auth_failed', expired ? CLOSE_CODES.AUTH_EXPIRED : CLOSE_CODES.AUTH_FAILED, reason)
    }
    if (conn.state !== 'verifying') return // timed out or shut down meanwhile
    if (!isPeerId(peerId)) {
      log('warn', 'auth_refused', { session: conn.session, remote: conn.remote, reason: 'invalid peer id' })
      return refuse(conn, 'auth_failed', CLOSE_CODES.AUTH_FAILED, 'invalid peer id')
    }
    if (expiresAt !== undefined && expiresAt <= Date.now()) {
      log('warn', 'auth_refused', { session: conn.session, remote: conn.remote, reason: 'token expired', id: peerId })
      return refuse(conn, 'auth_expired', CLOSE_CODES.AUTH_EXPIRED, 'token expired')
    }
    clearTimeout(conn.authTimer)
    conn.authTimer = undefined
    const old = byId.get(peerId)
    if (old !== undefined) {
      log('info', 'replaced', { id: peerId, old: old.session, session: conn.session })
      refuse(old, 'replaced', CLOSE_CODES.REPLACED, 'replaced by a newer login')
    }
    if (cluster !== undefined) {
      try {
        await cluster.claim(peerId)
      } catch (error) {
        log('error', 'cluster_failed', { operation: 'claim', id: peerId, message: errorMessage(error) })
        return refuse(conn, 'unavailable', CLOSE_CODES.UNAVAILABLE, 'cluster unavailable')
      }
      if (conn.state !== 'verifying') {
        if (!byId.has(peerId)) releaseClaim(peerId)
        return
      }
    }
    conn.id = peerId
    conn.state = 'open'
    byId.set(peerId, conn)
    if (expiresAt !== undefined) scheduleExpiry(conn, expiresAt)
    sendControl(conn, {
      t: 'welcome',
      id: peerId,
      session: conn.session,
      limits: { maxFrameBytes: limits.maxFrameBytes, framesPerSecond: limits.framesPerSecond },
      ...(mailbox !== undefined && { mailbox: true }),
    })
    if (mailbox !== undefined) void drain(conn, mailbox)
    log('info', 'login', { id: peerId, session: conn.session, remote: conn.remote })
    announce(peerId, true)
    const queued = conn.queue
    conn.queue = []
    conn.queuedBytes = 0
    for (const m of queued) onMessage(conn, m.data, m.isBinary)
    if (conn.state === 'open') conn.ws.resume()
  }

  function scheduleExpiry(conn: Conn, at: number): void {
    conn.expiryTimer = setTimeout(
      () => {
        if (conn.state !== 'open') return
        if (Date.now() < at) return scheduleExpiry(conn, at)
        log('info', 'token_expired', { id: conn.id, session: conn.session })
        refuse(conn, 'auth_expired', CLOSE_CODES.AUTH_EXPIRED, 'token expired')
      },
      Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS),
    )
    conn.expiryTimer.unref()
  }

  // ---- routing -------------------------------------------------------------

  function route(conn: Conn, data: Buffer): void {
    const opened = openEnvelope(data)
    if (opened === undefined || !isPeerId(opened.address)) return refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'malformed envelope')
    const to = opened.address
    const kind = mailbox === undefined ? undefined : peekKind(opened.frame)
    // The receiver's ack also settles what its mailbox holds of that stream.
    if (mailbox !== undefined && kind === 'ack') {
      const ack = decodeAs('ack', conn, to, opened.frame)
      if (ack === undefined) return
      mailbox.ack(conn.id!, to, ack.epoch, ack.upTo).catch((error: unknown) => mailboxFailed('ack', error))
    }
    const where = locate(to)
    if (where.kind === 'local') return forward(conn, where.conn, to, opened.frame)
    if (where.kind === 'elsewhere') return void forwardElsewhere(where.cluster, conn, to, opened.frame, kind)
    offline(conn, to, opened.frame, kind)
  }

  function locate(to: PeerId): Route {
    const dest = byId.get(to)
    if (dest !== undefined && dest.ws.readyState === dest.ws.OPEN) return { kind: 'local', conn: dest }
    return cluster === undefined ? { kind: 'offline' } : { kind: 'elsewhere', cluster }
  }

  /** `to` is connected nowhere: its mailbox holds messages and acks; anything else is refused. */
  function offline(conn: Conn, to: PeerId, frame: Uint8Array, kind: string | undefined): void {
    if (mailbox !== undefined && (kind === 'msg' || kind === 'ack')) return hold(conn, mailbox, to, frame)
    undeliverable(conn, to, 'offline')
  }

  function forward(conn: Conn, dest: Conn, to: PeerId, frame: Uint8Array): void {
    if (!deliver(dest, envelope(conn.id!, frame))) undeliverable(conn, to, 'slow')
  }

  /** Sends (or, during a drain, holds) an envelope for `dest`; false when `dest` is too far behind. */
  function deliver(dest: Conn, out: Uint8Array): boolean {
    if (dest.draining) {
      // Behind the mailbox: order per sender holds only if live frames wait for the drain.
      if (dest.heldBytes + out.byteLength > limits.maxPendingBytes) return false
      dest.held.push(out)
      dest.heldBytes += out.byteLength
      return true
    }
    if (dest.ws.bufferedAmount > limits.maxPendingBytes) return false
    sendFrame(dest, out)
    return true
  }

  /**
   * Publishes the frame to the node holding `to`. Frames of one sender go out
   * and resolve in order (one connection to the backend), so those that find
   * nobody reach the mailbox in order too.
   */
  async function forwardElsewhere(nodes: RelayCluster, conn: Conn, to: PeerId, frame: Uint8Array, kind: string | undefined): Promise<void> {
    let sent: boolean
    try {
      sent = await nodes.sendFrame(to, envelope(conn.id!, frame))
    } catch (error) {
      return unavailable(conn, to, 'route', error)
    }
    if (sent) counters.framesOut++
    else if (conn.state === 'open') offline(conn, to, frame, kind)
  }

  /** The backend is unreachable: the frame or signal is refused as if `to` were offline (an engine retransmits). */
  function unavailable(conn: Conn, to: PeerId, operation: string, error: unknown): void {
    log('error', 'cluster_failed', { operation, to, message: errorMessage(error) })
    refusals.unavailable++
    sendControl(conn, { t: 'undeliverable', peer: to, reason: 'offline' })
  }

  // ---- from other nodes ------------------------------------------------------

  function fromCluster(to: PeerId, out: Uint8Array): void {
    const dest = byId.get(to)
    if (dest === undefined || dest.state !== 'open') return
    // Too far behind: dropped here, the sender's engine retransmits.
    if (!deliver(dest, out)) refusals.slow++
  }

  function textFromCluster(to: PeerId, text: string): void {
    const dest = byId.get(to)
    if (dest === undefined || dest.state !== 'open') return
    if (dest.ws.bufferedAmount > limits.maxPendingBytes) return void refusals.slow++
    sendText(dest, text, true)
  }

  function replacedElsewhere(peer: PeerId): void {
    const conn = byId.get(peer)
    if (conn === undefined) return
    log('info', 'replaced', { id: peer, old: conn.session, elsewhere: true })
    refuse(conn, 'replaced', CLOSE_CODES.REPLACED, 'replaced by a newer login')
  }

  function mailArrived(to: PeerId): void {
    const conn = byId.get(to)
    if (mailbox !== undefined && conn !== undefined && conn.state === 'open') void drain(conn, mailbox)
  }

  function releaseClaim(peer: PeerId): void {
    cluster?.release(peer).catch((error: unknown) => log('error', 'cluster_failed', { operation: 'release', id: peer, message: errorMessage(error) }))
  }

  /**
   * Something was stored for `to`, which may have logged in (here or on
   * another node) while it was being stored, after its drain read the
   * mailbox: that drain reads again.
   */
  function poke(to: string): void {
    mailArrived(to as PeerId)
    cluster?.mail(to as PeerId).catch((error: unknown) => log('error', 'cluster_failed', { operation: 'mail', to, message: errorMessage(error) }))
  }

  function sendFrame(dest: Conn, out: Uint8Array): void {
    counters.framesOut++
    counters.bytesOut += out.byteLength
    dest.ws.send(out, { binary: true })
  }

  /** A frame the relay reads: it must decode, and name the authenticated sender and the envelope's destination. */
  function decodeAs<K extends 'msg' | 'ack'>(kind: K, conn: Conn, to: PeerId, frame: Uint8Array): Extract<MsgFrame | AckFrame, { kind: K }> | undefined {
    const decoded = decodeFrame(frame, limits.maxFrameBytes)
    if (decoded.ok && decoded.frame.kind === kind && decoded.frame.from === conn.id && decoded.frame.to === to) {
      return decoded.frame as Extract<MsgFrame | AckFrame, { kind: K }>
    }
    count(conn, 'forged', { to })
    return undefined
  }

  // ---- mailbox -------------------------------------------------------------

  /** Stores a `msg` or `ack` frame for the offline `to`; the sender of a message gets `stored` or `failed`. */
  function hold(conn: Conn, box: Mailbox, to: PeerId, bytes: Uint8Array): void {
    const frame = decodeAs(peekKind(bytes) as 'msg' | 'ack', conn, to, bytes)
    if (frame === undefined) return
    const storedAt = Date.now()
    if (frame.kind === 'ack') {
      // Best effort: a lost ack is repeated by the next hello.
      const record: MailboxRecord = { kind: 'ack', from: conn.id!, epoch: frame.epoch, seq: frame.upTo, id: '', size: bytes.byteLength, storedAt }
      box.put(to, record, bytes, boxLimits).then(
        (result) => {
          if (!result.ok || result.duplicate) return
          counters.stored++
          poke(to)
        },
        (error: unknown) => mailboxFailed('put', error),
      )
      return
    }
    const record: MailboxRecord = {
      kind: frame.skip === true ? 'skip' : 'msg',
      from: conn.id!,
      epoch: frame.epoch,
      seq: frame.seq,
      id: frame.id,
      size: bytes.byteLength,
      storedAt,
      ...(frame.expiresAt !== undefined && frame.skip !== true && { expiresAt: frame.expiresAt }),
    }
    const receipt = { peer: to, epoch: frame.epoch, seq: frame.seq }
    void (async () => {
      const result = await box.put(to, record, bytes, boxLimits)
      if (result.ok) {
        if (!result.duplicate) {
          counters.stored++
          poke(to)
        }
        const { reason } = result.entry
        // A resent message the relay already gave up on fails again rather than pass for stored.
        if (result.entry.kind === 'skip' && reason !== undefined) sendControl(conn, { t: 'failed', ...receipt, reason: reason as FailureReason, held: true })
        else sendControl(conn, { t: 'stored', ...receipt })
        return
      }
      refusals.mailbox_full++
      const skip = skipOf(to, record)
      const kept = await box.put(to, { ...record, kind: 'skip', size: skip.byteLength, reason: result.reason }, skip, boxLimits)
      sendControl(conn, { t: 'failed', ...receipt, reason: result.reason, held: kept.ok })
    })().catch((error: unknown) => mailboxFailed('put', error))
  }

  /**
   * Sends `conn` its mailbox, in order, before any live frame: live frames for
   * it wait in `held` meanwhile. Messages stay until acked; acks and notices
   * are sent once.
   */
  async function drain(conn: Conn, box: Mailbox): Promise<void> {
    if (conn.draining) return void (conn.redrain = true)
    conn.draining = true
    try {
      do {
        conn.redrain = false
        await drainFrom(conn, box)
      } while (conn.redrain && conn.state === 'open')
    } catch (error) {
      mailboxFailed('drain', error)
    } finally {
      conn.draining = false
      const held = conn.held
      conn.held = []
      conn.heldBytes = 0
      if (conn.state === 'open') for (const out of held) sendFrame(conn, out)
    }
  }

  /** Sends the entries after `conn.mailAfter`, in order. */
  async function drainFrom(conn: Conn, box: Mailbox): Promise<void> {
    const id = conn.id!
    for (;;) {
      const items = await box.read(id, conn.mailAfter, DRAIN_BATCH)
      if (conn.state !== 'open') return
      const once: string[] = []
      for (const { entry, frame } of items) {
        await caughtUp(conn)
        if (conn.state !== 'open') return
        conn.mailAfter = entry.key
        counters.drained++
        // The receiver refuses contents past their expiry (so would wait forever for the seq): it gets the skip.
        const overdue = entry.expiresAt !== undefined && entry.expiresAt <= Date.now()
        if (entry.kind === 'notice') sendControl(conn, notice(entry))
        else sendFrame(conn, envelope(entry.from, overdue ? skipOf(id, entry) : frame, true))
        if (entry.kind === 'notice' || entry.kind === 'ack') once.push(entry.key)
      }
      if (once.length > 0) await box.remove(id, once)
      if (items.length < DRAIN_BATCH) return
    }
  }

  /** Resolves once `conn`'s socket is below `maxPendingBytes` (or closed): a drain never buffers more than that. */
  async function caughtUp(conn: Conn): Promise<void> {
    while (conn.state === 'open' && conn.ws.bufferedAmount > limits.maxPendingBytes) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
    }
  }

  /** Expires messages past retention (they become skips) and tells their senders, now or when they log in. */
  function sweep(): void {
    if (mailbox === undefined || sweeping || shuttingDown) return
    sweeping = true
    const box = mailbox
    void (async () => {
      const expired = await box.expire(Date.now() - limits.mailboxRetentionMs, skipOf)
      for (const { to, entry } of expired) {
        counters.expired++
        const sender = byId.get(entry.from as PeerId)
        const failed = notice({ ...entry, from: to, reason: 'retention' })
        if (sender !== undefined && sender.state === 'open') sendControl(sender, failed)
        else if (cluster === undefined || !(await cluster.sendText(entry.from as PeerId, JSON.stringify(failed)).catch(() => false))) {
          const record: MailboxRecord = { kind: 'notice', from: to, epoch: entry.epoch, seq: entry.seq, id: entry.id, size: 0, storedAt: Date.now(), reason: 'retention' }
          const kept = await box.put(entry.from, record, new Uint8Array(0), boxLimits)
          if (kept.ok) poke(entry.from)
        }
      }
    })()
      .catch((error: unknown) => mailboxFailed('expire', error))
      .finally(() => (sweeping = false))
  }

  function mailboxFailed(operation: string, error: unknown): void {
    if (shuttingDown) return
    counters.mailboxFailures++
    log('error', 'mailbox_failed', { operation, message: errorMessage(error) })
  }

  function undeliverable(conn: Conn, peer: string, reason: 'offline' | 'slow'): void {
    refusals[reason]++
    sendControl(conn, { t: 'undeliverable', peer, reason })
  }

  // ---- presence ------------------------------------------------------------

  function watch(conn: Conn, peers: readonly PeerId[]): void {
    const next = new Set(peers)
    for (const peer of conn.watching) if (!next.has(peer)) unwatch(conn, peer)
    const added: PeerId[] = []
    for (const peer of next) {
      if (conn.watching.has(peer)) continue
      let set = watchers.get(peer)
      if (set === undefined) {
        watchers.set(peer, (set = new Set()))
        cluster?.watch(peer).catch((error: unknown) => log('error', 'cluster_failed', { operation: 'watch', id: peer, message: errorMessage(error) }))
      }
      set.add(conn)
      added.push(peer)
    }
    conn.watching = next
    // Peers already on the list got their state before and get every change since.
    for (const peer of added) void tellPresence(conn, peer)
  }

  async function tellPresence(conn: Conn, peer: PeerId): Promise<void> {
    const online = byId.has(peer) || (cluster !== undefined && (await cluster.isOnline(peer).catch(() => false)))
    if (conn.state === 'open' && conn.watching.has(peer)) sendControl(conn, { t: 'presence', peer, online })
  }

  function unwatch(conn: Conn, peer: PeerId): void {
    const set = watchers.get(peer)
    if (set === undefined) return
    set.delete(conn)
    if (set.size > 0) return
    watchers.delete(peer)
    announced.delete(peer)
    cluster?.unwatch(peer).catch((error: unknown) => log('error', 'cluster_failed', { operation: 'unwatch', id: peer, message: errorMessage(error) }))
  }

  function announce(peer: PeerId, online: boolean): void {
    if (shuttingDown) return
    const set = watchers.get(peer)
    if (set === undefined || announced.get(peer) === online) return
    announced.set(peer, online)
    const text = JSON.stringify({ t: 'presence', peer, online } satisfies RelayControl)
    for (const watcher of set) if (watcher.state === 'open') sendText(watcher, text, false)
  }

  // ---- sending, limits, closing --------------------------------------------

  function sendControl(conn: Conn, message: RelayControl, isForward = false): void {
    sendText(conn, JSON.stringify(message), isForward)
  }

  /**
   * Sends a text message unless the socket is too far behind. Forwarded
   * signals obey `maxPendingBytes` (checked by the caller); relay-generated
   * control messages are small and get twice that allowance.
   */
  function sendText(conn: Conn, text: string, isForward: boolean): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return
    if (!isForward && conn.ws.bufferedAmount > 2 * limits.maxPendingBytes) {
      refusals.slow_control++
      return
    }
    counters.controlOut++
    counters.bytesOut += Buffer.byteLength(text)
    conn.ws.send(text)
  }

  /** Token bucket: burst 2x the rate. Drops over the rate; closes after `rateLimitCloseMs` over it. */
  function takeToken(conn: Conn): boolean {
    const now = Date.now()
    const burst = limits.framesPerSecond * 2
    conn.tokens = Math.min(burst, conn.tokens + ((now - conn.refilledAt) * limits.framesPerSecond) / 1000)
    conn.refilledAt = now
    if (conn.tokens >= 1) {
      conn.tokens -= 1
      return true
    }
    refusals.rate++
    // "Over the rate" lasts while drops keep coming less than a second apart.
    if (conn.overSince === undefined || now - conn.lastDropAt > 1000) conn.overSince = now
    conn.lastDropAt = now
    if (now - conn.overSince >= limits.rateLimitCloseMs) {
      log('warn', 'rate_limited', { id: conn.id, session: conn.session })
      refuse(conn, 'rate_limited', CLOSE_CODES.RATE_LIMITED, 'rate limit exceeded')
    }
    return false
  }

  function pingAll(): void {
    for (const conn of conns) {
      if (conn.state !== 'open') continue
      if (!conn.alive) {
        log('info', 'idle', { id: conn.id, session: conn.session })
        refuse(conn, 'idle', CLOSE_CODES.IDLE, 'no pong')
        continue
      }
      conn.alive = false
      try {
        conn.ws.ping()
      } catch {
        // Socket closing: the close handler cleans up.
      }
    }
  }

  function count(conn: Conn, reason: RefusalReason, fields: Record<string, unknown> = {}): void {
    refusals[reason]++
    log('debug', 'refused', { reason, id: conn.id, session: conn.session, ...fields })
  }

  function refuse(conn: Conn, reason: RefusalReason, code: number, text: string): void {
    if (conn.state === 'closed') return
    refusals[reason]++
    closeConn(conn, code, text)
  }

  /** Takes the connection out of routing at once, then closes the socket (terminating it if the handshake stalls). */
  function closeConn(conn: Conn, code: number, text: string): void {
    if (conn.state === 'closed') return
    detach(conn)
    try {
      if (conn.ws.isPaused) conn.ws.resume() // to read the peer's close frame
      conn.ws.close(code, text)
    } catch {
      conn.ws.terminate()
    }
    conn.killTimer = setTimeout(() => conn.ws.terminate(), Math.min(2000, limits.pingIntervalMs))
    conn.killTimer.unref()
  }

  function detach(conn: Conn): void {
    if (conn.state === 'closed') return
    conn.state = 'closed'
    conn.queue = []
    conn.queuedBytes = 0
    clearTimeout(conn.authTimer)
    clearTimeout(conn.expiryTimer)
    for (const peer of conn.watching) unwatch(conn, peer)
    conn.watching = new Set()
    if (conn.id !== undefined && byId.get(conn.id) === conn) {
      byId.delete(conn.id)
      announce(conn.id, false)
      releaseClaim(conn.id)
    }
  }

  function onClose(conn: Conn, code: number): void {
    if (conn.id !== undefined) {
      // `logout`: the client closed; `closed`: the relay closed it (the reason was logged or counted).
      log('info', conn.state === 'closed' ? 'closed' : 'logout', { id: conn.id, session: conn.session, code, ms: Date.now() - conn.openedAt })
    }
    detach(conn)
    clearTimeout(conn.killTimer)
    conns.delete(conn)
    if (conns.size === 0) drained?.()
  }

  // ---- handle --------------------------------------------------------------

  function stats(): RelayStats {
    let pendingBytes = 0
    for (const conn of conns) pendingBytes += conn.ws.bufferedAmount
    return { connections: conns.size, authenticated: byId.size, ...counters, pendingBytes, refusals: { ...refusals } }
  }

  function close(): Promise<void> {
    shuttingDown = true
    closing ??= (async () => {
      clearInterval(pingTimer)
      clearInterval(sweepTimer)
      log('info', 'shutdown', { connections: conns.size })
      const allClosed = new Promise<void>((resolve) => {
        drained = resolve
        if (conns.size === 0) resolve()
      })
      for (const conn of conns) closeConn(conn, CLOSE_CODES.GOING_AWAY, 'relay shutting down')
      await Promise.race([allClosed, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
      for (const conn of conns) conn.ws.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await mailbox?.close().catch((error: unknown) => log('error', 'mailbox_failed', { operation: 'close', message: errorMessage(error) }))
      await cluster?.close().catch((error: unknown) => log('error', 'cluster_failed', { operation: 'close', message: errorMessage(error) }))
      log('info', 'stopped', {})
    })()
    return closing
  }

  return { host, port: boundPort, url, stats, close }
}

type AuthMode = { kind: 'jwt' | 'custom' | 'dev'; verify: (token: string) => Promise<VerifyResult> }

function resolveAuth(options: RelayOptions): AuthMode {
  const given = [options.verify !== undefined, options.jwtSecret !== undefined, options.dev === true].filter(Boolean).length
  if (given !== 1) throw new TypeError('give exactly one of verify, jwtSecret or dev: true')
  if (options.verify !== undefined) {
    const verify = options.verify
    if (typeof verify !== 'function') throw new TypeError('verify must be a function')
    return { kind: 'custom', verify: async (token) => verify(token) }
  }
  if (options.jwtSecret !== undefined) {
    const secret = options.jwtSecret
    const key = typeof secret === 'string' ? encoder.encode(secret) : secret
    if (!(key instanceof Uint8Array) || key.byteLength === 0) throw new TypeError('jwtSecret must be a non-empty string or Uint8Array')
    return {
      kind: 'jwt',
      verify: async (token) => {
        const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], requiredClaims: ['sub', 'exp'] })
        return { peerId: payload.sub ?? '', expiresAt: (payload.exp ?? 0) * 1000 }
      },
    }
  }
  return {
    kind: 'dev',
    verify: async (token) => {
      if (!token.startsWith('dev:')) throw new Error('dev tokens look like "dev:<peerId>"')
      return token.slice(4)
    },
  }
}

function resolveLimits(given: Partial<RelayLimits> | undefined): RelayLimits {
  if (given !== undefined && (typeof given !== 'object' || given === null)) throw new TypeError('limits must be an object')
  const out: Record<string, number> = { ...DEFAULT_RELAY_LIMITS }
  for (const [key, value] of Object.entries(given ?? {})) {
    if (!(key in DEFAULT_RELAY_LIMITS)) throw new TypeError(`unknown limit "${key}"`)
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new RangeError(`limits.${key} must be a positive integer`)
    out[key] = value
  }
  if (out.pingIntervalMs! > MAX_TIMER_MS || out.authTimeoutMs! > MAX_TIMER_MS) throw new RangeError('timeouts must fit a timer (< 2^31 ms)')
  if (out.mailboxMaxMessages! > 2 ** 30) throw new RangeError('limits.mailboxMaxMessages must be at most 2^30')
  return Object.freeze(out as unknown as RelayLimits)
}

/** The `failed` receipt a `notice` entry (or an expired message, `from` its receiver) stands for. */
function notice(entry: Pick<MailboxEntry, 'from' | 'epoch' | 'seq' | 'reason'>): RelayControl {
  return { t: 'failed', peer: entry.from, epoch: entry.epoch, seq: entry.seq, reason: (entry.reason ?? 'retention') as FailureReason, held: true }
}

/** The skip frame the mailbox keeps in place of a message it gave up on: the receiver moves past the seq. */
function skipOf(to: string, record: Pick<MailboxRecord, 'from' | 'epoch' | 'seq' | 'id'>): Uint8Array {
  return encodeFrame({
    kind: 'msg',
    from: record.from as PeerId,
    to: to as PeerId,
    epoch: record.epoch as Epoch,
    seq: record.seq,
    floor: 0,
    id: record.id as MessageId,
    contentKind: 'b',
    contents: new Uint8Array(0),
    skip: true,
  })
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function defaultLogger(entry: RelayLogEntry): void {
  process.stdout.write(`${JSON.stringify(entry)}\n`)
}
