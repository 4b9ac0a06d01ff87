import { afterEach, describe, expect, it } from 'vitest'
import { isIlmError } from '../../src/core/errors.js'
import type { PeerId } from '../../src/core/ids.js'
import { ILM, MemoryStore, type Message } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { transportContract } from '../../src/testing/transport-contract.js'
import {
  BroadcastChannelTransport,
  type BroadcastChannelLike,
  type BroadcastChannelTransportOptions,
  parseWire,
} from '../../src/transport/broadcast-channel.js'
import { runContract } from '../helpers/contract.js'
import { transportLog, type TransportLog } from '../helpers/transport-log.js'

/** BroadcastChannel delivery is a real macrotask: let it through. */
const tick = (ms = 5): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

let networkCounter = 0
/** A network nobody else in this process uses. */
const uniqueNetwork = (): string => `bc-test-${process.pid}-${++networkCounter}-${Math.random().toString(36).slice(2, 8)}`

/** Everything a test opened, closed after it so Vitest can exit. */
const closers: (() => unknown)[] = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})

function transport(options: BroadcastChannelTransportOptions): BroadcastChannelTransport {
  const t = new BroadcastChannelTransport(options)
  closers.push(() => t.close())
  return t
}

function opened(options: BroadcastChannelTransportOptions): { t: BroadcastChannelTransport; l: TransportLog } {
  const t = transport(options)
  const l = transportLog()
  t.open(l)
  return { t, l }
}

/** A raw channel on the network, to post what a buggy or hostile peer would. */
function rawChannel(network: string): BroadcastChannel {
  const channel = new BroadcastChannel(`intersession-net:${network}`)
  closers.push(() => channel.close())
  return channel
}

async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await tick()
  }
}

function expectTransportFailed(fn: () => void): IlmError {
  try {
    fn()
  } catch (error) {
    expect(isIlmError(error, 'TRANSPORT_FAILED')).toBe(true)
    return error as IlmError
  }
  throw new Error('expected TRANSPORT_FAILED')
}
type IlmError = import('../../src/core/errors.js').IlmError

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values)

describe('BroadcastChannelTransport: transport contract', () => {
  const cases = transportContract(() => {
    const network = uniqueNetwork()
    return {
      a: new BroadcastChannelTransport({ localId: 'alice', network }),
      b: new BroadcastChannelTransport({ localId: 'bob', network }),
      cleanup: () => {},
    }
  })
  runContract(cases)
})

describe('BroadcastChannelTransport', () => {
  it('validates its options', () => {
    expect(() => new BroadcastChannelTransport({ localId: '' })).toThrow(TypeError)
    expect(() => new BroadcastChannelTransport({ localId: 'has space' })).toThrow(TypeError)
    expect(() => new BroadcastChannelTransport({ localId: 'a', heartbeatMs: 0 })).toThrow(RangeError)
    expect(() => new BroadcastChannelTransport({ localId: 'a', heartbeatMs: 100, offlineAfterMs: 100 })).toThrow(RangeError)
    const t = new BroadcastChannelTransport({ localId: 'a', network: 'n1' })
    expect(t.channelName).toBe('intersession-net:n1')
    expectTransportFailed(() => t.send('b' as PeerId, bytes(1)))
    t.close()
  })

  it('detects a silent peer with the injected clock, and sees it come back', async () => {
    const network = uniqueNetwork()
    const clockA = new ManualClock()
    const clockB = new ManualClock()
    const timing = { heartbeatMs: 100, offlineAfterMs: 350 }
    const a = opened({ localId: 'a', network, clock: clockA, ...timing })
    const b = opened({ localId: 'b', network, clock: clockB, ...timing })
    await until(() => a.l.online('b') === true && b.l.online('a') === true, 'a and b online')

    // Both heartbeat: nobody goes offline however long it runs.
    for (let i = 0; i < 20; i++) {
      clockA.advance(100)
      clockB.advance(100)
      await tick()
    }
    expect(a.l.presence).toEqual([['b', true]])

    // b's clock stops, so b stops heartbeating; a gives up after offlineAfterMs.
    for (let i = 0; i < 3; i++) {
      clockA.advance(100)
      await tick()
    }
    expect(a.l.online('b')).toBe(true)
    clockA.advance(100)
    await tick()
    expect(a.l.presence).toEqual([
      ['b', true],
      ['b', false],
    ])
    expectTransportFailed(() => a.t.send('b' as PeerId, bytes(1)))

    // Its next heartbeat brings it back.
    clockB.advance(100)
    await until(() => a.l.online('b') === true, 'b back online')
    expect(a.l.presence).toEqual([
      ['b', true],
      ['b', false],
      ['b', true],
    ])
    a.t.send('b' as PeerId, bytes(7))
    await until(() => b.l.frames.length === 1, 'frame after recovery')
  })

  it('reports a peer offline at once on bye, without any clock advance', async () => {
    const network = uniqueNetwork()
    const clock = new ManualClock()
    const a = opened({ localId: 'a', network, clock })
    const b = opened({ localId: 'b', network, clock })
    await until(() => a.l.online('b') === true, 'b online')
    b.t.close()
    await until(() => a.l.online('b') === false, 'b offline')
    expect(a.l.presence).toEqual([
      ['b', true],
      ['b', false],
    ])
    expect(clock.pending).toBe(1) // a's heartbeat only: b left no timer behind
  })

  it('sees a reloaded peer (same id, new instance, no bye) as offline then online', async () => {
    const network = uniqueNetwork()
    const clock = new ManualClock()
    const a = opened({ localId: 'a', network, clock })
    let crashed: BroadcastChannelLike | undefined
    const b1 = opened({
      localId: 'b',
      network,
      clock,
      channel: (name) => (crashed = new BroadcastChannel(name)),
    })
    await until(() => a.l.online('b') === true, 'b1 online')
    // A crash: the channel vanishes without a bye; b1's later heartbeats fail quietly.
    crashed?.close()
    clock.advance(1000)
    await tick()
    expect(a.l.presence).toEqual([['b', true]])

    const b2 = opened({ localId: 'b', network, clock })
    await until(() => a.l.presence.length === 3, 'the session change')
    expect(a.l.presence).toEqual([
      ['b', true],
      ['b', false],
      ['b', true],
    ])
    await until(() => b2.l.online('a') === true, 'b2 to learn a from its answer')
    a.t.send('b' as PeerId, bytes(1, 2))
    await until(() => b2.l.frames.length === 1, 'the frame at b2')
    expect(b1.l.frames).toEqual([])
    expect(b1.l.closedCount).toBe(0)
  })

  it('ignores malformed channel messages', async () => {
    const network = uniqueNetwork()
    const a = opened({ localId: 'a', network })
    const raw = rawChannel(network)
    const garbage: unknown[] = [
      null,
      42,
      'hello',
      [1, 2],
      {},
      { t: 'heartbeat' },
      { t: 'heartbeat', from: 'x' },
      { t: 'heartbeat', from: 'x', nonce: '' },
      { t: 'heartbeat', from: 'x', nonce: 'n'.repeat(65) },
      { t: 'heartbeat', from: 'has space', nonce: 'n1' },
      { t: 'heartbeat', from: 7, nonce: 'n1' },
      { t: 'HEARTBEAT', from: 'x', nonce: 'n1' },
      { t: 'frame', from: 'x', nonce: 'n1', to: 'a' },
      { t: 'frame', from: 'x', nonce: 'n1', to: 'a', data: [1, 2, 3] },
      { t: 'frame', from: 'x', nonce: 'n1', to: 'a', data: new ArrayBuffer(4) },
      { t: 'frame', from: 'x', nonce: 'n1', to: 'a', data: new Uint16Array(2) },
      { t: 'frame', from: 'x', nonce: 'n1', to: '', data: bytes(1) },
      { t: 'frame', from: 'x', to: 'a', data: bytes(1) },
    ]
    for (const g of garbage) raw.postMessage(g)
    await tick(30)
    expect(a.l.presence).toEqual([])
    expect(a.l.frames).toEqual([])

    // Still listening: a well-formed message from a newcomer is heard.
    raw.postMessage({ t: 'frame', from: 'x', nonce: 'n1', to: 'a', data: bytes(9) })
    await until(() => a.l.frames.length === 1, 'the valid frame')
    expect(a.l.presence).toEqual([['x', true]])
    expect(a.l.frames[0]).toEqual({ from: 'x', data: bytes(9) })
  })

  it('parseWire never throws, even on hostile objects', () => {
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom')
        },
      },
    )
    expect(parseWire(hostile)).toBeUndefined()
    expect(parseWire({ t: 'bye', from: 'x', nonce: 'n', extra: 1 })).toEqual({ t: 'bye', from: 'x', nonce: 'n' })
  })

  it('ignores frames addressed to someone else', async () => {
    const network = uniqueNetwork()
    const a = opened({ localId: 'a', network })
    const b = opened({ localId: 'b', network })
    const c = opened({ localId: 'c', network })
    await until(() => a.l.online('b') === true && a.l.online('c') === true && c.l.online('a') === true, 'all online')
    a.t.send('b' as PeerId, bytes(1))
    const raw = rawChannel(network)
    raw.postMessage({ t: 'frame', from: 'x', nonce: 'n1', to: 'zzz', data: bytes(2) })
    raw.postMessage({ t: 'frame', from: 'x', nonce: 'n1', to: 'c', data: bytes(3) })
    await until(() => b.l.frames.length === 1 && c.l.frames.length === 1, 'the addressed frames')
    await tick(20)
    expect(b.l.frames).toEqual([{ from: 'a', data: bytes(1) }])
    expect(c.l.frames).toEqual([{ from: 'x', data: bytes(3) }])
    expect(a.l.frames).toEqual([])
    // Overheard, though: any message proves its sender alive.
    expect(a.l.online('x')).toBe(true)
  })

  it('a second instance with the same id replaces the first, which reports closed()', async () => {
    const network = uniqueNetwork()
    const a1 = opened({ localId: 'a', network })
    const b = opened({ localId: 'b', network })
    await until(() => b.l.online('a') === true && a1.l.online('b') === true, 'a1 and b online')

    const a2 = opened({ localId: 'a', network })
    await until(() => a1.l.closedCount === 1, 'a1 closed()')
    await until(() => b.l.presence.length === 3 && a2.l.online('b') === true, 'b to switch to a2')
    expect(b.l.presence).toEqual([
      ['a', true],
      ['a', false],
      ['a', true],
    ])
    const error = expectTransportFailed(() => a1.t.send('b' as PeerId, bytes(1)))
    expect(error.message).toMatch(/replaced/)

    b.t.send('a' as PeerId, bytes(5))
    await until(() => a2.l.frames.length === 1, 'the frame at a2')
    await tick(20)
    expect(a1.l.frames).toEqual([])
    expect(a1.l.presence).toEqual([['b', true]])
    expect(b.l.online('a')).toBe(true) // a1's bye is stale: b keeps a2
    a1.t.close() // a no-op now
  })

  it('two instances of one id opened at once: exactly one survives, the later', async () => {
    const network = uniqueNetwork()
    const b = opened({ localId: 'b', network })
    const first = opened({ localId: 'a', network })
    const second = opened({ localId: 'a', network })
    await until(() => first.l.closedCount === 1, 'the earlier one to yield')
    await until(() => second.l.online('b') === true && b.l.online('a') === true, 'b and the survivor')
    await tick(30)
    expect(second.l.closedCount).toBe(0)
    b.t.send('a' as PeerId, bytes(4))
    await until(() => second.l.frames.length === 1, 'the frame at the survivor')
  })

  it('never fires inside open or send, even over a synchronous channel', async () => {
    // A channel double that dispatches inside postMessage.
    const listeners = new Set<(event: MessageEvent) => void>()
    const channel = (): BroadcastChannelLike => {
      let mine: ((event: MessageEvent) => void) | undefined
      return {
        postMessage: (message) => {
          for (const l of listeners) if (l !== mine) l({ data: structuredClone(message) } as MessageEvent)
        },
        addEventListener: (_type, listener) => void listeners.add((mine = listener)),
        close: () => void (mine && listeners.delete(mine)),
      }
    }
    let inside = false
    let violations = 0
    const guard = (l: TransportLog): TransportLog => ({
      ...l,
      frame: (from, data) => (inside ? violations++ : l.frame(from, data)),
      peer: (peer, online) => (inside ? violations++ : l.peer(peer, online)),
      closed: () => (inside ? violations++ : l.closed()),
    })
    const a = transport({ localId: 'a', channel })
    const b = transport({ localId: 'b', channel })
    const la = transportLog()
    const lb = transportLog()
    inside = true
    a.open(guard(la))
    b.open(guard(lb))
    inside = false
    await until(() => la.online('b') === true && lb.online('a') === true, 'online')
    inside = true
    a.send('b' as PeerId, bytes(1))
    inside = false
    await until(() => lb.frames.length === 1, 'the frame')
    expect(violations).toBe(0)
  })

  it('sends exactly the bytes of a view, in a buffer of their own', async () => {
    const network = uniqueNetwork()
    const a = opened({ localId: 'a', network })
    const b = opened({ localId: 'b', network })
    await until(() => a.l.online('b') === true, 'online')
    const backing = new Uint8Array(1024).fill(3)
    a.t.send('b' as PeerId, backing.subarray(10, 14))
    await until(() => b.l.frames.length === 1, 'the frame')
    const got = b.l.frames[0]?.data
    expect(got).toEqual(bytes(3, 3, 3, 3))
    expect(got?.buffer.byteLength).toBe(4)
  })
})

describe('ILM over BroadcastChannelTransport', () => {
  it('exchanges 200 messages both ways, in order', async () => {
    const network = uniqueNetwork()
    const a = await ILM.open({ store: new MemoryStore(), transport: new BroadcastChannelTransport({ localId: 'a', network }) })
    closers.push(() => a.close())
    const b = await ILM.open({ store: new MemoryStore(), transport: new BroadcastChannelTransport({ localId: 'b', network }) })
    closers.push(() => b.close())
    const atA: unknown[] = []
    const atB: unknown[] = []
    a.onMessage((m: Message) => void atA.push(m.contents))
    b.onMessage((m: Message) => void atB.push(m.contents))
    const expected = Array.from({ length: 200 }, (_, i) => i)
    for (const i of expected) {
      await a.send('b', i)
      await b.send('a', { n: i })
    }
    await until(() => atA.length >= 200 && atB.length >= 200, '200 messages each way', 15_000)
    await tick(50)
    expect(atB).toEqual(expected)
    expect(atA).toEqual(expected.map((n) => ({ n })))
  })
})
