/**
 * Delivering with no tab open where Background Sync is missing (issue 18):
 * the app's service worker (test/browser/app/sync-sw.ts, one classic script)
 * runs `flush(peerId)` when it starts for another reason, here a `message`
 * posted by a page of the origin that runs no intersession code. The sender
 * queues while the relay is down, its browser quits (no tab, no engine, no
 * service worker left running), the relay comes back, the browser starts
 * again on the same profile and only the plain page opens: the service
 * worker delivers each message once, in order, and the reopened page shows
 * them delivered. Firefox ESR has no `registration.sync`, so its page
 * registers nothing; Chromium registers the sync tag and delivers the same
 * way from the message.
 */
import type { Page } from 'puppeteer-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { StaticServer } from '../helpers/static-server.js'
import type { FlushAnswer } from '../browser/app/sync-sw.js'
import { ENGINES, openPage, openProfile } from './driver.js'
import { pollPage, serveHarness, texts } from './harness.js'

let server: StaticServer
let served: StaticServer | undefined // unset when beforeAll failed, whose error is the one to show
beforeAll(async () => {
  server = served = await serveHarness()
})
afterAll(() => served?.stop())

async function online(page: Page, id: string, url: string): Promise<void> {
  await page.evaluate((id, url) => window.harness.connect(id, { relay: url }), id, url)
  await pollPage(page, () => window.harness.connection()?.status, 'online')
}

/** From a page of the origin that runs no intersession code: the Web Locks held in the origin. */
function locksHeld(plain: Page): Promise<string[]> {
  return plain.evaluate(async () => (await navigator.locks.query()).held?.map((lock) => lock.name ?? '') ?? [])
}

/** Posts `{ flush: peerId }` to the origin's service worker from `plain` (which starts it if it is not running) and waits for its answer. */
function wake(plain: Page, peerId: string): Promise<FlushAnswer> {
  return plain.evaluate(async (peerId) => {
    const registration = await navigator.serviceWorker.ready
    const channel = new MessageChannel()
    const answer = new Promise<FlushAnswer>((resolve, reject) => {
      channel.port1.onmessage = (event) => resolve(event.data as FlushAnswer)
      setTimeout(() => reject(new Error('the service worker did not answer within 40 s')), 40_000)
    })
    registration.active!.postMessage({ flush: peerId }, [channel.port2])
    return answer
  }, peerId)
}

describe.each(ENGINES)('%s', (engine) => {
  test('queued while the relay was down, the browser quit: a message to the service worker flushes, each once, in order; the reopened page says delivered', async () => {
    // No mailbox: a flushed outbox means bob acknowledged every message before the service worker's event ended.
    let relay: RelayProcess | undefined = await startRelayProcess(['--dev'])
    const port = relay.port
    const bobProfile = await openProfile(engine)
    const alice = await openProfile(engine)
    try {
      const bob = await openPage(bobProfile.browser, `${server.url}/index.html`)
      await online(bob, 'bob', relay.url)
      const page = await openPage(alice.browser, `${server.url}/index.html`)
      await page.evaluate((url) => window.harness.registerSyncWorker(url, 60_000), relay.url)
      await online(page, 'alice', relay.url) // she learns bob's keys

      await relay.kill()
      relay = undefined
      await expect.poll(() => page.evaluate(() => window.harness.connection()?.status), { timeout: 20_000 }).not.toBe('online')
      const ids = await page.evaluate(() => window.harness.sendMany('bob', 'm', 0, 5))
      expect(await page.evaluate((all) => Promise.all(all.map((id) => window.harness.status(id))), ids)).toEqual(ids.map(() => 'queued'))
      // Feature detection: Background Sync where the browser has it, nothing registered (and nothing thrown) where it has not.
      const sync = await page.evaluate(() => window.harness.backgroundSync())
      if (engine === 'firefox') expect(sync).toEqual({ syncManager: false, registrationSync: false, tags: [] })
      else expect(sync).toMatchObject({ syncManager: true, registrationSync: true })
      expect(await page.evaluate(() => window.harness.errors())).toEqual([])

      // The browser quits: no tab, no engine, no service worker running. It starts again on the same profile with only a plain page.
      await alice.relaunch()
      relay = await startRelayProcess(['--dev', '--port', String(port)])
      const plain = await openPage(alice.browser, `${server.url}/plain.html`)
      expect(await locksHeld(plain)).not.toContain('intersession:alice')
      const answer = await wake(plain, 'alice')
      expect(answer).toEqual({ report: { peerId: 'alice', outcome: 'flushed', arrived: 0, pending: { outbound: 0, inbound: 0 } } })
      expect(await locksHeld(plain)).not.toContain('intersession:alice') // the engine closed before the event ended

      await pollPage(bob, () => window.harness.receivedCount(), 5)
      const received = await bob.evaluate(() => window.harness.received())
      expect(received.map((m) => m.contents)).toEqual(texts('m', 5))
      expect(received.map((m) => m.id)).toEqual(ids)

      const back = await openPage(alice.browser, `${server.url}/index.html`)
      await online(back, 'alice', relay.url)
      expect(await back.evaluate((all) => Promise.all(all.map((id) => window.harness.status(id))), ids)).toEqual(ids.map(() => 'delivered'))
      expect(await back.evaluate(() => window.harness.pending())).toEqual({ outbound: 0, inbound: 0 })
      await new Promise((resolve) => setTimeout(resolve, 1500)) // anything sent twice would arrive by now
      expect(await bob.evaluate(() => window.harness.receivedCount())).toBe(5)
      expect(await back.evaluate(() => window.harness.errors())).toEqual([])
      expect(await bob.evaluate(() => window.harness.errors())).toEqual([])
    } finally {
      await alice.dispose()
      await bobProfile.dispose()
      await relay?.kill()
    }
  }, 120_000) // three browser starts: Firefox took 32 s alone, 51 s on a loaded machine
})
