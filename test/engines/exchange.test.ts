/**
 * Exchange through a real relay process with a LevelDB mailbox, both peers in
 * one engine, each on a profile of its own on disk: both ways; the receiver
 * offline (its browser closed) and back on the same profile; the sender's page
 * reloaded mid-stream; the relay SIGKILLed and restarted on the same port and
 * mailbox. Each message arrives exactly once, in order.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'puppeteer-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { StaticServer } from '../helpers/static-server.js'
import { ENGINES, launch, openPage, openProfile, type Profile } from './driver.js'
import { pollPage, serveHarness, texts } from './harness.js'

let server: StaticServer
beforeAll(async () => {
  server = await serveHarness()
})
afterAll(() => server?.stop())

/** Opens the harness in `profile`'s browser and connects `id` to the relay at `url`. */
async function online(profile: Profile, id: string, url: string): Promise<Page> {
  const page = await openPage(profile.browser, `${server.url}/index.html`)
  await page.evaluate((id, url) => window.harness.connect(id, { relay: url }), id, url)
  await pollPage(page, () => window.harness.connection()?.status, 'online')
  return page
}

/** What `page` received from `from`, as [seq, contents] in arrival order. */
function receivedFrom(page: Page, from: string): Promise<Array<[number, unknown]>> {
  return page.evaluate(
    (from) =>
      window.harness
        .received()
        .filter((m) => m.from === from)
        .map((m): [number, unknown] => [m.seq, m.contents]),
    from,
  )
}

/** Asserts the stream is seq `first`, `first + 1`, … without gaps or repeats, each carrying `${prefix}${seq}`. */
function exactlyOnceInOrder(stream: Array<[number, unknown]>, first: number, prefix: string): void {
  expect(stream.map(([seq]) => seq)).toEqual(stream.map((_, i) => first + i))
  expect(stream.map(([, contents]) => contents)).toEqual(texts(prefix, stream.length, first))
}

describe.each(ENGINES)('%s', (engine) => {
  test('both ways; offline and back; sender reloaded mid-stream; relay SIGKILLed and restarted: each message once, in order', async () => {
    const mailbox = mkdtempSync(join(tmpdir(), 'intersession-mailbox-'))
    let relay: RelayProcess | undefined = await startRelayProcess(['--dev', '--mailbox-dir', mailbox])
    const alice = await openProfile(engine)
    const bob = await openProfile(engine)
    try {
      const a = await online(alice, 'alice', relay.url)
      let b = await online(bob, 'bob', relay.url)

      // Both ways.
      await a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 10))
      await b.evaluate(() => window.harness.sendMany('alice', 'b', 0, 10))
      await pollPage(b, () => window.harness.receivedCount(), 10)
      await pollPage(a, () => window.harness.receivedCount(), 10)

      // bob offline: his browser quits; alice's messages wait in the relay's mailbox.
      await bob.browser.close()
      const ids = await a.evaluate(() => window.harness.sendMany('bob', 'm', 10, 10))
      await expect.poll(() => a.evaluate((id) => window.harness.status(id), ids[9]!), { timeout: 20_000 }).toBe('stored')

      // alice's page reloads while a stream of sends is under way.
      await a.evaluate(() => void window.harness.sendMany('bob', 'm', 20, 30))
      await new Promise((resolve) => setTimeout(resolve, 150))
      await a.reload()
      await a.waitForFunction(() => document.title === 'ready')
      await a.evaluate((url) => window.harness.connect('alice', { relay: url }), relay.url)
      await pollPage(a, () => window.harness.connection()?.status, 'online')

      // bob back on the same profile.
      bob.browser = await launch(engine, bob.dir)
      b = await online(bob, 'bob', relay.url)
      await pollPage(a, async () => (await window.harness.pending()).outbound, 0, 30_000)
      // alice's outbox empties once bob's store has the messages; his page has them once his inbox is processed too.
      await pollPage(b, async () => (await window.harness.pending()).inbound, 0, 30_000)
      // bob's new page is handed what his old one had not seen: from m10 (seq 10) on, every send that reached alice's store.
      const afterReload = await receivedFrom(b, 'alice')
      exactlyOnceInOrder(afterReload, 10, 'm')
      expect(afterReload.length).toBeGreaterThanOrEqual(10)

      // The relay crashes and comes back on its port and mailbox; both sides send meanwhile.
      const port = relay.port
      await relay.kill()
      relay = undefined
      await a.evaluate(() => window.harness.sendMany('bob', 'k', 0, 10))
      await b.evaluate(() => window.harness.sendMany('alice', 'k', 0, 10))
      relay = await startRelayProcess(['--dev', '--mailbox-dir', mailbox, '--port', String(port)])
      await pollPage(b, () => window.harness.received().filter((m) => String(m.contents).startsWith('k')).length, 10, 40_000)
      await pollPage(a, () => window.harness.received().filter((m) => String(m.contents).startsWith('k')).length, 10, 40_000)
      const toBob = await receivedFrom(b, 'alice')
      expect(toBob.slice(0, afterReload.length)).toEqual(afterReload)
      expect(toBob.slice(afterReload.length).map(([seq, c]) => [seq - afterReload.length - 10, c])).toEqual(texts('k', 10).map((c, i) => [i, c]))
      const toAlice = await receivedFrom(a, 'bob')
      expect(toAlice.map(([, c]) => c)).toEqual(texts('k', 10)) // the page reloaded: what it got before is in its old page
      expect(toAlice.map(([seq]) => seq)).toEqual(texts('', 10).map((_, i) => 10 + i))
      await pollPage(a, () => window.harness.pending(), { outbound: 0, inbound: 0 }, 20_000)
      await pollPage(b, () => window.harness.pending(), { outbound: 0, inbound: 0 }, 20_000)
    } finally {
      await alice.dispose()
      await bob.dispose()
      await relay?.kill()
      rmSync(mailbox, { recursive: true, force: true })
    }
  })

  test('two tabs of one identity: the leader closes, the other takes over; nothing lost or doubled', async () => {
    const relay = await startRelayProcess(['--dev'])
    const profile = await openProfile(engine)
    const other = await openProfile(engine)
    try {
      const options = { relay: relay.url, staleAfterMs: 1000, heartbeatMs: 250 }
      const leader = await openPage(profile.browser, `${server.url}/index.html`)
      await leader.evaluate((o) => window.harness.connect('tabs-a', { ...o, subscribe: false }), options)
      await pollPage(leader, () => window.harness.role(), 'leader')
      const follower = await openPage(profile.browser, `${server.url}/index.html`)
      await follower.evaluate((o) => window.harness.connect('tabs-a', o), options)
      await pollPage(follower, () => window.harness.role(), 'follower')
      const b = await online(other, 'tabs-b', relay.url)
      await b.evaluate(() => window.harness.sendMany('tabs-a', 'm', 0, 5))
      await pollPage(follower, () => window.harness.receivedCount(), 5)

      await leader.close()
      await pollPage(follower, () => window.harness.role(), 'leader', 20_000)
      await b.evaluate(() => window.harness.sendMany('tabs-a', 'm', 5, 5))
      await follower.evaluate(() => window.harness.sendMany('tabs-b', 'r', 0, 5))
      await pollPage(follower, () => window.harness.receivedCount(), 10, 20_000)
      await pollPage(b, () => window.harness.receivedCount(), 5, 20_000)
      exactlyOnceInOrder(await receivedFrom(follower, 'tabs-b'), 0, 'm')
      expect(await follower.evaluate(() => window.harness.receivedCount())).toBe(10)
      expect((await receivedFrom(b, 'tabs-a')).map(([, c]) => c)).toEqual(texts('r', 5))
      await pollPage(b, () => window.harness.pending(), { outbound: 0, inbound: 0 })
    } finally {
      await profile.dispose()
      await other.dispose()
      await relay.kill()
    }
  })

  test('every readwrite transaction that writes outbox, inbox, streams, acks or meta is strict', async () => {
    const profile = await openProfile(engine)
    try {
      const a = await openPage(profile.browser, `${server.url}/index.html`)
      const b = await openPage(profile.browser, `${server.url}/index.html`)
      await b.evaluate(() => window.harness.connectProbed('dur-b', 'engines-durability', false))
      await a.evaluate(() => window.harness.connectProbed('dur-a', 'engines-durability', false))
      await a.evaluate(() => window.harness.sendBurst('dur-b', 'm', 20))
      await pollPage(b, () => window.harness.receivedCount(), 20)
      await pollPage(a, () => window.harness.pending(), { outbound: 0, inbound: 0 })
      const records = await a.evaluate(() => [...window.harness.durability.records()])
      const durable = ['outbox', 'inbox', 'outStreams', 'inStreams', 'settled', 'acks', 'meta']
      const writes = records.filter((r) => r.mode === 'readwrite' && r.stores.some((s) => durable.includes(s)))
      // The check below cannot pass on nothing: both databases' sends and receives were recorded.
      expect(new Set(writes.map((r) => r.db))).toEqual(new Set(['intersession:dur-a', 'intersession:dur-b']))
      expect(writes.length).toBeGreaterThanOrEqual(4)
      expect(writes.filter((r) => r.durability !== 'strict')).toEqual([])
    } finally {
      await profile.dispose()
    }
  })
})
