/** src/crypto seal/open: AES-GCM under a sender key, the seq as nonce, every field of the context bound as AAD. */
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Epoch, MessageId } from '../../src/core/ids.js'
import {
  bundleOf,
  createIdentityKeys,
  createPrekey,
  createSenderKey,
  open,
  openSenderKey,
  seal,
  type SealContext,
  type SenderKey,
} from '../../src/crypto/index.js'
import { canonical, u32, u64 } from '../../src/crypto/bytes.js'
import { alice, aliceEpoch, bobEpoch, carol, flipBit, NOW, otherEpoch, sealContext, streamKeys, text } from '../helpers/crypto-fixtures.js'

const ctx = sealContext({ seq: 41 })

let toBob: SenderKey
let toCarol: SenderKey
let bobKey: CryptoKey
beforeAll(async () => {
  const { aliceId, sent, request } = await streamKeys()
  const carolId = await createIdentityKeys(carol, bobEpoch)
  toBob = sent
  toCarol = await createSenderKey({
    identity: aliceId,
    from: alice,
    fromEpoch: aliceEpoch,
    to: carol,
    receiver: bundleOf(carolId, await createPrekey(carolId, 1, NOW)),
    kid: 5,
    now: NOW,
  })
  const opened = await openSenderKey(request)
  if (!opened.ok) throw new Error(opened.reason)
  bobKey = opened.key
})

describe('seal and open', () => {
  it('round-trip any contents, and the ciphertext is the contents plus a 16-byte tag', async () => {
    for (const contents of [text('héllo'), new Uint8Array(0), new Uint8Array(64 * 1024).fill(7)]) {
      const sealed = await seal(toBob.key, ctx, contents)
      expect(sealed.byteLength).toBe(contents.byteLength + 16)
      expect(await open(bobKey, ctx, sealed)).toEqual(contents)
    }
  })

  it('are deterministic: the same key, context and contents give identical bytes (a retransmission is identical)', async () => {
    const contents = text('retransmit me')
    const first = await seal(toBob.key, ctx, contents)
    expect(await seal(toBob.key, ctx, contents)).toEqual(first)
    expect(await seal(bobKey, { ...ctx }, Uint8Array.from(contents))).toEqual(first)
  })

  it('take contents and ciphertexts on a SharedArrayBuffer as any others', async () => {
    const contents = text('shared memory')
    const onShared = (bytes: Uint8Array): Uint8Array => {
      const view = new Uint8Array(new SharedArrayBuffer(bytes.byteLength))
      view.set(bytes)
      return view
    }
    const sealed = await seal(toBob.key, ctx, onShared(contents))
    expect(sealed).toEqual(await seal(toBob.key, ctx, contents))
    expect(await open(bobKey, ctx, onShared(sealed))).toEqual(contents)
  })

  it('take the nonce from the seq: the same contents at two seqs differ (also above 32 bits)', async () => {
    const contents = text('same contents')
    const sealed = await Promise.all([1, 2, 2 ** 32 + 1, 2 ** 52].map((seq) => seal(toBob.key, { ...ctx, seq }, contents)))
    expect(new Set(sealed.map((s) => Buffer.from(s).toString('hex'))).size).toBe(sealed.length)
    // The keystream differs, not only the tag.
    expect(Buffer.from(sealed[0]!.subarray(0, -16)).equals(Buffer.from(sealed[2]!.subarray(0, -16)))).toBe(false)
  })

  it('do not open when any field of the context differs', async () => {
    const sealed = await seal(toBob.key, ctx, text('bound'))
    const changed: SealContext[] = [
      { ...ctx, from: carol },
      { ...ctx, to: carol },
      { ...ctx, fromEpoch: otherEpoch },
      { ...ctx, toEpoch: '00m5x3k1c.other2' as Epoch },
      { ...ctx, seq: 42 },
      { ...ctx, seq: 41 + 2 ** 32 },
      { ...ctx, id: 'V1StGXR8_Z5jdHi6B-myU' as MessageId },
      { ...ctx, contentKind: 'j' },
      { ...ctx, kid: 6 },
    ]
    for (const other of changed) expect(await open(bobKey, other, sealed)).toBeUndefined()
    expect(await open(bobKey, ctx, sealed)).toEqual(text('bound'))
  })

  it('do not open with any bit flipped, in the ciphertext or the tag, or cut short', async () => {
    const sealed = await seal(toBob.key, ctx, text('twenty bytes of text'))
    for (let bit = 0; bit < sealed.byteLength * 8; bit++) expect(await open(bobKey, ctx, flipBit(sealed, bit))).toBeUndefined()
    for (let length = 0; length < sealed.byteLength; length++) expect(await open(bobKey, ctx, sealed.subarray(0, length))).toBeUndefined()
    expect(await open(bobKey, ctx, Uint8Array.of(...sealed, 0))).toBeUndefined()
  })

  it('do not open a ciphertext moved to another seq or another stream', async () => {
    const at41 = await seal(toBob.key, ctx, text('first'))
    const at42 = await seal(toBob.key, { ...ctx, seq: 42 }, text('second'))
    expect(await open(bobKey, { ...ctx, seq: 42 }, at41)).toBeUndefined()
    expect(await open(bobKey, ctx, at42)).toBeUndefined()
    // A frame of the stream alice -> carol replayed into alice -> bob: another key and another AAD.
    const toCarolFrame = await seal(toCarol.key, { ...ctx, to: carol }, text('for carol'))
    expect(await open(bobKey, ctx, toCarolFrame)).toBeUndefined()
    expect(await open(bobKey, { ...ctx, to: carol }, toCarolFrame)).toBeUndefined()
  })

  it('open never rejects, whatever the bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        expect(await open(bobKey, ctx, bytes)).toBeUndefined()
      }),
      { numRuns: 300 },
    )
  })

  it('bind the documented AAD and nonce, also as ids, content kinds and streams change under one key (its buffer is reused)', async () => {
    const nonceOf = (seq: number): Uint8Array<ArrayBuffer> => {
      const nonce = new Uint8Array(12)
      nonce.set(u64(seq), 4)
      return nonce
    }
    const ids = fc.oneof(fc.constantFrom('m', 'msg-0123456789abcdefghij', 'ünïcödé', 'x'.repeat(300)), fc.string({ unit: 'binary', maxLength: 40 }))
    const contexts = fc.record({
      seq: fc.oneof(fc.nat(1000), fc.constant(2 ** 53 - 1)),
      id: ids,
      contentKind: fc.constantFrom('s', 'b', 'j', 'é'),
      kid: fc.oneof(fc.nat(10), fc.constant(2 ** 32 - 1)),
      to: fc.constantFrom(ctx.to, 'someone-else'),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(contexts, { minLength: 1, maxLength: 6 }), async (steps) => {
        for (const step of steps) {
          const at: SealContext = {
            ...ctx,
            ...step,
            id: step.id as MessageId,
            to: step.to as SealContext['to'],
            contentKind: step.contentKind as SealContext['contentKind'],
          }
          const contents = text(`contents ${step.seq}`)
          const sealed = await seal(toBob.key, at, contents)
          const aad = canonical('intersession e2e v1 msg', [at.from, at.to, at.fromEpoch, at.toEpoch, u64(at.seq), at.id, at.contentKind, u32(at.kid)])
          const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonceOf(at.seq), additionalData: aad, tagLength: 128 }, bobKey, sealed)
          expect(new Uint8Array(plain)).toEqual(contents)
        }
      }),
      { numRuns: 40 },
    )
  })

  it('throw at once on misuse', () => {
    const contents = text('x')
    for (const seq of [-1, 1.5, 2 ** 53, Number.NaN]) {
      expect(() => seal(toBob.key, { ...ctx, seq }, contents)).toThrow(RangeError)
      expect(() => open(bobKey, { ...ctx, seq }, contents)).toThrow(RangeError)
    }
    for (const kid of [-1, 2 ** 32]) expect(() => seal(toBob.key, { ...ctx, kid }, contents)).toThrow(RangeError)
    expect(() => seal(toBob.key, { ...ctx, id: 3 as unknown as MessageId }, contents)).toThrow(TypeError)
    expect(() => seal(toBob.key, ctx, 'text' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => open(bobKey, ctx, 'text' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => seal({} as CryptoKey, ctx, contents)).toThrow(TypeError)
    expect(() => seal(toBob.header as unknown as CryptoKey, ctx, contents)).toThrow(TypeError)
  })
})
