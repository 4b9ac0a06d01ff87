/**
 * bench:idb — persisted `send()` through `connect()` (engine in a worker,
 * IndexedDB on disk) against the ceiling of raw IndexedDB puts of the same
 * rows into the outbox's schema (and, beside it, the earlier two-index
 * baseline; see rawPuts in test/browser/app/bench.ts), measured in the same
 * browser profile in the same run; then the
 * worker's JS heap with 100,000 messages pending. Writes
 * test/bench/results/idb.json.
 *
 *   npm run bench:idb -- --messages 20000 --heap-messages 100000 [--breakdown]
 *
 * `--breakdown` also times the engine in the page itself (no worker, no tab
 * bridge), with and without explicit message ids, to show where time goes.
 *
 * Needs the built pages (`npm run bench:idb` builds them). Exits non-zero
 * only when it could not run; the numbers are reported, not judged.
 */
import type { CDPSession, Page } from '@playwright/test'
import {
  browserVersion,
  intArg,
  launchProfile,
  makeProfile,
  openReadyPage,
  removeProfile,
  runBench,
  startPreview,
  writeResult,
} from './browser-harness.js'
import { figure } from './figures.js'
import { rate, sendVsRaw } from './send-vs-raw.js'

const N = intArg('--messages', 20_000)
const HEAP_N = Math.max(N, intArg('--heap-messages', 100_000))
const BREAKDOWN = process.argv.includes('--breakdown')
const BYTES = 64
const WINDOW = 1000
// Group commit takes whatever is queued (at most 1,024, the writer's MAX_BATCH) into one
// transaction, so a window of 1,000 sends gives transactions of up to ~1,000 rows.
const RAW_BATCH = WINDOW

/**
 * Commands to the page's dedicated worker over the page's CDP session
 * (Playwright opens CDP sessions on pages and frames only): the worker is
 * auto-attached without flattening and spoken to through
 * `Target.sendMessageToTarget`.
 */
class WorkerCdp {
  readonly #session: CDPSession
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>()
  #sessionId: string | undefined
  #nextId = 1

  private constructor(session: CDPSession) {
    this.#session = session
    session.on('Target.receivedMessageFromTarget', (event) => {
      if (event.sessionId !== this.#sessionId) return
      const m = JSON.parse(event.message) as { id?: number; result?: unknown; error?: { message: string } }
      const pending = m.id === undefined ? undefined : this.#pending.get(m.id)
      if (pending === undefined) return
      this.#pending.delete(m.id!)
      if (m.error !== undefined) pending.reject(new Error(`CDP (worker): ${m.error.message}`))
      else pending.resolve(m.result)
    })
  }

  static async attach(page: Page, urlPart: string): Promise<WorkerCdp> {
    const session = await page.context().newCDPSession(page)
    const cdp = new WorkerCdp(session)
    const attached = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no worker matching ${urlPart} attached within 10 s`)), 10_000)
      session.on('Target.attachedToTarget', (event) => {
        if (event.targetInfo.type === 'worker' && event.targetInfo.url.includes(urlPart)) {
          clearTimeout(timer)
          resolve(event.sessionId)
        }
      })
    })
    await session.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false })
    cdp.#sessionId = await attached
    return cdp
  }

  send<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`CDP (worker) ${method} timed out`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (value) => (clearTimeout(timer), resolve(value as T)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      })
      this.#session
        .send('Target.sendMessageToTarget', { sessionId: this.#sessionId!, message: JSON.stringify({ id, method, params }) })
        .catch((error: Error) => this.#pending.get(id)?.reject(error))
    })
  }

  /** The worker's used JS heap after a full GC (the smaller of two tries). */
  async heapAfterGc(): Promise<number> {
    let least = Infinity
    for (let i = 0; i < 2; i++) {
      await this.send('HeapProfiler.collectGarbage')
      least = Math.min(least, (await this.send<{ usedSize: number }>('Runtime.getHeapUsage')).usedSize)
    }
    return least
  }

  async detach(): Promise<void> {
    await this.#session.detach().catch(() => {})
  }
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MiB`

async function main(): Promise<void> {
  const preview = await startPreview('bench.html', 'bench:idb')
  const profile = makeProfile('intersession-bench-idb-')
  try {
    const context = await launchProfile(profile)
    try {
      const page = await openReadyPage(context, `${preview.url}/bench.html`, { tag: 'page' })
      const browser = await browserVersion(page)

      // Warm-up, so that neither measurement pays for first use of the IndexedDB backend.
      await page.evaluate(({ bytes, batch }) => window.bench.rawPuts(2000, batch, bytes, 'strict'), { bytes: BYTES, batch: RAW_BATCH })

      // (a) The ceiling: raw puts in group-commit-sized transactions, same durability as the engine ('strict').
      // Measured before and after (b), averaged: fsync times on this disk vary from run to run.
      const raw = (batch: number, durability: IDBTransactionDurability, schema: 'store' | 'two-indexes' = 'store'): Promise<number> =>
        page.evaluate(({ n, bytes, b, d, s }) => window.bench.rawPuts(n, b, bytes, d, s), { n: N, bytes: BYTES, b: batch, d: durability, s: schema })
      const rawMs = [await raw(RAW_BATCH, 'strict')]
      const rawTwoIndexesMs = [await raw(RAW_BATCH, 'strict', 'two-indexes')]
      const raw256Ms = await raw(256, 'strict')
      const rawRelaxedMs = await raw(RAW_BATCH, 'relaxed')

      // (b) Persisted send() through connect(): worker + IndexedDB, toward a peer that never comes online.
      const nonce = Date.now().toString(36)
      const role = await page.evaluate(({ id, network }) => window.bench.connect(id, network), { id: `bench-${nonce}`, network: `bench-${nonce}` })
      if (role !== 'leader') throw new Error(`the bench tab did not become leader (role ${role})`)
      const worker = await WorkerCdp.attach(page, '/worker')
      const heapBefore = await worker.heapAfterGc()
      const sendMs = await page.evaluate(({ n, bytes, win }) => window.bench.send('offline-peer', n, bytes, win), { n: N, bytes: BYTES, win: WINDOW })
      const heapAfterSend = await worker.heapAfterGc()
      rawTwoIndexesMs.push(await raw(RAW_BATCH, 'strict', 'two-indexes'))
      rawMs.push(await raw(RAW_BATCH, 'strict'))

      // (c) The worker's heap with HEAP_N messages pending (the first N count).
      const fillStart = performance.now()
      await page.evaluate(({ n, bytes, win }) => window.bench.send('offline-peer', n, bytes, win), { n: HEAP_N - N, bytes: BYTES, win: WINDOW })
      const fillMs = performance.now() - fillStart
      const pending = await page.evaluate(() => window.bench.pending())
      if (pending.outbound !== HEAP_N) throw new Error(`expected ${HEAP_N} pending, the store counts ${pending.outbound}`)
      const heapAfter = await worker.heapAfterGc()
      await worker.detach()
      await page.evaluate(() => window.bench.close())

      let breakdown: { engineInPageMsgsPerSec: number; engineInPageWithIdsMsgsPerSec: number } | undefined
      if (BREAKDOWN) {
        const inPage = (withIds: boolean): Promise<number> =>
          page.evaluate(({ id, n, bytes, win, ids }) => window.bench.engineInPage(id, n, bytes, win, ids), { id: `bench-page-${withIds}-${nonce}`, n: N, bytes: BYTES, win: WINDOW, ids: withIds })
        breakdown = { engineInPageMsgsPerSec: rate(N, await inPage(false)), engineInPageWithIdsMsgsPerSec: rate(N, await inPage(true)) }
      }

      const measured = sendVsRaw({ benchmark: 'idb', browser, messages: N, bytes: BYTES, window: WINDOW, rawBatch: RAW_BATCH, sendMs, rawMs, rawTwoIndexesMs })
      const { sendMsgsPerSec: sendRate, rawIdbPutsPerSec: rawRate, rawTwoIndexesPutsPerSec: rawTwoRate } = measured
      const result = {
        ...measured,
        rawIdbPutsPerSec256: rate(N, raw256Ms),
        rawIdbPutsPerSecRelaxed: rate(N, rawRelaxedMs),
        heapMessages: HEAP_N,
        heapFillMsgsPerSec: rate(HEAP_N - N, fillMs),
        heapBeforeBytes: heapBefore,
        heapAfterFirstBatchBytes: heapAfterSend,
        heapAfter100kBytes: heapAfter,
        ...breakdown,
        figures: [
          figure(
            `idb: persisted send() through the worker, ${N.toLocaleString('en-US')} × ${BYTES} B, strict durability`,
            sendRate,
            'msgs/s',
            `raw IndexedDB puts, ${RAW_BATCH.toLocaleString('en-US')} per transaction, the store's schema 3 (two indexes, fence and watermark reads, stream put)`,
            rawRate,
          ),
          figure(
            `idb: persisted send() through the worker, ${N.toLocaleString('en-US')} × ${BYTES} B, strict durability`,
            sendRate,
            'msgs/s',
            `bare raw puts (the outbox's two indexes alone), ${RAW_BATCH.toLocaleString('en-US')} per transaction`,
            rawTwoRate,
          ),
          figure(`idb: worker heap with ${HEAP_N.toLocaleString('en-US')} messages pending`, heapAfter, 'B', 'their message bodies', HEAP_N * BYTES),
        ],
      }
      console.log(
        [
          `bench:idb  ${N} messages of ${BYTES} B, ${result.machine}`,
          `  send() through connect() (worker + IndexedDB, strict): ${sendRate} msgs/s  (windows of ${WINDOW})`,
          `  ceiling, raw IndexedDB puts (${RAW_BATCH}/tx, strict): ${rawRate} puts/s  ratio ${result.ratio} (goal 0.8)`,
          `    (runs ${result.rawIdbPutsPerSecRuns.join(', ')}; 256/tx ${result.rawIdbPutsPerSec256}; relaxed ${result.rawIdbPutsPerSecRelaxed} puts/s)`,
          `  bare raw puts (two indexes, nothing else): ${rawTwoRate} puts/s (runs ${result.rawTwoIndexesPutsPerSecRuns.join(', ')}); ratio ${result.ratioTwoIndexes}`,
          `  worker heap after GC: ${mb(heapBefore)} engine open, ${mb(heapAfterSend)} with ${N} pending,` +
            ` ${mb(heapAfter)} with ${HEAP_N} pending (${HEAP_N} x ${BYTES} B = ${mb(HEAP_N * BYTES)})`,
          ...(breakdown === undefined
            ? []
            : [
                `  breakdown, engine in the page (no worker), no ids:   ${breakdown.engineInPageMsgsPerSec} msgs/s`,
                `  breakdown, engine in the page, explicit ids:         ${breakdown.engineInPageWithIdsMsgsPerSec} msgs/s`,
              ]),
        ].join('\n'),
      )
      writeResult('idb', result)
    } finally {
      await context.close()
    }
  } finally {
    preview.stop()
    removeProfile(profile)
  }
}

runBench('idb', main)
