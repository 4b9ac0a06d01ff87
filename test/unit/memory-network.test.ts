import { describe, expect, it } from 'vitest'
import { isIlmError } from '../../src/core/errors.js'
import type { PeerId } from '../../src/core/ids.js'
import type { TransportEvents } from '../../src/core/transport.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { transportContract } from '../../src/testing/transport-contract.js'
import { type FaultOptions, MemoryNetwork, type MemoryTransport } from '../../src/transport/memory.js'
import { runContract } from '../helpers/contract.js'

/** Lets the zero-delay queue drain (it runs in microtasks, yielding to macrotasks only under load). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

interface Log extends TransportEvents {
  readonly frames: { from: PeerId; data: Uint8Array }[]
  readonly presence: [PeerId, boolean][]
  readonly all: string[]
  closedCount: number
  /** Frame payload indexes (first 4 bytes; -1 for shorter frames) in arrival order. */
  indexes(): number[]
}

function log(): Log {
  const l: Log = {
    frames: [],
    presence: [],
    all: [],
    closedCount: 0,
    frame(from, data) {
      l.frames.push({ from, data })
      l.all.push(`frame ${from}`)
    },
    peer(peer, online) {
      l.presence.push([peer, online])
      l.all.push(`peer ${peer} ${online ? 'on' : 'off'}`)
    },
    closed() {
      l.closedCount++
      l.all.push('closed')
    },
    indexes: () => l.frames.map((f) => (f.data.length >= 4 ? new DataView(f.data.buffer, f.data.byteOffset).getUint32(0) : -1)),
  }
  return l
}

function indexed(i: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setUint32(0, i)
  return out
}

function open(net: MemoryNetwork, id: string): { t: MemoryTransport; l: Log } {
  const t = net.connect(id)
  const l = log()
  t.open(l)
  return { t, l }
}

function expectTransportFailed(fn: () => void): void {
  let error: unknown
  try {
    fn()
  } catch (e) {
    error = e
  }
  expect(isIlmError(error, 'TRANSPORT_FAILED'), `expected IlmError TRANSPORT_FAILED, got ${String(error)}`).toBe(true)
}

const pair = (faults?: FaultOptions) => () => {
  const net = new MemoryNetwork(faults === undefined ? {} : { faults })
  return { a: net.connect('alice'), b: net.connect('bob'), cleanup: () => {} }
}

describe('MemoryNetwork: transport contract', () => {
  runContract(transportContract(pair()))
})

describe('MemoryNetwork: transport contract with duplicates, reordering and delays', () => {
  runContract(transportContract(pair({ duplicate: 0.2, reorder: 0.3, delayMs: [0, 3], seed: 1 })))
})

describe('MemoryNetwork: transport contract with drops (unreliable)', () => {
  runContract(transportContract(pair({ drop: 0.3, seed: 2 }), { reliable: false }))
})

describe('MemoryNetwork', () => {
  it('refuses invalid peer ids', () => {
    const net = new MemoryNetwork()
    expect(() => net.connect('')).toThrow(TypeError)
    expect(() => net.connect('has space')).toThrow(TypeError)
    expect(() => net.connect('x'.repeat(129))).toThrow(TypeError)
    expect(net.connect('ok-id').localId).toBe('ok-id')
  })

  it('announces presence asynchronously, both ways, only to open transports', async () => {
    const net = new MemoryNetwork()
    const a = open(net, 'a')
    const b = net.connect('b')
    await flush()
    expect(a.l.presence).toEqual([])
    expect(net.isOnline('a')).toBe(true)
    expect(net.isOnline('b')).toBe(false)
    const bl = log()
    b.open(bl)
    expect(bl.all).toEqual([])
    expect(a.l.all).toEqual([])
    await flush()
    expect(a.l.presence).toEqual([['b', true]])
    expect(bl.presence).toEqual([['a', true]])
    b.close()
    await flush()
    expect(a.l.presence).toEqual([
      ['b', true],
      ['b', false],
    ])
    expect(bl.all).toEqual(['peer a on'])
    expect(net.isOnline('b')).toBe(false)
  })

  it('delivers asynchronously, FIFO per link, with the real sender id and a copy of the bytes', async () => {
    const net = new MemoryNetwork()
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    const data = Uint8Array.of(1, 2, 3)
    for (let i = 0; i < 100; i++) a.t.send('b', indexed(i))
    a.t.send('b', data)
    data[0] = 99
    expect(b.l.frames).toEqual([])
    await flush()
    expect(b.l.indexes().slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(b.l.frames.at(-1)).toEqual({ from: 'a', data: Uint8Array.of(1, 2, 3) })
    expect(b.l.frames.every((f) => f.from === 'a')).toBe(true)
    expect(net.stats).toEqual({ sent: 101, delivered: 101, dropped: 0, duplicated: 0, reordered: 0, inFlight: 0 })
  })

  it('fails sends from or to unreachable ends with TRANSPORT_FAILED', async () => {
    const net = new MemoryNetwork()
    const a = open(net, 'a')
    const unopened = net.connect('b')
    expectTransportFailed(() => a.t.send('b', indexed(0)))
    expectTransportFailed(() => a.t.send('nobody', indexed(0)))
    expectTransportFailed(() => unopened.send('a', indexed(0)))
    expect(() => a.t.open(log())).toThrow(/already opened/)
    a.t.close()
    a.t.close()
    expectTransportFailed(() => a.t.send('a', indexed(0)))
    expect(net.stats.sent).toBe(0)
  })

  it('takes a peer offline and back with disconnect/reconnect, dropping frames in flight', async () => {
    const net = new MemoryNetwork()
    const a = open(net, 'a')
    const b = open(net, 'b')
    const c = open(net, 'c')
    await flush()
    a.t.send('b', indexed(1))
    b.t.send('c', indexed(2))
    net.disconnect('b')
    net.disconnect('b')
    expect(net.isOnline('b')).toBe(false)
    expectTransportFailed(() => a.t.send('b', indexed(3)))
    expectTransportFailed(() => b.t.send('a', indexed(4)))
    await flush()
    expect(b.l.frames).toEqual([])
    expect(c.l.frames).toEqual([])
    expect(net.stats.dropped).toBe(2)
    expect(a.l.presence.at(-1)).toEqual(['b', false])
    expect(c.l.presence.at(-1)).toEqual(['b', false])
    expect(b.l.presence.slice(-2)).toEqual([
      ['a', false],
      ['c', false],
    ])

    net.reconnect('b')
    expect(net.isOnline('b')).toBe(true)
    a.t.send('b', indexed(5))
    await flush()
    expect(a.l.presence.at(-1)).toEqual(['b', true])
    expect(b.l.presence.slice(-2)).toEqual([
      ['a', true],
      ['c', true],
    ])
    // Presence comes before the frame sent after the reconnect.
    expect(b.l.all.slice(-3)).toEqual(['peer a on', 'peer c on', 'frame a'])
    expect(b.l.indexes()).toEqual([5])
    expect(() => net.disconnect('nobody')).toThrow(/no transport/)
  })

  it('replaces a transport when its id connects again', async () => {
    const net = new MemoryNetwork()
    const old = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    b.t.send('a', indexed(1))
    const fresh = net.connect('a')
    expectTransportFailed(() => old.t.send('b', indexed(2)))
    expectTransportFailed(() => b.t.send('a', indexed(3)))
    await flush()
    expect(old.l.all).toEqual(['peer b on', 'closed'])
    expect(b.l.presence.at(-1)).toEqual(['a', false])

    const fl = log()
    fresh.open(fl)
    b.t.send('a', indexed(4))
    await flush()
    expect(b.l.presence.at(-1)).toEqual(['a', true])
    expect(fl.presence).toEqual([['b', true]])
    expect(fl.indexes()).toEqual([4])
    expect(old.l.all).toEqual(['peer b on', 'closed'])
    old.t.close()
    await flush()
    expect(net.isOnline('a')).toBe(true)
  })

  it('owes closed() to a transport replaced before it was opened', async () => {
    const net = new MemoryNetwork()
    const first = net.connect('a')
    net.connect('a')
    const l = log()
    first.open(l)
    expect(l.all).toEqual([])
    await flush()
    expect(l.all).toEqual(['closed'])
  })

  it('delivers nothing to a transport after close()', async () => {
    const net = new MemoryNetwork()
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    b.t.send('a', indexed(1))
    a.t.close()
    await flush()
    expect(a.l.all).toEqual(['peer b on'])
    expect(b.l.presence.at(-1)).toEqual(['a', false])
  })

  it('delays frames on the network clock', async () => {
    const clock = new ManualClock(0)
    const net = new MemoryNetwork({ clock, faults: { delayMs: 100 } })
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    a.t.send('b', indexed(1))
    await flush()
    clock.advance(99)
    expect(b.l.frames).toEqual([])
    clock.advance(1)
    expect(b.l.indexes()).toEqual([1])

    net.faults({ delayMs: [10, 20] })
    for (let i = 0; i < 50; i++) a.t.send('b', indexed(i))
    clock.advance(9)
    expect(b.l.frames.length).toBe(1)
    clock.advance(11)
    expect(b.l.frames.length).toBe(51)
    expect(clock.pending).toBe(0)
  })

  it('drops delayed frames and cancels their timers when an end goes offline', async () => {
    const clock = new ManualClock(0)
    const net = new MemoryNetwork({ clock, faults: { delayMs: 50 } })
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    a.t.send('b', indexed(1))
    a.t.send('b', indexed(2))
    expect(clock.pending).toBe(2)
    net.disconnect('b')
    net.reconnect('b')
    expect(clock.pending).toBe(0)
    clock.advance(100)
    await flush()
    expect(b.l.frames).toEqual([])
    expect(net.stats).toMatchObject({ sent: 2, delivered: 0, dropped: 2, inFlight: 0 })
  })

  it('drops frames at roughly the configured rate', async () => {
    const net = new MemoryNetwork({ faults: { drop: 0.3, seed: 7 } })
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    const n = 10_000
    for (let i = 0; i < n; i++) a.t.send('b', indexed(i))
    await flush()
    const s = net.stats
    expect(s.sent).toBe(n)
    expect(s.dropped / n).toBeGreaterThan(0.27)
    expect(s.dropped / n).toBeLessThan(0.33)
    expect(s.delivered + s.dropped).toBe(n)
    expect(b.l.frames.length).toBe(s.delivered)
    // Survivors keep their order: drops alone never reorder.
    const idx = b.l.indexes()
    expect(idx).toEqual([...idx].sort((x, y) => x - y))
  })

  it('duplicates frames', async () => {
    const net = new MemoryNetwork({ faults: { duplicate: 1, seed: 1 } })
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    for (let i = 0; i < 3; i++) a.t.send('b', indexed(i))
    await flush()
    expect(b.l.indexes()).toEqual([0, 0, 1, 1, 2, 2])
    expect(b.l.frames[0]?.data).not.toBe(b.l.frames[1]?.data)
    expect(net.stats).toMatchObject({ sent: 3, duplicated: 3, delivered: 6 })

    net.faults({ duplicate: 0.25, seed: 9 })
    for (let i = 0; i < 4000; i++) a.t.send('b', indexed(i))
    await flush()
    const dup = net.stats.duplicated - 3
    expect(dup).toBeGreaterThan(900)
    expect(dup).toBeLessThan(1100)
  })

  it('reorders frames: a held frame goes after the next one, or after the hold time', async () => {
    const clock = new ManualClock(0)
    const net = new MemoryNetwork({ clock, faults: { reorder: 1, seed: 1 } })
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    a.t.send('b', indexed(0))
    a.t.send('b', indexed(1))
    await flush()
    expect(b.l.indexes()).toEqual([1, 0])

    a.t.send('b', indexed(2))
    await flush()
    expect(b.l.indexes()).toEqual([1, 0])
    clock.advance(19)
    expect(b.l.indexes()).toEqual([1, 0])
    clock.advance(1)
    await flush()
    expect(b.l.indexes()).toEqual([1, 0, 2])
    expect(clock.pending).toBe(0)

    net.faults({ reorder: 0.3, seed: 3 })
    for (let i = 3; i < 203; i++) a.t.send('b', indexed(i))
    clock.advance(20)
    await flush()
    const idx = b.l.indexes()
    expect([...idx].sort((x, y) => x - y)).toEqual(Array.from({ length: 203 }, (_, i) => i))
    expect(idx).not.toEqual(
      [...idx]
        .sort((x, y) => x - y)
        .slice(0, 3)
        .concat(idx.slice(3)),
    )
    const inversions = idx.slice(3).filter((v, i, arr) => i > 0 && v < (arr[i - 1] as number)).length
    expect(inversions).toBeGreaterThan(20)
    expect(net.stats.reordered).toBeGreaterThan(20)
  })

  it('releases held frames when faults are cleared', async () => {
    const clock = new ManualClock(0)
    const net = new MemoryNetwork({ clock, faults: { reorder: 1 } })
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    a.t.send('b', indexed(0))
    net.faults({})
    await flush()
    expect(b.l.indexes()).toEqual([0])
    expect(clock.pending).toBe(0)
  })

  it('reproduces the same outcome from the same seed', async () => {
    const run = async (seed: number): Promise<{ order: number[]; stats: unknown }> => {
      const clock = new ManualClock(0)
      const net = new MemoryNetwork({
        clock,
        faults: { drop: 0.2, duplicate: 0.2, reorder: 0.3, delayMs: [0, 10], seed },
      })
      expect(net.seed).toBe(seed)
      const a = open(net, 'a')
      const b = open(net, 'b')
      await flush()
      for (let i = 0; i < 300; i++) {
        a.t.send('b', indexed(i))
        clock.advance(1)
        if (i % 10 === 0) await flush()
      }
      clock.advance(1000)
      await flush()
      return { order: b.l.indexes(), stats: net.stats }
    }
    const first = await run(1234)
    const again = await run(1234)
    const other = await run(4321)
    expect(again).toEqual(first)
    expect(other.order).not.toEqual(first.order)
    expect(first.stats).toMatchObject({ sent: 300, inFlight: 0 })
  })

  it('validates fault options', () => {
    const net = new MemoryNetwork()
    expect(() => net.faults({ drop: 1.5 })).toThrow(RangeError)
    expect(() => net.faults({ duplicate: -0.1 })).toThrow(RangeError)
    expect(() => net.faults({ reorder: Number.NaN })).toThrow(RangeError)
    expect(() => net.faults({ delayMs: -1 })).toThrow(RangeError)
    expect(() => net.faults({ delayMs: [5, 1] })).toThrow(RangeError)
    expect(() => net.faults({ seed: 1.5 })).toThrow(RangeError)
    expect(() => net.faults({ drop: 0, duplicate: 1, reorder: 0.5, delayMs: [0, 0], seed: 3 })).not.toThrow()
  })

  it('pushes 100,000 frames through quickly', async () => {
    const net = new MemoryNetwork()
    const a = open(net, 'a')
    const b = open(net, 'b')
    await flush()
    const data = new Uint8Array(64)
    const start = performance.now()
    for (let i = 0; i < 100_000; i++) a.t.send('b', data)
    while (b.l.frames.length < 100_000) await flush()
    const ms = performance.now() - start
    expect(net.stats).toMatchObject({ sent: 100_000, delivered: 100_000, inFlight: 0 })
    expect(ms).toBeLessThan(5000)
  })
})
