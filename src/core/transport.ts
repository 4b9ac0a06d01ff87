import type { Epoch, PeerId } from './ids.js'

/** What a transport reports to the engine that opened it. */
export interface TransportEvents {
  /**
   * A frame arrived. `from` must be authenticated by the transport (or the relay behind it). `stored`: the relay's
   * mailbox sent it (its sender may never send it again: a frame dropped is asked for with {@link Transport.redrain}).
   */
  frame(from: PeerId, data: Uint8Array, stored?: boolean): void
  /**
   * A peer became reachable (`true`) or unreachable (`false`). Reported again without a change, it means "send to it
   * now": the engine starts a session with a reachable peer, or sends an unreachable one's mailbox what it lacks.
   */
  peer(peer: PeerId, online: boolean): void
  /** The transport closed for good; no event follows. */
  closed(): void
  /**
   * Optional, for relays with a mailbox: frames for offline peers can be sent
   * now (`true`: the relay stores them) or not (`false`, the default).
   */
  mailbox?(available: boolean): void
  /** Optional, for relays with a mailbox: what the relay did with a message for an offline peer. Only the relay may report it, never a peer. */
  receipt?(receipt: RelayReceipt): void
  /**
   * Optional, with {@link Transport.redrain}: the relay sent what was asked for
   * from `from` (the messages came before this event); `more` when it stopped
   * at the limit asked, so more may wait. Also unasked, `more` and after a
   * login's drain, for a sender whose messages it stopped at
   * {@link TransportOpenOptions.perSender}. Only the relay may report it.
   */
  redrained?(from: PeerId, more: boolean): void
}

/** What the engine tells a transport as it opens it. */
export interface TransportOpenOptions {
  /**
   * The most messages of one sender this end keeps as they come (its window
   * while it decrypts, else its inbox's room). A relay with a mailbox may send
   * no more than that per sender at login and say `redrained` (`more`) for
   * each sender it stopped: the engine then asks for the rest with
   * {@link Transport.redrain} once it can keep them, instead of dropping what
   * is past its window and asking for it again.
   */
  readonly perSender?: number
}

/**
 * The relay's word on message `seq` of this end's stream (in `epoch`) toward
 * `peer`: `stored` in its mailbox, or `failed` (`reason`); `held` means the
 * mailbox keeps a skip in its place, so nothing more needs sending.
 */
export type RelayReceipt =
  | { readonly status: 'stored'; readonly peer: PeerId; readonly epoch: string; readonly seq: number }
  | { readonly status: 'failed'; readonly peer: PeerId; readonly epoch: string; readonly seq: number; readonly reason: string; readonly held: boolean }

/**
 * Moves opaque frames between peers. Delivery may drop, duplicate, reorder or
 * delay frames: the engine's seqs, acks and retransmissions make up for it.
 *
 * Contract (checked by `transportContract` in `intersession/testing`):
 * - `open` is called once; events are delivered only after it and never
 *   synchronously inside `send`.
 * - Frames are delivered as sent (same bytes) with the sender's real id.
 * - `send` takes `data` over: the caller leaves it unchanged, so that a
 *   transport may write it later (with the rest of the turn's frames) uncopied.
 *   `data` is often a view into a larger buffer that the engine's other frames
 *   share: only its own bytes go out, and a transport copies it before a
 *   structured clone or a transfer, which would take the whole buffer.
 * - `send` to an unreachable peer throws or rejects with `IlmError('TRANSPORT_FAILED')`;
 *   it never blocks forever. A returned promise means "wait before sending more".
 * - After `close()`, no event is delivered and `send` fails.
 */
export interface Transport {
  /** The authenticated identity of this end. */
  readonly localId: string
  open(events: TransportEvents, options?: TransportOpenOptions): void | Promise<void>
  send(to: PeerId, data: Uint8Array): void | Promise<void>
  /**
   * Optional: the peers this end has streams with, so that a transport whose
   * presence is on request (a relay) reports them. Called with the whole list
   * at open and whenever it grows.
   */
  watch?(peers: readonly PeerId[]): void
  /**
   * Optional, for transports with a key directory (a relay): publishes this
   * end's public key bundle (opaque bytes), stored under its authenticated
   * id. The transport keeps the last bundle given and publishes it again on
   * every (re)connection; while disconnected it only keeps it. Never throws
   * for the connection's state.
   */
  publishKeys?(bundle: Uint8Array): void
  /**
   * Optional, with {@link Transport.publishKeys}: the bundle `peer` last
   * published, or `null` when the directory has none. The directory is not
   * trusted: the caller verifies what it gets. Rejects with
   * `IlmError('TRANSPORT_FAILED')` at once when not connected, and when the
   * connection drops or no answer comes within the transport's timeout;
   * never hangs.
   */
  fetchKeys?(peer: PeerId): Promise<Uint8Array | null>
  /**
   * Optional, for relays with a mailbox: asks the relay to send again up to
   * `limit` messages from `from` that its mailbox holds for this end, past
   * seq `after` of `epoch` (and any of a newer epoch), as it sent them at
   * login. The engine asks for what it could not keep as they came (its inbox
   * full, or past its window) once it can. Never throws for the connection's
   * state: does nothing while disconnected (the next login sends the whole
   * mailbox).
   */
  redrain?(from: PeerId, epoch: Epoch, after: number, limit: number): void
  close(): void | Promise<void>
}
