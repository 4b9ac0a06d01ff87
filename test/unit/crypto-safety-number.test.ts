/** src/crypto safety numbers: the same 60 digits on both sides, a different number when a key changes. */
import { describe, expect, it } from 'vitest'
import { safetyNumber, type SafetyParty } from '../../src/crypto/index.js'
import { layout, nodePair, sha256 } from '../helpers/crypto-reference.js'

const party = (peer: string): SafetyParty => ({ peer, identityKey: nodePair('ed25519').raw })

describe('safety numbers', () => {
  it('are 12 groups of 5 digits, the same whichever side computes them', async () => {
    const a = party('alice')
    const b = party('bob')
    const number = await safetyNumber(a, b)
    expect(number).toMatch(/^(\d{5} ){11}\d{5}$/)
    expect(await safetyNumber(b, a)).toBe(number)
  })

  it('are SHA-256 over both (peer, key) pairs ordered by peer, modulo 10^60 (independent reference)', async () => {
    const a = party('zoë')
    const b = party('adam')
    const digest = sha256(layout('intersession e2e v1 safety number', [b.peer, b.identityKey, a.peer, a.identityKey]))
    const digits = (BigInt(`0x${digest.toString('hex')}`) % 10n ** 60n).toString().padStart(60, '0')
    expect((await safetyNumber(a, b)).replace(/ /g, '')).toBe(digits)
  })

  it('change when either key or peer changes', async () => {
    const a = party('alice')
    const b = party('bob')
    const number = await safetyNumber(a, b)
    expect(await safetyNumber(party('alice'), b)).not.toBe(number)
    expect(await safetyNumber(a, party('bob'))).not.toBe(number)
    expect(await safetyNumber(a, { ...b, peer: 'bob2' })).not.toBe(number)
    // Swapping the keys between the peers is another pairing, not the same one.
    expect(await safetyNumber({ ...a, identityKey: b.identityKey }, { ...b, identityKey: a.identityKey })).not.toBe(number)
  })

  it('are symmetric for a peer talking to itself (two devices of one id)', async () => {
    const a = party('alice')
    const b = party('alice')
    expect(await safetyNumber(b, a)).toBe(await safetyNumber(a, b))
  })

  it('refuse a party without a string peer and a 32-byte key, at once', () => {
    const a = party('alice')
    expect(() => safetyNumber(a, { peer: 'bob', identityKey: new Uint8Array(31) })).toThrow(TypeError)
    expect(() => safetyNumber(a, { peer: 7 as unknown as string, identityKey: a.identityKey })).toThrow(TypeError)
  })
})
