import { randomUUID } from 'node:crypto'
import type { WebSocket } from 'ws'
import type { Clock, TimerHandle } from '../core/clock.js'
import type { PeerId } from '../core/ids.js'
import { Packer } from '../protocol/packer.js'
import type { RelayControl } from '../protocol/relay.js'
import type { DrainQueue, DrainSink } from './drain-queue.js'
import { MAX_TIMER_MS, type RelayLimits } from './options.js'
import { RateLimiter } from './rate-limiter.js'
import type { RelayCounters } from './stats.js'

/**
 * Where a connection is in its life: waiting for `auth`, having its token
 * verified (the socket paused), logged in, or closed (out of routing, the
 * socket possibly still closing).
 */
export type ConnectionState = 'auth' | 'verifying' | 'open' | 'closed'

/** What every connection of one relay shares. */
export interface ConnectionContext {
  readonly clock: Clock
  readonly limits: RelayLimits
  readonly counters: RelayCounters
}

/** A message that arrived while the token was being verified, handled after the welcome. */
export interface QueuedMessage {
  readonly data: Buffer
  readonly isBinary: boolean
}

const MAX_QUEUED_DURING_AUTH = 64
const BINARY = { binary: true } as const
/** The most bytes of envelopes one pack going down carries (a bigger envelope goes alone). */
export const PACK_BYTES = 64 * 1024

/**
 * One socket at the relay: its identity once logged in, its rate limiter,
 * its mailbox drain, its timers, and the ways to send to it (counted, and
 * bounded by how far behind the socket is). What happens to the relay's
 * routing when it logs in or closes is the gateway's business.
 */
export class Connection implements DrainSink {
  readonly ws: WebSocket
  readonly session: string = randomUUID()
  readonly remote: string
  readonly openedAt: number
  readonly limiter: RateLimiter
  state: ConnectionState = 'auth'
  /** The authenticated peer id, from the login on. */
  id: PeerId | undefined = undefined
  /** The peers it watches (the presence index holds the reverse). */
  watching = new Set<PeerId>()
  /** Sent something or answered a ping since the last ping. */
  alive = true
  /** Its way out when the relay has a mailbox, from the login on: live frames wait behind the drain. */
  drain: DrainQueue | undefined = undefined
  /** It reads packs (said so in `auth`): the envelopes sent to it within one turn go in one message. */
  packs = false
  /** The envelopes for it sent this turn, not yet written (packs only). */
  readonly #packer = new Packer(PACK_BYTES, (message, envelopes) => {
    if (envelopes > 1) this.#context.counters.packsOut++
    this.#write(message)
  })
  readonly #context: ConnectionContext
  #loginQueue: QueuedMessage[] = []
  #loginQueuedBytes = 0
  #authTimer: TimerHandle | undefined = undefined
  #expiryTimer: TimerHandle | undefined = undefined
  #killTimer: TimerHandle | undefined = undefined

  constructor(ws: WebSocket, remote: string, context: ConnectionContext) {
    this.ws = ws
    this.remote = remote
    this.#context = context
    this.openedAt = context.clock.now()
    this.limiter = new RateLimiter(context.clock, context.limits)
  }

  /** Logged in and not closed. */
  get open(): boolean {
    return this.state === 'open'
  }

  /** Bytes queued on the socket, and the envelopes of this turn not yet written. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount + this.#packer.pendingBytes
  }

  /**
   * Sends an envelope: at once, or, to a connection that reads packs, with
   * the others sent to it within this turn (a microtask), in one pack.
   */
  sendFrame(out: Uint8Array): void {
    this.#context.counters.framesOut++
    if (this.packs) this.#packer.add(out)
    else this.#write(out)
  }

  #write(out: Uint8Array): void {
    this.#context.counters.bytesOut += out.byteLength
    this.ws.send(out, BINARY)
  }

  /** Sends a control message (see {@link sendText}). */
  sendControl(message: RelayControl, isForward = false): void {
    this.sendText(JSON.stringify(message), isForward)
  }

  /**
   * Sends a text message unless the socket is closing or too far behind.
   * Forwarded signals obey `maxPendingBytes` (checked by the caller);
   * relay-generated control messages are small and get twice that allowance.
   */
  sendText(text: string, isForward: boolean): void {
    const ws = this.ws
    if (ws.readyState !== ws.OPEN) return
    const counters = this.#context.counters
    // In the order sent: the envelopes of this turn before this message.
    this.#packer.flush()
    if (!isForward && ws.bufferedAmount > 2 * this.#context.limits.maxPendingBytes) {
      counters.refusals.slow_control++
      return
    }
    counters.controlOut++
    counters.bytesOut += Buffer.byteLength(text)
    ws.send(text)
  }

  /** Sends (or, during a mailbox drain, holds) an envelope for this peer; false when it is too far behind. */
  deliver(out: Uint8Array): boolean {
    if (this.drain !== undefined) return this.drain.deliver(out)
    if (this.bufferedAmount > this.#context.limits.maxPendingBytes) return false
    this.sendFrame(out)
    return true
  }

  /**
   * Keeps a message that arrived while the token is being verified (the
   * socket is paused, so only what was already read arrives; still, it is
   * bounded). False when that is too much: the connection is to be refused.
   */
  queueDuringLogin(data: Buffer, isBinary: boolean): boolean {
    this.#loginQueuedBytes += data.byteLength
    if (this.#loginQueue.length >= MAX_QUEUED_DURING_AUTH || this.#loginQueuedBytes > this.#context.limits.maxFrameBytes) return false
    this.#loginQueue.push({ data, isBinary })
    return true
  }

  /** The messages queued during the login, in order; the queue is empty afterwards. */
  takeLoginQueue(): readonly QueuedMessage[] {
    const queued = this.#loginQueue
    this.#loginQueue = []
    this.#loginQueuedBytes = 0
    return queued
  }

  /** Calls `onTimeout` unless the login completes within `authTimeoutMs`. */
  armAuthTimeout(onTimeout: () => void): void {
    this.#authTimer = this.#context.clock.setTimeout(onTimeout, this.#context.limits.authTimeoutMs)
  }

  /** The login completed: no timeout. */
  disarmAuthTimeout(): void {
    this.#clear(this.#authTimer)
    this.#authTimer = undefined
  }

  /** Calls `onExpired` once the clock reaches `at` (ms since the epoch), if the connection is still open then. */
  armExpiry(at: number, onExpired: () => void): void {
    const clock = this.#context.clock
    this.#expiryTimer = clock.setTimeout(
      () => {
        if (this.state !== 'open') return
        // A credential beyond the longest timer takes several.
        if (clock.now() < at) {
          this.armExpiry(at, onExpired)
          return
        }
        onExpired()
      },
      Math.min(Math.max(0, at - clock.now()), MAX_TIMER_MS),
    )
  }

  /** Marks it not alive and pings it: no pong (nor anything else) by the next ping means it is gone. */
  ping(): void {
    this.alive = false
    try {
      this.ws.ping()
    } catch {
      // Socket closing: the close handler cleans up.
    }
  }

  /** Out of routing: state `closed`, login queue, timers and drain dropped. The socket is closed separately. */
  markClosed(): void {
    this.state = 'closed'
    this.#packer.clear()
    this.#loginQueue = []
    this.#loginQueuedBytes = 0
    this.#clear(this.#authTimer)
    this.#clear(this.#expiryTimer)
    this.drain?.close()
  }

  /** Closes the socket with `code`, terminating it if the closing handshake does not finish soon. */
  closeSocket(code: number, text: string): void {
    const ws = this.ws
    try {
      if (ws.isPaused) ws.resume() // to read the peer's close frame
      ws.close(code, text)
    } catch {
      ws.terminate()
    }
    this.#killTimer = this.#context.clock.setTimeout(() => ws.terminate(), Math.min(2000, this.#context.limits.pingIntervalMs))
  }

  /** The socket closed: nothing left to terminate. */
  socketClosed(): void {
    this.#clear(this.#killTimer)
  }

  #clear(timer: TimerHandle | undefined): void {
    if (timer !== undefined) this.#context.clock.clearTimeout(timer)
  }
}
