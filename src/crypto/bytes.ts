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
  const out = new Uint8Array(4)
  writeU32(out, 0, checkU32(value))
  return out
}

/**
 * `value`, checked to be a u32.
 * @throws RangeError when it is not an integer in 0..2^32-1.
 */
export function checkU32(value: number): number {
  if (!isU32(value)) throw new RangeError(`${String(value)} is not an integer in 0..2^32-1`)
  return value
}

/**
 * `value` as 8 bytes, big-endian.
 * @throws RangeError when `value` is not a safe integer >= 0.
 */
export function u64(value: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(8)
  writeU64(out, 0, value)
  return out
}

/**
 * Writes `value` as 8 bytes, big-endian, at `at` in `out`; returns where they end.
 * @throws RangeError when `value` is not a safe integer >= 0.
 */
export function writeU64(out: Uint8Array, at: number, value: number): number {
  if (!isSafeUint(value)) throw new RangeError(`${String(value)} is not a safe integer >= 0`)
  writeU32(out, at, Math.floor(value / 2 ** 32))
  writeU32(out, at + 4, value >>> 0)
  return at + 8
}

/**
 * Writes `value` (a u32) at `at` in `out`, big-endian. By hand rather than with a DataView: a DataView needs the
 * array's `buffer`, and asking a small (on-heap) typed array for it makes V8 move it off the heap, per call.
 */
export function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24
  out[at + 1] = (value >>> 16) & 0xff
  out[at + 2] = (value >>> 8) & 0xff
  out[at + 3] = value & 0xff
}

/** Reads 4 big-endian bytes at `at` of `bytes` as a u32 (`bytes` must hold them). */
export function readU32(bytes: Uint8Array, at: number): number {
  return (((bytes[at] ?? 0) << 24) | ((bytes[at + 1] ?? 0) << 16) | ((bytes[at + 2] ?? 0) << 8) | (bytes[at + 3] ?? 0)) >>> 0
}

/** Reads 8 big-endian bytes as a number; `undefined` when it is above 2^53-1. */
export function readU64(bytes: Uint8Array): number | undefined {
  const value = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0)
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined
}

/**
 * `lead` zero bytes (room for what a caller wants in the same buffer, e.g. a seal's nonce beside its AAD), then
 * `head`, then each field as its byte length (u32 big-endian) and its bytes (strings as UTF-8).
 * @throws TypeError when a field is neither a string nor a Uint8Array, or a string holds a lone surrogate (two
 *   such strings would encode to the same replacement character).
 */
export function lengthPrefixed(head: Field, fields: readonly Field[], lead = 0): Uint8Array<ArrayBuffer> {
  return written(head, fields, lead) ?? written(bytesOf(head), fields.map(bytesOf), lead)
}

/** The input to sign, derive from or authenticate: the UTF-8 bytes of `label`, then the length-prefixed fields (after `lead` zero bytes, as {@link lengthPrefixed}). */
export function canonical(label: string, fields: readonly Field[], lead = 0): Uint8Array<ArrayBuffer> {
  return lengthPrefixed(label, fields, lead)
}

/**
 * {@link lengthPrefixed}'s bytes when every string is ASCII (ids and labels are), written one character per byte
 * in one pass and one allocation; `undefined` at the first other character. Every seal and open builds one, and
 * TextEncoder's call costs more than the copy for strings this short.
 */
function written(head: Uint8Array, fields: readonly Uint8Array[], lead: number): Uint8Array<ArrayBuffer>
function written(head: Field, fields: readonly Field[], lead: number): Uint8Array<ArrayBuffer> | undefined
function written(head: Field, fields: readonly Field[], lead: number): Uint8Array<ArrayBuffer> | undefined {
  let size = lead + sizeOf(head)
  for (const field of fields) size += 4 + sizeOf(field)
  const out = new Uint8Array(size)
  let at = put(out, lead, head)
  for (const field of fields) {
    if (at < 0) break
    writeU32(out, at, sizeOf(field))
    at = put(out, at + 4, field)
  }
  return at < 0 ? undefined : out
}

function sizeOf(field: Field): number {
  if (typeof field === 'string') return field.length
  if (field instanceof Uint8Array) return field.byteLength
  throw new TypeError(`a field must be a string or a Uint8Array, not ${typeof field}`)
}

/** Writes `field` at `at`; where it ends, or -1 when a string is not ASCII. */
function put(out: Uint8Array, at: number, field: Field): number {
  if (typeof field === 'string') return writeAscii(out, at, field)
  out.set(field, at)
  return at + field.byteLength
}

/** Writes `text` at `at`, one byte per character; where it ends, or -1 at a character that is not ASCII. */
export function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) return -1
    out[at + i] = code
  }
  return at + text.length
}

/** A string field's UTF-8 bytes; bytes as they are. */
function bytesOf(field: Field): Uint8Array {
  if (typeof field !== 'string') return field
  if (LONE_SURROGATE.test(field)) throw new TypeError('a string field holds a lone surrogate')
  return encoder.encode(field)
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
