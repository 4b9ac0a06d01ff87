/**
 * bench:core's store-and-codec floor moves every message once, in order, and
 * leaves both stores empty (it throws otherwise); its figures are finite.
 */
import { describe, expect, it } from 'vitest'
import { storeAndCodecFloor } from '../bench/core-floor.js'

describe("bench:core's floor", () => {
  it('moves 5,000 messages in turns of 1,000 and of 7, each handed over once and in order, and leaves both stores empty', async () => {
    for (const chunk of [1000, 7]) {
      const { ms, cpuUs } = await storeAndCodecFloor(5000, new Uint8Array(64).fill(7), chunk)
      expect(ms).toBeGreaterThan(0)
      expect(Number.isFinite(cpuUs)).toBe(true)
    }
  })
})
