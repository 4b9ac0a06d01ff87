import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'

/**
 * A browser profile on disk: IndexedDB is persisted as in real use (a
 * Playwright `newContext()` is incognito and keeps IndexedDB in memory).
 */
export async function persistentContext(): Promise<{ context: BrowserContext; dispose(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-profile-'))
  const context = await chromium.launchPersistentContext(dir, { executablePath: chromiumPath, args: chromiumArgs, headless: true })
  return {
    context,
    async dispose() {
      await context.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Opens the harness page in a new tab of `context`. */
export async function harnessPage(context: BrowserContext, baseURL: string | undefined): Promise<Page> {
  const page = await context.newPage()
  await page.goto(`${baseURL ?? ''}/index.html`)
  await page.waitForFunction(() => document.title === 'ready')
  return page
}
