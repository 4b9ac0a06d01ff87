/**
 * bench:idb's figure (persisted `send()` through `connect()` against raw
 * strict IndexedDB puts of the store's schema, 20,000 × 64 B in awaited
 * windows of 1,000) for several builds in one browser, the builds
 * alternated round by round so that a loaded machine weighs on each alike.
 * Each argument is a checkout whose `test/browser/.dist` is built (e.g. main
 * in a git worktree beside this one), served by its own `vite preview`;
 * every round opens a fresh page of each build (see timeSendVsRaw).
 *
 *   npx tsx test/bench/idb-ab.ts [--engine firefox|chromium] [--rounds 3] [--messages 20000] [--out file.json] <checkout>...
 *
 * Prints one line per round and build and the medians; writes them to
 * `--out` if given. Firefox is launched as bench:idb-firefox launches it,
 * Chromium through puppeteer with the suite's flags (bench:idb drives it
 * with Playwright). Exits non-zero only when it could not run.
 */
import { writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import puppeteer, { type Browser } from 'puppeteer-core'
import { executableOf, launch, type Engine } from '../engines/driver.js'
import { intArg, machine, makeProfile, removeProfile, runBench, startPreview, type Preview } from './browser-harness.js'
import { median } from './peers-stats.js'
import { sendVsRaw, timeSendVsRaw } from './send-vs-raw.js'

const flags = new Set(['--engine', '--rounds', '--messages', '--out'])
const option = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined)
const ENGINE = option('--engine') ?? 'firefox'
const ROUNDS = intArg('--rounds', 3)
const N = intArg('--messages', 20_000)
const OUT = option('--out')
const BYTES = 64
const WINDOW = 1000
const builds = process.argv.slice(2).filter((arg, i, all) => !flags.has(arg) && !flags.has(all[i - 1] ?? ''))

interface Row {
  readonly round: number
  readonly build: string
  readonly sendMsgsPerSec: number
  readonly rawIdbPutsPerSec: number
  readonly ratio: number
  readonly ratioTwoIndexes: number
}

const start = (profile: string): Promise<Browser> =>
  ENGINE === 'firefox' ? puppeteer.launch({ browser: 'firefox', executablePath: executableOf('firefox'), headless: true, userDataDir: profile }) : launch(ENGINE as Engine, profile)

runBench('idb-ab', async () => {
  if (builds.length === 0) throw new Error('name at least one checkout')
  if (ENGINE !== 'firefox' && ENGINE !== 'chromium') throw new Error('--engine is firefox or chromium')
  const previews: Preview[] = []
  const profile = makeProfile('intersession-idb-ab-')
  const browser = await start(profile)
  try {
    for (const dir of builds) previews.push(await startPreview('bench.html', 'bench:idb', dir))
    const version = await browser.version()
    const rows: Row[] = []
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < builds.length; k++) {
        const i = (k + round) % builds.length
        const page = await browser.newPage()
        page.on('pageerror', (error) => console.error('[page]', error))
        await page.goto(`${previews[i]!.url}/bench.html`)
        await page.waitForFunction(() => document.title === 'ready', { timeout: 30_000 })
        const timings = await timeSendVsRaw(page, N, BYTES, WINDOW, WINDOW)
        await page.close()
        const { sendMsgsPerSec, rawIdbPutsPerSec, ratio, ratioTwoIndexes } = sendVsRaw({
          benchmark: 'idb-ab',
          browser: version,
          messages: N,
          bytes: BYTES,
          window: WINDOW,
          rawBatch: WINDOW,
          ...timings,
        })
        const row = { round, build: basename(builds[i]!), sendMsgsPerSec, rawIdbPutsPerSec, ratio, ratioTwoIndexes }
        rows.push(row)
        console.log(JSON.stringify(row))
      }
    }
    const medians = builds.map((dir) => {
      const own = rows.filter((row) => row.build === basename(dir))
      const of = (key: 'sendMsgsPerSec' | 'rawIdbPutsPerSec' | 'ratio'): number => median(own.map((row) => row[key]))
      return { build: basename(dir), sendMsgsPerSec: of('sendMsgsPerSec'), rawIdbPutsPerSec: of('rawIdbPutsPerSec'), ratio: of('ratio') }
    })
    for (const m of medians) console.log('median', JSON.stringify(m))
    const result = { benchmark: 'idb-ab', date: new Date().toISOString(), machine: machine(version), engine: ENGINE, rounds: ROUNDS, messages: N, bytes: BYTES, window: WINDOW, builds, medians, rows }
    if (OUT !== undefined) writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`)
  } finally {
    await browser.close()
    for (const p of previews) p.stop()
    removeProfile(profile)
  }
})
