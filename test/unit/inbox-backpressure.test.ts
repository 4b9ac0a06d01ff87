/**
 * Inbox backpressure (`limits.maxInboxPerPeer`, GUARANTEES.md 6): a receiver
 * whose application is slow or absent stores at most that many unprocessed
 * messages per sender and acknowledges nothing beyond them; the sender keeps
 * the rest in its outbox and retransmits; once the application catches up,
 * everything arrives exactly once, in order, and the receiver's memory stays
 * bounded while it refuses.
 */
import fc from 'fast-check'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { ILM, MemoryNetwork, MemoryStore, decodeFrame, type Frame, type Message, type StoreOp, type Transport } from '../../src/index.js'
import type { Epoch } from '../../src/core/ids.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { ProbeTransport, RecordingStore } from '../helpers/engine-probes.js'
import { elapse, openPeer, range, rawMsg, tick, until } from '../helpers/engines.js'

// ---------------------------------------------------------------- helpers

const decode = (data: Uint8Array): Frame | undefined => {
  const d = decodeFrame(data, 1 << 30)
  return d.ok ? d.frame : undefined
}

/** Wraps a transport and shows every frame it sends to `see` (decoded). */
function watched(inner: Transport, see: (frame: Frame) => void): Transport {
  return {
    localId: inner.localId,
    open: (events) => inner.open(events),
    send: (to, data) => {
      const frame = decode(data)
      if (frame !== undefined) see(frame)
      return inner.send(to, data)
    },
    close: () => inner.close(),
  }
}

/**
 * Replays the commits a receiver made and returns, per sender, the most inbox
 * rows (stored, not yet processed) it ever held after a commit.
 */
function peakInbox(commits: readonly (readonly StoreOp[])[]): Map<string, number> {
  // A stream's rows are contiguous: from the lowest not deleted to the highest stored.
  const next = new Map<string, number>()
  const below = new Map<string, number>()
  const peak = new Map<string, number>()
  for (const ops of commits) {
    for (const op of ops) {
      if (op.op === 'putInbox') next.set(op.row.from, op.row.index + 1)
      if (op.op === 'deleteInbox') below.set(op.from, Math.max(below.get(op.from) ?? 0, op.below))
    }
    for (const [from, n] of next) peak.set(from, Math.max(peak.get(from) ?? 0, n - Math.min(n, below.get(from) ?? 0)))
  }
  return peak
}

/** Per sender, the contents handed over, in order. */
function bySender(messages: readonly Message[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {}
  for (const m of messages) (out[m.from] ??= []).push(m.contents)
  return out
}

/** A receiver 'b' on a RecordingStore, so the test can replay what it stored. */
async function openReceiver(transport: Transport, clock: ManualClock, limits: Parameters<typeof ILM.open>[0]['limits']) {
  const store = new RecordingStore(new MemoryStore())
  const ilm = await ILM.open({ store, transport, clock, limits: { deferCommitMs: 0, ...limits } })
  return { ilm, store }
}

/** `global.gc` without starting Node with --expose-gc. */
function gcFunction(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

// ---------------------------------------------------------------- tests

describe('inbox backpressure (maxInboxPerPeer)', () => {
  it('with no handler, the receiver stores and acks at most maxInboxPerPeer per sender; senders keep the rest and retry; subscribing drains it all once, in order', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const LIMIT = 5
    const N = 30
    // Every frame b sends (its acks) and every msg frame a sends, by seq.
    const acksFromB = new Map<string, number>()
    const tb = watched(net.connect('b'), (f) => f.kind === 'ack' && acksFromB.set(f.to, Math.max(acksFromB.get(f.to) ?? -1, f.upTo)))
    const aTransmissions = new Map<number, number>()
    const ta = watched(net.connect('a'), (f) => f.kind === 'msg' && aTransmissions.set(f.seq, (aTransmissions.get(f.seq) ?? 0) + 1))
    const b = await openReceiver(tb, clock, { maxInboxPerPeer: LIMIT })
    const a = await openPeer(ta, { clock })
    const c = await openPeer(net.connect('c'), { clock })
    await until(async () => (await b.ilm.connectedPeers()).length === 2)

    const fromA = await Promise.all(range(N).map((i) => a.ilm.send('b', `a${i}`)))
    const fromC = await Promise.all(range(N).map((i) => c.ilm.send('b', `c${i}`)))
    await elapse([clock], 120_000, 500)

    // The receiver holds exactly LIMIT of each sender, and acked nothing past them.
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 2 * LIMIT })
    expect(Object.fromEntries(acksFromB)).toEqual({ a: LIMIT - 1, c: LIMIT - 1 })
    // The senders keep the rest in their outboxes, and have been retransmitting it.
    expect(await a.ilm.pending()).toEqual({ outbound: N - LIMIT, inbound: 0 })
    expect(await c.ilm.pending()).toEqual({ outbound: N - LIMIT, inbound: 0 })
    const statuses = await Promise.all(fromA.map((r) => a.ilm.status(r.id)))
    expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill('delivered'))
    expect(new Set(statuses.slice(LIMIT))).toEqual(new Set(['sent']))
    expect(aTransmissions.get(LIMIT)).toBeGreaterThanOrEqual(4)

    const got: Message[] = []
    b.ilm.onMessage((m) => void got.push(m))
    await until(() => got.length === 2 * N, { clocks: [clock], stepMs: 500, steps: 1000 })
    await a.ilm.delivered(fromA[N - 1]!.id)
    await c.ilm.delivered(fromC[N - 1]!.id)
    await elapse([clock], 60_000, 1000)

    expect(bySender(got)).toEqual({ a: range(N).map((i) => `a${i}`), c: range(N).map((i) => `c${i}`) })
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(await c.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(Object.fromEntries(peakInbox(b.store.commits))).toEqual({ a: LIMIT, c: LIMIT })
    for (const p of [a.ilm, b.ilm, c.ilm]) await p.close()
  })

  it('with a slow handler, the inbox never holds more than maxInboxPerPeer per sender, and everything arrives once, in order', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const LIMIT = 4
    const N = 40
    const b = await openReceiver(net.connect('b'), clock, { maxInboxPerPeer: LIMIT, processBatch: 2 })
    const got: Message[] = []
    let active = 0
    let maxActive = 0
    // Each message takes 700 ms of (virtual) time to process.
    b.ilm.onMessage(async (m) => {
      maxActive = Math.max(maxActive, ++active)
      await new Promise<void>((resolve) => clock.setTimeout(resolve, 700))
      got.push(m)
      active--
    })
    const a = await openPeer(net.connect('a'), { clock })
    const c = await openPeer(net.connect('c'), { clock })
    await until(async () => (await b.ilm.connectedPeers()).length === 2)
    await Promise.all([...range(N).map((i) => a.ilm.send('b', `a${i}`)), ...range(N).map((i) => c.ilm.send('b', `c${i}`))])

    await until(() => got.length === 2 * N, { clocks: [clock], stepMs: 250, steps: 4000 })
    await until(async () => (await a.ilm.pending()).outbound + (await c.ilm.pending()).outbound === 0, { clocks: [clock], stepMs: 500 })
    await elapse([clock], 30_000, 1000)

    expect(bySender(got)).toEqual({ a: range(N).map((i) => `a${i}`), c: range(N).map((i) => `c${i}`) })
    expect(maxActive).toBe(2) // one at a time per sender, the two senders side by side
    // The bound was reached (so it was exercised), and never exceeded.
    expect(Object.fromEntries(peakInbox(b.store.commits))).toEqual({ a: LIMIT, c: LIMIT })
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    for (const p of [a.ilm, b.ilm, c.ilm]) await p.close()
  })

  it("once the application catches up, the stream resumes at once from the frames the full inbox kept, not at the sender's next retransmission (which has backed off)", async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const LIMIT = 5
    const N = 60
    const limits = { window: 16, retransmitMs: 1000, maxRetransmitMs: 30_000 }
    const sentByA: number[] = []
    const ta = watched(net.connect('a'), (f) => f.kind === 'msg' && sentByA.push(f.seq))
    const b = await openReceiver(net.connect('b'), clock, { ...limits, maxInboxPerPeer: LIMIT })
    const a = await openPeer(ta, { clock, limits })
    await until(async () => (await b.ilm.connectedPeers()).length === 1)
    const receipts = await Promise.all(range(N).map((i) => a.ilm.send('b', i)))
    // Long enough for the sender's timer to back off to maxRetransmitMs.
    await elapse([clock], 120_000, 500)
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: LIMIT })
    const before = sentByA.length

    const got: number[] = []
    b.ilm.onMessage((m) => void got.push(m.contents as number))
    const start = clock.now()
    await until(() => got.length === N, { clocks: [clock], stepMs: 10, steps: 100 })
    await a.ilm.delivered(receipts[N - 1]!.id)
    // Everything arrived in under the sender's base timeout: no retransmission was waited for, and none was needed.
    expect(clock.now() - start).toBeLessThan(limits.retransmitMs)
    expect(got).toEqual(range(N))
    const resent = sentByA.slice(before).filter((seq, i, all) => all.indexOf(seq) !== i || seq < LIMIT + limits.window)
    expect(resent).toEqual([])
    expect(Object.fromEntries(peakInbox(b.store.commits))).toEqual({ a: LIMIT })
    for (const p of [a.ilm, b.ilm]) await p.close()
  })

  it("a full inbox whose sender went offline sends it nothing once it has room: the sender's next session resends from its hello", async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const acksToA: number[] = []
    const tb = watched(net.connect('b'), (f) => f.kind === 'ack' && f.to === 'a' && acksToA.push(f.upTo))
    const b = await openReceiver(tb, clock, { window: 16, maxInboxPerPeer: 5 })
    const a = await openPeer(net.connect('a'), { clock, limits: { window: 16 } })
    await until(async () => (await b.ilm.connectedPeers()).length === 1)
    await Promise.all(range(30).map((i) => a.ilm.send('b', i)))
    await elapse([clock], 5_000, 500)
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 5 })
    net.disconnect('a')
    await until(async () => (await b.ilm.connectedPeers()).length === 0)
    const before = acksToA.length

    const got: number[] = []
    b.ilm.onMessage((m) => void got.push(m.contents as number))
    await until(() => got.length === 5, { clocks: [clock], stepMs: 10, steps: 100 })
    await elapse([clock], 1_000, 100)
    expect(acksToA.slice(before)).toEqual([])

    net.reconnect('a')
    await until(() => got.length === 30, { clocks: [clock], stepMs: 100, steps: 200 })
    expect(got).toEqual(range(30))
    for (const p of [a.ilm, b.ilm]) await p.close()
  })

  it('memory stays bounded: a sender flooding a full inbox costs the receiver at most window frames, and it acks nothing past the limit', async () => {
    const gc = gcFunction()
    const LIMIT = 5
    const WINDOW = 16
    const SIZE = 256 * 1024
    const N = 400 // 100 MiB per round
    const transport = new ProbeTransport('b')
    const b = await ILM.open({
      store: new MemoryStore(),
      transport,
      clock: new ManualClock(),
      limits: { maxInboxPerPeer: LIMIT, window: WINDOW, deferCommitMs: 0 },
      // The flood is made by hand, in clear. Sealed frames wait to be opened in a queue bounded by the window too.
      encryption: false,
    })
    const epoch = `${ManualClock.DEFAULT_START.toString(36).padStart(9, '0')}.flooder` as Epoch
    const frame = (seq: number): Uint8Array => rawMsg(epoch, seq, new Uint8Array(SIZE).fill(seq % 251))
    const highestAck = (): number => {
      let upTo = -1
      for (const { data } of transport.sent) {
        const f = decode(data)
        if (f?.kind === 'ack') upTo = Math.max(upTo, f.upTo)
      }
      return upTo
    }
    /** Sends seqs `from..N-1` once, as a sender retransmitting its whole outbox would. */
    const flood = async (from: number): Promise<void> => {
      for (let seq = from; seq < N; seq++) {
        transport.inject('a', frame(seq))
        if (seq % 8 === 0) await tick(1)
      }
      await tick(5)
    }

    // ArrayBuffers are swept concurrently after a collection: take the lowest of a few settled samples.
    const usage = async (): Promise<number> => {
      let lowest = Infinity
      for (let i = 0; i < 5; i++) {
        gc()
        await new Promise((resolve) => setTimeout(resolve, 20))
        const m = process.memoryUsage()
        lowest = Math.min(lowest, m.heapUsed + m.arrayBuffers)
      }
      return lowest
    }
    const baseline = await usage()
    for (let round = 0; round < 4; round++) await flood(0)
    const grown = (await usage()) - baseline
    const sent = 4 * N * SIZE
    console.log(`backpressure flood: ${sent / 2 ** 20} MiB sent to a full inbox, receiver memory grew ${(grown / 2 ** 20).toFixed(1)} MiB`)
    // What a full inbox may hold: LIMIT rows plus WINDOW buffered frames, under 6 MiB; one round alone is 100 MiB.
    expect(grown).toBeLessThan(16 * 2 ** 20)
    expect(highestAck()).toBe(LIMIT - 1)
    expect(await b.pending()).toEqual({ outbound: 0, inbound: LIMIT })

    // Once the application catches up, the retransmitted rest is stored, in order, once.
    const got: number[] = []
    b.onMessage((m) => void got.push(Number(m.id.slice(1))))
    for (let round = 0; round < 200 && highestAck() < N - 1; round++) await flood(highestAck() + 1)
    await until(() => got.length === N)
    expect(got).toEqual(range(N))
    expect(await b.pending()).toEqual({ outbound: 0, inbound: 0 })
    await b.close()
  })

  it('property: under drops, duplicates and reorders, any limit, window, handler speed and late subscription, the bound holds and everything arrives once, in order', async () => {
    const runs = Number(process.env.BACKPRESSURE_RUNS ?? 150)
    const totals = { messages: 0, boundReached: 0 }
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          limit: fc.integer({ min: 1, max: 6 }),
          window: fc.integer({ min: 1, max: 12 }),
          processBatch: fc.integer({ min: 1, max: 4 }),
          counts: fc.array(fc.integer({ min: 0, max: 25 }), { minLength: 1, maxLength: 3 }),
          handlerMs: fc.integer({ min: 0, max: 600 }),
          subscribeAfterMs: fc.integer({ min: 0, max: 20_000 }),
          drop: fc.double({ min: 0, max: 0.3, noNaN: true }),
          duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
          reorder: fc.double({ min: 0, max: 0.3, noNaN: true }),
          seed: fc.integer(),
        }),
        async ({ limit, window, processBatch, counts, handlerMs, subscribeAfterMs, drop, duplicate, reorder, seed }) => {
          const clock = new ManualClock()
          const net = new MemoryNetwork({ clock, faults: { drop, duplicate, reorder, seed } })
          const limits = { retransmitMs: 200, maxRetransmitMs: 2000, window }
          const b = await openReceiver(net.connect('b'), clock, { ...limits, maxInboxPerPeer: limit, processBatch })
          const senders = await Promise.all(counts.map((_, i) => openPeer(net.connect(`s${i}`), { clock, limits })))
          try {
            const got: Message[] = []
            counts.forEach((n, i) => range(n).forEach((k) => void senders[i]!.ilm.send('b', k)))
            await elapse([clock], subscribeAfterMs, 250)
            b.ilm.onMessage(async (m) => {
              if (handlerMs > 0) await new Promise<void>((resolve) => clock.setTimeout(resolve, handlerMs))
              got.push(m)
            })
            const total = counts.reduce((x, y) => x + y, 0)
            await until(() => got.length >= total, { clocks: [clock], stepMs: 250, steps: 20_000 })
            net.faults({})
            await until(async () => (await Promise.all(senders.map((s) => s.ilm.pending()))).every((p) => p.outbound === 0), {
              clocks: [clock],
              stepMs: 250,
              steps: 2000,
            })
            await elapse([clock], 5000, 500)

            const expected: Record<string, number[]> = {}
            counts.forEach((n, i) => n > 0 && (expected[`s${i}`] = range(n)))
            expect(bySender(got)).toEqual(expected)
            const peaks = [...peakInbox(b.store.commits).values()]
            for (const peak of peaks) expect(peak).toBeLessThanOrEqual(limit)
            totals.messages += total
            if (peaks.includes(limit) && total > limit) totals.boundReached++
            expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
          } finally {
            await Promise.all([b.ilm.close(), ...senders.map((s) => s.ilm.close())])
          }
        },
      ),
      { numRuns: runs },
    )
    // Not vacuous: most schedules fill some inbox to its limit.
    console.log(`backpressure property: ${runs} schedules, ${totals.messages} messages, the bound reached in ${totals.boundReached}`)
    expect(totals.boundReached).toBeGreaterThan(runs / 2)
  }, 300_000)
})
