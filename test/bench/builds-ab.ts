/**
 * Before/after of the awaited-send path across builds, in one Chromium
 * profile on disk, the builds alternated round by round so that a loaded
 * machine weighs on each alike (bench:peers' 200 awaited sends swing with the
 * machine's load from run to run). Each argument is a checkout whose
 * `dist/` and `test/browser/.dist` are built (e.g. main in a git worktree
 * beside this one); each is served by its own `vite preview`. Per round and
 * build, in its bench page (test/browser/app/bench.ts):
 * - `awaitedPair`: AWAITED sends, each awaited, between two engines in the
 *   page (IndexedDB, BroadcastChannel), the receiver acking each;
 * - `storeCommits`: COMMITS of the store's commits of one send, each
 *   awaited, with the ack of the send before riding along and without (the
 *   latter is the floor of a durable send in that build).
 *
 *   npx tsx test/bench/builds-ab.ts [--rounds 6] [--awaited 200] [--commits 200] [--out file.json] <checkout>...
 *
 * Prints one line per round and build and the medians; writes them to
 * `--out` if given. Exits non-zero only when it could not run.
 */
import { writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { chromium } from '@playwright/test'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { intArg, machine, makeProfile, removeProfile, runBench, startPreview, type Preview } from './browser-harness.js'

const ROUNDS = intArg('--rounds', 6)
const AWAITED = intArg('--awaited', 200)
const COMMITS = intArg('--commits', 200)
const BYTES = 64
const out = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : undefined
const flags = new Set(['--rounds', '--awaited', '--commits', '--out'])
const builds = process.argv.slice(2).filter((arg, i, all) => !flags.has(arg) && !flags.has(all[i - 1] ?? ''))


const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const round3 = (x: number): number => Math.round(x * 1000) / 1000

interface Row {
  readonly round: number
  readonly build: string
  readonly awaitedPerSec: number
  readonly commitWithAckMs: number
  readonly commitMs: number
}

runBench('builds-ab', async () => {
  if (builds.length === 0) throw new Error('name at least one checkout')
  const previews: Preview[] = []
  const profile = makeProfile('intersession-builds-ab-')
  try {
    for (const dir of builds) previews.push(await startPreview('bench.html', 'bench:idb', dir))
    const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath, args: chromiumArgs })
    try {
      const pages = []
      for (const { url } of previews) {
        const page = await context.newPage()
        page.on('pageerror', (error) => console.error('[page]', error.message))
        await page.goto(`${url}/bench.html`)
        await page.waitForFunction(() => document.title === 'ready')
        pages.push(page)
      }
      const rows: Row[] = []
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < builds.length; k++) {
          const i = (k + round) % builds.length
          const page = pages[i]!
          const ms = await page.evaluate(([n, bytes]) => window.bench.awaitedPair(n, bytes), [AWAITED, BYTES] as const)
          // The first commits open the database and warm up; the mean of the rest.
          const withAck = (await page.evaluate(([n, bytes]) => window.bench.storeCommits(n, bytes, true), [COMMITS, BYTES] as const)).slice(10)
          const alone = (await page.evaluate(([n, bytes]) => window.bench.storeCommits(n, bytes, false), [COMMITS, BYTES] as const)).slice(10)
          const row: Row = {
            round,
            build: basename(builds[i]!),
            awaitedPerSec: Math.round((AWAITED * 1000) / ms),
            commitWithAckMs: round3(mean(withAck)),
            commitMs: round3(mean(alone)),
          }
          rows.push(row)
          console.log(JSON.stringify(row))
        }
      }
      const medians = builds.map((dir) => {
        const own = rows.filter((row) => row.build === basename(dir))
        return {
          build: basename(dir),
          awaitedPerSec: median(own.map((row) => row.awaitedPerSec)),
          commitWithAckMs: round3(median(own.map((row) => row.commitWithAckMs))),
          commitMs: round3(median(own.map((row) => row.commitMs))),
        }
      })
      for (const m of medians) console.log('median', JSON.stringify(m))
      const result = { benchmark: 'builds-ab', date: new Date().toISOString(), machine: machine('Chromium'), rounds: ROUNDS, awaited: AWAITED, commits: COMMITS, bytes: BYTES, builds, medians, rows }
      if (out !== undefined) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
    } finally {
      await context.close()
    }
  } finally {
    for (const p of previews) p.stop()
    removeProfile(profile)
  }
})
