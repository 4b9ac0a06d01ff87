import type { Contents } from './contents.js'
import type { IlmError } from './errors.js'
import type { Epoch, MessageId, PeerId } from './ids.js'

/** A message handed to the application. */
export interface Message {
  /** Stable id, the same on both sides; use it to deduplicate side effects. */
  readonly id: MessageId
  readonly from: PeerId
  readonly to: PeerId
  /** Position in the sender's stream toward this peer. */
  readonly seq: number
  /**
   * The sender's epoch: seqs count from 0 again when it changes (the sender's
   * store was wiped), so `(epoch, seq)` is unique where `seq` alone is not.
   */
  readonly epoch: Epoch
  /** As sent: a Uint8Array, a string, or a JSON value. */
  readonly contents: Contents
}

/**
 * Handles one message. The message counts as processed when this returns (or
 * its promise resolves); if it throws, the message is handed over again later.
 */
export type MessageHandler = (message: Message) => void | Promise<void>

/**
 * How a {@link MessageBatchHandler} took its batch: the first `handled`
 * messages were processed; the rest are handed over again later. With
 * `error`, the message after them failed (reported as `HANDLER_FAILED`).
 */
export interface BatchOutcome {
  readonly handled: number
  readonly error?: unknown
}

/**
 * Handles several messages at once, in order (at most `processBatch`). The
 * batch counts as processed when this returns (or its promise resolves)
 * without an outcome; if it throws, the whole batch is handed over again later.
 */
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- a handler may return nothing; `undefined` would refuse functions typed `() => void`
export type MessageBatchHandler = (messages: readonly Message[]) => void | BatchOutcome | Promise<void | BatchOutcome>

/**
 * Where a sent message is: `queued` here, `sent` on the wire, `stored` by the
 * relay's mailbox for the offline receiver (it no longer needs this peer
 * online), `delivered` (stored by the receiver), `expired` (its ttl passed),
 * `failed` (the relay's mailbox gave up on it: see `reason`).
 */
export type MessageStatus = 'queued' | 'sent' | 'stored' | 'delivered' | 'expired' | 'failed' | 'unknown'

/** A status transition of a sent message. */
export interface StatusEvent {
  readonly id: MessageId
  readonly to: PeerId
  readonly seq: number
  readonly status: Exclude<MessageStatus, 'unknown'>
  /** For `failed`: why, as the relay said (`full_messages`, `full_bytes`, `retention`). */
  readonly reason?: string
}

/** Events of an engine, for `on(event, listener)`. */
export interface EngineEvents {
  status: StatusEvent
  'peer-online': { readonly peer: PeerId }
  'peer-offline': { readonly peer: PeerId }
  /**
   * `peer` presented an identity key other than the one pinned here (a wiped
   * store, a new device, or a relay substituting keys), and no
   * `verifyPeerKey` said yes. Messages to and from it wait: compare
   * `safetyNumber(peer)` out of band, then `acceptPeerKey(peer)`, or
   * `rejectPeerKey(peer)` to keep the pinned key.
   */
  'peer-key-changed': { readonly peer: PeerId }
  /**
   * A key of `peer` is pinned and in use (status `ready`): pinned on first
   * use, a changed key accepted (`acceptPeerKey` or `verifyPeerKey`), or
   * rejected (the key pinned before is in use again). With
   * `peer-key-changed`, it tells every tab when to ask `peerKeyStatus(peer)`
   * again.
   */
  'peer-key-pinned': { readonly peer: PeerId }
  error: IlmError
}

/** Options of one `send()`. */
export interface SendOptions {
  /** Give up on the message if its receiver has not stored it within this many ms. */
  readonly ttlMs?: number
  /**
   * The message id to use (url-safe, 1..64 characters) instead of a fresh one:
   * an idempotency key. Sending again with an id this peer already sent (and
   * still remembers: queued, or a receipt younger than `receiptTtlMs`) resolves
   * with the first send's receipt and queues nothing.
   */
  readonly id?: string
}

/** What `send()` resolves with once the message is durably queued. */
export interface SendReceipt {
  readonly id: MessageId
  readonly seq: number
}

/** Counts of messages waiting in the store. */
export interface PendingCounts {
  /** Sent messages not yet acknowledged by their receivers. */
  readonly outbound: number
  /** Received messages not yet processed by the application. */
  readonly inbound: number
}

/** Counters of what the engine refused from the network, by reason. */
export type RefusalCounts = Readonly<Record<string, number>>
