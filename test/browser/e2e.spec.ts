/**
 * End-to-end encryption at engine level in real Chromium, on profiles on
 * disk, through a real relay: the keys an identity's engine keeps in
 * IndexedDB (non-extractable) are the ones every tab's engine uses, across a
 * leader tab's reload and a browser restart, so its peer never sees a key
 * change; and `connect({ verifyPeerKey })` deciding on a peer's new key.
 * (src/crypto's records themselves across a browser restart:
 * test/engines/crypto-records.test.ts.)
 */
import type { Page } from '@playwright/test'
import { expect, test } from '../../src/playwright/index.js'
import { expectLeadRefused, HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

const texts = (prefix: string, from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`)
const SAFETY_NUMBER = /^(\d{5} ){11}\d{5}$/

/** Connects the harness in `page` as `peerId` through the relay; resolves once the tab plays `role`. */
async function join(
  page: Page,
  peerId: string,
  relay: string,
  role: 'leader' | 'follower',
  options: { dbName?: string; verdict?: boolean; encryption?: boolean } = {},
): Promise<void> {
  await page.evaluate(({ peerId, relay, options }) => window.harness.connect(peerId, { relay, ...options }), { peerId, relay, options })
  await expect.poll(() => page.evaluate(() => window.harness.role()), { timeout: 15_000 }).toBe(role)
}

const received = (page: Page): Promise<unknown[]> => page.evaluate(() => window.harness.received().map((m) => m.contents))
const count = (page: Page): Promise<number> => page.evaluate(() => window.harness.receivedCount())

/**
 * Alice's tab `from` sends bob `a<first>`..`a<first+4>` and bob answers `b<first>`..; resolves once bob holds
 * `first + 5` messages and alice's tab `to` holds `toCount`.
 */
async function round(from: Page, bob: Page, first: number, to: Page, toCount: number): Promise<void> {
  await from.evaluate((first) => window.harness.sendMany('bob', 'a', first, 5), first)
  await bob.evaluate((first) => window.harness.sendMany('alice', 'b', first, 5), first)
  await expect.poll(() => count(bob), { timeout: 30_000 }).toBe(first + 5)
  await expect.poll(() => count(to), { timeout: 30_000 }).toBe(toCount)
}

test("alice's keys stay hers across a leader tab's reload and a browser restart; both her tabs use them; bob sees no key change; messages flow once, in order", async ({
  relay,
  peer,
}) => {
  const aliceBrowser = await peer('alice', HARNESS)
  const bobBrowser = await peer('bob', HARNESS)
  const leader = await harnessTab(aliceBrowser, true)
  await join(leader, 'alice', relay.url, 'leader')
  const follower = await harnessTab(aliceBrowser)
  await join(follower, 'alice', relay.url, 'follower')
  const bob = await harnessTab(bobBrowser, true)
  await join(bob, 'bob', relay.url, 'leader')

  // The follower sends through the leader's engine; bob answers; both of alice's tabs are handed his messages.
  await round(follower, bob, 0, follower, 5)

  const number = await bob.evaluate(() => window.harness.safetyNumber('alice'))
  expect(number).toMatch(SAFETY_NUMBER)
  expect(await leader.evaluate(() => window.harness.safetyNumber('bob'))).toBe(number)
  expect(await follower.evaluate(() => window.harness.safetyNumber('bob'))).toBe(number)
  const keys = await leader.evaluate(() => window.harness.engineKeys('alice'))
  expect(keys).toMatchObject({ identityExtractable: false, prekeyExtractable: false })
  expect(keys?.identityKey).toMatch(/^[0-9a-f]{64}$/)

  // The leader tab reloads: the follower's worker takes over and opens the engine on the same store, with its keys.
  await leader.reload()
  await leader.waitForFunction(() => document.title === 'ready')
  await expect.poll(() => follower.evaluate(() => window.harness.role()), { timeout: 15_000 }).toBe('leader')
  await join(leader, 'alice', relay.url, 'follower')
  expect(await follower.evaluate(() => window.harness.safetyNumber('bob'))).toBe(number)
  expect(await leader.evaluate(() => window.harness.safetyNumber('bob'))).toBe(number)
  expect(await follower.evaluate(() => window.harness.engineKeys('alice'))).toEqual(keys)

  await round(leader, bob, 5, follower, 10)
  expect(await received(follower)).toEqual(texts('b', 0, 10))
  // Processed (marked in the store) before the browser quits: one quit before that is handed over again after the restart.
  await expect.poll(() => follower.evaluate(() => window.harness.pending()), { timeout: 30_000 }).toEqual({ outbound: 0, inbound: 0 })

  // Alice quits her browser and starts it again on the same profile: one tab, the same keys.
  await aliceBrowser.close()
  await aliceBrowser.reopen()
  const again = await harnessTab(aliceBrowser, true)
  await join(again, 'alice', relay.url, 'leader')
  expect(await again.evaluate(() => window.harness.engineKeys('alice'))).toEqual(keys)
  expect(await again.evaluate(() => window.harness.safetyNumber('bob'))).toBe(number)

  await round(again, bob, 10, again, 5)
  await expect.poll(() => again.evaluate(() => window.harness.pending()), { timeout: 30_000 }).toEqual({ outbound: 0, inbound: 0 })

  const atBob = await bob.evaluate(() => window.harness.received())
  expect(atBob.map((m) => m.contents)).toEqual(texts('a', 0, 15))
  expect(atBob.map((m) => m.seq)).toEqual([...Array(15).keys()])
  expect(await received(again)).toEqual(texts('b', 10, 5))
  expect(await bob.evaluate(() => window.harness.keyChanges())).toEqual([])
  expect(await bob.evaluate(() => window.harness.safetyNumber('alice'))).toBe(number)
  expect((await bob.evaluate(() => window.harness.errors())).map((e) => e.code)).toEqual([])
})

test("connect({ verifyPeerKey }): a no holds a wiped peer's new key with peer-key-changed; a yes pins the next one without it", async ({ relay, peer }) => {
  const aliceBrowser = await peer('alice', HARNESS)
  const bobBrowser = await peer('bob', HARNESS)
  const bob = await harnessTab(bobBrowser, true)
  await join(bob, 'bob', relay.url, 'leader', { verdict: false })
  const alice = await harnessTab(aliceBrowser, true)
  await join(alice, 'alice', relay.url, 'leader', { dbName: 'alice-1' })
  await alice.evaluate(() => window.harness.sendMany('bob', 'm', 0, 3))
  await expect.poll(() => count(bob), { timeout: 30_000 }).toBe(3)

  // Alice comes back on another database: a wiped store, with a new identity key. Bob's page says no.
  await alice.reload()
  await alice.waitForFunction(() => document.title === 'ready')
  await join(alice, 'alice', relay.url, 'leader', { dbName: 'alice-2' })
  await alice.evaluate(() => window.harness.sendMany('bob', 'w', 0, 3))
  await expect.poll(() => bob.evaluate(() => window.harness.keyChanges()), { timeout: 30_000 }).toEqual(['alice'])
  expect(await bob.evaluate(() => window.harness.verifyAsked())).toEqual(['alice'])
  expect(await bob.evaluate(() => window.harness.safetyNumber('alice'))).toBe(await alice.evaluate(() => window.harness.safetyNumber('bob')))
  await bob.waitForTimeout(1000)
  expect(await received(bob)).toEqual(texts('m', 0, 3))
  await bob.evaluate(() => window.harness.acceptPeerKey('alice'))
  await expect.poll(() => count(bob), { timeout: 30_000 }).toBe(6)

  // Once more, and bob's page now says yes: pinned at once, no event, no acceptPeerKey.
  await bob.evaluate(() => window.harness.setVerdict(true))
  await alice.reload()
  await alice.waitForFunction(() => document.title === 'ready')
  await join(alice, 'alice', relay.url, 'leader', { dbName: 'alice-3' })
  await alice.evaluate(() => window.harness.sendMany('bob', 'v', 0, 3))
  await expect.poll(() => count(bob), { timeout: 30_000 }).toBe(9)
  expect(await received(bob)).toEqual([...texts('m', 0, 3), ...texts('w', 0, 3), ...texts('v', 0, 3)])
  expect(await bob.evaluate(() => window.harness.verifyAsked())).toEqual(['alice', 'alice'])
  expect(await bob.evaluate(() => window.harness.keyChanges())).toEqual(['alice'])
  expect(await bob.evaluate(() => window.harness.safetyNumber('alice'))).toBe(await alice.evaluate(() => window.harness.safetyNumber('bob')))
  expect((await bob.evaluate(() => window.harness.errors())).map((e) => e.code)).toEqual([])
})

test("connect({ encryption: false }) on both ends: messages flow, and no tab's worker fetches the cipher's chunk; with encryption on, each leader's worker does", async ({
  relay,
  peer,
}) => {
  const cipherChunks = (urls: readonly string[]): string[] => urls.filter((url) => /\/web-crypto-cipher-[\w-]+\.js$/.test(url))
  const plain = { alice: await peer('alice', HARNESS), bob: await peer('bob', HARNESS) }
  const fetched: string[] = []
  for (const browser of Object.values(plain)) browser.context.on('request', (request) => void fetched.push(request.url()))
  const alice = await harnessTab(plain.alice, true)
  const bob = await harnessTab(plain.bob, true)
  await join(alice, 'alice', relay.url, 'leader', { encryption: false })
  await join(bob, 'bob', relay.url, 'leader', { encryption: false })
  await round(alice, bob, 0, alice, 5)
  expect(await received(alice)).toEqual(texts('b', 0, 5))
  expect(await received(bob)).toEqual(texts('a', 0, 5))
  expect(await alice.evaluate(() => window.harness.safetyNumber('bob').catch((error: unknown) => (error as { code?: string }).code))).toBe('E2E_MISMATCH')
  // The worker's own chunks were fetched (so the listener sees them), the cipher's was not.
  expect(fetched.some((url) => /\/worker-[\w-]+\.js$/.test(url))).toBe(true)
  expect(cipherChunks(fetched)).toEqual([])

  const sealed = { carol: await peer('carol', HARNESS), dave: await peer('dave', HARNESS) }
  const loaded: string[] = []
  for (const browser of Object.values(sealed)) browser.context.on('request', (request) => void loaded.push(request.url()))
  const carol = await harnessTab(sealed.carol, true)
  const dave = await harnessTab(sealed.dave, true)
  await join(carol, 'carol', relay.url, 'leader')
  await join(dave, 'dave', relay.url, 'leader')
  await carol.evaluate(() => window.harness.sendMany('dave', 'c', 0, 5))
  await expect.poll(() => count(dave), { timeout: 30_000 }).toBe(5)
  expect(await dave.evaluate(() => window.harness.safetyNumber('carol'))).toMatch(SAFETY_NUMBER)
  expect(cipherChunks(loaded)).toHaveLength(2)
})

test("a cipher chunk that cannot load: connect() resolves, the page hears CRYPTO_FAILED with the import's error as cause, and the tab does not lead without encryption", async ({
  relay,
  peer,
}) => {
  await expectLeadRefused(await peer('alice', HARNESS), relay.url, /\/web-crypto-cipher-[\w-]+\.js$/, 'CRYPTO_FAILED')
})
