/**
 * `connect({ verifyPeerKey })` across the worker bridge: the page's function
 * crosses to the worker as a Comlink proxy (in the page sink) and the leader
 * tab's engine asks it about a peer's changed key. Real pieces in one Node
 * process: `connect()` and its Messenger, Comlink over a MessageChannel per
 * tab, `exposeHost()` with the default transport factory (BroadcastChannel),
 * the election on a Web Locks stand-in, one MemoryStore per identity shared by
 * its tabs (as IndexedDB is). Alice is a plain engine on the same channel;
 * her store is wiped to present a new identity key.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { connect, type Messenger } from '../../src/client/index.js'
import { IlmError } from '../../src/core/errors.js'
import { BroadcastChannelTransport, ILM, MemoryStore, type Message } from '../../src/index.js'
import { defaultFactories, exposeHost } from '../../src/worker/index.js'
import { installFakeLocks } from '../helpers/fake-locks.js'
import { sleep, waitFor } from '../helpers/e2e-peers.js'

/** A tab of bob's: its messenger, what its page saw, and what its verifyPeerKey was asked. */
interface Tab {
  readonly messenger: Messenger
  readonly got: Message[]
  readonly changed: string[]
  readonly errors: IlmError[]
  readonly asked: { readonly peer: string; readonly key: Uint8Array }[]
}

let network: string
let stores: Map<string, MemoryStore>
const cleanups: (() => unknown)[] = []

beforeEach(() => {
  network = `verify-${Math.random().toString(36).slice(2)}`
  stores = new Map()
  cleanups.push(installFakeLocks())
})

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Opens a tab of `peerId` whose page gives connect() `verifyPeerKey` (if any). */
async function openTab(peerId: string, verifyPeerKey?: (peer: string, key: Uint8Array) => boolean | Promise<boolean>): Promise<Tab> {
  const { port1, port2 } = new MessageChannel()
  exposeHost(port1, {
    createStore: (config) => stores.get(config.peerId) ?? stores.set(config.peerId, new MemoryStore()).get(config.peerId)!,
    createTransport: (config, context) => defaultFactories.createTransport(config, context),
  })
  const asked: Tab['asked'][number][] = []
  const messenger = await connect({
    peerId,
    transport: { kind: 'broadcast-channel', network },
    worker: port2,
    ...(verifyPeerKey !== undefined && {
      verifyPeerKey: (peer: string, key: Uint8Array) => (asked.push({ peer, key }), verifyPeerKey(peer, key)),
    }),
  })
  const tab: Tab = { messenger, got: [], changed: [], errors: [], asked }
  messenger.onMessage((m) => void tab.got.push(m))
  messenger.on('peer-key-changed', (e) => void tab.changed.push(e.peer))
  messenger.on('error', (e) => void tab.errors.push(e))
  cleanups.push(async () => {
    await messenger.close().catch(() => {})
    port1.close()
    port2.close()
  })
  return tab
}

/** Alice as a plain engine on the tabs' channel, on `store` (a new one: a wiped store, a new identity key). */
async function openAlice(store = new MemoryStore()): Promise<ILM> {
  const alice = await ILM.open({ store, transport: new BroadcastChannelTransport({ localId: 'alice', network }) })
  cleanups.push(() => alice.close().catch(() => {}))
  return alice
}

/** Alice pins bob (and he her) with a first message, then her store is wiped and she sends `after` under her new key. */
async function alicePinnedThenWiped(bob: Tab): Promise<{ alice: ILM; before: string | undefined }> {
  const first = await openAlice()
  await first.send('bob', 'before')
  await waitFor(() => bob.got.length === 1, 'bob got the first message')
  const before = await bob.messenger.safetyNumber('alice')
  await first.close()
  const alice = await openAlice()
  await alice.send('bob', 'after')
  return { alice, before }
}

const contents = (tab: Tab): unknown[] => tab.got.map((m) => m.contents)

describe('connect({ verifyPeerKey }) across the worker bridge', () => {
  it('refuses a verifyPeerKey that is not a function, at once', async () => {
    const { port2 } = new MessageChannel()
    cleanups.push(() => port2.close())
    const options = { peerId: 'bob', transport: { kind: 'broadcast-channel' }, worker: port2 } as const
    await expect(connect({ ...options, verifyPeerKey: true as never })).rejects.toThrow(TypeError)
    await expect(connect({ ...options, verifyPeerKey: 'yes' as never })).rejects.toThrow('verifyPeerKey must be a function')
  })

  it("the leader page's yes pins the new key at once: no peer-key-changed, the message comes without acceptPeerKey", async () => {
    const bob = await openTab('bob', () => true)
    const { alice } = await alicePinnedThenWiped(bob)
    await waitFor(() => bob.got.length === 2, "bob got alice's message under her new key")
    expect(contents(bob)).toEqual(['before', 'after'])
    expect(bob.changed).toEqual([])
    expect(bob.asked.map((a) => a.peer)).toEqual(['alice'])
    expect(bob.asked[0]!.key).toBeInstanceOf(Uint8Array)
    expect(bob.asked[0]!.key.byteLength).toBe(32)
    expect(await bob.messenger.safetyNumber('alice')).toBe(await alice.safetyNumber('bob'))
    expect(bob.errors).toEqual([])
  })

  it("the page's no holds the key with peer-key-changed, as without a hook; acceptPeerKey through the bridge delivers", async () => {
    const bob = await openTab('bob', () => false)
    await alicePinnedThenWiped(bob)
    await waitFor(() => bob.changed.length === 1, 'peer-key-changed at bob')
    await sleep(300)
    expect(contents(bob)).toEqual(['before'])
    expect(bob.asked.length).toBe(1)
    await bob.messenger.acceptPeerKey('alice')
    await waitFor(() => bob.got.length === 2, 'the held message')
    expect(contents(bob)).toEqual(['before', 'after'])
  })

  it('without a hook in any tab: held with peer-key-changed, nothing asked', async () => {
    const bob = await openTab('bob')
    await alicePinnedThenWiped(bob)
    await waitFor(() => bob.changed.length === 1, 'peer-key-changed at bob')
    await sleep(300)
    expect(contents(bob)).toEqual(['before'])
    expect(bob.errors).toEqual([])
  })

  it('a page function that throws: held with peer-key-changed, and KEY_VERIFY_FAILED reaches the page with its error as cause', async () => {
    const bob = await openTab('bob', () => {
      throw new TypeError('the key directory is down')
    })
    await alicePinnedThenWiped(bob)
    await waitFor(() => bob.changed.length === 1, 'peer-key-changed at bob')
    expect(bob.errors.map((e) => e.code)).toEqual(['KEY_VERIFY_FAILED'])
    expect(bob.errors[0]).toBeInstanceOf(IlmError)
    expect(bob.errors[0]!.cause).toMatchObject({ name: 'TypeError', message: 'the key directory is down' })
    expect(contents(bob)).toEqual(['before'])
  })

  it('a page that does not answer within 10 s: held with peer-key-changed and KEY_VERIFY_FAILED; its late yes changes nothing', async () => {
    let answer: (yes: boolean) => void = () => {}
    const bob = await openTab('bob', () => new Promise<boolean>((resolve) => (answer = resolve)))
    await alicePinnedThenWiped(bob)
    await waitFor(() => bob.asked.length === 1, 'bob asked')
    await sleep(8000)
    expect(bob.changed).toEqual([])
    await waitFor(() => bob.changed.length === 1, 'peer-key-changed at bob', 5000)
    expect(bob.errors.map((e) => e.code)).toEqual(['KEY_VERIFY_FAILED'])
    answer(true)
    await sleep(500)
    expect(contents(bob)).toEqual(['before'])
  }, 30_000)

  it("leadership moves: a follower's rejectPeerKey reaches the leader; the next leader asks its own page", async () => {
    const first = await openTab('bob', () => false)
    await waitFor(() => first.messenger.role === 'leader', 'the first tab leads')
    const second = await openTab('bob', () => true)
    await waitFor(() => second.messenger.role === 'follower', 'the second tab follows')
    const { alice, before } = await alicePinnedThenWiped(first)
    await waitFor(() => first.changed.length === 1 && second.changed.length === 1, 'peer-key-changed in both tabs')
    expect(first.asked.length).toBe(1)
    expect(second.asked).toEqual([])
    // From the follower: the leader drops the presented key and keeps the pin.
    await second.messenger.rejectPeerKey('alice')
    expect(await second.messenger.safetyNumber('alice')).toBe(before)
    expect(await first.messenger.safetyNumber('alice')).toBe(before)

    await first.messenger.close()
    await waitFor(() => second.messenger.role === 'leader', 'the second tab leads')
    // Alice's hello to the new engine presents her new key again: this time the second page is asked, and says yes.
    await waitFor(() => second.got.some((m) => m.contents === 'after'), "alice's message, in the second tab")
    expect(second.asked.map((a) => a.peer)).toEqual(['alice'])
    expect(first.asked.length).toBe(1)
    expect(second.changed).toEqual(['alice'])
    expect(await second.messenger.safetyNumber('alice')).toBe(await alice.safetyNumber('bob'))
    await sleep(300)
    expect(second.got.filter((m) => m.contents === 'after').length).toBe(1)
  }, 30_000)
})
