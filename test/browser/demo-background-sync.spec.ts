/**
 * The demo chat delivers with no tab open (issue 18): alice writes while her
 * tab is offline, closes it, and when connectivity is back the demo's service
 * worker (demo/src/sync-worker.ts, `handleSync`) sends the message on a
 * Background Sync event (fired here over CDP, as Chromium fires it when the
 * network returns). Bob gets it; alice's reopened chat shows it delivered and
 * says that the service worker sent it while the app was closed.
 *
 * Needs `npm run build && npm run build:demo` first (`npm run test:browser` does both).
 */
import { expect, test, type Locator, type Page } from '@playwright/test'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDemoServer, type DemoServer } from '../helpers/demo-server.js'
import { persistentContext } from './fixtures.js'

const message = (page: Page, text: string): Locator =>
  page.getByTestId('message').filter({ has: page.getByTestId('message-text').getByText(text, { exact: true }) })

async function pickName(page: Page, url: string, name: string): Promise<void> {
  await page.goto(url)
  await page.getByTestId('name-input').fill(name)
  await page.getByTestId('name-submit').click()
  await expect(page.getByTestId('me')).toHaveText(name)
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online', { timeout: 20_000 })
}

let server: DemoServer | undefined
let mailboxDir: string | undefined
const disposers: (() => Promise<void>)[] = []
test.afterAll(async () => {
  for (const dispose of disposers) await dispose()
  await server?.stop()
  if (mailboxDir !== undefined) rmSync(mailboxDir, { recursive: true, force: true })
})

test('written offline, the tab closed, connectivity back: the service worker delivers, and the reopened chat says so', async () => {
  if (!existsSync(fileURLToPath(new URL('../../demo/dist/sync.js', import.meta.url)))) throw new Error('demo/dist is missing: run `npm run build:demo`')
  mailboxDir = mkdtempSync(join(tmpdir(), 'intersession-demo-mailbox-'))
  server = await startDemoServer(mailboxDir)
  const [alice, bob] = [await persistentContext(), await persistentContext()]
  disposers.push(
    () => alice.dispose(),
    () => bob.dispose(),
  )

  const a = alice.context.pages()[0] ?? (await alice.context.newPage())
  await pickName(a, server.url, 'alice')
  await a.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 })
  const b = bob.context.pages()[0] ?? (await bob.context.newPage())
  await pickName(b, server.url, 'bob')
  await a.getByTestId('contact-bob').click()
  const text = 'written offline, then the tab was closed'

  await a.getByTestId('online-switch').click()
  await expect(a.getByTestId('connection')).toHaveAttribute('data-state', 'offline')
  await a.getByTestId('composer-input').fill(text)
  await a.getByTestId('composer-input').press('Enter')
  await expect(message(a, text)).toHaveAttribute('data-status', 'queued')

  // Close the app: only a page of no origin is left, to reach the service worker over CDP.
  const blank = await alice.context.newPage()
  const cdp = await alice.context.newCDPSession(blank)
  const origin = new URL(server.url).origin
  let registrationId: string | undefined
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
    for (const r of registrations) if (!r.isDeleted && r.scopeURL.startsWith(origin)) registrationId = r.registrationId
  })
  await cdp.send('ServiceWorker.enable')
  await expect.poll(() => registrationId, { timeout: 10_000 }).toBeDefined()
  await a.close()
  const sw = alice.context.serviceWorkers()[0]!
  await expect
    .poll(() => sw.evaluate(async () => (await navigator.locks.query()).held?.map((l) => l.name)), { timeout: 15_000 })
    .not.toContain('intersession:alice')
  expect(await b.evaluate(() => document.body.textContent)).not.toContain(text)

  // Connectivity is back: the browser fires the sync the page registered.
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin, registrationId: registrationId!, tag: 'intersession-sync:alice', lastChance: false })
  await b.getByTestId('contact-alice').click()
  await expect(message(b, text)).toHaveAttribute('data-direction', 'in', { timeout: 30_000 })
  // The service worker stays a moment for incoming messages, then closes and frees the lock: alice comes back after that.
  await expect
    .poll(() => sw.evaluate(async () => (await navigator.locks.query()).held?.map((l) => l.name)), { timeout: 15_000 })
    .not.toContain('intersession:alice')

  const back = await alice.context.newPage()
  await pickName(back, server.url, 'alice')
  await expect(back.locator('.sync-note')).toContainText('While the app was closed', { timeout: 10_000 })
  await expect(back.locator('.sync-note')).toContainText('sent the messages you wrote offline')
  await back.getByTestId('contact-bob').click()
  await expect(message(back, text)).toHaveAttribute('data-status', 'delivered', { timeout: 15_000 })
  await expect(message(b, text)).toHaveCount(1)
})
