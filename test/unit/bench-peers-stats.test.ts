import { describe, expect, it } from 'vitest'
import { pace } from '../bench/peers-app/pacer.js'
import { costRatio, deliveredRate, median, percentile, unresolved } from '../bench/peers-stats.js'

/** A fake clock whose sleeps overshoot by `lateMs` (as a clamped browser timer does). */
function fakeClock(lateMs: number): { now(): number; sleep(ms: number): Promise<void> } {
  let t = 1000
  return {
    now: () => t,
    sleep: async (ms) => void (t += Math.max(0, ms) + lateMs),
  }
}

describe('bench:peers pacer', () => {
  it('keeps its rate when every timer fires 4 ms late, by catching up (one send per wake-up would give 200/s)', async () => {
    const clock = fakeClock(4)
    const sentAt: number[] = []
    const span = await pace(1000, 1000, () => sentAt.push(clock.now()), clock)
    expect(span.issued).toBe(1000)
    const rate = ((span.issued - 1) / (span.lastAt - span.firstAt)) * 1000
    expect(rate).toBeGreaterThan(990)
    // Never ahead of schedule: message i not before start + i ms.
    sentAt.forEach((at, i) => expect(at).toBeGreaterThanOrEqual(span.firstAt + i))
  })

  it('stops when told, and rejects a bad rate or count', async () => {
    const clock = fakeClock(0)
    let sent = 0
    const span = await pace(
      100,
      100,
      () => sent++,
      clock,
      () => sent >= 10,
    )
    expect(span.issued).toBe(10)
    await expect(pace(0, 100, () => {}, clock)).rejects.toThrow(RangeError)
    await expect(pace(10, 0, () => {}, clock)).rejects.toThrow(RangeError)
  })
})

describe('bench:peers arithmetic', () => {
  it('percentiles by nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentile(sorted, 0.5)).toBe(51)
    expect(percentile(sorted, 0.99)).toBe(100)
    expect(percentile([], 0.5)).toBeNaN()
  })

  it('a system on schedule delivers the offered rate', () => {
    // 1,000 messages at 1,000/s, each 5 ms after it was sent (arrivals 5 .. 1,004 ms).
    expect(deliveredRate(1000, 1000, 1000, 5, 1004)).toBeCloseTo(1000, 6)
  })

  it('a backlog shows: 1,000 offered at 1,000/s, the latency growing from 5 ms to 1 s (a 600/s drain)', () => {
    const rate = deliveredRate(1000, 1000, 1000, 5, 999 + 1000)
    expect(rate / 1000).toBeLessThan(0.6)
  })

  it('a loss shows: 1 % of messages never arrive', () => {
    expect(deliveredRate(990, 1000, 1000, 5, 1004) / 1000).toBeLessThan(0.995)
  })

  it('a late first message that the rest catch up with is not faster than offered', () => {
    expect(deliveredRate(1000, 1000, 1000, 400, 1004)).toBeCloseTo(1000, 6)
  })

  it('nothing delivered is rate 0', () => {
    expect(deliveredRate(0, 1000, 1000, 0, 0)).toBe(0)
  })

  it('counts the sends not resolved', () => {
    const resolvedAt = new Float64Array([5, 0, 7, 0, 0])
    expect(unresolved(resolvedAt, 5)).toBe(3)
    expect(unresolved(resolvedAt, 3)).toBe(1)
  })

  it('the cost of a feature is on / off for rates and off / on for times: below 1 when it costs', () => {
    expect(costRatio('higher', 900, 1000)).toBe(0.9)
    expect(costRatio('lower', 10, 8)).toBe(0.8)
    expect(costRatio('lower', 8, 10)).toBe(1.25)
    expect(costRatio('higher', 0, 1000)).toBeNaN()
    expect(costRatio('lower', Number.NaN, 8)).toBeNaN()
  })

  it('the median of the rounds: the middle one, or the mean of the middle two', () => {
    expect(median([0.7, 1.2, 0.9])).toBe(0.9)
    expect(median([1, 0.5, 0.8, 2])).toBe(0.9)
    expect(median([])).toBeNaN()
    expect(median([1, Number.NaN])).toBeNaN()
  })
})
