/**
 * One sender's stalled or throwing handler never blocks another sender
 * (GUARANTEES.md 2, PROTOCOL.md "Processed means processed"): each sender's
 * stream is handed over on its own, one message at a time. A handler that
 * never returns holds up only its own sender's stream; one that throws gets
 * the message again later (backoff `handlerRetryMs`, doubling), in order,
 * with a `HANDLER_FAILED` error each time, while other senders proceed.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { IlmError, MemoryNetwork, MemoryStore, type Message } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { elapse, openPeer, range, tick, until } from '../helpers/engines.js'

/** What the handler does on the bad sender's message: never return, or throw on its first `times` calls. */
type Misbehaviour = { kind: 'stall' } | { kind: 'throw'; times: number }

/** A handler that misbehaves on message `at` (by contents) of sender `bad`, recording every call and every return. */
function misbehaving(clock: ManualClock, bad: string, at: number, how: Misbehaviour) {
  const calls: Array<{ from: string; contents: unknown; at: number }> = []
  const processed: Message[] = []
  let thrown = 0
  const handler = async (m: Message): Promise<void> => {
    calls.push({ from: m.from, contents: m.contents, at: clock.now() })
    if (m.from === bad && m.contents === at) {
      if (how.kind === 'stall') return new Promise<void>(() => {})
      if (thrown++ < how.times) throw new Error(`refusing ${bad}#${at}`)
    }
    processed.push(m)
  }
  const callsOf = (from: string): unknown[] => calls.filter((c) => c.from === from).map((c) => c.contents)
  const processedOf = (from: string): unknown[] => processed.filter((m) => m.from === from).map((m) => m.contents)
  return { handler, calls, callsOf, processedOf }
}

describe('a stalled or throwing handler blocks only its own sender', () => {
  it("a handler that never returns on a's message: c's messages are still handed over and processed; a's wait, and come after a restart", async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeB = new MemoryStore()
    const b = await openPeer(net.connect('b'), { clock, store: storeB }, false)
    const h = misbehaving(clock, 'a', 0, { kind: 'stall' })
    b.ilm.onMessage(h.handler)
    const a = await openPeer(net.connect('a'), { clock })
    const c = await openPeer(net.connect('c'), { clock })
    await until(async () => (await b.ilm.connectedPeers()).length === 2)

    // Interleaved: a's first message reaches the handler before most of c's.
    const fromA = await Promise.all(range(5).map((i) => a.ilm.send('b', i)))
    await until(() => h.calls.length > 0)
    const fromC = await Promise.all(range(20).map((i) => c.ilm.send('b', i)))
    await until(() => h.processedOf('c').length === 20)
    for (const r of fromC) await c.ilm.delivered(r.id)
    await elapse([clock], 60_000, 1000)
    // More from c while a's handler is still stalled.
    const later = await c.ilm.send('b', 20)
    await until(() => h.processedOf('c').length === 21, { clocks: [clock] })
    await c.ilm.delivered(later.id)

    expect(h.processedOf('c')).toEqual(range(21))
    expect(h.callsOf('a')).toEqual([0]) // handed once, nothing of a's stream after it
    // a's stream is stored (delivered: the receiver has it), but not processed; c's processed marks are committed.
    for (const r of fromA) expect(await a.ilm.status(r.id)).toBe('delivered')
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 5 })
    expect(b.errors).toEqual([])

    // Closing does not wait for the stalled handler; the next incarnation hands a's messages over, from a0.
    await b.ilm.close()
    const b2 = await openPeer(net.connect('b'), { clock, store: storeB })
    await until(() => b2.got.length === 5)
    await elapse([clock], 5_000, 500)
    expect(b2.got.map((m) => [m.from, m.contents])).toEqual(range(5).map((i) => ['a', i]))
    expect(await b2.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    for (const p of [a.ilm, c.ilm, b2.ilm]) await p.close()
  })

  it("a handler that throws on a's message: c proceeds meanwhile; a's message is handed again after handlerRetryMs, doubling, then a's stream continues in order, with HANDLER_FAILED each time", async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const b = await openPeer(net.connect('b'), { clock, limits: { handlerRetryMs: 1000, maxRetransmitMs: 30_000 } }, false)
    const h = misbehaving(clock, 'a', 1, { kind: 'throw', times: 3 })
    b.ilm.onMessage(h.handler)
    const a = await openPeer(net.connect('a'), { clock })
    const c = await openPeer(net.connect('c'), { clock })
    await until(async () => (await b.ilm.connectedPeers()).length === 2)

    await Promise.all(range(5).map((i) => a.ilm.send('b', i)))
    await until(() => b.errors.length === 1)
    const failedAt = clock.now()
    // No virtual time passes: everything of c is processed while a1 waits for its retry.
    await Promise.all(range(20).map((i) => c.ilm.send('b', i)))
    await until(() => h.processedOf('c').length === 20)
    expect(clock.now()).toBe(failedAt)
    expect(h.callsOf('a')).toEqual([0, 1])
    expect(h.processedOf('a')).toEqual([0])

    await until(() => h.processedOf('a').length === 5, { clocks: [clock], stepMs: 100, steps: 200 })
    await elapse([clock], 30_000, 1000)
    expect(h.callsOf('a')).toEqual([0, 1, 1, 1, 1, 2, 3, 4])
    expect(h.processedOf('a')).toEqual(range(5))
    expect(h.processedOf('c')).toEqual(range(20))
    // Handed again after 1 s, 2 s, 4 s.
    const retries = h.calls.filter((x) => x.from === 'a' && x.contents === 1).map((x) => x.at - failedAt)
    expect(retries[0]).toBe(0)
    expect(retries.slice(1).map((t, i) => t - retries[i]!)).toEqual([1000, 2000, 4000])
    expect(b.errors.map((e) => e.code)).toEqual(['HANDLER_FAILED', 'HANDLER_FAILED', 'HANDLER_FAILED'])
    for (const e of b.errors) expect((e.cause as Error).message).toBe('refusing a#1')
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    for (const p of [a.ilm, b.ilm, c.ilm]) await p.close()
  })

  it('property: with 2 to 4 senders, one of them stalled or failing at any position, every other sender is fully processed without waiting for it', async () => {
    const runs = Number(process.env.ISOLATION_RUNS ?? 100)
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          counts: fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 2, maxLength: 4 }),
          badIndex: fc.nat(),
          at: fc.nat(),
          how: fc.oneof(
            fc.constant<Misbehaviour>({ kind: 'stall' }),
            fc.integer({ min: 1, max: 4 }).map((times): Misbehaviour => ({ kind: 'throw', times })),
          ),
          processBatch: fc.integer({ min: 1, max: 8 }),
          window: fc.integer({ min: 1, max: 16 }),
        }),
        async ({ counts, badIndex, at, how, processBatch, window }) => {
          const clock = new ManualClock()
          const net = new MemoryNetwork()
          const ids = counts.map((_, i) => `s${i}`)
          const bad = ids[badIndex % ids.length]!
          const badAt = at % counts[badIndex % ids.length]!
          const b = await openPeer(net.connect('b'), { clock, limits: { processBatch, handlerRetryMs: 500 } }, false)
          const h = misbehaving(clock, bad, badAt, how)
          b.ilm.onMessage(h.handler)
          const senders = await Promise.all(ids.map((id) => openPeer(net.connect(id), { clock, limits: { window } })))
          try {
            await until(async () => (await b.ilm.connectedPeers()).length === ids.length)
            await Promise.all(counts.flatMap((n, i) => range(n).map((k) => senders[i]!.ilm.send('b', k))))
            const good = ids.filter((id) => id !== bad)
            // Without any time passing (no retry timer may fire), the good senders are all processed.
            const start = clock.now()
            await until(() => good.every((id) => h.processedOf(id).length === counts[ids.indexOf(id)]) && h.processedOf(bad).length >= badAt)
            expect(clock.now()).toBe(start)
            for (const id of good) expect(h.callsOf(id)).toEqual(range(counts[ids.indexOf(id)]!))
            expect(h.processedOf(bad)).toEqual(range(badAt))

            const n = counts[ids.indexOf(bad)]!
            await elapse([clock], 60_000, 250)
            if (how.kind === 'stall') {
              expect(h.callsOf(bad)).toEqual(range(badAt + 1))
              expect(b.errors).toEqual([])
            } else {
              expect(h.callsOf(bad)).toEqual([...range(badAt), ...Array<number>(how.times).fill(badAt), ...range(n - badAt, badAt)])
              expect(h.processedOf(bad)).toEqual(range(n))
              expect(b.errors.map((e) => e.code)).toEqual(Array(how.times).fill('HANDLER_FAILED'))
              for (const e of b.errors) expect(e).toBeInstanceOf(IlmError)
            }
          } finally {
            await Promise.all([b.ilm.close(), ...senders.map((s) => s.ilm.close())])
          }
          await tick()
        },
      ),
      { numRuns: runs },
    )
  }, 300_000)
})
