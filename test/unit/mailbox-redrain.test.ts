/**
 * The receiver's side of `redrain` (`Transport.redrain`): what the relay's
 * mailbox sent and the receiver could not keep (its inbox full, or past its
 * window) only the mailbox has, since the sender never sends a stored seq
 * again; once there is room the receiver asks for it, a window at a time. A
 * scripted relay transport stands in for the relay (it answers from a list of
 * stored frames as the relay's drain queue does), on a manual clock. The same
 * through a real relay process: mailbox-relay.test.ts (a backlog at login).
 */
import { describe, expect, it } from 'vitest'
import { ILM, MemoryStore, type Message, type Transport, type TransportEvents, type TransportOpenOptions } from '../../src/index.js'
import { makeEpoch, type PeerId } from '../../src/core/ids.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { elapse, rawMsg, tick, until } from '../helpers/engines.js'

const EPOCH = makeEpoch(ManualClock.DEFAULT_START - 60_000, 'senderA')

interface Ask {
  readonly from: string
  readonly epoch: string
  readonly after: number
  readonly limit: number
}

/** Bob's relay: a mailbox holding `stored` frames from 'a' (seq -> bytes) that sends what it is asked for. */
class ScriptedMailbox implements Transport {
  readonly localId = 'b'
  readonly asked: Ask[] = []
  readonly stored = new Map<number, Uint8Array>()
  events: TransportEvents | undefined
  options: TransportOpenOptions | undefined

  open(events: TransportEvents, options?: TransportOpenOptions): void {
    this.events = events
    this.options = options
  }

  send(): void {}

  redrain(from: PeerId, epoch: string, after: number, limit: number): void {
    this.asked.push({ from, epoch, after, limit })
  }

  close(): void {
    this.events = undefined
  }

  /** The login's drain: every stored frame, in one turn. */
  drain(): void {
    for (const data of this.stored.values()) this.events?.frame('a' as PeerId, data, true)
  }

  /** Answers the last ask as the relay does: up to `limit` frames past `after`, then whether it stopped at the limit. */
  answer(): void {
    const ask = this.asked.at(-1)
    if (ask === undefined) throw new Error('nothing asked')
    const seqs = [...this.stored.keys()].filter((seq) => seq > ask.after).slice(0, ask.limit)
    for (const seq of seqs) this.events?.frame('a' as PeerId, this.stored.get(seq)!, true)
    this.events?.redrained?.('a' as PeerId, seqs.length === ask.limit)
  }
}

async function receiver(
  limits: Record<string, number>,
  encryption?: true,
): Promise<{ ilm: ILM; relay: ScriptedMailbox; clock: ManualClock; got: Message[]; subscribe: () => void }> {
  const clock = new ManualClock()
  const relay = new ScriptedMailbox()
  const ilm = await ILM.open({
    store: new MemoryStore(),
    transport: relay,
    clock,
    limits: { deferCommitMs: 0, ...limits },
    ...(encryption === undefined && { encryption: false }),
  })
  relay.events?.mailbox?.(true)
  const got: Message[] = []
  return { ilm, relay, clock, got, subscribe: () => void ilm.onMessage((m) => void got.push(m)) }
}

const fill = (relay: ScriptedMailbox, n: number): void => {
  for (let seq = 0; seq < n; seq++) relay.stored.set(seq, rawMsg(EPOCH, seq, `m${seq}`))
}

/** Answers each ask in turn, as the relay does, until all 30 stored frames were handed over (or 10 rounds). */
async function answerUntilAll(relay: ScriptedMailbox, clock: ManualClock, got: readonly Message[]): Promise<void> {
  for (let round = 0; round < 10 && got.length < 30; round++) {
    const asks = relay.asked.length
    relay.answer()
    await until(() => relay.asked.length > asks || got.length === 30, { clocks: [clock] })
  }
}

describe('redrain: the receiver asks the mailbox again for what it could not keep', () => {
  it('once its application makes room, a window at a time from the last message stored, until the mailbox says there is no more', async () => {
    const { ilm, relay, clock, got, subscribe } = await receiver({ maxInboxPerPeer: 10, window: 4 })
    fill(relay, 30)
    relay.drain()
    await elapse([clock], 500)
    // 10 stored, 4 kept for later, 16 dropped: nothing is asked while the inbox is full.
    expect(relay.asked).toEqual([])
    subscribe()
    await until(() => relay.asked.length === 1, { clocks: [clock] })
    expect(relay.asked[0]).toEqual({ from: 'a', epoch: EPOCH, after: 13, limit: 4 })
    await answerUntilAll(relay, clock, got)
    expect(got.map((m) => m.contents)).toEqual(Array.from({ length: 30 }, (_, seq) => `m${seq}`))
    expect(relay.asked.map((a) => a.after)).toEqual([13, 17, 21, 25, 29])
    // The last answer filled its limit (26..29): one more ask, answered "no more", and then none.
    relay.answer()
    await elapse([clock], 2_000)
    expect(relay.asked).toHaveLength(5)
    expect(got).toHaveLength(30)
    await ilm.close()
  })

  it('asks again only from further on: an answer that brought nothing new (what does not open would come again and again) is not asked for twice', async () => {
    const { ilm, relay, clock, subscribe } = await receiver({ maxInboxPerPeer: 10, window: 4 })
    fill(relay, 30)
    relay.drain()
    await elapse([clock], 500)
    subscribe()
    await until(() => relay.asked.length === 1, { clocks: [clock] })
    relay.events?.redrained?.('a' as PeerId, true)
    await elapse([clock], 2_000)
    expect(relay.asked).toHaveLength(1)
    await ilm.close()
  })

  it('does not wait for the answer to an ask made on a connection that ended: the next login drains everything, and asks follow from there', async () => {
    const { ilm, relay, clock, got, subscribe } = await receiver({ maxInboxPerPeer: 10, window: 4 })
    fill(relay, 30)
    relay.drain()
    await elapse([clock], 500)
    subscribe()
    await until(() => relay.asked.length === 1, { clocks: [clock] })
    // The connection ends before the answer; a new login drains the mailbox again (the receiver has 14 of it).
    relay.events?.mailbox?.(false)
    relay.events?.mailbox?.(true)
    relay.drain()
    await until(() => relay.asked.length === 2, { clocks: [clock] })
    expect(relay.asked[1]?.after).toBeGreaterThan(13)
    await answerUntilAll(relay, clock, got)
    expect(got.map((m) => m.contents)).toEqual(Array.from({ length: 30 }, (_, seq) => `m${seq}`))
    await ilm.close()
  })

  it('tells the transport at open how many of a sender it keeps as they come: its window while it decrypts, else its inbox', async () => {
    const plain = await receiver({ maxInboxPerPeer: 10, window: 4 })
    expect(plain.relay.options).toEqual({ perSender: 10 })
    await plain.ilm.close()
    const sealed = await receiver({ maxInboxPerPeer: 10, window: 4 }, true)
    expect(sealed.relay.options).toEqual({ perSender: 4 })
    await sealed.ilm.close()
    const small = await receiver({ maxInboxPerPeer: 3, window: 4 }, true)
    expect(small.relay.options).toEqual({ perSender: 3 })
    await small.ilm.close()
  })

  it('a sender the login stopped at that number (unasked `redrained`, more) is asked for on from there, even when the answer comes before its frames are taken', async () => {
    const { ilm, relay, clock, got, subscribe } = await receiver({ maxInboxPerPeer: 10, window: 4 })
    subscribe()
    fill(relay, 30)
    // As a relay whose answer overtakes frames still being opened (no link for the sender yet): the answer, then 10.
    relay.events?.redrained?.('a' as PeerId, true)
    for (let seq = 0; seq < 10; seq++) relay.events?.frame('a' as PeerId, relay.stored.get(seq)!, true)
    await until(() => relay.asked.length === 1, { clocks: [clock] })
    expect(relay.asked[0]).toEqual({ from: 'a', epoch: EPOCH, after: 9, limit: 4 })
    await answerUntilAll(relay, clock, got)
    expect(got.map((m) => m.contents)).toEqual(Array.from({ length: 30 }, (_, seq) => `m${seq}`))
    await ilm.close()
  })

  it('asks nothing of a relay without a mailbox, nor when everything was kept', async () => {
    const clock = new ManualClock()
    const relay = new ScriptedMailbox()
    const ilm = await ILM.open({
      store: new MemoryStore(),
      transport: relay,
      clock,
      limits: { deferCommitMs: 0, maxInboxPerPeer: 10, window: 4 },
      encryption: false,
    })
    fill(relay, 30)
    relay.drain()
    await elapse([clock], 500)
    const got: Message[] = []
    ilm.onMessage((m) => void got.push(m))
    await elapse([clock], 2_000)
    expect(relay.asked).toEqual([])
    expect(got).toHaveLength(14)
    await ilm.close()

    const kept = await receiver({ maxInboxPerPeer: 100, window: 64 })
    fill(kept.relay, 30)
    kept.relay.drain()
    kept.subscribe()
    await until(() => kept.got.length === 30, { clocks: [kept.clock] })
    await elapse([kept.clock], 1_000)
    expect(kept.relay.asked).toEqual([])
    await kept.ilm.close()
    await tick()
  })
})
