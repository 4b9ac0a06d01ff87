/**
 * The page client's first hour (issue 14): `connect()` fails with a typed
 * error instead of hanging when its worker cannot load or answer, `ready()`
 * says when calls are served, the work-offline switch acts from any tab, and
 * a send's status events come after its `send()` resolved. The tabs are a
 * Playwright kit peer's (a profile on disk), the relay the kit's (a real
 * process).
 */
import { expect, test } from '../../src/playwright/index.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

test('connect() rejects with WORKER_FAILED when the worker script is missing, and when the worker never answers', async ({ peer }) => {
  const page = await harnessTab(await peer('lifecycle', HARNESS), true)
  const missing = await page.evaluate(() => window.harness.lifecycle.connectMissingWorker('lost-worker'))
  expect(missing).toMatchObject({ ok: false, name: 'IlmError', code: 'WORKER_FAILED' })
  expect(missing.ms).toBeLessThan(5_000)
  const silent = await page.evaluate(() => window.harness.lifecycle.connectSilentWorker('silent-worker', 800))
  expect(silent).toMatchObject({ ok: false, name: 'IlmError', code: 'WORKER_FAILED' })
  expect(silent.message).toContain('800 ms')
  expect(silent.ms).toBeGreaterThanOrEqual(700)
})

test('ready() resolves once this tab leads or has heard its leader, and not before; closing first rejects it with CLOSED', async ({ peer }) => {
  const browser = await peer('ready-a', HARNESS)
  const first = await harnessTab(browser, true)
  const second = await harnessTab(browser)
  expect(await first.evaluate(() => window.harness.lifecycle.connect('ready-a', {}))).toMatchObject({ role: 'leader' })
  expect(await second.evaluate(() => window.harness.lifecycle.connect('ready-a', {}))).toMatchObject({ role: 'follower' })
  const third = await harnessTab(browser)
  const blocked = await third.evaluate(() => window.harness.lifecycle.readyWithoutLeader('ready-b', 1_500))
  expect(blocked).toMatchObject({ early: 'waiting', after: { ok: false, code: 'CLOSED' } })
})

test('setOnline(false) in a follower tab takes the identity offline, and setOnline(true) there brings it back', async ({ relay, peer }) => {
  const browser = await peer('switch-a', HARNESS)
  const leader = await harnessTab(browser, true)
  const follower = await harnessTab(browser)
  const url = relay.url
  expect(await leader.evaluate((relay) => window.harness.lifecycle.connect('switch-a', { relay, heartbeatMs: 250 }), url)).toMatchObject({ role: 'leader' })
  expect(await follower.evaluate((relay) => window.harness.lifecycle.connect('switch-a', { relay, heartbeatMs: 250 }), url)).toMatchObject({ role: 'follower' })
  const status = (page: typeof leader) => page.evaluate(() => window.harness.lifecycle.connection().status)
  await expect.poll(() => status(follower)).toBe('online')
  await follower.evaluate(() => window.harness.lifecycle.setOnline(false))
  await expect.poll(() => status(leader), { timeout: 5_000 }).toBe('offline')
  await expect.poll(() => status(follower), { timeout: 5_000 }).toBe('offline')
  expect(await leader.evaluate(() => window.harness.lifecycle.connection().reason)).toContain('offline')
  // A tab that joins now, and would lead after the others, learns the switch from the leader's heartbeat.
  await follower.evaluate(() => window.harness.lifecycle.setOnline(true))
  await expect.poll(() => status(leader), { timeout: 10_000 }).toBe('online')
  await expect.poll(() => status(follower), { timeout: 10_000 }).toBe('online')
})

test("a send's status events reach the page after its send() resolved", async ({ relay, peer }) => {
  const url = relay.url
  const browser = await peer('order-a', HARNESS)
  const a = await harnessTab(browser, true)
  const b = await harnessTab(browser)
  await a.evaluate((relay) => window.harness.lifecycle.connect('order-a', { relay }), url)
  await b.evaluate((relay) => window.harness.lifecycle.connect('order-b', { relay, subscribe: true }), url)
  const ids = await a.evaluate(() => window.harness.lifecycle.sendAll('order-b', 50))
  await expect
    .poll(async () => (await a.evaluate(() => window.harness.lifecycle.order())).filter((e) => e.endsWith(':delivered')).length, { timeout: 20_000 })
    .toBe(50)
  const order = await a.evaluate(() => window.harness.lifecycle.order())
  for (const id of ids) {
    const resolved = order.indexOf(`resolved:${id}`)
    const firstStatus = order.findIndex((e) => e.startsWith(`status:${id}:`))
    expect(resolved, id).toBeGreaterThanOrEqual(0)
    expect(firstStatus, id).toBeGreaterThan(resolved)
    expect(order[firstStatus]).toBe(`status:${id}:queued`)
  }
})
