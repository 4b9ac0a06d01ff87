/**
 * What bench:idb (Chromium) and bench:idb-firefox report alike: persisted
 * `send()` through `connect()` against raw strict IndexedDB puts of the same
 * rows, both measured in one run and one profile. The ceiling writes what the
 * store must (schema 3: the outbox's two indexes, the fence and watermark reads, the stream's put);
 * the two-index figures are bare puts into the same outbox, kept for comparison
 * (see rawPuts in test/browser/app/bench.ts).
 */
import type { Page } from 'puppeteer-core'
import { machine } from './browser-harness.js'

/** Per second, rounded: `count` in `ms` milliseconds. */
export const rate = (count: number, ms: number): number => Math.round((count / ms) * 1000)

/** One run's timings. The raw puts run more than once (fsync times vary) and are pooled. */
export interface SendVsRawRun {
  readonly benchmark: string
  readonly browser: string
  readonly messages: number
  readonly bytes: number
  readonly window: number
  readonly rawBatch: number
  readonly sendMs: number
  readonly rawMs: readonly number[]
  /** Raw puts into the outbox of schema 1 (two indexes), as the bench measured before 2026-12-04. */
  readonly rawTwoIndexesMs: readonly number[]
}

/** The fields both results files start with. */
export interface SendVsRaw {
  readonly benchmark: string
  readonly date: string
  readonly machine: string
  readonly messages: number
  readonly bytes: number
  readonly sendWindow: number
  readonly rawBatch: number
  readonly durability: 'strict'
  readonly sendMsgsPerSec: number
  readonly rawIdbPutsPerSec: number
  readonly ratio: number
  readonly rawIdbPutsPerSecRuns: number[]
  readonly rawTwoIndexesPutsPerSec: number
  readonly ratioTwoIndexes: number
  readonly rawTwoIndexesPutsPerSecRuns: number[]
}

/** The rate of `runs` of `count` each, pooled. */
const pooled = (count: number, runs: readonly number[]): number => rate(count * runs.length, runs.reduce((a, b) => a + b, 0))

export function sendVsRaw(run: SendVsRawRun): SendVsRaw {
  const sendMsgsPerSec = rate(run.messages, run.sendMs)
  const rawIdbPutsPerSec = pooled(run.messages, run.rawMs)
  const rawTwoIndexesPutsPerSec = pooled(run.messages, run.rawTwoIndexesMs)
  return {
    benchmark: run.benchmark,
    date: new Date().toISOString(),
    machine: machine(run.browser),
    messages: run.messages,
    bytes: run.bytes,
    sendWindow: run.window,
    rawBatch: run.rawBatch,
    durability: 'strict',
    sendMsgsPerSec,
    rawIdbPutsPerSec,
    ratio: Number((sendMsgsPerSec / rawIdbPutsPerSec).toFixed(4)),
    rawIdbPutsPerSecRuns: run.rawMs.map((ms) => rate(run.messages, ms)),
    rawTwoIndexesPutsPerSec,
    ratioTwoIndexes: Number((sendMsgsPerSec / rawTwoIndexesPutsPerSec).toFixed(4)),
    rawTwoIndexesPutsPerSecRuns: run.rawTwoIndexesMs.map((ms) => rate(run.messages, ms)),
  }
}

/** The timings of one run of the bench page (test/browser/app/bench.ts) in a puppeteer `page`. */
export type PageTimings = Pick<SendVsRawRun, 'sendMs' | 'rawMs' | 'rawTwoIndexesMs'>

/**
 * One run in the bench page open in `page` (puppeteer: Firefox over WebDriver
 * BiDi, or Chromium): raw puts of both schemas, `messages` persisted sends
 * through `connect()` in awaited windows, the raw puts again.
 */
export async function timeSendVsRaw(page: Page, messages: number, bytes: number, sendWindow: number, rawBatch: number): Promise<PageTimings> {
  await page.evaluate((b, batch) => window.bench.rawPuts(2000, batch, b, 'strict'), bytes, rawBatch)
  const raw = (schema: 'store' | 'two-indexes'): Promise<number> =>
    page.evaluate((n, b, batch, s) => window.bench.rawPuts(n, batch, b, 'strict', s), messages, bytes, rawBatch, schema)
  const rawMs = [await raw('store')]
  const rawTwoIndexesMs = [await raw('two-indexes')]
  const nonce = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  const role = await page.evaluate((id, network) => window.bench.connect(id, network), `bench-${nonce}`, `bench-${nonce}`)
  if (role !== 'leader') throw new Error(`the bench tab did not become leader (role ${role})`)
  const sendMs = await page.evaluate((n, b, win) => window.bench.send('offline-peer', n, b, win), messages, bytes, sendWindow)
  const pending = await page.evaluate(() => window.bench.pending())
  if (pending.outbound !== messages) throw new Error(`expected ${messages} pending, the store counts ${pending.outbound}`)
  await page.evaluate(() => window.bench.close())
  rawTwoIndexesMs.push(await raw('two-indexes'))
  rawMs.push(await raw('store'))
  return { sendMs, rawMs, rawTwoIndexesMs }
}
