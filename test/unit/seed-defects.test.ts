/**
 * What the seed crate got wrong (PROTOCOL.md, "Defects of the seed"), one
 * regression test each. Time is a ManualClock advanced in bounded steps, with
 * macrotask turns in between so that promise chains settle.
 */
import { describe, expect, it } from 'vitest'
import {
  ILM,
  IlmError,
  MemoryNetwork,
  MemoryStore,
  decodeFrame,
  encodeFrame,
  type Epoch,
  type Frame,
  type PeerId,
  type SendReceipt,
  type Transport,
} from '../../src/index.js'
import type { PeerStore, Store } from '../../src/core/store.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { webCryptoE2E } from '../../src/crypto/web-crypto-cipher.js'
import { RecordingStore } from '../helpers/engine-probes.js'
import { codeOf, connected, contentsOf, elapse, online, openPeer, range, seqsOf, tick, until, type Peer } from '../helpers/engines.js'

// ---------------------------------------------------------------- helpers

const decode = (data: Uint8Array): Frame | undefined => {
  const d = decodeFrame(data, 1 << 30)
  return d.ok ? d.frame : undefined
}

type Verdict = 'pass' | 'drop' | 'throw'

/**
 * Wraps a transport: every outgoing frame is decoded and shown to `hook`,
 * which lets it through, drops it silently (lost on the wire) or makes
 * `send` throw TRANSPORT_FAILED. `sends` counts every call.
 */
function tap(inner: Transport, hook: (frame: Frame) => Verdict = () => 'pass'): Transport & { sends: number } {
  const wrapper = {
    sends: 0,
    localId: inner.localId,
    open: (events: Parameters<Transport['open']>[0]) => inner.open(events),
    send: (to: PeerId, data: Uint8Array) => {
      wrapper.sends++
      const frame = decode(data)
      const verdict = frame === undefined ? 'pass' : hook(frame)
      if (verdict === 'drop') return
      if (verdict === 'throw') throw new IlmError('TRANSPORT_FAILED', 'injected send failure')
      return inner.send(to, data)
    },
    close: () => inner.close(),
  }
  return wrapper
}

/**
 * How the wiped-store tests end: `b` gets the old store's message, then
 * `fresh` from the new store, which becomes delivered with no error on the way.
 */
async function expectOldThenNew(clock: ManualClock, b: Peer, a2: Peer, fresh: SendReceipt): Promise<void> {
  await until(() => b.got.length === 2, { clocks: [clock], stepMs: 500, steps: 60 }).catch(() => {})
  expect(contentsOf(b.got)).toEqual(['old', 'new'])
  expect(await a2.ilm.status(fresh.id)).toBe('delivered')
  expect(a2.errors.map((e) => e.code)).toEqual([])
}

/** A deterministic PRNG (mulberry32), so that a schedule of turns reproduces. */
function prng(seed: number): () => number {
  let t = seed >>> 0
  return () => {
    t = (t + 0x6d2b79f5) >>> 0
    let x = Math.imul(t ^ (t >>> 15), 1 | t)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** What a {@link CountingStore} saw its handles do. */
interface StoreUse {
  reads: number
  rowsRead: number
  largestLimit: number
  commits: number
  ops: number
}

/**
 * A {@link Store} whose handles count reads (calls, rows returned, the
 * largest page asked for) and commits (and their ops), and, with `slow`,
 * hold every commit back a random number of macrotask turns first.
 */
class CountingStore implements Store {
  readonly use: StoreUse = { reads: 0, rowsRead: 0, largestLimit: 0, commits: 0, ops: 0 }

  constructor(
    private readonly inner: Store,
    private readonly slow?: () => number,
  ) {}

  async open(localId: PeerId): Promise<PeerStore> {
    const handle = await this.inner.open(localId)
    const { use, slow } = this
    const paged = (read: (key: never, from: number, limit: number) => Promise<readonly unknown[]>) => async (key: never, from: number, limit: number) => {
      const rows = await read(key, from, limit)
      use.reads++
      use.rowsRead += rows.length
      use.largestLimit = Math.max(use.largestLimit, limit)
      return rows
    }
    return {
      load: () => handle.load(),
      commit: async (ops) => {
        if (slow !== undefined) await tick(Math.floor(slow() * 4))
        use.commits++
        use.ops += ops.length
        return handle.commit(ops)
      },
      readOutbox: paged(handle.readOutbox.bind(handle)) as PeerStore['readOutbox'],
      readInbox: paged(handle.readInbox.bind(handle)) as PeerStore['readInbox'],
      readExpired: async (now, limit) => {
        const rows = await handle.readExpired(now, limit)
        use.reads++
        use.rowsRead += rows.length
        use.largestLimit = Math.max(use.largestLimit, limit)
        return rows
      },
      nextExpiry: () => (use.reads++, handle.nextExpiry()),
      findMessage: (id) => (use.reads++, handle.findMessage(id)),
      count: () => (use.reads++, handle.count()),
      readKeys: () => handle.readKeys(),
      close: () => handle.close(),
    }
  }
}

/** The default cipher, with an application that accepts every new key of a peer. */
const acceptingNewKeys = webCryptoE2E({ verifyPeerKey: () => true })

// ---------------------------------------------------------------- defects

describe('seed defects', () => {
  it('defect 1: a lost message is retransmitted', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    let lost = 0
    const ta = tap(net.connect('a'), (f) => (f.kind === 'msg' && lost++ === 0 ? 'drop' : 'pass'))
    const a = await openPeer(ta, { clock })
    const b = await openPeer(net.connect('b'), { clock })
    await until(() => online(a, 'b'))
    await tick()

    const { id } = await a.ilm.send('b', 'once lost')
    await until(() => lost === 1) // the first msg frame went nowhere
    expect(b.got).toEqual([])
    expect(await a.ilm.status(id)).toBe('sent')

    await until(() => b.got.length === 1, { clocks: [clock], stepMs: 100, steps: 100 })
    await a.ilm.delivered(id)
    expect(contentsOf(b.got)).toEqual(['once lost'])
    expect(clock.now() - ManualClock.DEFAULT_START).toBeLessThanOrEqual(3_000) // within a couple of timeouts
    await elapse([clock], 5_000, 500)
    expect(b.got).toHaveLength(1)
    await a.ilm.close()
    await b.ilm.close()
  })

  it('defect 1: a burst survives lost acks, and is delivered once', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    let dropAcks = false
    let dropped = 0
    const tb = tap(net.connect('b'), (f) => (f.kind === 'ack' && dropAcks ? (dropped++, 'drop') : 'pass'))
    const a = await openPeer(net.connect('a'), { clock })
    const b = await openPeer(tb, { clock })
    await until(async () => (await online(a, 'b')) && (await online(b, 'a')))
    await tick()

    let delivered = 0
    a.ilm.on('status', (e) => void (e.status === 'delivered' && delivered++))
    dropAcks = true
    const receipts = await Promise.all(range(20).map((i) => a.ilm.send('b', i)))
    await until(() => b.got.length === 20)
    // The receiver stored them all, but no ack got through: the sender retransmits.
    await elapse([clock], 10_000, 250)
    expect(dropped).toBeGreaterThan(1)
    expect(delivered).toBe(0)
    expect(await a.ilm.pending()).toEqual({ outbound: 20, inbound: 0 })
    expect(b.got).toHaveLength(20) // retransmissions were not handed over again

    dropAcks = false
    await until(() => delivered === 20, { clocks: [clock], stepMs: 500, steps: 200 })
    for (const r of receipts) expect(await a.ilm.status(r.id)).toBe('delivered')
    expect(await a.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(seqsOf(b.got)).toEqual(range(20))
    expect(contentsOf(b.got)).toEqual(range(20))
    await a.ilm.close()
    await b.ilm.close()
  })

  it('defect 6: a message the receiver failed to store is not acknowledged, and arrives once later', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeB = new MemoryStore()
    const a = await openPeer(net.connect('a'), { clock })
    const b = await openPeer(net.connect('b'), { clock, store: storeB })
    await until(async () => (await online(a, 'b')) && (await online(b, 'a')))
    await tick()

    storeB.faults({ commit: () => true })
    const { id } = await a.ilm.send('b', 'precious')
    let settled = false
    void a.ilm.delivered(id).then(() => (settled = true))
    await elapse([clock], 5_000, 250)
    expect(settled).toBe(false)
    expect(await a.ilm.status(id)).toBe('sent')
    expect(b.got).toEqual([])
    expect(await b.ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    expect(b.errors.some((e) => e.code === 'STORE_FAILED')).toBe(true)

    storeB.faults(undefined)
    await until(() => settled, { clocks: [clock], stepMs: 500, steps: 200 })
    await until(() => b.got.length === 1)
    await elapse([clock], 5_000, 500)
    expect(contentsOf(b.got)).toEqual(['precious'])
    expect(await a.ilm.status(id)).toBe('delivered')
    await a.ilm.close()
    await b.ilm.close()
  })

  it('defect 5: a closed instance stops all its timers', async () => {
    const clockA = new ManualClock()
    const clockB = new ManualClock()
    const net = new MemoryNetwork()
    const a = await openPeer(net.connect('a'), { clock: clockA }, false)
    const b = await openPeer(net.connect('b'), { clock: clockB })
    // c never answers: a's link to c keeps a hello/retransmission timer armed.
    const c = net.connect('c')
    c.open({ frame() {}, peer() {}, closed() {} })
    await until(async () => (await online(a, 'b')) && (await connected(a, 'c')))
    // A handler that always throws: a keeps a handler retry timer.
    a.ilm.onMessage(() => {
      throw new Error('not now')
    })
    await b.ilm.send('a', 'retry me')
    await a.ilm.send('c', 'unanswered', { ttlMs: 3_600_000 }) // an expiry timer
    await a.ilm.send('offline', 'queued', { ttlMs: 60_000 })
    await until(() => a.errors.some((e) => e.code === 'HANDLER_FAILED'))
    await elapse([clockA], 500, 100)
    expect(clockA.pending).toBeGreaterThanOrEqual(3)

    await a.ilm.close()
    expect(clockA.pending).toBe(0)
    expect(await elapse([clockA], 7_200_000, 600_000)).toBe(0)

    // Also after shutdown(), here with a message toward a peer that is gone (a closed).
    await b.ilm.send('a', 'never acked')
    let done = false
    b.ilm.shutdown({ timeoutMs: 1000 }).then(
      () => (done = true),
      () => (done = true),
    )
    await until(() => done, { clocks: [clockB] })
    expect(clockB.pending).toBe(0)
    c.close()
  })

  it('defect 8: a closed transport does not spin', async () => {
    // 1. The transport is closed underneath the engine (no event reaches it).
    {
      const clock = new ManualClock()
      const net = new MemoryNetwork()
      const inner = net.connect('a')
      const ta = tap(inner)
      const a = await openPeer(ta, { clock })
      const b = await openPeer(net.connect('b'))
      await until(() => online(a, 'b'))
      const first = await a.ilm.send('b', 'before')
      await a.ilm.delivered(first.id)
      inner.close()
      await a.ilm.send('b', 'after') // stored; the transport cannot take it
      ta.sends = 0
      const fired = await elapse([clock], 60_000, 100)
      expect(fired).toBeLessThan(30)
      expect(ta.sends).toBeLessThan(30)
      await a.ilm.close()
      await b.ilm.close()
    }
    // 2. The transport is replaced (a new login as 'a'): the engine hears closed().
    {
      const clock = new ManualClock()
      const net = new MemoryNetwork()
      const ta = tap(net.connect('a'))
      const a = await openPeer(ta, { clock })
      const b = await openPeer(net.connect('b'))
      await until(() => online(a, 'b'))
      await a.ilm.send('b', 'before')
      const usurper = net.connect('a')
      usurper.open({ frame() {}, peer() {}, closed() {} })
      await tick()
      await a.ilm.send('b', 'after')
      ta.sends = 0
      const fired = await elapse([clock], 60_000, 100)
      expect(fired).toBeLessThan(30)
      expect(ta.sends).toBeLessThan(30)
      expect(await a.ilm.connectedPeers()).toEqual([])
      await a.ilm.close()
      await b.ilm.close()
    }
  })

  it('defect 2: a failed send never lets a later message overtake it', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const attempts: Array<{ seq: number; ok: boolean }> = []
    let failed = false
    const ta = tap(net.connect('a'), (f) => {
      if (f.kind !== 'msg') return 'pass'
      if (f.seq === 1 && !failed) {
        failed = true
        attempts.push({ seq: f.seq, ok: false })
        return 'throw'
      }
      attempts.push({ seq: f.seq, ok: true })
      return 'pass'
    })
    const a = await openPeer(ta, { clock })
    const b = await openPeer(net.connect('b'), { clock })
    await until(async () => (await online(a, 'b')) && (await online(b, 'a')))
    await tick()

    // One at a time as well as in a burst: the failed seq 1 must go out again before 2.
    await a.ilm.send('b', 0)
    await tick()
    const rest = await Promise.all(range(4, 1).map((i) => a.ilm.send('b', i)))
    expect(rest.map((r) => r.seq)).toEqual([1, 2, 3, 4])
    await until(() => b.got.length === 5, { clocks: [clock], stepMs: 100, steps: 200 })
    await elapse([clock], 3_000, 500)

    expect(failed).toBe(true)
    expect(seqsOf(b.got)).toEqual(range(5))
    expect(contentsOf(b.got)).toEqual(range(5))
    const wire = attempts.filter((x) => x.ok).map((x) => x.seq)
    const firstOk = (seq: number) => wire.indexOf(seq)
    for (let s = 1; s < 5; s++) expect(firstOk(s)).toBeGreaterThan(firstOk(s - 1))
    // Between the failed attempt and the successful resend of 1, no later seq was attempted.
    const failedAt = attempts.findIndex((x) => !x.ok)
    const resentAt = attempts.findIndex((x, i) => i > failedAt && x.seq === 1 && x.ok)
    expect(resentAt).toBeGreaterThan(failedAt)
    expect(attempts.slice(failedAt + 1, resentAt).filter((x) => x.seq > 1)).toEqual([])
    await a.ilm.close()
    await b.ilm.close()
  })

  it('defect 7: forged acks from a third peer change nothing', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    // c speaks raw frames in clear, so a does not encrypt (forged frames against sealed streams: e2e-hostile tests).
    const a = await openPeer(net.connect('a'), { clock, encryption: false })
    // c is a hostile peer speaking raw frames.
    const cSeen: Frame[] = []
    const c = net.connect('c')
    c.open({
      frame: (_from, data) => {
        const f = decode(data)
        if (f !== undefined) cSeen.push(f)
      },
      peer() {},
      closed() {},
    })
    await until(() => connected(a, 'c'))
    const toB = await Promise.all([a.ilm.send('b', 'b0'), a.ilm.send('b', 'b1')])
    const toC = await Promise.all([a.ilm.send('c', 'c0'), a.ilm.send('c', 'c1')])
    // c never says hello; a sends anyway after its hello timeout.
    await until(() => cSeen.filter((f) => f.kind === 'msg').length >= 2, { clocks: [clock] })
    const aEpoch = cSeen.find((f) => f.kind === 'hello' || f.kind === 'msg')!.epoch
    const cEpoch = `${clock.now().toString(36).padStart(9, '0')}.hostileC` as Epoch

    const forged: Frame[] = [
      // Claims to be b and acks a's stream to b.
      { kind: 'ack', from: 'b' as PeerId, to: 'a' as PeerId, epoch: aEpoch, upTo: 1 },
      { kind: 'ack', from: 'b' as PeerId, to: 'a' as PeerId, epoch: aEpoch, upTo: 0 },
      // Acks a's stream to c beyond what was sent.
      { kind: 'ack', from: 'c' as PeerId, to: 'a' as PeerId, epoch: aEpoch, upTo: 2 },
      { kind: 'ack', from: 'c' as PeerId, to: 'a' as PeerId, epoch: aEpoch, upTo: 1_000_000 },
      // A hello claiming to have stored far more than was sent.
      { kind: 'hello', from: 'c' as PeerId, to: 'a' as PeerId, epoch: cEpoch, floor: 0, known: aEpoch, upTo: 1_000_000, reply: true },
      // A hello claiming to be b.
      { kind: 'hello', from: 'b' as PeerId, to: 'a' as PeerId, epoch: cEpoch, floor: 0, known: aEpoch, upTo: 1, reply: false },
    ]
    for (const f of forged) c.send('a', encodeFrame(f))
    await elapse([clock], 2_000, 100)

    const refused = a.ilm.refused()
    expect(refused.FORGED ?? 0).toBeGreaterThanOrEqual(3)
    expect(refused.ACK_UNSENT ?? 0).toBeGreaterThanOrEqual(2)
    for (const r of toB) expect(await a.ilm.status(r.id)).toBe('queued')
    for (const r of toC) expect(await a.ilm.status(r.id)).toBe('sent')
    expect(await a.ilm.pending()).toEqual({ outbound: 4, inbound: 0 })
    expect(await a.ilm.connectedPeers()).toEqual(['c'])
    expect(a.got).toEqual([])

    // Only b itself can acknowledge its stream.
    const b = await openPeer(net.connect('b'), { clock, encryption: false })
    for (const r of toB) await a.ilm.delivered(r.id)
    await until(() => b.got.length === 2)
    expect(contentsOf(b.got)).toEqual(['b0', 'b1'])
    expect(await a.ilm.pending()).toEqual({ outbound: 2, inbound: 0 })
    for (const r of toC) expect(await a.ilm.status(r.id)).toBe('sent')
    await a.ilm.close()
    await b.ilm.close()
    c.close()
  })

  it('a wiped sender store (new epoch) still gets its new messages delivered', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    // The wiped store has new keys too: b's app accepts them (these tests are about epochs; the hold: e2e-engine.test.ts).
    const b = await openPeer(net.connect('b'), { clock, encryption: acceptingNewKeys })
    const a1 = await openPeer(net.connect('a'), { clock })
    const old = await Promise.all(range(3).map((i) => a1.ilm.send('b', `old${i}`)))
    for (const r of old) await a1.ilm.delivered(r.id)
    await until(() => b.got.length === 3)
    await a1.ilm.close()

    // The store is wiped (a fresh one, hence a new epoch), a little later.
    await elapse([clock], 10_000, 1000)
    const a2 = await openPeer(net.connect('a'), { clock, store: new MemoryStore() })
    const fresh = []
    for (let i = 0; i < 3; i++) fresh.push(await a2.ilm.send('b', `new${i}`))
    expect(fresh.map((r) => r.seq)).toEqual([0, 1, 2])
    await until(() => b.got.length === 6, { clocks: [clock], stepMs: 500, steps: 100 })
    for (const r of fresh) await a2.ilm.delivered(r.id)
    await elapse([clock], 3_000, 500)
    expect(contentsOf(b.got)).toEqual(['old0', 'old1', 'old2', 'new0', 'new1', 'new2'])
    expect(seqsOf(b.got)).toEqual([0, 1, 2, 0, 1, 2])
    expect(a2.errors).toEqual([])
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('a wiped sender store whose clock now reads earlier than before still gets its new messages delivered', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    // The wiped store has new keys too: b's app accepts them (these tests are about epochs; the hold: e2e-engine.test.ts).
    const b = await openPeer(net.connect('b'), { clock, encryption: acceptingNewKeys })
    // a's device clock was an hour fast when its first store was created, and was corrected since.
    const fast = new ManualClock(clock.now() + 3_600_000)
    const a1 = await openPeer(net.connect('a'), { clock: fast })
    const old = await a1.ilm.send('b', 'old')
    await a1.ilm.delivered(old.id)
    await until(() => b.got.length === 1)
    await a1.ilm.close()

    const a2 = await openPeer(net.connect('a'), { clock, store: new MemoryStore() })
    const fresh = await a2.ilm.send('b', 'new')
    expect(fresh.seq).toBe(0)
    await expectOldThenNew(clock, b, a2, fresh)
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('a wiped sender store recreated within the same millisecond still gets its new messages delivered', async () => {
    // Epochs are `<base-36 ms>.<random suffix>`: within one millisecond the order is the
    // suffixes' order, i.e. a coin flip with nanoid. Fixed ids make the unlucky draw deterministic.
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const ids = (prefix: string) => {
      let n = 0
      return () => `${prefix}${String(n++).padStart(20, '0')}`
    }
    // The wiped store has new keys too: b's app accepts them (these tests are about epochs; the hold: e2e-engine.test.ts).
    const b = await openPeer(net.connect('b'), { clock, encryption: acceptingNewKeys })
    const a1 = await openPeer(net.connect('a'), { clock, newId: ids('z') })
    const old = await a1.ilm.send('b', 'old')
    await a1.ilm.delivered(old.id)
    await a1.ilm.close()

    const a2 = await openPeer(net.connect('a'), { clock, store: new MemoryStore(), newId: ids('A') })
    const fresh = await a2.ilm.send('b', 'new')
    await expectOldThenNew(clock, b, a2, fresh)
    await a2.ilm.close()
    await b.ilm.close()
  })

  it('an expired message becomes expired, delivered() rejects EXPIRED, and the stream continues', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const a = await openPeer(net.connect('a'), { clock })
    const statuses: string[] = []
    a.ilm.on('status', (e) => void statuses.push(`${e.seq}:${e.status}`))
    const doomed = await a.ilm.send('b', 'too late', { ttlMs: 1000 })
    let early: unknown = 'pending'
    a.ilm.delivered(doomed.id).then(
      () => (early = 'resolved'),
      (error: unknown) => (early = error),
    )
    await elapse([clock], 900, 100)
    expect(await a.ilm.status(doomed.id)).toBe('queued')
    await until(async () => (await a.ilm.status(doomed.id)) === 'expired', { clocks: [clock], stepMs: 100, steps: 20 })
    await tick()
    expect(early).toMatchObject({ name: 'IlmError', code: 'EXPIRED' })
    expect(await codeOf(a.ilm.delivered(doomed.id))).toBe('EXPIRED')
    expect(statuses).toContain('0:expired')

    const later = await a.ilm.send('b', 'on time')
    expect(later.seq).toBe(1)
    const b = await openPeer(net.connect('b'), { clock })
    await a.ilm.delivered(later.id)
    await until(() => b.got.length === 1)
    await elapse([clock], 3_000, 500)
    expect(b.got).toEqual([{ id: later.id, from: 'a', to: 'b', seq: 1, epoch: expect.stringMatching(/^[0-9a-z]{9}\./), contents: 'on time' }])
    expect(await a.ilm.status(doomed.id)).toBe('expired')
    expect(await a.ilm.status(later.id)).toBe('delivered')
    await until(async () => (await a.ilm.pending()).outbound === 0)
    await a.ilm.close()
    await b.ilm.close()
  })

  it('a message whose TTL passes while it is in flight is never both handed over and reported expired', async () => {
    const clock = new ManualClock()
    // Every frame takes 200 ms; the message lives 100 ms.
    const net = new MemoryNetwork({ clock, faults: { delayMs: 200 } })
    const a = await openPeer(net.connect('a'), { clock })
    const b = await openPeer(net.connect('b'), { clock })
    await elapse([clock], 1_000, 50) // let the hellos cross
    const r = await a.ilm.send('b', 'short-lived', { ttlMs: 100 })
    let outcome: unknown = 'pending'
    a.ilm.delivered(r.id).then(
      () => (outcome = 'delivered'),
      (error: IlmError) => (outcome = error.code),
    )
    await elapse([clock], 3_000, 50)
    const handedOver = b.got.some((m) => m.id === r.id)
    const status = await a.ilm.status(r.id)
    // Either the receiver got it (then it is delivered) or it did not (then it expired); not both.
    expect({ handedOver, status, outcome }).toEqual(
      handedOver ? { handedOver, status: 'delivered', outcome: 'delivered' } : { handedOver, status: 'expired', outcome: 'EXPIRED' },
    )
    await a.ilm.close()
    await b.ilm.close()
  })

  it('a handler that throws gets the message again later, in order, with a HANDLER_FAILED error', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const a = await openPeer(net.connect('a'), { clock })
    const b = await openPeer(net.connect('b'), { clock, limits: { handlerRetryMs: 1000 } }, false)
    const calls: number[] = []
    const processed: number[] = []
    let active = 0
    let maxActive = 0
    let thrown = 0
    b.ilm.onMessage(async (m) => {
      active++
      maxActive = Math.max(maxActive, active)
      calls.push(m.seq)
      await tick(1)
      active--
      if (m.seq === 0 && thrown++ < 2) throw new Error('handler failed')
      processed.push(m.seq)
    })
    const receipts = await Promise.all(range(3).map((i) => a.ilm.send('b', i)))
    for (const r of receipts) await a.ilm.delivered(r.id)
    await until(() => calls.length >= 1)
    await tick(5)
    expect(calls).toEqual([0]) // nothing overtakes the failed message
    expect(b.errors.map((e) => e.code)).toEqual(['HANDLER_FAILED'])

    await until(() => processed.length === 3, { clocks: [clock], stepMs: 250, steps: 100 })
    await elapse([clock], 5_000, 500)
    expect(calls).toEqual([0, 0, 0, 1, 2])
    expect(processed).toEqual([0, 1, 2])
    expect(maxActive).toBe(1)
    expect(b.errors.map((e) => e.code)).toEqual(['HANDLER_FAILED', 'HANDLER_FAILED'])
    await until(async () => (await b.ilm.pending()).inbound === 0)
    await a.ilm.close()
    await b.ilm.close()
  })

  // Fails against the seed's behaviour: in the seed a send took its id first
  // and stored it after, so concurrent sends could be stored out of order and
  // a later one sent before an earlier one existed. Here seqs are allocated in
  // the serialized group commit (writer.ts). Removing the `await` in
  // Writer#drain (`while (...) await this.#commitBatch(...)`) lets batches
  // overlap as the seed's writes did: a batch is then built on counters the
  // one in flight has not yet committed, seqs repeat, and this test fails.
  it('defect 3: concurrent senders, with commits of uneven latency, get consecutive seqs in the order their sends resolve, and arrive in that order', async () => {
    const random = prng(3)
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new CountingStore(new MemoryStore(), random)
    const a = await openPeer(net.connect('a'), { clock, store: storeA as unknown as MemoryStore })
    const b = await openPeer(net.connect('b'), { clock })
    await until(async () => (await online(a, 'b')) && (await online(b, 'a')))

    // Five callers send concurrently, each at its own uneven pace, none waiting for its sends.
    const resolved: Array<{ seq: number; text: string }> = []
    const failed: unknown[] = []
    const sends: Promise<unknown>[] = []
    await Promise.all(
      range(5).map(async (caller) => {
        for (let i = 0; i < 40; i++) {
          const text = `${caller}.${i}`
          sends.push(
            a.ilm.send('b', text).then(
              ({ seq }) => void resolved.push({ seq, text }),
              (error: unknown) => void failed.push(error),
            ),
          )
          await tick(Math.floor(random() * 3))
        }
      }),
    )
    await Promise.all(sends)
    expect(failed).toEqual([])
    expect(storeA.use.commits).toBeGreaterThan(10) // many batches, overlapping in time with later sends
    // Consecutive seqs, handed out in the order the sends resolved.
    expect(resolved.map((r) => r.seq)).toEqual(range(200))
    await until(() => b.got.length === 200, { clocks: [clock], stepMs: 250, steps: 400 })
    await elapse([clock], 5_000, 500)
    expect(seqsOf(b.got)).toEqual(range(200))
    expect(contentsOf(b.got)).toEqual(resolved.map((r) => r.text))
    // Each caller's own sends in its own order.
    for (const caller of range(5)) {
      expect(contentsOf(b.got).filter((t) => String(t).startsWith(`${caller}.`))).toEqual(range(40).map((i) => `${caller}.${i}`))
    }
    await until(async () => (await a.ilm.pending()).outbound === 0, { clocks: [clock] })
    await a.ilm.close()
    await b.ilm.close()
  })

  // Fails against the seed's behaviour: the seed kept unbounded dedup sets,
  // scanned the whole store every 200 ms and rewrote whole maps per message.
  // Here state is O(peers) counters, acks are cumulative, reads are paged and
  // writes are per row. Checked: in OutboundLink#load, reading the whole
  // outbox (`readOutbox(this.to, this.#settled() + 1, Number.MAX_SAFE_INTEGER)`)
  // instead of one window makes the rows-read bound fail; a 200 ms timer
  // calling `store.count()` added to Engine#start makes the idle bound fail.
  it('defect 4: store work is linear in the messages and paged, and an idle engine does no store work', async () => {
    const N = 3000
    const WINDOW = 64
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new CountingStore(new MemoryStore())
    const storeB = new CountingStore(new MemoryStore())
    const a = await openPeer(net.connect('a'), { clock, store: storeA as unknown as MemoryStore, limits: { window: WINDOW } })
    // A backlog built while b is away, then drained.
    for (let i = 0; i < N; i += 100) await Promise.all(range(100, i).map((k) => a.ilm.send('b', k)))
    const b = await openPeer(net.connect('b'), { clock, store: storeB as unknown as MemoryStore })
    await until(() => b.got.length === N, { clocks: [clock], stepMs: 100, steps: 3000 })
    await until(async () => (await a.ilm.pending()).outbound === 0, { clocks: [clock] })
    expect(seqsOf(b.got)).toEqual(range(N))

    const work = { a: { ...storeA.use }, b: { ...storeB.use } }
    console.log(`defect 4: ${N} messages; sender ${JSON.stringify(work.a)}; receiver ${JSON.stringify(work.b)}`)
    // Reads are pages of at most a window (or the engine's fixed pages), and each row is read about once.
    expect(work.a.largestLimit).toBeLessThanOrEqual(256)
    expect(work.b.largestLimit).toBeLessThanOrEqual(256)
    expect(work.a.rowsRead).toBeLessThanOrEqual(2 * N)
    expect(work.b.rowsRead).toBeLessThanOrEqual(2 * N)
    // Writes are per row: a few ops per message on each side, not a rewrite of everything stored.
    expect(work.a.ops).toBeLessThanOrEqual(3 * N)
    expect(work.b.ops).toBeLessThanOrEqual(4 * N)

    // Idle for an hour: no reads at all, at most the hourly receipt prune, and hardly any timers.
    const fired = await elapse([clock], 3_600_000, 1000)
    expect(storeA.use.reads - work.a.reads).toBe(0)
    expect(storeB.use.reads - work.b.reads).toBe(0)
    expect(storeA.use.commits - work.a.commits).toBeLessThanOrEqual(1)
    expect(storeB.use.commits - work.b.commits).toBeLessThanOrEqual(1)
    expect(fired).toBeLessThanOrEqual(4)
    await a.ilm.close()
    await b.ilm.close()
  })

  // Fails against the seed's behaviour: nothing told the application that a
  // message was delivered. Removing the `emit('status', ... 'delivered')` line
  // in Engine#acked leaves delivered() waiting forever and the event missing.
  it('defect 9: the sender learns of delivery: status() queued -> sent -> delivered, status events, delivered() resolving once the receiver stored it, also after a restart', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork()
    const storeA = new MemoryStore()
    const a = await openPeer(net.connect('a'), { clock, store: storeA })
    const events: string[] = []
    a.ilm.on('status', (e) => void events.push(`${e.id}:${e.status}`))
    const { id } = await a.ilm.send('b', 'tell me')
    let storedWhenResolved: boolean | undefined
    const storeB = new RecordingStore(new MemoryStore())
    const isStoredAtB = (): boolean => storeB.commits.some((ops) => ops.some((op) => op.op === 'putInbox' && op.row.id === id))
    a.ilm.delivered(id).then(
      () => (storedWhenResolved = isStoredAtB()),
      () => (storedWhenResolved = false),
    )
    await elapse([clock], 10_000, 1000)
    expect(await a.ilm.status(id)).toBe('queued')
    expect(storedWhenResolved).toBeUndefined()

    // The receiver appears; no handler: delivered means stored there, not processed.
    const b = await ILM.open({ store: storeB, transport: net.connect('b'), clock })
    await until(() => storedWhenResolved !== undefined, { clocks: [clock], stepMs: 100, steps: 100 })
    expect(storedWhenResolved).toBe(true)
    expect(await a.ilm.status(id)).toBe('delivered')
    expect(events).toEqual([`${id}:queued`, `${id}:sent`, `${id}:delivered`])
    expect(await b.pending()).toEqual({ outbound: 0, inbound: 1 })
    await a.ilm.delivered(id) // at once, now
    expect(await codeOf(a.ilm.delivered('never-sent'))).toBe('UNKNOWN_MESSAGE')

    await a.ilm.close()
    const a2 = await openPeer(net.connect('a'), { clock, store: storeA })
    expect(await a2.ilm.status(id)).toBe('delivered')
    await a2.ilm.delivered(id)
    await a2.ilm.close()
    await b.close()
  })
})
