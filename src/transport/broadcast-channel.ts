import { randomId } from '../runtime/random-id.js'
import type { Clock, TimerHandle } from '../core/clock.js'
import { IlmError } from '../core/errors.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import type { Transport, TransportEvents } from '../core/transport.js'
import { systemClock } from '../runtime/system-clock.js'

/**
 * The part of a `BroadcastChannel` the transport uses. A real
 * `BroadcastChannel` fits; so does a test double.
 */
export interface BroadcastChannelLike {
  postMessage(message: unknown): void
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void
  close(): void
}

/** Options of a {@link BroadcastChannelTransport}. */
export interface BroadcastChannelTransportOptions {
  /** This end's peer id. Not authenticated beyond "same origin": see {@link BroadcastChannelTransport}. */
  readonly localId: string
  /** Peers only see peers of the same network (channel `intersession-net:${network}`). Default `'default'`. */
  readonly network?: string
  /** Drives heartbeats and offline detection (default: the system clock). */
  readonly clock?: Clock
  /** Interval between heartbeats, in ms (default 1000). */
  readonly heartbeatMs?: number
  /** A peer unheard for this long is reported offline, in ms (default 3500; must exceed `heartbeatMs`). */
  readonly offlineAfterMs?: number
  /** Creates the channel for a name (default: `new BroadcastChannel(name)`). Called once, by `open`. */
  readonly channel?: (name: string) => BroadcastChannelLike
}

/**
 * The messages on the channel. Every message names its sender's id and the
 * nonce of the sending transport instance, so a reloaded peer (same id, new
 * instance) is told apart from the one it replaced.
 */
export type WireMessage =
  | { readonly t: 'announce' | 'heartbeat' | 'bye'; readonly from: PeerId; readonly nonce: string }
  | { readonly t: 'frame'; readonly from: PeerId; readonly nonce: string; readonly to: PeerId; readonly data: Uint8Array }

/** The channel name used for a network. */
export function broadcastChannelName(network: string): string {
  return `intersession-net:${network}`
}

/** Longest nonce accepted from the wire; ours are 30 characters. */
const MAX_NONCE_LENGTH = 64

type State = 'new' | 'open' | 'dead'

interface PeerRecord {
  readonly peer: PeerId
  /** The instance of this peer currently believed live. */
  nonce: string
  /** `clock.now()` when anything from that instance was last heard. */
  lastHeard: number
  /** The offline check; armed while the record exists. */
  timer: TimerHandle | undefined
}

/**
 * A loopback {@link Transport} between peers of one origin (tabs, workers,
 * iframes of the same site) over the standard `BroadcastChannel` API.
 *
 * Security: `from` is NOT cryptographically authenticated. Any same-origin
 * code can post on the channel under any id; the transport only relies on
 * the browser confining a channel to its origin. Use it where same-origin
 * code is trusted (it is, in practice: it can read the same storage).
 *
 * - Presence: `open` posts an `announce`; whoever hears one answers with a
 *   heartbeat. Heartbeats go out every `heartbeatMs`; a peer unheard for
 *   `offlineAfterMs` is reported offline, and a `bye` (posted by `close`)
 *   reports it offline at once. A peer is reported online the first time
 *   anything from it is heard.
 * - Instances: each opened transport has a nonce, and nonces order by open
 *   time (then a per-realm counter, then randomness). When a peer's nonce
 *   changes to a greater one, its old session is reported over
 *   (`peer(id, false)` then `peer(id, true)`); messages from a lesser nonce
 *   while the greater one is online are stale and ignored.
 * - Same id twice (two tabs of one identity): the instance with the greater
 *   nonce wins; the other reports `closed()` and goes dead, like a second
 *   login replacing the first.
 * - Every frame is posted to every instance on the network (the channel is a
 *   broadcast); receivers drop frames addressed to someone else.
 * - Events are always asynchronous: never inside `open` or `send`.
 *
 * ```ts
 * const transport = new BroadcastChannelTransport({ localId: 'alice' })
 * const ilm = await ILM.open({ store, transport })
 * ```
 */
export class BroadcastChannelTransport implements Transport {
  /** This end's id (trusted by same-origin peers, not authenticated). */
  readonly localId: PeerId
  /** The channel name, `intersession-net:${network}`. */
  readonly channelName: string
  readonly #clock: Clock
  readonly #heartbeatMs: number
  readonly #offlineAfterMs: number
  readonly #makeChannel: (name: string) => BroadcastChannelLike
  #state: State = 'new'
  #opened = false
  /** Why a dead transport is dead, for error messages. */
  #deadReason = 'closed'
  #nonce = ''
  #channel: BroadcastChannelLike | undefined
  #events: TransportEvents | undefined
  #heartbeat: TimerHandle | undefined
  /** Online peers only: a record exists exactly while its peer is reported online. */
  readonly #peers = new Map<PeerId, PeerRecord>()

  /**
   * A transport for `localId`, to be opened by its engine.
   * @throws TypeError on an invalid peer id or network, or when no `BroadcastChannel` exists and no `channel` factory is given.
   * @throws RangeError on a non-positive `heartbeatMs`, or `offlineAfterMs` not above it.
   */
  constructor(options: BroadcastChannelTransportOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('BroadcastChannelTransport: options must be an object')
    const { localId, network = 'default', clock = systemClock, heartbeatMs = 1000, offlineAfterMs = 3500 } = options
    if (!isPeerId(localId)) throw new TypeError(`BroadcastChannelTransport: invalid peer id ${JSON.stringify(localId)}`)
    if (typeof network !== 'string') throw new TypeError('BroadcastChannelTransport: network must be a string')
    if (!(Number.isFinite(heartbeatMs) && heartbeatMs > 0)) {
      throw new RangeError(`BroadcastChannelTransport: heartbeatMs must be positive, got ${String(heartbeatMs)}`)
    }
    if (!(Number.isFinite(offlineAfterMs) && offlineAfterMs > heartbeatMs)) {
      throw new RangeError(`BroadcastChannelTransport: offlineAfterMs must exceed heartbeatMs, got ${String(offlineAfterMs)}`)
    }
    this.localId = localId
    this.channelName = broadcastChannelName(network)
    this.#clock = clock
    this.#heartbeatMs = heartbeatMs
    this.#offlineAfterMs = offlineAfterMs
    this.#makeChannel = options.channel ?? defaultChannel()
  }

  /**
   * Joins the network: opens the channel, announces itself and starts
   * heartbeats. A no-op after `close()`.
   * @throws Error when called twice; TypeError on malformed `events`.
   */
  open(events: TransportEvents): void {
    if (this.#opened) throw new Error(`BroadcastChannelTransport(${this.localId}).open: already opened`)
    if (!isEvents(events)) throw new TypeError('BroadcastChannelTransport.open: events must have frame, peer and closed functions')
    this.#opened = true
    if (this.#state === 'dead') return
    this.#events = events
    this.#nonce = makeNonce(this.#clock.now())
    const channel = this.#makeChannel(this.channelName)
    this.#channel = channel
    this.#state = 'open'
    // A queued microtask per message: even a channel double that delivers
    // synchronously cannot make an event fire inside `open` or `send`.
    channel.addEventListener('message', (event) => {
      const data: unknown = event.data
      queueMicrotask(() => this.#receive(data))
    })
    this.#post('announce')
    this.#scheduleHeartbeat()
  }

  /**
   * Posts a frame to `to`. Only exactly the bytes of `data`'s view go out.
   * @throws IlmError('TRANSPORT_FAILED') when not open (closed, replaced, not opened yet) or `to` is not online.
   */
  send(to: PeerId, data: Uint8Array): void {
    if (this.#state !== 'open') {
      const why = this.#state === 'new' ? 'not opened' : this.#deadReason
      throw new IlmError('TRANSPORT_FAILED', `BroadcastChannelTransport(${this.localId}): ${why}`)
    }
    if (!isUint8Array(data)) throw new TypeError('BroadcastChannelTransport.send: data must be a Uint8Array')
    if (!this.#peers.has(to)) {
      throw new IlmError('TRANSPORT_FAILED', `BroadcastChannelTransport(${this.localId}): peer ${JSON.stringify(to)} is unreachable`)
    }
    const message: WireMessage = { t: 'frame', from: this.localId, nonce: this.#nonce, to, data: ownBytes(data) }
    try {
      this.#channel?.postMessage(message)
    } catch (error) {
      throw new IlmError('TRANSPORT_FAILED', `BroadcastChannelTransport(${this.localId}): postMessage failed`, { cause: error })
    }
  }

  /** Leaves the network: posts `bye`, stops timers, closes the channel. Idempotent; no event follows. */
  close(): void {
    if (this.#state === 'dead') return
    if (this.#state === 'open') this.#post('bye')
    this.#shutDown()
  }

  #shutDown(): void {
    this.#state = 'dead'
    this.#events = undefined
    if (this.#heartbeat !== undefined) this.#clock.clearTimeout(this.#heartbeat)
    this.#heartbeat = undefined
    for (const record of this.#peers.values()) this.#disarm(record)
    this.#peers.clear()
    const channel = this.#channel
    this.#channel = undefined
    try {
      channel?.close()
    } catch {
      // Already closed by its owner: nothing left to release.
    }
  }

  #receive(raw: unknown): void {
    if (this.#state !== 'open') return
    const message = parseWire(raw)
    if (message === undefined || message.nonce === this.#nonce) return
    if (message.from === this.localId) {
      this.#fromTwin(message)
      return
    }
    if (message.t === 'bye') {
      this.#bye(message.from, message.nonce)
      return
    }
    if (!this.#heard(message.from, message.nonce)) return
    if (message.t === 'announce') this.#post('heartbeat')
    else if (message.t === 'frame' && message.to === this.localId) this.#emit((e) => e.frame(message.from, message.data))
  }

  /** Another instance with our id: the greater nonce is the live one. */
  #fromTwin(message: WireMessage): void {
    if (message.nonce > this.#nonce) {
      this.#displaced()
      return
    }
    // The twin is older and missed our announce: let it hear us now.
    if (message.t !== 'bye') this.#post('heartbeat')
  }

  #displaced(): void {
    const events = this.#events
    this.#post('bye')
    this.#shutDown()
    this.#deadReason = 'replaced by a newer instance with the same id'
    if (events !== undefined) emitTo(events, (e) => e.closed())
  }

  /**
   * Notes that instance `nonce` of `peer` is alive, reporting presence
   * changes. False when the message is from a stale instance and must be ignored.
   */
  #heard(peer: PeerId, nonce: string): boolean {
    const record = this.#peers.get(peer)
    if (record === undefined) {
      this.#peers.set(peer, this.#arm({ peer, nonce, lastHeard: this.#clock.now(), timer: undefined }))
      this.#emit((e) => e.peer(peer, true))
      return true
    }
    if (record.nonce !== nonce) {
      if (nonce < record.nonce) return false
      record.nonce = nonce
      this.#emit((e) => e.peer(peer, false))
      this.#emit((e) => e.peer(peer, true))
    }
    record.lastHeard = this.#clock.now()
    return true
  }

  #bye(peer: PeerId, nonce: string): void {
    const record = this.#peers.get(peer)
    if (record === undefined || record.nonce !== nonce) return
    this.#goOffline(record)
  }

  #goOffline(record: PeerRecord): void {
    this.#disarm(record)
    this.#peers.delete(record.peer)
    this.#emit((e) => e.peer(record.peer, false))
  }

  /** One timer per peer, re-armed for the remainder, so a busy link does not churn timers per frame. */
  #arm(record: PeerRecord, delay = this.#offlineAfterMs): PeerRecord {
    record.timer = this.#clock.setTimeout(() => this.#checkOffline(record), delay)
    return record
  }

  #disarm(record: PeerRecord): void {
    if (record.timer !== undefined) this.#clock.clearTimeout(record.timer)
    record.timer = undefined
  }

  #checkOffline(record: PeerRecord): void {
    record.timer = undefined
    if (this.#state !== 'open') return
    const silentFor = this.#clock.now() - record.lastHeard
    if (silentFor < this.#offlineAfterMs) {
      this.#arm(record, this.#offlineAfterMs - silentFor)
      return
    }
    if (this.#peers.get(record.peer) === record) this.#goOffline(record)
  }

  #scheduleHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimeout(() => {
      this.#heartbeat = undefined
      if (this.#state !== 'open') return
      this.#post('heartbeat')
      this.#scheduleHeartbeat()
    }, this.#heartbeatMs)
  }

  /** Posts a presence message; a failure is left to the peers' offline detection. */
  #post(t: 'announce' | 'heartbeat' | 'bye'): void {
    const message: WireMessage = { t, from: this.localId, nonce: this.#nonce }
    try {
      this.#channel?.postMessage(message)
    } catch {
      // The channel was closed under us (or the page is unloading): peers time us out.
    }
  }

  #emit(fn: (events: TransportEvents) => void): void {
    if (this.#events !== undefined && this.#state === 'open') emitTo(this.#events, fn)
  }
}

/** Calls a handler; a throw is rethrown asynchronously so the remaining events of this message still go out. */
function emitTo(events: TransportEvents, fn: (events: TransportEvents) => void): void {
  try {
    fn(events)
  } catch (error) {
    queueMicrotask(() => {
      throw error
    })
  }
}

/** The validated message, or undefined for anything malformed. Never throws. */
export function parseWire(raw: unknown): WireMessage | undefined {
  try {
    if (typeof raw !== 'object' || raw === null) return undefined
    const m = raw as Record<string, unknown>
    const { t, from, nonce } = m
    if (!isPeerId(from) || !isNonce(nonce)) return undefined
    if (t === 'announce' || t === 'heartbeat' || t === 'bye') return { t, from, nonce }
    if (t !== 'frame') return undefined
    const { to, data } = m
    if (!isPeerId(to) || !isUint8Array(data)) return undefined
    return { t, from, nonce, to, data }
  } catch {
    // A hostile getter or proxy: malformed like anything else.
    return undefined
  }
}

function isNonce(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NONCE_LENGTH
}

function isUint8Array(value: unknown): value is Uint8Array {
  // By tag when not by instanceof: the value may come from another realm. Not by tag alone: this runs per frame, and
  // the tag's string cost 0.6 us per message in a Chromium worker's profile.
  return value instanceof Uint8Array || Object.prototype.toString.call(value) === '[object Uint8Array]'
}

function isEvents(events: unknown): events is TransportEvents {
  if (typeof events !== 'object' || events === null) return false
  const e = events as Record<string, unknown>
  return typeof e.frame === 'function' && typeof e.peer === 'function' && typeof e.closed === 'function'
}

/**
 * The bytes of the view in a buffer of their own: structured clone copies a
 * view's whole backing buffer, which may be far larger than the view.
 */
function ownBytes(data: Uint8Array): Uint8Array {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer
  return whole ? data : data.slice()
}

let instanceCounter = 0

/**
 * A nonce that sorts after every nonce made earlier: fixed-width base-36 time,
 * then a per-realm counter (same millisecond, same realm), then randomness
 * (same millisecond, different realms).
 */
function makeNonce(nowMs: number): string {
  const time = Math.max(0, Math.floor(nowMs)).toString(36).padStart(11, '0')
  instanceCounter = (instanceCounter + 1) % 36 ** 6
  return `${time}.${instanceCounter.toString(36).padStart(6, '0')}.${randomId().slice(0, 11)}`
}

function defaultChannel(): (name: string) => BroadcastChannelLike {
  if (typeof globalThis.BroadcastChannel !== 'function') {
    throw new TypeError('BroadcastChannelTransport: no global BroadcastChannel here; pass options.channel')
  }
  return (name) => new BroadcastChannel(name)
}
