/**
 * `onMessages`: a batch handler gets one sender's messages in order, in
 * batches of at most `processBatch`; a batch that throws is handed over again
 * whole, a partial outcome marks only its prefix processed, and per-message
 * handlers keep their one-at-a-time semantics beside it.
 */
import { describe, expect, it } from 'vitest'
import { IlmError, MemoryNetwork, MemoryStore, type Message } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { elapse, openPeer, range, until } from '../helpers/engines.js'

const BATCH = 8

async function backlog(n: number) {
  const net = new MemoryNetwork()
  const clock = new ManualClock()
  const store = new MemoryStore()
  const alice = await openPeer(net.connect('a'), { clock })
  const bob = await openPeer(net.connect('b'), { store, clock, limits: { processBatch: BATCH } }, false)
  for (const i of range(n)) await alice.ilm.send('b', i)
  await until(async () => (await bob.ilm.pending()).inbound === n, { clocks: [clock] })
  return { net, clock, store, alice, bob }
}

describe('batched hand-over (onMessages)', () => {
  it('hands a backlog over in order, in batches of at most processBatch, each message once', async () => {
    const { clock, alice, bob } = await backlog(30)
    const batches: number[][] = []
    bob.ilm.onMessages((messages: readonly Message[]) => void batches.push(messages.map((m) => m.contents as number)))
    await until(() => batches.flat().length === 30, { clocks: [clock] })
    await elapse([clock], 1_000)
    expect(batches.flat()).toEqual(range(30))
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(BATCH)
    expect(batches.length).toBeGreaterThan(1)
    await until(async () => (await bob.ilm.pending()).inbound === 0, { clocks: [clock] })
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('a batch that throws is handed over again whole, with HANDLER_FAILED; a partial outcome keeps its prefix processed', async () => {
    const { clock, alice, bob } = await backlog(BATCH)
    const errors: IlmError[] = []
    bob.ilm.on('error', (e) => errors.push(e))
    const calls: number[][] = []
    let call = 0
    bob.ilm.onMessages((messages: readonly Message[]) => {
      calls.push(messages.map((m) => m.contents as number))
      call++
      if (call === 1) throw new Error('first call refuses')
      if (call === 2) return { handled: 3, error: new Error('fourth refused') }
      return undefined
    })
    await until(() => call >= 3, { clocks: [clock], stepMs: 500 })
    await elapse([clock], 5_000)
    expect(calls[0]).toEqual(range(BATCH))
    expect(calls[1]).toEqual(range(BATCH))
    expect(calls[2]).toEqual(range(BATCH - 3, 3))
    expect(calls).toHaveLength(3)
    expect(errors.map((e) => e.code)).toEqual(['HANDLER_FAILED', 'HANDLER_FAILED'])
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('a per-message handler beside a batch handler: both see every message in order; the batch handler only what the first processed', async () => {
    const { clock, alice, bob } = await backlog(10)
    const single: number[] = []
    const batched: number[] = []
    let refused = false
    bob.ilm.onMessage((m: Message) => {
      if (m.contents === 4 && !refused) {
        refused = true
        throw new Error('once')
      }
      single.push(m.contents as number)
    })
    bob.ilm.onMessages((messages: readonly Message[]) => void batched.push(...messages.map((m) => m.contents as number)))
    await until(() => batched.length >= 10, { clocks: [clock] })
    await elapse([clock], 3_000)
    expect(single).toEqual(range(10))
    expect(batched).toEqual(range(10))
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })
})
