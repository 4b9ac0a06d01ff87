import type { IncomingMessage } from 'node:http'
import type { RawData, WebSocket } from 'ws'
import type { Clock } from '../core/clock.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import { CLOSE_CODES, openEnvelope, parseClientControl, unpack } from '../protocol/relay.js'
import { isExpiredCredential, type Authenticator, type Credential } from './auth.js'
import type { RelayCluster } from './cluster/cluster.js'
import { Connection } from './connection.js'
import type { ConnectionTable } from './connection-table.js'
import type { KeyService } from './key-service.js'
import type { RelayLimits } from './options.js'
import type { Presence } from './presence.js'
import { errorMessage, type RelayLog } from './relay-log.js'
import { repeat } from './repeat.js'
import type { Router } from './router.js'
import type { RefusalReason, RelayCounters } from './stats.js'
import type { StoreAndForward } from './store-and-forward.js'

/** Extra token cost of a `watch` per this many peers (it fans out into presence messages). */
const WATCH_PEERS_PER_TOKEN = 100
/** Extra token cost of a `redrain` per this many messages asked for. */
const REDRAIN_MESSAGES_PER_TOKEN = 100
/** How long a shutdown waits for sockets to finish their closing handshake before it terminates them, in ms. */
const SHUTDOWN_GRACE_MS = 2000

/** What the gateway works with. */
export interface GatewayContext {
  readonly clock: Clock
  readonly limits: RelayLimits
  readonly counters: RelayCounters
  readonly log: RelayLog
  readonly auth: Authenticator
  readonly connections: ConnectionTable
  readonly router: Router
  readonly presence: Presence
  readonly storeAndForward: StoreAndForward | undefined
  readonly cluster: RelayCluster | undefined
  readonly keys: KeyService
}

/**
 * Every socket's life at the relay: accepted (within `maxConnections`),
 * logged in (token verified, the peer claimed in the cluster, welcomed, its
 * mailbox drained), its messages taken in (rate limited, control messages
 * answered, envelopes and signals handed to the router, key directory
 * messages to the key service), kept alive by
 * pings, and closed: taken out of routing at once, then the socket closes.
 */
export class Gateway {
  readonly #context: GatewayContext
  #stopPinging: (() => void) | undefined = undefined
  #shuttingDown = false
  /** Resolves the shutdown's wait once the last socket closed. */
  #allClosed: (() => void) | undefined = undefined
  /** Peers a test took offline (`testControl`): refused at login until let back. */
  readonly #cutOff = new Set<PeerId>()

  constructor(context: GatewayContext) {
    this.#context = context
  }

  /** Starts pinging logged-in sockets every `pingIntervalMs`. */
  start(): void {
    this.#stopPinging = repeat(this.#context.clock, this.#context.limits.pingIntervalMs, () => this.#pingAll())
  }

  /** Takes a socket the WebSocket server accepted. */
  accept(ws: WebSocket, req: IncomingMessage): void {
    const { counters, connections, limits } = this.#context
    ws.on('error', (error: Error & { code?: string }) => {
      // ws closes the socket itself (1009 for oversize, 1002/1007 for bad framing).
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#count(conn, 'too_big')
      else this.#count(conn, 'malformed', { message: error.message })
    })
    const conn = new Connection(ws, req.socket.remoteAddress ?? '', this.#context)
    counters.accepted++
    connections.all.add(conn)
    ws.on('close', (code: number) => this.#onClose(conn, code))
    if (this.#shuttingDown) {
      this.#close(conn, CLOSE_CODES.GOING_AWAY, 'relay shutting down')
      return
    }
    if (connections.all.size > limits.maxConnections && !this.#evictOneLoggingIn(conn)) {
      this.#refuse(conn, 'full', CLOSE_CODES.FULL, 'relay full')
      return
    }
    conn.armAuthTimeout(() => this.#refuse(conn, 'auth_timeout', CLOSE_CODES.AUTH_TIMEOUT, 'no auth in time'))
    ws.on('pong', () => (conn.alive = true))
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = toBuffer(data)
      counters.bytesIn += buf.byteLength
      conn.alive = true
      if (conn.state === 'verifying') {
        if (!conn.queueDuringLogin(buf, isBinary)) this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'too much sent before welcome')
        return
      }
      this.#onMessage(conn, buf, isBinary)
    })
  }

  /** Another node claimed `peer`: its connection here closes REPLACED. */
  replacedElsewhere(peer: PeerId): void {
    const conn = this.#context.connections.get(peer)
    if (conn === undefined) return
    this.#context.log('info', 'replaced', { id: peer, old: conn.session, elsewhere: true })
    this.#refuse(conn, 'replaced', CLOSE_CODES.REPLACED, 'replaced by a newer login')
  }

  /**
   * For tests (`testControl`): `false` closes `peer`'s connection and refuses
   * its logins (UNAVAILABLE, so its client keeps retrying) until `true`.
   */
  setPeerOnline(peer: PeerId, online: boolean): void {
    this.#context.log('info', 'test_control', { id: peer, online })
    if (online) return void this.#cutOff.delete(peer)
    this.#cutOff.add(peer)
    const conn = this.#context.connections.get(peer)
    if (conn !== undefined) this.#refuse(conn, 'unavailable', CLOSE_CODES.UNAVAILABLE, 'taken offline by a test')
  }

  /**
   * Refuses new sockets and closes every open one GOING_AWAY; resolves once
   * all have closed, terminating those still closing after a grace period.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true
    this.#stopPinging?.()
    const { connections, clock } = this.#context
    const allClosed = new Promise<void>((resolve) => {
      this.#allClosed = resolve
      if (connections.all.size === 0) resolve()
    })
    for (const conn of connections.all) this.#close(conn, CLOSE_CODES.GOING_AWAY, 'relay shutting down')
    await Promise.race([allClosed, new Promise<void>((resolve) => clock.setTimeout(resolve, SHUTDOWN_GRACE_MS))])
    for (const conn of connections.all) conn.ws.terminate()
  }

  #onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.state === 'closed') return
    const counters = this.#context.counters
    if (conn.state === 'auth') {
      const control = isBinary ? undefined : parseClientControl(data.toString('utf8'))
      if (control?.t !== 'auth') {
        this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'expected auth first')
        return
      }
      counters.controlIn++
      conn.packs = control.pack === true
      void this.#login(conn, control.token, control.keys, control.window)
      return
    }
    if (isBinary) {
      this.#onEnvelopes(conn, data)
      return
    }
    counters.controlIn++
    if (!this.#pass(conn)) return
    const control = parseClientControl(data.toString('utf8'))
    if (control === undefined) {
      this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'malformed control message')
      return
    }
    switch (control.t) {
      case 'auth': {
        this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'already authenticated')
        return
      }
      case 'ping':
        conn.sendControl({ t: 'pong', n: control.n })
        return
      case 'watch': {
        if (!control.peers.every(isPeerId)) {
          this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'watch: invalid peer id')
          return
        }
        conn.limiter.charge(Math.floor(control.peers.length / WATCH_PEERS_PER_TOKEN)) // fan-out cost, may go into debt
        this.#context.presence.watch(conn, control.peers)
        return
      }
      case 'signal': {
        if (!isPeerId(control.to)) {
          this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'signal: invalid peer id')
          return
        }
        this.#context.router.signal(conn, control.to, control.data)
        return
      }
      case 'keys':
        this.#context.keys.publish(conn, control.bundle)
        return
      case 'key?':
        this.#context.keys.fetch(conn, control.n, control.peer as PeerId)
        return
      case 'redrain':
        // It fans out into up to `limit` stored messages, as a watch into presence messages (may go into debt).
        conn.limiter.charge(Math.floor(control.limit / REDRAIN_MESSAGES_PER_TOKEN))
        void conn.drain?.redrain(control)
        return
    }
  }

  /**
   * Routes each envelope of a binary message (one, or a pack's), each charged to the rate limit as a message. A
   * message with any malformed envelope closes the connection with none of it routed.
   */
  #onEnvelopes(conn: Connection, data: Buffer): void {
    const counters = this.#context.counters
    const envelopes = unpack(data) ?? []
    const frames: { readonly to: PeerId; readonly frame: Uint8Array }[] = []
    for (const one of envelopes) {
      const opened = openEnvelope(one)
      if (opened !== undefined && isPeerId(opened.address)) frames.push({ to: opened.address, frame: opened.frame })
    }
    counters.framesIn += Math.max(1, envelopes.length)
    if (frames.length === 0 || frames.length !== envelopes.length) {
      this.#refuse(conn, 'malformed', CLOSE_CODES.PROTOCOL, 'malformed envelope')
      return
    }
    if (frames.length > 1) counters.packsIn++
    for (const { to, frame } of frames) {
      // One refused is dropped (its sender retransmits); the others still go, unless the connection closed.
      if (this.#pass(conn)) this.#context.router.route(conn, to, frame)
      else if (conn.state === 'closed') return
    }
  }

  /** Charges one message to `conn`'s rate limit: false when it is refused (and, past the limit's grace, the connection closed). */
  #pass(conn: Connection): boolean {
    const verdict = conn.limiter.take()
    if (verdict === 'pass') return true
    this.#context.counters.refusals.rate++
    if (verdict === 'close') {
      this.#context.log('warn', 'rate_limited', { id: conn.id, session: conn.session })
      this.#refuse(conn, 'rate_limited', CLOSE_CODES.RATE_LIMITED, 'rate limit exceeded')
    }
    return false
  }

  async #login(conn: Connection, token: string, bundle: string | undefined, perSender: number | undefined): Promise<void> {
    const { auth, clock, log, connections, cluster, limits, storeAndForward, presence, keys } = this.#context
    conn.state = 'verifying'
    // Checked after each await: the login may have timed out, or the relay begun shutting down, meanwhile.
    const ended = (): boolean => conn.state !== 'verifying'
    conn.ws.pause()
    let credential: Credential
    try {
      credential = await auth.verify(token)
    } catch (error) {
      if (ended()) return
      const expired = isExpiredCredential(error)
      const reason = expired ? 'token expired' : 'authentication failed'
      log('warn', 'auth_refused', { session: conn.session, remote: conn.remote, reason, detail: errorMessage(error) })
      this.#refuse(conn, expired ? 'auth_expired' : 'auth_failed', expired ? CLOSE_CODES.AUTH_EXPIRED : CLOSE_CODES.AUTH_FAILED, reason)
      return
    }
    if (ended()) return
    const { peerId, expiresAt } = credential
    if (!isPeerId(peerId)) {
      log('warn', 'auth_refused', { session: conn.session, remote: conn.remote, reason: 'invalid peer id' })
      this.#refuse(conn, 'auth_failed', CLOSE_CODES.AUTH_FAILED, 'invalid peer id')
      return
    }
    if (expiresAt !== undefined && expiresAt <= clock.now()) {
      log('warn', 'auth_refused', { session: conn.session, remote: conn.remote, reason: 'token expired', id: peerId })
      this.#refuse(conn, 'auth_expired', CLOSE_CODES.AUTH_EXPIRED, 'token expired')
      return
    }
    if (this.#cutOff.has(peerId)) {
      this.#refuse(conn, 'unavailable', CLOSE_CODES.UNAVAILABLE, 'taken offline by a test')
      return
    }
    // Stored before anyone can see the peer online, so that nobody is served its previous bundle (after a wiped store).
    const published = bundle !== undefined && (await keys.publishAtLogin(peerId, bundle))
    if (ended()) return
    conn.disarmAuthTimeout()
    const old = connections.get(peerId)
    if (old !== undefined) {
      log('info', 'replaced', { id: peerId, old: old.session, session: conn.session })
      this.#refuse(old, 'replaced', CLOSE_CODES.REPLACED, 'replaced by a newer login')
    }
    if (cluster !== undefined) {
      try {
        await cluster.claim(peerId)
      } catch (error) {
        log('error', 'cluster_failed', { operation: 'claim', id: peerId, message: errorMessage(error) })
        this.#refuse(conn, 'unavailable', CLOSE_CODES.UNAVAILABLE, 'cluster unavailable')
        return
      }
      if (ended()) {
        if (!connections.has(peerId)) this.#releaseClaim(peerId)
        return
      }
    }
    conn.id = peerId
    conn.state = 'open'
    connections.bind(peerId, conn)
    if (expiresAt !== undefined) {
      conn.armExpiry(expiresAt, () => {
        log('info', 'token_expired', { id: conn.id, session: conn.session })
        this.#refuse(conn, 'auth_expired', CLOSE_CODES.AUTH_EXPIRED, 'token expired')
      })
    }
    conn.sendControl({
      t: 'welcome',
      id: peerId,
      session: conn.session,
      limits: { maxFrameBytes: limits.maxFrameBytes, framesPerSecond: limits.framesPerSecond },
      ...(storeAndForward !== undefined && { mailbox: true, redrain: true }),
      pack: true,
      ...(published && { keys: true }),
    })
    if (storeAndForward !== undefined) {
      conn.drain = storeAndForward.openDrain(peerId, conn, perSender)
      void conn.drain.drain()
    }
    this.#context.counters.logins++
    log('info', 'login', { id: peerId, session: conn.session, remote: conn.remote })
    presence.announce(peerId, true)
    for (const m of conn.takeLoginQueue()) this.#onMessage(conn, m.data, m.isBinary)
    if (conn.state === 'open') conn.ws.resume()
  }

  /**
   * At the limit, the oldest socket that has not even sent `auth` makes room
   * (closed FULL), so sockets that never log in cannot lock peers out until
   * the login timeout; a login takes milliseconds. False if there is none.
   */
  #evictOneLoggingIn(newcomer: Connection): boolean {
    for (const other of this.#context.connections.all) {
      if (other === newcomer || other.state !== 'auth') continue
      this.#refuse(other, 'full', CLOSE_CODES.FULL, 'relay full')
      return true
    }
    return false
  }

  #pingAll(): void {
    for (const conn of this.#context.connections.all) {
      if (conn.state !== 'open') continue
      if (!conn.alive) {
        this.#context.log('info', 'idle', { id: conn.id, session: conn.session })
        this.#refuse(conn, 'idle', CLOSE_CODES.IDLE, 'no pong')
        continue
      }
      conn.ping()
    }
  }

  #count(conn: Connection, reason: RefusalReason, fields: Record<string, unknown> = {}): void {
    this.#context.counters.refusals[reason]++
    this.#context.log('debug', 'refused', { reason, id: conn.id, session: conn.session, ...fields })
  }

  #refuse(conn: Connection, reason: RefusalReason, code: number, text: string): void {
    if (conn.state === 'closed') return
    this.#context.counters.refusals[reason]++
    this.#close(conn, code, text)
  }

  /** Takes the connection out of routing at once, then closes the socket. */
  #close(conn: Connection, code: number, text: string): void {
    if (conn.state === 'closed') return
    this.#detach(conn)
    conn.closeSocket(code, text)
  }

  #detach(conn: Connection): void {
    if (conn.state === 'closed') return
    conn.markClosed()
    this.#context.presence.forget(conn)
    if (this.#context.connections.unbind(conn)) {
      const id = conn.id!
      this.#context.presence.announce(id, false)
      this.#releaseClaim(id)
    }
  }

  #onClose(conn: Connection, code: number): void {
    const { log, clock, connections } = this.#context
    if (conn.id !== undefined) {
      // `logout`: the client closed; `closed`: the relay closed it (the reason was logged or counted).
      log('info', conn.state === 'closed' ? 'closed' : 'logout', { id: conn.id, session: conn.session, code, ms: clock.now() - conn.openedAt })
    }
    this.#detach(conn)
    conn.socketClosed()
    connections.all.delete(conn)
    if (connections.all.size === 0) this.#allClosed?.()
  }

  #releaseClaim(peer: PeerId): void {
    this.#context.cluster
      ?.release(peer)
      .catch((error: unknown) => this.#context.log('error', 'cluster_failed', { operation: 'release', id: peer, message: errorMessage(error) }))
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}
