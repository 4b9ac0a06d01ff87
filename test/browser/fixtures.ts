import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { fileURLToPath } from 'node:url'
import { expect, type KitRelayOptions, type Peer, type PeerOptions } from '../../src/playwright/index.js'

/**
 * A browser profile on disk: IndexedDB is persisted as in real use (a
 * context made by Playwright's `browser.newContext` is incognito and keeps
 * IndexedDB in memory).
 * Each call is a Chromium of its own on a fresh temporary profile;
 * `dispose()` closes it and removes the profile.
 */
export async function persistentContext(): Promise<{ context: BrowserContext; dispose(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-profile-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(dir, { executablePath: chromiumPath, args: chromiumArgs, headless: true })
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    context,
    async dispose() {
      await context.close()
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    },
  }
}

/** `test.use({ relayOptions: REPO_RELAY })`: the Playwright kit's relay fixture runs this repository's relay from source. */
export const REPO_RELAY: KitRelayOptions = {
  command: [process.execPath, '--import', 'tsx', 'src/relay/cli.ts'],
  cwd: fileURLToPath(new URL('../..', import.meta.url)),
}

/** `peer(name, HARNESS)`: a Playwright kit peer on the harness page, which connects only when a test tells it to. */
export const HARNESS: PeerOptions = { url: '/index.html', waitForConnect: false }

/** The kit peer's page (the harness, or another that sets its title to `ready`) in its first tab (`first`) or in a new tab of it, once it is ready. */
export async function harnessTab(peer: Peer, first = false): Promise<Page> {
  const page = first ? peer.page : await peer.newTab()
  await page.waitForFunction(() => document.title === 'ready')
  return page
}

/**
 * Refuses `chunk` (a worker chunk loaded on demand) to `peer`'s browser and
 * connects its harness through `relay`: `connect()` resolves, the page hears
 * `code` with the failed dynamic import as cause, and the tab stays a follower.
 */
export async function expectLeadRefused(peer: Peer, relay: string, chunk: RegExp, code: string): Promise<void> {
  await peer.context.route(chunk, (route) => route.abort())
  const page = await harnessTab(peer, true)
  await page.evaluate(({ id, relay }) => window.harness.connect(id, { relay }), { id: peer.name, relay })
  await expect.poll(() => page.evaluate(() => window.harness.errors().map((e) => e.code)), { timeout: 15_000 }).toContain(code)
  const failure = (await page.evaluate(() => window.harness.errors())).find((e) => e.code === code)
  expect(failure?.cause).toMatch(/dynamically imported module/)
  expect(await page.evaluate(() => window.harness.role())).toBe('follower')
}
