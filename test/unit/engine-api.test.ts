import { describe, expect, it } from 'vitest'
import { ILM, IlmError, MemoryNetwork, MemoryStore, encodeFrame, type Message } from '../../src/index.js'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'

const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

async function pair() {
  const net = new MemoryNetwork()
  const store = new MemoryStore()
  const a = await ILM.open({ store, transport: net.connect('a'), limits: { deferCommitMs: 0 } })
  const b = await ILM.open({ store: new MemoryStore(), transport: net.connect('b'), limits: { deferCommitMs: 0 } })
  const got: Message[] = []
  b.onMessage((m) => void got.push(m))
  return { net, store, a, b, got }
}

describe('send with an id (idempotency key)', () => {
  it('queues once; a repeated send resolves with the first receipt, also after a restart', async () => {
    const { net, store, a, b, got } = await pair()
    const first = await a.send('b', 'once', { id: 'order-42' })
    const again = await a.send('b', 'once', { id: 'order-42' })
    expect(again).toEqual(first)
    const [x, y] = await Promise.all([a.send('b', 'twin', { id: 'twin-1' }), a.send('b', 'twin', { id: 'twin-1' })])
    expect(x).toEqual(y)
    await a.delivered(first.id)
    await a.close()
    const a2 = await ILM.open({ store, transport: net.connect('a'), limits: { deferCommitMs: 0 } })
    expect(await a2.send('b', 'once', { id: 'order-42' })).toEqual(first)
    await a2.delivered(x.id)
    await settle()
    expect(got.map((m) => m.contents)).toEqual(['once', 'twin'])
    await a2.close()
    await b.close()
  })

  it('refuses an id already used toward another peer, and a malformed id', async () => {
    const { a, b, net } = await pair()
    net.disconnect('b')
    await a.send('b', 'x', { id: 'shared' })
    await expect(a.send('c', 'x', { id: 'shared' })).rejects.toMatchObject({ code: 'DUPLICATE_ID' })
    await expect(a.send('b', 'x', { id: 'has space' })).rejects.toBeInstanceOf(TypeError)
    expect(await a.pending()).toEqual({ outbound: 1, inbound: 0 })
    await a.close()
    await b.close()
  })
})

describe('misuse', () => {
  it('throws TypeError/RangeError for bad options at once', async () => {
    const net = new MemoryNetwork()
    await expect(ILM.open({ store: undefined as never, transport: net.connect('x') })).rejects.toBeInstanceOf(TypeError)
    await expect(ILM.open({ store: new MemoryStore(), transport: net.connect('y'), limits: { window: 0 } })).rejects.toBeInstanceOf(RangeError)
    await expect(ILM.open({ store: new MemoryStore(), transport: net.connect('z'), limits: { nope: 1 } as never })).rejects.toBeInstanceOf(TypeError)
    const { a, b } = await pair()
    expect(() => a.onMessage(42 as never)).toThrow(TypeError)
    expect(() => a.on('nope' as never, () => {})).toThrow(TypeError)
    await expect(a.send('b', 'x', { ttlMs: -5 })).rejects.toBeInstanceOf(RangeError)
    await expect(a.shutdown({ timeoutMs: -1 })).rejects.toBeInstanceOf(RangeError)
    expect(await a.status('no such id')).toBe('unknown')
    await expect(a.delivered('unknown-id')).rejects.toMatchObject({ code: 'UNKNOWN_MESSAGE' })
    await a.close()
    await b.close()
  })
})

describe('hostile input from the network', () => {
  it('garbage, forged and misdirected frames are refused, counted, and change nothing', async () => {
    const { net, a, b, got } = await pair()
    const { id } = await a.send('b', 'real')
    await a.delivered(id)
    const before = { a: await a.pending(), b: await b.pending() }
    const mallory = net.connect('mallory')
    mallory.open({ frame() {}, peer() {}, closed() {} })
    await settle()
    const epoch = '00000000a.attackerEpoch' as Epoch
    const forged = (from: string, to: string) =>
      encodeFrame({
        kind: 'msg',
        from: from as PeerId,
        to: to as PeerId,
        epoch,
        seq: 0,
        floor: 0,
        id: 'forged' as MessageId,
        contentKind: 's',
        contents: new TextEncoder().encode('evil'),
      })
    mallory.send('b', new Uint8Array([1, 2, 3]))
    mallory.send('b', new Uint8Array(5 * 1024 * 1024))
    mallory.send('b', forged('a', 'b')) // claims to be a
    mallory.send('b', forged('mallory', 'a')) // not addressed to b
    mallory.send('a', encodeFrame({ kind: 'ack', from: 'mallory' as PeerId, to: 'a' as PeerId, epoch, upTo: 99 }))
    mallory.send('a', encodeFrame({ kind: 'reset', from: 'mallory' as PeerId, to: 'a' as PeerId, epoch, expected: epoch }))
    await settle()
    expect(b.refused()).toMatchObject({ TRUNCATED: 1, OVERSIZE: 1, FORGED: 1, MISDIRECTED: 1 })
    expect(a.refused()).toMatchObject({ STALE_ACK: 1, BAD_RESET: 1 })
    expect({ a: await a.pending(), b: await b.pending() }).toEqual(before)
    expect(got.map((m) => m.contents)).toEqual(['real'])
    mallory.close()
    await a.close()
    await b.close()
  })

  it('an unknown peer can only open its own stream, which stays separate', async () => {
    const { net, b, got, a } = await pair()
    const c = await ILM.open({ store: new MemoryStore(), transport: net.connect('c'), limits: { deferCommitMs: 0 } })
    await c.delivered((await c.send('b', 'from c')).id)
    await settle()
    expect(got.map((m) => [m.from, m.contents])).toEqual([['c', 'from c']])
    await Promise.all([a.close(), b.close(), c.close()])
  })

  it('IlmError carries a stable code and survives JSON', () => {
    const error = new IlmError('QUEUE_FULL', 'full', { cause: new Error('x') })
    expect(JSON.parse(JSON.stringify(error))).toEqual({ name: 'IlmError', code: 'QUEUE_FULL', message: 'full' })
    expect(error.cause).toBeInstanceOf(Error)
  })
})

describe('a send repeated after its first attempt landed', () => {
  it('resolves with the first receipt whether the first is queued, in the same batch, or acknowledged', async () => {
    const { a, b, got } = await pair()
    const [first, twin] = await Promise.all([a.send('b', 'x', { id: 'again-1' }), a.send('b', 'x', { id: 'again-1' })])
    expect(twin).toEqual(first)
    expect(await a.send('b', 'x', { id: 'again-1' })).toEqual(first)
    await a.delivered(first.id)
    expect(await a.status(first.id)).toBe('delivered')
    expect(await a.send('b', 'x', { id: 'again-1' })).toEqual(first)
    const next = await a.send('b', 'y')
    expect(next.seq).toBe(first.seq + 1)
    await a.delivered(next.id)
    await settle()
    expect(got.map((m) => m.contents)).toEqual(['x', 'y'])
    await a.close()
    await b.close()
  })
})

describe('status events', () => {
  it('a listener hears each transition of the messages sent while it listens, in order; delivered() settles with no listener at all', async () => {
    const { a, got } = await pair()
    // Nobody listens: delivered() still settles (it does not depend on a status listener).
    const quiet = await a.send('b', 'quiet')
    await a.delivered(quiet.id)
    const heard: string[] = []
    const off = a.on('status', (event) => void heard.push(`${event.seq}:${event.status}`))
    const loud = await a.send('b', 'loud')
    await a.delivered(loud.id)
    await settle()
    off()
    const after = await a.send('b', 'after')
    await a.delivered(after.id)
    await settle()
    expect(heard).toEqual([`${loud.seq}:queued`, `${loud.seq}:sent`, `${loud.seq}:delivered`])
    expect(got.map((m) => m.contents)).toEqual(['quiet', 'loud', 'after'])
  })
})
