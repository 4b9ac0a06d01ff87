/** src/crypto identity keys, signed prekeys and key bundles: shapes, signatures, the binary form and its refusals. */
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Epoch, PeerId } from '../../src/core/ids.js'
import {
  bundleOf,
  createIdentityKeys,
  createPrekey,
  decodeBundle,
  encodeBundle,
  toBase64url,
  verifyBundle,
  type IdentityKeys,
  type KeyBundle,
  type Prekey,
} from '../../src/crypto/index.js'
import { alice, aliceEpoch, mallory, NOW, otherEpoch } from '../helpers/crypto-fixtures.js'
import { be32, be64, edVerify, layout } from '../helpers/crypto-reference.js'

let identity: IdentityKeys
let prekey: Prekey
let bundle: KeyBundle
beforeAll(async () => {
  identity = await createIdentityKeys(alice, aliceEpoch)
  prekey = await createPrekey(identity, 7, NOW)
  bundle = bundleOf(identity, prekey)
})

describe('identity keys', () => {
  it('are an Ed25519 pair whose private half cannot be exported, with the raw public key', async () => {
    expect(identity.peer).toBe(alice)
    expect(identity.epoch).toBe(aliceEpoch)
    expect(identity.signing.privateKey.algorithm.name).toBe('Ed25519')
    expect(identity.signing.privateKey.extractable).toBe(false)
    await expect(crypto.subtle.exportKey('pkcs8', identity.signing.privateKey)).rejects.toThrow()
    await expect(crypto.subtle.exportKey('jwk', identity.signing.privateKey)).rejects.toThrow()
    expect(identity.publicKey).toEqual(new Uint8Array(await crypto.subtle.exportKey('raw', identity.signing.publicKey)))
    expect(identity.publicKey.byteLength).toBe(32)
  })

  it('refuse an invalid peer or epoch at once', () => {
    expect(() => createIdentityKeys('' as PeerId, aliceEpoch)).toThrow(TypeError)
    expect(() => createIdentityKeys('a b' as PeerId, aliceEpoch)).toThrow(TypeError)
    expect(() => createIdentityKeys(alice, 'nope' as Epoch)).toThrow(TypeError)
  })
})

describe('prekeys', () => {
  it('are an X25519 pair whose private half cannot be exported, signed over the layout of the design', async () => {
    expect(prekey.id).toBe(7)
    expect(prekey.createdAt).toBe(NOW)
    expect(prekey.agreement.privateKey.algorithm.name).toBe('X25519')
    expect(prekey.agreement.privateKey.extractable).toBe(false)
    await expect(crypto.subtle.exportKey('pkcs8', prekey.agreement.privateKey)).rejects.toThrow()
    expect(prekey.publicKey).toEqual(new Uint8Array(await crypto.subtle.exportKey('raw', prekey.agreement.publicKey)))
    const signed = layout('intersession e2e v1 prekey', [alice, aliceEpoch, be32(7), be64(NOW), prekey.publicKey])
    expect(edVerify(identity.publicKey, signed, prekey.signature)).toBe(true)
  })

  it('refuse a bad id, time or identity at once', () => {
    for (const id of [-1, 2 ** 32, 1.5]) expect(() => createPrekey(identity, id, NOW)).toThrow(RangeError)
    for (const now of [-1, 2 ** 53, Number.NaN]) expect(() => createPrekey(identity, 1, now)).toThrow(RangeError)
    expect(() => createPrekey({ ...identity, signing: prekey.agreement }, 1, NOW)).toThrow(TypeError)
    expect(() => createPrekey(null as unknown as IdentityKeys, 1, NOW)).toThrow(TypeError)
  })
})

describe('bundles', () => {
  it('carry the identity key and the signed prekey, and verify', async () => {
    expect(bundle).toEqual({
      v: 1,
      peer: alice,
      epoch: aliceEpoch,
      identityKey: identity.publicKey,
      prekey: { id: 7, createdAt: NOW, key: prekey.publicKey, signature: prekey.signature },
    })
    expect(await verifyBundle(bundle)).toBe(true)
  })

  it('do not verify with a substituted prekey, identity key or signed field', async () => {
    const other = await createIdentityKeys(alice, aliceEpoch)
    const otherPrekey = await createPrekey(identity, 7, NOW)
    const forged: KeyBundle[] = [
      { ...bundle, prekey: { ...bundle.prekey, key: otherPrekey.publicKey } },
      { ...bundle, identityKey: other.publicKey },
      { ...bundle, prekey: { ...bundle.prekey, id: 8 } },
      { ...bundle, prekey: { ...bundle.prekey, createdAt: NOW + 1 } },
      // The signature was made over alice in aliceEpoch: it is no good for another peer or epoch.
      { ...bundle, peer: mallory },
      { ...bundle, epoch: otherEpoch },
      { ...bundle, prekey: { ...bundle.prekey, signature: flip(bundle.prekey.signature, 100) } },
      { ...bundle, prekey: { ...bundle.prekey, key: flip(bundle.prekey.key, 3) } },
      { ...bundle, prekey: { ...bundle.prekey, signature: bundle.prekey.signature.subarray(1) } },
      { ...bundle, identityKey: new Uint8Array(32) },
      { ...bundle, v: 2 as 1 },
    ]
    for (const bad of forged) expect(await verifyBundle(bad)).toBe(false)
    for (const junk of [null, undefined, 'bundle', {}, { ...bundle, prekey: null }]) expect(await verifyBundle(junk as KeyBundle)).toBe(false)
    // And the genuine one by the other identity does verify: the check is the binding, not the keys.
    expect(await verifyBundle(bundleOf(other, await createPrekey(other, 1, NOW)))).toBe(true)
  })

  it('encode as the version byte and length-prefixed fields, and decode back', () => {
    const bytes = encodeBundle(bundle)
    const fields = [alice, aliceEpoch, identity.publicKey, be32(7), be64(NOW), prekey.publicKey, prekey.signature]
    expect(Buffer.from(bytes)).toEqual(layout('\x01', fields))
    expect(decodeBundle(bytes)).toEqual({ ok: true, bundle })
  })

  it('fit the directory limit (1,024 base64url characters) with the longest peer id', async () => {
    const longest = await createIdentityKeys('🦊'.repeat(128) as PeerId, '00m5x3k1a.abcdefghijklmnopqrstuvwxyz012345' as Epoch)
    const bytes = encodeBundle(bundleOf(longest, await createPrekey(longest, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER)))
    expect(bytes.byteLength).toBe(723)
    expect(toBase64url(bytes).length).toBeLessThanOrEqual(1024)
  })

  it('decode to a typed refusal: truncation, version, sizes, trailing bytes, invalid fields', () => {
    const bytes = encodeBundle(bundle)
    for (let cut = 0; cut < bytes.byteLength; cut++) expect(decodeBundle(bytes.subarray(0, cut))).toMatchObject({ ok: false, reason: 'TRUNCATED' })
    expect(decodeBundle(Uint8Array.of(2, ...bytes.subarray(1)))).toMatchObject({ ok: false, reason: 'VERSION' })
    expect(decodeBundle(Uint8Array.of(...bytes, 0))).toMatchObject({ ok: false, reason: 'TRAILING' })
    const reencode = (fields: Array<string | Uint8Array>): Uint8Array => new Uint8Array(layout('\x01', fields))
    const good = [alice, aliceEpoch, identity.publicKey, be32(7), be64(NOW), prekey.publicKey, prekey.signature] as Array<string | Uint8Array>
    const replaced = (i: number, value: string | Uint8Array): Uint8Array => reencode(good.map((f, j) => (j === i ? value : f)))
    expect(decodeBundle(replaced(2, new Uint8Array(31)))).toMatchObject({ ok: false, reason: 'SIZE' })
    expect(decodeBundle(replaced(3, new Uint8Array(8)))).toMatchObject({ ok: false, reason: 'SIZE' })
    expect(decodeBundle(replaced(4, new Uint8Array(4)))).toMatchObject({ ok: false, reason: 'SIZE' })
    expect(decodeBundle(replaced(5, new Uint8Array(33)))).toMatchObject({ ok: false, reason: 'SIZE' })
    expect(decodeBundle(replaced(6, new Uint8Array(63)))).toMatchObject({ ok: false, reason: 'SIZE' })
    expect(decodeBundle(replaced(0, ''))).toMatchObject({ ok: false, reason: 'FIELD' })
    expect(decodeBundle(replaced(0, 'a b'))).toMatchObject({ ok: false, reason: 'FIELD' })
    expect(decodeBundle(replaced(0, Uint8Array.of(0xc3, 0x28)))).toMatchObject({ ok: false, reason: 'FIELD' })
    expect(decodeBundle(replaced(1, 'not-an-epoch'))).toMatchObject({ ok: false, reason: 'FIELD' })
    expect(decodeBundle(replaced(4, Uint8Array.of(0, 0x20, 0, 0, 0, 0, 0, 0)))).toMatchObject({ ok: false, reason: 'FIELD' })
    expect(() => decodeBundle('AQ' as unknown as Uint8Array)).toThrow(TypeError)
  })

  it('decode any bytes without throwing; what decodes re-encodes to the same bytes', () => {
    const bytes = encodeBundle(bundle)
    const check = (input: Uint8Array): void => {
      const result = decodeBundle(input)
      if (result.ok) expect(encodeBundle(result.bundle)).toEqual(new Uint8Array(input))
      else expect(result.detail).toEqual(expect.any(String))
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), check), { numRuns: 2000 })
    fc.assert(
      fc.property(fc.nat(bytes.byteLength - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const mutated = Uint8Array.from(bytes)
        mutated[at] = value
        check(mutated)
      }),
      { numRuns: 2000 },
    )
  })
})

function flip(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  out[bit >> 3]! ^= 1 << (bit & 7)
  return out
}
