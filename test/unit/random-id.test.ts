import { describe, expect, it } from 'vitest'
import { randomId } from '../../src/runtime/random-id.js'
import { isMessageId } from '../../src/core/ids.js'

describe('randomId', () => {
  it('makes 21 url-safe characters that are valid message ids', () => {
    const id = randomId()
    expect(id).toMatch(/^[A-Za-z0-9_-]{21}$/)
    expect(isMessageId(id)).toBe(true)
  })

  it('never repeats across many pool refills', () => {
    // 20,000 ids refill the pool (195 ids' worth of bytes) about 100 times.
    const ids = new Set(Array.from({ length: 20_000 }, () => randomId()))
    expect(ids.size).toBe(20_000)
  })

  it('spreads every character position over the whole alphabet', () => {
    const ids = Array.from({ length: 4_000 }, () => randomId())
    for (let position = 0; position < 21; position++) {
      expect(new Set(ids.map((id) => id[position])).size).toBe(64)
    }
  })
})
