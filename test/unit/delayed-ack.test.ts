/**
 * The receiver's delayed ack (`ackDelayMs`, issue 13): one ack covers what it
 * stored within the delay, so fewer frames cross the relay and the sender
 * commits fewer ack records. It acks at once once a sixteenth of its window
 * waits, for a duplicate (the sender is resending), and when it closes. Only
 * the sender's `delivered` waits; messages are handed over as before.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_LIMITS, ILM, MemoryNetwork, MemoryStore, type MemoryTransport, type Limits, type PeerId } from '../../src/index.js'
import { peekKind } from '../../src/core/codec.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { contentsOf, elapse, online, openPeer, range, tick, until } from '../helpers/engines.js'

/** The transport, recording the kind of every frame it sends. */
function recording(transport: MemoryTransport): { transport: MemoryTransport; kinds: string[] } {
  const kinds: string[] = []
  const send = transport.send.bind(transport)
  transport.send = (to: PeerId, data: Uint8Array) => {
    kinds.push(peekKind(data) ?? '?')
    send(to, data)
  }
  return { transport, kinds }
}

/** Alice sends, bob (recording what he sends) receives; each on its own ManualClock. */
async function pair(bobLimits: Partial<Limits>) {
  const net = new MemoryNetwork()
  const [aliceClock, bobClock] = [new ManualClock(), new ManualClock()]
  const alice = await openPeer(net.connect('a'), { clock: aliceClock })
  const bobWire = recording(net.connect('b'))
  const bob = await openPeer(bobWire.transport, { clock: bobClock, limits: bobLimits })
  await until(async () => (await online(alice, 'b')) && (await online(bob, 'a')), { clocks: [aliceClock, bobClock] })
  await tick()
  const acks = (): number => bobWire.kinds.filter((kind) => kind === 'ack').length
  return { net, alice, bob, aliceClock, bobClock, acks }
}

describe('the receiver delays its ack by ackDelayMs', () => {
  it('defaults to 20 ms, within 0..10,000', async () => {
    expect(DEFAULT_LIMITS.ackDelayMs).toBe(20)
    const open = (ackDelayMs: number): Promise<ILM> =>
      ILM.open({ store: new MemoryStore(), transport: new MemoryNetwork().connect('x'), clock: new ManualClock(), encryption: false, limits: { ackDelayMs } })
    for (const ackDelayMs of [-1, 10_001]) await expect(open(ackDelayMs)).rejects.toThrow(RangeError)
    await expect(open(1.5)).rejects.toThrow(TypeError)
  })

  it('one ack covers what was stored within the delay, sent when the delay ends, and not before', async () => {
    const { alice, bob, bobClock, acks } = await pair({ ackDelayMs: 20 })
    const before = acks()
    const sends = range(3).map((i) => alice.ilm.send('b', `m${i}`))
    await Promise.all(sends)
    await until(() => bob.got.length === 3)
    // Handed over at once; the ack waits for bob's clock.
    expect(contentsOf(bob.got)).toEqual(['m0', 'm1', 'm2'])
    await tick(6)
    expect(acks()).toBe(before)
    expect(await alice.ilm.status((await sends[2]!).id)).toBe('sent')
    bobClock.advance(19)
    await tick(6)
    expect(acks()).toBe(before)
    bobClock.advance(1)
    await until(async () => (await alice.ilm.status((await sends[2]!).id)) === 'delivered')
    expect(acks()).toBe(before + 1)
  })

  it('acks at once once a sixteenth of its window waits', async () => {
    const { alice, bob, acks } = await pair({ ackDelayMs: 10_000, window: 64 })
    const before = acks()
    const last = range(4).map((i) => alice.ilm.send('b', `m${i}`))
    await Promise.all(last)
    // No clock moved: the fourth stored message (64 / 16) sends the ack.
    await until(async () => (await alice.ilm.status((await last[3]!).id)) === 'delivered')
    expect(bob.got).toHaveLength(4)
    expect(acks()).toBeGreaterThan(before)
  })

  it('acks a duplicate at the end of the turn: the sender is resending, it may have missed the last ack', async () => {
    const { alice, bob, aliceClock, acks } = await pair({ ackDelayMs: 10_000 })
    const { id } = await alice.ilm.send('b', 'once')
    await until(() => bob.got.length === 1)
    const before = acks()
    // Alice hears no ack (bob's clock never moves) and resends; bob acks the duplicate at once.
    await elapse([aliceClock], 3_000)
    await until(async () => (await alice.ilm.status(id)) === 'delivered', { clocks: [aliceClock] })
    expect(acks()).toBeGreaterThan(before)
    expect(contentsOf(bob.got)).toEqual(['once'])
  })

  it('acks what it holds when it closes', async () => {
    const { alice, bob, acks } = await pair({ ackDelayMs: 10_000 })
    await alice.ilm.send('b', 'before close')
    await until(() => bob.got.length === 1)
    const before = acks()
    await tick(6)
    expect(acks()).toBe(before)
    // Sent before the transport closes (whether it still goes out is the transport's business).
    await bob.ilm.close()
    expect(acks()).toBe(before + 1)
  })

  it('ackDelayMs 0 acks at the end of each turn, as before', async () => {
    const { alice, bob, acks } = await pair({ ackDelayMs: 0 })
    const before = acks()
    const { id } = await alice.ilm.send('b', 'now')
    await until(async () => (await alice.ilm.status(id)) === 'delivered')
    expect(bob.got).toHaveLength(1)
    expect(acks()).toBe(before + 1)
  })
})
