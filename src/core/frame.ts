import type { ContentKind } from './contents.js'
import type { Epoch, MessageId, PeerId } from './ids.js'

/** The wire protocol version this build speaks. */
export const PROTOCOL_VERSION = 2

interface FrameBase {
  /** Sender of the frame; the transport authenticates it. */
  readonly from: PeerId
  /** Addressee of the frame. */
  readonly to: PeerId
}

/**
 * Opens a session with a peer and tells it where to resume. Carries both
 * directions: the sender's own stream toward `to`, and what it has received of
 * `to`'s stream.
 */
export interface HelloFrame extends FrameBase {
  readonly kind: 'hello'
  /** The sender's epoch. */
  readonly epoch: Epoch
  /** Every seq below `floor` of the stream `from -> to` is settled (acked or abandoned). */
  readonly floor: number
  /** The epoch `from` knows of the stream `to -> from`, or null if none. */
  readonly known: Epoch | null
  /** Highest contiguous seq of `to -> from` stored by `from` (in epoch `known`), -1 if none. */
  readonly upTo: number
  /** True for the answer to a hello; answers are never answered. */
  readonly reply: boolean
  /**
   * The answer to a `reset`: `epoch` is this peer's live epoch even though it
   * looks older (its store was wiped while its clock read earlier). The
   * receiver follows it.
   */
  readonly claim?: true
  /**
   * The sender's public key bundle (the frame's body): present exactly when
   * the sender encrypts end to end. A peer that encrypts refuses to exchange
   * messages with one that does not, and the other way round (`E2E_MISMATCH`).
   */
  readonly keys?: Uint8Array
}

/** One message, or (with `skip`) the notice that an expired seq will never come. */
export interface MsgFrame extends FrameBase {
  readonly kind: 'msg'
  readonly epoch: Epoch
  readonly seq: number
  /** Every seq below `floor` is settled: the receiver must not wait for it. */
  readonly floor: number
  readonly id: MessageId
  readonly contentKind: ContentKind
  readonly contents: Uint8Array
  /** Expiry time (ms since the Unix epoch), if any. */
  readonly expiresAt?: number
  /** True for an expired message: nothing is handed over, only the seq is consumed. */
  readonly skip?: boolean
  /**
   * True when `contents` is sealed end to end: the sender's key header and the
   * ciphertext of the content kind and contents. `contentKind` is then `b`
   * and says nothing; the real one is inside.
   */
  readonly sealed?: true
}

/** Cumulative acknowledgement: `from` has durably stored every seq <= `upTo` of `to`'s stream in `epoch`. */
export interface AckFrame extends FrameBase {
  readonly kind: 'ack'
  readonly epoch: Epoch
  readonly upTo: number
}

/** The receiver refuses the stream as is: it already follows a newer epoch of this sender. */
export interface ResetFrame extends FrameBase {
  readonly kind: 'reset'
  /** The epoch that was refused. */
  readonly epoch: Epoch
  /** The epoch the receiver follows. */
  readonly expected: Epoch
}

/** Every frame of protocol v2. */
export type Frame = HelloFrame | MsgFrame | AckFrame | ResetFrame

/** The frame kinds of protocol v2. */
export type FrameKind = Frame['kind']
