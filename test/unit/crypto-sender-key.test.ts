/**
 * src/crypto sender keys: both sides derive the same AES-GCM key, the header signature is checked against the
 * pinned sender key before anything is derived, and the composition X25519 -> HKDF-SHA-256 -> AES-256-GCM is pinned
 * by a known answer computed independently with node:crypto.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import type { Epoch, PeerId } from '../../src/core/ids.js'
import {
  bundleOf,
  createIdentityKeys,
  createPrekey,
  createSenderKey,
  open,
  openSenderKey,
  seal,
  type IdentityKeys,
  type KeyBundle,
  type OpenSenderKeyRequest,
  type Prekey,
  type SenderKey,
  type SenderKeyHeader,
} from '../../src/crypto/index.js'
import {
  alice,
  aliceEpoch,
  bob,
  bobEpoch,
  carol,
  flipBit,
  MESSAGE_ID,
  NOW,
  otherEpoch,
  sealContext as ctx,
  streamKeys,
  text,
} from '../helpers/crypto-fixtures.js'
import { be32, be64, edSign, edVerify, gcmSeal, layout, nodePair, streamKey, toWebCrypto } from '../helpers/crypto-reference.js'

let aliceId: IdentityKeys
let bobId: IdentityKeys
let malloryId: IdentityKeys
let bobPrekey: Prekey
let bobBundle: KeyBundle
let sent: SenderKey
let request: OpenSenderKeyRequest
beforeAll(async () => {
  ;({ aliceId, bobId, bobPrekey, bobBundle, sent, request } = await streamKeys(3))
  malloryId = await createIdentityKeys(alice, aliceEpoch)
})

async function opened(over: Partial<OpenSenderKeyRequest> = {}): Promise<CryptoKey> {
  const result = await openSenderKey({ ...request, ...over })
  if (!result.ok) throw new Error(`refused ${result.reason}`)
  return result.key
}

describe('sender keys', () => {
  it('describe the key and carry the header of the design', () => {
    expect(sent).toMatchObject({ kid: 5, to: bob, toEpoch: bobEpoch, prekeyId: 3, createdAt: NOW, header: { kid: 5, prekey: 3 } })
    expect(sent.header.eph.byteLength).toBe(32)
    expect(sent.header.sig.byteLength).toBe(64)
    expect(Object.keys(sent).sort()).toEqual(['createdAt', 'header', 'key', 'kid', 'prekeyId', 'to', 'toEpoch'])
  })

  it('are AES-GCM 256 keys that cannot be exported, on both sides', async () => {
    const key = await opened()
    for (const k of [sent.key, key]) {
      expect(k.algorithm).toEqual({ name: 'AES-GCM', length: 256 })
      expect(k.extractable).toBe(false)
      await expect(crypto.subtle.exportKey('raw', k)).rejects.toThrow()
    }
  })

  it('open on the receiver to the same key: what one seals the other opens', async () => {
    const key = await opened()
    const sealed = await seal(sent.key, ctx(), text('hello bob'))
    expect(await open(key, ctx(), sealed)).toEqual(text('hello bob'))
    expect(await seal(key, ctx(), text('hello bob'))).toEqual(sealed)
  })

  it('use a fresh ephemeral key each time: two sender keys for one stream differ', async () => {
    const again = await createSenderKey({ identity: aliceId, from: alice, fromEpoch: aliceEpoch, to: bob, receiver: bobBundle, kid: 5, now: NOW })
    expect(again.header.eph).not.toEqual(sent.header.eph)
    const sealed = await seal(sent.key, ctx(), text('x'))
    expect(await open(again.key, ctx(), sealed)).toBeUndefined()
  })
})

describe('a receiver refuses a header', () => {
  it('signed by another identity than the pinned one', async () => {
    const forged = await createSenderKey({ identity: malloryId, from: alice, fromEpoch: aliceEpoch, to: bob, receiver: bobBundle, kid: 5, now: NOW })
    expect(await openSenderKey({ ...request, header: forged.header })).toEqual({ ok: false, reason: 'BAD_SIGNATURE' })
    // The same header opens under the key it was signed with: the refusal is the pinning, nothing else.
    expect((await openSenderKey({ ...request, header: forged.header, senderIdentityKey: malloryId.publicKey })).ok).toBe(true)
  })

  it('moved to another stream, sender epoch or receiver epoch', async () => {
    const carolId = await createIdentityKeys(carol, bobEpoch)
    const carolPrekey = { ...bobPrekey } // the same prekey id and private half: only the binding differs
    const cases: Array<Partial<OpenSenderKeyRequest>> = [
      { from: carol },
      { fromEpoch: otherEpoch },
      { identity: carolId, prekey: carolPrekey },
      { identity: await createIdentityKeys(bob, '00m5x3k1c.newbob' as Epoch) },
    ]
    for (const over of cases) expect(await openSenderKey({ ...request, ...over })).toEqual({ ok: false, reason: 'BAD_SIGNATURE' })
  })

  it('with any bit of its ephemeral key or signature flipped, or another kid', async () => {
    const headers: SenderKeyHeader[] = [{ ...sent.header, kid: 6 }]
    for (let bit = 0; bit < 256; bit += 7) headers.push({ ...sent.header, eph: flipBit(sent.header.eph, bit) })
    for (let bit = 0; bit < 512; bit += 13) headers.push({ ...sent.header, sig: flipBit(sent.header.sig, bit) })
    for (const header of headers) expect(await openSenderKey({ ...request, header })).toEqual({ ok: false, reason: 'BAD_SIGNATURE' })
  })

  it('naming another prekey', async () => {
    expect(await openSenderKey({ ...request, header: { ...sent.header, prekey: 4 } })).toEqual({ ok: false, reason: 'PREKEY_MISMATCH' })
    const next = await createPrekey(bobId, 4, NOW)
    expect(await openSenderKey({ ...request, prekey: next })).toEqual({ ok: false, reason: 'PREKEY_MISMATCH' })
  })

  it('of the wrong shape (network input), without throwing', async () => {
    const bad: unknown[] = [
      null,
      'header',
      {},
      { ...sent.header, eph: sent.header.eph.subarray(1) },
      { ...sent.header, sig: new Uint8Array(65) },
      { ...sent.header, kid: -1 },
      { ...sent.header, kid: 2 ** 32 },
      { ...sent.header, prekey: '3' },
      { ...sent.header, eph: [...sent.header.eph] },
    ]
    for (const header of bad) expect(await openSenderKey({ ...request, header: header as SenderKeyHeader })).toEqual({ ok: false, reason: 'MALFORMED' })
  })

  it('signed by the sender but with an unusable ephemeral key (a low-order point)', async () => {
    const sender = nodePair('ed25519')
    const eph = new Uint8Array(32) // the all-zero point: X25519 with it is all zeros, which WebCrypto refuses
    const sig = edSign(sender.privateKey, layout('intersession e2e v1 sender key', [alice, bob, aliceEpoch, bobEpoch, be32(3), be32(5), eph]))
    const result = await openSenderKey({ ...request, senderIdentityKey: sender.raw, header: { kid: 5, prekey: 3, eph, sig } })
    expect(result).toEqual({ ok: false, reason: 'MALFORMED' })
  })
})

describe('misuse throws at once', () => {
  it('createSenderKey', () => {
    const base = { identity: aliceId, from: alice, fromEpoch: aliceEpoch, to: bob, receiver: bobBundle, kid: 5, now: NOW }
    for (const kid of [-1, 2 ** 32, 0.5]) expect(() => createSenderKey({ ...base, kid })).toThrow(RangeError)
    expect(() => createSenderKey({ ...base, now: -1 })).toThrow(RangeError)
    expect(() => createSenderKey({ ...base, from: carol })).toThrow(TypeError)
    expect(() => createSenderKey({ ...base, fromEpoch: bobEpoch })).toThrow(TypeError)
    expect(() => createSenderKey({ ...base, to: carol })).toThrow(TypeError)
    expect(() => createSenderKey({ ...base, receiver: { ...bobBundle, prekey: { ...bobBundle.prekey, key: new Uint8Array(31) } } })).toThrow(TypeError)
    expect(() => createSenderKey({ ...base, identity: { ...aliceId, signing: bobPrekey.agreement } })).toThrow(TypeError)
  })

  it('createSenderKey rejects a receiver prekey that agrees no secret (the all-zero point)', async () => {
    const receiver = { ...bobBundle, prekey: { ...bobBundle.prekey, key: new Uint8Array(32) } }
    await expect(createSenderKey({ identity: aliceId, from: alice, fromEpoch: aliceEpoch, to: bob, receiver, kid: 1, now: NOW })).rejects.toThrow()
  })

  it('openSenderKey', () => {
    expect(() => openSenderKey({ ...request, senderIdentityKey: new Uint8Array(31) })).toThrow(TypeError)
    expect(() => openSenderKey({ ...request, prekey: { ...bobPrekey, agreement: bobId.signing } })).toThrow(TypeError)
    expect(() => openSenderKey({ ...request, identity: {} as IdentityKeys })).toThrow(TypeError)
    expect(() => openSenderKey({ ...request, from: 1 as unknown as PeerId })).toThrow(TypeError)
  })
})

describe('known answer: the composition computed independently with node:crypto', () => {
  const contents = text('known answer: héllo 🦊')
  const seq = 2 ** 40 + 17 // above 32 bits: the whole u64 is in the nonce and the AAD
  const aad = (kid: number, to: PeerId, toEpoch: Epoch): Buffer =>
    layout('intersession e2e v1 msg', [alice, to, aliceEpoch, toEpoch, be64(seq), MESSAGE_ID, 'j', be32(kid)])

  it('sender side: X25519(eph, prekey) -> HKDF -> AES-256-GCM, and the header signature', async () => {
    // A receiver prekey whose private half the test can read (test-only), in a bundle signed by bob.
    const prekeyPair = nodePair('x25519')
    const prekey: Prekey = { ...(await createPrekey(bobId, 9, NOW)), id: 9, publicKey: new Uint8Array(prekeyPair.raw) }
    const fields = [alice, bob, aliceEpoch, bobEpoch, be32(9), be32(77)]
    const key = await createSenderKey({ identity: aliceId, from: alice, fromEpoch: aliceEpoch, to: bob, receiver: bundleOf(bobId, prekey), kid: 77, now: NOW })
    const { eph, sig } = key.header
    expect(edVerify(aliceId.publicKey, layout('intersession e2e v1 sender key', [...fields, eph]), sig)).toBe(true)
    const aes = streamKey(prekeyPair.privateKey, eph, layout('intersession e2e v1 stream', [...fields, eph]))
    const expected = gcmSeal(aes, seq, aad(77, bob, bobEpoch), contents)
    expect(Buffer.from(await seal(key.key, ctx({ seq, contentKind: 'j', kid: 77 }), contents))).toEqual(expected)
  })

  it('receiver side: a header made and signed outside src/crypto opens to the same key', async () => {
    const sender = nodePair('ed25519')
    const ephPair = nodePair('x25519')
    const prekeyPair = nodePair('x25519')
    const prekey: Prekey = {
      id: 12,
      createdAt: NOW,
      agreement: await toWebCrypto(prekeyPair, 'X25519'),
      publicKey: prekeyPair.raw as Uint8Array<ArrayBuffer>,
      signature: new Uint8Array(64),
    }
    const fields = [alice, bob, aliceEpoch, bobEpoch, be32(12), be32(1), ephPair.raw]
    const header = { kid: 1, prekey: 12, eph: ephPair.raw, sig: edSign(sender.privateKey, layout('intersession e2e v1 sender key', fields)) }
    const result = await openSenderKey({ identity: bobId, prekey, from: alice, fromEpoch: aliceEpoch, senderIdentityKey: sender.raw, header })
    if (!result.ok) throw new Error(result.reason)
    // The other side of the agreement, computed by node:crypto from the ephemeral private half and the prekey.
    const aes = streamKey(ephPair.privateKey, prekeyPair.raw, layout('intersession e2e v1 stream', fields))
    const expected = gcmSeal(aes, seq, aad(1, bob, bobEpoch), contents)
    const c = ctx({ seq, contentKind: 'j', kid: 1 })
    expect(Buffer.from(await seal(result.key, c, contents))).toEqual(expected)
    expect(await open(result.key, c, expected)).toEqual(contents)
  })
})
