/**
 * CachedTotals, what `GET /metrics` reads the mailbox totals through, on a
 * ManualClock: a walk at most once per interval and one at a time, a bounded
 * wait, and failures that keep the last good totals. (The Redis mailbox's
 * walk itself, on a real cluster, is in redis-mailbox-totals.test.ts.)
 */
import { describe, expect, it } from 'vitest'
import { CachedTotals } from '../../src/relay/cached-totals.js'
import type { MailboxTotals } from '../../src/relay/mailbox/mailbox.js'
import { ManualClock } from '../../src/testing/manual-clock.js'

/** An asynchronous totals source whose reads the test settles by hand. */
function source() {
  const pending: { resolve: (totals: MailboxTotals) => void; reject: (error: Error) => void }[] = []
  let reads = 0
  return {
    read: (): Promise<MailboxTotals> => {
      reads++
      return new Promise((resolve, reject) => pending.push({ resolve, reject }))
    },
    get reads() {
      return reads
    },
    settle(totals: MailboxTotals | Error): void {
      const next = pending.shift()
      if (next === undefined) throw new Error('no read in progress')
      if (totals instanceof Error) next.reject(totals)
      else next.resolve(totals)
    },
  }
}

/** Lets the promise callbacks queued so far run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('CachedTotals', () => {
  it('starts a walk at most once per interval after the last one ended, never two at once', async () => {
    const clock = new ManualClock(1_000)
    const walk = source()
    const errors: unknown[] = []
    const cache = new CachedTotals({ read: walk.read, intervalMs: 10_000, waitMs: 5_000, clock, onError: (error) => errors.push(error) })
    const first = cache.get()
    const second = cache.get()
    expect(walk.reads).toBe(1)
    walk.settle({ entries: 3, bytes: 30 })
    expect(await first).toEqual({ totals: { entries: 3, bytes: 30 }, at: 1_000 })
    expect(await second).toEqual({ totals: { entries: 3, bytes: 30 }, at: 1_000 })
    clock.advance(9_999)
    expect(await cache.get()).toEqual({ totals: { entries: 3, bytes: 30 }, at: 1_000 })
    expect(walk.reads).toBe(1)
    clock.advance(1)
    const third = cache.get()
    expect(walk.reads).toBe(2)
    walk.settle({ entries: 1, bytes: 10 })
    expect(await third).toEqual({ totals: { entries: 1, bytes: 10 }, at: 11_000 })
    expect(cache.failures).toBe(0)
    expect(errors).toEqual([])
  })

  it('waits for a slow walk at most waitMs, then answers with the last totals; the walk still lands', async () => {
    const clock = new ManualClock(0)
    const walk = source()
    const cache = new CachedTotals({ read: walk.read, intervalMs: 0, waitMs: 5_000, clock, onError: () => {} })
    const first = cache.get()
    walk.settle({ entries: 2, bytes: 20 })
    await first
    clock.advance(100)
    let answered: unknown
    const slow = cache.get().then((reading) => (answered = reading))
    await flush()
    expect(answered).toBeUndefined()
    clock.advance(4_999)
    await flush()
    expect(answered).toBeUndefined()
    clock.advance(1)
    await slow
    expect(answered).toEqual({ totals: { entries: 2, bytes: 20 }, at: 0 })
    // The walk in progress is not doubled, and its result is used once it comes.
    const meanwhile = cache.get()
    expect(walk.reads).toBe(2)
    walk.settle({ entries: 5, bytes: 50 })
    expect(await meanwhile).toEqual({ totals: { entries: 5, bytes: 50 }, at: 5_100 })
  })

  it('keeps the last good totals when a walk fails, counts and reports it, and tries again after the interval', async () => {
    const clock = new ManualClock(0)
    const walk = source()
    const errors: unknown[] = []
    const cache = new CachedTotals({ read: walk.read, intervalMs: 1_000, waitMs: 5_000, clock, onError: (error) => errors.push(error) })
    const never = cache.get()
    walk.settle(new Error('redis down'))
    expect(await never).toBeUndefined()
    expect(cache.failures).toBe(1)
    clock.advance(999)
    expect(await cache.get()).toBeUndefined()
    expect(walk.reads).toBe(1)
    clock.advance(1)
    const good = cache.get()
    walk.settle({ entries: 4, bytes: 40 })
    expect(await good).toEqual({ totals: { entries: 4, bytes: 40 }, at: 1_000 })
    clock.advance(1_000)
    const failed = cache.get()
    walk.settle(new Error('redis down again'))
    expect(await failed).toEqual({ totals: { entries: 4, bytes: 40 }, at: 1_000 })
    expect(cache.failures).toBe(2)
    expect(errors.map(String)).toEqual(['Error: redis down', 'Error: redis down again'])
    const thrown = new CachedTotals({
      read: () => {
        throw new Error('closed')
      },
      intervalMs: 0,
      waitMs: 5_000,
      clock,
      onError: () => {},
    })
    expect(await thrown.get()).toBeUndefined()
    expect(thrown.failures).toBe(1)
  })

  it('reads synchronous totals (counters kept in memory) on every get, whatever the interval', async () => {
    const clock = new ManualClock(0)
    let entries = 0
    const cache = new CachedTotals({ read: () => ({ entries: ++entries, bytes: 0 }), intervalMs: 60_000, waitMs: 5_000, clock, onError: () => {} })
    expect(await cache.get()).toEqual({ totals: { entries: 1, bytes: 0 }, at: 0 })
    expect(await cache.get()).toEqual({ totals: { entries: 2, bytes: 0 }, at: 0 })
  })
})
