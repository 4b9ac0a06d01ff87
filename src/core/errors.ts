/**
 * Stable error codes. They are part of the public API: add, never rename.
 */
export type IlmErrorCode =
  /** A peer id is empty, too long, or contains whitespace or control characters. */
  | 'INVALID_PEER_ID'
  /** `send()` to the local peer itself. */
  | 'SELF_SEND'
  /** Contents are not a Uint8Array, a string, or a JSON-serialisable value. */
  | 'UNSERIALIZABLE'
  /** Encoded contents exceed `limits.maxMessageBytes`. */
  | 'TOO_LARGE'
  /** The stream toward that peer already holds `limits.maxPendingPerPeer` messages. */
  | 'QUEUE_FULL'
  /** `send()` was given an id already used for a message to another peer. */
  | 'DUPLICATE_ID'
  /** The stream's seq space (2^53) is exhausted. */
  | 'SEQ_EXHAUSTED'
  /** The instance is closed (or shutting down) and accepts no new work. */
  | 'CLOSED'
  /** `shutdown()` could not drain before its timeout; the instance is closed anyway. */
  | 'SHUTDOWN_TIMEOUT'
  /** The store failed to read or commit; nothing of the failed transaction was applied. */
  | 'STORE_FAILED'
  /** The storage quota is exhausted; nothing of the failed transaction was applied. Retry once space is freed. */
  | 'QUOTA_EXCEEDED'
  /** The store cannot be opened or upgraded because another connection (an old tab) holds it open. */
  | 'STORE_BLOCKED'
  /** Another engine opened the same identity's store; this one must stop writing. */
  | 'STORE_FENCED'
  /** The message expired before the receiver stored it. */
  | 'EXPIRED'
  /** The relay's mailbox gave up on the message (full, or held past its retention time); the receiver never gets it. */
  | 'MESSAGE_FAILED'
  /** No message with that id is known (never sent here, or its receipt was pruned). */
  | 'UNKNOWN_MESSAGE'
  /** An `onMessage` handler threw; the message will be handed over again. */
  | 'HANDLER_FAILED'
  /** One peer encrypts end to end and the other does not: they exchange no messages until both agree. */
  | 'E2E_MISMATCH'
  /** The platform's cryptography lacks what end-to-end encryption needs, or failed; `cause` has its error. */
  | 'CRYPTO_FAILED'
  /** No usable key of the peer is known here (never heard, or its changed key not accepted): its messages wait. */
  | 'KEY_UNAVAILABLE'
  /** The application's `verifyPeerKey` threw or did not answer in time: the peer's changed key is held as if it had said no; `cause` has its error. */
  | 'KEY_VERIFY_FAILED'
  /** `acceptPeerKey`/`rejectPeerKey` was given a safety number that is not the one of the key it would decide on (the peer's key changed again, or another tab decided meanwhile): nothing was decided. */
  | 'KEY_MISMATCH'
  /** The engine that would serve the call (the leader tab's, an older version) does not know the method, or how it was called. */
  | 'UNSUPPORTED'
  /** The transport could not take a frame now (peer unreachable, socket closed). */
  | 'TRANSPORT_FAILED'
  /** A background sync in a service worker ended before it was done (its time budget ran out, or a tab held the engine); the browser retries it. */
  | 'SYNC_INCOMPLETE'
  /** The engine's worker failed to load or to start (a wrong worker URL, a script error, no answer in time), or died and cannot be replaced. */
  | 'WORKER_FAILED'
  /** A broken invariant inside intersession (a bug, or a corrupted store); `cause` has the details. */
  | 'INTERNAL'

/** Every runtime failure of intersession rejects with this class. */
export class IlmError extends Error {
  override readonly name = 'IlmError'
  /** Stable, machine-readable reason. */
  readonly code: IlmErrorCode

  constructor(code: IlmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }

  /** A structured-clone friendly form, for crossing worker boundaries. */
  toJSON(): { name: 'IlmError'; code: IlmErrorCode; message: string } {
    return { name: this.name, code: this.code, message: this.message }
  }
}

/** True for an {@link IlmError}, also one with another realm's prototype. */
export function isIlmError(value: unknown, code?: IlmErrorCode): value is IlmError {
  return (
    value instanceof Error &&
    value.name === 'IlmError' &&
    typeof (value as { code?: unknown }).code === 'string' &&
    (code === undefined || (value as IlmError).code === code)
  )
}
