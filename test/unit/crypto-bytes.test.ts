/** src/crypto/bytes.ts: the length-prefixed encoding every signed, derived and authenticated input uses, and base64url. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonical, fromBase64url, lengthPrefixed, readLengthPrefixed, readU32, readU64, toBase64url, u32, u64, writeU32 } from '../../src/crypto/bytes.js'
import { layout } from '../helpers/crypto-reference.js'

describe('fixed-width integers', () => {
  it('u32 and u64 are big-endian and refuse what does not fit', () => {
    expect([...u32(0x01020304)]).toEqual([1, 2, 3, 4])
    expect([...u64(2 ** 40 + 5)]).toEqual([0, 0, 1, 0, 0, 0, 0, 5])
    expect([...u64(Number.MAX_SAFE_INTEGER)]).toEqual([0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    expect(readU64(u64(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER)
    expect(readU64(new Uint8Array([0, 0x20, 0, 0, 0, 0, 0, 0]))).toBeUndefined()
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN, Infinity]) expect(() => u32(bad)).toThrow(RangeError)
    for (const bad of [-1, 2 ** 53, 1.5, Number.NaN]) expect(() => u64(bad)).toThrow(RangeError)
  })

  it('writeU32 and readU32 are big-endian at any offset', () => {
    const out = new Uint8Array(7)
    writeU32(out, 2, 0xfedcba98)
    expect([...out]).toEqual([0, 0, 0xfe, 0xdc, 0xba, 0x98, 0])
    expect(readU32(out, 2)).toBe(0xfedcba98)
    fc.assert(fc.property(fc.nat({ max: 0xffff_ffff }), (value) => readU32(u32(value), 0) === value))
  })
})

describe('canonical encoding', () => {
  it('is the label, then each field as u32 big-endian length and bytes (independent reference)', () => {
    const fields = ['alice', 'zoë 🦊', new Uint8Array([9, 8, 7]), '', u32(5)]
    expect(Buffer.from(canonical('label x', fields))).toEqual(layout('label x', fields))
  })

  it('leaves `lead` zero bytes before it when asked (room for a nonce in the same buffer)', () => {
    const fields = ['alice', 'zoë', new Uint8Array([9, 8, 7])]
    const bytes = canonical('label x', fields, 12)
    expect([...bytes.subarray(0, 12)]).toEqual(new Array(12).fill(0))
    expect(Buffer.from(bytes.subarray(12))).toEqual(layout('label x', fields))
  })

  it('encodes any well-formed string as its UTF-8 bytes (ASCII and otherwise)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }))), (fields) => {
        expect(Buffer.from(canonical('l', fields))).toEqual(layout('l', fields))
      }),
    )
  })

  it('never encodes two field lists alike', () => {
    fc.assert(
      fc.property(fc.array(fc.string()), fc.array(fc.string()), (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b))
        expect(Buffer.from(canonical('l', a)).equals(Buffer.from(canonical('l', b)))).toBe(false)
      }),
    )
  })

  it('refuses a lone surrogate, which UTF-8 would turn into the same replacement character as another', () => {
    expect(() => canonical('l', ['a\uD800'])).toThrow(TypeError)
    expect(() => canonical('l', [42 as unknown as string])).toThrow(TypeError)
  })

  it('reads back exactly its fields, refusing truncation and trailing bytes', () => {
    const bytes = lengthPrefixed(Uint8Array.of(1), ['ab', new Uint8Array(3)])
    const fields = readLengthPrefixed(bytes, 1, 2)
    expect(Array.isArray(fields) && fields.map((f) => f.byteLength)).toEqual([2, 3])
    for (let cut = 1; cut < bytes.byteLength; cut++) expect(readLengthPrefixed(bytes.subarray(0, cut), 1, 2)).toBe('TRUNCATED')
    expect(readLengthPrefixed(Uint8Array.of(...bytes, 0), 1, 2)).toBe('TRAILING')
    // A length far beyond the input is a truncation, not an allocation.
    expect(readLengthPrefixed(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 0, 1)).toBe('TRUNCATED')
  })
})

describe('base64url', () => {
  it('round-trips any bytes and agrees with Node', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = toBase64url(bytes)
        expect(text).toBe(Buffer.from(bytes).toString('base64url'))
        expect(fromBase64url(text)).toEqual(new Uint8Array(bytes))
      }),
    )
  })

  it('decodes only the canonical unpadded form and never throws', () => {
    for (const bad of ['AA==', 'A', 'AB', 'a+b/', 'ab cd', 'ab\n', '*', 42, null, undefined]) expect(fromBase64url(bad)).toBeUndefined()
    expect(fromBase64url('')).toEqual(new Uint8Array(0))
    fc.assert(
      fc.property(fc.string(), (text) => {
        const bytes = fromBase64url(text)
        if (bytes !== undefined) expect(toBase64url(bytes)).toBe(text)
      }),
    )
  })
})
