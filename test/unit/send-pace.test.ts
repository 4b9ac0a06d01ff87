/**
 * The WebSocket transport's side of the relay's rate limit
 * (src/transport/send-pace.ts): a sender that waits as it says never has a
 * message dropped by the relay's own limiter (src/relay/rate-limiter.ts),
 * whatever the schedule, with unpaced extras (acks, control messages, one
 * frame per sender under way) on top, and still sends at close to the rate.
 * The transport-level behaviour (engines through a relay) is in
 * websocket-transport.test.ts.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RateLimiter } from '../../src/relay/rate-limiter.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { SendPace } from '../../src/transport/send-pace.js'

describe('SendPace', () => {
  it('lets a burst of one and a half seconds of the rate go at once, then makes the sender wait until 20 ms of it are back', () => {
    const pace = new SendPace(1000, 0)
    for (let i = 0; i < 1500; i++) {
      expect(pace.wait(0)).toBe(0)
      pace.take(0)
    }
    // None left: back to 20 tokens at 0.98 per ms.
    expect(pace.wait(0)).toBe(Math.ceil(20 / 0.98))
    expect(pace.wait(1)).toBe(Math.ceil((20 - 0.98) / 0.98))
    expect(pace.wait(21)).toBe(0)
  })

  it('never holds more than its burst, however long it was idle', () => {
    const pace = new SendPace(100, 0)
    let sent = 0
    while (pace.wait(3_600_000) === 0) {
      pace.take(3_600_000)
      sent++
    }
    expect(sent).toBe(150)
  })

  it('property: a sender that waits as it says, with up to a quarter of the relay burst sent unpaced besides, is never dropped by the relay, and sends at 0.9 of the rate or more', () => {
    fc.assert(
      fc.property(
        fc.record({
          rate: fc.integer({ min: 1, max: 2000 }),
          // Each step: how long the sender was idle before it sends a run, how long the run is, how many unpaced extras go with it.
          steps: fc.array(fc.record({ idleMs: fc.integer({ min: 0, max: 3000 }), run: fc.integer({ min: 1, max: 3000 }), extras: fc.nat(3) }), {
            minLength: 1,
            maxLength: 8,
          }),
          timerLateMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 15 })),
        }),
        ({ rate, steps, timerLateMs }) => {
          const clock = new ManualClock()
          const relay = new RateLimiter(clock, { framesPerSecond: rate, rateLimitCloseMs: 3000 })
          const pace = new SendPace(rate, clock.now())
          let extrasBudget = Math.floor(rate / 2)
          let paced = 0
          let pacedMs = 0
          for (const { idleMs, run, extras } of steps) {
            clock.advance(idleMs)
            const start = clock.now()
            for (let i = 0; i < run; i++) {
              const wait = pace.wait(clock.now())
              // Timers fire late, never early.
              if (wait > 0) clock.advance(wait + timerLateMs)
              pace.take(clock.now())
              expect(relay.take()).toBe('pass')
              paced++
            }
            pacedMs += clock.now() - start
            for (let i = 0; i < Math.min(extras, extrasBudget); i++) {
              pace.take(clock.now())
              expect(relay.take()).toBe('pass')
            }
            extrasBudget -= Math.min(extras, extrasBudget)
          }
          // Throughput while paced: everything beyond the first burst went at close to the rate (late timers cost their lateness).
          const beyondBurst = paced - 1.5 * rate
          if (beyondBurst > 2 * rate && timerLateMs === 0) expect(beyondBurst / (pacedMs / 1000)).toBeGreaterThan(0.9 * rate)
        },
      ),
      { numRuns: 150 },
    )
  })
})
