/**
 * The whole browser is SIGKILLed mid-stream, at both ends, and relaunched on
 * the same profiles (docs/GUARANTEES.md, 1 and 2).
 *
 * alice and bob each run in a Chromium of their own (launched here, so that
 * the test has its process group to kill; Playwright attaches over CDP), on a
 * profile on disk that outlives the crashes, and send to each other
 * continuously through a real relay process with its mailbox. Node records
 * what every send resolved with (id, seq) as it happens; each receiver's
 * handler writes every handover (id, seq, epoch, life) to IndexedDB, strict,
 * before it returns, so the records survive the kill. Two lives end in a
 * SIGKILL of both process groups at once; the third sends a last few and
 * drains. ./crash-check.ts then judges the ledger: every resolved send handed
 * over exactly once, in order, with replays only of messages whose processed
 * mark the crash lost, at most `processBatch` per crash per stream.
 */
import { chromium, expect, test, type Browser, type Page } from '@playwright/test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { DEFAULT_LIMITS } from '../../src/core/options.js'
import { launchChromium, type ChromiumProcess } from '../../src/playwright/chromium-process.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { SendReport } from './app/crash.js'
import { checkCrashLedger, type CrashLedger, type Handover, type RejectedSend, type ResolvedSend } from './crash-check.js'

const PEERS = { alice: 'bob', bob: 'alice' } as const
type PeerId = keyof typeof PEERS
/** The documented bound of a crash's replay, per stream. */
const PROCESS_BATCH = DEFAULT_LIMITS.processBatch
/** Sends in flight per sender. */
const CONCURRENCY = 8
/**
 * Sends per sender in a life that ends in a crash, and their pace. Without a
 * bound the senders queued as fast as their stores took rows until the crash,
 * so the backlog the last life drains grew with the machine's load (under two
 * CPU hogs, past what 90 s drained). At this pace a life's sends outlast the
 * wait for HANDED_BEFORE_CRASH, loaded or not, so each crash still cuts them.
 */
const SENDS_PER_LIFE = 1_500
const SENDS_PER_SECOND = 300
/** Lives 1 and 2 end in a crash; the last one drains. */
const LIVES = 3
/** Handovers each receiver has recorded in a life before both browsers are killed. */
const HANDED_BEFORE_CRASH = 120
/** Sends of the last life, per sender. */
const FINAL_SENDS = 50
/** Contents numbers of life L are L * SPAN + i: unique per send attempt of a sender. */
const SPAN = 1_000_000

/** One peer's browser in one life. */
class PeerBrowser {
  private constructor(
    readonly id: PeerId,
    readonly life: number,
    readonly chromium: ChromiumProcess,
    readonly browser: Browser,
    readonly page: Page,
  ) {}

  /** Starts Chromium on `profile`, attaches, and opens the harness page; `report` hears each send's reports. */
  static async launch(id: PeerId, life: number, profile: string, baseURL: string, report: (report: SendReport) => void): Promise<PeerBrowser> {
    const process = await launchChromium(chromiumPath, chromiumArgs, { userDataDir: profile })
    try {
      const browser = await chromium.connectOverCDP(process.wsEndpoint)
      const context = browser.contexts()[0]!
      await context.exposeBinding('sendLedgerReport', (_source, payload: string) => (JSON.parse(payload) as SendReport[]).forEach(report))
      const page = context.pages()[0] ?? (await context.newPage())
      await page.goto(`${baseURL}/index.html`)
      await page.waitForFunction(() => document.title === 'ready')
      return new PeerBrowser(id, life, process, browser, page)
    } catch (error) {
      await process.kill()
      throw error
    }
  }

  /** A crash: SIGKILL to the browser's whole process group, sent before this returns its promise. */
  crash(): Promise<void> {
    return this.chromium.crash()
  }

  /** A clean end: closes the browser (the profile stays). */
  async close(): Promise<void> {
    await this.browser.close().catch(() => {})
    await this.chromium.kill()
  }
}

test('both browsers SIGKILLed mid-stream, twice, and relaunched on their profiles: every resolved send handed over once, in order; replays within processBatch', async ({
  baseURL,
}) => {
  test.setTimeout(240_000)
  const dirs = [mkdtempSync(join(tmpdir(), 'intersession-mailbox-'))]
  const profile = Object.fromEntries(Object.keys(PEERS).map((id) => [id, mkdtempSync(join(tmpdir(), `intersession-crash-${id}-`))])) as Record<PeerId, string>
  dirs.push(...Object.values(profile))
  let relay: RelayProcess | undefined
  let browsers: PeerBrowser[] = []
  const ranges: Array<CrashLedger['ranges'][number]> = []
  const started: Array<CrashLedger['started'][number]> = []
  const resolved: ResolvedSend[] = []
  const rejected: RejectedSend[] = []
  const crashed: number[] = []
  const unmarked: Record<string, Record<number, string[]>> = { alice: {}, bob: {} }
  const notes: string[] = []
  try {
    relay = await startRelayProcess(['--dev', '--mailbox-dir', dirs[0]!])
    for (let life = 1; life <= LIVES; life++) {
      const launchedAt = Date.now()
      browsers = await Promise.all(
        (Object.keys(PEERS) as PeerId[]).map((id) =>
          PeerBrowser.launch(id, life, profile[id], baseURL!, (r) => {
            const to = PEERS[id]
            if (r.kind === 'start') started.push({ from: id, to, n: r.n })
            else if (r.kind === 'resolved') resolved.push({ from: id, to, n: r.n, id: r.id, seq: r.seq, life })
            else rejected.push({ from: id, to, n: r.n, code: r.code })
          }),
        ),
      )
      for (const b of browsers) {
        // Before the engine starts: what the last crash left stored but not marked processed.
        unmarked[b.id]![life] = (await b.page.evaluate((id) => window.harness.crash.unprocessed(id), b.id)).map((e) => e.id)
      }
      for (const b of browsers) {
        await b.page.evaluate(({ id, url, life, batch }) => window.harness.crash.connect(id, url, life, batch), {
          id: b.id,
          url: relay.url,
          life,
          batch: PROCESS_BATCH,
        })
      }
      for (const b of browsers) await expect.poll(() => b.page.evaluate(() => window.harness.crash.connection()?.status), { timeout: 20_000 }).toBe('online')
      const last = life === LIVES
      for (const b of browsers) {
        const range = { from: b.id, to: PEERS[b.id], first: life * SPAN, end: life * SPAN + (last ? FINAL_SENDS : SENDS_PER_LIFE) }
        ranges.push(range)
        await b.page.evaluate(({ to, first, end, lanes, rate }) => window.harness.crash.start(to, first, end, lanes, rate), {
          to: range.to,
          first: range.first,
          end: range.end,
          lanes: CONCURRENCY,
          rate: SENDS_PER_SECOND,
        })
      }
      if (last) break
      const handed = async (): Promise<number> => Math.min(...(await Promise.all(browsers.map((b) => b.page.evaluate(() => window.harness.crash.handed())))))
      await expect
        .poll(handed, { timeout: 60_000 })
        .toBeGreaterThanOrEqual(HANDED_BEFORE_CRASH)
        .catch(async (error: unknown) => {
          const errors = await Promise.all(browsers.map(async (b) => `${b.id}: ${JSON.stringify(await b.page.evaluate(() => window.harness.crash.errors()))}`))
          throw new Error(`life ${life}: fewer than ${HANDED_BEFORE_CRASH} handed over; engine errors ${errors.join('; ')}`, { cause: error })
        })
      // Both process groups get their SIGKILL back to back, while both streams flow.
      await Promise.all(browsers.map((b) => b.crash()))
      crashed.push(life)
      notes.push(
        `life ${life}: ${((Date.now() - launchedAt) / 1000).toFixed(1)} s, ${resolved.filter((r) => r.life === life).length} sends resolved, then both browsers SIGKILLed`,
      )
    }

    for (const b of browsers) await b.page.evaluate(() => window.harness.crash.finished())
    for (const b of browsers) {
      let handedSince = 0
      await expect
        .poll(
          async () => {
            handedSince = await b.page.evaluate(() => window.harness.crash.handed())
            return b.page.evaluate(() => window.harness.crash.pending())
          },
          { timeout: 90_000 },
        )
        .toEqual({ outbound: 0, inbound: 0 })
        .catch((error: unknown) => {
          throw new Error(`${b.id}: not drained; ${handedSince} handed over in the last life; ${notes.join('; ')}`, { cause: error })
        })
    }
    const handovers: Record<string, Handover[]> = {}
    const epochs: Record<string, string> = {}
    for (const b of browsers) {
      handovers[b.id] = await b.page.evaluate(() => window.harness.crash.ledger())
      epochs[b.id] = (await b.page.evaluate((id) => window.harness.crash.epoch(id), b.id)) ?? 'none'
    }

    const verdict = checkCrashLedger({ processBatch: PROCESS_BATCH, epochs, ranges, started, resolved, rejected, handovers, crashed, unmarked })
    notes.push(
      `${started.length} sends started, ${resolved.length} resolved, ${rejected.length} rejected, ${verdict.unknown} of unknown outcome (${verdict.unknownDelivered} of them delivered); ` +
        `${verdict.handovers} handovers of ${verdict.delivered} messages, ${verdict.replays} documented replays (bound ${PROCESS_BATCH} per crash per stream); ` +
        `resolved before a crash and delivered after it: ${JSON.stringify(verdict.carried)}`,
    )
    test.info().annotations.push({ type: 'crash', description: notes.join('; ') })
    console.log(notes.join('\n'))
    expect(verdict.problems).toEqual([])
    expect(rejected).toEqual([])
    // Every crash cut both streams mid-flight: some sends it found resolved were delivered only after it.
    for (const life of crashed) expect(verdict.carried[life], `sends of life ${life} delivered after its crash`).toBeGreaterThan(0)
    expect(verdict.delivered).toBeGreaterThanOrEqual(2 * (2 * HANDED_BEFORE_CRASH + FINAL_SENDS))
  } finally {
    for (const b of browsers) await b.close()
    await relay?.kill()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  }
})
