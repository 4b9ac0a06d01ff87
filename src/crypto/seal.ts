import type { ContentKind } from '../core/contents.js'
import type { Epoch, MessageId, PeerId } from '../core/ids.js'
import { NONCE_BYTES, TAG_BYTES, canonical, u32, u64, writeU32 } from './bytes.js'

const MSG_LABEL = 'intersession e2e v1 msg'

/** Everything a sealed message is bound to: its AAD, and its seq as the nonce. */
export interface SealContext {
  readonly from: PeerId
  readonly to: PeerId
  readonly fromEpoch: Epoch
  readonly toEpoch: Epoch
  /** The message's seq in its stream: unique per sender epoch, so never a nonce twice under one key. */
  readonly seq: number
  readonly id: MessageId
  readonly contentKind: ContentKind
  /** The sender key's id (u32). */
  readonly kid: number
}

/**
 * `contents` sealed with AES-GCM under `key` (a sender key): ciphertext then the 16-byte tag. The nonce is 4 zero
 * bytes then the seq (u64 big-endian), the AAD binds every field of `ctx`; so the same key, context and contents
 * always give the identical bytes (a retransmission is identical).
 * @throws TypeError when `key` is not an AES-GCM key, `contents` not a Uint8Array or a `ctx` string field not a
 *   string; RangeError when `ctx.seq` is not a safe integer >= 0 or `ctx.kid` not a u32.
 */
export function seal(key: CryptoKey, ctx: SealContext, contents: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  if (!(contents instanceof Uint8Array)) throw new TypeError('seal takes contents as a Uint8Array')
  const params = gcmParams(key, ctx)
  return crypto.subtle.encrypt(params, key, unshared(contents)).then((sealed) => new Uint8Array(sealed))
}

/**
 * The contents of `ciphertext` ({@link seal}'s form) under `key` and `ctx`; `undefined`, never a rejection, when it
 * does not open: wrong key, any field of `ctx` different, or any bit changed.
 * @throws TypeError / RangeError on misuse, as {@link seal}.
 */
export function open(key: CryptoKey, ctx: SealContext, ciphertext: Uint8Array): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (!(ciphertext instanceof Uint8Array)) throw new TypeError('open takes the ciphertext as a Uint8Array')
  const params = gcmParams(key, ctx)
  if (ciphertext.byteLength < TAG_BYTES) return Promise.resolve(undefined)
  return crypto.subtle.decrypt(params, key, unshared(ciphertext)).then(
    (plain) => new Uint8Array(plain),
    () => undefined,
  )
}

/** Keys already seen to be AES-GCM: `CryptoKey.algorithm` builds a new object at every read. */
const gcmKeys = new WeakSet<CryptoKey>()

/** The nonce and the AAD of `ctx`, in one buffer: the nonce is its first {@link NONCE_BYTES} bytes. */
function gcmParams(key: CryptoKey, ctx: SealContext): AesGcmParams {
  if (!gcmKeys.has(key)) {
    if (!(key instanceof CryptoKey) || key.algorithm.name !== 'AES-GCM') throw new TypeError('the key is an AES-GCM CryptoKey (a sender key)')
    gcmKeys.add(key)
  }
  const { from, to, fromEpoch, toEpoch, seq, id, contentKind, kid } = ctx
  for (const field of [from, to, fromEpoch, toEpoch, id, contentKind]) {
    if (typeof field !== 'string') throw new TypeError('ctx holds strings for from, to, both epochs, id and contentKind')
  }
  const bytes = canonical(MSG_LABEL, [from, to, fromEpoch, toEpoch, u64(seq), id, contentKind, u32(kid)], NONCE_BYTES)
  writeU32(bytes, NONCE_BYTES - 8, Math.floor(seq / 2 ** 32))
  writeU32(bytes, NONCE_BYTES - 4, seq >>> 0)
  return { name: 'AES-GCM', iv: bytes.subarray(0, NONCE_BYTES), additionalData: bytes.subarray(NONCE_BYTES), tagLength: TAG_BYTES * 8 }
}

/**
 * `bytes` as WebCrypto takes them: as they are, unless they are on a SharedArrayBuffer (then a copy). No copy is
 * needed to keep them from later changes: WebCrypto copies its inputs when called.
 */
function unshared(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes)
}
