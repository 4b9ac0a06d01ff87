/**
 * The one driver the cross-engine suite runs its test bodies through:
 * puppeteer-core, over CDP for Chromium and WebDriver BiDi for Firefox ESR.
 * A browser here is always a real process on a profile directory on disk
 * (IndexedDB persisted), so a test can close one and reopen the same profile.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { chromiumArgs } from '../../playwright.config.js'

/** The engines the suite runs in. */
export type Engine = 'chromium' | 'firefox'

/** Every engine, in the order the suite runs them. */
export const ENGINES: readonly Engine[] = ['chromium', 'firefox']

/** The executable of `engine`: `CHROMIUM_PATH` / `FIREFOX_PATH` (set by scripts/preflight.mjs), else the Debian paths. */
export function executableOf(engine: Engine): string {
  return engine === 'chromium' ? (process.env.CHROMIUM_PATH ?? '/usr/bin/chromium') : (process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr')
}

/**
 * Firefox preferences for loopback tests: host ICE candidates are not hidden
 * behind mDNS names (two peers on one machine could not resolve them), and
 * nothing phones home.
 */
const FIREFOX_PREFS: Record<string, unknown> = {
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.loopback': true,
  'media.navigator.permission.disabled': true,
  'browser.shell.checkDefaultBrowser': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'app.update.enabled': false,
}

/** Launches `engine` headless on the profile in `dir` (kept: the caller removes it); `prefs` are more Firefox preferences. */
export function launch(engine: Engine, dir: string, prefs: Record<string, unknown> = {}): Promise<Browser> {
  return engine === 'chromium'
    ? puppeteer.launch({ browser: 'chrome', executablePath: executableOf(engine), headless: true, userDataDir: dir, args: chromiumArgs })
    : puppeteer.launch({
        browser: 'firefox',
        executablePath: executableOf(engine),
        headless: true,
        userDataDir: dir,
        extraPrefsFirefox: { ...FIREFOX_PREFS, ...prefs },
      })
}

/** A browser on a profile of its own; `relaunch()` closes it and starts the same engine on the same profile. */
export interface Profile {
  readonly engine: Engine
  readonly dir: string
  browser: Browser
  relaunch(): Promise<Browser>
  dispose(): Promise<void>
}

/** A fresh temporary profile directory with `engine` running on it; `prefs` are more Firefox preferences. */
export async function openProfile(engine: Engine, prefs: Record<string, unknown> = {}): Promise<Profile> {
  const dir = mkdtempSync(join(tmpdir(), `intersession-${engine}-profile-`))
  let browser: Browser
  try {
    browser = await launch(engine, dir, prefs)
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  const profile: Profile = {
    engine,
    dir,
    browser,
    async relaunch() {
      await profile.browser.close()
      profile.browser = await launch(engine, dir, prefs)
      return profile.browser
    },
    async dispose() {
      await profile.browser.close().catch(() => {})
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    },
  }
  return profile
}

/** Opens `url` in a new tab of `browser` and waits until the harness page says it is ready. */
export async function openPage(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(url)
  await page.waitForFunction(() => document.title === 'ready', { timeout: 20_000 })
  return page
}
