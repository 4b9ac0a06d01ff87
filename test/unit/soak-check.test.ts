/// <reference types="node" />
/** The soak's verdict and fault proxy (test/soak): they must catch what they claim to catch. */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { check } from '../soak/check.js'
import { FaultProxy } from '../soak/fault-proxy.js'
import { Ledger } from '../soak/ledger.js'
import { Rng } from '../soak/rng.js'

/** A ledger with resolved sends `ns` from a to b, then handovers `got` (n values) at the given times. */
function ledger(ns: readonly number[], got: ReadonlyArray<readonly [n: number, at: number]>, kills: readonly number[] = []): Ledger {
  const l = new Ledger()
  for (const n of ns) {
    const s = l.attempt('a', 'b', n)
    s.id = `id${n}`
    s.outcome = 'resolved'
  }
  got.forEach(([n, at], seq) => l.handover({ from: 'a', to: 'b', n, id: `id${n}`, seq, tab: 'b', key: `k${seq}`, at }))
  for (const at of kills) l.kills.push({ peer: 'b', kind: 'reload', at })
  return l
}

describe('soak verdict', () => {
  it('passes a clean stream', () => {
    expect(check(ledger([0, 1, 2], [[0, 10], [1, 20], [2, 30]]), 0)).toMatchObject({ sent: 3, lost: 0, duplicated: 0, replayed: 0, reordered: 0, phantom: 0 })
  })

  it('counts a resolved send never handed over as lost', () => {
    expect(check(ledger([0, 1, 2], [[0, 10], [2, 30]]), 0)).toMatchObject({ lost: 1, reordered: 0 })
  })

  it('counts an older message after a newer one as reordered', () => {
    expect(check(ledger([0, 1, 2], [[0, 10], [2, 20], [1, 30]]), 0)).toMatchObject({ lost: 0, reordered: 1 })
  })

  it('allows the message in hand to be replayed after a kill of the receiver, and nothing else', () => {
    expect(check(ledger([0, 1], [[0, 10], [1, 20], [1, 40]], [30]), 0)).toMatchObject({ replayed: 1, duplicated: 0 })
    // No kill between: a duplicate.
    expect(check(ledger([0, 1], [[0, 10], [1, 20], [1, 40]], [50]), 0)).toMatchObject({ replayed: 0, duplicated: 1 })
    // Not the last one handed over before the kill: a duplicate.
    expect(check(ledger([0, 1], [[0, 10], [1, 20], [0, 40]], [30]), 0)).toMatchObject({ replayed: 0, duplicated: 1 })
    // A kill of another peer does not count.
    const other = ledger([0, 1], [[0, 10], [1, 20], [1, 40]])
    other.kills.push({ peer: 'a', kind: 'reload', at: 30 })
    expect(check(other, 0)).toMatchObject({ replayed: 0, duplicated: 1 })
  })

  it('counts a handover that matches no send as phantom', () => {
    const l = ledger([0], [[0, 10]])
    l.handover({ from: 'a', to: 'b', n: 7, id: 'x', seq: 1, tab: 'b', key: 'k7', at: 20 })
    expect(check(l, 0)).toMatchObject({ phantom: 1 })
  })
})

describe('soak fault proxy', () => {
  async function echoServer(): Promise<{ port: number; close(): void }> {
    const server = net.createServer((s) => s.pipe(s))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
  }

  async function roundTrip(proxy: FaultProxy, chunks: readonly string[], during?: () => void): Promise<{ text: string; ms: number }> {
    const socket = net.connect(proxy.port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    await new Promise((resolve) => setTimeout(resolve, 20))
    during?.()
    const started = Date.now()
    const want = chunks.join('')
    let text = ''
    const done = new Promise<void>((resolve) =>
      socket.on('data', (d) => {
        text += String(d)
        if (text.length >= want.length) resolve()
      }),
    )
    for (const c of chunks) socket.write(c)
    await done
    socket.destroy()
    return { text, ms: Date.now() - started }
  }

  it('keeps the byte order under delays, holds bytes during a stall, and cuts', async () => {
    const echo = await echoServer()
    const proxy = await FaultProxy.start(new Rng(7), echo.port)
    try {
      const chunks = Array.from({ length: 50 }, (_, i) => `<${i}>`)
      const delayed = await roundTrip(proxy, chunks, () => expect(proxy.delay(5000, 30)).toBe(true))
      expect(delayed.text).toBe(chunks.join(''))
      const stalled = await roundTrip(proxy, ['x'], () => expect(proxy.stall(300)).toBe(true))
      expect(stalled.ms).toBeGreaterThanOrEqual(250)
      const socket = net.connect(proxy.port, '127.0.0.1')
      const closed = new Promise((resolve) => socket.once('close', resolve))
      await new Promise((resolve) => socket.once('connect', resolve))
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(proxy.cut()).toBe(true)
      await closed
      proxy.setUpstream(undefined)
      const refused = net.connect(proxy.port, '127.0.0.1')
      await new Promise((resolve) => refused.once('close', resolve))
    } finally {
      await proxy.close()
      echo.close()
    }
  })
})
