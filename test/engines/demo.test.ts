/**
 * The demo chat with one person in Firefox and one in Chromium, each on a
 * profile of its own on disk, the demo server (page server and dev relay) in
 * a child process: they see each other online, chat both ways, and messages
 * written offline queue (Firefox's page saying they leave the next time the
 * app is open, having no Background Sync) and turn delivered once back, in order.
 *
 * Needs `npm run build && npm run build:demo` first (`npm run test:engines` does both).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'puppeteer-core'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { startDemoServer, type DemoServer } from '../helpers/demo-server.js'
import { openProfile, type Profile } from './driver.js'

let server: DemoServer
let mailbox: string
let started: DemoServer | undefined // unset when beforeAll failed, whose error is the one to show
const profiles: Profile[] = []

beforeAll(async () => {
  if (!existsSync(fileURLToPath(new URL('../../demo/dist/index.html', import.meta.url))))
    throw new Error('demo/dist is missing: run `npm run build:demo` first')
  mailbox = mkdtempSync(join(tmpdir(), 'intersession-demo-mailbox-'))
  server = started = await startDemoServer(mailbox)
})
afterAll(async () => {
  for (const profile of profiles) await profile.dispose()
  await started?.stop()
  rmSync(mailbox, { recursive: true, force: true })
})

const id = (name: string): string => `[data-testid="${name}"]`

/** Waits until `read` (run in the page) returns `expected`. */
async function until<T>(page: Page, read: () => T, expected: T, timeout = 20_000): Promise<void> {
  await expect.poll(() => page.evaluate(read), { timeout }).toEqual(expected)
}

/** Opens the demo in a fresh profile of `engine` and picks `name`; resolves once online. */
async function person(engine: 'chromium' | 'firefox', name: string): Promise<Page> {
  const profile = await openProfile(engine)
  profiles.push(profile)
  const page = await profile.browser.newPage()
  await page.goto(server.url)
  await page.waitForSelector(id('name-input'))
  await page.type(id('name-input'), name)
  await page.click(id('name-submit'))
  await until(page, () => document.querySelector('[data-testid="connection"]')?.getAttribute('data-state'), 'online')
  return page
}

async function say(page: Page, text: string): Promise<void> {
  await page.type(id('composer-input'), text)
  await page.keyboard.press('Enter')
}

/** Each message of the open conversation as `direction status text`. */
const transcript = (): string[] =>
  Array.from(document.querySelectorAll<HTMLElement>('[data-testid="message"]')).map(
    (li) => `${li.dataset.direction} ${li.dataset.status} ${li.querySelector('.text')?.textContent}`,
  )

test('one person in Firefox, one in Chromium: online to each other, chat both ways, offline messages queue and arrive in order', async () => {
  const fox = await person('firefox', 'fiona')
  const chrome = await person('chromium', 'carl')
  await until(fox, () => document.querySelector('[data-testid="contact-carl"]')?.getAttribute('data-online'), 'true')
  await until(chrome, () => document.querySelector('[data-testid="contact-fiona"]')?.getAttribute('data-online'), 'true')

  await fox.click(id('contact-carl'))
  await say(fox, 'hello from Firefox')
  await until(fox, transcript, ['out delivered hello from Firefox'])
  await chrome.click(id('contact-fiona'))
  await until(chrome, transcript, ['in received hello from Firefox'])
  await say(chrome, 'hello from Chromium')
  await until(fox, transcript, ['out delivered hello from Firefox', 'in received hello from Chromium'])

  // Firefox goes offline with the switch; what it writes queues, then is delivered in order once back.
  await fox.click(id('online-switch'))
  await until(fox, () => document.querySelector('[data-testid="connection"]')?.getAttribute('data-state'), 'offline')
  await say(fox, 'one, written offline')
  await say(fox, 'two, written offline')
  await until(fox, () => document.querySelector('[data-testid="pending"]')?.textContent, '2 pending')
  // No Background Sync in Firefox: the page says they leave the next time the app is open and online.
  await until(fox, () => document.querySelector<HTMLElement>('[data-testid="pending"]')?.dataset.sends, 'next-open')
  await fox.click(id('online-switch'))
  await until(fox, () => document.querySelector('[data-testid="pending"]')?.textContent, '0 pending', 30_000)
  await until(
    chrome,
    transcript,
    ['in received hello from Firefox', 'out delivered hello from Chromium', 'in received one, written offline', 'in received two, written offline'],
    30_000,
  )
  await until(fox, transcript, [
    'out delivered hello from Firefox',
    'in received hello from Chromium',
    'out delivered one, written offline',
    'out delivered two, written offline',
  ])
})
