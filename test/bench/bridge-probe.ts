/**
 * Where a window of 1,000 awaited sends spends its time on the page<->worker
 * path (issue 19): in one browser profile, per window, persisted `send()`
 * through `connect()` and the engine in the page, each on IndexedDB and on a
 * memory store (the latter leaves the bridge and the engine's CPU alone), and
 * raw strict puts of the store's schema. One build, or several alternated
 * round by round (each a checkout with `test/browser/.dist` built).
 *
 *   npx tsx test/bench/bridge-probe.ts [--engine firefox|chromium] [--rounds 3] [--messages 10000] [checkout...]
 *
 * Prints one JSON line per round, build and measurement (milliseconds per
 * window of 1,000 sends: median calling send(), median awaiting, total).
 */
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launch, type Engine } from '../engines/driver.js'
import { intArg, makeProfile, removeProfile, runBench, startPreview, type Preview } from './browser-harness.js'

const ENGINE = (process.argv.includes('--engine') ? process.argv[process.argv.indexOf('--engine') + 1] : 'firefox') as Engine
const ROUNDS = intArg('--rounds', 3)
const N = intArg('--messages', 10_000)
const BYTES = 64
const WINDOW = 1000
const flags = new Set(['--engine', '--rounds', '--messages'])
const given = process.argv.slice(2).filter((arg, i, all) => !arg.startsWith('--') && !flags.has(all[i - 1] ?? ''))
const builds = given.length > 0 ? given : [fileURLToPath(new URL('../../', import.meta.url))]

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const r1 = (x: number): number => Math.round(x * 10) / 10

runBench('bridge-probe', async () => {
  const previews: Preview[] = []
  const profile = makeProfile('intersession-bridge-probe-')
  const browser = await launch(ENGINE, profile)
  try {
    for (const dir of builds) previews.push(await startPreview('bench.html', 'bench:idb', dir))
    const pages = []
    for (const { url } of previews) {
      const page = await browser.newPage()
      page.on('pageerror', (error) => console.error('[page]', error))
      await page.goto(`${url}/bench.html`)
      await page.waitForFunction(() => document.title === 'ready', { timeout: 30_000 })
      await page.evaluate((b) => window.bench.rawPuts(2000, 1000, b, 'strict'), BYTES)
      pages.push(page)
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < builds.length; k++) {
        const i = (k + round) % builds.length
        const page = pages[i]!
        const build = basename(builds[i]!)
        const perWindow = (ms: number): number => r1((ms * WINDOW) / N)
        const rawMs = await page.evaluate((n, b) => window.bench.rawPuts(n, 1000, b, 'strict'), N, BYTES)
        const row = (what: string, ms: number, windows?: number[]): void => {
          const calls = windows?.filter((_, j) => j % 2 === 0) ?? []
          const waits = windows?.filter((_, j) => j % 2 === 1) ?? []
          console.log(
            JSON.stringify({ round, build, what, perWindowMs: perWindow(ms), ...(windows && { callMs: r1(median(calls)), awaitMs: r1(median(waits)) }), vsRaw: Number((rawMs / ms).toFixed(3)) }),
          )
        }
        row('raw', rawMs)
        for (const memory of [true, false]) {
          const nonce = `${Date.now().toString(36)}-${round}-${k}-${memory ? 'm' : 'i'}`
          const inPage = await page.evaluate((id, n, b, m) => window.bench.engineInPage(id, n, b, 1000, true, m), `page-${nonce}`, N, BYTES, memory)
          row(`engineInPage${memory ? ' memory' : ''}`, inPage)
          const role = await page.evaluate((id, m) => window.bench.connect(id, id, m), `w-${nonce}`, memory)
          if (role !== 'leader') throw new Error(`not leader: ${role}`)
          const { ms, windows } = await page.evaluate((n, b) => window.bench.sendWindows('offline-peer', n, b, 1000), N, BYTES)
          await page.evaluate(() => window.bench.close())
          row(`connect${memory ? ' memory' : ''}`, ms, windows)
        }
      }
    }
  } finally {
    await browser.close()
    for (const p of previews) p.stop()
    removeProfile(profile)
  }
})
