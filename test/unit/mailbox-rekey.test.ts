/**
 * A receiver's new key rejected, then accepted (docs/SECURITY.md, "A
 * changed key"): what the relay's mailbox stored meanwhile was sealed for
 * the key pinned before, which the receiver no longer has. Once the new key
 * is accepted, the sender seals it afresh and it arrives, each once, in
 * order, and the stream behind it flows. Real relay process (LevelDB
 * mailbox), real engines over WebSocketTransport, WebCrypto.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import WebSocket from 'ws'
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

it('a new key rejected, then accepted: what the mailbox stored under the old pin is sealed afresh and arrives once, in order, and later messages follow', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-rekey-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const relay = await startRelayProcess(['--mailbox-dir', dir], { INTERSESSION_DEV: '1' })
  cleanups.push(() => relay.kill())

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
