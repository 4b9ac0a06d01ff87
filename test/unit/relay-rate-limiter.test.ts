/**
 * The relay's per-connection token bucket (src/relay/rate-limiter.ts) on a
 * ManualClock: burst, refill, debt, and when a sender over the rate is to be
 * closed. The relay-level behaviour (drops counted, RATE_LIMITED close) is in
 * relay.test.ts and hostile-peers.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { RateLimiter, type RateVerdict } from '../../src/relay/rate-limiter.js'
import { ManualClock } from '../../src/testing/manual-clock.js'

const LIMIT = { framesPerSecond: 10, rateLimitCloseMs: 3000 }

function setup(limit = LIMIT): { clock: ManualClock; limiter: RateLimiter } {
  const clock = new ManualClock()
  return { clock, limiter: new RateLimiter(clock, limit) }
}

/** Takes `n` tokens at the current instant. */
function takeMany(limiter: RateLimiter, n: number): RateVerdict[] {
  return Array.from({ length: n }, () => limiter.take())
}

const count = (verdicts: RateVerdict[], verdict: RateVerdict): number => verdicts.filter((v) => v === verdict).length

describe('RateLimiter', () => {
  it('starts full: a burst of twice the rate passes at one instant, the next message is dropped', () => {
    const { limiter } = setup()
    expect(takeMany(limiter, 20)).toEqual(Array(20).fill('pass'))
    expect(limiter.take()).toBe('drop')
  })

  it('refills continuously at the rate, up to the burst and no further', () => {
    const { clock, limiter } = setup()
    takeMany(limiter, 20)
    clock.advance(50) // half a token
    expect(limiter.take()).toBe('drop')
    clock.advance(50) // one token: the drop above took none
    expect(limiter.take()).toBe('pass')
    expect(limiter.take()).toBe('drop')
    clock.advance(1000)
    expect(count(takeMany(limiter, 15), 'pass')).toBe(10)
    clock.advance(3_600_000)
    expect(count(takeMany(limiter, 30), 'pass')).toBe(20)
  })

  it('lets a sender at exactly the rate through for ever', () => {
    const { clock, limiter } = setup()
    const verdicts: RateVerdict[] = []
    for (let i = 0; i < 1000; i++) {
      verdicts.push(limiter.take())
      clock.advance(100)
    }
    expect(count(verdicts, 'pass')).toBe(1000)
  })

  it('charges extra cost as debt: the bucket refills from below zero', () => {
    const { clock, limiter } = setup()
    limiter.charge(25) // 20 - 25 = -5
    expect(limiter.take()).toBe('drop')
    clock.advance(500) // 0 tokens
    expect(limiter.take()).toBe('drop')
    clock.advance(100) // 1 token
    expect(limiter.take()).toBe('pass')
  })

  it('says close once drops have gone on for rateLimitCloseMs, each less than a second apart', () => {
    const { clock, limiter } = setup()
    takeMany(limiter, 20)
    // 20 messages a second against 10 allowed: half are dropped, 50 ms apart.
    const verdicts: { at: number; verdict: RateVerdict }[] = []
    const start = clock.now()
    while (clock.now() - start < 5000) {
      verdicts.push({ at: clock.now() - start, verdict: limiter.take() })
      clock.advance(50)
    }
    const firstClose = verdicts.find(({ verdict }) => verdict === 'close')
    expect(verdicts[0]).toEqual({ at: 0, verdict: 'drop' })
    // Every other message finds a token (at 0, 100, …, 3000 ms); the first drop 3 s or more into the spell is at 3050.
    expect(verdicts.find(({ at }) => at === 3000)?.verdict).toBe('pass')
    expect(firstClose?.at).toBe(3050)
    expect(verdicts.filter(({ at }) => at < 3050).every(({ verdict }) => verdict !== 'close')).toBe(true)
  })

  it('starts a new spell after more than a second without drops: bursts over the rate never add up to a close', () => {
    const { clock, limiter } = setup()
    const verdicts: RateVerdict[] = []
    // Every 1.5 s, 25 messages at once: each burst overflows a full-enough bucket, but drops are 1.5 s apart.
    for (let i = 0; i < 20; i++) {
      verdicts.push(...takeMany(limiter, 25))
      clock.advance(1500)
    }
    expect(count(verdicts, 'drop')).toBeGreaterThan(0)
    expect(count(verdicts, 'close')).toBe(0)
  })

  it('keeps a spell going across a gap of exactly one second', () => {
    const { clock, limiter } = setup({ framesPerSecond: 1, rateLimitCloseMs: 2000 })
    takeMany(limiter, 2)
    expect(limiter.take()).toBe('drop') // spell starts at 0
    clock.advance(1000)
    expect(limiter.take()).toBe('pass') // the token of that second
    expect(limiter.take()).toBe('drop') // 1000 ms after the last drop: same spell
    clock.advance(1000)
    limiter.take()
    expect(limiter.take()).toBe('close') // 2000 ms into the spell
  })
})
