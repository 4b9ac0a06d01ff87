/**
 * The demo chat (demo/), driven as two people would: two browser profiles on
 * disk (so IndexedDB, localStorage and the service worker are real), the demo
 * server with its dev relay in a child process. Screenshots of the main
 * states go to test/browser/screenshots/ (not committed).
 *
 * Needs `npm run build && npm run build:demo` first (`npm run test:browser` does both).
 */
import { expect, test, type BrowserContext, type Locator, type Page } from '@playwright/test'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDemoServer, type DemoServer } from '../helpers/demo-server.js'
import { persistentContext } from './fixtures.js'

const SCREENSHOTS = fileURLToPath(new URL('./screenshots/', import.meta.url))
const ONLINE_TIMEOUT = 20_000
/** 60 digits in 12 groups of 5, as Signal shows them. */
const SAFETY_NUMBER = /^\d{5}( \d{5}){11}$/
/** Reconnecting after the server was down: backoff with jitter, up to 8 s or so after a few seconds down. */
const RECONNECT_TIMEOUT = 45_000
/**
 * The relay's mailbox for this file's runs: kept across the server restart, never shared with a demo someone runs meanwhile.
 * Made in beforeAll, not at load: the runner's main process loads this file too, and never runs afterAll.
 */
let mailboxDir: string | undefined
test.afterAll(() => mailboxDir !== undefined && rmSync(mailboxDir, { recursive: true, force: true }))

const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: `${SCREENSHOTS}${name}.png` })

const message = (page: Page, text: string): Locator =>
  page.getByTestId('message').filter({ has: page.getByTestId('message-text').getByText(text, { exact: true }) })

async function say(page: Page, text: string): Promise<void> {
  const input = page.getByTestId('composer-input')
  await input.fill(text)
  await input.press('Enter')
  await expect(message(page, text)).toHaveCount(1)
}

/** What a conversation shows: text, direction and status of each message, in order. */
function transcript(page: Page): Promise<string[]> {
  return page
    .getByTestId('message')
    .evaluateAll((items) =>
      items.map((li) => `${(li as HTMLElement).dataset.direction} ${(li as HTMLElement).dataset.status} ${li.querySelector('.text')?.textContent}`),
    )
}

/** The safety number a page shows, once it is known: in the panel (`safety-number`) or in the key change banner (`new-safety-number`). */
async function safetyNumber(page: Page, testId = 'safety-number'): Promise<string> {
  const number = page.getByTestId(testId)
  await expect(number).toHaveAttribute('data-known', 'true', { timeout: 15_000 })
  const text = await number.textContent()
  expect(text).toMatch(SAFETY_NUMBER)
  return text!
}

async function expectOnline(page: Page, timeout = ONLINE_TIMEOUT): Promise<void> {
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online', { timeout })
}

let server: DemoServer
let alice: { context: BrowserContext; page: Page; dispose(): Promise<void> }
let bob: { context: BrowserContext; page: Page; dispose(): Promise<void> }

async function browserFor(): Promise<{ context: BrowserContext; page: Page; dispose(): Promise<void> }> {
  const { context, dispose } = await persistentContext()
  const page = context.pages()[0] ?? (await context.newPage())
  return { context, page, dispose }
}

test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  if (!existsSync(fileURLToPath(new URL('../../demo/dist/index.html', import.meta.url)))) {
    throw new Error('demo/dist is missing: run `npm run build && npm run build:demo` first')
  }
  mkdirSync(SCREENSHOTS, { recursive: true })
  mailboxDir = mkdtempSync(join(tmpdir(), 'intersession-demo-mailbox-'))
  server = await startDemoServer(mailboxDir)
  alice = await browserFor()
  bob = await browserFor()
})

test.afterAll(async () => {
  await alice?.dispose()
  await bob?.dispose()
  await server?.stop()
})

test('two people pick names, see each other online and chat both ways', async () => {
  const a = alice.page
  const b = bob.page
  await a.goto(server.url)
  await a.getByTestId('name-input').fill('alice')
  await shot(a, '01-name-picker')
  await a.getByTestId('name-submit').click()
  await expect(a.getByTestId('me')).toHaveText('alice')
  await expectOnline(a)

  await b.goto(server.url)
  await b.getByTestId('name-input').fill('bob')
  await b.getByTestId('name-input').press('Enter')
  await expectOnline(b)

  // Who is online: the directory lists each to the other.
  await expect(a.getByTestId('contact-bob')).toHaveAttribute('data-online', 'true', { timeout: 10_000 })
  await expect(b.getByTestId('contact-alice')).toHaveAttribute('data-online', 'true', { timeout: 10_000 })

  await a.getByTestId('contact-bob').click()
  await expect(a.getByTestId('conversation-title')).toHaveText('bob')
  await say(a, 'Hi bob, it is alice')
  await expect(message(a, 'Hi bob, it is alice')).toHaveAttribute('data-status', 'delivered', { timeout: 15_000 })

  // Bob has it before he opens the conversation: an unread badge.
  await expect(b.getByTestId('contact-alice').getByTestId('unread')).toHaveText('1', { timeout: 15_000 })
  await b.getByTestId('contact-alice').click()
  await expect(message(b, 'Hi bob, it is alice')).toHaveAttribute('data-direction', 'in')
  await say(b, 'Hello alice! Try the offline switch.')
  await expect(message(b, 'Hello alice! Try the offline switch.')).toHaveAttribute('data-status', 'delivered', { timeout: 15_000 })
  await expect(message(a, 'Hello alice! Try the offline switch.')).toHaveAttribute('data-direction', 'in', { timeout: 15_000 })
  await expect(a.getByTestId('pending')).toHaveText('0 pending')

  await shot(a, '02-chat-alice')
  await shot(b, '02-chat-bob')
})

test('the conversation says it is end-to-end encrypted, and both sides show the same safety number', async () => {
  const a = alice.page
  const b = bob.page
  for (const page of [a, b]) {
    await expect(page.getByTestId('e2e-badge')).toHaveText('End-to-end encrypted')
    await expect(page.getByTestId('e2e-badge')).toHaveAttribute('data-encrypted', 'true')
    await expect(page.getByTestId('safety-panel')).toBeHidden()
    await page.getByTestId('e2e-badge').click()
    await expect(page.getByTestId('safety-panel')).toBeVisible()
  }
  await expect(a.getByTestId('safety-panel')).toContainText('Safety number with bob')
  await expect(b.getByTestId('safety-panel')).toContainText('Safety number with alice')
  const numbers = [await safetyNumber(a), await safetyNumber(b)]
  expect(numbers[0]!.replaceAll(' ', '')).toHaveLength(60)
  expect(numbers[1]).toBe(numbers[0])
  await expect(a.getByTestId('safety-panel')).toContainText('Compare it with the number bob sees')
  await expect(a.getByTestId('key-changed')).toBeHidden()
  await expect(b.getByTestId('key-changed')).toBeHidden()
  await shot(a, '02-safety-number-alice')

  for (const page of [a, b]) {
    await page.getByTestId('e2e-badge').click()
    await expect(page.getByTestId('safety-panel')).toBeHidden()
  }
})

test('one goes offline with the switch: three messages queue, then turn delivered when back', async () => {
  const a = alice.page
  const b = bob.page
  const queued = ['one, written offline', 'two, written offline', 'three, written offline']

  await b.getByTestId('online-switch').click()
  await expect(b.getByRole('switch')).not.toBeChecked()
  await expect(b.getByTestId('connection')).toHaveAttribute('data-state', 'offline')
  await expect(b.getByTestId('connection')).toHaveText('offline')
  // Alice sees bob go away (presence from the relay).
  await expect(a.getByTestId('contact-bob')).toHaveAttribute('data-online', 'false', { timeout: 10_000 })

  for (const text of queued) await say(b, text)
  for (const text of queued) await expect(message(b, text)).toHaveAttribute('data-status', 'queued')
  await expect(b.getByTestId('pending')).toHaveText('3 pending', { timeout: 5_000 })
  // Chromium has Background Sync: the page says they leave even if the tab is closed.
  await expect(b.getByTestId('pending')).toHaveAttribute('data-sends', 'background')
  // Nothing reaches alice while bob is offline.
  await b.waitForTimeout(1000)
  for (const text of queued) await expect(message(a, text)).toHaveCount(0)
  await shot(b, '03-offline-queued-bob')
  await shot(a, '03-offline-peer-alice')

  await b.getByTestId('online-switch').click()
  await expect(b.getByRole('switch')).toBeChecked()
  await expectOnline(b)
  for (const text of queued) await expect(message(b, text)).toHaveAttribute('data-status', 'delivered', { timeout: 15_000 })
  for (const text of queued) await expect(message(a, text)).toHaveAttribute('data-direction', 'in', { timeout: 15_000 })
  // In order on alice's side.
  const received = (await transcript(a)).filter((line) => line.includes('written offline'))
  expect(received).toEqual(queued.map((text) => `in received ${text}`))
  await expect(b.getByTestId('pending')).toHaveText('0 pending', { timeout: 5_000 })
  await expect(b.getByTestId('pending')).not.toHaveAttribute('data-sends')
  await expect(a.getByTestId('contact-bob')).toHaveAttribute('data-online', 'true', { timeout: 10_000 })

  await shot(b, '04-back-online-delivered-bob')
  await shot(a, '04-back-online-received-alice')
})

test('both pages reload: same names, same conversations, same statuses', async () => {
  const before = { a: await transcript(alice.page), b: await transcript(bob.page) }
  expect(before.a).toHaveLength(5)
  expect(before.b).toHaveLength(5)

  await Promise.all([alice.page.reload(), bob.page.reload()])
  await expect(alice.page.getByTestId('me')).toHaveText('alice')
  await expect(bob.page.getByTestId('me')).toHaveText('bob')
  // The open conversation comes back too.
  await expect(alice.page.getByTestId('conversation-title')).toHaveText('bob')
  await expect(bob.page.getByTestId('conversation-title')).toHaveText('alice')
  await expect(alice.page.getByTestId('message')).toHaveCount(5)
  await expect(bob.page.getByTestId('message')).toHaveCount(5)
  expect(await transcript(alice.page)).toEqual(before.a)
  expect(await transcript(bob.page)).toEqual(before.b)
  await expectOnline(alice.page)
  await expectOnline(bob.page)
  await shot(alice.page, '05-after-reload-alice')
})

test('with the server and relay down, the page opens from the service worker and queues; it all goes out when they are back', async () => {
  const a = alice.page
  const b = bob.page
  await a.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 })
  const { port, relayPort, url } = server
  const before = await transcript(a)

  await server.stop()
  await expect(fetch(url, { signal: AbortSignal.timeout(2000) })).rejects.toThrow()
  await a.reload()
  await expect(a.getByTestId('me')).toHaveText('alice')
  expect(await a.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true)
  await expect(a.getByTestId('message')).toHaveCount(before.length)
  expect(await transcript(a)).toEqual(before)
  await expect(a.getByTestId('connection')).toHaveAttribute('data-state', /^(reconnecting|connecting)$/)
  await expect(a.getByTestId('connection')).toHaveText(/^reconnecting/, { timeout: 10_000 })

  const text = 'typed while the server was down'
  await say(a, text)
  await expect(message(a, text)).toHaveAttribute('data-status', 'queued')
  await expect(a.getByTestId('pending')).toHaveText('1 pending', { timeout: 5_000 })
  await shot(a, '06-opened-offline-from-service-worker')

  server = await startDemoServer(mailboxDir!, port, relayPort)
  await expectOnline(a, RECONNECT_TIMEOUT)
  await expect(message(a, text)).toHaveAttribute('data-status', 'delivered', { timeout: RECONNECT_TIMEOUT })
  await expect(message(b, text)).toHaveAttribute('data-direction', 'in', { timeout: RECONNECT_TIMEOUT })
  await expect(a.getByTestId('pending')).toHaveText('0 pending', { timeout: 5_000 })
  await shot(a, '07-back-online-after-outage')
})

test('the relay keeps a message for someone who is away: bob closes the app, alice writes and leaves, bob reads it later', async () => {
  const a = alice.page
  const b = bob.page
  await expectOnline(b, RECONNECT_TIMEOUT)
  await b.goto('about:blank')
  await expect(a.getByTestId('contact-bob')).toHaveAttribute('data-online', 'false', { timeout: 10_000 })

  const text = 'left with the relay while bob was away'
  await say(a, text)
  await expect(message(a, text)).toHaveAttribute('data-status', 'stored', { timeout: 15_000 })
  await shot(a, '08-stored-by-the-relay')
  // Alice leaves too: the message is with the relay, not with her.
  await a.getByTestId('online-switch').click()
  await expect(a.getByTestId('connection')).toHaveAttribute('data-state', 'offline')

  await b.goto(server.url)
  await expect(b.getByTestId('me')).toHaveText('bob')
  await expectOnline(b)
  await b.getByTestId('contact-alice').click()
  await expect(message(b, text)).toHaveAttribute('data-direction', 'in', { timeout: 15_000 })

  await a.getByTestId('online-switch').click()
  await expectOnline(a)
  await expect(message(a, text)).toHaveAttribute('data-status', 'delivered', { timeout: 15_000 })
  await shot(a, '09-delivered-after-both-were-away')
})

test("a wiped store means a new key: bob is warned, rejects it, is asked again, and alice's messages wait for his accept, then show once", async () => {
  const a = alice.page
  const b = bob.page
  await expectOnline(a)
  await expectOnline(b)
  await expect(b.getByTestId('conversation-title')).toHaveText('alice')
  await b.getByTestId('e2e-badge').click()
  const oldNumber = await safetyNumber(b)
  await b.getByTestId('e2e-badge').click()

  // Alice's browser loses intersession's store (her chat history, the app's own database, stays): new epoch, new keys.
  await a.goto('about:blank')
  await expect(b.getByTestId('contact-alice')).toHaveAttribute('data-online', 'false', { timeout: 10_000 })
  await a.goto(`${server.url}/config.json`)
  expect(
    await a.evaluate(
      () =>
        new Promise<string>((resolve, reject) => {
          const request = indexedDB.deleteDatabase('intersession:alice')
          request.onsuccess = () => resolve('deleted')
          request.onerror = () => reject(new Error(`deleteDatabase: ${request.error?.message}`))
        }),
    ),
  ).toBe('deleted')
  await a.goto(server.url)
  await expect(a.getByTestId('me')).toHaveText('alice')
  await expectOnline(a)
  await expect(a.getByTestId('conversation-title')).toHaveText('bob')

  const held = ['after the wipe, one', 'after the wipe, two']
  for (const text of held) await say(a, text)

  // Bob is told; alice's messages are held, not shown.
  const banner = b.getByTestId('key-changed')
  await expect(banner).toBeVisible({ timeout: 20_000 })
  await expect(banner).toContainText("alice's security key changed: messages from and to them are held until you accept it.")
  await expect(b.getByTestId('contact-alice').getByTestId('key-warning')).toBeVisible()
  const newNumber = await safetyNumber(b, 'new-safety-number')
  expect(newNumber).not.toBe(oldNumber)
  await a.getByTestId('e2e-badge').click()
  expect(await safetyNumber(a)).toBe(newNumber)

  // Bob rejects it (say the numbers differ: they do not, here): the key pinned before is back, the warning goes, alice's messages stay unread.
  await b.getByTestId('reject-key').click()
  await expect(banner).toBeHidden()
  await expect(b.getByTestId('contact-alice').getByTestId('key-warning')).toHaveCount(0)
  await b.getByTestId('e2e-badge').click()
  expect(await safetyNumber(b)).toBe(oldNumber)
  await b.getByTestId('e2e-badge').click()
  for (const text of held) await expect(message(b, text)).toHaveCount(0)
  // (Before bob writes to her: a reply now would be sealed for her old key, and stay so in the relay's mailbox.)
  // Alice's app starts again: her hello presents the new key again, and bob is asked again, with the same number.
  await a.reload()
  await expectOnline(a)
  await expect(banner).toBeVisible({ timeout: 20_000 })
  expect(await safetyNumber(b, 'new-safety-number')).toBe(newNumber)
  for (const text of held) await expect(message(b, text)).toHaveCount(0)

  // Bob's replies wait too.
  const reply = 'from bob, while the key is not accepted'
  await say(b, reply)
  await b.waitForTimeout(2000)
  for (const text of held) await expect(message(b, text)).toHaveCount(0)
  for (const text of held) await expect(message(a, text)).not.toHaveAttribute('data-status', 'delivered')
  await expect(message(a, reply)).toHaveCount(0)
  await shot(b, '10-key-changed-bob')

  // Bob goes away: alice's messages move to the relay's mailbox, which alice never sends again (the relay has them).
  await b.getByTestId('online-switch').click()
  for (const text of held) await expect(message(a, text)).toHaveAttribute('data-status', 'stored', { timeout: 15_000 })
  // He comes back with a reload: the mailbox hands them over, still held; the warning is not lost: the app asks
  // intersession (peerKeyStatus), which still holds the key (the event came before the reload), and keeps no list itself.
  await b.reload()
  await expect(b.getByTestId('conversation-title')).toHaveText('alice')
  await expect(banner).toBeVisible()
  expect(await b.evaluate(() => Object.keys(localStorage).filter((key) => key.includes('key-changed')))).toEqual([])
  expect(await safetyNumber(b, 'new-safety-number')).toBe(newNumber)
  await expectOnline(b)
  await b.waitForTimeout(2000)
  for (const text of held) await expect(message(b, text)).toHaveCount(0)

  // Accepting opens what is held at once: no resend and no new login needed (a sender backs off to 30 s between resends).
  await b.getByTestId('accept-key').click()
  await expect(banner).toBeHidden()
  await expect(b.getByTestId('contact-alice').getByTestId('key-warning')).toHaveCount(0)
  for (const text of held) await expect(message(b, text)).toHaveAttribute('data-direction', 'in', { timeout: 10_000 })
  for (const text of held) await expect(message(a, text)).toHaveAttribute('data-status', 'delivered', { timeout: 10_000 })
  await expect(message(a, reply)).toHaveAttribute('data-direction', 'in', { timeout: 10_000 })
  await expect(message(b, reply)).toHaveAttribute('data-status', 'delivered', { timeout: 10_000 })
  await b.getByTestId('e2e-badge').click()
  expect(await safetyNumber(b)).toBe(newNumber)
  await shot(b, '11-key-accepted-bob')

  // Each once, in order, and still so after a reload.
  const fromAlice = (lines: string[]): string[] => lines.filter((line) => line.includes('after the wipe'))
  expect(fromAlice(await transcript(b))).toEqual(held.map((text) => `in received ${text}`))
  await b.reload()
  await expect(b.getByTestId('message').last()).toBeVisible()
  await expect(banner).toBeHidden()
  await b.waitForTimeout(1000)
  expect(fromAlice(await transcript(b))).toEqual(held.map((text) => `in received ${text}`))
})
