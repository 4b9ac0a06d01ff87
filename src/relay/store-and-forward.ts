import type { Clock } from '../core/clock.js'
import { decodeFrame } from '../core/codec.js'
import type { AckFrame, MsgFrame } from '../core/frame.js'
import type { PeerId } from '../core/ids.js'
import type { FailureReason } from '../protocol/relay.js'
import type { RelayCluster } from './cluster/cluster.js'
import type { Connection } from './connection.js'
import type { ConnectionTable } from './connection-table.js'
import { DrainQueue } from './drain-queue.js'
import { HeldBackStreams } from './held-back-streams.js'
import type { Mailbox, MailboxLimits, MailboxRecord } from './mailbox/mailbox.js'
import { notice, skipOf } from './mailbox-frames.js'
import type { RelayLimits } from './options.js'
import { errorMessage, type RelayLog } from './relay-log.js'
import { repeat } from './repeat.js'
import type { RelayCounters } from './stats.js'

/** The frames the mailbox holds (and reads). */
export type HeldKind = 'msg' | 'ack'
/** A frame the mailbox holds, decoded. */
export type HeldFrame = MsgFrame | AckFrame

/** What store and forward works with. */
export interface StoreAndForwardContext {
  readonly clock: Clock
  readonly limits: RelayLimits
  readonly counters: RelayCounters
  readonly log: RelayLog
  readonly connections: ConnectionTable
  readonly cluster: RelayCluster | undefined
}

/**
 * The relay's mailbox side: `msg` and `ack` frames for a peer connected
 * nowhere are stored (the sender of a message is told `stored` once that is
 * durable, or `failed`); a peer that logs in gets its mailbox through its
 * connection's {@link DrainQueue}; receivers' acks settle what is held; and
 * messages past retention become skips, their senders told `failed`.
 */
export class StoreAndForward {
  readonly #mailbox: Mailbox
  readonly #context: StoreAndForwardContext
  readonly #boxLimits: MailboxLimits
  readonly #heldBack: HeldBackStreams
  #stopSweeping: (() => void) | undefined = undefined
  #sweeping = false
  #stopped = false

  constructor(mailbox: Mailbox, context: StoreAndForwardContext) {
    this.#mailbox = mailbox
    this.#context = context
    this.#boxLimits = { maxMessages: context.limits.mailboxMaxMessages, maxBytes: context.limits.mailboxMaxBytes }
    this.#heldBack = new HeldBackStreams(context.clock)
  }

  /** Starts checking retention, every tenth of it (at most every minute, at least every 50 ms). */
  start(): void {
    const period = Math.max(50, Math.min(60_000, Math.floor(this.#context.limits.mailboxRetentionMs / 10)))
    this.#stopSweeping = repeat(this.#context.clock, period, () => this.#sweep())
  }

  /**
   * A frame the relay reads: it must decode as `kind`, and name the
   * authenticated sender and the envelope's destination. Anything else is
   * dropped, counted and logged as `forged`.
   */
  decode<K extends HeldKind>(conn: Connection, to: PeerId, kind: K, bytes: Uint8Array): Extract<HeldFrame, { kind: K }> | undefined {
    const decoded = decodeFrame(bytes, this.#context.limits.maxFrameBytes)
    if (decoded.ok && decoded.frame.kind === kind && decoded.frame.from === conn.id && decoded.frame.to === to) {
      return decoded.frame as Extract<HeldFrame, { kind: K }>
    }
    this.#context.counters.refusals.forged++
    this.#context.log('debug', 'refused', { reason: 'forged', id: conn.id, session: conn.session, to })
    return undefined
  }

  /** `conn`'s ack of what `to` sent it also removes what its mailbox holds of that stream. */
  settle(conn: Connection, ack: AckFrame): void {
    this.#mailbox.ack(conn.id!, ack.to, ack.epoch, ack.upTo).catch((error: unknown) => this.#failed('ack', error))
  }

  /** `conn`'s frame went to `to` directly, not to the mailbox. */
  forwarded(conn: Connection, to: PeerId): void {
    this.#heldBack.forwarded(conn, to)
  }

  /**
   * Stores a `msg` or `ack` frame for the offline `to`, decoding it unless
   * the caller already did; the sender of a message gets `stored` or `failed`.
   * A message above a seq of its stream whose put failed on this connection
   * is dropped until that seq is stored ({@link HeldBackStreams}).
   */
  hold(conn: Connection, to: PeerId, bytes: Uint8Array, kind: HeldKind, decoded?: HeldFrame): void {
    const frame = decoded ?? this.decode(conn, to, kind, bytes)
    if (frame === undefined) return
    const box = this.#mailbox
    const storedAt = this.#context.clock.now()
    if (frame.kind === 'ack') {
      // Best effort: a lost ack is repeated by the next hello.
      const record: MailboxRecord = { kind: 'ack', from: conn.id!, epoch: frame.epoch, seq: frame.upTo, id: '', size: bytes.byteLength, storedAt }
      box.put(to, record, bytes, this.#boxLimits).then(
        (result) => {
          if (!result.ok || result.duplicate) return
          this.#context.counters.stored++
          this.#poke(to)
        },
        (error: unknown) => this.#failed('put', error),
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
    if (!this.#heldBack.admit(conn, to, frame.epoch, frame.seq)) {
      this.#context.counters.refusals.held_back++
      this.#context.log('debug', 'refused', { reason: 'held_back', id: conn.id, session: conn.session, to, seq: frame.seq })
      return
    }
    const receipt = { peer: to, epoch: frame.epoch, seq: frame.seq }
    void (async () => {
      const result = await box.put(to, record, bytes, this.#boxLimits)
      if (result.ok) {
        if (!result.duplicate) {
          this.#context.counters.stored++
          this.#poke(to)
        }
        const { reason } = result.entry
        // A resent message the relay already gave up on fails again rather than pass for stored.
        if (result.entry.kind === 'skip' && reason !== undefined) conn.sendControl({ t: 'failed', ...receipt, reason: reason as FailureReason, held: true })
        else conn.sendControl({ t: 'stored', ...receipt })
        return
      }
      this.#context.counters.refusals.mailbox_full++
      const skip = skipOf(to, record)
      const kept = await box.put(to, { ...record, kind: 'skip', size: skip.byteLength, reason: result.reason }, skip, this.#boxLimits)
      conn.sendControl({ t: 'failed', ...receipt, reason: result.reason, held: kept.ok })
    })().catch((error: unknown) => {
      this.#heldBack.failed(conn, to, frame.epoch, frame.seq)
      this.#failed('put', error)
    })
  }

  /** The drain queue of `conn`, which just logged in as `peer`; `perSender`: the window its `auth` gave (see DrainQueue). */
  openDrain(peer: PeerId, conn: Connection, perSender?: number): DrainQueue {
    const counters = this.#context.counters
    const hooks = { drained: () => counters.drained++, failed: (error: unknown) => this.#failed('drain', error) }
    return new DrainQueue(peer, this.#mailbox, conn, this.#context.clock, this.#context.limits.maxPendingBytes, hooks, perSender)
  }

  /** Something was put in `to`'s mailbox (here or by another node): if `to` is logged in here, its drain reads it. */
  mailArrived(to: PeerId): void {
    const conn = this.#context.connections.get(to)
    if (conn !== undefined && conn.state === 'open') void conn.drain?.drain()
  }

  /** The relay is shutting down: no more sweeps, and mailbox failures from now on are expected. */
  stop(): void {
    this.#stopped = true
    this.#stopSweeping?.()
  }

  /** Closes the mailbox. */
  async close(): Promise<void> {
    await this.#mailbox.close().catch((error: unknown) => this.#context.log('error', 'mailbox_failed', { operation: 'close', message: errorMessage(error) }))
  }

  /**
   * Something was stored for `to`, which may have logged in (here or on
   * another node) while it was being stored, after its drain read the
   * mailbox: that drain reads again.
   */
  #poke(to: string): void {
    this.mailArrived(to as PeerId)
    this.#context.cluster
      ?.mail(to as PeerId)
      .catch((error: unknown) => this.#context.log('error', 'cluster_failed', { operation: 'mail', to, message: errorMessage(error) }))
  }

  /** Expires messages past retention (they become skips) and tells their senders, now or when they log in. */
  #sweep(): void {
    if (this.#sweeping || this.#stopped) return
    this.#sweeping = true
    const { clock, limits, counters, connections, cluster } = this.#context
    const box = this.#mailbox
    void (async () => {
      const expired = await box.expire(clock.now() - limits.mailboxRetentionMs, skipOf)
      for (const { to, entry } of expired) {
        counters.expired++
        const sender = connections.get(entry.from as PeerId)
        const failed = notice({ ...entry, from: to, reason: 'retention' })
        if (sender !== undefined && sender.state === 'open') sender.sendControl(failed)
        else if (cluster === undefined || !(await cluster.sendText(entry.from as PeerId, JSON.stringify(failed)).catch(() => false))) {
          const record: MailboxRecord = {
            kind: 'notice',
            from: to,
            epoch: entry.epoch,
            seq: entry.seq,
            id: entry.id,
            size: 0,
            storedAt: clock.now(),
            reason: 'retention',
          }
          const kept = await box.put(entry.from, record, new Uint8Array(0), this.#boxLimits)
          if (kept.ok) this.#poke(entry.from)
        }
      }
    })()
      .catch((error: unknown) => this.#failed('expire', error))
      .finally(() => (this.#sweeping = false))
  }

  #failed(operation: string, error: unknown): void {
    if (this.#stopped) return
    this.#context.counters.mailboxFailures++
    this.#context.log('error', 'mailbox_failed', { operation, message: errorMessage(error) })
  }
}
