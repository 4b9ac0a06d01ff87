/**
 * `connect({ verifyPeerKey })` across the worker bridge: the page's function
 * crosses to the worker as a Comlink proxy (in the page sink) and the leader
 * tab's engine asks it about a peer's changed key. Also the other key calls
 * across the bridge and the tab bus (`peerKeyStatus`, decisions tied to a
 * safety number), and the tab bus with a leader tab of an older version
 * (a fake one, as old leaders behave). Real pieces in one Node
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
import { codeOf } from '../helpers/engines.js'

/** A tab of bob's: its messenger, what its page saw, and what its verifyPeerKey was asked. */
interface Tab {
  readonly messenger: Messenger
  readonly got: Message[]
  readonly changed: string[]
  readonly pinned: string[]
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
async function openTab(
  peerId: string,
  verifyPeerKey?: (peer: string, key: Uint8Array) => boolean | Promise<boolean>,
  options: { verifyTimeoutMs?: number } = {},
): Promise<Tab> {
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
    ...options,
    ...(verifyPeerKey !== undefined && {
      verifyPeerKey: (peer: string, key: Uint8Array) => (asked.push({ peer, key }), verifyPeerKey(peer, key)),
    }),
  })
  const tab: Tab = { messenger, got: [], changed: [], pinned: [], errors: [], asked }
  messenger.onMessage((m) => void tab.got.push(m))
  messenger.on('peer-key-changed', (e) => void tab.changed.push(e.peer))
  messenger.on('peer-key-pinned', (e) => void tab.pinned.push(e.peer))
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

describe('connect({ verifyTimeoutMs })', () => {
  it('refuses a bad bound at once, before any worker answers', async () => {
    const { port2 } = new MessageChannel()
    cleanups.push(() => port2.close())
    const options = { peerId: 'bob', transport: { kind: 'broadcast-channel' }, worker: port2, verifyPeerKey: () => true } as const
    for (const bad of [0, -1, 1.5, Number.NaN]) await expect(connect({ ...options, verifyTimeoutMs: bad })).rejects.toThrow(RangeError)
    await expect(connect({ ...options, verifyTimeoutMs: '500' as never })).rejects.toThrow('verifyTimeoutMs must be a number')
  })

  it("the leader's engine waits as long as its page's bound: no answer within 500 ms holds the key with KEY_VERIFY_FAILED", async () => {
    const bob = await openTab('bob', () => new Promise<boolean>(() => {}), { verifyTimeoutMs: 500 })
    await alicePinnedThenWiped(bob)
    await waitFor(() => bob.asked.length === 1, 'bob asked')
    const askedAt = Date.now()
    await waitFor(() => bob.changed.length === 1, 'peer-key-changed at bob', 3000)
    expect(Date.now() - askedAt).toBeGreaterThanOrEqual(400)
    expect(bob.errors.map((e) => e.code)).toEqual(['KEY_VERIFY_FAILED'])
  })
})

describe('key status and decisions across the worker bridge and the tab bus', () => {
  it('peerKeyStatus in the leader and a follower tab; a decision tied to a stale number is KEY_MISMATCH from the follower; peer-key-pinned in both', async () => {
    const leader = await openTab('bob')
    await waitFor(() => leader.messenger.role === 'leader', 'the first tab leads')
    const follower = await openTab('bob')
    await waitFor(() => follower.messenger.role === 'follower', 'the second tab follows')
    expect(await follower.messenger.peerKeyStatus('alice')).toEqual({ status: 'unknown' })
    const { alice, before } = await alicePinnedThenWiped(leader)
    await waitFor(() => leader.changed.length === 1 && follower.changed.length === 1, 'peer-key-changed in both tabs')
    const presented = await alice.safetyNumber('bob')
    const status = { status: 'changed', pinnedSafetyNumber: before, presentedSafetyNumber: presented }
    expect(await follower.messenger.peerKeyStatus('alice')).toEqual(status)
    expect(await leader.messenger.peerKeyStatus('alice')).toEqual(status)
    expect(leader.pinned).toEqual(['alice'])

    const stale = follower.messenger.acceptPeerKey('alice', { safetyNumber: before! })
    expect(await codeOf(stale)).toBe('KEY_MISMATCH')
    await expect(follower.messenger.rejectPeerKey('alice', { safetyNumber: 12 as never })).rejects.toThrow(TypeError)
    expect((await leader.messenger.peerKeyStatus('alice')).status).toBe('changed')
    await follower.messenger.acceptPeerKey('alice', { safetyNumber: presented! })
    await waitFor(() => leader.pinned.length === 2 && follower.pinned.length === 2, 'peer-key-pinned in both tabs')
    expect(await leader.messenger.peerKeyStatus('alice')).toEqual({ status: 'ready', pinnedSafetyNumber: presented })
    await waitFor(() => follower.got.length === 2, "alice's held message, in the follower")
    expect(contents(follower)).toEqual(['before', 'after'])
  }, 30_000)

  it('a leader tab answers a method it does not know (a later version calls it) with UNSUPPORTED', async () => {
    const bob = await openTab('bob')
    await waitFor(() => bob.messenger.role === 'leader', 'bob leads')
    const channel = new BroadcastChannel('intersession-tabs:bob')
    cleanups.push(() => channel.close())
    const results: unknown[] = []
    channel.onmessage = (event: MessageEvent) => {
      const m = event.data as { t?: string; tab?: string }
      if (m.t === 'result' && m.tab === 'later') results.push(m)
    }
    channel.postMessage({ t: 'call', tab: 'later', call: '1', method: 'frobnicate', args: [] })
    await waitFor(() => results.length === 1, 'an answer')
    expect(results[0]).toMatchObject({ call: '1', ok: false, error: { name: 'IlmError', code: 'UNSUPPORTED' } })
  })

  it('a leader tab of an older version (no level in its heartbeat, deaf to methods it does not know): new calls reject UNSUPPORTED at once and are not sent; old ones are served', async () => {
    const old = fakeOldLeader('bob')
    const bob = await openTab('bob')
    await waitFor(() => bob.messenger.role === 'follower', 'bob follows the old leader')
    await bob.messenger.ready()
    const started = Date.now()
    const bounded = <T>(call: Promise<T>): Promise<T> =>
      Promise.race([call, sleep(2000).then(() => Promise.reject(new Error('no answer within 2 s: the call hangs')))])
    expect(await codeOf(bounded(bob.messenger.peerKeyStatus('alice')))).toBe('UNSUPPORTED')
    // The old leader knows acceptPeerKey but not its safety number: it would pin whatever key is presented.
    expect(await codeOf(bounded(bob.messenger.acceptPeerKey('alice', { safetyNumber: '1' })))).toBe('UNSUPPORTED')
    expect(await codeOf(bounded(bob.messenger.rejectPeerKey('alice', { safetyNumber: '1' })))).toBe('UNSUPPORTED')
    expect(Date.now() - started).toBeLessThan(1000)
    expect(old.calls).toEqual([])
    await bounded(bob.messenger.acceptPeerKey('alice'))
    expect(await bounded(bob.messenger.safetyNumber('alice'))).toBe('old')
    expect(old.calls).toEqual([
      // Without options: what an old leader's engine takes as a plain acceptPeerKey(peer).
      ['acceptPeerKey', ['alice', undefined]],
      ['safetyNumber', ['alice']],
    ])
  })
})

/**
 * A leader tab as intersession before tab bus level 2 behaved: it holds the identity's lock, sends heartbeats without a
 * level, serves the methods it knows (answering `old` to each) and drops any other call unanswered.
 */
function fakeOldLeader(peerId: string): { readonly calls: [string, unknown[]][] } {
  const known = ['send', 'delivered', 'status', 'connectedPeers', 'pending', 'acceptPeerKey', 'rejectPeerKey', 'safetyNumber']
  const calls: [string, unknown[]][] = []
  const channel = new BroadcastChannel(`intersession-tabs:${peerId}`)
  channel.onmessage = (event: MessageEvent) => {
    const m = event.data as { t?: string; tab?: string; call?: string; method?: string; args?: unknown[] }
    if (m.t !== 'call' || !known.includes(m.method!)) return
    calls.push([m.method!, m.args!])
    channel.postMessage({ t: 'result', tab: m.tab, leader: 'old-leader', call: m.call, ok: true, value: 'old' })
  }
  const beat = (): void => channel.postMessage({ t: 'leader', tab: 'old-leader', online: true })
  const heartbeat = setInterval(beat, 200)
  let release = (): void => {}
  void navigator.locks.request(`intersession:${peerId}`, () => new Promise<void>((resolve) => (release = resolve)))
  beat()
  cleanups.push(() => {
    clearInterval(heartbeat)
    release()
    channel.close()
  })
  return { calls }
}
