/**
 * Receipt expiry (`limits.receiptTtlMs`, GUARANTEES.md 3 and 6). A message
 * leaves the outbox when its receiver acknowledges its seq; a receipt
 * (`delivered`, `expired` or `failed`) takes its place, stamped with the time
 * of that acknowledgement. The receipt is kept at least `receiptTtlMs`, and
 * pruned at the latest `min(receiptTtlMs, 1 h)` after that (the prune runs
 * when the engine opens, then every `min(receiptTtlMs, 1 h)`). Until then
 * `status()`/`delivered()` report it and a send with the same id queues
 * nothing and returns the first receipt; after it, the id is unknown: a send
 * with it is a new message. A message still in the outbox never expires from
 * `status()`, whatever its age.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ILM, MemoryNetwork, MemoryStore } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { RecordingStore } from '../helpers/engine-probes.js'
import { codeOf, contentsOf, elapse, openPeer, tick, until } from '../helpers/engines.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR

describe('receipt expiry (receiptTtlMs)', () => {
  it('a delivered receipt is reported until receiptTtlMs after the ack, gone at most min(receiptTtlMs, 1 h) later; a resend with its id queues nothing before, and is a new message after', async () => {
    const TTL = 10 * 60_000
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const a = await openPeer(net.connect('a'), { clock, limits: { receiptTtlMs: TTL } })
    const b = await openPeer(net.connect('b'), { clock })
    const c = await openPeer(net.connect('c'), { clock })
    await until(async () => (await a.ilm.connectedPeers()).length === 2)
    await elapse([clock], 1000, 1000) // the ack lands off the prune schedule's grid (opened at t0, prunes at t0 + k*TTL)

    const first = await a.ilm.send('b', 'order', { id: 'order-1' })
    await a.ilm.delivered(first.id)
    const ackedAt = clock.now()

    // Within the TTL: reported, and the id is taken.
    await elapse([clock], TTL / 2, 60_000)
    expect(await a.ilm.send('b', 'order again', { id: 'order-1' })).toEqual(first)
    expect(await codeOf(a.ilm.send('c', 'order', { id: 'order-1' }))).toBe('DUPLICATE_ID')
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    clock.advance(ackedAt + TTL - clock.now()) // exactly receiptTtlMs after the ack
    await tick()
    expect(await a.ilm.status(first.id)).toBe('delivered')
    await a.ilm.delivered(first.id)
    expect(await a.ilm.send('b', 'order again', { id: 'order-1' })).toEqual(first)

    // At most min(TTL, 1 h) later: pruned.
    await elapse([clock], TTL, 60_000)
    expect(await a.ilm.status(first.id)).toBe('unknown')
    expect(await codeOf(a.ilm.delivered(first.id))).toBe('UNKNOWN_MESSAGE')
    // The id is free again: the same id is a new message, with the next seq, handed over again.
    const again = await a.ilm.send('b', 'order again', { id: 'order-1' })
    expect(again).toEqual({ id: first.id, seq: first.seq + 1 })
    await a.ilm.delivered(again.id)
    await until(() => b.got.length === 2)
    expect(b.got.map((m) => [m.id, m.seq, m.contents])).toEqual([
      ['order-1', 0, 'order'],
      ['order-1', 1, 'order again'],
    ])
    for (const p of [a.ilm, b.ilm, c.ilm]) await p.close()
  })

  it('with the default TTL (7 days) a receipt is reported for 7 days and gone within the hour after', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const a = await openPeer(net.connect('a'), { clock })
    const b = await openPeer(net.connect('b'), { clock })
    await elapse([clock], 1234, 1234)
    const r = await a.ilm.send('b', 'weekly')
    await a.ilm.delivered(r.id)
    const ackedAt = clock.now()
    await elapse([clock], 7 * DAY - 1234, HOUR)
    clock.advance(ackedAt + 7 * DAY - clock.now())
    await tick()
    expect(await a.ilm.status(r.id)).toBe('delivered')
    await elapse([clock], HOUR, 60_000)
    expect(await a.ilm.status(r.id)).toBe('unknown')
    await a.ilm.close()
    await b.ilm.close()
  })

  it('an engine opened after the TTL passed has forgotten the id at once (the prune runs at open)', async () => {
    const TTL = 2 * DAY
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const store = new MemoryStore()
    const a = await openPeer(net.connect('a'), { clock, store, limits: { receiptTtlMs: TTL } })
    const b = await openPeer(net.connect('b'), { clock })
    const r = await a.ilm.send('b', 'x', { id: 'before-restart' })
    await a.ilm.delivered(r.id)
    await a.ilm.close()
    clock.advance(TTL + 1)
    const a2 = await openPeer(net.connect('a'), { clock, store, limits: { receiptTtlMs: TTL } })
    await tick()
    expect(await a2.ilm.status(r.id)).toBe('unknown')
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('a message still in the outbox (queued, or expired but its skip not yet acknowledged) is never pruned; an expired receipt then expires like a delivered one', async () => {
    const TTL = 10 * 60_000
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const a = await openPeer(net.connect('a'), { clock, limits: { receiptTtlMs: TTL } })
    const waiting = await a.ilm.send('b', 'for later', { id: 'waits' })
    const doomed = await a.ilm.send('b', 'short-lived', { id: 'doomed', ttlMs: 1000 })
    await elapse([clock], 5 * TTL, 60_000)
    expect(await a.ilm.status(doomed.id)).toBe('expired')
    expect(await codeOf(a.ilm.delivered(doomed.id))).toBe('EXPIRED')
    expect(await a.ilm.status(waiting.id)).toBe('queued')
    expect(await a.ilm.send('b', 'for later', { id: 'waits' })).toEqual(waiting)
    expect(await a.ilm.send('b', 'short-lived', { id: 'doomed' })).toEqual(doomed)
    expect(await a.ilm.pending()).toEqual({ outbound: 2, inbound: 0 })

    // b appears: the skip and the message are acknowledged, receipts written now.
    const b = await openPeer(net.connect('b'), { clock })
    await a.ilm.delivered(waiting.id)
    await until(async () => (await a.ilm.pending()).outbound === 0)
    expect(contentsOf(b.got)).toEqual(['for later'])
    expect(await a.ilm.status(doomed.id)).toBe('expired')
    await elapse([clock], TTL, 60_000)
    expect(await a.ilm.status(doomed.id)).toBe('expired')
    await elapse([clock], TTL, 60_000)
    expect(await a.ilm.status(doomed.id)).toBe('unknown')
    expect(await a.ilm.status(waiting.id)).toBe('unknown')
    expect(await codeOf(a.ilm.delivered(doomed.id))).toBe('UNKNOWN_MESSAGE')
    await a.ilm.close()
    await b.ilm.close()
  })

  it('property: for any TTL and any wait, a receipt is reported while the wait is at most the TTL, and unknown once it is at least TTL + min(TTL, 1 h)', async () => {
    const runs = Number(process.env.RECEIPT_RUNS ?? 100)
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1000, max: 3 * HOUR }),
        fc.integer({ min: 0, max: 3 * HOUR }),
        fc.integer({ min: 0, max: 6 * HOUR }),
        async (ttl, offset, wait) => {
          const clock = new ManualClock()
          const net = new MemoryNetwork()
          const a = await openPeer(net.connect('a'), { clock, limits: { receiptTtlMs: ttl } })
          const b = await openPeer(net.connect('b'), { clock }, false)
          try {
            clock.advance(offset)
            await tick()
            const r = await a.ilm.send('b', 'x', { id: 'key' })
            await a.ilm.delivered(r.id)
            clock.advance(wait)
            await tick()
            const status = await a.ilm.status(r.id)
            if (wait <= ttl) expect(status).toBe('delivered')
            if (wait >= ttl + Math.min(ttl, HOUR)) expect(status).toBe('unknown')
            const resend = await a.ilm.send('b', 'x', { id: 'key' })
            expect(resend.seq).toBe(status === 'delivered' ? 0 : 1)
          } finally {
            await a.ilm.close()
            await b.ilm.close()
          }
        },
      ),
      { numRuns: runs },
    )
  })

  it('a small receiptTtlMs does not turn pruning into a busy loop: an idle engine prunes at most once a minute (or the value is refused)', async () => {
    // Fails on this branch: pruning runs every max(1, min(receiptTtlMs, 1 h))
    // ms (engine.ts, #prune), so with receiptTtlMs 0 an idle engine runs a
    // timer and commits a prune (in IndexedDB a readwrite transaction walking
    // the receipts index) every millisecond, forever.
    for (const receiptTtlMs of [0, 1, 100]) {
      const clock = new ManualClock()
      const store = new RecordingStore(new MemoryStore())
      const net = new MemoryNetwork()
      let a: ILM
      try {
        a = await ILM.open({ store, transport: net.connect('a'), clock, limits: { receiptTtlMs } })
      } catch (error) {
        expect(error).toBeInstanceOf(RangeError) // refusing such a value is a fix too
        continue
      }
      await tick()
      const before = store.commits.flat().length
      const fired = await elapse([clock], 10 * 60_000, 60_000)
      const ops = store.commits.flat().length - before
      console.log(`receiptTtlMs ${receiptTtlMs}: ${fired} timer callbacks and ${ops} store ops in 10 idle minutes`)
      expect({ receiptTtlMs, fired: fired <= 10, ops: ops <= 10 }).toEqual({ receiptTtlMs, fired: true, ops: true })
      await a.close()
    }
  })
})
