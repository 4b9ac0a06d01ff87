/**
 * The connection state tells the truth (issue 14), in Chromium with a
 * persistent profile, a real relay process and the transport's defaults:
 *
 * - the network cut by CDP `Network.emulateNetworkConditions({ offline: true })`
 *   turns `connection` to `offline` within a second, and its return brings it
 *   back `online`. The emulation does not close open WebSockets (nor does
 *   Playwright's `setOffline`), and Chromium fires no `online` / `offline` in
 *   the dedicated worker that runs the transport: the worker sees
 *   `navigator.onLine` flip and `navigator.connection` fire `change`;
 * - a half-open relay link (the relay process SIGSTOPped: its kernel still
 *   accepts bytes, nothing answers) is noticed within ~10 s (a ping every
 *   5 s, a pong due within 5 s), and the link is `online` again after SIGCONT.
 *
 * Each test prints what it measured.
 */
import type { Page } from '@playwright/test'
import { expect, test, type KitRelay, type Peer } from '../../src/playwright/index.js'
import { REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

/** `heartbeatMs` 5 000 on defaults: the worst case is a death just after a pong, noticed two periods later. */
const HALF_OPEN_BOUND_MS = 10_000
/** Timers, the worker bridge and the polling of this test. */
const SLACK_MS = 1_000

/** The relay process a test SIGSTOPped, to SIGCONT before the kit stops it. */
let stopped: number | undefined

test.afterEach(() => {
  if (stopped !== undefined) process.kill(stopped, 'SIGCONT')
  stopped = undefined
})

/** A kit peer on the harness page, connected to `relay` through the page's `linkState` (transport defaults) and `online`. */
async function onlinePeer(
  peer: (name: string, options: { url: string; waitForConnect: boolean }) => Promise<Peer>,
  relay: KitRelay,
  id: string,
): Promise<Peer> {
  const browser = await peer(id, { url: '/index.html', waitForConnect: false })
  const page = browser.page
  await page.waitForFunction(() => document.title === 'ready')
  await page.evaluate(({ id, url }) => window.harness.linkState.connect(id, url), { id, url: relay.url })
  await expect.poll(() => status(page), { timeout: 15_000 }).toBe('online')
  return browser
}

const status = (page: Page): Promise<string | undefined> => page.evaluate(() => window.harness.linkState.connection()?.status)

/** How long after `since` the page's `connection` first became `wanted`; polls up to `timeoutMs`, undefined if it never did. */
async function msUntil(page: Page, since: number, wanted: string, timeoutMs: number): Promise<{ ms: number; reason?: string } | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const change = await page.evaluate(({ since, wanted }) => window.harness.linkState.firstSince(since, wanted as never), { since, wanted })
    if (change !== undefined) return { ms: change.at - since, ...(change.reason !== undefined && { reason: change.reason }) }
    if (Date.now() > deadline) return undefined
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

test('the network cut by CDP: offline within a second, online again when it returns', async ({ relay, peer }) => {
  const alice = await onlinePeer(peer, relay, 'alice')
  const page = alice.page
  const worker = page.workers()[0]
  expect(worker, 'the engine runs in a dedicated worker').toBeDefined()
  const cdp = await alice.context.newCDPSession(page)
  await cdp.send('Network.enable')
  const conditions = { latency: 0, downloadThroughput: -1, uploadThroughput: -1 }

  const cut = Date.now()
  await cdp.send('Network.emulateNetworkConditions', { offline: true, ...conditions })
  const offline = await msUntil(page, cut, 'offline', 40_000)
  console.log(`network cut: connection offline after ${offline === undefined ? '> 40 000' : offline.ms} ms (${offline?.reason ?? 'still online'})`)
  expect(await worker!.evaluate(() => navigator.onLine), 'the emulation reached the worker').toBe(false)
  expect(offline, 'connection offline at all').toBeDefined()
  expect(offline!.ms).toBeLessThanOrEqual(1_000)
  expect(offline!.reason).toMatch(/network is offline/)
  // Retries go on (an offline report can be wrong for a loopback relay) and fail while the network is cut.
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  expect(await page.evaluate((since) => window.harness.linkState.firstSince(since, 'online'), cut)).toBeUndefined()

  const back = Date.now()
  await cdp.send('Network.emulateNetworkConditions', { offline: false, ...conditions })
  const online = await msUntil(page, back, 'online', 15_000)
  console.log(`network back: connection online after ${online?.ms ?? '> 15 000'} ms`)
  expect(online, 'online again').toBeDefined()
  expect(online!.ms).toBeLessThanOrEqual(2_000)
})

test('a half-open relay link (the relay SIGSTOPped) is noticed within ~10 s; online again after SIGCONT', async ({ relay, peer }) => {
  const { page } = await onlinePeer(peer, relay, 'alice')
  // Stop at a random point of the ping cycle, not right after login.
  await new Promise((resolve) => setTimeout(resolve, 1_000 + Math.random() * 5_000))
  const stop = Date.now()
  process.kill(relay.pid, 'SIGSTOP')
  stopped = relay.pid
  const noticed = await msUntil(page, stop, 'offline', 40_000)
  console.log(`relay stopped: connection offline after ${noticed === undefined ? '> 40 000' : noticed.ms} ms (${noticed?.reason ?? 'still online'})`)
  expect(noticed, 'the half-open link noticed at all').toBeDefined()
  expect(noticed!.ms).toBeLessThanOrEqual(HALF_OPEN_BOUND_MS + SLACK_MS)
  expect(noticed!.reason).toMatch(/no pong/)

  const resume = Date.now()
  process.kill(relay.pid, 'SIGCONT')
  stopped = undefined
  const online = await msUntil(page, resume, 'online', 30_000)
  console.log(`relay resumed: connection online after ${online?.ms ?? '> 30 000'} ms`)
  expect(online, 'online again').toBeDefined()
})
