/**
 * intersession/playwright, the kit apps test with, driving its smallest app
 * (app/kit.ts) against a real relay process. Each fault is checked to have
 * really happened, on both sides, before what it should cause is checked.
 */
import { fileURLToPath } from 'node:url'
import { expect, expectExactlyOnce, test, type KitRelay, type Peer } from '../../src/playwright/index.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

// In this repository the relay runs from source; an app gets it from the intersession-relay package.
test.use({ relayOptions: { command: [process.execPath, '--import', 'tsx', 'src/relay/cli.ts'], cwd: ROOT } })

async function app(relay: KitRelay, peer: string, { webrtc = false } = {}): Promise<{ url: string }> {
  const query = new URLSearchParams({ peer, relay: relay.url, token: await relay.token(peer), ...(webrtc && { webrtc: '1' }) })
  return { url: `/kit.html?${query}` }
}

async function sendMany(from: Peer, to: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) ids.push(await from.send(to, `${tag} ${i}`))
  return ids
}

test('offline() cuts the peer at the relay and in the browser; a send meanwhile is delivered only after online()', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  const first = await alice.send('bob', 'before')
  await alice.waitDelivered([first])
  await bob.waitReceived([first])
  expect(bob.received()).toEqual([first])

  await alice.offline()
  expect(await relay.connectedPeers()).not.toContain('alice')
  expect((await alice.connection()).status).not.toBe('online')
  expect(await alice.page.evaluate(() => navigator.onLine)).toBe(false)
  await expect(alice.page.locator('#status')).not.toHaveText('online')
  const whileOffline = await alice.send('bob', 'while offline')
  await alice.page.waitForTimeout(1500)
  expect(await alice.status(whileOffline)).toBe('queued')
  expect(await alice.pending()).toMatchObject({ outbound: 1 })
  expect(bob.received()).toEqual([first])

  await alice.online()
  expect(await relay.connectedPeers()).toContain('alice')
  await alice.waitDelivered([whileOffline])
  await expect.poll(() => bob.received()).toEqual([first, whileOffline])
  await expect(bob.page.locator('#inbox li')).toHaveCount(2)
})

test('offline() with WebRTC on closes the data channels on both sides; nothing flows until online(), then direct again', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice', { webrtc: true }))
  const bob = await peer('bob', await app(relay, 'bob', { webrtc: true }))
  // The first messages open the streams both sides watch, and with them the channel.
  const warm = [await alice.send('bob', 'warm a'), await bob.send('alice', 'warm b')]
  await bob.waitReceived(warm.slice(0, 1))
  await alice.waitReceived(warm.slice(1))
  await expect.poll(async () => [await alice.rtcConnected(), await bob.rtcConnected()], { timeout: 20_000 }).toEqual([1, 1])
  const direct = async (tag: string): Promise<string[]> => {
    const before = (await relay.health()).framesIn
    const ids = await sendMany(alice, 'bob', 20, tag)
    await alice.waitDelivered(ids)
    await bob.waitReceived(ids)
    expect((await relay.health()).framesIn - before).toBeLessThan(5)
    return ids
  }
  const first = await direct('direct')

  await alice.offline()
  expect(await alice.rtcConnected()).toBe(0)
  // The other side sees the cut too: its channel to alice closed, and the relay lists alice as gone.
  await expect.poll(() => bob.rtcConnected(), { timeout: 10_000 }).toBe(0)
  expect(await relay.connectedPeers()).not.toContain('alice')
  const fromAlice = await sendMany(alice, 'bob', 5, 'alice offline')
  const fromBob = await sendMany(bob, 'alice', 5, 'to offline alice')
  await alice.page.waitForTimeout(2000)
  expect(bob.received()).toEqual([warm[0], ...first])
  expect(alice.received()).toEqual([warm[1]])
  expect(await Promise.all(fromAlice.map((id) => alice.status(id)))).toEqual(fromAlice.map(() => 'queued'))

  await alice.online()
  await alice.waitDelivered(fromAlice)
  await bob.waitDelivered(fromBob)
  await bob.waitReceived(fromAlice)
  await alice.waitReceived(fromBob)
  expectExactlyOnce([warm[0]!, ...first, ...fromAlice], bob.received())
  expectExactlyOnce([warm[1]!, ...fromBob], alice.received())
  // The direct path comes back by itself once both are online again.
  await expect.poll(async () => [await alice.rtcConnected(), await bob.rtcConnected()], { timeout: 20_000 }).toEqual([1, 1])
  const again = await direct('direct again')
  expectExactlyOnce([warm[0]!, ...first, ...fromAlice, ...again], bob.received())
})

test("offline() closes WebRTC connections that Playwright's setOffline leaves open, whoever made them", async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  // A data channel between two peer connections of the page itself, over loopback.
  await alice.page.evaluate(async () => {
    const a = new RTCPeerConnection()
    const b = new RTCPeerConnection()
    a.onicecandidate = (e) => void (e.candidate && b.addIceCandidate(e.candidate))
    b.onicecandidate = (e) => void (e.candidate && a.addIceCandidate(e.candidate))
    const channel = a.createDataChannel('probe')
    const opened = new Promise((resolve) => (channel.onopen = resolve))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription!)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription!)
    await opened
    ;(window as unknown as { probe: RTCDataChannel }).probe = channel
  })
  await expect.poll(() => alice.rtcConnected()).toBe(2)
  await alice.context.setOffline(true)
  await alice.page.waitForTimeout(1000)
  expect(await alice.rtcConnected()).toBe(2)
  expect(await alice.page.evaluate(() => (window as unknown as { probe: RTCDataChannel }).probe.readyState)).toBe('open')

  await alice.offline()
  expect(await alice.rtcConnected()).toBe(0)
  expect(await alice.page.evaluate(() => (window as unknown as { probe: RTCDataChannel }).probe.readyState)).toBe('closed')
})

test('freeze() stops the tab (its engine leaves the relay) until resume()', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  await bob.freeze()
  await expect.poll(() => relay.connectedPeers(), { timeout: 10_000 }).not.toContain('bob')
  const ids = await sendMany(alice, 'bob', 5, 'frozen')
  await alice.page.waitForTimeout(1500)
  expect(bob.received()).toEqual([])
  expect(await alice.status(ids[0]!)).not.toBe('delivered')

  await bob.resume()
  await alice.waitDelivered(ids)
  await bob.waitReceived(ids)
  expectExactlyOnce(ids, bob.received())
})

test('reload() and killBrowser() mid-stream: every message arrives, in order', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  const sent = await sendMany(alice, 'bob', 20, 'a')
  await bob.reload()
  sent.push(...(await sendMany(alice, 'bob', 20, 'b')))
  const profile = bob.userDataDir
  await bob.killBrowser()
  expect(bob.userDataDir).toBe(profile)
  sent.push(...(await sendMany(alice, 'bob', 20, 'c')))
  await alice.waitDelivered(sent)
  await bob.waitReceived(sent)
  expectExactlyOnce(sent, bob.received(), { allowRedelivery: true })
  // The kit counts receipts across reloads and browser kills; the page after the kill shows only what came since.
  expect(bob.received().length).toBeGreaterThanOrEqual(60)
})

test('relay.restart({ signal: SIGKILL }): the mailbox on disk keeps what an offline peer was sent', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  // They meet first (bob's message brings alice his keys): cut at once after login, bob may not have published them.
  await alice.waitReceived(await sendMany(bob, 'alice', 1, 'hi'))
  await bob.offline()
  const ids = await sendMany(alice, 'bob', 10, 'stored')
  await expect.poll(async () => Promise.all(ids.map((id) => alice.status(id)))).toEqual(ids.map(() => 'stored'))
  const pid = relay.pid
  await relay.restart({ signal: 'SIGKILL' })
  expect(relay.pid).not.toBe(pid)
  expect(relay.logs().filter((e) => e.event === 'listening')).toHaveLength(2)
  await bob.online()
  await alice.waitDelivered(ids)
  await bob.waitReceived(ids)
  expectExactlyOnce(ids, bob.received())
})

test('offline({ relay: false }) cuts the browser alone: the relay never refuses the peer, so its network coming back is enough', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  await alice.offline({ relay: false })
  expect((await alice.connection()).status).not.toBe('online')
  expect(await alice.page.evaluate(() => navigator.onLine)).toBe(false)
  const whileOffline = await sendMany(alice, 'bob', 3, 'browser offline')
  await alice.page.waitForTimeout(1000)
  expect(await Promise.all(whileOffline.map((id) => alice.status(id)))).toEqual(whileOffline.map(() => 'queued'))
  const told = (): unknown[] => relay.logs().filter((e) => e.event === 'test_control' && e.id === 'alice')
  expect(told()).toEqual([])

  // Only the browser was cut: its network back (without online()) brings the peer back, as the relay never refused it.
  await alice.context.setOffline(false)
  await expect.poll(async () => (await alice.connection()).status, { timeout: 30_000 }).toBe('online')
  await alice.waitDelivered(whileOffline)
  await bob.waitReceived(whileOffline)
  // online() after a browser-only cut is fine too; a full cut tells the relay (the check above sees it).
  await alice.offline({ relay: false })
  await alice.online()
  expect(told()).toEqual([])
  await alice.offline()
  await alice.online()
  expect(told()).toMatchObject([{ online: false }, { online: true }])
  await expect(alice.offline({ relay: 'no' as unknown as boolean })).rejects.toThrow(TypeError)
})

test('close() quits the browser in order and reopen() starts it on the same profile: what the page stored is there', async ({ relay, peer }) => {
  // Alice and bob met once (bob's message brought alice his keys) and bob closed: the relay's mailbox stores
  // alice's messages for him, and her outbox keeps them until delivered.
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  const hi = await sendMany(bob, 'alice', 1, 'hi')
  await alice.waitReceived(hi)
  await bob.close()
  const profile = alice.userDataDir
  const ids = await sendMany(alice, 'bob', 5, 'before close')
  await expect.poll(async () => Promise.all(ids.map((id) => alice.status(id)))).toEqual(ids.map(() => 'stored'))
  // Written just before the close: Chromium commits localStorage lazily, and an orderly shutdown writes it out.
  await alice.page.evaluate(() => localStorage.setItem('written', 'just before close'))
  await expect(alice.reopen()).rejects.toThrow(/close\(\) it first/)
  await alice.close()
  expect(alice.page.isClosed()).toBe(true)
  await expect.poll(() => relay.connectedPeers()).not.toContain('alice')

  await bob.reopen()
  await bob.waitReceived(ids)
  await alice.reopen()
  expect(alice.userDataDir).toBe(profile)
  expect(await alice.page.evaluate(() => localStorage.getItem('written'))).toBe('just before close')
  await alice.waitDelivered(ids)
  expect(await alice.pending()).toEqual({ outbound: 0, inbound: 0 })
  expectExactlyOnce(ids, bob.received())
})

test('the relay starts on first use: none for a test that never uses it; its url is known before it runs', async ({ relay, peer }) => {
  const alice = await peer('alice', { url: '/index.html', waitForConnect: false })
  await alice.page.waitForFunction(() => document.title === 'ready')
  expect(relay.logs()).toEqual([])
  const url = relay.url
  expect(relay.logs()).toEqual([]) // started, not yet listening
  expect((await relay.health()).authenticated).toBe(0)
  expect(relay.logs().filter((e) => e.event === 'listening')).toMatchObject([{ port: Number(new URL(url).port) }])
  expect(relay.url).toBe(url)
  expect(relay.pid).toBeGreaterThan(0)
})

test.describe('with mailbox: false', () => {
  test.use({ relayOptions: { command: [process.execPath, '--import', 'tsx', 'src/relay/cli.ts'], cwd: ROOT, mailbox: false } })

  test('the relay stores nothing for an offline peer: the sender keeps it queued until the receiver is back', async ({ relay, peer }) => {
    expect(relay.mailboxDir).toBeUndefined()
    const alice = await peer('alice', await app(relay, 'alice'))
    const ids = await sendMany(alice, 'bob', 3, 'no mailbox')
    await alice.page.waitForTimeout(1500)
    expect(await Promise.all(ids.map((id) => alice.status(id)))).toEqual(ids.map(() => 'queued'))
    const bob = await peer('bob', await app(relay, 'bob'))
    await alice.waitDelivered(ids)
    await bob.waitReceived(ids)
    expectExactlyOnce(ids, bob.received())
  })
})

test("newTab() opens the same identity: both tabs' handlers get every message", async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  await bob.newTab()
  const ids = await sendMany(alice, 'bob', 5, 'tabs')
  await alice.waitDelivered(ids)
  await bob.waitReceived(ids, { tab: 1 })
  await bob.waitReceived(ids)
  expect(bob.received(1)).toEqual(ids)
  expectExactlyOnce(ids, bob.received(0))
})

test('waitForConnect: false opens an app that connects later; freeze(tab) and resume(tab) act on that tab alone', async ({ relay, peer }) => {
  // The harness page connects only when told to: the kit's default waits for connect() and gives up.
  await expect(peer('early', { url: '/index.html', readyTimeoutMs: 1000 })).rejects.toThrow(/1000ms/)
  await expect(peer('odd', { url: '/index.html', waitForConnect: 'no' as unknown as boolean })).rejects.toThrow(TypeError)
  const alice = await peer('alice', { url: '/index.html', waitForConnect: false })
  await expect(alice.connection()).rejects.toThrow(/has not called connect\(\)/)
  const second = await alice.newTab()
  expect(alice.tabs).toEqual([alice.page, second])
  for (const tab of alice.tabs) {
    await tab.waitForFunction(() => document.title === 'ready')
    await tab.evaluate(
      (url) => (window as unknown as { harness: { connect(id: string, o: object): Promise<string> } }).harness.connect('alice', { relay: url }),
      relay.url,
    )
  }
  await expect.poll(async () => (await alice.connection()).status, { timeout: 15_000 }).toBe('online')
  for (const tab of alice.tabs) await tab.evaluate(() => document.addEventListener('freeze', () => ((window as unknown as { froze: boolean }).froze = true)))

  await alice.freeze(1)
  // Tab 0 runs on while tab 1 is frozen; tab 1 saw the freeze once resumed.
  expect(await alice.page.evaluate(() => (window as unknown as { froze?: boolean }).froze)).toBeUndefined()
  await alice.resume(1)
  expect(await second.evaluate(() => (window as unknown as { froze?: boolean }).froze)).toBe(true)
  await expect(alice.freeze(2)).rejects.toThrow(RangeError)
})

/** What {@link keepSending} saw: ids in the order their sends resolved, the rejected ones with their codes, and the worker deaths sends spanned. */
interface SendLog {
  readonly resolved: string[]
  readonly rejected: { id: string; code: string }[]
  /** Deaths of the page's worker (its messenger's role went back to `starting`). */
  readonly deaths: number
  /** Sends that were in flight across a death. */
  readonly spanning: number
}

/**
 * Keeps `depth` sends from `from`'s page to `to` in flight (each with its own
 * id, `tag-n`) until `stop()`, or until a send rejects with `WORKER_FAILED`.
 */
async function keepSending(from: Peer, to: string, tag: string, depth = 8): Promise<{ stop(): Promise<SendLog> }> {
  await from.page.evaluate(
    ({ to, tag, depth }) => {
      interface Sender {
        send(to: string, contents: unknown, options: { id: string }): Promise<unknown>
        on(event: 'role', listener: (role: string) => void): () => void
      }
      const w = window as unknown as { __intersessionKit__: { messengers: Sender[] }; __sending__: unknown }
      const messenger = w.__intersessionKit__.messengers.at(-1)!
      const log = { resolved: [] as string[], rejected: [] as { id: string; code: string }[], deaths: 0, spanning: 0 }
      messenger.on('role', (role) => {
        if (role === 'starting') log.deaths++
      })
      let n = 0
      let stop = false
      const loop = async (): Promise<void> => {
        while (!stop) {
          const id = `${tag}-${n++}`
          const deaths = log.deaths
          try {
            await messenger.send(to, id, { id })
            log.resolved.push(id)
          } catch (error) {
            const code = (error as { code?: string }).code ?? String(error)
            log.rejected.push({ id, code })
            if (code === 'WORKER_FAILED') stop = true
          }
          if (log.deaths > deaths) log.spanning++
        }
      }
      const done = Promise.all(Array.from({ length: depth }, loop))
      w.__sending__ = {
        stop: async () => {
          stop = true
          await done
          return log
        },
      }
    },
    { to, tag, depth },
  )
  return {
    stop: () => from.page.evaluate(() => (window as unknown as { __sending__: { stop(): Promise<SendLog> } }).__sending__.stop()),
  }
}

test('crashWorker() mid-stream: the page starts a new worker, and every send in flight is delivered exactly once', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  const sending = await keepSending(alice, 'bob', 'crash')
  await alice.page.waitForTimeout(500)
  const worker = alice.page.workers().length
  await alice.crashWorker()
  await expect.poll(() => alice.page.workers().length).toBe(worker)
  await alice.page.waitForTimeout(500)
  const log = await sending.stop()
  expect(log.deaths).toBe(1)
  expect(log.spanning).toBeGreaterThan(0)
  expect(log.rejected).toEqual([])
  await alice.waitDelivered(log.resolved)
  await bob.waitReceived(log.resolved)
  expectExactlyOnce(log.resolved, bob.received())
  expect(await alice.pending()).toEqual({ outbound: 0, inbound: 0 })
})

test('crashWorker() over and over: the page gives up with WORKER_FAILED, nothing hangs, and no send is queued twice', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  const sending = await keepSending(alice, 'bob', 'loop')
  for (let i = 0; i < 4; i++) {
    await alice.page.waitForTimeout(300)
    await alice.crashWorker()
    // Calls wait for the new worker: the next crash hits it, not the page between two workers.
    if (i < 3) await alice.pending()
  }
  const log = await sending.stop()
  expect(log.deaths).toBe(4)
  expect(log.rejected.length).toBeGreaterThan(0)
  expect(new Set(log.rejected.map((r) => r.code))).toEqual(new Set(['WORKER_FAILED']))
  const later = await alice.page.evaluate(() =>
    (window as unknown as { __intersessionKit__: { messengers: { pending(): Promise<unknown> }[] } }).__intersessionKit__.messengers
      .at(-1)!
      .pending()
      .then(
        () => 'resolved',
        (error: unknown) => (error as { code?: string }).code,
      ),
  )
  expect(later).toBe('WORKER_FAILED')

  // A new page load connects again and drains what was queued: a rejected send may have been queued (its outcome is unknown), never twice.
  await alice.reload()
  await alice.waitDelivered(log.resolved)
  await expect.poll(async () => (await alice.pending()).outbound).toBe(0)
  await bob.waitReceived(log.resolved)
  expectExactlyOnce(log.resolved, bob.received())
  const rejected = new Set(log.rejected.map((r) => r.id))
  expect(bob.received().filter((id) => rejected.has(id)).length).toBe(new Set(bob.received().filter((id) => rejected.has(id))).size)
})

test.describe('with JWT auth', () => {
  test.use({ relayOptions: { command: [process.execPath, '--import', 'tsx', 'src/relay/cli.ts'], cwd: ROOT, auth: 'jwt' } })

  test('token(peerId) is a JWT the relay accepts; a dev token is refused', async ({ relay, peer }) => {
    const token = await relay.token('alice')
    expect(token.split('.')).toHaveLength(3)
    const alice = await peer('alice', await app(relay, 'alice'))
    await expect.poll(() => relay.connectedPeers()).toContain('alice')
    expect((await alice.connection()).status).toBe('online')
    const mallory = await peer('mallory', { url: `/kit.html?${new URLSearchParams({ peer: 'mallory', relay: relay.url, token: 'dev:mallory' })}` })
    await expect.poll(async () => (await mallory.connection()).status).toBe('failed')
  })
})

// docs/TESTING.md shows this test as it is here.
const sendAll = async (from: Peer, to: string, n: number): Promise<string[]> => Promise.all(Array.from({ length: n }, (_, i) => from.send(to, `m ${i}`)))

test('everything arrives, in order, through offline, a relay crash and a frozen tab', async ({ relay, peer }) => {
  const alice = await peer('alice', await app(relay, 'alice'))
  const bob = await peer('bob', await app(relay, 'bob'))
  const sent = await sendAll(alice, 'bob', 50)
  await alice.offline()
  sent.push(...(await sendAll(alice, 'bob', 50)))
  await alice.page.waitForTimeout(5000)
  await alice.online()
  await relay.restart({ signal: 'SIGKILL' })
  await bob.freeze()
  await alice.page.waitForTimeout(1000)
  await bob.resume()
  await bob.waitReceived(sent, { timeoutMs: 60_000 })
  expectExactlyOnce(sent, bob.received(), { allowRedelivery: true })
})
