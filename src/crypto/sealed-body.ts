import { KEY_BYTES, SIGNATURE_BYTES, TAG_BYTES, readU32, writeU32 } from './bytes.js'
import type { SenderKeyHeader } from './sender-key.js'

const HEADER_BYTES = 4 + 4 + KEY_BYTES + SIGNATURE_BYTES

/**
 * The body of a sealed `msg` frame: the sender key header, then the
 * ciphertext and its tag: `[kid u32][prekey u32][eph 32][sig 64][ciphertext][tag 16]`.
 */
export function encodeSealedBody(header: SenderKeyHeader, ciphertext: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(HEADER_BYTES + ciphertext.byteLength)
  writeU32(out, 0, header.kid)
  writeU32(out, 4, header.prekey)
  out.set(header.eph, 8)
  out.set(header.sig, 8 + KEY_BYTES)
  out.set(ciphertext, HEADER_BYTES)
  return out
}

/**
 * Splits a sealed body into views of it (no copies: copy what must outlive changes to `body`); `undefined` when it
 * is too short to hold a header and a tag. Never throws.
 */
export function decodeSealedBody(body: Uint8Array): { readonly header: SenderKeyHeader; readonly ciphertext: Uint8Array } | undefined {
  if (!(body instanceof Uint8Array) || body.byteLength < HEADER_BYTES + TAG_BYTES) return undefined
  const header = {
    kid: readU32(body, 0),
    prekey: readU32(body, 4),
    eph: body.subarray(8, 8 + KEY_BYTES),
    sig: body.subarray(8 + KEY_BYTES, HEADER_BYTES),
  }
  return { header, ciphertext: body.subarray(HEADER_BYTES) }
}
