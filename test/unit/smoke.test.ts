import { describe, expect, it } from 'vitest'
import { ILM, MemoryNetwork, MemoryStore } from '../../src/index.js'

describe('smoke', () => {
  it('two peers exchange', async () => {
    const net = new MemoryNetwork()
    const a = await ILM.open({ store: new MemoryStore(), transport: net.connect('a') })
    const b = await ILM.open({ store: new MemoryStore(), transport: net.connect('b') })
    const got: unknown[] = []
    b.onMessage((m) => void got.push(m.contents))
    const r = await a.send('b', 'hello')
    await a.delivered(r.id)
    await a.send('b', { x: 1 })
    await new Promise((r) => setTimeout(r, 50))
    expect(got).toEqual(['hello', { x: 1 }])
    expect(await a.status(r.id)).toBe('delivered')
    await a.close()
    await b.close()
  })
})
