import { KEY_BYTES, SIGNATURE_BYTES, TAG_BYTES, own, u32 } from './bytes.js'
import type { SenderKeyHeader } from './sender-key.js'

const HEADER_BYTES = 4 + 4 + KEY_BYTES + SIGNATURE_BYTES

/**
 * The body of a sealed `msg` frame: the sender key header, then the
 * ciphertext and its tag: `[kid u32][prekey u32][eph 32][sig 64][ciphertext][tag 16]`.
 */
export function encodeSealedBody(header: SenderKeyHeader, ciphertext: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(HEADER_BYTES + ciphertext.byteLength)
  out.set(u32(header.kid), 0)
  out.set(u32(header.prekey), 4)
  out.set(header.eph, 8)
  out.set(header.sig, 8 + KEY_BYTES)
  out.set(ciphertext, HEADER_BYTES)
  return out
}

/** Splits a sealed body; `undefined` when it is too short to hold a header and a tag. Never throws. */
export function decodeSealedBody(body: Uint8Array): { readonly header: SenderKeyHeader; readonly ciphertext: Uint8Array<ArrayBuffer> } | undefined {
  if (!(body instanceof Uint8Array) || body.byteLength < HEADER_BYTES + TAG_BYTES) return undefined
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const header = {
    kid: view.getUint32(0),
    prekey: view.getUint32(4),
    eph: own(body.subarray(8, 8 + KEY_BYTES)),
    sig: own(body.subarray(8 + KEY_BYTES, HEADER_BYTES)),
  }
  return { header, ciphertext: own(body.subarray(HEADER_BYTES)) }
}
