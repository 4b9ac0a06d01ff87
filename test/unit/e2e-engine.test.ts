import { describe, expect, it } from 'vitest'
import { ILM, MemoryNetwork, MemoryStore, type Transport } from '../../src/index.js'
import { decodeFrame } from '../../src/core/codec.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { contentsOf, openPeer, range, until } from '../helpers/engines.js'

/** A transport that records every frame it sends. */
function recording(inner: Transport, wire: Uint8Array[]): Transport {
  return new Proxy(inner, {
    get(target, key, receiver) {
      if (key === 'send') return (to: never, data: Uint8Array): void | Promise<void> => (wire.push(data), target.send(to, data))
      const value = Reflect.get(target, key, receiver) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1')

describe('end-to-end encryption in the engine', () => {
  it('two peers exchange sealed messages: in order, once, and no contents on the wire', async () => {
    const net = new MemoryNetwork()
    const wire: Uint8Array[] = []
    const alice = await openPeer(recording(net.connect('a'), wire))
    const bob = await openPeer(net.connect('b'))
    const sent = range(20).map((n) => `marker-${n}-plaintext`)
    for (const contents of sent) await alice.ilm.send('b', contents)
    await until(() => bob.got.length === 20)
    expect(contentsOf(bob.got)).toEqual(sent)
    const msgs = wire.map((bytes) => decodeFrame(bytes, 1 << 20)).filter((d) => d.ok && d.frame.kind === 'msg')
    expect(msgs.length).toBeGreaterThanOrEqual(20)
    for (const d of msgs) expect(d.ok && d.frame.kind === 'msg' && d.frame.sealed).toBe(true)
    for (const bytes of wire) expect(text(bytes)).not.toContain('marker-')
    expect(await alice.ilm.safetyNumber('b')).toMatch(/^(\d{5} ){11}\d{5}$/)
    expect(await alice.ilm.safetyNumber('b')).toBe(await bob.ilm.safetyNumber('a'))
    await Promise.all([alice.ilm.close(), bob.ilm.close()])
  })

  it('a peer with encryption off and one with it on exchange nothing, and both say E2E_MISMATCH', async () => {
    const net = new MemoryNetwork()
    const clock = new ManualClock()
    const alice = await openPeer(net.connect('a'), { clock })
    const bob = await ILM.open({ store: new MemoryStore(), transport: net.connect('b'), clock, encryption: false })
    const bobErrors: string[] = []
    bob.on('error', (e) => void bobErrors.push(e.code))
    const got: unknown[] = []
    bob.onMessage((m) => void got.push(m.contents))
    await alice.ilm.send('b', 'secret')
    // Hellos repeat at the retransmission timeout: each side reports the mismatch again, also to listeners added late.
    await until(() => alice.errors.some((e) => e.code === 'E2E_MISMATCH') && bobErrors.includes('E2E_MISMATCH'), { clocks: [clock] })
    expect(got).toEqual([])
    expect(bob.refused().E2E_MISMATCH).toBeGreaterThan(0)
    await Promise.all([alice.ilm.close(), bob.close()])
  })

  it('a wiped sender store presents a new key: peer-key-changed, messages held until accepted, then delivered once', async () => {
    const net = new MemoryNetwork()
    const clock = new ManualClock()
    const bob = await openPeer(net.connect('b'), { clock })
    const changed: string[] = []
    bob.ilm.on('peer-key-changed', (e) => void changed.push(e.peer))
    const first = await openPeer(net.connect('a'), { clock })
    await first.ilm.send('b', 'before')
    await until(() => bob.got.length === 1, { clocks: [clock] })
    const before = await bob.ilm.safetyNumber('a')
    await first.ilm.close()
    const wiped = await openPeer(net.connect('a'), { clock, store: new MemoryStore() })
    await wiped.ilm.send('b', 'after')
    await until(() => changed.length === 1, { clocks: [clock] })
    expect(bob.got.length).toBe(1)
    expect(await bob.ilm.safetyNumber('a')).not.toBe(before)
    await bob.ilm.acceptPeerKey('a')
    await until(() => bob.got.length === 2, { clocks: [clock] })
    expect(contentsOf(bob.got)).toEqual(['before', 'after'])
    await Promise.all([wiped.ilm.close(), bob.ilm.close()])
  })
})
