/**
 * Delivering with no tab open (issue 18): the engine runs in the app's
 * service worker (test/browser/app/sync-sw.ts, `handleSync` from
 * intersession/service-worker) on Background Sync events fired over CDP
 * (`ServiceWorker.dispatchSyncEvent`, `dispatchPeriodicSyncEvent`), in
 * Chromium on profiles on disk, against a real relay process.
 */
import type { BrowserContext, CDPSession, Page, Worker } from '@playwright/test'
import { expect, test, type KitRelay } from '../../src/playwright/index.js'
import { persistentContext, REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

const texts = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

interface SyncLog {
  events: { tag: string; type: string; settled: 'resolved' | 'rejected'; outcome?: string; code?: string; at: number }[]
  arrivals: { peerId: string; arrived: number; waiting: number; messages: { id: string; from: string; contents: unknown }[] }[]
}

/** One identity's browser: a Chromium of its own on a profile on disk. */
class Browser {
  private constructor(
    readonly context: BrowserContext,
    readonly dispose: () => Promise<void>,
    private readonly origin: string,
  ) {}

  static async launch(origin: string): Promise<Browser> {
    const persistent = await persistentContext()
    return new Browser(persistent.context, () => persistent.dispose(), origin)
  }

  /** Opens the harness page in a new tab. */
  async open(): Promise<Page> {
    const page = await this.context.newPage()
    await page.goto(`${this.origin}/index.html`)
    return page
  }

  /** The service worker, once it runs. */
  async serviceWorker(): Promise<Worker> {
    await expect.poll(() => this.context.serviceWorkers().length, { timeout: 15_000 }).toBeGreaterThan(0)
    return this.context.serviceWorkers()[0]!
  }

  async syncLog(): Promise<SyncLog> {
    return (await this.serviceWorker()).evaluate(() => (globalThis as unknown as { syncLog: SyncLog }).syncLog)
  }

  /** Names of the Web Locks held in this origin (read in the service worker, which stays when no tab is left). */
  async locksHeld(): Promise<string[]> {
    return (await this.serviceWorker()).evaluate(async () => (await navigator.locks.query()).held?.map((l) => l.name ?? '') ?? [])
  }
}

async function connect(page: Page, id: string, relay: KitRelay): Promise<void> {
  await page.evaluate(({ id, url }) => window.harness.connect(id, { relay: url }), { id, url: relay.url })
}

async function online(page: Page, id: string, relay: KitRelay): Promise<void> {
  await connect(page, id, relay)
  await expect.poll(() => page.evaluate(() => window.harness.connection()?.status), { timeout: 20_000 }).toBe('online')
}

/** CDP on a page of no origin (about:blank) in `browser`, to fire sync events at the app's service worker. */
async function syncDispatcher(
  browser: Browser,
  origin: string,
): Promise<{ blank: Page; sync(tag: string): Promise<void>; periodic(tag: string): Promise<void> }> {
  const blank = await browser.context.newPage()
  const cdp: CDPSession = await browser.context.newCDPSession(blank)
  let registrationId: string | undefined
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
    for (const r of registrations) if (!r.isDeleted && r.scopeURL.startsWith(origin)) registrationId = r.registrationId
  })
  await cdp.send('ServiceWorker.enable')
  await expect.poll(() => registrationId, { timeout: 10_000 }).toBeDefined()
  return {
    blank,
    sync: async (tag) => {
      await cdp.send('ServiceWorker.dispatchSyncEvent', { origin, registrationId: registrationId!, tag, lastChance: false })
    },
    periodic: async (tag) => {
      await cdp.send('ServiceWorker.dispatchPeriodicSyncEvent', { origin, registrationId: registrationId!, tag })
    },
  }
}

/** The settled sync events of `tag` after `since`. */
async function settledSince(browser: Browser, tag: string, since: number): Promise<SyncLog['events']> {
  return (await browser.syncLog()).events.filter((e) => e.tag === tag && e.at >= since)
}

/** Closes every tab of the origin and waits until the identity's lock is free (its worker is gone). */
async function closeApp(browser: Browser, pages: readonly Page[], id: string): Promise<void> {
  for (const page of pages) await page.close()
  await expect.poll(() => browser.locksHeld(), { timeout: 15_000 }).not.toContain(`intersession:${id}`)
}

test.describe('the engine in the service worker, with no tab open', () => {
  let browsers: Browser[] = []
  test.afterEach(async () => {
    for (const b of browsers) await b.dispose()
    browsers = []
  })

  async function launch(origin: string): Promise<Browser> {
    const browser = await Browser.launch(origin)
    browsers.push(browser)
    return browser
  }

  /** Bob online; alice's page registers the sync worker and comes online (she learns bob's keys); then the relay stops and her page sees it. */
  async function metThenRelayDown(origin: string, relay: KitRelay): Promise<{ bob: Page; alice: Browser; page: Page }> {
    const bob = await (await launch(origin)).open()
    await online(bob, 'bob', relay)
    const alice = await launch(origin)
    const page = await alice.open()
    await page.evaluate((url) => window.harness.registerSyncWorker(url, 60_000), relay.url)
    await online(page, 'alice', relay)
    await relay.stop()
    await expect.poll(() => page.evaluate(() => window.harness.connection()?.status)).not.toBe('online')
    return { bob, alice, page }
  }

  test('queued while the relay was down, the tab closed: a sync sends each once, in order; the reopened page says delivered', async ({ relay, baseURL }) => {
    const origin = new URL(baseURL!).origin
    const { bob, alice, page } = await metThenRelayDown(origin, relay)
    const ids = await page.evaluate(() => window.harness.sendMany('bob', 'm', 0, 5))
    expect(await page.evaluate((all) => Promise.all(all.map((id) => window.harness.status(id))), ids)).toEqual(ids.map(() => 'queued'))
    const fire = await syncDispatcher(alice, origin)
    await closeApp(alice, [page], 'alice') // only about:blank is left: no tab of the origin

    await relay.restart()
    const since = Date.now()
    await fire.sync('intersession-sync:alice')
    await expect
      .poll(() => settledSince(alice, 'intersession-sync:alice', since), { timeout: 30_000 })
      .toEqual([expect.objectContaining({ settled: 'resolved', outcome: 'flushed' })])
    await expect.poll(() => bob.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(5)
    const received = await bob.evaluate(() => window.harness.received())
    expect(received.map((m) => m.contents)).toEqual(texts('m', 5))
    expect(received.map((m) => m.id)).toEqual(ids)

    const back = await alice.open()
    await online(back, 'alice', relay)
    expect(await back.evaluate((all) => Promise.all(all.map((id) => window.harness.status(id))), ids)).toEqual(ids.map(() => 'delivered'))
    expect(await back.evaluate(() => window.harness.pending())).toEqual({ outbound: 0, inbound: 0 })
    await back.waitForTimeout(1500) // anything sent twice would arrive by now
    expect(await bob.evaluate(() => window.harness.receivedCount())).toBe(5)
  })

  test('incoming while no tab is open: a periodic sync stores them; the handlers get them when a tab opens, exactly once', async ({ relay, baseURL }) => {
    const origin = new URL(baseURL!).origin
    const alice = await launch(origin)
    const first = await alice.open()
    await first.evaluate((url) => window.harness.registerSyncWorker(url, 60_000), relay.url)
    await online(first, 'alice', relay) // her keys are in the relay's directory from now on
    const fire = await syncDispatcher(alice, origin)
    await closeApp(alice, [first], 'alice')

    const bobBrowser = await launch(origin)
    const bob = await bobBrowser.open()
    await online(bob, 'bob', relay)
    const ids = await bob.evaluate(() => window.harness.sendMany('alice', 'in', 0, 4))
    await expect.poll(() => bob.evaluate((id) => window.harness.status(id), ids[3]!), { timeout: 20_000 }).toBe('stored')

    const since = Date.now()
    await fire.periodic('intersession-sync:alice')
    await expect
      .poll(() => settledSince(alice, 'intersession-sync:alice', since), { timeout: 30_000 })
      .toEqual([expect.objectContaining({ type: 'periodicsync', settled: 'resolved', outcome: 'flushed' })])
    // The hook is told who wrote what (for a notification) without handling anything: the handlers below still get each once.
    expect((await alice.syncLog()).arrivals).toEqual([
      {
        peerId: 'alice',
        arrived: 4,
        waiting: 4,
        messages: ids.map((id, i) => ({ id, from: 'bob', to: 'alice', seq: i, epoch: expect.any(String), contents: `in${i}` })),
      },
    ])
    await expect.poll(() => bob.evaluate((id) => window.harness.status(id), ids[3]!), { timeout: 20_000 }).toBe('delivered')

    // The relay is down when the tab opens: what its handlers get comes from IndexedDB, where the service worker put it.
    await relay.stop()
    const tab = await alice.open()
    await connect(tab, 'alice', relay)
    await expect.poll(() => tab.evaluate(() => window.harness.receivedCount()), { timeout: 15_000 }).toBe(4)
    expect((await tab.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('in', 4))
    await relay.restart()
    await expect.poll(() => tab.evaluate(() => window.harness.connection()?.status), { timeout: 20_000 }).toBe('online')
    await tab.waitForTimeout(1500)
    expect((await tab.evaluate(() => window.harness.received())).map((m) => m.id)).toEqual(ids)
    expect(await tab.evaluate(() => window.harness.pending())).toEqual({ outbound: 0, inbound: 0 })
  })
})

test.describe('with no mailbox at the relay', () => {
  // Messages for an offline peer stay in the sender's outbox: a flush stays under way, halfway, for as long as the test likes.
  test.use({ relayOptions: { ...REPO_RELAY, mailbox: false } })
  let browsers: Browser[] = []
  test.afterEach(async () => {
    for (const b of browsers) await b.dispose()
    browsers = []
  })

  /**
   * Bob and carol online; alice's page (sync worker with `budgetMs`) meets both, then carol leaves; the relay goes
   * down; alice queues 3 for bob and 3 for carol; her tab closes; the relay comes back.
   */
  async function queuedForBobAndCarol(origin: string, relay: KitRelay, budgetMs: number) {
    const launchOne = async (): Promise<Browser> => {
      const b = await Browser.launch(origin)
      browsers.push(b)
      return b
    }
    const [bobBrowser, carolBrowser, alice] = [await launchOne(), await launchOne(), await launchOne()]
    const bob = await bobBrowser.open()
    await online(bob, 'bob', relay)
    const carol = await carolBrowser.open()
    await online(carol, 'carol', relay)
    const page = await alice.open()
    await page.evaluate(({ url, budgetMs }) => window.harness.registerSyncWorker(url, budgetMs), { url: relay.url, budgetMs })
    await online(page, 'alice', relay)
    // She and carol know each other's keys; then carol leaves.
    const hello = await page.evaluate(() => window.harness.send('carol', 'hello'))
    await expect.poll(() => page.evaluate((id) => window.harness.status(id), hello.id), { timeout: 20_000 }).toBe('delivered')
    await carol.evaluate(() => window.harness.close())

    await relay.stop()
    await expect.poll(() => page.evaluate(() => window.harness.connection()?.status)).not.toBe('online')
    const toBob = await page.evaluate(() => window.harness.sendMany('bob', 'b', 0, 3))
    const toCarol = await page.evaluate(() => window.harness.sendMany('carol', 'c', 0, 3))
    const fire = await syncDispatcher(alice, origin)
    await closeApp(alice, [page], 'alice')
    await relay.restart()
    return { bob, carol, alice, toBob, toCarol, fire }
  }

  /** Carol received hello and then `toCarol`, each once, in order. */
  async function carolGotAll(carol: Page, toCarol: readonly string[]): Promise<void> {
    await expect.poll(() => carol.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(4)
    const received = await carol.evaluate(() => window.harness.received())
    expect(received.map((m) => m.contents)).toEqual(['hello', ...texts('c', 3)])
    expect(received.slice(1).map((m) => m.id)).toEqual(toCarol)
  }

  test('a tab opens while the service worker is mid-flush: it hands over, one engine at a time, nothing lost or doubled', async ({ relay, baseURL }) => {
    const origin = new URL(baseURL!).origin
    const { bob, carol, alice, toBob, toCarol, fire } = await queuedForBobAndCarol(origin, relay, 60_000)
    const since = Date.now()
    await fire.sync('intersession-sync:alice')

    // Mid-flush: bob got his 3 from the service worker's engine; carol's 3 wait in it (she is offline, the relay keeps nothing).
    await expect.poll(() => bob.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(3)
    expect((await bob.evaluate(() => window.harness.received())).map((m) => m.id)).toEqual(toBob)
    expect(await alice.locksHeld()).toContain('intersession:alice')
    expect(await settledSince(alice, 'intersession-sync:alice', since)).toEqual([])
    expect(await carol.evaluate(() => window.harness.receivedCount())).toBe(1)

    const tab = await alice.open()
    await connect(tab, 'alice', relay)
    await expect
      .poll(() => settledSince(alice, 'intersession-sync:alice', since), { timeout: 15_000 })
      .toEqual([expect.objectContaining({ settled: 'resolved', outcome: 'handed-over' })])
    const handedOverAt = (await settledSince(alice, 'intersession-sync:alice', since))[0]!.at
    await expect.poll(() => tab.evaluate(() => window.harness.role()), { timeout: 15_000 }).toBe('leader')
    expect(Date.now()).toBeGreaterThanOrEqual(handedOverAt)
    expect(await tab.evaluate(() => window.harness.errors())).toEqual([]) // no STORE_FENCED: never two engines on the store
    await expect.poll(() => tab.evaluate(() => window.harness.connection()?.status), { timeout: 20_000 }).toBe('online')
    // What the service worker's engine finished, the tab's knows; what it had not, the tab's holds.
    expect(await tab.evaluate((ids) => Promise.all(ids.map((id) => window.harness.status(id))), toBob)).toEqual(toBob.map(() => 'delivered'))
    expect(await tab.evaluate(() => window.harness.pending())).toEqual({ outbound: 3, inbound: 0 })

    await online(carol, 'carol', relay)
    await carolGotAll(carol, toCarol)
    await expect
      .poll(() => tab.evaluate((ids) => Promise.all(ids.map((id) => window.harness.status(id))), toCarol), { timeout: 20_000 })
      .toEqual(toCarol.map(() => 'delivered'))
    await tab.waitForTimeout(1500) // anything sent twice would arrive by now
    expect(await bob.evaluate(() => window.harness.receivedCount())).toBe(3)
    expect(await carol.evaluate(() => window.harness.receivedCount())).toBe(4)
  })

  test('the budget runs out mid-flush: the event rejects, nothing is lost, a later sync finishes the job', async ({ relay, baseURL }) => {
    const origin = new URL(baseURL!).origin
    const { bob, carol, alice, toBob, toCarol, fire } = await queuedForBobAndCarol(origin, relay, 4000)

    // Bob gets his; carol is offline and the relay keeps nothing for her: the 4 s budget runs out mid-flush.
    let since = Date.now()
    await fire.sync('intersession-sync:alice')
    await expect
      .poll(() => settledSince(alice, 'intersession-sync:alice', since), { timeout: 20_000 })
      .toEqual([expect.objectContaining({ settled: 'rejected', code: 'SYNC_INCOMPLETE' })])
    await expect.poll(() => bob.evaluate(() => window.harness.receivedCount()), { timeout: 10_000 }).toBe(3)
    expect((await bob.evaluate(() => window.harness.received())).map((m) => m.id)).toEqual(toBob)
    await expect.poll(() => alice.locksHeld()).not.toContain('intersession:alice')

    // Carol is back; the browser's retry (fired here) finishes the job.
    await online(carol, 'carol', relay)
    since = Date.now()
    await fire.sync('intersession-sync:alice')
    await expect
      .poll(() => settledSince(alice, 'intersession-sync:alice', since), { timeout: 20_000 })
      .toEqual([expect.objectContaining({ settled: 'resolved', outcome: 'flushed' })])
    await carolGotAll(carol, toCarol)

    const back = await alice.open()
    await online(back, 'alice', relay)
    const all = [...toBob, ...toCarol]
    expect(await back.evaluate((ids) => Promise.all(ids.map((id) => window.harness.status(id))), all)).toEqual(all.map(() => 'delivered'))
    await back.waitForTimeout(1500)
    expect(await bob.evaluate(() => window.harness.receivedCount())).toBe(3)
    expect(await carol.evaluate(() => window.harness.receivedCount())).toBe(4)
  })
})
