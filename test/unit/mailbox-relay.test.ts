/**
 * Store and forward end to end: real relay processes (the CLI, LevelDB
 * mailbox in a temp directory) and real engines over WebSocketTransport.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { decodeFrame, encodeFrame } from '../../src/core/codec.js'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'
import { ILM, MemoryStore, webCryptoE2E, type E2EFactory, type Message, type StatusEvent } from '../../src/index.js'
import { createToken } from '../../src/relay/token.js'
import { CLOSE_CODES, envelope, openEnvelope, parseRelayControl } from '../../src/protocol/relay.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'
import { scrapeMetrics } from '../helpers/metrics.js'
import { RawClient } from '../helpers/relay-clients.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { startWsProxy } from '../helpers/ws-proxy.js'

const SECRET = 'mailbox-test-secret-long-enough-for-hs256!'
const cleanups: (() => Promise<unknown> | unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  stores.clear()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-mailbox-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function relay(dir: string, args: string[] = [], env: Record<string, string> = {}): Promise<RelayProcess> {
  const r = await startRelayProcess(['--mailbox-dir', dir, ...args], { INTERSESSION_DEV: '1', ...env })
  cleanups.push(() => r.kill())
  return r
}

interface Peer {
  readonly ilm: ILM
  readonly got: Message[]
  readonly statuses: StatusEvent[]
  readonly transport: WebSocketTransport
}

/** Each peer's store in the current test: its engine reopens on it, with the keys it published. */
const stores = new Map<string, MemoryStore>()
const storeOf = (id: string): MemoryStore => stores.get(id) ?? (stores.set(id, new MemoryStore()), stores.get(id)!)

/** An engine for `id` on the relay at `url`, online; `store` carries it across sessions. */
async function peer(url: string, id: string, store = storeOf(id), token = `dev:${id}`, encryption?: E2EFactory | false): Promise<Peer> {
  const transport = new WebSocketTransport({ localId: id, url, token, WebSocket, backoff: { initialMs: 20, maxMs: 200 } })
  const ilm = await ILM.open({ store, transport, limits: { retransmitMs: 200, maxRetransmitMs: 1000 }, ...(encryption !== undefined && { encryption }) })
  cleanups.push(() => ilm.close())
  const got: Message[] = []
  const statuses: StatusEvent[] = []
  ilm.on('status', (s) => void statuses.push(s))
  ilm.onMessage((m) => void got.push(m))
  await waitFor(() => transport.state.status === 'online', `${id} online`)
  return { ilm, got, statuses, transport }
}

/**
 * Each of `ids` logs in once and leaves, as a receiver that was online before:
 * its key bundle is then in the relay's directory, so senders can seal
 * messages for it while it is offline (nobody can encrypt to a peer that never
 * published keys).
 */
async function registered(url: string, ids: readonly string[], token = (id: string): string | Promise<string> => `dev:${id}`): Promise<void> {
  for (const id of ids) {
    const p = await peer(url, id, storeOf(id), await token(id))
    await waitFor(async () => (await p.transport.fetchKeys(id as PeerId)) !== null, `${id}'s keys in the directory`)
    await p.ilm.close()
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const count = (p: Peer, status: StatusEvent['status']): number => p.statuses.filter((s) => s.status === status).length
const texts = (p: Peer): unknown[] => p.got.map((m) => m.contents)

async function sendAll(p: Peer, to: string, items: readonly string[]): Promise<string[]> {
  const ids: string[] = []
  for (const item of items) ids.push((await p.ilm.send(to, item)).id)
  return ids
}

const numbered = (n: number, prefix: string, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`)

async function health(r: RelayProcess): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${r.port}/health`)
  return (await res.json()) as Record<string, unknown>
}

describe('mailbox: store and forward through a real relay process', () => {
  it('stores for an offline receiver; the sender leaves for good; the receiver gets everything once, in order; the sender later sees delivered', async () => {
    const r = await relay(tempDir())
    await registered(r.url, ['bob'])
    const aliceStore = new MemoryStore()
    const alice = await peer(r.url, 'alice', aliceStore)
    const ids = await sendAll(alice, 'bob', numbered(20, 'm'))
    await waitFor(() => count(alice, 'stored') === 20, '20 stored receipts')
    expect(await alice.ilm.status(ids[0]!)).toBe('stored')
    expect(await alice.ilm.connectedPeers()).toEqual([])
    await alice.ilm.close()

    const bob = await peer(r.url, 'bob')
    await waitFor(() => bob.got.length === 20, 'bob has 20')
    expect(texts(bob)).toEqual(numbered(20, 'm'))
    expect(bob.got.map((m) => m.seq)).toEqual(numbered(20, '').map(Number))
    expect(await bob.ilm.connectedPeers()).toEqual([]) // drained frames do not make alice look online
    await waitFor(async () => (await health(r)).drained === 20, 'drained counted')

    const back = await peer(r.url, 'alice', aliceStore)
    await waitFor(async () => (await back.ilm.status(ids[19]!)) === 'delivered', 'delivered after coming back')
    for (const id of ids) expect(await back.ilm.status(id)).toBe('delivered')
    expect(bob.got).toHaveLength(20)
  })

  it('mixes stored and live frames: the drain goes first, then live; order and exactly-once hold', async () => {
    const r = await relay(tempDir())
    await registered(r.url, ['bob'])
    const alice = await peer(r.url, 'alice')
    await sendAll(alice, 'bob', numbered(15, 'x'))
    await waitFor(() => count(alice, 'stored') === 15, '15 stored')
    const sending = (async () => {
      for (let i = 15; i < 45; i++) {
        await alice.ilm.send('bob', `x${i}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()
    const bob = await peer(r.url, 'bob')
    await sending
    await waitFor(() => bob.got.length >= 45, 'bob has 45')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(texts(bob)).toEqual(numbered(45, 'x'))
    await waitFor(() => count(alice, 'delivered') === 45, 'all delivered')
  })

  interface Backlog {
    /** Messages alice has the mailbox store for bob. */
    readonly n: number
    /** Bob's engine limits. */
    readonly limits?: Record<string, number>
    /** Bob's application subscribes only once the login's drain was sent (his inbox fills meanwhile). */
    readonly lateHandler?: boolean
    readonly aliceOnline?: boolean
    readonly encryption?: false
  }

  /**
   * Alice has the mailbox store `n` messages for bob, then bob logs in once: the login's drain sends a window of them
   * (his, given in `auth`), and bob asks for the rest a window at a time. Resolves with the entries the mailbox sent.
   * What bob's engine cannot keep as they come (past its window, or beyond a full inbox) only the mailbox has: alice
   * released or sealed them at `stored`, and never sends a stored seq again, online or not. Bob must get all of them
   * once, in order, on that one connection.
   */
  async function backlogAtLogin({ n, limits = {}, lateHandler = false, aliceOnline = false, encryption }: Backlog): Promise<number> {
    stores.clear()
    const r = await relay(tempDir())
    await registered(r.url, ['bob'])
    const alice = await peer(r.url, 'alice', storeOf('alice'), 'dev:alice', encryption)
    const items = numbered(n, 'b')
    await Promise.all(items.map((item) => alice.ilm.send('bob', item)))
    await waitFor(() => count(alice, 'stored') === n, `${n} stored`)
    if (!aliceOnline) await alice.ilm.close()
    const loginsBefore = (await health(r)).logins as number
    const transport = new WebSocketTransport({ localId: 'bob', url: r.url, token: 'dev:bob', WebSocket, backoff: { initialMs: 20, maxMs: 200 } })
    const bob = await ILM.open({
      store: storeOf('bob'),
      transport,
      limits: { retransmitMs: 200, maxRetransmitMs: 1000, ...limits },
      ...(encryption !== undefined && { encryption }),
    })
    cleanups.push(() => bob.close())
    const got: Message[] = []
    const subscribe = (): void => void bob.onMessage((m) => void got.push(m))
    if (!lateHandler) subscribe()
    // The login's drain sends a window of alice's, bob asks for the rest a window at a time: with a late handler,
    // until his inbox is full.
    const filled = Math.min(n, limits.maxInboxPerPeer ?? n)
    await waitFor(async () => ((await health(r)).drained as number) >= filled, `the mailbox sent ${filled}`)
    if (lateHandler) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      subscribe()
    }
    await waitFor(() => got.length >= n, `bob has all ${n}`, 10_000).catch((error: unknown) => {
      throw new Error(`${(error as Error).message} (has ${got.length})`)
    })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(got.map((m) => m.contents)).toEqual(items)
    expect(got.map((m) => m.seq)).toEqual(items.map((_, i) => i))
    // No second login brought them: bob asked the mailbox for them again on the connection he had.
    expect(transport.state.status).toBe('online')
    expect((await health(r)).logins).toBe(loginsBefore + 1)
    return (await health(r)).drained as number
  }

  it("a client's `window` in auth bounds each sender at login: that many of alice's, then `redrained` (more), the rest when asked; a malformed one refuses the login", async () => {
    stores.clear()
    const r = await relay(tempDir())
    const alice = await peer(r.url, 'alice', storeOf('alice'), 'dev:alice', false)
    await sendAll(alice, 'bob', numbered(5, 'w'))
    await waitFor(() => count(alice, 'stored') === 5, '5 stored')
    await alice.ilm.close()
    for (const window of [0, 65_537, 1.5, '2']) {
      const bad = await RawClient.connect(r.url)
      bad.send({ t: 'auth', token: 'dev:bob', window })
      expect((await bad.closed).code, `window ${JSON.stringify(window)}`).toBe(CLOSE_CODES.PROTOCOL)
    }
    const bob = await RawClient.connect(r.url)
    bob.send({ t: 'auth', token: 'dev:bob', window: 2 })
    await bob.next('welcome')
    const seqs = (): number[] => {
      const frames = bob.received.splice(0).filter((m) => m.t === 'frame')
      return frames.map((m) => {
        const decoded = decodeFrame((m as { frame: Uint8Array }).frame, 1 << 20)
        return decoded.ok && decoded.frame.kind === 'msg' ? decoded.frame.seq : -1
      })
    }
    expect(await bob.next('redrained')).toEqual({ t: 'redrained', from: 'alice', more: true })
    const first = bob.received.find((m) => m.t === 'frame') as { frame: Uint8Array } | undefined
    const decoded = first === undefined ? undefined : decodeFrame(first.frame, 1 << 20)
    const epoch = decoded?.ok === true ? decoded.frame.epoch : ''
    expect(seqs()).toEqual([0, 1])
    bob.send({ t: 'redrain', from: 'alice', epoch, after: 1, limit: 2 })
    expect(await bob.next('redrained')).toEqual({ t: 'redrained', from: 'alice', more: true })
    expect(seqs()).toEqual([2, 3])
    bob.send({ t: 'redrain', from: 'alice', epoch, after: 3, limit: 2 })
    expect(await bob.next('redrained')).toEqual({ t: 'redrained', from: 'alice', more: false })
    expect(seqs()).toEqual([4])
    bob.terminate()
  })

  it('a mailbox holding more than the receiver opens at once (1,500 sealed messages, window 256) arrives whole at one login', async () => {
    // Each once: the login's drain stopped alice's at bob's window, so nothing past it crossed twice (2,744 before).
    expect(await backlogAtLogin({ n: 1500 })).toBe(1500)
  })

  it('an inbox that filled as the mailbox drained (inbox 40, window 16) gets the rest once its application takes messages, without logging in again', async () => {
    await backlogAtLogin({ n: 300, limits: { maxInboxPerPeer: 40, window: 16 }, lateHandler: true })
  })

  it('the same with the sender online: it never sends a stored seq again', async () => {
    await backlogAtLogin({ n: 300, limits: { maxInboxPerPeer: 40, window: 16 }, lateHandler: true, aliceOnline: true })
  })

  it('the same without end-to-end encryption (the frames reach the inbox unopened, and a full one drops them)', async () => {
    await backlogAtLogin({ n: 300, limits: { maxInboxPerPeer: 40, window: 16 }, lateHandler: true, encryption: false })
  })

  it('survives SIGKILL: a relay restarted on the same directory still delivers what it stored; /metrics counts what it holds', async () => {
    const dir = tempDir()
    const first = await relay(dir)
    await registered(first.url, ['bob'])
    const alice = await peer(first.url, 'alice')
    expect((await scrapeMetrics(first.port)).sum('intersession_relay_mailbox_entries')).toBe(0)
    await sendAll(alice, 'bob', numbered(10, 'k'))
    await waitFor(() => count(alice, 'stored') === 10, '10 stored')
    const held = await scrapeMetrics(first.port)
    expect(held.sum('intersession_relay_mailbox_entries')).toBe(10)
    const bytes = held.sum('intersession_relay_mailbox_bytes')
    expect(bytes).toBeGreaterThan(10 * 'k0'.length)
    await first.kill()
    await alice.ilm.close()

    const second = await relay(dir)
    // Read back from the directory at open, not counted again.
    const reopened = await scrapeMetrics(second.port)
    expect(reopened.sum('intersession_relay_mailbox_entries')).toBe(10)
    expect(reopened.sum('intersession_relay_mailbox_bytes')).toBe(bytes)
    const bob = await peer(second.url, 'bob')
    await waitFor(() => bob.got.length === 10, 'bob has 10 after the restart')
    expect(texts(bob)).toEqual(numbered(10, 'k'))
    // Bob's acks settle his mailbox; alice, gone, has them waiting in hers.
    await waitFor(async () => (await scrapeMetrics(second.port)).sum('intersession_relay_mailbox_bytes') === 0, 'the messages acked')
    const acks = (await scrapeMetrics(second.port)).sum('intersession_relay_mailbox_entries')
    expect(acks).toBeGreaterThanOrEqual(1)
    expect(acks).toBeLessThanOrEqual(10)
    await peer(second.url, 'alice')
    await waitFor(async () => (await scrapeMetrics(second.port)).sum('intersession_relay_mailbox_entries') === 0, 'alice drained her acks: nothing held')
  })

  it('limits: a full mailbox fails the message with its reason, and the receiver is not wedged', async () => {
    const r = await relay(tempDir(), ['--mailbox-max-messages', '5', '--mailbox-max-bytes', '4000'])
    await registered(r.url, ['bob', 'carol'])
    const alice = await peer(r.url, 'alice')
    const small = await sendAll(alice, 'bob', numbered(8, 's'))
    const big = await sendAll(
      alice,
      'carol',
      ['a', 'b', 'c'].map((c) => c.repeat(1500)),
    )
    await waitFor(() => count(alice, 'stored') + count(alice, 'failed') === 11, '11 receipts')
    const failed = alice.statuses.filter((s) => s.status === 'failed')
    // Streams are sealed and sent independently: their failures come in no set order between them.
    expect(failed.map((s) => [s.to, s.seq, s.reason]).sort()).toEqual([
      ['bob', 5, 'full_messages'],
      ['bob', 6, 'full_messages'],
      ['bob', 7, 'full_messages'],
      ['carol', 2, 'full_bytes'],
    ])
    expect(await alice.ilm.status(small[7]!)).toBe('failed')
    await expect(alice.ilm.delivered(big[2]!)).rejects.toMatchObject({ code: 'MESSAGE_FAILED' })

    const bob = await peer(r.url, 'bob')
    await waitFor(() => bob.got.length === 5, 'bob has the 5 stored')
    await alice.ilm.send('bob', 'after')
    await waitFor(() => bob.got.length === 6, 'a later message arrives')
    expect(texts(bob)).toEqual([...numbered(5, 's'), 'after'])
    expect(bob.got[5]!.seq).toBe(8)
    const carol = await peer(r.url, 'carol')
    await waitFor(() => carol.got.length === 2, 'carol has the 2 stored')
    await alice.ilm.send('carol', 'later')
    await waitFor(() => carol.got.length === 3, 'carol gets a later message')
    expect((await health(r)).refusals).toMatchObject({ mailbox_full: 4 })
  })

  it('retention: a message held too long fails with reason retention (told at once, or at the next login), and later ones still arrive', async () => {
    const r = await relay(tempDir(), ['--mailbox-retention-ms', '800'])
    await registered(r.url, ['bob'])
    const alice = await peer(r.url, 'alice')
    const old = await sendAll(alice, 'bob', numbered(3, 'old'))
    const erinStore = new MemoryStore()
    const erin = await peer(r.url, 'erin', erinStore)
    const [lost] = await sendAll(erin, 'bob', ['from erin'])
    await waitFor(() => count(erin, 'stored') === 1, 'erin stored')
    await erin.ilm.close()

    await waitFor(() => count(alice, 'failed') === 3, '3 failed by retention', 10_000)
    expect(alice.statuses.filter((s) => s.status === 'failed').every((s) => s.reason === 'retention')).toBe(true)
    expect(await alice.ilm.status(old[0]!)).toBe('failed')
    const back = await peer(r.url, 'erin', erinStore)
    await waitFor(async () => (await back.ilm.status(lost!)) === 'failed', 'erin told at her next login')
    expect(back.statuses.find((s) => s.status === 'failed')).toMatchObject({ to: 'bob', seq: 0, reason: 'retention' })

    const bob = await peer(r.url, 'bob')
    await alice.ilm.send('bob', 'fresh')
    await back.ilm.send('bob', 'erin again')
    await waitFor(() => bob.got.length === 2, 'bob gets the later ones')
    expect(bob.got.map((m) => [m.from, m.seq, m.contents])).toEqual(
      expect.arrayContaining([
        ['alice', 3, 'fresh'],
        ['erin', 1, 'erin again'],
      ]),
    )
  })

  it("a peer cannot forge a stored receipt, store as another, or read another peer's mailbox", async () => {
    const env = { INTERSESSION_DEV: '', INTERSESSION_JWT_SECRET: SECRET }
    const r = await relay(tempDir(), [], env)
    const token = (id: string): Promise<string> => createToken({ secret: SECRET, peerId: id })
    await registered(r.url, ['bob', 'carol'], token)
    const alice = await peer(r.url, 'alice', new MemoryStore(), await token('alice'))
    await sendAll(alice, 'bob', ['secret'])
    await waitFor(() => count(alice, 'stored') === 1, 'stored')

    const mallory = await rawLogin(r.url, await token('mallory'))
    // A frame claiming to come from alice, for the offline carol: not stored.
    const forged = encodeFrame({
      kind: 'msg',
      from: 'alice' as PeerId,
      to: 'carol' as PeerId,
      epoch: '0000000000000-x' as Epoch,
      seq: 0,
      floor: 0,
      id: 'forged' as MessageId,
      contentKind: 's',
      contents: new TextEncoder().encode('"evil"'),
    })
    mallory.ws.send(envelope('carol', forged))
    // Signalling that looks like a receipt reaches alice only as a signal.
    mallory.ws.send(JSON.stringify({ t: 'signal', to: 'alice', data: { t: 'stored', peer: 'bob', epoch: 'x', seq: 5 } }))
    await waitFor(async () => ((await health(r)).refusals as Record<string, number>).forged === 1, 'forged counted')
    expect(mallory.received.filter((m) => m.t === 'frame')).toEqual([]) // its own mailbox is empty: nothing of bob's
    // A receipt sent by a client is not a message the relay accepts.
    mallory.ws.send(JSON.stringify({ t: 'stored', peer: 'bob', epoch: 'x', seq: 0 }))
    await waitFor(() => mallory.closed, 'mallory closed for a protocol violation')
    expect(count(alice, 'stored')).toBe(1)

    const carol = await peer(r.url, 'carol', storeOf('carol'), await token('carol'))
    const bob = await peer(r.url, 'bob', storeOf('bob'), await token('bob'))
    await waitFor(() => bob.got.length === 1, 'bob gets his message')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(carol.got).toEqual([])
    expect(bob.got.map((m) => m.contents)).toEqual(['secret'])
  })
})

interface Raw {
  readonly ws: WebSocket
  readonly received: { t: string }[]
  closed: boolean
}

async function rawLogin(url: string, token: string): Promise<Raw> {
  const ws = new WebSocket(url)
  const raw: Raw = { ws, received: [], closed: false }
  cleanups.push(() => ws.close())
  ws.on('error', () => {})
  ws.on('close', () => (raw.closed = true))
  ws.on('message', (data, isBinary) => {
    const buf = data as Buffer
    if (isBinary) raw.received.push({ t: openEnvelope(buf) === undefined ? 'garbage' : 'frame' })
    else raw.received.push(parseRelayControl(buf.toString('utf8')) ?? { t: 'garbage' })
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  ws.send(JSON.stringify({ t: 'auth', token }))
  await waitFor(() => raw.received.some((m) => m.t === 'welcome'), 'welcome')
  return raw
}

/** Bob online once (his keys in the directory), then alice's messages stored for him while he is away; alice leaves, and so does that relay's mailbox. */
async function storedThenMailboxLost(texts: readonly string[]): Promise<{ aliceStore: MemoryStore; bobStore: MemoryStore; ids: string[] }> {
  const first = await relay(tempDir())
  await registered(first.url, ['bob'])
  const alice = await peer(first.url, 'alice')
  const ids = await sendAll(alice, 'bob', texts)
  await waitFor(() => count(alice, 'stored') === texts.length, 'stored by the mailbox')
  await alice.ilm.close()
  await first.kill()
  return { aliceStore: storeOf('alice'), bobStore: storeOf('bob'), ids }
}

/**
 * Sealed messages the mailbox stored stay in their sender's store until
 * acknowledged and go again, sealed afresh, once the receiver is online: what
 * the mailbox holds may be sealed for a key the receiver no longer has, or
 * the mailbox may be gone. Rows an older version released are left to it.
 */
describe('mailbox: sealed messages it stored go again from their sender', () => {
  it('once bob acknowledged a message, what the mailbox stores for him while he is away is short (no key header); back, he opens it all once, in order', async () => {
    const r = await relay(tempDir())
    const proxy = await startWsProxy(r.url)
    cleanups.push(() => proxy.close())
    let bob = await peer(r.url, 'bob')
    const alice = await peer(proxy.url, 'alice')
    await alice.ilm.send('bob', 'greeting')
    await waitFor(() => count(alice, 'delivered') === 1, 'the greeting acknowledged')
    await bob.ilm.close()
    await waitFor(async () => !(await alice.ilm.connectedPeers()).includes('bob' as PeerId), 'bob gone at alice')
    proxy.log.length = 0
    const away = numbered(5, 'away ')
    await sendAll(alice, 'bob', away)
    await waitFor(() => count(alice, 'stored') === 5, '5 stored receipts')
    const bodies = proxy.log
      .filter((m) => m.dir === 'up' && m.binary)
      .map((m) => openEnvelope(m.data))
      .map((opened) => (opened === undefined ? undefined : decodeFrame(opened.frame, 1 << 20)))
      .flatMap((decoded) => (decoded?.ok === true && decoded.frame.kind === 'msg' && decoded.frame.sealed === true ? [decoded.frame.contents] : []))
    expect(bodies.length).toBeGreaterThanOrEqual(5)
    // Short: the kid with its top bit set, then the ciphertext of the kind byte and the contents, and the tag.
    for (const body of bodies) {
      expect(body[0]! & 0x80).toBe(0x80)
      expect(body.byteLength).toBe(4 + 1 + 'away 0'.length + 16)
    }
    bob = await peer(r.url, 'bob')
    await waitFor(() => bob.got.length === 5, 'bob has what the mailbox stored')
    expect(texts(bob)).toEqual(away)
    expect(bob.ilm.refused()).toEqual({})
  })

  it('a new key rejected, then accepted: what the mailbox stored under the old pin is sealed afresh and arrives once, in order, and later messages follow', async () => {
    const r = await relay(tempDir())

    const alice = await peer(r.url, 'alice')
    const changed: string[] = []
    alice.ilm.on('peer-key-changed', ({ peer }) => void changed.push(peer))
    const bobOld = await peer(r.url, 'bob')
    await alice.ilm.send('bob', 'before')
    await waitFor(() => bobOld.got.length === 1, 'bob has "before"')
    await bobOld.ilm.close()

    // Bob's store is wiped: a new epoch and new keys. Alice is told, and rejects the new key (wrongly, as it turns out).
    const wiped = new MemoryStore()
    const bob = await peer(r.url, 'bob', wiped)
    await waitFor(() => changed.includes('bob'), "alice told of bob's new key")
    await alice.ilm.rejectPeerKey('bob')
    expect((await alice.ilm.peerKeyStatus('bob')).status).toBe('ready')
    await bob.ilm.close()
    await waitFor(async () => (await alice.ilm.connectedPeers()).length === 0, 'bob gone')

    // Bob is away: the mailbox stores what alice writes, sealed for the key pinned before.
    const held = ['one', 'two', 'three']
    const ids: string[] = []
    for (const text of held) ids.push((await alice.ilm.send('bob', text)).id)
    await waitFor(() => count(alice, 'stored') === held.length, 'stored by the mailbox')

    // Bob is back: the mailbox hands them over and he cannot open them; alice is asked again, and this time accepts.
    const changedBefore = changed.length
    const back = await peer(r.url, 'bob', wiped)
    await waitFor(() => changed.length > changedBefore, "alice told of bob's new key again")
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(back.got).toEqual([])
    await alice.ilm.acceptPeerKey('bob')
    await waitFor(() => back.got.length === held.length, 'bob has what the mailbox stored')
    await alice.ilm.send('bob', 'after')
    await waitFor(() => back.got.length === held.length + 1, 'bob has the later one')
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(back.got.map((m) => m.contents)).toEqual([...held, 'after'])
    for (const id of ids) await waitFor(async () => (await alice.ilm.status(id)) === 'delivered', `${id} delivered`)
  })

  it('a mailbox lost (relay restarted on an empty directory): sealed stored messages go again from their sender once both are online, once each, in order', async () => {
    const texts = ['m0', 'm1', 'm2', 'm3', 'm4']
    const { aliceStore, bobStore, ids } = await storedThenMailboxLost(texts)
    const second = await relay(tempDir())
    const alice = await peer(second.url, 'alice', aliceStore)
    for (const id of ids) expect(await alice.ilm.status(id)).toBe('stored')
    const bob = await peer(second.url, 'bob', bobStore)
    await waitFor(() => bob.got.length === texts.length, 'bob has them from alice')
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(bob.got.map((m) => m.contents)).toEqual(texts)
    for (const id of ids) await waitFor(async () => (await alice.ilm.status(id)) === 'delivered', `${id} delivered`)
    // Sent again, they stayed `stored` until delivered.
    expect(alice.statuses.filter((s) => s.status === 'sent')).toEqual([])
  })

  it('a prekey retired while the mailbox held what was sealed for it (keepRetiredMs 0): sent again under the new prekey, once each, in order', async () => {
    const r = await relay(tempDir())
    // Bob's prekey is due for rotation 1.5 s after it was made, and a retired one is deleted at once.
    const rotating = webCryptoE2E({ rotateAfterMs: 1500, keepRetiredMs: 0 })
    const first = await peer(r.url, 'bob', storeOf('bob'), 'dev:bob', rotating)
    await waitFor(async () => (await first.transport.fetchKeys('bob' as PeerId)) !== null, "bob's keys in the directory")
    await first.ilm.close()
    const alice = await peer(r.url, 'alice')
    const texts = ['p0', 'p1', 'p2']
    const ids = await sendAll(alice, 'bob', texts)
    await waitFor(() => count(alice, 'stored') === texts.length, 'stored by the mailbox')
    await new Promise((resolve) => setTimeout(resolve, 1600))
    // Bob opens with a new prekey (the old one, and its private half, gone): the mailbox's copies no longer open.
    const bob = await peer(r.url, 'bob', storeOf('bob'), 'dev:bob', rotating)
    await waitFor(() => bob.got.length === texts.length, 'bob has them, sealed again by alice')
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(bob.got.map((m) => m.contents)).toEqual(texts)
    expect(bob.got.map((m) => m.seq)).toEqual([0, 1, 2])
    for (const id of ids) await waitFor(async () => (await alice.ilm.status(id)) === 'delivered', `${id} delivered`)
  })

  it('rows whose contents were released at `stored` (by an older version) are left to the mailbox: never sent with empty contents', async () => {
    const texts = ['r0', 'r1', 'r2']
    const { aliceStore, bobStore, ids } = await storedThenMailboxLost(texts)
    const handle = await aliceStore.open('alice' as PeerId)
    await handle.commit(texts.map((_, seq) => ({ op: 'release' as const, to: 'bob' as PeerId, seq })))
    await handle.close()
    const second = await relay(tempDir())
    const alice = await peer(second.url, 'alice', aliceStore)
    const bob = await peer(second.url, 'bob', bobStore)
    await alice.ilm.send('bob', 'later')
    // The later one waits behind the seqs only the lost mailbox had (order holds); nothing empty is handed over.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(bob.got).toEqual([])
    for (const id of ids) expect(await alice.ilm.status(id)).toBe('stored')
  })
})
