import { test as base, chromium, expect, type BrowserContext, type Page } from '@playwright/test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { fileURLToPath } from 'node:url'
import type { KitRelayOptions, Peer, PeerOptions } from '../../src/playwright/index.js'

/** Options of {@link persistentContext}. */
export interface ProfileOptions {
  /** Resolves `page.goto('/...')`, as the config's `baseURL` does for Playwright's own contexts. */
  readonly baseURL?: string | undefined
}

/**
 * A browser profile on disk: IndexedDB is persisted as in real use (a
 * context made by Playwright's `browser.newContext` is incognito and keeps
 * IndexedDB in memory).
 * Each call is a Chromium of its own on a fresh temporary profile;
 * `dispose()` closes it and removes the profile.
 */
export async function persistentContext(options: ProfileOptions = {}): Promise<{ context: BrowserContext; dispose(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-profile-'))
  let context: BrowserContext
  try {
    context = await launchProfile(dir, options)
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

/** Launches Chromium on the profile in `dir` (kept: the caller removes it), e.g. to reopen a profile a closed browser left. */
export function launchProfile(dir: string, options: ProfileOptions = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, {
    executablePath: chromiumPath,
    args: chromiumArgs,
    headless: true,
    ...(options.baseURL !== undefined && { baseURL: options.baseURL }),
  })
}

/** Opens the harness page in a new tab of `context`. */
export async function harnessPage(context: BrowserContext, baseURL: string | undefined): Promise<Page> {
  const page = await context.newPage()
  await page.goto(`${baseURL ?? ''}/index.html`)
  await page.waitForFunction(() => document.title === 'ready')
  return page
}

/** `test.use({ relayOptions: REPO_RELAY })`: the Playwright kit's relay fixture runs this repository's relay from source. */
export const REPO_RELAY: KitRelayOptions = {
  command: [process.execPath, '--import', 'tsx', 'src/relay/cli.ts'],
  cwd: fileURLToPath(new URL('../..', import.meta.url)),
}

/** `peer(name, HARNESS)`: a Playwright kit peer on the harness page, which connects only when a test tells it to. */
export const HARNESS: PeerOptions = { url: '/index.html', waitForConnect: false }

/** The harness page in a kit peer's first tab (`first`) or in a new tab of it, once it is ready. */
export async function harnessTab(peer: Peer, first = false): Promise<Page> {
  const page = first ? peer.page : await peer.newTab()
  await page.waitForFunction(() => document.title === 'ready')
  return page
}

/** Browser profiles for one test. */
export interface Profiles {
  /** A new peer: a Chromium of its own on a fresh profile on disk, closed and removed after the test. */
  open(): Promise<BrowserContext>
}

/**
 * Playwright Test with every context on disk: `context` and `page` come from
 * a persistent profile (never an incognito `browser.newContext` one),
 * and `profiles.open()` gives each further peer a profile of its own.
 */
export const test = base.extend<{ profiles: Profiles }>({
  profiles: async ({ baseURL }, use) => {
    const disposers: Array<() => Promise<void>> = []
    await use({
      async open() {
        const { context, dispose } = await persistentContext({ baseURL })
        disposers.push(dispose)
        return context
      },
    })
    for (const dispose of disposers.reverse()) await dispose().catch((error: unknown) => console.warn(`profile cleanup: ${String(error)}`))
  },
  context: async ({ profiles }, use) => {
    await use(await profiles.open())
  },
  page: async ({ context }, use) => {
    await use(context.pages()[0] ?? (await context.newPage()))
  },
})

export { expect }
