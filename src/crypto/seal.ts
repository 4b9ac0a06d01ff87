import type { ContentKind } from '../core/contents.js'
import type { Epoch, MessageId, PeerId } from '../core/ids.js'
import { NONCE_BYTES, TAG_BYTES, canonical, checkU32, u32, u64, writeAscii, writeU32, writeU64 } from './bytes.js'

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

/**
 * Per sender key, the nonce and AAD buffer of its last seal or open. A key seals one stream, so the fields up to
 * `toEpoch` stay the same; the rest is written in place for each message. Reusing the buffer is safe because
 * WebCrypto copies the IV and the AAD when `encrypt`/`decrypt` is called, which {@link seal} and {@link open} do
 * right after {@link gcmParams}. A new buffer per message (over 64 bytes, so off V8's heap) cost each seal and open
 * more than the cipher call.
 */
interface AadBuffer {
  readonly from: string
  readonly to: string
  readonly fromEpoch: string
  readonly toEpoch: string
  /** Bytes of the nonce and of the AAD up to and with `toEpoch`. */
  readonly head: number
  bytes: Uint8Array<ArrayBuffer>
}

/** Also marks the keys already seen to be AES-GCM: `CryptoKey.algorithm` builds a new object at every read. */
const aadBuffers = new WeakMap<CryptoKey, AadBuffer>()

/** The nonce and the AAD of `ctx`, in one buffer: the nonce is its first {@link NONCE_BYTES} bytes. Use it at once. */
function gcmParams(key: CryptoKey, ctx: SealContext): AesGcmParams {
  const { from, to, fromEpoch, toEpoch, seq, id, contentKind, kid } = ctx
  // Field by field, not a loop over an array of them: this runs per message.
  if (
    typeof from !== 'string' ||
    typeof to !== 'string' ||
    typeof fromEpoch !== 'string' ||
    typeof toEpoch !== 'string' ||
    typeof id !== 'string' ||
    typeof contentKind !== 'string'
  ) {
    throw new TypeError('ctx holds strings for from, to, both epochs, id and contentKind')
  }
  let aad = aadBuffers.get(key)
  if (aad === undefined && (!(key instanceof CryptoKey) || key.algorithm.name !== 'AES-GCM')) {
    throw new TypeError('the key is an AES-GCM CryptoKey (a sender key)')
  }
  if (aad === undefined || aad.from !== from || aad.to !== to || aad.fromEpoch !== fromEpoch || aad.toEpoch !== toEpoch) {
    const head = canonical(MSG_LABEL, [from, to, fromEpoch, toEpoch], NONCE_BYTES)
    aad = { from, to, fromEpoch, toEpoch, head: head.byteLength, bytes: head }
    aadBuffers.set(key, aad)
  }
  const size = aad.head + 4 + 8 + 4 + id.length + 4 + contentKind.length + 4 + 4
  if (aad.bytes.byteLength !== size) {
    const resized = new Uint8Array(size)
    resized.set(aad.bytes.subarray(0, aad.head))
    aad.bytes = resized
  }
  const bytes = aad.bytes
  let at = aad.head
  writeU32(bytes, at, 8)
  at = prefixedAscii(bytes, prefixedAscii(bytes, writeU64(bytes, at + 4, seq), id), contentKind)
  if (at < 0) return fullParams(ctx)
  writeU32(bytes, at, 4)
  writeU32(bytes, at + 4, checkU32(kid))
  writeU64(bytes, NONCE_BYTES - 8, seq)
  return paramsOf(bytes)
}

/** {@link gcmParams} in a buffer of its own, for an id or content kind that is not ASCII. */
function fullParams({ from, to, fromEpoch, toEpoch, seq, id, contentKind, kid }: SealContext): AesGcmParams {
  const bytes = canonical(MSG_LABEL, [from, to, fromEpoch, toEpoch, u64(seq), id, contentKind, u32(kid)], NONCE_BYTES)
  writeU64(bytes, NONCE_BYTES - 8, seq)
  return paramsOf(bytes)
}

/** The AES-GCM parameters of a buffer holding the nonce, then the AAD. */
function paramsOf(bytes: Uint8Array<ArrayBuffer>): AesGcmParams {
  return { name: 'AES-GCM', iv: bytes.subarray(0, NONCE_BYTES), additionalData: bytes.subarray(NONCE_BYTES), tagLength: TAG_BYTES * 8 }
}

/** `text`, length-prefixed, at `at` (-1: nothing written); where it ends, or -1 at a character that is not ASCII. */
function prefixedAscii(out: Uint8Array, at: number, text: string): number {
  if (at < 0) return -1
  writeU32(out, at, text.length)
  return writeAscii(out, at + 4, text)
}

/**
 * `bytes` as WebCrypto takes them: as they are, unless they are on a SharedArrayBuffer (then a copy). No copy is
 * needed to keep them from later changes: WebCrypto copies its inputs when called.
 */
function unshared(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes)
}
