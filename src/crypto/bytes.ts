/**
 * The byte shapes of end-to-end encryption (issue 16): the one length-prefixed
 * encoding every signature, HKDF and AAD input and the key bundle are built from, fixed-width integers, and
 * base64url. Every input is a label (its UTF-8 bytes, not prefixed: each label is a distinct constant) followed
 * by fields, each as its byte length (u32 big-endian) then its bytes, so no two field lists encode alike.
 */

/** Bytes of a raw X25519 or Ed25519 public key. */
export const KEY_BYTES = 32
/** Bytes of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64
/** Bytes of the AES-GCM tag at the end of every sealed ciphertext. */
export const TAG_BYTES = 16
/** Bytes of an AES-GCM nonce: 4 zero bytes, then the seq as u64 big-endian. */
export const NONCE_BYTES = 12

/** One field of an encoded input: a string (its UTF-8 bytes) or bytes. */
export type Field = string | Uint8Array

const encoder = new TextEncoder()
const LONE_SURROGATE = /\p{Cs}/u

/** True when `value` is an integer in 0..2^32-1. */
export function isU32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff
}

/** True when `value` is a safe integer >= 0 (a seq, a time in ms). */
export function isSafeUint(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

/**
 * `value` as 4 bytes, big-endian.
 * @throws RangeError when `value` is not an integer in 0..2^32-1.
 */
export function u32(value: number): Uint8Array<ArrayBuffer> {
  if (!isU32(value)) throw new RangeError(`${String(value)} is not an integer in 0..2^32-1`)
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, value)
  return out
}

/**
 * `value` as 8 bytes, big-endian.
 * @throws RangeError when `value` is not a safe integer >= 0.
 */
export function u64(value: number): Uint8Array<ArrayBuffer> {
  if (!isSafeUint(value)) throw new RangeError(`${String(value)} is not a safe integer >= 0`)
  const out = new Uint8Array(8)
  const view = new DataView(out.buffer)
  view.setUint32(0, Math.floor(value / 2 ** 32))
  view.setUint32(4, value >>> 0)
  return out
}

/** Reads 8 big-endian bytes as a number; `undefined` when it is above 2^53-1. */
export function readU64(bytes: Uint8Array): number | undefined {
  const value = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0)
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined
}

/**
 * `head`, then each field as its byte length (u32 big-endian) and its bytes.
 * @throws TypeError when a field is neither a string nor a Uint8Array, or a string holds a lone surrogate (two
 *   such strings would encode to the same replacement character).
 */
export function lengthPrefixed(head: Uint8Array, fields: readonly Field[]): Uint8Array<ArrayBuffer> {
  const parts = fields.map((field) => {
    if (field instanceof Uint8Array) return field
    if (typeof field !== 'string') throw new TypeError(`a field must be a string or a Uint8Array, not ${typeof field}`)
    return utf8(field)
  })
  const out = new Uint8Array(head.byteLength + parts.reduce((sum, part) => sum + 4 + part.byteLength, 0))
  const view = new DataView(out.buffer)
  out.set(head, 0)
  let at = head.byteLength
  for (const part of parts) {
    view.setUint32(at, part.byteLength)
    out.set(part, at + 4)
    at += 4 + part.byteLength
  }
  return out
}

/** The input to sign, derive from or authenticate: the UTF-8 bytes of `label`, then the length-prefixed fields. */
export function canonical(label: string, fields: readonly Field[]): Uint8Array<ArrayBuffer> {
  return lengthPrefixed(utf8(label), fields)
}

/**
 * The UTF-8 bytes of `text`. Ids and labels are ASCII, which is copied as is: TextEncoder's call costs more than the
 * copy for strings this short, and every seal encodes six of them.
 */
function utf8(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) {
      if (LONE_SURROGATE.test(text)) throw new TypeError('a string field holds a lone surrogate')
      return encoder.encode(text)
    }
    out[i] = code
  }
  return out
}

/** Why {@link readLengthPrefixed} refused its input. */
export type ReadFailure = 'TRUNCATED' | 'TRAILING'

/**
 * The `count` length-prefixed fields of `bytes` from `offset` on, which must end exactly at the end of `bytes`.
 * Never throws; the fields are views into `bytes`.
 */
export function readLengthPrefixed(bytes: Uint8Array, offset: number, count: number): Uint8Array[] | ReadFailure {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const fields: Uint8Array[] = []
  let at = offset
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.byteLength) return 'TRUNCATED'
    const length = view.getUint32(at)
    if (at + 4 + length > bytes.byteLength) return 'TRUNCATED'
    fields.push(bytes.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return at === bytes.byteLength ? fields : 'TRAILING'
}

/** A copy of `bytes` on an ArrayBuffer of its own: what WebCrypto accepts, safe from later changes by the caller. */
export function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes)
}

/** True when `value` is a Uint8Array of exactly `length` bytes. */
export function isBytes(value: unknown, length: number): value is Uint8Array {
  return value instanceof Uint8Array && value.byteLength === length
}

/** `bytes` as base64url without padding. */
export function toBase64url(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.byteLength; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

/**
 * The bytes of `text`, base64url without padding; `undefined` (never a throw) when `text` is not a string in
 * exactly that form: other characters, padding, an impossible length, or non-zero unused bits.
 */
export function fromBase64url(text: unknown): Uint8Array<ArrayBuffer> | undefined {
  if (typeof text !== 'string' || !BASE64URL.test(text) || text.length % 4 === 1) return undefined
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  // atob ignores unused low bits of the last character; only the canonical spelling of the bytes is accepted.
  return toBase64url(bytes) === text ? bytes : undefined
}
