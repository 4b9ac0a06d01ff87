/**
 * The relay's key directory end to end (issue 16): real relay processes (the
 * CLI: no mailbox, a LevelDB mailbox, two cluster nodes on a real
 * redis-server), in-process relays on loopback ports where a test restarts
 * one on the same port, and a raw `ws` server speaking the login protocol
 * that never answers (an old relay). Clients are the production
 * WebSocketTransport and raw sockets.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { isIlmError } from '../../src/core/errors.js'
import type { PeerId } from '../../src/core/ids.js'
import { decodeBase64Url, encodeBase64Url } from '../../src/protocol/base64url.js'
import { CLOSE_CODES, MAX_BUNDLE_CHARS, parseClientControl, parseRelayControl } from '../../src/protocol/relay.js'
import { createRelay, type RelayHandle } from '../../src/relay/relay.js'
import { createToken } from '../../src/relay/token.js'
import { WebSocketTransport, type WebSocketTransportOptions } from '../../src/transport/websocket.js'
import { freePort } from '../helpers/free-port.js'
import { scrapeMetrics } from '../helpers/metrics.js'
import { startRedisProcess } from '../helpers/redis-process.js'
import { RawClient } from '../helpers/relay-clients.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { transportLog } from '../helpers/transport-log.js'

const SECRET = 'key-directory-test-secret-long-enough-for-hs256!'
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const p = (id: string): PeerId => id as PeerId
const bundle = (seed: number, length = 200): Uint8Array => Uint8Array.from({ length }, (_, i) => (seed * 31 + i * 7) % 256)
const token = (id: string): Promise<string> => createToken({ secret: SECRET, peerId: id })

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function relayProcess(args: readonly string[] = [], env: Record<string, string> = {}): Promise<RelayProcess> {
  const relay = await startRelayProcess(args, { INTERSESSION_JWT_SECRET: SECRET, ...env })
  cleanups.push(() => relay.kill())
  return relay
}

async function inProcessRelay(port = 0): Promise<RelayHandle> {
  const relay = await createRelay({ port, jwtSecret: SECRET, logger: () => {} })
  cleanups.push(() => relay.close())
  return relay
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-keys-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A production transport for `id` on `url`, opened and online. */
async function online(url: string, id: string, options: Partial<WebSocketTransportOptions> = {}): Promise<WebSocketTransport> {
  const t = new WebSocketTransport({ localId: id, url, token: () => token(id), WebSocket, backoff: { initialMs: 20, maxMs: 200 }, ...options })
  cleanups.push(() => t.close())
  t.open(transportLog())
  await until(() => t.state.status === 'online', `${id} online`)
  return t
}

/** Fetches `peer`'s keys through `t` until they equal `expected` (a publish is not answered, so it is polled). */
async function fetchedEventually(t: WebSocketTransport, peer: string, expected: Uint8Array): Promise<void> {
  let last: Uint8Array | null = null
  await until(
    async () => {
      last = await t.fetchKeys(p(peer))
      return last !== null && Buffer.from(last).equals(expected)
    },
    `${peer}'s bundle through ${t.localId} (last: ${String(last)})`,
  )
}

/**
 * Median round trip of `key?` for `peer` against the floor of the same
 * connection's `ping` round trip, 50 of each, alternated; printed.
 */
async function measureFetch(url: string, peer: string, what: string): Promise<void> {
  const raw = await RawClient.login(url, await token('meter'))
  cleanups.push(() => raw.terminate())
  const fetches: number[] = []
  const pings: number[] = []
  for (let i = 0; i < 50; i++) {
    let started = performance.now()
    raw.send({ t: 'key?', n: i, peer })
    await raw.next('key', (m) => m.n === i)
    fetches.push(performance.now() - started)
    started = performance.now()
    await raw.barrier()
    pings.push(performance.now() - started)
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!
  const [f, q] = [median(fetches), median(pings)]
  console.log(`key? round trip (${what}): p50 ${f.toFixed(3)} ms vs ping ${q.toFixed(3)} ms on the same connection, ratio ${(f / q).toFixed(2)}`)
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

describe('key directory messages (src/protocol/relay.ts)', () => {
  it('base64url: canonical round trip of any bytes, the same text as Node, non-canonical and foreign text refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 800 }), (bytes) => {
        const text = encodeBase64Url(bytes)
        expect(text).toBe(Buffer.from(bytes).toString('base64url'))
        expect(decodeBase64Url(text)).toEqual(bytes)
      }),
    )
    for (const bad of ['Q', 'QR', 'QUJ', 'QQ==', 'ab+c', 'ab/c', 'a b', 'ä']) expect(decodeBase64Url(bad), bad).toBeUndefined()
  })

  it('parses keys, key? and key; refuses every malformed variant without throwing', () => {
    const good = encodeBase64Url(bundle(1, 768))
    expect(good.length).toBe(MAX_BUNDLE_CHARS)
    expect(parseClientControl(JSON.stringify({ t: 'keys', bundle: good, peer: 'mallory' }))).toEqual({ t: 'keys', bundle: good })
    expect(parseClientControl(JSON.stringify({ t: 'key?', n: 7, peer: 'bob' }))).toEqual({ t: 'key?', n: 7, peer: 'bob' })
    expect(parseRelayControl(JSON.stringify({ t: 'key', n: 7, peer: 'bob', bundle: good }))).toEqual({ t: 'key', n: 7, peer: 'bob', bundle: good })
    expect(parseRelayControl(JSON.stringify({ t: 'key', n: 7, peer: 'bob', bundle: null }))).toEqual({ t: 'key', n: 7, peer: 'bob', bundle: null })
    const badBundles: unknown[] = ['', 'QR', 'a'.repeat(MAX_BUNDLE_CHARS + 2), 'ab+/', 42, null, undefined, ['QQ'], { b: 'QQ' }]
    for (const b of badBundles) {
      expect(parseClientControl(JSON.stringify({ t: 'keys', bundle: b })), `keys ${JSON.stringify(b)}`).toBeUndefined()
      if (b !== null) expect(parseRelayControl(JSON.stringify({ t: 'key', n: 1, peer: 'bob', bundle: b })), `key ${JSON.stringify(b)}`).toBeUndefined()
    }
    const badFetches: Record<string, unknown>[] = [
      { t: 'key?', n: 1.5, peer: 'bob' },
      { t: 'key?', n: '1', peer: 'bob' },
      { t: 'key?', n: 2 ** 53, peer: 'bob' },
      { t: 'key?', n: 1 },
      { t: 'key?', n: 1, peer: '' },
      { t: 'key?', n: 1, peer: 'a b' },
      { t: 'key?', n: 1, peer: 'x'.repeat(129) },
      { t: 'key?', n: 1, peer: 7 },
    ]
    for (const m of badFetches) {
      expect(parseClientControl(JSON.stringify(m)), JSON.stringify(m)).toBeUndefined()
      expect(parseRelayControl(JSON.stringify({ ...m, t: 'key', bundle: null })), JSON.stringify(m)).toBeUndefined()
    }
  })
})

describe('key directory on a relay process without a mailbox (in memory)', () => {
  it('a bundle published by one client is served to another; an unknown peer is null; /metrics counts both', async () => {
    const relay = await relayProcess()
    const alice = await online(relay.url, 'alice')
    const bob = await online(relay.url, 'bob')
    expect(await bob.fetchKeys(p('carol'))).toBeNull()
    alice.publishKeys(bundle(1))
    await fetchedEventually(bob, 'alice', bundle(1))
    alice.publishKeys(bundle(2, 768))
    await fetchedEventually(bob, 'alice', bundle(2, 768))
    expect(await alice.fetchKeys(p('alice'))).toEqual(bundle(2, 768))
    const metrics = await scrapeMetrics(relay.port)
    expect(metrics.sum('intersession_relay_keys_published_total')).toBe(2)
    expect(metrics.sum('intersession_relay_keys_fetched_total', { result: 'unknown' })).toBeGreaterThanOrEqual(1)
    expect(metrics.sum('intersession_relay_keys_fetched_total', { result: 'found' })).toBeGreaterThanOrEqual(2)
    expect(metrics.sum('intersession_relay_keys_failures_total')).toBe(0)
    await measureFetch(relay.url, 'alice', 'memory, relay process')
  })

  it('binds a bundle to the authenticated id: a client naming another peer in `keys` publishes only its own', async () => {
    const relay = await relayProcess()
    const alice = await online(relay.url, 'alice')
    alice.publishKeys(bundle(1))
    const mallory = await RawClient.login(relay.url, await token('mallory'))
    const forged = encodeBase64Url(bundle(66))
    mallory.send({ t: 'keys', bundle: forged, peer: 'alice', from: 'alice', id: 'alice' })
    mallory.send({ t: 'key?', n: 1, peer: 'mallory' })
    // Mallory's own fetch, sent after its publish on the same connection, sees it.
    expect(await mallory.next('key', (m) => m.n === 1)).toEqual({ t: 'key', n: 1, peer: 'mallory', bundle: forged })
    const bob = await online(relay.url, 'bob')
    await fetchedEventually(bob, 'alice', bundle(1))
    expect(await bob.fetchKeys(p('mallory'))).toEqual(bundle(66))
  })

  it('a bundle given in auth is in the directory before the welcome, which says so; a malformed one refuses the login', async () => {
    const relay = await relayProcess()
    const bob = await online(relay.url, 'bob')
    const given = encodeBase64Url(bundle(7))
    const alice = await RawClient.connect(relay.url)
    cleanups.push(() => alice.terminate())
    alice.send({ t: 'auth', token: await token('alice'), keys: given })
    expect(await alice.next('welcome')).toMatchObject({ id: 'alice', keys: true })
    // The first fetch after the welcome finds it: no window in which alice is online and the directory is not hers.
    expect(await bob.fetchKeys(p('alice'))).toEqual(bundle(7))
    const plain = await RawClient.connect(relay.url)
    cleanups.push(() => plain.terminate())
    plain.send({ t: 'auth', token: await token('carol') })
    expect(await plain.next('welcome')).toMatchObject({ id: 'carol', keys: false })
    for (const keys of ['', 'ab+/', 'A'.repeat(MAX_BUNDLE_CHARS + 4), 7]) {
      const raw = await RawClient.connect(relay.url)
      raw.send({ t: 'auth', token: await token('mallory'), keys })
      expect((await raw.closed).code, JSON.stringify(keys)).toBe(CLOSE_CODES.PROTOCOL)
    }
    expect(await bob.fetchKeys(p('mallory'))).toBeNull()
  })

  it('malformed keys and key? messages close the connection PROTOCOL; nothing is stored', async () => {
    const relay = await relayProcess()
    const malformed: unknown[] = [
      { t: 'keys', bundle: '' },
      { t: 'keys', bundle: 'A'.repeat(MAX_BUNDLE_CHARS + 4) },
      { t: 'keys', bundle: 'ab+/' },
      { t: 'keys', bundle: 'QR' },
      { t: 'keys' },
      { t: 'key?', n: 1.5, peer: 'bob' },
      { t: 'key?', n: 1, peer: '' },
      { t: 'key?', n: 1, peer: 'a b' },
      { t: 'key?', peer: 'bob' },
    ]
    for (const message of malformed) {
      const raw = await RawClient.login(relay.url, await token('mallory'))
      raw.send(message)
      expect((await raw.closed).code, JSON.stringify(message)).toBe(CLOSE_CODES.PROTOCOL)
    }
    const bob = await online(relay.url, 'bob')
    expect(await bob.fetchKeys(p('mallory'))).toBeNull()
    expect((await scrapeMetrics(relay.port)).sum('intersession_relay_refusals_total', { reason: 'malformed' })).toBe(malformed.length)
  })

  it("fetches count against the connection's rate limit", async () => {
    const relay = await relayProcess([], { INTERSESSION_RELAY_FRAMES_PER_SECOND: '10' })
    const raw = await RawClient.login(relay.url, await token('mallory'))
    for (let n = 0; n < 100; n++) raw.send({ t: 'key?', n, peer: 'bob' })
    raw.send({ t: 'ping', n: 1 })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const answered = raw.count('key')
    // A burst of twice the rate passes; the rest is dropped.
    expect(answered).toBeGreaterThan(0)
    expect(answered).toBeLessThanOrEqual(21)
    expect((await scrapeMetrics(relay.port)).sum('intersession_relay_refusals_total', { reason: 'rate' })).toBeGreaterThanOrEqual(100 - answered)
  })
})

describe('key directory in the mailbox backends', () => {
  it('LevelDB: a bundle published before a SIGKILL is served by the relay restarted on the same directory', async () => {
    const dir = tempDir()
    const first = await relayProcess(['--mailbox-dir', dir])
    const alice = await online(first.url, 'alice')
    alice.publishKeys(bundle(5, 768))
    const bob = await online(first.url, 'bob')
    await fetchedEventually(bob, 'alice', bundle(5, 768))
    alice.close()
    bob.close()
    await first.kill()

    const second = await relayProcess(['--mailbox-dir', dir])
    const carol = await online(second.url, 'carol')
    // Alice never logged in to the second run: only the disk can answer.
    expect(await carol.fetchKeys(p('alice'))).toEqual(bundle(5, 768))
    expect(await carol.fetchKeys(p('bob'))).toBeNull()
    await measureFetch(second.url, 'alice', 'LevelDB, read from disk')
  })

  it('Redis cluster mode: a bundle published through node A is served by node B', async () => {
    const redis = await startRedisProcess({ persistence: 'aof-always' })
    cleanups.push(() => redis.stop())
    const [a, b] = await Promise.all([0, 1].map(() => relayProcess(['--redis', redis.url, '--redis-durability', 'fsync'])))
    const alice = await online(a!.url, 'alice')
    const bob = await online(b!.url, 'bob')
    expect(await bob.fetchKeys(p('alice'))).toBeNull()
    alice.publishKeys(bundle(9))
    await fetchedEventually(bob, 'alice', bundle(9))
    alice.publishKeys(bundle(10))
    await fetchedEventually(bob, 'alice', bundle(10))
    expect((await scrapeMetrics(b!.port)).sum('intersession_relay_keys_fetched_total', { result: 'found' })).toBeGreaterThanOrEqual(2)
    expect((await scrapeMetrics(a!.port)).sum('intersession_relay_keys_published_total')).toBe(2)
    await measureFetch(b!.url, 'alice', 'Redis GET, cluster node B')
  })
})

describe('WebSocketTransport.publishKeys / fetchKeys', () => {
  it('re-publishes the last bundle after every login: a relay restarted empty serves it again', async () => {
    const port = await freePort()
    const relay = await inProcessRelay(port)
    const alice = new WebSocketTransport({ localId: 'alice', url: relay.url, token: () => token('alice'), WebSocket, backoff: { initialMs: 20, maxMs: 200 } })
    cleanups.push(() => alice.close())
    // Given before the first login: kept, and sent with it.
    alice.publishKeys(bundle(1))
    alice.publishKeys(bundle(2))
    alice.open(transportLog())
    const bob = await online(relay.url, 'bob')
    await fetchedEventually(bob, 'alice', bundle(2))

    await relay.close()
    await until(() => alice.state.status !== 'online', 'alice offline')
    alice.publishKeys(bundle(3)) // while offline: kept for the next login
    const restarted = await inProcessRelay(port) // without a mailbox: its directory starts empty
    await until(() => alice.state.status === 'online' && bob.state.status === 'online', 'both back online')
    await fetchedEventually(bob, 'alice', bundle(3))
    expect(restarted.stats().keysPublished).toBe(1)
  })

  it('misuse throws at once: a bad bundle or peer id', () => {
    const t = new WebSocketTransport({ localId: 'alice', url: 'ws://127.0.0.1:9', token: 'x', WebSocket })
    expect(() => t.publishKeys('abc' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => t.publishKeys(new Uint8Array(0))).toThrow(RangeError)
    expect(() => t.publishKeys(new Uint8Array(769))).toThrow(RangeError)
    expect(() => void t.fetchKeys('a b' as PeerId)).toThrow(TypeError)
    expect(() => new WebSocketTransport({ localId: 'alice', url: 'ws://127.0.0.1:9', token: 'x', WebSocket, keysTimeoutMs: 0 })).toThrow(RangeError)
  })

  it('rejects TRANSPORT_FAILED at once when not connected', async () => {
    const t = new WebSocketTransport({
      localId: 'alice',
      url: `ws://127.0.0.1:${await freePort()}`,
      token: 'x',
      WebSocket,
      backoff: { initialMs: 50, maxMs: 50 },
    })
    cleanups.push(() => t.close())
    const before = Date.now()
    expect(isIlmError(await rejection(t.fetchKeys(p('bob'))), 'TRANSPORT_FAILED')).toBe(true)
    t.open(transportLog())
    expect(isIlmError(await rejection(t.fetchKeys(p('bob'))), 'TRANSPORT_FAILED')).toBe(true)
    t.close()
    expect(isIlmError(await rejection(t.fetchKeys(p('bob'))), 'TRANSPORT_FAILED')).toBe(true)
    expect(Date.now() - before).toBeLessThan(100)
  })

  /** A WebSocket server that logs anyone in and hands each `key?` to `onFetch` (an old relay ignores it). */
  async function scriptedRelay(onFetch: (socket: WebSocket, n: number, peer: string) => void): Promise<{ url: string }> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise<void>((resolve) => server.once('listening', resolve))
    server.on('connection', (socket) => {
      socket.on('message', (data, isBinary) => {
        const m = isBinary ? undefined : parseClientControl((data as Buffer).toString('utf8'))
        if (m?.t === 'auth') {
          const id = m.token.replace(/^dev:/, '')
          socket.send(JSON.stringify({ t: 'welcome', id, session: 's', limits: { maxFrameBytes: 1 << 20, framesPerSecond: 1000 } }))
        } else if (m?.t === 'key?') onFetch(socket, m.n, m.peer)
      })
    })
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of server.clients) socket.terminate()
          server.close(() => resolve())
        }),
    )
    return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}` }
  }

  it('a relay that never answers (an old relay): rejects TRANSPORT_FAILED after keysTimeoutMs, and the connection stays up', async () => {
    const old = await scriptedRelay(() => {})
    const t = await online(old.url, 'alice', { token: 'dev:alice', keysTimeoutMs: 300 })
    const started = Date.now()
    const error = await rejection(t.fetchKeys(p('bob')))
    const waited = Date.now() - started
    expect(isIlmError(error, 'TRANSPORT_FAILED'), String(error)).toBe(true)
    expect(waited).toBeGreaterThanOrEqual(290)
    expect(waited).toBeLessThan(2_000)
    expect(t.state.status).toBe('online')
    console.log(`keys fetch timeout: rejected after ${waited} ms (keysTimeoutMs 300)`)
  })

  it('rejects TRANSPORT_FAILED when the connection drops before the answer', async () => {
    const relay = await scriptedRelay((socket) => socket.terminate())
    const t = await online(relay.url, 'alice', { token: 'dev:alice', keysTimeoutMs: 60_000 })
    const started = Date.now()
    expect(isIlmError(await rejection(t.fetchKeys(p('bob'))), 'TRANSPORT_FAILED')).toBe(true)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('ignores answers with an unknown n or for another peer, and settles on the matching one', async () => {
    const answer = (socket: WebSocket, n: number, peer: string, b: Uint8Array | null): void =>
      socket.send(JSON.stringify({ t: 'key', n, peer, bundle: b === null ? null : encodeBase64Url(b) }))
    const relay = await scriptedRelay((socket, n, peer) => {
      answer(socket, n + 1000, peer, bundle(1))
      answer(socket, n, 'mallory', bundle(2))
      socket.send(JSON.stringify({ t: 'key', n, peer, bundle: 'QR' }))
      answer(socket, n, peer, bundle(3))
      answer(socket, n, peer, bundle(4)) // a second answer to a settled fetch
    })
    const t = await online(relay.url, 'alice', { token: 'dev:alice', keysTimeoutMs: 5_000 })
    expect(await t.fetchKeys(p('bob'))).toEqual(bundle(3))
    expect(await t.fetchKeys(p('carol'))).toEqual(bundle(3))
    expect(t.state.status).toBe('online')
  })
})
