import type { Clock, TimerHandle } from '../core/clock.js'
import { IlmError } from '../core/errors.js'
import { isEpoch, isPeerId, type Epoch, type PeerId } from '../core/ids.js'
import type { Transport, TransportEvents, TransportOpenOptions } from '../core/transport.js'
import {
  CLOSE_CODES,
  MAX_BUNDLE_BYTES,
  MAX_REDRAIN,
  MAX_WATCH,
  envelope,
  envelopeHead,
  isRelayUrl,
  openEnvelope,
  unpack,
  parseRelayControl,
  type ClientControl,
  type RelayControl,
  type RelayLimitsInfo,
} from '../protocol/relay.js'
import { decodeBase64Url, encodeBase64Url } from '../protocol/base64url.js'
import { Packer } from '../protocol/packer.js'
import { SendPace } from './send-pace.js'
import { systemClock } from '../runtime/system-clock.js'
import { backoffBounds, backoffDelay, unitDraw, type BackoffOptions } from './backoff.js'
import { environmentNetworkStatus, isEventTarget, isNetworkStatusSource, type NetworkStatusSource } from './network-status.js'

/**
 * The part of a WebSocket the transport uses. The browser / worker
 * `WebSocket` fits, and so does the `ws` package's class in Node.
 * Handlers are only ever assigned, never cleared: with `ws`, clearing
 * `onerror` would let a late `error` event crash the process.
 */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  readonly bufferedAmount: number
  onopen: ((event: never) => void) | null
  onmessage: ((event: never) => void) | null
  onclose: ((event: never) => void) | null
  onerror: ((event: never) => void) | null
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
}

/** A WebSocket class: the global `WebSocket`, or `ws`'s default export in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike

/** Where the connection to the relay stands. */
export type WebSocketStatus = 'connecting' | 'online' | 'offline' | 'failed' | 'closed'

/** A snapshot of the connection, for UIs ("reconnecting in 4 s") and diagnostics. */
export interface WebSocketTransportState {
  /**
   * - `connecting`: getting a token, opening the socket or logging in.
   * - `online`: logged in; frames flow.
   * - `offline`: disconnected, or not opened yet, or taken offline by the app
   *   (`setEnabled(false)`); once opened and enabled, a retry is due at
   *   `nextRetryAt`. Entered at once when the environment reports the network
   *   lost.
   * - `failed`: stopped for good because the relay refused this identity (`reason` says why).
   * - `closed`: stopped for good by `close()`, or replaced by a newer login of the same id.
   */
  readonly status: WebSocketStatus
  /** While `offline` and opened: when the next attempt starts (epoch ms, on the transport's clock). */
  readonly nextRetryAt?: number
  /** Why the last connection ended or why the transport stopped. */
  readonly reason?: string
  /** The relay URL in use (`connecting`, `online`) or to be tried next (`offline`). */
  readonly url?: string
}

/** Options of a {@link WebSocketTransport}. Give exactly one of `url` and `urls`. */
export interface WebSocketTransportOptions {
  /** This end's peer id; the relay must authenticate the token as this id. */
  readonly localId: string
  /** The relay's `ws:` or `wss:` URL. */
  readonly url?: string
  /** Several equivalent relays: the first attempt picks one at random, each reconnect moves to the next. */
  readonly urls?: readonly string[]
  /** The login token, or a function called before every login (so an app can refresh it). */
  readonly token: string | (() => string | Promise<string>)
  /** Drives backoff, heartbeats and polling (default: the system clock). */
  readonly clock?: Clock
  /** The WebSocket class (default: the global `WebSocket`; required in Node 20, e.g. `ws`). */
  readonly WebSocket?: WebSocketConstructor
  /** Reconnect delays: full jitter, `random(0, min(maxMs, initialMs * 2^attempt))` (defaults 500, 30 000). */
  readonly backoff?: BackoffOptions
  /**
   * A ping goes out every `heartbeatMs` (default 5 000), and one still
   * unanswered `heartbeatMs` later means the socket is half-open: it is
   * replaced. A link that dies is so noticed `heartbeatMs` to
   * `2 × heartbeatMs` later (5–10 s on defaults; the worst case is a death
   * just after a pong). A slow link is not a dead one: the verdict waits
   * another `heartbeatMs` whenever anything arrived since the last check (the
   * pong may sit behind a download) or the upload buffer shrank (the ping may
   * sit behind an upload).
   */
  readonly heartbeatMs?: number
  /**
   * The longest wait for `welcome` after a socket is created (default 15 000,
   * more than the relay's own 10 s login window). When left out while
   * `heartbeatMs` is given, `heartbeatMs`, as before the two were separate.
   */
  readonly loginTimeoutMs?: number
  /** How long `fetchKeys` waits for the relay's answer before it rejects `TRANSPORT_FAILED`, in ms (default 10 000). */
  readonly keysTimeoutMs?: number
  /** Above this many bytes buffered in the socket, `send` returns a promise that settles once half drained (default 4 MiB). */
  readonly maxBufferedBytes?: number
  /** Uniform draws in [0, 1) for jitter and the first URL (default `Math.random`); for tests. */
  readonly random?: () => number
  /** Where "network lost / back" comes from (default: {@link environmentNetworkStatus} of `globalThis`); for tests. */
  readonly networkStatus?: NetworkStatusSource
}

/** A listener of {@link WebSocketTransport.onState}. */
export type WebSocketStateListener = (state: WebSocketTransportState) => void

/** `WebSocket.OPEN` and `CLOSING`, the same in every implementation. */
const OPEN = 1
const CLOSING = 2
const DEFAULT_HEARTBEAT_MS = 5_000
const DEFAULT_LOGIN_TIMEOUT_MS = 15_000
const DEFAULT_KEYS_TIMEOUT_MS = 10_000
const DRAIN_POLL_FIRST_MS = 10
const DRAIN_POLL_MAX_MS = 50
const DISABLED_REASON = 'taken offline by the app'
const NETWORK_LOST_REASON = 'the network is offline (the environment reported it)'
/** Envelope heads kept encoded, per destination; one per peer an app talks to, so this is rarely reached. */
const MAX_CACHED_HEADS = 1024

/** A pending "wait until the socket drains" promise, shared by every send that hits the limit. */
interface Drain {
  readonly promise: Promise<void>
  readonly resolve: () => void
  readonly reject: (error: IlmError) => void
  timer: TimerHandle | undefined
  intervalMs: number
}

/** A `fetchKeys` waiting for the relay's `key` answer with its `n`. */
interface KeyFetch {
  readonly peer: PeerId
  readonly resolve: (bundle: Uint8Array | null) => void
  readonly reject: (error: IlmError) => void
  readonly timer: TimerHandle
}

/** The outstanding heartbeat ping of a connection. */
interface Ping {
  readonly n: number
  /** `bufferedAmount` at the last check; a shrinking buffer means the link is slow, not dead. */
  bufferedAtPing: number
  /** Something arrived since the last check: the link delivers, the pong may be queued behind it. */
  heard: boolean
}

/** A socket that exists but has not logged in; `deadline` gives up on it (the login timeout). */
interface Dialling {
  readonly url: string
  /** Failed connections since the last `welcome`: the backoff exponent. */
  readonly attempt: number
  readonly socket: WebSocketLike
  readonly deadline: TimerHandle
}

/** Logged in. The heartbeat and drain fields change in place; the rest is fixed for the connection. */
interface Online {
  readonly name: 'online'
  readonly url: string
  readonly socket: WebSocketLike
  /** The relay stores frames for offline peers. */
  readonly mailbox: boolean
  /** The relay answers `redrain`. */
  readonly redrains: boolean
  /** The frames sent within one turn, written in one message; undefined when the relay does not read packs. */
  readonly packer: Packer | undefined
  readonly limits: RelayLimitsInfo
  /** What this connection may still send within the relay's rate limit. */
  readonly pace: SendPace
  /** Peers reported online on this connection: exactly those reported offline when it ends. */
  readonly peers: Set<PeerId>
  /** `fetchKeys` calls sent on this connection and not answered yet, by `n`: rejected when it ends. */
  readonly fetches: Map<number, KeyFetch>
  /** The next ping, or the verdict on the outstanding one. */
  heartbeat: TimerHandle
  pings: number
  ping: Ping | undefined
  drain: Drain | undefined
}

/** Between attempts: `timer` starts the next one at `nextRetryAt`. */
interface WaitingToRetry {
  readonly name: 'waitingToRetry'
  readonly url: string
  readonly attempt: number
  readonly nextRetryAt: number
  readonly reason: string
  readonly timer: TimerHandle
}

/**
 * Where the transport is, with exactly the data of that phase. Every timer
 * and socket belongs to one phase and is released when the phase ends
 * (`#enter`); the public state is a function of the phase (`stateOf`).
 */
type Phase =
  /** Not opened yet; `enabled` is the app's switch, applied by `open()`. */
  | { readonly name: 'idle'; readonly enabled: boolean }
  /** Opened, and held down by `setEnabled(false)`; `attempt` resumes the backoff. */
  | { readonly name: 'disabled'; readonly attempt: number }
  /** Waiting for the token function. */
  | { readonly name: 'fetchingToken'; readonly url: string; readonly attempt: number }
  /** The socket is opening; `auth` goes out with `token` once it is open. */
  | ({ readonly name: 'opening'; readonly token: string } & Dialling)
  /** `auth` sent (with `keys`, the bundle it carried), waiting for `welcome`. */
  | ({ readonly name: 'loggingIn'; readonly keys: string | undefined } & Dialling)
  | Online
  | WaitingToRetry
  /** Stopped for good: the relay refused this identity. */
  | { readonly name: 'failed'; readonly reason: string }
  /** Stopped for good: `close()` (no reason) or replaced by a newer login. */
  | { readonly name: 'closed'; readonly reason?: string }

/**
 * A {@link Transport} through a relay server over WebSocket (browsers,
 * workers, Node), speaking the protocol of `protocol/relay.ts`.
 *
 * - Login: fetches the token, opens the socket, sends `auth`; online once the
 *   relay's `welcome` names `localId`. Then the watch list is (re-)sent and
 *   heartbeats start.
 * - Presence: peers are online as the relay reports them for the watched ids
 *   (`watch`), and as soon as a frame from them arrives (the relay only
 *   forwards from logged-in peers). `undeliverable` with reason `offline`
 *   reports a peer offline (`slow` and `unavailable` do not: the engine
 *   retransmits). Only changes are reported, except that `available` (the
 *   relay can route to a peer again after `unavailable`) reports the peer's
 *   state even when it is no change, so the engine sends what was refused
 *   now: online starts a session, offline sends to the mailbox again. When the connection
 *   drops, every online peer is reported offline.
 * - Mailbox: when the relay's `welcome` says it stores frames for offline
 *   peers, the engine hears `mailbox(true)` (and `false` when the connection
 *   drops), sends to offline peers too, and gets the relay's `stored` /
 *   `failed` receipts through `receipt`. Frames drained from the mailbox do
 *   not report their sender online.
 * - Key directory: `publishKeys` sends `keys` now when online, and the last
 *   bundle given with every login: in `auth`, and as `keys` after `welcome`
 *   unless the relay says it stored the one in `auth`; `fetchKeys` sends `key?` with a fresh
 *   `n` and settles on the `key` answer with that `n` for that peer (any other
 *   answer is ignored), rejecting `TRANSPORT_FAILED` when not online, when
 *   the connection ends first, or after `keysTimeoutMs`.
 * - Reconnects: exponential backoff with full jitter, moving to the next URL
 *   each time; at once after `GOING_AWAY` or an expired token refreshed by the
 *   token function, when that connection had been online. `wake()` (also when
 *   the network comes back and when the page becomes visible) retries at once.
 * - Network lost (the environment says so, see `networkStatus`): the socket,
 *   most likely dead, is dropped at once and the state is `offline`; retries
 *   go on with backoff (an offline report may be wrong for a relay on
 *   loopback), and the network's return retries at once.
 * - Half-open sockets: see `heartbeatMs`.
 * - Stops for good on `AUTH_FAILED`, a `welcome` for another id, or an expired
 *   fixed token (`failed`), and on `REPLACED` (`closed`): reports `closed()`.
 * - Sends fail with `TRANSPORT_FAILED` while not online or to a peer not known
 *   online; a send that leaves more than `maxBufferedBytes` in the socket
 *   returns a promise that settles once it drains below half.
 *
 * ```ts
 * const transport = new WebSocketTransport({ localId: 'alice', url: 'wss://relay.example', token: () => fetchToken() })
 * transport.onState((s) => render(s.status, s.nextRetryAt))
 * const ilm = await ILM.open({ store, transport })
 * ```
 */
export class WebSocketTransport implements Transport {
  /** This end's id, as the relay authenticates it. */
  readonly localId: PeerId
  /** The relay URLs, in failover order. */
  readonly urls: readonly string[]
  /**
   * Receives `signal` messages relayed from other peers (WebRTC signalling).
   * Set by a wrapper; a throw is rethrown asynchronously.
   */
  onSignal: ((from: PeerId, data: unknown) => void) | undefined = undefined

  readonly #clock: Clock
  readonly #token: string | (() => string | Promise<string>)
  readonly #WebSocket: WebSocketConstructor
  readonly #backoff: Required<BackoffOptions>
  readonly #heartbeatMs: number
  readonly #loginTimeoutMs: number
  readonly #keysTimeoutMs: number
  readonly #maxBufferedBytes: number
  readonly #random: () => number
  readonly #networkStatus: NetworkStatusSource
  readonly #stateListeners = new Set<WebSocketStateListener>()
  readonly #heads = new Map<PeerId, Uint8Array>()
  #phase: Phase = { name: 'idle', enabled: true }
  /** The last state published: `stateOf(#phase)`. */
  #state: WebSocketTransportState = Object.freeze(stateOf(this.#phase))
  /** `open()` was called; it may be, once, even after `close()`. */
  #opened = false
  /** The engine's handlers, from `open()` until the transport stops. */
  #events: TransportEvents | undefined
  /** What the relay's login drain sends per sender at most (`TransportOpenOptions.perSender`); unbounded when undefined. */
  #perSender: number | undefined
  /** The URL of the next attempt; moves on after a failed connection. */
  #urlIndex: number
  #watchList: readonly PeerId[] = []
  /** The last bundle given to `publishKeys`, as sent (base64url). */
  #keys: string | undefined
  /** The `n` of the last `key?`: unique for the transport's life, so an answer matches one fetch at most. */
  #fetched = 0
  #unlisten: (() => void) | undefined

  /**
   * A transport for `localId`, to be opened by its engine.
   * @throws TypeError on an invalid peer id, URL, token or `networkStatus`, or when no WebSocket class is available.
   * @throws RangeError on non-positive `heartbeatMs` / `loginTimeoutMs` / `keysTimeoutMs` / `maxBufferedBytes` or invalid backoff bounds.
   */
  constructor(options: WebSocketTransportOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('WebSocketTransport: options must be an object')
    const {
      localId,
      token,
      clock = systemClock,
      heartbeatMs = DEFAULT_HEARTBEAT_MS,
      keysTimeoutMs = DEFAULT_KEYS_TIMEOUT_MS,
      maxBufferedBytes = 4 * 1024 * 1024,
      random = Math.random,
    } = options
    const loginTimeoutMs = options.loginTimeoutMs ?? options.heartbeatMs ?? DEFAULT_LOGIN_TIMEOUT_MS
    if (!isPeerId(localId)) throw new TypeError(`WebSocketTransport: invalid peer id ${JSON.stringify(localId)}`)
    if (!((typeof token === 'string' && token.length > 0) || typeof token === 'function')) {
      throw new TypeError('WebSocketTransport: token must be a non-empty string or a function')
    }
    positive('heartbeatMs', heartbeatMs)
    positive('loginTimeoutMs', loginTimeoutMs)
    positive('keysTimeoutMs', keysTimeoutMs)
    positive('maxBufferedBytes', maxBufferedBytes)
    if (typeof random !== 'function') throw new TypeError('WebSocketTransport: random must be a function')
    if (options.networkStatus !== undefined && !isNetworkStatusSource(options.networkStatus)) {
      throw new TypeError('WebSocketTransport: networkStatus must have a subscribe function')
    }
    this.localId = localId
    this.urls = relayUrls(options)
    this.#token = token
    this.#clock = clock
    this.#WebSocket = options.WebSocket ?? globalWebSocket()
    this.#backoff = backoffBounds(options.backoff)
    this.#heartbeatMs = heartbeatMs
    this.#loginTimeoutMs = loginTimeoutMs
    this.#keysTimeoutMs = keysTimeoutMs
    this.#maxBufferedBytes = maxBufferedBytes
    this.#random = random
    this.#networkStatus = options.networkStatus ?? environmentNetworkStatus()
    this.#urlIndex = this.urls.length > 1 ? Math.min(this.urls.length - 1, Math.floor(unitDraw(random()) * this.urls.length)) : 0
  }

  /** The current connection state (a frozen snapshot). */
  get state(): WebSocketTransportState {
    return this.#state
  }

  /**
   * Calls `listener` with every new state (not the current one). A throw is
   * rethrown asynchronously. Returns the unsubscribe function.
   */
  onState(listener: WebSocketStateListener): () => void {
    if (typeof listener !== 'function') throw new TypeError('WebSocketTransport.onState: listener must be a function')
    const entry: WebSocketStateListener = (state) => listener(state)
    this.#stateListeners.add(entry)
    return () => void this.#stateListeners.delete(entry)
  }

  /**
   * Starts connecting (asynchronously: nothing is reported inside `open`).
   * Resolves at once, online or not. A no-op after `close()`.
   * @throws Error when called twice; TypeError on malformed `events`; RangeError when `options.perSender` is not a
   * positive integer.
   */
  open(events: TransportEvents, options?: TransportOpenOptions): void {
    if (this.#opened) throw new Error(`WebSocketTransport(${this.localId}).open: already opened`)
    if (!isEvents(events)) throw new TypeError('WebSocketTransport.open: events must have frame, peer and closed functions')
    const perSender = options?.perSender
    if (perSender !== undefined && (!Number.isSafeInteger(perSender) || perSender < 1))
      throw new RangeError('WebSocketTransport.open: options.perSender must be a positive integer')
    this.#opened = true
    // Past the most a redrain may ask for, the login's drain sends everything, as it did before relays could stop it.
    this.#perSender = perSender !== undefined && perSender <= MAX_REDRAIN ? perSender : undefined
    const phase = this.#phase
    if (phase.name !== 'idle') return
    this.#events = events
    this.#unlisten = this.#listen()
    if (phase.enabled) this.#connect(0)
    else this.#enter({ name: 'disabled', attempt: 0 })
  }

  /**
   * Sets the peers whose presence the relay reports (replacing the previous
   * list), sent now when online and again after every login. Invalid ids are
   * skipped; at most 10 000 are sent.
   */
  watch(peers: readonly PeerId[]): void {
    if (!Array.isArray(peers)) throw new TypeError('WebSocketTransport.watch: peers must be an array')
    if (isStopped(this.#phase)) return
    this.#watchList = [...new Set(peers.filter(isPeerId))].slice(0, MAX_WATCH)
    this.#sendWatch()
  }

  /**
   * Sends a frame to `to` through the relay. Returns a promise when the
   * socket's buffer is over `maxBufferedBytes` or the relay's rate limit
   * (`framesPerSecond`, from its `welcome`) is used up for now: it resolves once
   * the buffer is below half and the rate allows more, and rejects with
   * `TRANSPORT_FAILED` if the connection drops first.
   * @throws IlmError('TRANSPORT_FAILED') when not online, `to` is not known online (and the relay has no mailbox), the frame exceeds the relay's `maxFrameBytes`, or the socket refuses it.
   */
  send(to: PeerId, data: Uint8Array): void | Promise<void> {
    const online = this.#onlinePhase('send')
    if (!isUint8Array(data)) throw new TypeError('WebSocketTransport.send: data must be a Uint8Array')
    if (!online.peers.has(to) && !online.mailbox) throw this.#failure(`peer ${JSON.stringify(to)} is not online`)
    const head = this.#headOf(to)
    const bytes = head.byteLength + data.byteLength
    if (bytes > online.limits.maxFrameBytes) {
      // The relay would end the whole connection (TOO_BIG) over this one frame.
      throw this.#failure(`a frame of ${bytes} bytes exceeds the relay's maxFrameBytes ${online.limits.maxFrameBytes}`)
    }
    if (online.packer !== undefined) online.packer.add(data, head)
    else this.#write(online.socket, envelope(to, data))
    const paced = online.pace.take(this.#clock.now()) > 0
    return paced || online.socket.bufferedAmount + (online.packer?.pendingBytes ?? 0) > this.#maxBufferedBytes ? this.#drained(online) : undefined
  }

  /**
   * Sends WebRTC signalling `data` (JSON-serialisable) to `to` through the relay.
   * @throws IlmError('TRANSPORT_FAILED') when not online; TypeError when `data` cannot be serialised.
   */
  signal(to: PeerId, data: unknown): void {
    const online = this.#onlinePhase('signal')
    if (!isPeerId(to)) throw new TypeError(`WebSocketTransport.signal: invalid peer id ${JSON.stringify(to)}`)
    let text: string
    try {
      text = JSON.stringify({ t: 'signal', to, data } satisfies ClientControl)
    } catch (error) {
      throw new TypeError('WebSocketTransport.signal: data is not JSON-serialisable', { cause: error })
    }
    online.packer?.flush()
    this.#write(online.socket, text)
  }

  /**
   * Publishes this end's public key bundle to the relay's key directory: now
   * when online, and again after every login (the last bundle given wins).
   * @throws TypeError when `bundle` is not a Uint8Array; RangeError when it is empty or over 768 bytes.
   */
  publishKeys(bundle: Uint8Array): void {
    if (!isUint8Array(bundle)) throw new TypeError('WebSocketTransport.publishKeys: bundle must be a Uint8Array')
    if (bundle.byteLength === 0 || bundle.byteLength > MAX_BUNDLE_BYTES) {
      throw new RangeError(`WebSocketTransport.publishKeys: a bundle has 1 to ${MAX_BUNDLE_BYTES} bytes, got ${bundle.byteLength}`)
    }
    if (isStopped(this.#phase)) return
    this.#keys = encodeBase64Url(bundle)
    this.#sendKeys()
  }

  /**
   * `peer`'s key bundle from the relay's key directory, or `null` when the
   * relay has none. What the relay says is not trusted: verify it.
   * @throws TypeError on an invalid peer id.
   * @returns a promise that rejects with `TRANSPORT_FAILED` at once when not online, or when the connection ends or `keysTimeoutMs` passes before the answer.
   */
  fetchKeys(peer: PeerId): Promise<Uint8Array | null> {
    if (!isPeerId(peer)) throw new TypeError(`WebSocketTransport.fetchKeys: invalid peer id ${JSON.stringify(peer)}`)
    const online = this.#phase
    if (online.name !== 'online' || online.socket.readyState !== OPEN) {
      return Promise.reject(this.#failure(`cannot fetch keys while ${this.#state.status === 'online' ? 'the socket closes' : this.#state.status}`))
    }
    const n = ++this.#fetched
    return new Promise<Uint8Array | null>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        if (online.fetches.delete(n)) reject(this.#failure(`no answer from the relay for the keys of ${JSON.stringify(peer)} within ${this.#keysTimeoutMs} ms`))
      }, this.#keysTimeoutMs)
      online.fetches.set(n, { peer, resolve, reject, timer })
      this.#sendControl(online.socket, { t: 'key?', n, peer })
    })
  }

  /**
   * Asks the relay's mailbox to send again up to `limit` messages from `from`
   * past seq `after` of `epoch` (see `Transport.redrain`); nothing while not
   * online or when the relay has no mailbox or is older than `redrain` (a
   * login sends the whole mailbox).
   * @throws TypeError on an invalid peer id, epoch or seq; RangeError when `limit` is not 1 to 65 536.
   */
  redrain(from: PeerId, epoch: Epoch, after: number, limit: number): void {
    if (!isPeerId(from) || !isEpoch(epoch) || !Number.isSafeInteger(after) || after < -1) {
      throw new TypeError('WebSocketTransport.redrain: from, epoch and after (a seq or -1) must be valid')
    }
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_REDRAIN) throw new RangeError(`WebSocketTransport.redrain: limit must be 1 to ${MAX_REDRAIN}`)
    const online = this.#phase
    if (online.name === 'online' && online.redrains) this.#sendControl(online.socket, { t: 'redrain', from, epoch, after, limit })
  }

  /**
   * Takes the connection down (`false`) and keeps it down until `true`: an
   * app's "work offline" switch. Messages keep queuing in the store meanwhile.
   */
  setEnabled(enabled: boolean): void {
    const phase = this.#phase
    switch (phase.name) {
      case 'failed':
      case 'closed':
        return
      case 'idle':
        if (phase.enabled !== enabled) this.#enter({ name: 'idle', enabled })
        return
      case 'disabled':
        if (enabled) this.#connect(phase.attempt)
        return
      default:
        if (!enabled) this.#enter({ name: 'disabled', attempt: attemptOf(phase) })
    }
  }

  /**
   * Retries now when waiting to reconnect; when online, checks the connection
   * with an early ping. Call it when the network comes back or the app returns
   * to the foreground (the transport already does when `networkStatus`
   * reports the network back and on `visibilitychange` where that exists). A
   * no-op otherwise.
   */
  wake(): void {
    const phase = this.#phase
    if (phase.name === 'waitingToRetry') this.#connect(phase.attempt)
    else if (phase.name === 'online' && phase.ping === undefined) this.#heartbeat(phase)
  }

  /** Closes the socket (code 1000) and stops every timer and listener. Idempotent; no event follows. */
  close(): void {
    if (this.#phase.name === 'closed') return
    this.#events = undefined
    this.#stopListening()
    this.#enter({ name: 'closed' })
  }

  // --- phases ---------------------------------------------------------------

  /** The one place the phase changes: publishes the new state, then releases what the old phase held. */
  #enter(next: Phase): void {
    const previous = this.#phase
    this.#phase = next
    this.#publish()
    this.#release(previous, next)
  }

  /** Clears the timers of a phase left, closes its socket unless the next phase keeps it, and reports a lost connection. */
  #release(old: Phase, next: Phase): void {
    switch (old.name) {
      case 'opening':
      case 'loggingIn':
        if (!(next.name === 'loggingIn' && next.deadline === old.deadline)) this.#clock.clearTimeout(old.deadline)
        break
      case 'waitingToRetry':
        this.#clock.clearTimeout(old.timer)
        break
      case 'online':
        // What this turn sent goes before the socket closes.
        if (old.socket.readyState === OPEN) old.packer?.flush()
        old.packer?.clear()
        this.#clock.clearTimeout(old.heartbeat)
        this.#settleDrain(old)
        this.#settleFetches(old)
        break
    }
    const socket = socketOf(old)
    if (socket !== undefined && socketOf(next) !== socket && socket.readyState < CLOSING) closeQuietly(socket)
    if (old.name !== 'online') return
    if (old.mailbox) this.#emit((e) => e.mailbox?.(false))
    for (const peer of [...old.peers]) {
      old.peers.delete(peer)
      this.#emit((e) => e.peer(peer, false))
    }
  }

  /** Derives the state from the phase and tells the listeners when it changed. */
  #publish(): void {
    const state = stateOf(this.#phase)
    if (sameState(state, this.#state)) return
    this.#state = Object.freeze(state)
    for (const listener of [...this.#stateListeners]) {
      try {
        listener(this.#state)
      } catch (error) {
        rethrowLater(error)
      }
    }
  }

  // --- connecting -----------------------------------------------------------

  #connect(attempt: number): void {
    const fetching = { name: 'fetchingToken', url: this.urls[this.#urlIndex] as string, attempt } as const
    this.#enter(fetching)
    // Through a promise even for a fixed token: a throwing token function becomes a rejection.
    Promise.resolve()
      .then(() => (typeof this.#token === 'string' ? this.#token : this.#token()))
      .then(
        (token: unknown) => {
          if (this.#phase !== fetching) return
          if (typeof token === 'string' && token.length > 0) this.#dial(fetching, token)
          else this.#stop('failed', `the token function returned ${describeValue(token)}, not a non-empty string`)
        },
        (error: unknown) => {
          // Not the relay's fault: the next attempt stays on the same URL.
          if (this.#phase === fetching) this.#retry(false, `the token function failed: ${describeError(error)}`, attempt, false)
        },
      )
  }

  #dial(from: { readonly url: string; readonly attempt: number }, token: string): void {
    const { url, attempt } = from
    let socket: WebSocketLike
    try {
      socket = new this.#WebSocket(url)
      socket.binaryType = 'arraybuffer'
    } catch (error) {
      this.#retry(false, `cannot open a WebSocket to ${url}: ${describeError(error)}`, attempt)
      return
    }
    const current = (): boolean => socketOf(this.#phase) === socket
    socket.onopen = () => {
      const phase = this.#phase
      if (phase.name !== 'opening' || phase.socket !== socket) return
      const keys = this.#keys
      const window = this.#perSender
      this.#sendControl(socket, { t: 'auth', token: phase.token, pack: true, ...(keys !== undefined && { keys }), ...(window !== undefined && { window }) })
      this.#enter({ name: 'loggingIn', url, attempt, socket, deadline: phase.deadline, keys })
    }
    socket.onmessage = (event: { data: unknown }) => {
      if (current()) this.#receive(event.data)
    }
    socket.onclose = (event: { code?: unknown; reason?: unknown }) => {
      if (current()) this.#dropped(closeCode(event.code), closeReason(event.code, event.reason))
    }
    // An error event is always followed by a close event, which carries the code.
    socket.onerror = () => {}
    const deadline = this.#clock.setTimeout(() => {
      const phase = this.#phase
      if ((phase.name === 'opening' || phase.name === 'loggingIn') && phase.socket === socket) {
        this.#dropped(undefined, `no welcome within ${this.#loginTimeoutMs} ms`)
      }
    }, this.#loginTimeoutMs)
    this.#enter({ name: 'opening', url, attempt, token, socket, deadline })
  }

  #welcome(m: Extract<RelayControl, { t: 'welcome' }>): void {
    const phase = this.#phase
    if (phase.name !== 'loggingIn') return
    if (m.id !== this.localId) {
      this.#stop('failed', `the relay authenticated this connection as ${JSON.stringify(m.id)}, not ${JSON.stringify(this.localId)}`)
      return
    }
    const online: Online = {
      name: 'online',
      url: phase.url,
      socket: phase.socket,
      mailbox: m.mailbox === true,
      redrains: m.mailbox === true && m.redrain === true,
      packer: m.pack === true ? new Packer(m.limits.maxFrameBytes, (message) => writeQuietly(phase.socket, message)) : undefined,
      limits: m.limits,
      pace: new SendPace(m.limits.framesPerSecond, this.#clock.now()),
      peers: new Set(),
      fetches: new Map(),
      heartbeat: this.#clock.setTimeout(() => this.#beat(online), this.#heartbeatMs),
      pings: 0,
      ping: undefined,
      drain: undefined,
    }
    this.#enter(online)
    if (online.mailbox) this.#emit((e) => e.mailbox?.(true))
    this.#sendWatch()
    // Not again when the relay stored it with the login (and no newer one was given since).
    if (m.keys !== true || phase.keys !== this.#keys) this.#sendKeys()
  }

  // --- disconnecting --------------------------------------------------------

  /** The current connection ended (closed by the relay, or given up on): stop or schedule the next attempt. */
  #dropped(code: number | undefined, reason: string): void {
    const phase = this.#phase
    if (phase.name !== 'opening' && phase.name !== 'loggingIn' && phase.name !== 'online') return
    const wasOnline = phase.name === 'online'
    const attempt = attemptOf(phase)
    switch (code) {
      case CLOSE_CODES.AUTH_FAILED:
        this.#stop('failed', reason)
        return
      case CLOSE_CODES.REPLACED:
        this.#stop('closed', reason)
        return
      case CLOSE_CODES.AUTH_EXPIRED:
        if (typeof this.#token === 'string') this.#stop('failed', `${reason}; the token is a fixed string, so it cannot be refreshed`)
        else this.#retry(wasOnline, reason, attempt)
        return
      default:
        // Only a connection that had been online earns an immediate retry: no tight loop against a broken relay.
        this.#retry(wasOnline && code === CLOSE_CODES.GOING_AWAY, reason, attempt)
    }
  }

  /** The environment lost the network: the socket is most likely dead, so it is not waited for. */
  #networkLost(): void {
    const phase = this.#phase
    switch (phase.name) {
      case 'fetchingToken':
      case 'opening':
      case 'loggingIn':
      case 'online':
        // Not the relay's fault: the next attempt stays on the same URL.
        this.#retry(false, NETWORK_LOST_REASON, attemptOf(phase), false)
    }
  }

  #retry(immediate: boolean, reason: string, attempt: number, nextUrl = true): void {
    if (nextUrl) this.#urlIndex = (this.#urlIndex + 1) % this.urls.length
    const delay = immediate ? 0 : backoffDelay(attempt, this.#backoff, this.#random)
    const waiting: WaitingToRetry = {
      name: 'waitingToRetry',
      url: this.urls[this.#urlIndex] as string,
      attempt: immediate ? attempt : attempt + 1,
      nextRetryAt: this.#clock.now() + delay,
      reason,
      timer: this.#clock.setTimeout(() => {
        if (this.#phase === waiting) this.#connect(waiting.attempt)
      }, delay),
    }
    this.#enter(waiting)
  }

  /** Stops for good (not by `close()`): the engine hears what the connection's end means, then `closed()`. */
  #stop(status: 'failed' | 'closed', reason: string): void {
    const events = this.#events
    const stopped: Phase = { name: status, reason }
    this.#stopListening()
    this.#enter(stopped)
    this.#events = undefined
    // A handler that called close() meanwhile has silenced the transport.
    if (events !== undefined && this.#phase === stopped) emitTo(events, (e) => e.closed())
  }

  /** Follows the network's and the page's signals: network lost, network back, page visible again. */
  #listen(): () => void {
    const removers = [this.#networkStatus.subscribe((online) => (online ? this.wake() : this.#networkLost()))]
    const doc = (globalThis as { document?: unknown }).document
    if (isEventTarget(doc)) {
      const visible = (): void => {
        if ((doc as { visibilityState?: unknown }).visibilityState !== 'hidden') this.wake()
      }
      doc.addEventListener('visibilitychange', visible)
      removers.push(() => doc.removeEventListener('visibilitychange', visible))
    }
    return () => {
      for (const remove of removers.splice(0)) remove()
    }
  }

  #stopListening(): void {
    this.#unlisten?.()
    this.#unlisten = undefined
  }

  // --- receiving ------------------------------------------------------------

  #receive(data: unknown): void {
    const phase = this.#phase
    if (phase.name === 'online' && phase.ping !== undefined) phase.ping.heard = true
    if (typeof data === 'string') {
      const message = parseRelayControl(data)
      if (message !== undefined) this.#control(message)
      return
    }
    if (phase.name !== 'online') return
    const bytes = toBytes(data)
    if (bytes === undefined) return
    const envelopes: { from: PeerId; frame: Uint8Array; stored: boolean }[] = []
    for (const one of unpack(bytes) ?? []) {
      const opened = openEnvelope(one)
      // A message with any malformed envelope is ignored whole.
      if (opened === undefined || !isPeerId(opened.address)) return
      envelopes.push({ from: opened.address, frame: opened.frame, stored: opened.stored })
    }
    for (const opened of envelopes) {
      // A listener may have closed the transport or dropped the connection meanwhile.
      if (this.#phase !== phase) return
      const { from, frame, stored } = opened
      // The relay forwards only from logged-in peers: a live frame proves its sender online, a stored one does not.
      if (!stored) this.#markOnline(phase, from)
      this.#emit((e) => e.frame(from, frame, stored))
    }
  }

  #control(m: RelayControl): void {
    if (m.t === 'welcome') {
      this.#welcome(m)
      return
    }
    const phase = this.#phase
    if (phase.name !== 'online') return
    switch (m.t) {
      case 'pong':
        phase.ping = undefined
        return
      case 'presence':
        if (!isPeerId(m.peer)) return
        if (m.online) this.#markOnline(phase, m.peer)
        else this.#markOffline(phase, m.peer)
        return
      case 'available':
        // The relay could not route to the peer (`unavailable`) and now can: a session starts at once, not at the
        // engine's retransmission timer, which may have backed off far meanwhile.
        // Reported even when it is no change: the engine then sends now what it was refused.
        if (!isPeerId(m.peer)) return
        if (phase.peers.has(m.peer) === m.online) this.#emit((e) => e.peer(m.peer as PeerId, m.online))
        else if (m.online) this.#markOnline(phase, m.peer)
        else this.#markOffline(phase, m.peer)
        return
      case 'undeliverable':
        // 'slow' (the relay shedding load) and 'unavailable' (its cluster backend down): the engine retransmits.
        if (m.reason === 'offline' && isPeerId(m.peer)) this.#markOffline(phase, m.peer)
        return
      case 'signal':
        if (isPeerId(m.from)) this.#signalled(m.from, m.data)
        return
      case 'stored':
        if (isPeerId(m.peer)) this.#emit((e) => e.receipt?.({ status: 'stored', peer: m.peer as PeerId, epoch: m.epoch, seq: m.seq }))
        return
      case 'failed':
        if (isPeerId(m.peer))
          this.#emit((e) => e.receipt?.({ status: 'failed', peer: m.peer as PeerId, epoch: m.epoch, seq: m.seq, reason: m.reason, held: m.held }))
        return
      case 'key':
        this.#keysAnswered(phase, m)
        return
      case 'redrained':
        if (phase.redrains) this.#emit((e) => e.redrained?.(m.from as PeerId, m.more))
        return
    }
  }

  /** Settles the fetch the answer is for; an answer with an unknown `n`, or for another peer, changes nothing. */
  #keysAnswered(online: Online, m: Extract<RelayControl, { t: 'key' }>): void {
    const fetch = online.fetches.get(m.n)
    if (fetch === undefined || fetch.peer !== m.peer) return
    const bundle = m.bundle === null ? null : decodeBase64Url(m.bundle)
    if (bundle === undefined) return
    online.fetches.delete(m.n)
    this.#clock.clearTimeout(fetch.timer)
    fetch.resolve(bundle)
  }

  #signalled(from: PeerId, data: unknown): void {
    const hook = this.onSignal
    if (hook === undefined) return
    try {
      hook(from, data)
    } catch (error) {
      rethrowLater(error)
    }
  }

  #markOnline(online: Online, peer: PeerId): void {
    if (peer === this.localId || online.peers.has(peer)) return
    online.peers.add(peer)
    this.#emit((e) => e.peer(peer, true))
  }

  #markOffline(online: Online, peer: PeerId): void {
    if (!online.peers.delete(peer)) return
    this.#emit((e) => e.peer(peer, false))
  }

  // --- sending --------------------------------------------------------------

  #onlinePhase(what: string): Online {
    const phase = this.#phase
    if (phase.name === 'online' && phase.socket.readyState === OPEN) return phase
    const { status, reason } = this.#state
    throw this.#failure(`cannot ${what} while ${status === 'online' ? 'the socket closes' : status}${reason === undefined ? '' : ` (${reason})`}`)
  }

  /** The envelope head for `to`, encoded once: a few peers get every frame. The cache is bounded (emptied when full). */
  #headOf(to: PeerId): Uint8Array {
    let head = this.#heads.get(to)
    if (head === undefined) {
      if (this.#heads.size >= MAX_CACHED_HEADS) this.#heads.clear()
      this.#heads.set(to, (head = envelopeHead(to)))
    }
    return head
  }

  #write(socket: WebSocketLike, data: string | Uint8Array): void {
    try {
      socket.send(data)
    } catch (error) {
      throw new IlmError('TRANSPORT_FAILED', `WebSocketTransport(${this.localId}): the socket refused the data`, { cause: error })
    }
  }

  #sendControl(socket: WebSocketLike, message: ClientControl): void {
    const phase = this.#phase
    // In the order sent: this turn's envelopes before the control message. It counts toward the rate as they do.
    if (phase.name === 'online' && phase.socket === socket) {
      phase.packer?.flush()
      phase.pace.take(this.#clock.now())
    }
    try {
      socket.send(JSON.stringify(message))
    } catch {
      // The socket is closing: its close event (or the deadline) takes over.
    }
  }

  #sendWatch(): void {
    const phase = this.#phase
    if (phase.name === 'online') this.#sendControl(phase.socket, { t: 'watch', peers: this.#watchList })
  }

  #sendKeys(): void {
    const phase = this.#phase
    if (phase.name === 'online' && this.#keys !== undefined) this.#sendControl(phase.socket, { t: 'keys', bundle: this.#keys })
  }

  /** Rejects the fetches of a connection that ended: their answers can no longer come. */
  #settleFetches(online: Online): void {
    for (const fetch of online.fetches.values()) {
      this.#clock.clearTimeout(fetch.timer)
      fetch.reject(this.#failure('the connection closed before the relay answered a keys fetch'))
    }
    online.fetches.clear()
  }

  /** The promise of a send that overfilled the socket or used up the rate; one is shared until both allow more. */
  #drained(online: Online): Promise<void> {
    if (online.drain !== undefined) return online.drain.promise
    let resolve!: () => void
    let reject!: (error: IlmError) => void
    const promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    // A caller that drops the promise must not cause an unhandled rejection.
    promise.catch(() => {})
    const drain: Drain = { promise, resolve, reject, timer: undefined, intervalMs: DRAIN_POLL_FIRST_MS }
    online.drain = drain
    this.#pollDrain(online, drain)
    return promise
  }

  #pollDrain(online: Online, drain: Drain): void {
    const draining = online.socket.bufferedAmount + (online.packer?.pendingBytes ?? 0) > this.#maxBufferedBytes / 2
    drain.timer = this.#clock.setTimeout(
      () => {
        drain.timer = undefined
        if (online.drain !== drain) return
        if (online.socket.bufferedAmount <= this.#maxBufferedBytes / 2 && online.pace.wait(this.#clock.now()) === 0) {
          online.drain = undefined
          drain.resolve()
          return
        }
        if (draining) drain.intervalMs = Math.min(DRAIN_POLL_MAX_MS, drain.intervalMs * 2)
        this.#pollDrain(online, drain)
      },
      Math.max(draining ? drain.intervalMs : 0, online.pace.wait(this.#clock.now())),
    )
  }

  /** Rejects a pending drain: its socket is gone, and what it buffered with it. */
  #settleDrain(online: Online): void {
    const drain = online.drain
    if (drain === undefined) return
    online.drain = undefined
    if (drain.timer !== undefined) this.#clock.clearTimeout(drain.timer)
    drain.reject(this.#failure('the connection closed before the socket drained'))
  }

  // --- heartbeat ------------------------------------------------------------

  #beat(online: Online): void {
    if (this.#phase === online) this.#heartbeat(online)
  }

  /** Runs every `heartbeatMs` while online (and early on `wake()`): a ping, or the verdict on the outstanding one. */
  #heartbeat(online: Online): void {
    this.#clock.clearTimeout(online.heartbeat)
    const { socket, ping } = online
    if (ping !== undefined) {
      if (!progressed(socket, ping)) {
        this.#dropped(undefined, `no pong within ${this.#heartbeatMs} ms (half-open connection)`)
        return
      }
    } else {
      const n = ++online.pings
      this.#sendControl(socket, { t: 'ping', n })
      online.ping = { n, bufferedAtPing: socket.bufferedAmount, heard: false }
    }
    online.heartbeat = this.#clock.setTimeout(() => this.#beat(online), this.#heartbeatMs)
  }

  // --- plumbing -------------------------------------------------------------

  #emit(fn: (events: TransportEvents) => void): void {
    if (this.#events !== undefined) emitTo(this.#events, fn)
  }

  #failure(why: string): IlmError {
    return new IlmError('TRANSPORT_FAILED', `WebSocketTransport(${this.localId}): ${why}`)
  }
}

/** The public state of a phase: the only place it is derived. */
function stateOf(phase: Phase): WebSocketTransportState {
  switch (phase.name) {
    case 'idle':
      return { status: 'offline' }
    case 'disabled':
      return { status: 'offline', reason: DISABLED_REASON }
    case 'fetchingToken':
    case 'opening':
    case 'loggingIn':
      return { status: 'connecting', url: phase.url }
    case 'online':
      return { status: 'online', url: phase.url }
    case 'waitingToRetry':
      return { status: 'offline', nextRetryAt: phase.nextRetryAt, reason: phase.reason, url: phase.url }
    case 'failed':
      return { status: 'failed', reason: phase.reason }
    case 'closed':
      return phase.reason === undefined ? { status: 'closed' } : { status: 'closed', reason: phase.reason }
  }
}

function sameState(a: WebSocketTransportState, b: WebSocketTransportState): boolean {
  return a.status === b.status && a.nextRetryAt === b.nextRetryAt && a.reason === b.reason && a.url === b.url
}

function socketOf(phase: Phase): WebSocketLike | undefined {
  return phase.name === 'opening' || phase.name === 'loggingIn' || phase.name === 'online' ? phase.socket : undefined
}

/** The backoff exponent a phase carries; a connection that logged in starts over. */
function attemptOf(phase: Exclude<Phase, { name: 'idle' | 'disabled' | 'failed' | 'closed' }>): number {
  return phase.name === 'online' ? 0 : phase.attempt
}

function isStopped(phase: Phase): boolean {
  return phase.name === 'failed' || phase.name === 'closed'
}

/**
 * Whether the link moved since the last check although the pong has not come:
 * something arrived (the pong may be queued behind a download), or the upload
 * buffer shrank (the ping may be queued behind an upload). Resets the marks
 * for the next check.
 */
function progressed(socket: WebSocketLike, ping: Ping): boolean {
  if (ping.heard) {
    ping.heard = false
    ping.bufferedAtPing = socket.bufferedAmount
    return true
  }
  const buffered = socket.bufferedAmount
  if (buffered === 0 || buffered >= ping.bufferedAtPing) return false
  ping.bufferedAtPing = buffered
  return true
}

function positive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`WebSocketTransport: ${name} must be positive, got ${String(value)}`)
}

/** The validated relay URLs of the options. */
function relayUrls(options: WebSocketTransportOptions): readonly string[] {
  const { url, urls } = options
  if ((url === undefined) === (urls === undefined)) throw new TypeError('WebSocketTransport: give exactly one of url and urls')
  const list = url !== undefined ? [url] : urls
  if (!Array.isArray(list) || list.length === 0) throw new TypeError('WebSocketTransport: urls must be a non-empty array')
  for (const candidate of list) {
    if (!isRelayUrl(candidate)) throw new TypeError(`WebSocketTransport: ${JSON.stringify(candidate)} is not a ws: or wss: URL`)
  }
  return Object.freeze([...(list as string[])])
}

function globalWebSocket(): WebSocketConstructor {
  const ctor = (globalThis as { WebSocket?: unknown }).WebSocket
  if (typeof ctor !== 'function') throw new TypeError('WebSocketTransport: no global WebSocket here (Node 20); pass options.WebSocket, e.g. the ws package')
  return ctor as WebSocketConstructor
}

/** Message data as bytes: an ArrayBuffer (`binaryType = 'arraybuffer'`) or a view (a Node Buffer). Blobs are not expected. */
function toBytes(data: unknown): Uint8Array | undefined {
  // By tag, not instanceof: the buffer may come from another realm.
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return new Uint8Array(data as ArrayBuffer)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return undefined
}

function closeCode(code: unknown): number | undefined {
  return typeof code === 'number' ? code : undefined
}

function closeReason(code: unknown, reason: unknown): string {
  const text = typeof reason === 'string' && reason.length > 0 ? `: ${reason}` : ''
  return `connection closed (code ${typeof code === 'number' ? code : 'unknown'}${text})`
}

/**
 * Writes a pack of the frames of one turn. A socket that refuses it is closing: its close event takes over, and the
 * engine sends again what is not acknowledged.
 */
function writeQuietly(socket: WebSocketLike, message: Uint8Array): void {
  try {
    socket.send(message)
  } catch {
    // Closing: see above.
  }
}

function closeQuietly(socket: WebSocketLike): void {
  try {
    socket.close(1000)
  } catch {
    // Already closing; nothing left to release.
  }
}

/** Calls a handler; a throw is rethrown asynchronously so the transport's own bookkeeping completes. */
function emitTo(events: TransportEvents, fn: (events: TransportEvents) => void): void {
  try {
    fn(events)
  } catch (error) {
    rethrowLater(error)
  }
}

function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error
  })
}

function isEvents(events: unknown): events is TransportEvents {
  if (typeof events !== 'object' || events === null) return false
  const e = events as Record<string, unknown>
  return typeof e.frame === 'function' && typeof e.peer === 'function' && typeof e.closed === 'function'
}

function isUint8Array(value: unknown): value is Uint8Array {
  // By tag when not by instanceof: the value may come from another realm. Not by tag alone: this runs per frame, and
  // the tag's string cost 0.6 us per message in a Chromium worker's profile.
  return value instanceof Uint8Array || Object.prototype.toString.call(value) === '[object Uint8Array]'
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function describeValue(value: unknown): string {
  return typeof value === 'string' ? 'an empty string' : typeof value
}
