import { expect, test } from '../../src/playwright/index.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'
import { UPGRADED } from '../helpers/schema-2-database.js'

test.use({ relayOptions: REPO_RELAY })

const texts = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

test('the IndexedDB store passes the store contract in real Chromium', async ({ peer }) => {
  const page = await harnessTab(await peer('a', HARNESS), true)
  const results = await page.evaluate(() => window.harness.storeContract())
  expect(results.length).toBeGreaterThan(15)
  expect(results.filter((r) => !r.ok)).toEqual([])
})

test('a schema 2 database of an earlier release opens upgraded in real Chromium, its queue and receipts intact', async ({ peer }) => {
  const page = await harnessTab(await peer('a', HARNESS), true)
  expect(await page.evaluate(() => window.harness.schema2Upgrade())).toEqual(UPGRADED)
})

test('1,000 messages to an offline peer survive a reload, then arrive in order once it appears', async ({ peer }) => {
  const browser = await peer('a', HARNESS)
  const a = await harnessTab(browser, true)
  await a.evaluate(() => window.harness.connect('a', { network: 'reload' }))
  await expect.poll(() => a.evaluate(() => window.harness.role())).toBe('leader')
  await a.evaluate(() => window.harness.sendBurst('b', 'm', 1000))
  expect(await a.evaluate(() => window.harness.pending())).toEqual({ outbound: 1000, inbound: 0 })

  await a.reload()
  await a.waitForFunction(() => document.title === 'ready')
  await a.evaluate(() => window.harness.connect('a', { network: 'reload' }))
  await expect.poll(() => a.evaluate(() => window.harness.role())).toBe('leader')
  expect(await a.evaluate(() => window.harness.pending())).toEqual({ outbound: 1000, inbound: 0 })

  const b = await harnessTab(browser)
  await b.evaluate(() => window.harness.connect('b', { network: 'reload' }))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 60_000 }).toBe(1000)
  const got = await b.evaluate(() => window.harness.received())
  expect(got.map((m) => m.contents)).toEqual(texts('m', 1000))
  expect(got.map((m) => m.seq)).toEqual([...Array(1000).keys()])
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 30_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('a worker terminated in the middle of group commits keeps every resolved send, none twice', async ({ peer }) => {
  const browser = await peer('a', HARNESS)
  const a = await harnessTab(browser, true)
  await a.evaluate(() => window.harness.connectOwnWorker('a', 'kill'))
  await expect.poll(() => a.evaluate(() => window.harness.role())).toBe('leader')
  // Enough that a kill once 200 resolved lands mid-stream: group commits of up to 1,024 sends each take a few ms.
  await a.evaluate(() => window.harness.burst('b', 'm', 12_000))
  await a.waitForFunction(() => window.harness.resolvedIds().length >= 200)
  await a.evaluate(() => window.harness.terminateWorker())
  const resolved = await a.evaluate(() => [...window.harness.resolvedIds()])
  expect(resolved.length).toBeLessThan(12_000) // killed mid-stream, not after

  await a.evaluate(() => window.harness.connectOwnWorker('a', 'kill'))
  await expect.poll(() => a.evaluate(() => window.harness.role())).toBe('leader')
  const rows = await a.evaluate(() => window.harness.outboxRows('a'))
  test.info().annotations.push({ type: 'kill', description: `${resolved.length} sends had resolved, ${rows.length} rows stored` })
  const ids = new Set(rows.map((r) => r.id))
  expect(ids.size).toBe(rows.length) // no id twice
  expect(new Set(rows.map((r) => r.text)).size).toBe(rows.length) // no message twice
  expect(rows.map((r) => r.seq)).toEqual([...Array(rows.length).keys()]) // no gap
  for (const id of resolved) expect(ids.has(id)).toBe(true) // every resolved send is there
  const statuses = await a.evaluate((some) => Promise.all(some.map((id) => window.harness.status(id))), resolved.slice(0, 50))
  expect(new Set(statuses)).toEqual(new Set(['queued']))

  const b = await harnessTab(browser)
  await b.evaluate(() => window.harness.connect('b', { network: 'kill' }))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 60_000 }).toBe(rows.length)
  const got = await b.evaluate(() => window.harness.received())
  expect(got.map((m) => m.contents)).toEqual(rows.map((r) => r.text))
})

test('two tabs of one identity: one engine; the leader closes mid-stream; the other takes over; all 500 arrive once, in order', async ({ peer }) => {
  const browser = await peer('a', HARNESS)
  const leader = await harnessTab(browser, true)
  await leader.evaluate(() => window.harness.connect('a', { network: 'takeover', subscribe: false }))
  await expect.poll(() => leader.evaluate(() => window.harness.role())).toBe('leader')
  const follower = await harnessTab(browser)
  await follower.evaluate(() => window.harness.connect('a', { network: 'takeover', subscribe: false }))
  await expect.poll(() => follower.evaluate(() => window.harness.role())).toBe('follower')
  expect(await leader.evaluate(() => window.harness.role())).toBe('leader')

  const b = await harnessTab(browser)
  await b.evaluate(() => window.harness.connect('b', { network: 'takeover' }))

  // The follower sends 500, one after another, through the leader's engine.
  const sending = follower.evaluate(() => window.harness.sendMany('b', 'm', 0, 500))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBeGreaterThan(100)
  const atClose = await b.evaluate(() => window.harness.receivedCount())
  await leader.close()
  test.info().annotations.push({ type: 'takeover', description: `leader closed after ${atClose} of 500 had arrived` })
  await expect.poll(() => follower.evaluate(() => window.harness.role()), { timeout: 15_000 }).toBe('leader')
  const ids = await sending
  expect(new Set(ids).size).toBe(500)

  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 60_000 }).toBe(500)
  const got = await b.evaluate(() => window.harness.received())
  expect(got.map((m) => m.contents)).toEqual(texts('m', 500))
  await expect.poll(() => follower.evaluate(() => window.harness.pending()), { timeout: 30_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('error codes survive the worker bridge and the tab-to-tab bridge', async ({ peer }) => {
  const browser = await peer('a', HARNESS)
  const page = await harnessTab(browser, true)
  await page.evaluate(() => window.harness.connect('a', { network: 'errors' }))
  await expect.poll(() => page.evaluate(() => window.harness.role())).toBe('leader')
  const follower = await harnessTab(browser)
  await follower.evaluate(() => window.harness.connect('a', { network: 'errors' }))
  await expect.poll(() => follower.evaluate(() => window.harness.role())).toBe('follower')

  for (const tab of [page, follower]) {
    expect(await tab.evaluate(() => window.harness.sendError('not valid', 'x'))).toMatchObject({ isIlmError: true, name: 'IlmError', code: 'INVALID_PEER_ID' })
    expect(await tab.evaluate(() => window.harness.sendError('a', 'x'))).toMatchObject({ isIlmError: true, code: 'SELF_SEND' })
    expect(await tab.evaluate(() => window.harness.sendError('b', 10n))).toMatchObject({ isIlmError: true, code: 'UNSERIALIZABLE' })
    expect(await tab.evaluate(() => window.harness.sendError('b', 'x'.repeat(2 * 1024 * 1024)))).toMatchObject({ isIlmError: true, code: 'TOO_LARGE' })
  }
  expect(await page.evaluate(() => window.harness.pending())).toEqual({ outbound: 0, inbound: 0 })
})
