/** src/crypto sealed bodies: the full form (key header, ciphertext) and the short one (kid, ciphertext), told apart by the kid's top bit. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeSealedBody, encodeSealedBody } from '../../src/crypto/index.js'
import { MAX_KID } from '../../src/crypto/sealed-body.js'

const header = fc.record({
  kid: fc.integer({ min: 0, max: MAX_KID }),
  prekey: fc.integer({ min: 0, max: 0xffff_ffff }),
  eph: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  sig: fc.uint8Array({ minLength: 64, maxLength: 64 }),
})
const ciphertext = fc.uint8Array({ minLength: 16, maxLength: 300 })

describe('sealed bodies', () => {
  it('a full body decodes to its header and ciphertext; a short one to its kid and the same ciphertext, 100 bytes shorter', () => {
    fc.assert(
      fc.property(header, ciphertext, (h, c) => {
        const full = encodeSealedBody(h, c)
        const short = encodeSealedBody(h, c, true)
        expect(full.byteLength).toBe(104 + c.byteLength)
        expect(short.byteLength).toBe(4 + c.byteLength)
        expect(decodeSealedBody(full)).toEqual({ kid: h.kid, header: h, ciphertext: c })
        expect(decodeSealedBody(short)).toEqual({ kid: h.kid, ciphertext: c })
      }),
    )
  })

  it('never throws on any bytes, and refuses what is too short for its form', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const decoded = decodeSealedBody(bytes)
        const short = bytes.byteLength >= 1 && (bytes[0]! & 0x80) !== 0
        const long = bytes.byteLength >= (short ? 4 + 16 : 104 + 16)
        expect(decoded !== undefined).toBe(long)
        if (decoded !== undefined) expect(decoded.header === undefined).toBe(short)
      }),
    )
    expect(decodeSealedBody('not bytes' as unknown as Uint8Array)).toBeUndefined()
  })

  it('refuses a kid at or above 2^31 (the short form flag) with a RangeError', () => {
    const h = { kid: MAX_KID + 1, prekey: 1, eph: new Uint8Array(32), sig: new Uint8Array(64) }
    expect(() => encodeSealedBody(h, new Uint8Array(16))).toThrow(RangeError)
    expect(() => encodeSealedBody({ ...h, kid: -1 }, new Uint8Array(16), true)).toThrow(RangeError)
  })
})
