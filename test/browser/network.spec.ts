import type { Page } from '@playwright/test'
import { expect, test, type KitRelay, type Peer } from '../../src/playwright/index.js'
import { expectLeadRefused, HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

// No mailbox: a message for a peer that is offline stays with its sender.
test.use({ relayOptions: { ...REPO_RELAY, mailbox: false } })

const texts = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

/** Brings the kit peer `peer` (a browser profile of its own, on disk) online through `relay` on the harness page. */
async function online(peer: Peer, relay: KitRelay, webrtc?: unknown): Promise<Page> {
  const page = await harnessTab(peer, true)
  await page.evaluate(({ id, relay, webrtc }) => window.harness.connect(id, { relay, ...(webrtc !== undefined && { webrtc: webrtc as never }) }), {
    id: peer.name,
    relay: relay.url,
    webrtc,
  })
  await expect.poll(() => page.evaluate(() => window.harness.connection()?.status), { timeout: 15_000 }).toBe('online')
  return page
}

test('two browsers exchange messages both ways through a real relay', async ({ relay, peer: open }) => {
  const a = await online(await open('alice', HARNESS), relay)
  const b = await online(await open('bob', HARNESS), relay)
  await Promise.all([a.evaluate(() => window.harness.sendMany('bob', 'a', 0, 50)), b.evaluate(() => window.harness.sendMany('alice', 'b', 0, 50))])
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(50)
  await expect.poll(() => a.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(50)
  expect((await b.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('a', 50))
  expect((await a.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('b', 50))
  expect(await a.evaluate(() => window.harness.connectedPeers())).toEqual(['bob'])
})

test("a transport chunk that cannot load: connect() resolves, the page hears WORKER_FAILED with the import's error as cause, and the tab does not lead", async ({
  relay,
  peer: open,
}) => {
  await expectLeadRefused(await open('alice', HARNESS), relay.url, /\/websocket-[\w-]+\.js$/, 'WORKER_FAILED')
})

test('the receiver goes offline for a while and comes back: everything arrives once, in order', async ({ relay, peer: open }) => {
  const a = await online(await open('alice', HARNESS), relay)
  const bob = await open('bob', HARNESS)
  const b = await online(bob, relay)
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 20))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(20)
  // The browser loses its network; the relay is not told.
  await bob.offline({ relay: false })
  await expect.poll(() => b.evaluate(() => window.harness.connection()?.status), { timeout: 15_000 }).not.toBe('online')
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 20, 180))
  expect((await a.evaluate(() => window.harness.pending())).outbound).toBeGreaterThan(0)
  await bob.online()
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 60_000 }).toBe(200)
  expect((await b.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('m', 200))
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('the relay is SIGKILLed mid-stream and restarted: nothing lost', async ({ relay, peer: open }) => {
  const a = await online(await open('alice', HARNESS), relay)
  const b = await online(await open('bob', HARNESS), relay)
  const sending = a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 300))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBeGreaterThan(50)
  await relay.restart({ signal: 'SIGKILL' }) // on the same port
  await sending
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 60_000 }).toBe(300)
  expect((await b.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('m', 300))
})

test('the sender page reloads mid-stream: nothing lost or doubled', async ({ relay, peer: open }) => {
  const a = await online(await open('alice', HARNESS), relay)
  const b = await online(await open('bob', HARNESS), relay)
  void a.evaluate(() => window.harness.burst('bob', 'm', 2000)).catch(() => {})
  await a.waitForFunction(() => window.harness.resolvedIds().length >= 150)
  const resolved = await a.evaluate(() => window.harness.resolvedIds().length)
  await a.reload()
  await a.waitForFunction(() => document.title === 'ready')
  await a.evaluate((url) => window.harness.connect('alice', { relay: url }), relay.url)
  // Every message stored before the reload has a seq below this one.
  const last = await a.evaluate(() => window.harness.send('bob', 'last'))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 60_000 }).toBe(last.seq + 1)
  const got = (await b.evaluate(() => window.harness.received())).map((m) => m.contents as string)
  test.info().annotations.push({ type: 'reload', description: `${resolved} sends had resolved at the reload; ${last.seq} were stored` })
  expect(got).toEqual([...texts('m', last.seq), 'last']) // in order, nothing doubled, no gap
  expect(last.seq).toBeGreaterThanOrEqual(resolved) // every send that resolved before the reload
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('with WebRTC on, frames flow over the data channel; with it blocked, through the relay', async ({ relay, peer: open }) => {
  const a = await online(await open('alice', HARNESS), relay, true)
  const b = await online(await open('bob', HARNESS), relay, true)
  // Let the channel come up (the first message opens the streams both sides watch).
  await a.evaluate(() => window.harness.sendMany('bob', 'warm', 0, 1))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(1)
  await b.evaluate(() => window.harness.sendMany('alice', 'warm', 0, 1))
  await a.waitForTimeout(3000)
  const before = await relay.health()
  await a.evaluate(() => window.harness.sendMany('bob', 'd', 0, 200))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(201)
  const direct = await relay.health()
  test.info().annotations.push({ type: 'direct', description: `relay frames in during 200 messages: ${direct.framesIn - before.framesIn}` })
  expect(direct.framesIn - before.framesIn).toBeLessThan(10)

  const c = await online(await open('carol', HARNESS), relay, { iceTransportPolicy: 'relay' })
  const d = await online(await open('dave', HARNESS), relay, { iceTransportPolicy: 'relay' })
  await c.evaluate(() => window.harness.sendMany('dave', 'r', 0, 1))
  await expect.poll(() => d.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(1)
  const before2 = await relay.health()
  await c.evaluate(() => window.harness.sendMany('dave', 'r', 1, 100))
  await expect.poll(() => d.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(101)
  const relayed = await relay.health()
  expect(relayed.framesIn - before2.framesIn).toBeGreaterThanOrEqual(100)
  expect((await d.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('r', 101))
})

test('the WebRTC transport passes the transport contract in Chromium, over data channels', async ({ relay, peer: open }) => {
  const page = await harnessTab(await open('a', HARNESS), true)
  const { results, counts } = await page.evaluate((url) => window.harness.webrtcContract(url), relay.url)
  expect(results.length).toBeGreaterThan(5)
  expect(results.filter((r) => !r.ok)).toEqual([])
  test.info().annotations.push({ type: 'frames', description: `${counts.direct} over data channels, ${counts.relayed} through the relay` })
  expect(counts.direct).toBeGreaterThan(counts.relayed)
})
