/**
 * A frame lost mid-stream is sent again as soon as a later one arrives: the
 * receiver acks its last seq again when a frame comes past a gap, and the
 * sender goes back to the gap at once instead of waiting for its timer (a
 * second at first, up to `maxRetransmitMs` once it backed off). A relay drops
 * single frames that way, one over a sender's rate limit, say. The sender goes
 * back on a repeated ack at most once per round-trip timeout, and a receiver
 * whose full inbox made the gap does not ack again.
 */
import { describe, expect, it } from 'vitest'
import { decodeFrame } from '../../src/core/codec.js'
import { MemoryNetwork, type Transport } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { contentsOf, openPeer, range, until } from '../helpers/engines.js'

const RETRANSMIT_MS = 5_000

/** `inner`, except that the `msg` frames whose seq `lose` says are dropped; `sent` records the seq of every `msg` frame sent. */
function lossy(inner: Transport, lose: (seq: number) => boolean, sent: number[]): Transport {
  return new Proxy(inner, {
    get(target, key, receiver) {
      if (key === 'send')
        return (to: never, data: Uint8Array): void | Promise<void> => {
          const decoded = decodeFrame(data, 1 << 20)
          if (decoded.ok && decoded.frame.kind === 'msg') {
            sent.push(decoded.frame.seq)
            if (lose(decoded.frame.seq)) return
          }
          return target.send(to, data)
        }
      const value = Reflect.get(target, key, receiver) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

async function pair(lose: (seq: number) => boolean) {
  const net = new MemoryNetwork()
  const clock = new ManualClock()
  const sent: number[] = []
  const limits = { retransmitMs: RETRANSMIT_MS, maxRetransmitMs: 8 * RETRANSMIT_MS }
  const alice = await openPeer(lossy(net.connect('a'), lose, sent), { clock, limits })
  const bob = await openPeer(net.connect('b'), { clock, limits })
  await alice.ilm.send('b', 0)
  await until(() => bob.got.length === 1, { clocks: [clock], stepMs: 10 })
  return { clock, alice, bob, sent }
}

describe('a gap on the receiver', () => {
  it('a frame lost mid-stream goes again once a later one arrives, long before the timer', async () => {
    // The first transmission of seqs 1 to 3 is lost.
    const lost = new Set([1, 2, 3])
    const { clock, alice, bob } = await pair((seq) => lost.delete(seq))
    for (const n of range(9, 1)) await alice.ilm.send('b', n)
    // Less time than one retransmission timeout passes.
    await until(() => bob.got.length === 10, { clocks: [clock], stepMs: 10, steps: RETRANSMIT_MS / 10 / 2 })
    expect(lost.size).toBe(0)
    expect(contentsOf(bob.got)).toEqual(range(10))
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('repeated acks send the link back at most once per round-trip timeout', async () => {
    const { clock, alice, bob, sent } = await pair((seq) => seq === 1)
    for (const n of range(10, 1)) await alice.ilm.send('b', n)
    const from = sent.length
    // Seq 1 never arrives: every frame after it is a gap, and bob acks seq 0 again each turn.
    await until(() => false, { clocks: [clock], stepMs: 10, steps: RETRANSMIT_MS / 10 / 2 }).catch(() => {})
    expect(bob.got).toHaveLength(1)
    const againFrom = sent.slice(from).filter((seq) => seq === 10).length
    expect(againFrom, 'sent once, and once more on the first repeated ack').toBe(2)
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('a full inbox acks nothing it did not store, so the sender does not go back as for a gap', async () => {
    const net = new MemoryNetwork()
    const clock = new ManualClock()
    const sent: number[] = []
    const limits = { retransmitMs: RETRANSMIT_MS, maxRetransmitMs: 8 * RETRANSMIT_MS }
    const alice = await openPeer(
      lossy(net.connect('a'), () => false, sent),
      { clock, limits },
    )
    const bob = await openPeer(net.connect('b'), { clock, limits: { ...limits, maxInboxPerPeer: 3 } }, false)
    for (const n of range(3)) await alice.ilm.send('b', n)
    await until(async () => (await bob.ilm.pending()).inbound === 3 && (await alice.ilm.pending()).outbound === 0, { clocks: [clock], stepMs: 10 })
    // Bob's inbox is full: he stores none of these, and each after the first arrives past a seq he did not store.
    for (const n of range(7, 3)) await alice.ilm.send('b', n)
    await until(() => false, { clocks: [clock], stepMs: 10, steps: RETRANSMIT_MS / 10 / 2 }).catch(() => {})
    expect(sent.filter((seq) => seq === 9)).toHaveLength(1)
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })
})
