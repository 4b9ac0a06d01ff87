import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { fileURLToPath } from 'node:url'
import type { KitRelayOptions, Peer, PeerOptions } from '../../src/playwright/index.js'

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
