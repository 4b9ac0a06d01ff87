/**
 * The engine's side of store and forward, with a scripted relay transport,
 * the memory store and a manual clock: `stored` and `failed` receipts and
 * what they change (status, retransmission, the window, skips).
 */
import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, ILM, MemoryStore, type Frame, type MsgFrame, type PeerStore, type StatusEvent, type StoreOp } from '../../src/index.js'
import type { Epoch, PeerId } from '../../src/core/ids.js'
import type { RelayReceipt, Transport, TransportEvents } from '../../src/core/transport.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { elapse, tick, until } from '../helpers/engines.js'

/** A relay transport the test drives: it records what the engine sends and reports what the test says. */
class ScriptedRelay implements Transport {
  readonly localId = 'alice'
  readonly sent: Frame[] = []
  events!: TransportEvents

  open(events: TransportEvents): void {
    this.events = events
  }

  send(_to: PeerId, data: Uint8Array): void {
    const decoded = decodeFrame(data, 1 << 24)
    if (decoded.ok) this.sent.push(decoded.frame)
  }

  close(): void {}

  msgs(): MsgFrame[] {
    return this.sent.filter((f): f is MsgFrame => f.kind === 'msg')
  }

  receipt(receipt: RelayReceipt): void {
    this.events.receipt!(receipt)
  }
}

/** A MemoryStore that records which ops each commit held. */
class RecordingStore extends MemoryStore {
  readonly commits: StoreOp['op'][][] = []

  override async open(localId: PeerId): Promise<PeerStore> {
    const handle = await super.open(localId)
    const commit = handle.commit.bind(handle)
    handle.commit = (ops) => {
      this.commits.push(ops.map((op) => op.op))
      return commit(ops)
    }
    return handle
  }
}

async function open(
  limits: Record<string, number> = {},
  store: MemoryStore = new MemoryStore(),
): Promise<{ ilm: ILM; relay: ScriptedRelay; clock: ManualClock; statuses: StatusEvent[] }> {
  const clock = new ManualClock()
  const relay = new ScriptedRelay()
  // The relay here is scripted with frames in clear; end-to-end encryption through a real mailbox: mailbox-relay.test.ts.
  const ilm = await ILM.open({
    store,
    transport: relay,
    clock,
    limits: { retransmitMs: 100, maxRetransmitMs: 100, deferCommitMs: 0, ...limits },
    encryption: false,
  })
  const statuses: StatusEvent[] = []
  ilm.on('status', (s) => void statuses.push(s))
  return { ilm, relay, clock, statuses }
}

const BOB = 'bob' as PeerId
const of = (statuses: StatusEvent[], status: StatusEvent['status']): number[] => statuses.filter((s) => s.status === status).map((s) => s.seq)

describe('engine: relay mailbox receipts', () => {
  it('sends to an offline peer only while the relay has a mailbox; stored stops retransmission; the ack still brings delivered', async () => {
    const { ilm, relay, clock, statuses } = await open()
    const { id } = await ilm.send(BOB, 'hi')
    await elapse([clock], 500)
    expect(relay.sent).toEqual([]) // offline, no mailbox: it waits here

    relay.events.mailbox!(true)
    await until(() => relay.msgs().length === 1)
    expect(relay.sent.map((f) => f.kind)).toEqual(['msg']) // no hello: nobody would answer
    const epoch = relay.msgs()[0]!.epoch
    await elapse([clock], 150)
    expect(relay.msgs().length).toBeGreaterThan(1) // not stored yet: retransmitted

    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 0 })
    await until(() => of(statuses, 'stored').length === 1)
    expect(await ilm.status(id)).toBe('stored')
    const before = relay.msgs().length
    await elapse([clock], 1000)
    expect(relay.msgs()).toHaveLength(before)
    expect(await ilm.pending()).toEqual({ outbound: 1, inbound: 0 }) // the record stays for delivered

    const delivered = ilm.delivered(id)
    relay.events.frame(BOB, encodeFrame({ kind: 'ack', from: BOB, to: 'alice' as PeerId, epoch, upTo: 0 }))
    await delivered
    expect(await ilm.status(id)).toBe('delivered')
    expect(statuses.map((s) => s.status)).toEqual(['queued', 'sent', 'stored', 'delivered'])
    await ilm.close()
  })

  it('a backlog to an offline peer goes out as fast as the relay stores it: each stored receipt slides the window at once, not at the retransmission timer nor when its record commits', async () => {
    // The clock does not move: neither the retransmission timer nor the deferred commit of the receipts' records fires.
    const { ilm, relay, clock, statuses } = await open({ window: 4, retransmitMs: 60_000, maxRetransmitMs: 60_000, deferCommitMs: 60_000 })
    relay.events.mailbox!(true)
    await Promise.all(Array.from({ length: 20 }, (_, i) => ilm.send(BOB, `b${i}`)))
    await until(() => relay.msgs().length === 4)
    const epoch = relay.msgs()[0]!.epoch
    for (let seq = 0; seq < 20; seq++) {
      await until(() => relay.msgs().some((f) => f.seq === seq))
      relay.receipt({ status: 'stored', peer: BOB, epoch, seq })
    }
    expect(relay.msgs().map((f) => f.seq)).toEqual(Array.from({ length: 20 }, (_, seq) => seq))
    expect(of(statuses, 'stored')).toEqual([])
    // The records commit as before, deferCommitMs later: the statuses follow.
    await until(() => of(statuses, 'stored').length === 20, { clocks: [clock], stepMs: 60_000, steps: 20 })
    await ilm.close()
  })

  it('receipts out of order, then again (as after a retransmission), all before their records commit: every record commits and the link waits for nothing', async () => {
    // Found through a stalled Redis: receipts 1..9, then 0, then 1..9 again, within one deferCommitMs.
    const { ilm, relay, clock, statuses } = await open({ window: 16, retransmitMs: 60_000, maxRetransmitMs: 60_000, deferCommitMs: 60_000 })
    relay.events.mailbox!(true)
    await Promise.all(Array.from({ length: 10 }, (_, i) => ilm.send(BOB, `b${i}`)))
    await until(() => relay.msgs().length === 10)
    const epoch = relay.msgs()[0]!.epoch
    const stored = (seq: number): void => relay.receipt({ status: 'stored', peer: BOB, epoch, seq })
    for (let seq = 1; seq < 10; seq++) stored(seq)
    stored(0)
    for (let seq = 1; seq < 10; seq++) stored(seq)
    await tick()
    await until(() => of(statuses, 'stored').length === 10, { clocks: [clock], stepMs: 60_000, steps: 3 })
    // Nothing went to the relay again: the link was settled, and its records agree.
    expect(relay.msgs()).toHaveLength(10)
    await ilm.send(BOB, 'b10')
    await until(() => relay.msgs().length === 11)
    expect(relay.msgs()[10]!.seq).toBe(10)
    await ilm.close()
  })

  it("a stored receipt's record rides with the next send's transaction or commits after deferCommitMs; lost in a crash, the row goes to the relay again", async () => {
    const store = new RecordingStore()
    const { ilm, relay, clock, statuses } = await open({ deferCommitMs: 50 }, store)
    relay.events.mailbox!(true)
    await ilm.send(BOB, 'a')
    await until(() => relay.msgs().length === 1)
    const epoch = relay.msgs()[0]!.epoch
    const commits = store.commits.length
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 0 })
    await tick(5)
    expect([store.commits.length, of(statuses, 'stored')]).toEqual([commits, []])
    await ilm.send(BOB, 'b')
    await until(() => of(statuses, 'stored').length === 1)
    expect(store.commits.slice(commits)).toEqual([['release', 'putOutbox', 'outStream']])

    await until(() => relay.msgs().some((f) => f.seq === 1))
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 1 })
    await tick(5)
    clock.advance(49)
    await tick(5)
    expect(of(statuses, 'stored')).toEqual([0])
    clock.advance(1)
    await until(() => of(statuses, 'stored').length === 2)
    expect(store.commits.at(-1)).toEqual(['release', 'outStream'])

    // seq 2 is stored by the relay, and the engine crashes (dropped, not closed) before that receipt commits.
    await ilm.send(BOB, 'c')
    await until(() => relay.msgs().some((f) => f.seq === 2))
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 2 })
    await tick(5)
    const next = await open({ deferCommitMs: 50 }, store)
    next.relay.events.mailbox!(true)
    await until(() => next.relay.msgs().length > 0)
    expect(new Set(next.relay.msgs().map((f) => f.seq))).toEqual(new Set([2]))
    next.relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 2 })
    await until(() => of(next.statuses, 'stored').length === 1, { clocks: [next.clock] })
    expect(of(next.statuses, 'stored')).toEqual([2])
    await next.ilm.close()
  })

  it('a receipt waited for by flushed() commits at once, without waiting deferCommitMs', async () => {
    const { ilm, relay, statuses } = await open({ deferCommitMs: 60_000 })
    relay.events.mailbox!(true)
    await ilm.send(BOB, 'a')
    await until(() => relay.msgs().length === 1)
    let flushed = false
    void ilm.flushed().then(() => (flushed = true))
    relay.receipt({ status: 'stored', peer: BOB, epoch: relay.msgs()[0]!.epoch, seq: 0 })
    await until(() => flushed)
    expect(of(statuses, 'stored')).toEqual([0])
    await ilm.close()
  })

  it('the window slides over stored seqs; a receipt out of order counts only once the gap is stored', async () => {
    const { ilm, relay, clock, statuses } = await open({ window: 2 })
    relay.events.mailbox!(true)
    for (let i = 0; i < 5; i++) await ilm.send(BOB, i)
    await until(() => relay.msgs().length >= 2)
    await tick()
    expect(new Set(relay.msgs().map((f) => f.seq))).toEqual(new Set([0, 1]))
    const epoch = relay.msgs()[0]!.epoch
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 1 })
    await tick(5)
    expect(of(statuses, 'stored')).toEqual([])
    for (let seq = 0; seq < 5; seq++) {
      await until(() => relay.msgs().some((f) => f.seq === seq), { clocks: [clock], stepMs: 10 })
      relay.receipt({ status: 'stored', peer: BOB, epoch, seq })
      await until(() => of(statuses, 'stored').length === seq + 1, { clocks: [clock], stepMs: 10 })
    }
    expect(of(statuses, 'stored')).toEqual([0, 1, 2, 3, 4])
    expect(new Set(relay.msgs().map((f) => f.seq))).toEqual(new Set([0, 1, 2, 3, 4]))
    await ilm.close()
  })

  it('failed: the status carries the reason, delivered() rejects, and the seq goes out as a skip unless the relay holds one', async () => {
    const { ilm, relay, clock, statuses } = await open()
    relay.events.mailbox!(true)
    const first = await ilm.send(BOB, 'one')
    const second = await ilm.send(BOB, 'two')
    await until(() => relay.msgs().length >= 2)
    const epoch = relay.msgs()[0]!.epoch
    relay.receipt({ status: 'failed', peer: BOB, epoch, seq: 0, reason: 'full_bytes', held: false })
    relay.receipt({ status: 'failed', peer: BOB, epoch, seq: 1, reason: 'full_messages', held: true })
    await until(() => of(statuses, 'failed').length === 2)
    expect(statuses.filter((s) => s.status === 'failed').map((s) => s.reason)).toEqual(['full_bytes', 'full_messages'])
    expect(await ilm.status(first.id)).toBe('failed')
    await expect(ilm.delivered(second.id)).rejects.toMatchObject({ code: 'MESSAGE_FAILED' })

    relay.sent.length = 0
    await elapse([clock], 300)
    const resent = relay.msgs()
    // Seq 1's held receipt came before seq 0 was settled, so it is not counted yet: both go out, as skips.
    expect(new Set(resent.map((f) => f.seq))).toEqual(new Set([0, 1]))
    expect(resent.every((f) => f.skip === true && f.contents.byteLength === 0)).toBe(true)
    // As the relay answers them: the skip of 0 is now held, and 1 was already.
    relay.receipt({ status: 'failed', peer: BOB, epoch, seq: 0, reason: 'full_bytes', held: true })
    relay.receipt({ status: 'failed', peer: BOB, epoch, seq: 1, reason: 'full_messages', held: true })
    await tick(5)
    relay.sent.length = 0
    await elapse([clock], 500)
    expect(relay.msgs()).toEqual([]) // both held by the relay now
    expect(of(statuses, 'failed')).toEqual([0, 1]) // reported once each
    relay.events.frame(BOB, encodeFrame({ kind: 'ack', from: BOB, to: 'alice' as PeerId, epoch, upTo: 1 }))
    await until(async () => (await ilm.pending()).outbound === 0)
    expect(await ilm.status(first.id)).toBe('failed')
    await ilm.close()
  })

  it('an offline peer reported offline again (the relay can store again): what its mailbox lacks goes at once, not at the backed-off timer', async () => {
    const { ilm, relay, clock } = await open({ retransmitMs: 10_000, maxRetransmitMs: 10_000 })
    relay.events.mailbox!(true)
    for (let n = 0; n < 3; n++) await ilm.send(BOB, n)
    await until(() => relay.msgs().length === 3)
    const epoch = relay.msgs()[0]!.epoch
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 0 })
    await elapse([clock], 100)
    relay.sent.length = 0
    relay.events.peer(BOB, false)
    await until(() => relay.msgs().length === 2)
    expect(relay.msgs().map((f) => f.seq)).toEqual([1, 2])
    // A peer it never took for online and that was never sent to changes nothing.
    relay.events.peer('carol' as PeerId, false)
    await elapse([clock], 100)
    expect(relay.msgs().map((f) => f.seq)).toEqual([1, 2])
    await ilm.close()
  })

  it('refuses receipts for another epoch or for seqs never sent, changing nothing', async () => {
    const { ilm, relay, statuses } = await open()
    relay.events.mailbox!(true)
    const { id } = await ilm.send(BOB, 'x')
    await until(() => relay.msgs().length >= 1)
    const epoch = relay.msgs()[0]!.epoch
    relay.receipt({ status: 'stored', peer: BOB, epoch: '0000000000001-forged', seq: 0 })
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 7 })
    relay.receipt({ status: 'failed', peer: 'carol' as PeerId, epoch, seq: 0, reason: 'retention', held: true })
    await tick(5)
    expect(ilm.refused()).toEqual({ STALE_RECEIPT: 1, RECEIPT_UNSENT: 2 })
    expect(await ilm.status(id)).toBe('sent')
    expect(of(statuses, 'stored')).toEqual([])
    await ilm.close()
  })

  it('a stored seq is not sent again when the peer comes online: the live session starts after it', async () => {
    const { ilm, relay, clock } = await open()
    relay.events.mailbox!(true)
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push((await ilm.send(BOB, i)).id)
    await until(() => relay.msgs().length >= 3)
    const epoch = relay.msgs()[0]!.epoch
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 0 })
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 1 })
    await until(async () => (await ilm.status(ids[1]!)) === 'stored')
    relay.sent.length = 0
    relay.events.peer(BOB, true)
    await until(() => relay.sent.some((f) => f.kind === 'hello'))
    relay.events.frame(
      BOB,
      encodeFrame({ kind: 'hello', from: BOB, to: 'alice' as PeerId, epoch: '0000000000002-bob' as Epoch, floor: 0, known: null, upTo: -1, reply: true }),
    )
    await until(() => relay.msgs().length >= 1, { clocks: [clock], stepMs: 10 })
    expect(relay.msgs()[0]!.seq).toBe(2)
    expect(relay.msgs().filter((f) => f.seq < 2)).toEqual([])
    await ilm.close()
  })

  it('flushed() resolves once every stream is stored or acked, at once when nothing waits, and rejects CLOSED on close', async () => {
    const { ilm, relay, clock } = await open()
    await ilm.flushed() // nothing queued
    for (let i = 0; i < 3; i++) await ilm.send(BOB, i)
    let flushed = false
    const done = ilm.flushed().then(() => (flushed = true))
    relay.events.mailbox!(true)
    await until(() => relay.msgs().length >= 3, { clocks: [clock], stepMs: 10 })
    const epoch = relay.msgs()[0]!.epoch
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 0 })
    relay.receipt({ status: 'stored', peer: BOB, epoch, seq: 1 })
    await elapse([clock], 50)
    expect(flushed).toBe(false) // seq 2 is neither stored nor acked
    relay.events.frame(BOB, encodeFrame({ kind: 'ack', from: BOB, to: 'alice' as PeerId, epoch, upTo: 2 }))
    await done
    await ilm.send(BOB, 'late')
    const waiting = ilm.flushed()
    await ilm.close()
    await expect(waiting).rejects.toMatchObject({ code: 'CLOSED' })
    await expect(ilm.flushed()).rejects.toMatchObject({ code: 'CLOSED' })
  })
})
