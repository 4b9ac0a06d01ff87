import type { Clock, TimerHandle } from '../core/clock.js'
import { IlmError } from '../core/errors.js'
import { isPeerId, type Epoch, type PeerId } from '../core/ids.js'
import type { Transport, TransportEvents, TransportOpenOptions } from '../core/transport.js'
import { systemClock } from '../runtime/system-clock.js'
import type { DataChannelLike } from './data-channel.js'
import { PortChannel } from './port-channel.js'

/** A transport that can also carry WebRTC signalling (the relay's WebSocket transport). */
export interface SignallingTransport extends Transport {
  /** Sends signalling data to `to` through the relay; throws when offline. */
  signal(to: PeerId, data: unknown): void
  /** Where signalling data from other peers goes (the relay stamped `from`). */
  onSignal: ((from: PeerId, data: unknown) => void) | undefined
  /** Retry connecting now. */
  wake?(): void
  /** Take the connection down and keep it down, or bring it back. */
  setEnabled?(enabled: boolean): void
}

/**
 * What a {@link WebRtcTransport} asks of the place that can make
 * `RTCPeerConnection`s (a page: workers have no WebRTC). The data channel it
 * opens is handed back with {@link WebRtcTransport.attachChannel}.
 */
export interface RtcConnector {
  /** Start (initiator) or prepare for (answerer) a connection to `peer`. */
  connect(peer: PeerId, initiator: boolean): void
  /** Signalling data from `peer`. */
  signal(peer: PeerId, data: unknown): void
  /** Tear the connection to `peer` down. */
  disconnect(peer: PeerId): void
}

/** Options of {@link WebRtcTransport}. */
export interface WebRtcTransportOptions {
  /** The relay transport: signalling, and the path for every frame no channel carries. */
  readonly relay: SignallingTransport
  readonly connector: RtcConnector
  readonly clock?: Clock
  /** Give up on a channel that is not open after this long and stay on the relay. Default 10 s. */
  readonly openTimeoutMs?: number
  /** Wait before trying a direct channel to a peer again after one failed, unless the relay sees the peer come online again first. Default 30 s. */
  readonly retryAfterMs?: number
  /** Above this many buffered bytes, `send` returns a promise that resolves once the channel drains. Default 1 MiB. */
  readonly highWaterBytes?: number
}

interface Link {
  channel: DataChannelLike | undefined
  open: boolean
  timer: TimerHandle | undefined
}

/**
 * Frames go peer to peer over an ordered, reliable WebRTC data channel when one
 * is open, and through the relay otherwise. Switching either way mid-stream is
 * safe: the engine's seqs, acks and retransmissions absorb any loss or
 * reordering at the switch. Identity: a channel is bound to the peer the relay
 * introduced in signalling (the relay stamps `from`), so frames on it are
 * reported as from that peer.
 */
export class WebRtcTransport implements Transport {
  readonly localId: string
  readonly #relay: SignallingTransport
  readonly #connector: RtcConnector
  readonly #clock: Clock
  readonly #openTimeoutMs: number
  readonly #retryAfterMs: number
  readonly #highWater: number
  readonly #links = new Map<PeerId, Link>()
  readonly #online = new Set<PeerId>()
  readonly #retries = new Map<PeerId, TimerHandle>()
  #watched = new Set<PeerId>()
  #events: TransportEvents | undefined
  #closed = false
  /** Frames sent over data channels and over the relay (for tests and stats). */
  readonly counts = { direct: 0, relayed: 0, received: 0 }

  /** @throws TypeError for a missing or mistyped relay, connector or clock; RangeError for a duration or size that is not positive. */
  constructor(options: WebRtcTransportOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('WebRtcTransport: options must be an object')
    this.#relay = methods('relay', options.relay, ['open', 'send', 'close', 'signal'])
    this.#connector = methods('connector', options.connector, ['connect', 'signal', 'disconnect'])
    this.localId = options.relay.localId
    this.#clock = methods('clock', options.clock ?? systemClock, ['now', 'setTimeout', 'clearTimeout'])
    this.#openTimeoutMs = positive('openTimeoutMs', options.openTimeoutMs ?? 10_000)
    this.#retryAfterMs = positive('retryAfterMs', options.retryAfterMs ?? 30_000)
    this.#highWater = positive('highWaterBytes', options.highWaterBytes ?? 1024 * 1024)
  }

  open(events: TransportEvents, options?: TransportOpenOptions): void | Promise<void> {
    this.#events = events
    this.#relay.onSignal = (from, data) => this.#onSignal(from, data)
    return this.#relay.open(
      {
        frame: (from, data, stored) => events.frame(from, data, stored),
        peer: (peer, online) => this.#onPeer(peer, online),
        closed: () => events.closed(),
        // Only the relay stores (a data channel means both ends are online): its receipts pass through.
        mailbox: (available) => events.mailbox?.(available),
        receipt: (receipt) => events.receipt?.(receipt),
        redrained: (from, more) => events.redrained?.(from, more),
      },
      options,
    )
  }

  /** Asks the relay (the mailbox is the relay's) to send `from`'s stored messages again: see `Transport.redrain`. */
  redrain(from: PeerId, epoch: Epoch, after: number, limit: number): void {
    this.#relay.redrain?.(from, epoch, after, limit)
  }

  watch(peers: readonly PeerId[]): void {
    this.#watched = new Set(peers)
    this.#relay.watch?.(peers)
    for (const peer of peers) this.#maybeConnect(peer)
  }

  send(to: PeerId, data: Uint8Array): void | Promise<void> {
    if (this.#closed) throw new IlmError('TRANSPORT_FAILED', 'transport closed')
    const link = this.#links.get(to)
    const channel = link?.channel
    if (link?.open !== true || channel === undefined || channel.readyState !== 'open') {
      this.counts.relayed++
      return this.#relay.send(to, data)
    }
    try {
      channel.send(ownBuffer(data))
    } catch (cause) {
      this.#drop(to, true)
      throw new IlmError('TRANSPORT_FAILED', `data channel to ${to} failed`, { cause })
    }
    this.counts.direct++
    return channel.bufferedAmount > this.#highWater ? drained(channel) : undefined
  }

  /**
   * The connector's channel for `peer`, used once it opens: transferred from
   * the page, or the port the page pipes it through (a {@link PortChannel}).
   */
  attachChannel(peer: PeerId, attached: DataChannelLike | MessagePort): void {
    const channel = attached instanceof MessagePort ? new PortChannel(attached) : attached
    const link = this.#links.get(peer)
    if (this.#closed || link === undefined || !this.#online.has(peer)) {
      channel.close()
      return
    }
    link.channel?.close()
    link.channel = channel
    channel.binaryType = 'arraybuffer'
    channel.bufferedAmountLowThreshold = this.#highWater / 2
    channel.onopen = () => {
      if (link.channel !== channel) return
      link.open = true
      this.#clearTimer(link)
    }
    channel.onmessage = (event: MessageEvent) => {
      if (link.channel !== channel || !(event.data instanceof ArrayBuffer)) return
      this.counts.received++
      this.#events?.frame(peer, new Uint8Array(event.data))
    }
    channel.onclose = () => link.channel === channel && this.#drop(peer, true)
    if (channel.readyState === 'open') channel.onopen(new Event('open'))
  }

  /** Signalling from the connector for `peer`, sent through the relay. */
  signal(peer: PeerId, data: unknown): void {
    try {
      this.#relay.signal(peer, data)
    } catch {
      this.connectFailed(peer)
    }
  }

  /** Takes the relay connection down or back up (see `WebSocketTransport.setEnabled`); channels close with it. */
  setEnabled(enabled: boolean): void {
    this.#relay.setEnabled?.(enabled)
  }

  /** Retry the relay connection now. */
  wake(): void {
    this.#relay.wake?.()
  }

  /** The connector could not set the connection up. */
  connectFailed(peer: PeerId): void {
    if (this.#links.has(peer)) this.#drop(peer, true)
  }

  /** How frames to `peer` travel now: over a data channel, through the relay while one is being set up, or through the relay. */
  route(peer: PeerId): 'direct' | 'connecting' | 'relay' {
    const link = this.#links.get(peer)
    return link === undefined ? 'relay' : link.open ? 'direct' : 'connecting'
  }

  close(): void | Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const peer of [...this.#links.keys()]) this.#drop(peer, false)
    for (const retry of this.#retries.values()) this.#clock.clearTimeout(retry)
    this.#retries.clear()
    this.#relay.onSignal = undefined
    return this.#relay.close()
  }

  #onPeer(peer: PeerId, online: boolean): void {
    if (online) {
      this.#online.add(peer)
      // A peer back online is a new chance for a direct path (e.g. the network that ended the last channel is back): no wait.
      this.#clearRetry(peer)
    } else {
      this.#online.delete(peer)
      this.#drop(peer, false)
    }
    this.#events?.peer(peer, online)
    if (online) this.#maybeConnect(peer)
  }

  #onSignal(from: PeerId, data: unknown): void {
    if (this.#closed || !isPeerId(from)) return
    if (!this.#links.has(from)) {
      // The other side initiates; be ready for its channel.
      if (!this.#online.has(from)) return
      this.#links.set(from, this.#newLink())
      this.#armTimeout(from)
      this.#connector.connect(from, false)
    }
    this.#connector.signal(from, data)
  }

  #maybeConnect(peer: PeerId): void {
    if (this.#closed || !this.#online.has(peer) || !this.#watched.has(peer) || this.#links.has(peer)) return
    // The lower id initiates, so two peers never both offer (no glare).
    if (this.localId > peer) return
    if (this.#retries.has(peer)) return
    this.#links.set(peer, this.#newLink())
    this.#armTimeout(peer)
    try {
      this.#connector.connect(peer, true)
    } catch {
      this.#drop(peer, true)
    }
  }

  #newLink(): Link {
    return { channel: undefined, open: false, timer: undefined }
  }

  #armTimeout(peer: PeerId): void {
    const link = this.#links.get(peer)
    if (link === undefined) return
    link.timer = this.#clock.setTimeout(() => {
      link.timer = undefined
      if (!link.open) this.#drop(peer, true)
    }, this.#openTimeoutMs)
  }

  #clearTimer(link: Link): void {
    if (link.timer !== undefined) this.#clock.clearTimeout(link.timer)
    link.timer = undefined
  }

  #clearRetry(peer: PeerId): void {
    const retry = this.#retries.get(peer)
    if (retry === undefined) return
    this.#clock.clearTimeout(retry)
    this.#retries.delete(peer)
  }

  /** Back to the relay for `peer`; after a failure, wait before trying a channel again. */
  #drop(peer: PeerId, failed: boolean): void {
    const link = this.#links.get(peer)
    if (link === undefined) return
    this.#links.delete(peer)
    this.#clearTimer(link)
    const channel = link.channel
    link.channel = undefined
    link.open = false
    if (channel !== undefined) {
      channel.onopen = channel.onmessage = channel.onclose = null
      channel.close()
    }
    try {
      this.#connector.disconnect(peer)
    } catch {
      // The page side may be gone already.
    }
    if (failed && !this.#closed && !this.#retries.has(peer)) {
      const retry = this.#clock.setTimeout(() => {
        this.#retries.delete(peer)
        this.#maybeConnect(peer)
      }, this.#retryAfterMs)
      this.#retries.set(peer, retry)
    }
  }
}

// A view on part of a buffer (or on a shared one) would send the whole buffer: copy it down.
function ownBuffer(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const whole = data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
  return whole ? (data as Uint8Array<ArrayBuffer>) : data.slice()
}

function drained(channel: DataChannelLike): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.removeEventListener('bufferedamountlow', done)
      channel.removeEventListener('close', done)
      resolve()
    }
    channel.addEventListener('bufferedamountlow', done)
    channel.addEventListener('close', done)
  })
}

function methods<T>(name: string, value: T, required: readonly string[]): T {
  if (typeof value !== 'object' || value === null || !required.every((m) => typeof (value as Record<string, unknown>)[m] === 'function')) {
    throw new TypeError(`WebRtcTransport: ${name} must have ${required.join(', ')}`)
  }
  return value
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`WebRtcTransport: ${name} must be a positive number`)
  return value
}
