/**
 * Sealed messages the relay's mailbox stored stay in their sender's store
 * until acknowledged and go again, sealed afresh, once the receiver is
 * online (docs/PROTOCOL.md, store and forward):
 * - a receiver's new key rejected, then accepted (docs/SECURITY.md, "A
 *   changed key"): what the mailbox stored meanwhile was sealed for the key
 *   pinned before, which the receiver no longer has;
 * - a mailbox lost (the relay restarted on an empty directory);
 * - rows whose contents an older version released at `stored` are left to
 *   the mailbox, never sent with empty contents.
 * Real relay processes (LevelDB mailbox), real engines over
 * WebSocketTransport, WebCrypto.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { PeerId } from '../../src/core/ids.js'
import { ILM, MemoryStore, type Message, type StatusEvent } from '../../src/index.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'
import { startRelayProcess } from '../helpers/relay-process.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Peer {
  readonly ilm: ILM
  readonly got: Message[]
  readonly statuses: StatusEvent[]
  readonly transport: WebSocketTransport
  readonly changed: string[]
}

async function peer(url: string, id: string, store: MemoryStore): Promise<Peer> {
  const transport = new WebSocketTransport({ localId: id, url, token: `dev:${id}`, WebSocket, backoff: { initialMs: 20, maxMs: 200 } })
  const ilm = await ILM.open({ store, transport, limits: { retransmitMs: 200, maxRetransmitMs: 1000 } })
  cleanups.push(() => ilm.close())
  const p: Peer = { ilm, got: [], statuses: [], transport, changed: [] }
  ilm.on('status', (s) => void p.statuses.push(s))
  ilm.on('peer-key-changed', ({ peer }) => void p.changed.push(peer))
  ilm.onMessage((m) => void p.got.push(m))
  await waitFor(() => transport.state.status === 'online', `${id} online`)
  return p
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

async function relayOn(dir?: string): Promise<Awaited<ReturnType<typeof startRelayProcess>>> {
  const mailbox = dir ?? mkdtempSync(join(tmpdir(), 'intersession-rekey-'))
  if (dir === undefined) cleanups.push(() => rmSync(mailbox, { recursive: true, force: true }))
  const relay = await startRelayProcess(['--mailbox-dir', mailbox], { INTERSESSION_DEV: '1' })
  cleanups.push(() => relay.kill())
  return relay
}

/** Bob online once (his keys in the directory), then alice's messages stored for him while he is away; alice leaves, and so does that relay's mailbox. */
async function storedThenMailboxLost(texts: readonly string[]): Promise<{ aliceStore: MemoryStore; bobStore: MemoryStore; ids: string[] }> {
  const first = await relayOn()
  const [aliceStore, bobStore] = [new MemoryStore(), new MemoryStore()]
  const bob = await peer(first.url, 'bob', bobStore)
  await waitFor(async () => (await bob.transport.fetchKeys('bob' as PeerId)) !== null, "bob's keys in the directory")
  await bob.ilm.close()
  const alice = await peer(first.url, 'alice', aliceStore)
  const ids: string[] = []
  for (const text of texts) ids.push((await alice.ilm.send('bob', text)).id)
  await waitFor(() => count(alice, 'stored') === texts.length, 'stored by the mailbox')
  await alice.ilm.close()
  await first.kill()
  return { aliceStore, bobStore, ids }
}

it('a new key rejected, then accepted: what the mailbox stored under the old pin is sealed afresh and arrives once, in order, and later messages follow', async () => {
  const relay = await relayOn()

  const alice = await peer(relay.url, 'alice', new MemoryStore())
  const bobOld = await peer(relay.url, 'bob', new MemoryStore())
  await alice.ilm.send('bob', 'before')
  await waitFor(() => bobOld.got.length === 1, 'bob has "before"')
  await bobOld.ilm.close()

  // Bob's store is wiped: a new epoch and new keys. Alice is told, and rejects the new key (wrongly, as it turns out).
  const wiped = new MemoryStore()
  const bob = await peer(relay.url, 'bob', wiped)
  await waitFor(() => alice.changed.includes('bob'), "alice told of bob's new key")
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
  const changedBefore = alice.changed.length
  const back = await peer(relay.url, 'bob', wiped)
  await waitFor(() => alice.changed.length > changedBefore, "alice told of bob's new key again")
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
  const second = await relayOn()
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

it('rows whose contents were released at `stored` (by an older version) are left to the mailbox: never sent with empty contents', async () => {
  const texts = ['r0', 'r1', 'r2']
  const { aliceStore, bobStore, ids } = await storedThenMailboxLost(texts)
  const handle = await aliceStore.open('alice' as PeerId)
  await handle.commit(texts.map((_, seq) => ({ op: 'release' as const, to: 'bob' as PeerId, seq })))
  await handle.close()
  const second = await relayOn()
  const alice = await peer(second.url, 'alice', aliceStore)
  const bob = await peer(second.url, 'bob', bobStore)
  await alice.ilm.send('bob', 'later')
  // The later one waits behind the seqs only the lost mailbox had (order holds); nothing empty is handed over.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  expect(bob.got).toEqual([])
  for (const id of ids) expect(await alice.ilm.status(id)).toBe('stored')
})
