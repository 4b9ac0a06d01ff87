import type { Message, StatusEvent } from './api.js'
import type { Clock } from './clock.js'
import type { Frame } from './frame.js'
import type { Epoch, MessageId, PeerId } from './ids.js'
import type { Limits } from './options.js'
import type { EngineState } from './state.js'
import type { OutboxRow, PeerStore } from './store.js'
import type { Writer } from './writer.js'

/** What the per-peer links share with the engine that owns them. */
export interface LinkContext {
  readonly localId: PeerId
  readonly clock: Clock
  readonly limits: Limits
  readonly state: EngineState
  readonly store: PeerStore
  readonly writer: Writer
  /** Reports a status change of a sent message (to listeners and to whatever waits on the message). */
  status(id: MessageId, to: PeerId, seq: number, status: StatusEvent['status']): void
  /** True once the engine is closed: links must stop at the next step. */
  readonly closed: boolean
  /** Encodes and hands a frame to the transport; throws or rejects when it cannot. */
  transmit(frame: Frame): void | Promise<void>
  /** Sends this peer a hello describing both directions. */
  sendHello(peer: PeerId, reply: boolean): void
  /**
   * Coalesces acknowledgements: one ack per stream within `ackDelayMs` of
   * `stored` newly stored messages, or at the end of the turn when `stored`
   * is 0 (a duplicate) or enough wait.
   */
  scheduleAck(peer: PeerId, stored: number): void
  /**
   * Asks the relay's mailbox, if there is one, to send again up to `limit` messages from `peer` past `after` in
   * `epoch` (see `Transport.redrain`); false when it cannot be asked (no answer will come).
   */
  redrain(peer: PeerId, epoch: Epoch, after: number, limit: number): boolean
  /** True while frames from `peer` are being opened (end-to-end encryption): they have not reached its link yet. */
  opening(peer: PeerId): boolean
  /** Has the writer's deferred intents committed within `deferCommitMs`. */
  deferCommit(): void
  /** True while at least one message handler is subscribed. */
  hasHandlers(): boolean
  /**
   * Gives messages (in order) to every handler; resolves with how many from
   * the first were processed by all. `progress` hears counts reached on the way, where known.
   */
  handOver(messages: readonly Message[], progress: (handled: number) => void): Promise<number>
  /** Marks rows expired (unless acked meanwhile) and reports it; repeated calls are harmless. */
  expire(rows: readonly OutboxRow[]): void
  /** Reports a background failure. */
  fail(error: unknown): void
  /** Frames from `peer` were taken in (their transaction committed). */
  received(peer: PeerId): void
  /**
   * True when contents are sealed end to end: frames wait for {@link LinkContext.keysReady} and {@link LinkContext.seal}.
   * Rows the relay's mailbox stored then keep their contents until acknowledged (a peer that cannot open what the
   * mailbox holds, sealed for a key it no longer has, gets them sealed afresh once it is online).
   */
  readonly sealing: boolean
  /** Whether frames to `peer` may go now: its keys are usable (and, without encryption, it does not expect it). */
  keysReady(peer: PeerId): boolean
  /**
   * The sealed body of a row (its ciphertext deterministic while the receiver's keys stay the same). `acked` is the
   * link's highest ack heard, or -1 for a body that must not rely on anything the receiver kept (see `SendContext`).
   */
  seal(row: OutboxRow, acked: number): Promise<Uint8Array>
}
