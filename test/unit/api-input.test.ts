/**
 * Bad input to every public function: wrong types, empty and huge values, and
 * calls after close. Misuse throws (or, for a promise-returning function,
 * rejects at once with) a TypeError or RangeError; runtime refusals reject
 * with an IlmError and a stable code; and nothing changes in the store.
 */
// The IDB globals must be fake-indexeddb's (idb recognises requests by instanceof).
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { ILM, IlmError, MemoryNetwork, MemoryStore, type Clock, type Message, type PeerId, type Transport } from '../../src/index.js'
import { BroadcastChannelTransport } from '../../src/transport/broadcast-channel.js'
import { WebRtcTransport, type RtcConnector, type SignallingTransport } from '../../src/transport/webrtc.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'
import { deleteDatabase, IndexedDBStore } from '../../src/storage/indexeddb.js'
import { createRelay, type RelayOptions } from '../../src/relay/relay.js'
import { createToken } from '../../src/relay/token.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { tick } from '../helpers/engines.js'

const closers: Array<() => unknown> = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

const HUGE = 'x'.repeat(1024 * 1024 + 1)
/** Wrong types for a string parameter (and for an options object, less `undefined`). */
const NOT_STRINGS: readonly unknown[] = [undefined, null, 42, 0, NaN, true, {}, [], () => 'x', Symbol('s'), 10n, new Uint8Array(1)]
const NOT_OBJECTS: readonly unknown[] = [null, 42, 'options', true, () => ({}), Symbol('s'), 10n]
const BAD_PEER_IDS: readonly unknown[] = [...NOT_STRINGS, '', ' ', 'a b', 'tab\there', 'nul\u0000', 'x'.repeat(129), HUGE]

/** The error a call throws synchronously or rejects with (fails if it does neither). */
async function failure(call: () => unknown): Promise<unknown> {
  let result: unknown
  try {
    result = call()
  } catch (error) {
    return error
  }
  try {
    await result
  } catch (error) {
    return error
  }
  throw new Error(`expected a failure, got ${String(result)}`)
}

async function expectMisuse(call: () => unknown, ...classes: Array<new (...args: never[]) => Error>): Promise<void> {
  const error = await failure(call)
  const allowed = classes.length > 0 ? classes : [TypeError, RangeError]
  expect(
    allowed.some((c) => error instanceof c),
    `expected ${allowed.map((c) => c.name).join(' or ')}, got ${String(error)}`,
  ).toBe(true)
  expect(error).not.toBeInstanceOf(IlmError)
}

async function expectCode(call: () => unknown, code: string): Promise<void> {
  const error = await failure(call)
  expect(error).toBeInstanceOf(IlmError)
  expect((error as IlmError).code).toBe(code)
}

/** An engine `a` over a memory network with a receiver `b` that is offline unless told otherwise. */
async function engines() {
  const net = new MemoryNetwork()
  const store = new MemoryStore()
  const clock = new ManualClock()
  const a = await ILM.open({ store, transport: net.connect('a'), clock })
  closers.push(() => a.close())
  return { net, store, clock, a }
}

/** What the store holds for `a` (opened after the engine closed, so nothing is fenced that still runs). */
async function stored(store: MemoryStore) {
  const handle = await store.open('a' as PeerId)
  try {
    const snapshot = await handle.load()
    const outbox = await handle.readOutbox('b' as PeerId, 0, 1000)
    return { outStreams: snapshot.outStreams, inStreams: snapshot.inStreams, outbox: outbox.map((r) => [r.seq, r.id]), counts: await handle.count() }
  } finally {
    await handle.close()
  }
}

describe('ILM.open', () => {
  it('refuses missing and mistyped options with TypeError/RangeError, before touching the store', async () => {
    const net = new MemoryNetwork()
    const store = new MemoryStore()
    const transport = (id = 'a'): Transport => net.connect(id)
    for (const options of [undefined, ...NOT_OBJECTS]) await expectMisuse(() => ILM.open(options as never), TypeError)
    await expectMisuse(() => ILM.open({ store: undefined as never, transport: transport() }), TypeError)
    await expectMisuse(() => ILM.open({ store: {} as never, transport: transport() }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: undefined as never }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: { localId: 'a', open: () => {} } as never }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: transport(), clock: { now: () => 0 } as never }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: transport(), newId: 'id' as never }), TypeError)
    for (const limits of [42, 'x', true]) await expectMisuse(() => ILM.open({ store, transport: transport(), limits: limits as never }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { nope: 1 } as never }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { window: '5' } as never }), TypeError)
    await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { window: 1.5 } }), TypeError)
    for (const window of [0, -1, 65_537, Number.MAX_SAFE_INTEGER]) {
      await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { window } }), RangeError)
    }
    await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { window: NaN } }))
    await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { window: Infinity } }))
    await expectMisuse(() => ILM.open({ store, transport: transport(), limits: { retransmitMs: 5000, maxRetransmitMs: 1000 } }), RangeError)
    for (const id of ['', 'a b', 'x'.repeat(129)]) {
      await expectMisuse(() => ILM.open({ store, transport: { ...transport('z'), localId: id, open: () => {}, send: () => {}, close: () => {} } }), TypeError)
    }
    // Nothing was opened: the store never saw identity "a".
    const handle = await store.open('a' as PeerId)
    expect((await handle.load()).meta).toBeUndefined()
    await handle.close()
  })
})

describe('ILM methods', () => {
  it('send refuses bad peers, contents and options with typed errors and consumes no seq', async () => {
    const { store, a } = await engines()
    const first = await a.send('b', 'first')
    expect(first.seq).toBe(0)
    for (const to of BAD_PEER_IDS) await expectCode(() => a.send(to as string, 'x'), 'INVALID_PEER_ID')
    await expectCode(() => a.send('a', 'x'), 'SELF_SEND')
    class Point {
      x = 1
    }
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    const deep = JSON.parse('['.repeat(300) + ']'.repeat(300)) as unknown
    for (const contents of [
      undefined,
      () => 1,
      Symbol('s'),
      10n,
      NaN,
      Infinity,
      new Point(),
      new Map(),
      new Date(0),
      cycle,
      deep,
      [1, () => 2],
      { f: Symbol('x') },
    ]) {
      await expectCode(() => a.send('b', contents), 'UNSERIALIZABLE')
    }
    await expectCode(() => a.send('b', HUGE), 'TOO_LARGE')
    await expectCode(() => a.send('b', new Uint8Array(1024 * 1024 + 1)), 'TOO_LARGE')
    await expectCode(() => a.send('b', { s: HUGE }), 'TOO_LARGE')
    for (const options of NOT_OBJECTS) await expectMisuse(() => a.send('b', 'x', options as never), TypeError)
    for (const ttlMs of [0, -1, 1.5, NaN, Infinity, 2 ** 60]) await expectMisuse(() => a.send('b', 'x', { ttlMs }), RangeError)
    await expectMisuse(() => a.send('b', 'x', { ttlMs: '100' as never }))
    for (const id of [42, '', 'has space', 'x'.repeat(65), HUGE, {}]) await expectMisuse(() => a.send('b', 'x', { id: id as never }), TypeError)

    // Empty contents are contents: each kind is accepted, and the stream goes on at seq 1.
    const empties = await Promise.all(['', new Uint8Array(0), {}, [], null, 0, false].map((c) => a.send('b', c)))
    expect(empties.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(await a.pending()).toEqual({ outbound: 8, inbound: 0 })
    await a.close()
    const after = await stored(store)
    expect(after.outStreams).toMatchObject([{ to: 'b', nextSeq: 8, ackedUpTo: -1 }])
    expect(after.outbox.map(([seq]) => seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('empty and odd but valid contents arrive as they were sent', async () => {
    const net = new MemoryNetwork()
    const a = await ILM.open({ store: new MemoryStore(), transport: net.connect('a') })
    const b = await ILM.open({ store: new MemoryStore(), transport: net.connect('b') })
    closers.push(
      () => a.close(),
      () => b.close(),
    )
    const got: Message[] = []
    b.onMessage((m) => void got.push(m))
    const sent = ['', new Uint8Array(0), {}, [], null, 0, false, { u: undefined, n: -0 }, '\u{1F600}\u0000']
    for (const contents of sent) await a.delivered((await a.send('b', contents)).id)
    for (let i = 0; i < 20 && got.length < sent.length; i++) await tick()
    expect(got.map((m) => m.contents)).toEqual(['', new Uint8Array(0), {}, [], null, 0, false, { n: 0 }, '\u{1F600}\u0000'])
  })

  it('subscriptions, lookups and shutdown refuse wrong types', async () => {
    const { store, a } = await engines()
    await a.send('b', 'x')
    for (const handler of [undefined, null, 42, 'f', {}]) expect(() => a.onMessage(handler as never)).toThrow(TypeError)
    for (const event of [undefined, null, 42, '', 'nope', 'message']) expect(() => a.on(event as never, () => {})).toThrow(TypeError)
    for (const listener of [undefined, null, 42, 'f']) expect(() => a.on('status', listener as never)).toThrow(TypeError)
    for (const id of NOT_STRINGS) {
      await expectMisuse(() => a.status(id as string), TypeError)
      await expectMisuse(() => a.delivered(id as string), TypeError)
    }
    // Strings that are no id this peer ever issued: unknown, not misuse.
    for (const id of ['', 'has space', HUGE, 'never-sent']) {
      expect(await a.status(id)).toBe('unknown')
      await expectCode(() => a.delivered(id), 'UNKNOWN_MESSAGE')
    }
    for (const options of NOT_OBJECTS) await expectMisuse(() => a.shutdown(options as never), TypeError)
    for (const timeoutMs of [-1, 1.5, NaN, Infinity, '10']) await expectMisuse(() => a.shutdown({ timeoutMs: timeoutMs as never }))
    // None of that started a shutdown: sends still work.
    expect((await a.send('b', 'y')).seq).toBe(1)
    await a.close()
    expect((await stored(store)).outStreams).toMatchObject([{ to: 'b', nextSeq: 2, ackedUpTo: -1 }])
  })

  it('after close: every call rejects CLOSED, subscribing is inert, and the store is untouched', async () => {
    const { store, a } = await engines()
    const { id } = await a.send('b', 'x')
    const waiting = a.delivered(id)
    await a.close()
    await expectCode(() => waiting, 'CLOSED')
    const before = await stored(store)
    await expectCode(() => a.send('b', 'y'), 'CLOSED')
    await expectCode(() => a.send('b', 'y', { id: 'idem' }), 'CLOSED')
    await expectCode(() => a.delivered(id), 'CLOSED')
    await expectCode(() => a.status(id), 'CLOSED')
    await expectCode(() => a.pending(), 'CLOSED')
    await expectCode(() => a.connectedPeers(), 'CLOSED')
    // Misuse is still misuse after close.
    expect(() => a.onMessage(42 as never)).toThrow(TypeError)
    const off = a.onMessage(() => {})
    expect(typeof off).toBe('function')
    off()
    expect(typeof a.on('status', () => {})).toBe('function')
    await expect(a.close()).resolves.toBeUndefined()
    await expect(a.shutdown()).resolves.toBeUndefined()
    expect(await stored(store)).toEqual(before)
  })

  it('during shutdown new sends reject CLOSED and nothing is queued', async () => {
    const { store, a, clock } = await engines()
    await a.send('b', 'x')
    const down = a.shutdown({ timeoutMs: 1000 })
    await expectCode(() => a.send('b', 'y'), 'CLOSED')
    clock.advance(1000)
    await down
    expect((await stored(store)).outStreams).toMatchObject([{ to: 'b', nextSeq: 1, ackedUpTo: -1 }])
  })
})

describe('stores', () => {
  it('MemoryStore refuses mistyped options and bad identities', async () => {
    for (const options of NOT_OBJECTS) expect(() => new MemoryStore(options as never)).toThrow(TypeError)
    expect(() => new MemoryStore({ faults: 42 as never })).toThrow(TypeError)
    expect(() => new MemoryStore({ faults: { commit: 'always' as never } })).toThrow(TypeError)
    const store = new MemoryStore()
    expect(() => store.faults(42 as never)).toThrow(TypeError)
    for (const id of BAD_PEER_IDS) await expectCode(() => store.open(id as PeerId), 'INVALID_PEER_ID')
    const handle = await store.open('a' as PeerId)
    await handle.close()
    await expectCode(() => handle.load(), 'CLOSED')
    await expectCode(() => handle.commit([]), 'CLOSED')
  })

  it('IndexedDBStore refuses mistyped options at construction and bad identities at open', async () => {
    const indexedDB = new IDBFactory()
    for (const options of NOT_OBJECTS) expect(() => new IndexedDBStore(options as never)).toThrow(TypeError)
    for (const factory of [42, 'idb', {}]) expect(() => new IndexedDBStore({ indexedDB: factory as never })).toThrow(TypeError)
    expect(() => new IndexedDBStore({ dbName: 'fixed' as never })).toThrow(TypeError)
    expect(() => new IndexedDBStore({ durability: 'fast' as never })).toThrow(TypeError)
    for (const pageSize of [0, -1, 1.5, NaN, Infinity]) expect(() => new IndexedDBStore({ pageSize })).toThrow(RangeError)
    expect(() => new IndexedDBStore({ pageSize: '5' as never })).toThrow()
    for (const blockedTimeoutMs of [0, -1, 1.5]) expect(() => new IndexedDBStore({ blockedTimeoutMs })).toThrow(RangeError)
    const store = new IndexedDBStore({ indexedDB })
    for (const id of BAD_PEER_IDS) {
      await expectCode(() => store.open(id as PeerId), 'INVALID_PEER_ID')
      await expectCode(() => deleteDatabase(id as PeerId, { indexedDB }), 'INVALID_PEER_ID')
    }
    expect(await indexedDB.databases()).toEqual([])
    const handle = await store.open('api-input' as PeerId)
    await handle.close()
    await expectCode(() => handle.load(), 'CLOSED')
    await expectCode(() => handle.commit([]), 'CLOSED')
    await expectCode(() => handle.count(), 'CLOSED')
  })
})

describe('transports', () => {
  it('MemoryNetwork refuses mistyped options and peer ids', () => {
    for (const options of NOT_OBJECTS) expect(() => new MemoryNetwork(options as never)).toThrow(TypeError)
    expect(() => new MemoryNetwork({ clock: {} as never })).toThrow(TypeError)
    expect(() => new MemoryNetwork({ faults: { drop: 2 } })).toThrow(RangeError)
    const net = new MemoryNetwork()
    for (const id of BAD_PEER_IDS) expect(() => net.connect(id as string)).toThrow(TypeError)
  })

  it('WebSocketTransport refuses mistyped options', () => {
    const ok = { localId: 'a', url: 'ws://127.0.0.1:1', token: 't' }
    for (const options of [undefined, ...NOT_OBJECTS]) expect(() => new WebSocketTransport(options as never)).toThrow(TypeError)
    for (const localId of BAD_PEER_IDS) expect(() => new WebSocketTransport({ ...ok, localId: localId as string })).toThrow(TypeError)
    for (const url of ['', 'http://127.0.0.1', 'not a url', 42, HUGE]) expect(() => new WebSocketTransport({ ...ok, url: url as string })).toThrow(TypeError)
    expect(() => new WebSocketTransport({ localId: 'a', urls: [], token: 't' })).toThrow(TypeError)
    expect(() => new WebSocketTransport({ ...ok, urls: ['ws://127.0.0.1:2'] })).toThrow(TypeError)
    for (const token of ['', 42, null, {}]) expect(() => new WebSocketTransport({ ...ok, token: token as never })).toThrow(TypeError)
    for (const heartbeatMs of [0, -1, NaN, Infinity]) expect(() => new WebSocketTransport({ ...ok, heartbeatMs })).toThrow(RangeError)
  })

  it('BroadcastChannelTransport refuses mistyped options', () => {
    for (const options of [undefined, ...NOT_OBJECTS]) expect(() => new BroadcastChannelTransport(options as never)).toThrow(TypeError)
    for (const localId of BAD_PEER_IDS) expect(() => new BroadcastChannelTransport({ localId: localId as string })).toThrow(TypeError)
    expect(() => new BroadcastChannelTransport({ localId: 'a', network: 42 as never })).toThrow(TypeError)
    for (const heartbeatMs of [0, -1, NaN]) expect(() => new BroadcastChannelTransport({ localId: 'a', heartbeatMs })).toThrow(RangeError)
  })

  it('WebRtcTransport refuses mistyped options', () => {
    const relay: SignallingTransport = { localId: 'a', open: () => {}, send: () => {}, close: () => {}, signal: () => {}, onSignal: undefined }
    const connector: RtcConnector = { connect: () => {}, signal: () => {}, disconnect: () => {} }
    for (const options of [undefined, ...NOT_OBJECTS]) expect(() => new WebRtcTransport(options as never)).toThrow(TypeError)
    expect(() => new WebRtcTransport({ relay: undefined as never, connector })).toThrow(TypeError)
    expect(() => new WebRtcTransport({ relay: {} as never, connector })).toThrow(TypeError)
    expect(() => new WebRtcTransport({ relay, connector: undefined as never })).toThrow(TypeError)
    expect(() => new WebRtcTransport({ relay, connector: { connect: () => {} } as never })).toThrow(TypeError)
    expect(() => new WebRtcTransport({ relay, connector, clock: {} as Clock })).toThrow(TypeError)
    for (const openTimeoutMs of [0, -1, NaN, Infinity]) expect(() => new WebRtcTransport({ relay, connector, openTimeoutMs })).toThrow(RangeError)
    expect(() => new WebRtcTransport({ relay, connector, retryAfterMs: -5 })).toThrow(RangeError)
    expect(() => new WebRtcTransport({ relay, connector, highWaterBytes: 0 })).toThrow(RangeError)
  })
})

describe('relay', () => {
  const quiet = (): void => {}

  it('createRelay refuses mistyped options before listening', async () => {
    for (const options of [undefined, ...NOT_OBJECTS]) await expectMisuse(() => createRelay(options as never), TypeError)
    const dev: RelayOptions = { dev: true, logger: quiet }
    await expectMisuse(() => createRelay({ logger: quiet }), TypeError) // no auth
    await expectMisuse(() => createRelay({ dev: true, jwtSecret: 's', logger: quiet }), TypeError) // two
    await expectMisuse(() => createRelay({ jwtSecret: '', logger: quiet }), TypeError)
    await expectMisuse(() => createRelay({ verify: 'yes' as never, logger: quiet }), TypeError)
    for (const host of ['', 42]) await expectMisuse(() => createRelay({ ...dev, host: host as string }), TypeError)
    for (const port of [-1, 65_536, 1.5, NaN, '80']) await expectMisuse(() => createRelay({ ...dev, port: port as number }), RangeError)
    await expectMisuse(() => createRelay({ ...dev, limits: 42 as never }), TypeError)
    await expectMisuse(() => createRelay({ ...dev, limits: { nope: 1 } as never }), TypeError)
    for (const value of [0, -1, 1.5, NaN, '5']) await expectMisuse(() => createRelay({ ...dev, limits: { framesPerSecond: value as number } }), RangeError)
    await expectMisuse(() => createRelay({ ...dev, limits: { pingIntervalMs: 2 ** 40 } }), RangeError)
    await expectMisuse(() => createRelay({ ...dev, logger: 'stdout' as never }), TypeError)
    await expectMisuse(() => createRelay({ ...dev, mailbox: {} as never }), TypeError)
  })

  it('a closed relay stays closed: close is idempotent and stats still answer', async () => {
    const relay = await createRelay({ dev: true, logger: quiet })
    await relay.close()
    await expect(relay.close()).resolves.toBeUndefined()
    expect(relay.stats().connections).toBe(0)
  })

  it('createToken refuses bad peer ids, secrets and lifetimes', async () => {
    for (const options of [undefined, ...NOT_OBJECTS]) await expectMisuse(() => createToken(options as never), TypeError)
    for (const peerId of BAD_PEER_IDS) await expectMisuse(() => createToken({ secret: 's', peerId: peerId as string }), TypeError)
    for (const secret of ['', new Uint8Array(0), 42, null, {}]) await expectMisuse(() => createToken({ secret: secret as never, peerId: 'a' }), TypeError)
    for (const expiresIn of [NaN, Infinity, 'soon', '', {}, true])
      await expectMisuse(() => createToken({ secret: 's', peerId: 'a', expiresIn: expiresIn as never }))
    expect(await createToken({ secret: 's', peerId: 'a', expiresIn: 60 })).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)
  })
})
