/**
 * What the cross-engine tests share: the built harness app (test/browser/app,
 * built into test/engines/.dist by `npm run test:engines`) served on a free
 * loopback port, and polling `window.harness` in a page.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Page } from 'puppeteer-core'
import { expect } from 'vitest'
import { serveStatic, type StaticServer } from '../helpers/static-server.js'

const DIST = fileURLToPath(new URL('./.dist', import.meta.url))

/** Serves the built harness app; throws at once, naming the build command, when it was not built. */
export function serveHarness(): Promise<StaticServer> {
  if (!existsSync(`${DIST}/index.html`)) throw new Error(`${DIST}/index.html is missing: run \`npm run test:engines\` (it builds the harness app first)`)
  return serveStatic(DIST)
}

/** Polls `read` in `page` until it equals `expected`. */
export async function pollPage<T>(page: Page, read: () => T | Promise<T>, expected: Awaited<T>, timeout = 20_000): Promise<void> {
  await expect.poll(() => page.evaluate(read), { timeout, interval: 100 }).toEqual(expected)
}

/** `prefix0` … `prefix{n-1}`. */
export const texts = (prefix: string, n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`)
