/**
 * What stays off the critical path (issue 13). The sender's ack commit is
 * deferred: it rides along with the next send's transaction, or commits after
 * `deferCommitMs`, so an awaited `send()` never waits behind it; that is safe
 * only because losing the commit is harmless, so the sender is crashed
 * between an ack and its commit. The receiver hands over the rows it just
 * committed from memory, without a read transaction between store and handler.
 * A sender whose backlog outgrows its row cache reads each row back once.
 */
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_LIMITS,
  encodeFrame,
  MemoryNetwork,
  MemoryStore,
  type Epoch,
  type MessageId,
  type MessageStatus,
  type PeerId,
  type PeerStore,
  type StoreOp,
} from '../../src/index.js'
import { ROW_CACHE_ROWS } from '../../src/core/row-cache.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { codeOf, elapse, online, openPeer, range, rawMsg, tick, until } from '../helpers/engines.js'

/**
 * A MemoryStore that records the ops of every engine commit and counts inbox
 * reads. The cipher's own records (a sender key made once per rotation, a
 * peer's pin) are not the engine's transactions and are left out.
 */
class CountingStore extends MemoryStore {
  readonly commits: StoreOp['op'][][] = []
  inboxReads = 0
  outboxRowsRead = 0

  override async open(localId: PeerId): Promise<PeerStore> {
    const handle = await super.open(localId)
    return new Proxy(handle, {
      get: (target, key, receiver) => {
        if (key === 'readInbox') this.inboxReads++
        if (key === 'readOutbox') {
          return async (...args: Parameters<PeerStore['readOutbox']>) => {
            const rows = await target.readOutbox(...args)
            this.outboxRowsRead += rows.length
            return rows
          }
        }
        if (key === 'commit') {
          return (ops: readonly StoreOp[]) => {
            if (!ops.every((op) => op.op === 'putKey' || op.op === 'deleteKey')) this.commits.push(ops.map((op) => op.op))
            return target.commit(ops)
          }
        }
        const value: unknown = Reflect.get(target, key, receiver)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
  }
}

/** Alice (counting store) and bob, online on one network, each on its own ManualClock. */
async function pair(deferCommitMs = DEFAULT_LIMITS.deferCommitMs) {
  const net = new MemoryNetwork()
  const store = new CountingStore()
  const clock = new ManualClock()
  const alice = await openPeer(net.connect('a'), { store, clock, limits: { deferCommitMs } })
  const bob = await openPeer(net.connect('b'), { clock: new ManualClock() })
  // Connected, and each has learned the other's keys (what their hellos set up is committed).
  await until(async () => ((await alice.ilm.connectedPeers()) as string[]).includes('b') && (await bob.ilm.safetyNumber('a')) !== undefined, {
    clocks: [clock],
  })
  await tick()
  return { net, store, clock, alice, bob }
}

const acksIn = (commits: readonly StoreOp['op'][][]): number => commits.filter((ops) => ops.includes('ack')).length

describe('the critical path: deferred ack commits, hand-over from memory', () => {
  it('awaited sends carry the held acks in their own transactions: one commit per send', async () => {
    const { store, alice, bob } = await pair()
    store.commits.length = 0
    for (const n of range(10)) {
      await alice.ilm.send('b', `m${n}`)
      // Bob stores it and acks; alice's clock stands still, so only the next send commits the ack.
      await until(() => bob.got.length === n + 1)
      await tick()
    }
    expect(store.commits).toHaveLength(10)
    expect(acksIn(store.commits)).toBe(9)
    for (const ops of store.commits.slice(1)) expect(ops).toEqual(expect.arrayContaining(['ack', 'putOutbox']))
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('a held ack commits on its own after deferCommitMs; delivered events and pending() follow it', async () => {
    expect(DEFAULT_LIMITS.deferCommitMs).toBe(50)
    const { clock, alice, bob } = await pair()
    const delivered: string[] = []
    alice.ilm.on('status', (event) => {
      if (event.status === 'delivered') delivered.push(event.id)
    })
    const sent = await Promise.all(range(5).map((n) => alice.ilm.send('b', `m${n}`)))
    await until(() => bob.got.length === 5)
    await tick()
    expect((await alice.ilm.pending()).outbound).toBe(5)
    clock.advance(49)
    await tick()
    expect((await alice.ilm.pending()).outbound).toBe(5)
    expect(delivered).toEqual([])
    clock.advance(1)
    await until(async () => (await alice.ilm.pending()).outbound === 0)
    expect(delivered).toEqual(sent.map((receipt) => receipt.id))
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('steady traffic never commits a held ack or mark alone: the deferCommitMs timer starts when one is held and stops when a batch takes it', async () => {
    const net = new MemoryNetwork()
    const [aliceStore, bobStore] = [new CountingStore(), new CountingStore()]
    const [aliceClock, bobClock] = [new ManualClock(), new ManualClock()]
    const limits = { deferCommitMs: 50 }
    const alice = await openPeer(net.connect('a'), { store: aliceStore, clock: aliceClock, limits })
    const bob = await openPeer(net.connect('b'), { store: bobStore, clock: bobClock, limits })
    await until(async () => ((await alice.ilm.connectedPeers()) as string[]).includes('b'), { clocks: [aliceClock, bobClock] })
    aliceStore.commits.length = 0
    bobStore.commits.length = 0
    const ackAlone = (): number => aliceStore.commits.filter((ops) => ops.includes('ack') && !ops.includes('putOutbox')).length
    const markAlone = (): number => bobStore.commits.filter((ops) => ops.includes('deleteInbox') && !ops.includes('putInbox')).length
    // One message every 20 ms of both clocks for 400 ms: each held ack rides with the next send, each held mark with the next store.
    for (const n of range(20)) {
      await alice.ilm.send('b', `m${n}`)
      await until(() => bob.got.length === n + 1)
      await tick()
      aliceClock.advance(20)
      bobClock.advance(20)
      await tick()
    }
    expect(ackAlone()).toBe(0)
    expect(markAlone()).toBe(0)
    // The last ones are held for deferCommitMs from when they were held, and no longer.
    aliceClock.advance(29)
    bobClock.advance(29)
    await tick()
    expect([ackAlone(), markAlone()]).toEqual([0, 0])
    aliceClock.advance(1)
    bobClock.advance(1)
    await until(() => ackAlone() === 1 && markAlone() === 1)
    expect((await alice.ilm.pending()).outbound).toBe(0)
    expect((await bob.ilm.pending()).inbound).toBe(0)
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('deferCommitMs 0: each ack commits at once, in a transaction of its own', async () => {
    const { store, alice, bob } = await pair(0)
    store.commits.length = 0
    for (const n of range(5)) {
      await alice.ilm.send('b', `m${n}`)
      await until(() => bob.got.length === n + 1)
      await until(async () => (await alice.ilm.pending()).outbound === 0)
    }
    expect(store.commits).toHaveLength(10)
    expect(store.commits.filter((ops) => ops.includes('ack') && !ops.includes('putOutbox'))).toHaveLength(5)
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('close() and shutdown() commit held acks: nothing is left pending, without waiting for the clock', async () => {
    for (const stop of ['close', 'shutdown'] as const) {
      const { store, alice, bob } = await pair(60_000)
      await Promise.all(range(3).map((n) => alice.ilm.send('b', `m${n}`)))
      await until(() => bob.got.length === 3)
      await tick()
      expect(acksIn(store.commits)).toBe(0)
      if (stop === 'close') await alice.ilm.close()
      else await alice.ilm.shutdown({ timeoutMs: 1_000 })
      expect(acksIn(store.commits)).toBe(1)
      await bob.ilm.close()
    }
  })

  it('a send commit whose rows imply the stream record leaves it out; engines opened after a crash go on from the rows', async () => {
    const net = new MemoryNetwork()
    const [aliceStore, bobStore] = [new CountingStore(), new CountingStore()]
    const alice = await openPeer(net.connect('a'), { store: aliceStore })
    const first = await openPeer(net.connect('b'), { store: bobStore }, false)
    await until(async () => (await online(alice, 'b')) && (await online(first, 'a')))
    for (const n of range(6)) {
      expect((await alice.ilm.send('b', `x${n}`)).seq).toBe(n)
      await until(async () => (await first.ilm.pending()).inbound === n + 1 && (await alice.ilm.pending()).outbound === 0)
    }
    // Only the first send commit writes alice's stream record; each ack (ackedUpTo) writes it again.
    const sends = aliceStore.commits.filter((ops) => ops.includes('putOutbox'))
    expect(sends.map((ops) => ops.includes('outStream'))).toEqual([true, false, false, false, false, false])
    expect(aliceStore.commits.filter((ops) => ops.includes('ack')).every((ops) => ops.includes('outStream'))).toBe(true)
    // Both crash (dropped, not closed) before bob's handlers ran; the next engines open their stores.
    const again = await openPeer(net.connect('a'), { store: aliceStore })
    const bob = await openPeer(net.connect('b'), { store: bobStore })
    await until(() => bob.got.length === 6)
    expect((await again.ilm.send('b', 'y')).seq).toBe(6)
    await until(() => bob.got.length === 7)
    expect(bob.got.map((m) => [m.seq, m.contents])).toEqual([...range(6).map((n) => [n, `x${n}`]), [6, 'y']])
    await until(async () => (await again.ilm.pending()).outbound === 0 && (await bob.ilm.pending()).inbound === 0)
    await Promise.all([again.ilm.close(), bob.ilm.close(), alice.ilm.close().catch(() => {}), first.ilm.close().catch(() => {})])
  })

  it('the receiver hands over what it just stored without reading it back; what an earlier engine stored is read', async () => {
    const net = new MemoryNetwork()
    const store = new CountingStore()
    const alice = await openPeer(net.connect('a'))
    const first = await openPeer(net.connect('b'), { store }, false)
    await Promise.all(range(5).map((n) => alice.ilm.send('b', `x${n}`)))
    await until(async () => (await first.ilm.pending()).inbound === 5)
    // Bob's first engine crashes (dropped, not closed) before any handler ran; the next one opens his store.
    const bob = await openPeer(net.connect('b'), { store })
    await until(() => bob.got.length === 5)
    const reads = store.inboxReads
    expect(reads).toBeGreaterThan(0)

    await Promise.all(range(10).map((n) => alice.ilm.send('b', `m${n}`)))
    await until(() => bob.got.length === 15)
    for (const n of range(5)) {
      await alice.ilm.send('b', `n${n}`)
      await until(() => bob.got.length === 16 + n)
    }
    expect(store.inboxReads).toBe(reads)
    expect(bob.got.map((m) => m.contents)).toEqual([...range(5).map((n) => `x${n}`), ...range(10).map((n) => `m${n}`), ...range(5).map((n) => `n${n}`)])
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('the receiver holds a mark of fewer than processBatch for deferCommitMs: a crash then replays those, within the bound; after it, none', async () => {
    for (const crashAfterMs of [0, 50]) {
      const net = new MemoryNetwork()
      const store = new CountingStore()
      const clock = new ManualClock()
      const alice = await openPeer(net.connect('a'))
      const bob = await openPeer(net.connect('b'), { store, clock, limits: { deferCommitMs: 50, processBatch: 32 } })
      await Promise.all(range(5).map((n) => alice.ilm.send('b', `m${n}`)))
      await until(() => bob.got.length === 5)
      await tick()
      const marks = (): number => store.commits.filter((ops) => ops.includes('deleteInbox')).length
      expect(marks()).toBe(0)
      clock.advance(crashAfterMs)
      await tick()
      expect(marks()).toBe(crashAfterMs === 0 ? 0 : 1)
      // The crash: bob's engine is dropped; the next one opens his store.
      const again = await openPeer(net.connect('b'), { store })
      await elapse([], 0)
      await tick(6)
      expect(again.got.map((m) => m.contents)).toEqual(crashAfterMs === 0 ? range(5).map((n) => `m${n}`) : [])
      await Promise.all([alice.ilm.close(), again.ilm.close()])
    }
  })

  it('processBatch still bounds what is handed over unmarked: the mark of a full batch is committed before more are handed over', async () => {
    const net = new MemoryNetwork()
    const store = new CountingStore()
    const alice = await openPeer(net.connect('a'))
    const bob = await openPeer(net.connect('b'), { store, limits: { deferCommitMs: 60_000, processBatch: 4 } }, false)
    await Promise.all(range(10).map((n) => alice.ilm.send('b', `m${n}`)))
    await until(async () => (await bob.ilm.pending()).inbound === 10)
    const unmarkedAtHandOver: number[] = []
    bob.ilm.onMessage(async () => {
      unmarkedAtHandOver.push((await bob.ilm.pending()).inbound)
    })
    await until(() => unmarkedAtHandOver.length === 10)
    await tick()
    // Rows are deleted by the marks: 10 stored, marked 4 at a time, the last 2 deferred.
    expect(unmarkedAtHandOver).toEqual([10, 10, 10, 10, 6, 6, 6, 6, 2, 2])
    expect((await bob.ilm.pending()).inbound).toBe(2)
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('a crash between an ack and its commit: the next engine learns the acks again from bob, and bob hands each message over once', async () => {
    const net = new MemoryNetwork()
    const store = new MemoryStore()
    const clock = new ManualClock()
    const bobClock = new ManualClock()
    const alice = await openPeer(net.connect('a'), { store, clock, limits: { deferCommitMs: 60_000 } })
    const bob = await openPeer(net.connect('b'), { clock: bobClock })
    const sent = await Promise.all(range(10).map((n) => alice.ilm.send('b', `m${n}`)))
    await until(() => bob.got.length === 10, { clocks: [bobClock] })
    await tick()
    // Acked on the wire and in alice's window, not in her store.
    expect((await alice.ilm.pending()).outbound).toBe(10)

    // The crash: alice's engine is dropped, not closed; a new one opens her store (fencing the old handle).
    const again = await openPeer(net.connect('a'), { store, clock: new ManualClock(), limits: { deferCommitMs: 0 } })
    await until(async () => (await again.ilm.pending()).outbound === 0, { clocks: [bobClock] })
    const statuses: MessageStatus[] = await Promise.all(sent.map((receipt) => again.ilm.status(receipt.id)))
    expect(statuses).toEqual(sent.map(() => 'delivered'))
    await elapse([bobClock], 2_000)
    expect(bob.got.map((m) => m.contents)).toEqual(range(10).map((n) => `m${n}`))
    await Promise.all([again.ilm.close(), bob.ilm.close()])
  })

  it('a backlog larger than the row cache is read back from the store once per row, in pages, not a page per row sent', async () => {
    const net = new MemoryNetwork()
    const store = new CountingStore()
    const alice = await openPeer(net.connect('a'), { store })
    const bob = await openPeer(net.connect('b'))
    await until(async () => (await online(alice, 'b')) && (await online(bob, 'a')))
    const total = ROW_CACHE_ROWS + 2_000
    // All queued at once: the sender commits faster than the window lets rows out, so the cache fills.
    await Promise.all(range(total).map((n) => alice.ilm.send('b', n)))
    await until(() => bob.got.length === total, { steps: 3_000 })
    expect(bob.got.map((m) => m.contents)).toEqual(range(total))
    // The first ROW_CACHE_ROWS are held as they commit; each later one is read once (3,872 reads when rows past a
    // row that did not fit were held: every page then read for one row of it).
    expect(store.outboxRowsRead).toBeLessThanOrEqual(total - ROW_CACHE_ROWS)
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('frames taken into a batch the store refuses for a send id are stored when it is built again, not left to a resend', async () => {
    const net = new MemoryNetwork()
    const store = new GatedStore()
    const alice = await openPeer(net.connect('a'), { encryption: false })
    const bob = await openPeer(net.connect('b'), { store, encryption: false })
    await until(async () => (await online(alice, 'b')) && (await online(bob, 'a')))
    await bob.ilm.send('c', 'kept for carol', { id: 'dup' })
    // Bob's next transaction waits: what arrives meanwhile shares the batch after it.
    let open!: () => void
    store.gate = new Promise<void>((resolve) => (open = resolve))
    const first = bob.ilm.send('c', 'y')
    await tick()
    const before = net.stats.delivered
    await Promise.all(range(3).map((n) => alice.ilm.send('b', `m${n}`)))
    await until(() => net.stats.delivered >= before + 3)
    await tick()
    const taken = bob.ilm.send('d', 'z', { id: 'dup' })
    open()
    await first
    expect(await codeOf(taken)).toBe('DUPLICATE_ID')
    // Neither clock moves: no resend comes, so the three are stored from the batch built again.
    await until(() => bob.got.length === 3)
    expect(bob.got.map((m) => m.contents)).toEqual(['m0', 'm1', 'm2'])
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('frames that arrive in one batch after a hello are taken after it: a claimed older epoch is followed before its frames', async () => {
    const net = new MemoryNetwork()
    const store = new GatedStore()
    const bob = await openPeer(net.connect('b'), { store, encryption: false })
    // Alice's side, frame by frame: her live epoch is the older one, which she claims (a store wiped while her clock read earlier).
    const alice = net.connect('a')
    alice.open({ frame() {}, peer() {}, closed() {} })
    const older = '000000001.aliceLive' as Epoch
    const newer = '000000002.aliceStale' as Epoch
    await until(async () => online(bob, 'a'))
    let open!: () => void
    store.gate = new Promise<void>((resolve) => (open = resolve))
    // Bob's writer is busy: the three frames below queue behind this commit, in arrival order.
    const busy = bob.ilm.send('c', 'busy')
    await tick()
    const before = net.stats.delivered
    alice.send('b', rawMsg(newer, 0, 'from the stale epoch'))
    alice.send(
      'b',
      encodeFrame({ kind: 'hello', from: 'a' as PeerId, to: 'b' as PeerId, epoch: older, floor: 0, known: null, upTo: -1, reply: false, claim: true }),
    )
    alice.send('b', rawMsg(older, 0, 'from the claimed epoch', { id: 'm0live' as MessageId }))
    await until(() => net.stats.delivered >= before + 3)
    open()
    await busy
    // Taken before the claim, the last frame would be refused as older than the stale epoch, and nobody resends it here.
    await until(() => bob.got.length === 2)
    expect(bob.got.map((m) => m.contents)).toEqual(['from the stale epoch', 'from the claimed epoch'])
    await bob.ilm.close()
    alice.close()
  })

  it('a frame that arrives after a mark was queued is taken after it: the room the mark makes in a full inbox is used at once', async () => {
    const net = new MemoryNetwork()
    const store = new GatedStore()
    const bob = await openPeer(net.connect('b'), { store, encryption: false, limits: { maxInboxPerPeer: 2, processBatch: 1 } }, false)
    const got: unknown[] = []
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    bob.ilm.onMessage(async (m) => {
      got.push(m.contents)
      if (m.contents === 'm0') await held
    })
    const alice = net.connect('a')
    alice.open({ frame() {}, peer() {}, closed() {} })
    const epoch = '000000001.aliceOnly' as Epoch
    await until(async () => online(bob, 'a'))
    alice.send('b', rawMsg(epoch, 0, 'm0'))
    alice.send('b', rawMsg(epoch, 1, 'm1'))
    // Both stored (the inbox is full) and m0 is with the handler, which holds it.
    await until(() => got.length === 1)
    await until(async () => (await bob.ilm.pending()).inbound === 2)
    let open!: () => void
    store.gate = new Promise<void>((resolve) => (open = resolve))
    const busy = bob.ilm.send('c', 'busy')
    await tick()
    // A resent m0 opens a receive batch behind the busy commit; then m0's handler returns and its mark is queued.
    alice.send('b', rawMsg(epoch, 0, 'm0'))
    await tick()
    release()
    await tick()
    alice.send('b', rawMsg(epoch, 2, 'm2'))
    await tick()
    open()
    await busy
    // Taken before the mark, m2 would find the inbox full and wait for a resend that does not come here.
    await until(() => got.length === 3)
    expect(got).toEqual(['m0', 'm1', 'm2'])
    await bob.ilm.close()
    alice.close()
  })
})

/** A MemoryStore whose commits wait for `gate` while it is set. */
class GatedStore extends MemoryStore {
  gate: Promise<void> | undefined

  override async open(localId: PeerId): Promise<PeerStore> {
    const handle = await super.open(localId)
    return new Proxy(handle, {
      get: (target, key, receiver) => {
        if (key === 'commit') {
          return async (ops: readonly StoreOp[]) => {
            await this.gate
            return target.commit(ops)
          }
        }
        const value: unknown = Reflect.get(target, key, receiver)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
  }
}
