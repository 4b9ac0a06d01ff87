import type { Page } from '@playwright/test'
import { expect, test, type Peer } from '../../src/playwright/index.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

// The tabs talk over a BroadcastChannel network; the kit's relay is unused.
test.use({ relayOptions: REPO_RELAY })

/**
 * Identity a in two tabs: a leader without handlers and a subscribed
 * follower; and identity b in a third tab, on the same network.
 */
async function twoTabsAndSender(browser: Peer, options: { network: string; deferCommitMs?: number }): Promise<{ leader: Page; follower: Page; b: Page }> {
  const tabOptions = { ...options, staleAfterMs: 1000, heartbeatMs: 250 }
  const leader = await harnessTab(browser, true)
  await leader.evaluate((o) => window.harness.connect('a', { ...o, subscribe: false }), tabOptions)
  await expect.poll(() => leader.evaluate(() => window.harness.role())).toBe('leader')
  const follower = await harnessTab(browser)
  await follower.evaluate((o) => window.harness.connect('a', o), tabOptions)
  await expect.poll(() => follower.evaluate(() => window.harness.role())).toBe('follower')
  const b = await harnessTab(browser)
  await b.evaluate((network) => window.harness.connect('b', { network }), options.network)
  return { leader, follower, b }
}

// Found by the chaos soak (npm run soak -- --minutes 1 --seed 4): a follower
// tab, the only one with a handler, reloaded while the leader had handed it a
// message; when the dead tab went silent the leader counted the message
// processed, and nobody ever saw it.
test('a message handed to a follower tab that dies is handed over again, not dropped', async ({ peer }) => {
  const browser = await peer('a', HARNESS)
  const options = { network: 'handover', staleAfterMs: 1000, heartbeatMs: 250 }
  const { leader, follower, b } = await twoTabsAndSender(browser, options)
  await b.evaluate(() => window.harness.sendMany('a', 'm', 0, 3))
  await expect.poll(() => follower.evaluate(() => window.harness.receivedCount())).toBe(3)

  // The only subscribed tab dies without a goodbye; the leader, which still
  // counts it as subscribed until it goes silent, hands it m3.
  await follower.close()
  await b.evaluate(() => window.harness.sendMany('a', 'm', 3, 1))
  await leader.waitForTimeout(2000) // the dead tab is forgotten

  const next = await harnessTab(browser)
  await next.evaluate((o) => window.harness.connect('a', o), options)
  await expect.poll(() => next.evaluate(() => window.harness.received().map((m) => m.contents)), { timeout: 15_000 }).toEqual(['m3'])
  await expect.poll(() => b.evaluate(() => window.harness.pending())).toEqual({ outbound: 0, inbound: 0 })
})

// A receiver's processed marks wait for its next transaction (or deferCommitMs):
// a leader tab closed first takes them along, and the next leader's engine hands
// those messages over again. The tab whose handlers already returned for them
// counts them processed without calling its handlers twice.
test('a leader tab closed before its processed marks committed: the follower that handled those messages does not get them again', async ({ peer }) => {
  const { leader, follower, b } = await twoTabsAndSender(await peer('a', HARNESS), { network: 'marks', deferCommitMs: 60_000 })
  await b.evaluate(() => window.harness.sendMany('a', 'm', 0, 5))
  await expect.poll(() => follower.evaluate(() => window.harness.receivedCount())).toBe(5)

  await leader.close()
  await expect.poll(() => follower.evaluate(() => window.harness.role()), { timeout: 20_000 }).toBe('leader')
  await b.evaluate(() => window.harness.sendMany('a', 'm', 5, 3))
  // Per sender in order: once m7 is in, any hand-over of m0..m4 again came before it.
  await expect.poll(() => follower.evaluate(() => window.harness.received().some((m) => m.contents === 'm7')), { timeout: 20_000 }).toBe(true)
  expect(await follower.evaluate(() => window.harness.received().map((m) => m.contents))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'])
})
