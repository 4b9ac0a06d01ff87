import type { Page } from '@playwright/test'
import { expect, test, type KitRelay } from '../../src/playwright/index.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

// The kit's relay keeps its mailbox in a temporary directory.
test.use({ relayOptions: REPO_RELAY })

const texts = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

async function online(page: Page, id: string, relay: KitRelay): Promise<void> {
  await page.evaluate(({ id, url }) => window.harness.connect(id, { relay: url }), { id, url: relay.url })
  await expect.poll(() => page.evaluate(() => window.harness.connection()?.status), { timeout: 15_000 }).toBe('online')
}

test('the relay mailbox: the sender stores for an offline peer and quits; the receiver gets it all later; the sender, back, sees delivered', async ({
  relay,
  peer,
}) => {
  // Bob was online once: his keys are in the relay's directory, so alice can seal for him while he is offline.
  const bobBrowser = await peer('bob', HARNESS)
  await online(await harnessTab(bobBrowser, true), 'bob', relay)
  await bobBrowser.close()
  // A profile on disk that outlives its browser: alice quits and comes back to it.
  const aliceBrowser = await peer('alice', HARNESS)
  const alice = await harnessTab(aliceBrowser, true)
  await online(alice, 'alice', relay)
  const ids = await alice.evaluate(() => window.harness.sendMany('bob', 'm', 0, 30))
  await expect.poll(() => alice.evaluate((id) => window.harness.status(id), ids[29]!), { timeout: 20_000 }).toBe('stored')
  await aliceBrowser.close()

  await bobBrowser.reopen()
  const bob = await harnessTab(bobBrowser, true)
  await online(bob, 'bob', relay)
  await expect.poll(() => bob.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(30)
  expect((await bob.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('m', 30))

  await aliceBrowser.reopen()
  const back = await harnessTab(aliceBrowser, true)
  await online(back, 'alice', relay)
  await expect.poll(() => back.evaluate((id) => window.harness.status(id), ids[29]!), { timeout: 20_000 }).toBe('delivered')
  expect(await back.evaluate((all) => Promise.all(all.map((id) => window.harness.status(id))), ids)).toEqual(ids.map(() => 'delivered'))
})
