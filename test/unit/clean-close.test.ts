/**
 * A clean `close()` or `shutdown()` is not a crash (issue 12): the processed
 * marks of handlers that already returned are committed on the way out, so
 * reopening hands none of them over again. Only a crash may replay, at most
 * `processBatch` messages per stream.
 */
import { describe, expect, it } from 'vitest'
import { MemoryNetwork, MemoryStore, type Message } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { elapse, openPeer, range, until, type Peer } from '../helpers/engines.js'

const BATCH = 32

/**
 * Alice sends m0..m9 to bob, who stores them before he subscribes; his
 * handler holds m5 until released: m0..m4 are handled, none marked processed
 * yet (processBatch 32). Then `stop` ends
 * bob's engine; a new one opens his store. Resolves with what the new engine
 * hands over.
 */
async function midStream(stop: (bob: Peer) => Promise<void>): Promise<string[]> {
  const net = new MemoryNetwork()
  const clock = new ManualClock()
  const store = new MemoryStore()
  const alice = await openPeer(net.connect('a'), { clock })
  const bob = await openPeer(net.connect('b'), { store, clock, limits: { processBatch: BATCH } }, false)
  const handled: string[] = []
  let release = (): void => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  for (const n of range(10)) await alice.ilm.send('b', `m${n}`)
  // Stored first, then handed over as one backlog: marks wait for processBatch handovers.
  await until(async () => (await bob.ilm.pending()).inbound === 10, { clocks: [clock] })
  bob.ilm.onMessage(async (m: Message) => {
    if (m.contents === 'm5') await held
    handled.push(m.contents as string)
  })
  await until(() => handled.length === 5, { clocks: [clock] })
  await stop(bob)
  release()
  const again = await openPeer(net.connect('b'), { store, clock, limits: { processBatch: BATCH } })
  await until(() => again.got.length >= 5, { clocks: [clock] })
  await elapse([clock], 1_000)
  await Promise.all([alice.ilm.close(), again.ilm.close()])
  return again.got.map((m) => m.contents as string)
}

describe('clean close is not a crash', () => {
  it('close() mid-stream: the handled messages are not handed over again', async () => {
    expect(await midStream((bob) => bob.ilm.close())).toEqual(['m5', 'm6', 'm7', 'm8', 'm9'])
  })

  it('shutdown() mid-stream: the handled messages are not handed over again', async () => {
    expect(await midStream((bob) => bob.ilm.shutdown({ timeoutMs: 1_000 }))).toEqual(['m5', 'm6', 'm7', 'm8', 'm9'])
  })

  it('a crash mid-stream (the engine dropped without closing) replays what was handled but not marked, at most processBatch', async () => {
    const replayed = await midStream(async () => {})
    expect(replayed).toEqual(range(10).map((n) => `m${n}`))
    expect(replayed.length - 5).toBeLessThanOrEqual(BATCH)
  })
})
