/**
 * bench:idb in Firefox ESR — persisted `send()` through `connect()` (engine in
 * a worker, IndexedDB on disk) against raw IndexedDB puts of the same rows in
 * the same Firefox profile and run, as bench:idb does in Chromium (the same
 * built page, test/browser/app/bench.ts), driven with puppeteer-core over
 * WebDriver BiDi. Writes test/bench/results/idb-firefox.json.
 *
 *   npx tsx test/bench/idb-firefox.ts --messages 20000
 *
 * The raw puts run before and after the sends and are averaged (fsync times
 * vary from run to run); the ceiling writes what the store must (see
 * rawPuts in test/browser/app/bench.ts), and the lighter two-index baseline
 * the bench used before is reported beside it. Exits non-zero only when it could not run.
 */
import puppeteer from 'puppeteer-core'
import { executableOf } from '../engines/driver.js'
import { intArg, makeProfile, removeProfile, runBench, startPreview, writeResult } from './browser-harness.js'
import { figure } from './figures.js'
import { sendVsRaw, timeSendVsRaw } from './send-vs-raw.js'

const N = intArg('--messages', 20_000)
const BYTES = 64
const WINDOW = 1000
const RAW_BATCH = WINDOW

async function main(): Promise<void> {
  const preview = await startPreview('bench.html', 'bench:idb')
  const profile = makeProfile('intersession-bench-idb-firefox-')
  const browser = await puppeteer.launch({ browser: 'firefox', executablePath: executableOf('firefox'), headless: true, userDataDir: profile })
  try {
    const version = `Firefox/${(await browser.version()).replace(/^firefox\//i, '')}`
    const page = await browser.newPage()
    await page.goto(`${preview.url}/bench.html`)
    await page.waitForFunction(() => document.title === 'ready', { timeout: 30_000 })
    const timings = await timeSendVsRaw(page, N, BYTES, WINDOW, RAW_BATCH)

    const measured = sendVsRaw({ benchmark: 'idb-firefox', browser: version, messages: N, bytes: BYTES, window: WINDOW, rawBatch: RAW_BATCH, ...timings })
    const { sendMsgsPerSec: sendRate, rawIdbPutsPerSec: rawRate, rawTwoIndexesPutsPerSec: rawTwoRate } = measured
    const result = {
      ...measured,
      figures: [
        figure(
          `idb (Firefox ESR): persisted send() through the worker, ${N.toLocaleString('en-US')} × ${BYTES} B, strict durability`,
          sendRate,
          'msgs/s',
          `raw IndexedDB puts in the same Firefox, ${RAW_BATCH.toLocaleString('en-US')} per transaction, the store's schema 3 (two indexes, fence and watermark reads, stream put)`,
          rawRate,
        ),
        figure(
          `idb (Firefox ESR): persisted send() through the worker, ${N.toLocaleString('en-US')} × ${BYTES} B, strict durability`,
          sendRate,
          'msgs/s',
          `bare raw puts (the outbox's two indexes alone), ${RAW_BATCH.toLocaleString('en-US')} per transaction`,
          rawTwoRate,
        ),
      ],
    }
    console.log(
      `bench:idb (Firefox)  ${N} messages of ${BYTES} B, ${result.machine}\n` +
        `  send() through connect(): ${sendRate} msgs/s; raw puts ${rawRate}/s (runs ${result.rawIdbPutsPerSecRuns.join(', ')}); ratio ${result.ratio} (goal 0.8)\n` +
        `  bare raw puts (two indexes, nothing else): ${rawTwoRate}/s (runs ${result.rawTwoIndexesPutsPerSecRuns.join(', ')}); ratio ${result.ratioTwoIndexes}`,
    )
    writeResult('idb-firefox', result)
  } finally {
    await browser.close()
    preview.stop()
    removeProfile(profile)
  }
}

runBench('idb-firefox', main)
