import { KEY_BYTES, SIGNATURE_BYTES, TAG_BYTES, readU32, writeU32 } from './bytes.js'
import type { SenderKeyHeader } from './sender-key.js'

const HEADER_BYTES = 4 + 4 + KEY_BYTES + SIGNATURE_BYTES
/** The top bit of a sealed body's first u32: set, the body is short (the kid alone); clear, it is full (a kid below 2^31). */
const SHORT = 0x8000_0000

/** The highest sender key id: kids wrap below the short form's flag bit. */
export const MAX_KID = 0x7fff_ffff

/**
 * The body of a sealed `msg` frame, in one of two forms:
 * - full: the sender key header, then the ciphertext and its tag:
 *   `[kid u32][prekey u32][eph 32][sig 64][ciphertext][tag 16]`;
 * - short, once the receiver holds that header: `[kid | 2^31 u32][ciphertext][tag 16]`.
 *
 * The ciphertext is the same in both: the header only lets the receiver derive the key.
 * @throws RangeError when the header's kid is above {@link MAX_KID}.
 */
export function encodeSealedBody(header: SenderKeyHeader, ciphertext: Uint8Array, short = false): Uint8Array<ArrayBuffer> {
  if (!(header.kid >= 0 && header.kid <= MAX_KID)) throw new RangeError(`kid ${String(header.kid)} is not in 0..2^31-1`)
  if (short) {
    const out = new Uint8Array(4 + ciphertext.byteLength)
    writeU32(out, 0, (header.kid | SHORT) >>> 0)
    out.set(ciphertext, 4)
    return out
  }
  const out = new Uint8Array(HEADER_BYTES + ciphertext.byteLength)
  writeU32(out, 0, header.kid)
  writeU32(out, 4, header.prekey)
  out.set(header.eph, 8)
  out.set(header.sig, 8 + KEY_BYTES)
  out.set(ciphertext, HEADER_BYTES)
  return out
}

/** A sealed body split: the kid, the header when the body is full, and the ciphertext with its tag. */
export interface DecodedSealedBody {
  readonly kid: number
  /** Absent in a short body: the receiver uses the header it kept for this kid. */
  readonly header?: SenderKeyHeader
  readonly ciphertext: Uint8Array
}

/**
 * Splits a sealed body into views of it (no copies: copy what must outlive changes to `body`); `undefined` when it
 * is too short for its form. Never throws.
 */
export function decodeSealedBody(body: Uint8Array): DecodedSealedBody | undefined {
  if (!(body instanceof Uint8Array) || body.byteLength < 4 + TAG_BYTES) return undefined
  const first = readU32(body, 0)
  if (first >= SHORT) return { kid: first - SHORT, ciphertext: body.subarray(4) }
  if (body.byteLength < HEADER_BYTES + TAG_BYTES) return undefined
  const header = {
    kid: first,
    prekey: readU32(body, 4),
    eph: body.subarray(8, 8 + KEY_BYTES),
    sig: body.subarray(8 + KEY_BYTES, HEADER_BYTES),
  }
  return { kid: first, header, ciphertext: body.subarray(HEADER_BYTES) }
}
