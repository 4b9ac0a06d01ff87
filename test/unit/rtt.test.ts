import { describe, expect, it } from 'vitest'
import { RttEstimator } from '../../src/core/rtt.js'

describe('RttEstimator', () => {
  it('starts at the minimum, follows measured round trips, stays within bounds', () => {
    const rtt = new RttEstimator(100, 10_000)
    expect(rtt.timeout).toBe(100)
    rtt.sample(400) // srtt 400, rttvar 200
    expect(rtt.timeout).toBe(1200)
    for (let i = 0; i < 50; i++) rtt.sample(400)
    expect(rtt.timeout).toBeGreaterThanOrEqual(400)
    expect(rtt.timeout).toBeLessThan(450)
    for (let i = 0; i < 50; i++) rtt.sample(5)
    expect(rtt.timeout).toBe(100)
    rtt.sample(1e9)
    expect(rtt.timeout).toBe(10_000)
    rtt.sample(Number.NaN)
    expect(rtt.timeout).toBe(10_000)
  })
})
