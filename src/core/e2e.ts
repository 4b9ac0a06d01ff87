import type { Clock } from './clock.js'
import type { ContentKind } from './contents.js'
import type { IlmError } from './errors.js'
import type { Epoch, MessageId, PeerId } from './ids.js'
import type { PeerStore } from './store.js'

/**
 * Where this end stands with a peer's keys:
 * - `ready`: its identity key is pinned and a current bundle is known, so
 *   messages to it can be sealed and its messages opened;
 * - `unknown`: no bundle heard yet (from its hello or the relay's directory);
 * - `changed`: it presented an identity key other than the pinned one (and
 *   no `verifyPeerKey` hook said yes). Its messages are held both ways until
 *   the application accepts the new key, or rejects it (back to `ready` under
 *   the pinned one).
 */
export type PeerKeyStatus = 'ready' | 'unknown' | 'changed'

/**
 * What `peerKeyStatus(peer)` reports: the status, with the safety number of
 * the pinned key and, while a changed key waits for a decision, of the key
 * presented (the one `acceptPeerKey` would pin).
 */
export type PeerKeyReport =
  | { readonly status: 'unknown' }
  | { readonly status: 'ready'; readonly pinnedSafetyNumber: string }
  | { readonly status: 'changed'; readonly pinnedSafetyNumber: string; readonly presentedSafetyNumber: string }

/** Options of `acceptPeerKey` and `rejectPeerKey`. */
export interface KeyDecisionOptions {
  /**
   * The safety number the user compared (`presentedSafetyNumber`): the call
   * decides only on the key that has it, else rejects `KEY_MISMATCH` and
   * changes nothing.
   */
  readonly safetyNumber?: string
}

/** What the engine tells the cipher about a message it seals or opens. */
export interface SealContext {
  /** The sender. */
  readonly from: PeerId
  /** The receiver. */
  readonly to: PeerId
  /** The sender's epoch. */
  readonly epoch: Epoch
  readonly seq: number
  readonly id: MessageId
}

/** What the engine tells the cipher about a message it seals: where the stream stands too. */
export interface SendContext extends SealContext {
  /**
   * The stream's highest seq the receiver acknowledged as stored (cumulative; -1 if none): a mailbox's `stored`
   * does not count. The receiver kept what it needed to open what it acknowledged, so the cipher may leave out
   * what the receiver already holds.
   */
  readonly acked: number
  /** The seq the next `send()` gets: nothing at or above it was sealed yet. */
  readonly next: number
}

/** Why a sealed frame did not open. None is acknowledged or handed to the application. */
export type OpenFailure =
  /** The frame is not a well-formed sealed body, or the sender's key header is malformed. */
  | 'SEALED_MALFORMED'
  /** The sender's key header is not signed by the sender's pinned identity key. */
  | 'KEY_FORGED'
  /** No identity key of the sender is pinned yet (its hello or the directory will bring it). */
  | 'KEY_UNKNOWN'
  /** The sender's identity key changed and the application has not accepted it. */
  | 'KEY_HELD'
  /** Sealed for a prekey of this end that is gone (rotated out) or never existed; the sender re-seals on the next hello. */
  | 'KEY_STALE'
  /** A short body (no key header) under a sender key whose header this end does not keep; the sender's retransmission carries it. */
  | 'KEY_UNHEARD'
  /** Authentication failed: the contents, or what they are bound to, were changed. */
  | 'DECRYPT'

/** The outcome of {@link Cipher.learn}. */
export interface LearnResult {
  /** The peer's status after the bundle was considered. */
  readonly status: PeerKeyStatus
  /** True when this bundle's identity key differs from the pinned one and is now held for the application (the `peer-key-changed` event fires). */
  readonly changed: boolean
  /** True when a key of the peer was pinned: on first use, or a changed one `verifyPeerKey` said yes to (the `peer-key-pinned` event fires). */
  readonly pinned: boolean
  /** True when the bundle was refused (malformed, badly signed, for another peer); nothing changed. */
  readonly refused: boolean
  /** True when the keys messages to the peer are sealed under changed (first pin, a newer prekey, an accepted identity). */
  readonly rekeyed: boolean
  /** Why the application's `verifyPeerKey` gave no verdict (it threw, or did not answer in time): the key is held as if it said no. */
  readonly failure?: IlmError
}

/**
 * End-to-end encryption as the engine sees it: one instance per local
 * identity, made by an {@link E2EFactory} once the store is open. The engine
 * decides when to seal, open, hold and ask; the cipher owns the keys, the
 * pins and the cryptography (`intersession`'s is WebCrypto, in `src/crypto`).
 *
 * Contract:
 * - `seal` is deterministic for a given (peer key, seq): sealing the same
 *   message again while the peer's keys did not change gives the same
 *   ciphertext, so retransmissions are identical (only what travels with it
 *   to let the receiver derive the key may be left out, once the receiver
 *   acknowledged a message sealed under it).
 * - `open` never throws for bad input: it resolves a typed failure.
 * - Nothing here reads a clock or sets a timer of its own but through the
 *   clock it was given.
 */
export interface Cipher {
  /** This end's public key bundle, for hellos and the relay's directory. Changes when its prekey rotates. */
  bundle(): Uint8Array
  /** Calls `listener` with the new bundle after each rotation; returns the unsubscribe function. */
  onRotate(listener: (bundle: Uint8Array) => void): () => void
  /** Considers a bundle heard for `peer` (from its hello or the directory): pins on first use, notes a rotated prekey, detects a changed identity key. */
  learn(peer: PeerId, bundle: Uint8Array): Promise<LearnResult>
  /** How this end stands with `peer`'s keys (synchronous: the engine asks per frame). */
  status(peer: PeerId): PeerKeyStatus
  /** Pins the identity key `peer` presented last, replacing the old pin; resolves with the new status. */
  accept(peer: PeerId): Promise<PeerKeyStatus>
  /** Forgets the identity key `peer` presented last, keeping the old pin (a key presented again is a change again); resolves with the new status. */
  reject(peer: PeerId): Promise<PeerKeyStatus>
  /** Seals `plaintext` for `context.to`, whose status must be `ready` (else rejects `IlmError('KEY_UNAVAILABLE')`). */
  seal(context: SendContext, plaintext: Uint8Array): Promise<Uint8Array>
  /**
   * Opens a sealed body from `context.from`. Whatever the receiver must keep to open later messages under the same
   * key (the cipher's records) is committed before it resolves: the engine acknowledges what opened only after that.
   */
  open(
    context: SealContext,
    sealed: Uint8Array,
  ): Promise<{ readonly ok: true; readonly plaintext: Uint8Array } | { readonly ok: false; readonly reason: OpenFailure }>
  /** The fingerprints users compare out of band (both identity keys, 12 groups of 5 digits): with the pinned key of `peer`, and with the key it presented while that waits for a decision. */
  safetyNumbers(peer: PeerId): Promise<{ readonly pinned?: string; readonly presented?: string }>
}

/** What a {@link Cipher} is made from. */
export interface CipherContext {
  readonly localId: PeerId
  /** The local store's epoch: a wiped store (a new epoch) means new keys. */
  readonly epoch: Epoch
  /** Where the cipher keeps its records (`readKeys` and the `putKey`/`deleteKey` ops). */
  readonly store: PeerStore
  readonly clock: Clock
}

/** Makes the cipher of an identity once its store is open. */
export type E2EFactory = (context: CipherContext) => Promise<Cipher>

const KIND_BYTES: Record<ContentKind, number> = { b: 0x62, s: 0x73, j: 0x6a }

/** The plaintext a sealed frame carries: the content kind (one byte), then the contents; the kind stays out of the clear header. */
export function packPlaintext(kind: ContentKind, contents: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + contents.byteLength)
  out[0] = KIND_BYTES[kind]
  out.set(contents, 1)
  return out
}

/** Splits an opened plaintext; `undefined` if its kind byte is not one of the three. */
export function unpackPlaintext(plaintext: Uint8Array): { readonly contentKind: ContentKind; readonly contents: Uint8Array } | undefined {
  const byte = plaintext[0]
  const contentKind = byte === 0x62 ? 'b' : byte === 0x73 ? 's' : byte === 0x6a ? 'j' : undefined
  return contentKind === undefined ? undefined : { contentKind, contents: plaintext.subarray(1) }
}
