/**
 * The plumbing shared by the browser benchmarks (bench:idb, bench:net):
 * command-line options, serving the built test pages with `vite preview`,
 * Chromium on persistent on-disk profiles, the machine description and the
 * results file.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { freePort } from '../helpers/free-port.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

export { intArg } from './args.js'

/** A running `vite preview`: where it serves, and how to stop it. */
export interface Preview {
  readonly url: string
  stop(): void
}

/**
 * `vite preview` of the built test pages on a free loopback port, in its own
 * process group; resolves once it serves `page` (e.g. `bench.html`). `script`
 * names the npm script that builds the pages, for the error when they are missing.
 * `checkout` is the repository whose pages to serve (another worktree, for before/after runs).
 */
export async function startPreview(page: string, script: string, checkout: string = root): Promise<Preview> {
  if (!existsSync(join(checkout, `test/browser/.dist/${page}`))) {
    throw new Error(`${checkout}/test/browser/.dist/${page} is missing: run \`npx vite build --config test/browser/vite.config.ts\` (npm run ${script} does)`)
  }
  const port = await freePort()
  const child: ChildProcess = spawn(join(checkout, 'node_modules/.bin/vite'), ['preview', '--config', 'test/browser/vite.config.ts', '--port', String(port)], {
    cwd: checkout,
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  })
  const stop = (): void => {
    try {
      process.kill(-child.pid!, 'SIGTERM')
    } catch {
      // Already gone.
    }
  }
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      if ((await fetch(`${url}/${page}`)).ok) return { url, stop }
    } catch {
      // Not listening yet.
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      stop()
      throw new Error(`vite preview did not serve ${url}/${page} within 30 s`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** A fresh, empty browser profile directory under the system's temporary directory, named `prefix` + a random suffix. */
export function makeProfile(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Deletes a profile directory made by {@link makeProfile} (retrying while the browser lets go of its files). */
export function removeProfile(profile: string): void {
  rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 })
}

/** Chromium (the sandbox's binary and flags) on the persistent profile in `profile`, IndexedDB on disk. */
export function launchProfile(profile: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, { executablePath: chromiumPath, args: chromiumArgs })
}

/** How {@link openReadyPage} reports what goes wrong in the page. */
export interface PageLogOptions {
  /** Prefix of the page's errors on stderr, e.g. `[page]`. */
  readonly tag: string
  /** Also print the page's console errors (but for failed resource loads), prefixed `${tag} console`. */
  readonly consoleErrors?: boolean
}

/**
 * The context's first page (or a new one), its uncaught errors printed to
 * stderr, navigated to `url` and waited on until its title is `ready`.
 */
export async function openReadyPage(context: BrowserContext, url: string, { tag, consoleErrors = false }: PageLogOptions): Promise<Page> {
  const page = context.pages()[0] ?? (await context.newPage())
  page.on('pageerror', (error) => console.error(`[${tag}]`, error.message))
  if (consoleErrors) {
    page.on('console', (message) => {
      // (The favicon's 404 is no news.)
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) console.error(`[${tag} console]`, message.text())
    })
  }
  await page.goto(url)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 15_000 })
  return page
}

/** The browser's name and version (e.g. `HeadlessChrome/131.0.6778.85`) from the page's user agent. */
export async function browserVersion(page: Page): Promise<string> {
  const userAgent = await page.evaluate(() => navigator.userAgent)
  return /(?:Headless)?Chrome\/[\d.]+/.exec(userAgent)?.[0] ?? 'Chromium'
}

/** CPUs, Node version and `browser`, for the results. */
export function machine(browser: string): string {
  return `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${browser}`
}

/** Writes `result` as pretty JSON to test/bench/results/`name`.json. */
export function writeResult(name: string, result: object): void {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL(`./results/${name}.json`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
}

/** Runs benchmark `name`'s `main` and exits: 0 once it finished, 1 (saying why) when it could not run. */
export function runBench(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`bench:${name} could not run:`, error)
      process.exit(1)
    },
  )
}
