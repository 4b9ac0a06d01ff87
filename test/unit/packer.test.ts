import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Packer } from '../../src/protocol/packer.js'
import { envelope, envelopeHead, openEnvelope, pack, unpack } from '../../src/protocol/relay.js'

const item = fc.record({
  address: fc.string({ minLength: 1, maxLength: 20 }),
  frame: fc.uint8Array({ maxLength: 40 }),
  stored: fc.boolean(),
  // The transport hands the packer a head and the frame apart; the relay, a whole envelope.
  split: fc.boolean(),
})

describe('Packer', () => {
  it('writes envelopes taken as a head and a frame exactly as the same envelopes taken whole', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 8 }), fc.integer({ min: 40, max: 400 }), async (items, maxBytes) => {
        const written: Uint8Array[] = []
        const packer = new Packer(maxBytes, (message) => written.push(message))
        const whole = items.map(({ address, frame, stored }) => envelope(address, frame, stored))
        for (const [i, { address, frame, stored, split }] of items.entries()) {
          if (split) packer.add(frame, envelopeHead(address, stored))
          else packer.add(whole[i]!)
        }
        await Promise.resolve()
        // Every envelope comes out, in order and unchanged, and no message is over the limit unless one envelope is.
        const out = written.flatMap((message) => unpack(message) ?? [])
        expect(out.map((one) => [...one])).toEqual(whole.map((one) => [...one]))
        for (const message of written) {
          const inside = unpack(message) ?? []
          if (inside.length > 1) expect(message.byteLength).toBeLessThanOrEqual(maxBytes)
          expect([...message]).toEqual([...pack(inside)])
        }
        for (const [i, one] of out.entries()) {
          const { address, frame, stored } = items[i]!
          const opened = openEnvelope(one)
          expect([opened?.address, opened?.stored, [...(opened?.frame ?? [])]]).toEqual([address, stored, [...frame]])
        }
      }),
    )
  })

  it('writes a lone envelope given as a head and a frame as that one envelope', async () => {
    const written: Uint8Array[] = []
    const packer = new Packer(1024, (message) => written.push(message))
    packer.add(Uint8Array.of(1, 2, 3), envelopeHead('bob', true))
    await Promise.resolve()
    expect(written.map((one) => [...one])).toEqual([[...envelope('bob', Uint8Array.of(1, 2, 3), true)]])
  })
})
