/**
 * The scenarios of the seed crate (`intersession-layer-messaging` 0.2.1),
 * one `it` each, plus the input validation of `send()`.
 *
 * Every engine runs on a ManualClock: the normal paths need no timer (frames
 * go through the MemoryNetwork's microtask queue), and where time matters the
 * test advances the clock itself. Nothing waits on real timers.
 */
import { describe, expect, it } from 'vitest'
import { ILM, IlmError, MemoryNetwork, MemoryStore, type Epoch, type Limits, type Message, type PeerId } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { codeOf, contentsOf, elapse, online, openPeer, range, seqsOf, tick, until, type Peer } from '../helpers/engines.js'

// ---------------------------------------------------------------- helpers

/** Opens `id` on the network with a handler that records every message. */
async function peer(net: MemoryNetwork, id: string, store = new MemoryStore(), clock = new ManualClock(), limits: Partial<Limits> = {}): Promise<Peer> {
  return openPeer(net.connect(id), { store, clock, limits })
}

const from = (messages: readonly Message[], sender: string) => messages.filter((m) => m.from === sender)
/** Any well-formed sender epoch (base-36 time, a dot, a random suffix). */
const anEpoch = expect.stringMatching(/^[0-9a-z]{9}\./) as unknown as string

// ---------------------------------------------------------------- scenarios

describe('seed scenarios', () => {
  it('two peers exchange', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    const ab = await a.ilm.send('b', 'hello b')
    const ba = await b.ilm.send('a', { hello: 'a' })
    await a.ilm.delivered(ab.id)
    await b.ilm.delivered(ba.id)
    await until(() => a.got.length === 1 && b.got.length === 1)
    expect(b.got).toEqual([{ id: ab.id, from: 'a', to: 'b', seq: 0, epoch: anEpoch, contents: 'hello b' }])
    expect(a.got).toEqual([{ id: ba.id, from: 'b', to: 'a', seq: 0, epoch: anEpoch, contents: { hello: 'a' } }])
    expect(a.got[0]!.epoch).not.toBe(b.got[0]!.epoch)
    expect(await a.ilm.status(ab.id)).toBe('delivered')
    expect(await b.ilm.status(ba.id)).toBe('delivered')
    await a.ilm.close()
    await b.ilm.close()
  })

  it('three peers all send to each other concurrently', async () => {
    const net = new MemoryNetwork()
    const ids = ['a', 'b', 'c'] as const
    const peers = new Map<string, Peer>()
    for (const id of ids) peers.set(id, await peer(net, id))
    const N = 30
    const sends: Promise<unknown>[] = []
    for (let i = 0; i < N; i++) {
      for (const s of ids) for (const r of ids) if (s !== r) sends.push(peers.get(s)!.ilm.send(r, `${s}->${r} ${i}`))
    }
    await Promise.all(sends)
    await until(() => ids.every((id) => peers.get(id)!.got.length === 2 * N))
    await tick()
    for (const r of ids) {
      const got = peers.get(r)!.got
      expect(got).toHaveLength(2 * N)
      for (const s of ids) {
        if (s === r) continue
        expect(seqsOf(from(got, s))).toEqual(range(N))
        expect(contentsOf(from(got, s))).toEqual(range(N).map((i) => `${s}->${r} ${i}`))
      }
    }
    for (const p of peers.values()) expect(await p.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    for (const p of peers.values()) await p.ilm.close()
  })

  it('send to self fails with SELF_SEND and stores nothing', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    await a.ilm.send('zz', 'queued for someone else')
    const before = await a.ilm.pending()
    expect(await codeOf(a.ilm.send('a', 'me'))).toBe('SELF_SEND')
    expect(await a.ilm.pending()).toEqual(before)
    // The seq space of no stream moved: the next send to 'zz' gets seq 1.
    expect((await a.ilm.send('zz', 'next')).seq).toBe(1)
    await tick()
    expect(a.got).toEqual([])
    await a.ilm.close()
  })

  it('a burst of concurrent sends keeps its order', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    const N = 100
    const resolvedOrder: number[] = []
    const receipts = await Promise.all(
      range(N).map((i) =>
        a.ilm.send('b', i).then((r) => {
          resolvedOrder.push(r.seq)
          return r
        }),
      ),
    )
    expect(receipts.map((r) => r.seq)).toEqual(range(N))
    expect(resolvedOrder).toEqual(range(N))
    await until(() => b.got.length === N)
    expect(seqsOf(b.got)).toEqual(range(N))
    expect(contentsOf(b.got)).toEqual(range(N))
    expect(b.got.map((m) => m.id)).toEqual(receipts.map((r) => r.id))
    await a.ilm.close()
    await b.ilm.close()
  })

  it('sending after close fails with CLOSED', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const { id } = await a.ilm.send('b', 'before')
    await a.ilm.close()
    expect(await codeOf(a.ilm.send('b', 'after'))).toBe('CLOSED')
    expect(await codeOf(a.ilm.status(id))).toBe('CLOSED')
    expect(await codeOf(a.ilm.pending())).toBe('CLOSED')
    expect(await codeOf(a.ilm.delivered(id))).toBe('CLOSED')
    await a.ilm.close() // idempotent
  })

  it('255 messages arrive in order', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    for (let i = 0; i < 255; i++) expect((await a.ilm.send('b', `m${i}`)).seq).toBe(i)
    await until(() => b.got.length === 255)
    await tick()
    expect(seqsOf(b.got)).toEqual(range(255))
    expect(contentsOf(b.got)).toEqual(range(255).map((i) => `m${i}`))
    await until(async () => (await a.ilm.pending()).outbound === 0)
    await a.ilm.close()
    await b.ilm.close()
  })

  it('a message to a peer that never appears stays pending', async () => {
    const net = new MemoryNetwork()
    const clock = new ManualClock()
    const a = await peer(net, 'a', new MemoryStore(), clock)
    const { id } = await a.ilm.send('ghost', 'anyone there?')
    let settled = false
    void a.ilm.delivered(id).then(
      () => (settled = true),
      () => (settled = true),
    )
    // An hour of virtual time with no receiver.
    await elapse([clock], 3_600_000, 60_000)
    expect(await a.ilm.status(id)).toBe('queued')
    expect(await a.ilm.pending()).toEqual({ outbound: 1, inbound: 0 })
    expect(settled).toBe(false)
    await a.ilm.close()
  })

  it('duplicated frames are delivered once', async () => {
    const net = new MemoryNetwork({ faults: { duplicate: 1, seed: 7 } })
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    const receipts = await Promise.all(range(20).map((i) => a.ilm.send('b', i)))
    for (const r of receipts) await a.ilm.delivered(r.id)
    await until(() => b.got.length >= 20)
    await tick(5)
    expect(net.stats.duplicated).toBeGreaterThan(0)
    expect(contentsOf(b.got)).toEqual(range(20))
    expect(seqsOf(b.got)).toEqual(range(20))
    await a.ilm.close()
    await b.ilm.close()
  })

  it('a message persists until delivery across a sender restart', async () => {
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const a1 = await peer(net, 'a', storeA)
    const { id } = await a1.ilm.send('b', 'kept')
    expect(await a1.ilm.status(id)).toBe('queued')
    await a1.ilm.close()

    const a2 = await peer(net, 'a', storeA)
    expect(await a2.ilm.status(id)).toBe('queued')
    expect(await a2.ilm.pending()).toEqual({ outbound: 1, inbound: 0 })
    const b = await peer(net, 'b')
    await a2.ilm.delivered(id)
    await until(() => b.got.length === 1)
    expect(b.got[0]).toMatchObject({ id, from: 'a', seq: 0, contents: 'kept' })
    expect(await a2.ilm.status(id)).toBe('delivered')
    expect(await a2.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('simultaneous bidirectional sends', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    const [ra, rb] = await Promise.all([a.ilm.send('b', 'from a'), b.ilm.send('a', 'from b')])
    await Promise.all([a.ilm.delivered(ra.id), b.ilm.delivered(rb.id)])
    await until(() => a.got.length === 1 && b.got.length === 1)
    expect(contentsOf(a.got)).toEqual(['from b'])
    expect(contentsOf(b.got)).toEqual(['from a'])
    await a.ilm.close()
    await b.ilm.close()
  })

  it('255 messages each way concurrently arrive in order', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    const sends = range(255).flatMap((i) => [a.ilm.send('b', { n: i }), b.ilm.send('a', { n: i })])
    await Promise.all(sends)
    await until(() => a.got.length === 255 && b.got.length === 255)
    await tick()
    for (const p of [a, b]) {
      expect(seqsOf(p.got)).toEqual(range(255))
      expect(contentsOf(p.got)).toEqual(range(255).map((n) => ({ n })))
    }
    await a.ilm.close()
    await b.ilm.close()
  })

  it('close during a long send loop: later sends reject CLOSED, every resolved send is delivered after reopening', async () => {
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const a1 = await peer(net, 'a', storeA)
    const b = await peer(net, 'b')
    let queued = 0
    a1.ilm.on('status', (e) => {
      if (e.status === 'queued' && ++queued === 120) void a1.ilm.close()
    })
    const resolved: Array<{ contents: string; id: string; seq: number }> = []
    const rejected: unknown[] = []
    // Two loops interleave in the writer, so close() meets sends in every stage.
    const loop = async (tag: string) => {
      let failures = 0
      for (let i = 0; i < 1000; i++) {
        const contents = `${tag}${i}`
        try {
          const r = await a1.ilm.send('b', contents)
          resolved.push({ contents, ...r })
        } catch (error) {
          rejected.push(error)
          if (++failures === 5) return
        }
      }
    }
    await Promise.all([loop('x'), loop('y')])
    expect(resolved.length).toBeGreaterThanOrEqual(120)
    expect(resolved.length).toBeLessThan(2000)
    expect(rejected).toHaveLength(10)
    for (const error of rejected) expect(error).toMatchObject({ name: 'IlmError', code: 'CLOSED' })
    // Seqs were given in resolution order, without gaps.
    expect(resolved.map((r) => r.seq)).toEqual(range(resolved.length))

    const a2 = await peer(net, 'a', storeA)
    await until(() => b.got.length >= resolved.length)
    await tick(5)
    expect(contentsOf(b.got)).toEqual(resolved.map((r) => r.contents))
    expect(seqsOf(b.got)).toEqual(range(resolved.length))
    for (const r of resolved) expect(await a2.ilm.status(r.id)).toBe('delivered')
    expect(await a2.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    await a2.ilm.close()
    await b.ilm.close()
  })

  it("empty contents ('', empty Uint8Array, {}) arrive as the same kind", async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    await a.ilm.send('b', '')
    await a.ilm.send('b', new Uint8Array(0))
    await a.ilm.send('b', {})
    await a.ilm.send('b', [])
    await until(() => b.got.length === 4)
    const [s, bytes, obj, arr] = contentsOf(b.got)
    expect(s).toBe('')
    expect(bytes).toBeInstanceOf(Uint8Array)
    expect((bytes as Uint8Array).byteLength).toBe(0)
    expect(obj).toEqual({})
    expect(Array.isArray(obj)).toBe(false)
    expect(arr).toEqual([])
    expect(Array.isArray(arr)).toBe(true)
    await a.ilm.close()
    await b.ilm.close()
  })

  it('with no subscriber, messages stay pending until a handler subscribes', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await ILM.open({ store: new MemoryStore(), transport: net.connect('b'), clock: new ManualClock(), limits: { deferCommitMs: 0, ackDelayMs: 0 } })
    const receipts = [await a.ilm.send('b', 'one'), await a.ilm.send('b', 'two'), await a.ilm.send('b', 'three')]
    // Delivered means durably stored by the receiver, not yet processed.
    for (const r of receipts) await a.ilm.delivered(r.id)
    await tick()
    expect(await b.pending()).toEqual({ outbound: 0, inbound: 3 })
    const got: Message[] = []
    b.onMessage((m) => void got.push(m))
    await until(() => got.length === 3)
    expect(contentsOf(got)).toEqual(['one', 'two', 'three'])
    await until(async () => (await b.pending()).inbound === 0)
    await tick()
    expect(got).toHaveLength(3)
    await a.ilm.close()
    await b.close()
  })

  it('a stream whose seq is near Number.MAX_SAFE_INTEGER works, and its last seq rejects SEQ_EXHAUSTED', async () => {
    const MAX = Number.MAX_SAFE_INTEGER
    const clock = new ManualClock()
    const storeA = new MemoryStore()
    // Prepare the store as an engine that already sent MAX - 2 messages to b (all acked) would have left it.
    const handle = await storeA.open('a' as PeerId)
    const epoch = `${clock.now().toString(36).padStart(9, '0')}.seedScenario42` as Epoch
    await handle.commit([
      { op: 'meta', meta: { epoch, createdAt: clock.now() } },
      { op: 'outStream', stream: { to: 'b' as PeerId, nextSeq: MAX - 2, ackedUpTo: MAX - 3 } },
    ])
    await handle.close()

    const net = new MemoryNetwork()
    const a = await peer(net, 'a', storeA, clock)
    const b = await peer(net, 'b')
    const r1 = await a.ilm.send('b', 'second to last')
    const r2 = await a.ilm.send('b', 'last')
    expect(r1.seq).toBe(MAX - 2)
    expect(r2.seq).toBe(MAX - 1)
    expect(await codeOf(a.ilm.send('b', 'one too many'))).toBe('SEQ_EXHAUSTED')
    await a.ilm.delivered(r1.id)
    await a.ilm.delivered(r2.id)
    await until(() => b.got.length === 2)
    expect(seqsOf(b.got)).toEqual([MAX - 2, MAX - 1])
    expect(contentsOf(b.got)).toEqual(['second to last', 'last'])
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(await codeOf(a.ilm.send('b', 'still too many'))).toBe('SEQ_EXHAUSTED')
    // Other streams are unaffected.
    expect((await a.ilm.send('c', 'fresh stream')).seq).toBe(0)
    await a.ilm.close()
    await b.ilm.close()
  })

  it('a failing store surfaces STORE_FAILED, persists nothing, and works again once fixed', async () => {
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const a = await peer(net, 'a', storeA)
    const b = await peer(net, 'b')
    const errors: IlmError[] = []
    a.ilm.on('error', (e) => void errors.push(e))
    await until(() => online(a, 'b'))
    await tick()

    storeA.faults({ commit: () => true })
    expect(await codeOf(a.ilm.send('b', 'lost'))).toBe('STORE_FAILED')
    expect(await codeOf(a.ilm.send('b', 'lost too'))).toBe('STORE_FAILED')
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    storeA.faults(undefined)

    const r = await a.ilm.send('b', 'works')
    expect(r.seq).toBe(0) // no seq was burnt by the failed sends
    await a.ilm.delivered(r.id)
    await until(() => b.got.length === 1)
    await tick()
    expect(contentsOf(b.got)).toEqual(['works'])
    expect(errors.every((e) => e.code === 'STORE_FAILED')).toBe(true)
    await a.ilm.close()
    await b.ilm.close()
  })

  it('messages queued before the receiver exists arrive in order once it appears', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const receipts = []
    for (let i = 0; i < 25; i++) receipts.push(await a.ilm.send('b', i))
    expect(await a.ilm.pending()).toEqual({ outbound: 25, inbound: 0 })
    const b = await peer(net, 'b')
    await until(() => b.got.length === 25)
    await tick()
    expect(contentsOf(b.got)).toEqual(range(25))
    expect(seqsOf(b.got)).toEqual(range(25))
    for (const r of receipts) expect(await a.ilm.status(r.id)).toBe('delivered')
    await a.ilm.close()
    await b.ilm.close()
  })

  it('graceful shutdown drains: it resolves only after every message is delivered', async () => {
    const clock = new ManualClock()
    // Frames take 50 ms of virtual time, so draining needs the clock to move.
    const net = new MemoryNetwork({ clock, faults: { delayMs: 50 } })
    const storeA = new MemoryStore()
    const a = await peer(net, 'a', storeA, clock)
    const b = await peer(net, 'b', new MemoryStore(), clock)
    await until(() => online(a, 'b'), { clocks: [clock], stepMs: 10 })
    await elapse([clock], 200, 10) // let the hellos cross

    let delivered = 0
    a.ilm.on('status', (e) => void (e.status === 'delivered' && delivered++))
    const receipts = await Promise.all(range(10).map((i) => a.ilm.send('b', i)))
    let done: 'resolved' | 'rejected' | undefined
    let deliveredAtShutdown = -1
    void a.ilm.shutdown({ timeoutMs: 60_000 }).then(
      () => {
        deliveredAtShutdown = delivered
        done = 'resolved'
      },
      () => (done = 'rejected'),
    )
    // Shutting down: no new sends.
    expect(await codeOf(a.ilm.send('b', 'too late'))).toBe('CLOSED')
    await tick(5)
    expect(done).toBeUndefined() // nothing can have been delivered without time passing
    await until(() => done !== undefined, { clocks: [clock], stepMs: 10 })
    expect(done).toBe('resolved')
    expect(deliveredAtShutdown).toBe(10)

    await until(() => b.got.length === 10, { clocks: [clock], stepMs: 10 })
    expect(contentsOf(b.got)).toEqual(range(10))
    const a2 = await peer(net, 'a', storeA, clock)
    expect(await a2.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    for (const r of receipts) expect(await a2.ilm.status(r.id)).toBe('delivered')
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('shutdown times out on an unreachable peer: SHUTDOWN_TIMEOUT, closed, messages kept', async () => {
    const clockA = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const a = await peer(net, 'a', storeA, clockA)
    const b = await peer(net, 'b')
    await until(() => online(a, 'b'))
    await tick()
    net.faults({ drop: 1, seed: 1 })
    const receipts = await Promise.all(range(3).map((i) => a.ilm.send('b', i)))

    let outcome: unknown = 'pending'
    const first = a.ilm.shutdown({ timeoutMs: 1000 })
    first.then(
      () => (outcome = 'resolved'),
      (error: unknown) => (outcome = error),
    )
    await tick()
    expect(outcome).toBe('pending')
    await until(() => outcome !== 'pending', { clocks: [clockA], stepMs: 100, steps: 30 })
    expect(outcome).toMatchObject({ name: 'IlmError', code: 'SHUTDOWN_TIMEOUT' })

    // Closed for good, not half-running.
    expect(await codeOf(a.ilm.send('b', 'after'))).toBe('CLOSED')
    expect(await codeOf(a.ilm.pending())).toBe('CLOSED')
    expect(clockA.pending).toBe(0)
    // A second call is safe: it settles at once (same outcome), never hangs, never reopens.
    let second: unknown = 'pending'
    a.ilm.shutdown({ timeoutMs: 1000 }).then(
      () => (second = 'resolved'),
      (error: unknown) => (second = error),
    )
    await tick()
    expect(second === 'resolved' || (second as IlmError).code === 'SHUTDOWN_TIMEOUT').toBe(true)
    await a.ilm.close()

    const a2 = await peer(net, 'a', storeA, clockA)
    expect(await a2.ilm.pending()).toEqual({ outbound: 3, inbound: 0 })
    for (const r of receipts) expect(['queued', 'sent']).toContain(await a2.ilm.status(r.id))
    expect(b.got).toEqual([])
    net.faults({})
    await until(() => b.got.length === 3, { clocks: [clockA], stepMs: 500 })
    await tick()
    expect(contentsOf(b.got)).toEqual([0, 1, 2])
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('ids and acks persist across restarts: still delivered after reopening, nothing redelivered', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const storeB = new MemoryStore()
    const a1 = await peer(net, 'a', storeA, clock)
    const b1 = await peer(net, 'b', storeB, clock)
    const receipts = await Promise.all(range(5).map((i) => a1.ilm.send('b', i)))
    for (const r of receipts) await a1.ilm.delivered(r.id)
    await until(() => b1.got.length === 5)
    await tick()
    await a1.ilm.close()
    await b1.ilm.close()

    const a2 = await peer(net, 'a', storeA, clock)
    const b2 = await peer(net, 'b', storeB, clock)
    await until(() => online(a2, 'b'))
    // Let hellos, any retransmission and handler retries run.
    await elapse([clock], 20_000, 1000)
    expect(b2.got).toEqual([])
    for (const r of receipts) expect(await a2.ilm.status(r.id)).toBe('delivered')
    await a2.ilm.delivered(receipts[4]!.id)
    expect(await a2.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(await b2.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    // The stream goes on where it was.
    expect((await a2.ilm.send('b', 5)).seq).toBe(5)
    await until(() => b2.got.length === 1)
    expect(b2.got[0]).toMatchObject({ seq: 5, contents: 5 })
    await a2.ilm.close()
    await b2.ilm.close()
  })

  it('a crash without shutdown, then a restart, delivers exactly seqs 0..4 once', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const b = await peer(net, 'b', new MemoryStore(), clock)
    const a1 = await peer(net, 'a', storeA, clock)
    await until(() => online(a1, 'b'))
    const receipts = await Promise.all(range(5).map((i) => a1.ilm.send('b', `m${i}`)))
    // Crash: a1 is abandoned, not closed. A new engine fences its store and replaces its transport.
    const a2 = await peer(net, 'a', storeA, clock)
    await until(() => b.got.length >= 5, { clocks: [clock], stepMs: 200 })
    await elapse([clock], 10_000, 1000)
    expect(seqsOf(b.got)).toEqual(range(5))
    expect(contentsOf(b.got)).toEqual(range(5).map((i) => `m${i}`))
    expect(b.got.map((m) => m.id)).toEqual(receipts.map((r) => r.id))
    for (const r of receipts) expect(await a2.ilm.status(r.id)).toBe('delivered')
    // The abandoned engine cannot write any more.
    expect(await codeOf(a1.ilm.send('b', 'zombie'))).toMatch(/^(STORE_FENCED|CLOSED)$/)
    await a2.ilm.close()
    await a1.ilm.close()
    await b.ilm.close()
  })

  it('several destinations persist independently', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const a1 = await peer(net, 'a', storeA, clock)
    const plan = { b: 3, c: 2, d: 4 } as const
    const ids: Record<string, string[]> = { b: [], c: [], d: [] }
    for (let i = 0; i < 4; i++) {
      for (const to of ['b', 'c', 'd'] as const) {
        if (i < plan[to]) {
          const r = await a1.ilm.send(to, `${to}${i}`)
          expect(r.seq).toBe(i)
          ids[to]!.push(r.id)
        }
      }
    }
    await a1.ilm.close()

    const a2 = await peer(net, 'a', storeA, clock)
    expect(await a2.ilm.pending()).toEqual({ outbound: 9, inbound: 0 })
    const c = await peer(net, 'c', new MemoryStore(), clock)
    await until(() => c.got.length === 2)
    await until(async () => (await a2.ilm.pending()).outbound === 7)
    expect(contentsOf(c.got)).toEqual(['c0', 'c1'])
    for (const id of ids.b!) expect(await a2.ilm.status(id)).toBe('queued')
    for (const id of ids.d!) expect(await a2.ilm.status(id)).toBe('queued')
    for (const id of ids.c!) expect(await a2.ilm.status(id)).toBe('delivered')

    const d = await peer(net, 'd', new MemoryStore(), clock)
    const b = await peer(net, 'b', new MemoryStore(), clock)
    await until(() => b.got.length === 3 && d.got.length === 4)
    await tick()
    expect(contentsOf(b.got)).toEqual(['b0', 'b1', 'b2'])
    expect(seqsOf(b.got)).toEqual([0, 1, 2])
    expect(contentsOf(d.got)).toEqual(['d0', 'd1', 'd2', 'd3'])
    expect(c.got).toHaveLength(2)
    await until(async () => (await a2.ilm.pending()).outbound === 0)
    for (const p of [a2, b, c, d]) await p.ilm.close()
  })
})

// ---------------------------------------------------------------- input validation

describe('send() input validation', () => {
  it('invalid peer ids reject INVALID_PEER_ID', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const bad: unknown[] = ['', 'x'.repeat(129), 'has space', 'tab\there', 'new\nline', 'ctl\u0000', 42, null, undefined, {}, ['b']]
    for (const to of bad) expect(await codeOf(a.ilm.send(to as string, 'x')), JSON.stringify(String(to))).toBe('INVALID_PEER_ID')
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    // The boundaries are valid.
    expect((await a.ilm.send('x'.repeat(128), 'ok')).seq).toBe(0)
    expect((await a.ilm.send('é', 'ok')).seq).toBe(0)
    await a.ilm.close()
  })

  it('unserialisable contents reject UNSERIALIZABLE and store nothing', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const bad: unknown[] = [
      () => 1,
      10n,
      cyclic,
      new Map([[1, 2]]),
      new Set([1]),
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Symbol('s'),
      new Date(0),
      { nested: { fn: () => 1 } },
      [1, 2n],
      { n: Number.NaN },
    ]
    for (const contents of bad) expect(await codeOf(a.ilm.send('b', contents)), String(typeof contents)).toBe('UNSERIALIZABLE')
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect((await a.ilm.send('b', 'fine')).seq).toBe(0)
    await a.ilm.close()
  })

  it('contents over maxMessageBytes reject TOO_LARGE', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a', new MemoryStore(), new ManualClock(), { maxMessageBytes: 100 })
    const b = await peer(net, 'b', new MemoryStore(), new ManualClock(), { maxMessageBytes: 100 })
    expect(await codeOf(a.ilm.send('b', 'x'.repeat(101)))).toBe('TOO_LARGE')
    expect(await codeOf(a.ilm.send('b', new Uint8Array(101)))).toBe('TOO_LARGE')
    expect(await codeOf(a.ilm.send('b', { s: 'x'.repeat(100) }))).toBe('TOO_LARGE')
    expect(await codeOf(a.ilm.send('b', 'é'.repeat(51)))).toBe('TOO_LARGE') // 102 UTF-8 bytes
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    const r = await a.ilm.send('b', 'x'.repeat(100)) // exactly at the limit
    expect(r.seq).toBe(0)
    await a.ilm.delivered(r.id)
    await until(() => b.got.length === 1)
    expect(contentsOf(b.got)).toEqual(['x'.repeat(100)])
    await a.ilm.close()
    await b.ilm.close()
  })

  it('QUEUE_FULL once maxPendingPerPeer messages wait, and room again after acks', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a', new MemoryStore(), new ManualClock(), { maxPendingPerPeer: 3 })
    for (let i = 0; i < 3; i++) expect((await a.ilm.send('b', i)).seq).toBe(i)
    expect(await codeOf(a.ilm.send('b', 3))).toBe('QUEUE_FULL')
    // Concurrent sends beyond the limit fail too, and burn no seq.
    const results = await Promise.allSettled([a.ilm.send('b', 'x'), a.ilm.send('b', 'y')])
    for (const r of results) expect(r.status === 'rejected' && (r.reason as IlmError).code).toBe('QUEUE_FULL')
    expect(await a.ilm.pending()).toEqual({ outbound: 3, inbound: 0 })
    // Other peers have their own queue.
    expect((await a.ilm.send('c', 'other')).seq).toBe(0)

    const b = await peer(net, 'b')
    await until(() => b.got.length === 3)
    await until(async () => (await a.ilm.pending()).outbound === 1)
    expect((await a.ilm.send('b', 3)).seq).toBe(3)
    await until(() => b.got.length === 4)
    expect(contentsOf(b.got)).toEqual([0, 1, 2, 3])
    await a.ilm.close()
    await b.ilm.close()
  })

  it('Uint8Array, string and JSON contents come out as the same kind', async () => {
    const net = new MemoryNetwork()
    const a = await peer(net, 'a')
    const b = await peer(net, 'b')
    const sent: unknown[] = [
      new Uint8Array([0, 1, 2, 255]),
      'plain text',
      '{"looks":"like json"}',
      '42',
      { a: 1, b: [true, null, 'x', { c: 2.5 }] },
      [1, 'two', [3]],
      42,
      -0.5,
      null,
      true,
      false,
      'ünïcødé ✓ 😀',
    ]
    for (const contents of sent) await a.ilm.send('b', contents)
    // A Node Buffer is a Uint8Array and arrives as one.
    await a.ilm.send('b', Buffer.from([9, 8, 7]))
    await until(() => b.got.length === sent.length + 1)
    const got = contentsOf(b.got)
    for (let i = 0; i < sent.length; i++) {
      const s = sent[i]
      const g = got[i]
      if (s instanceof Uint8Array) {
        expect(g).toBeInstanceOf(Uint8Array)
        expect([...(g as Uint8Array)]).toEqual([...s])
      } else {
        expect(typeof g).toBe(typeof s)
        expect(g).toEqual(s)
      }
    }
    const last = got[sent.length]
    expect(last).toBeInstanceOf(Uint8Array)
    expect([...(last as Uint8Array)]).toEqual([9, 8, 7])
    await a.ilm.close()
    await b.ilm.close()
  })
})
