/**
 * bench:recovery — how fast a backlog drains after a reload. Two browsers
 * (two Chromium persistent contexts, IndexedDB on disk) on the harness page
 * (test/browser/app, `window.harness.recovery`), through a real relay process
 * (`src/relay/cli.ts --dev`, ephemeral port), N messages of 64 bytes A -> B:
 *
 * (a) recovery: A and B are online and have exchanged one message; then A
 *     goes offline (`setOnline(false)`, the app's "work offline" switch) and
 *     queues N messages (durably, in IndexedDB; checked by reading A's
 *     outbox straight from IndexedDB), while B stays online. Then A's page
 *     reloads (`page.reload()`) and the app calls `connect()` again, online.
 *     Time: the queuing (the first send call until the last send resolved:
 *     the recovery side's own IndexedDB writes, which the fresh side also
 *     pays inside its clock) plus the drain (from the reload call until B's
 *     handler has seen all N and A has seen all N `delivered` status events,
 *     whichever is later). The checks between the two (reading A's outbox
 *     back from IndexedDB) are not counted. Afterwards
 *     every id's status at A must be `delivered`, A's outbox empty, B's
 *     arrivals in order without duplicates.
 * (b) the ceiling: a fresh pair of identities, both online, warmed up with
 *     one message; A sends N fresh messages (windows of WINDOW sends, each
 *     awaited). Time: from the first send call until the same two
 *     conditions hold.
 *
 * Ratio = recovery time / fresh time (below 1: draining the backlog after a
 * reload is faster than sending it anew). `--runs R` (default 3): R alternating
 * (fresh, recovery) pairs run in the same browsers; the medians are reported.
 *
 * Arrival and `delivered` times are stamped in the pages
 * (`performance.timeOrigin + performance.now()`) and moved to this process's
 * clock by each page's offset (fastest of 20 round trips).
 *
 *   npm run bench:recovery -- --messages 10000 --runs 3
 *   npx tsx test/bench/recovery.ts --dist test/bench/.recovery-dist   (pages already built)
 *
 * `npm run bench:recovery` builds the package and the harness pages into
 * test/bench/.recovery-dist (served from this process, port 0), then runs
 * this. Writes test/bench/results/recovery.json. Exits non-zero only when it
 * could not run (including: not everything delivered within 5 minutes).
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrowserContext, Page } from '@playwright/test'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { browserVersion, intArg, launchProfile, machine, makeProfile, openReadyPage, removeProfile, runBench, writeResult } from './browser-harness.js'
import { clock, clockOffset } from './clock-offset.js'
import { figure } from './figures.js'
import { serveStatic, type StaticServer } from '../helpers/static-server.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const N = intArg('--messages', 10_000)
const RUNS = intArg('--runs', 3)
const distIndex = process.argv.indexOf('--dist')
const DIST = resolve(ROOT, distIndex > 0 ? (process.argv[distIndex + 1] ?? '') : 'test/bench/.recovery-dist')
const BYTES = 64
const WINDOW = 1000
const RELAY_FPS = 1_000_000
const WAIT_MS = 300_000
const WARMUP_PHASE = 0
const MEASURED_PHASE = 1


/** The page's clock minus this process's, from the fastest of 20 round trips. */
const pageOffset = async (page: Page): Promise<number> => (await clockOffset(() => page.evaluate(() => window.harness.recovery.now()), 20)).offset

/** `connect()` as `id` in `page`; throws unless the tab leads and the link is in the wanted state. */
async function bringUp(page: Page, id: string, url: string, online: boolean): Promise<void> {
  const state = await page.evaluate(({ id, url, online }) => window.harness.recovery.connect(id, url, online), { id, url, online })
  const wanted = online ? 'online' : 'offline'
  if (state.role !== 'leader' || state.connection !== wanted) throw new Error(`${id} did not come up ${wanted} (role ${state.role}, connection ${state.connection})`)
}

/** One message A -> B, received and acked, so that the session between the two is open. */
async function warmUp(a: Page, b: Page, to: string): Promise<void> {
  await b.evaluate((phase) => window.harness.recovery.expect(phase, 1), WARMUP_PHASE)
  await a.evaluate(() => window.harness.recovery.expectAcks(1))
  await a.evaluate(({ to, phase, bytes }) => window.harness.recovery.send(to, phase, 1, bytes, 1), { to, phase: WARMUP_PHASE, bytes: BYTES })
  const [arrived, acked] = await Promise.all([b.evaluate(() => window.harness.recovery.waitArrivals(30_000)), a.evaluate(() => window.harness.recovery.waitAcks(30_000))])
  if (arrived.received !== 1 || acked.count !== 1) throw new Error(`warm-up: ${arrived.received} received, ${acked.count} acked`)
}

/** How one measured drain ended. */
interface Drain {
  /** Start (the reload call, or the first send call) to the later of B's last arrival and A's last `delivered` event. */
  ms: number
  /** Start to B's last arrival. */
  receivedMs: number
  /** Start to A's last `delivered` event. */
  ackedMs: number
}

/**
 * Waits until B saw all N and A saw N `delivered` events, then checks the
 * outcome (every id `delivered` at A, A's outbox empty, B in order, no
 * duplicates) and times it from `start` (this process's clock).
 */
async function drain(a: Page, b: Page, ids: readonly string[], start: number): Promise<Drain> {
  const [arrived, acked] = await Promise.all([
    b.evaluate((ms) => window.harness.recovery.waitArrivals(ms), WAIT_MS),
    a.evaluate((ms) => window.harness.recovery.waitAcks(ms), WAIT_MS),
  ])
  if (arrived.received !== N || acked.count < N) throw new Error(`not all delivered within ${WAIT_MS / 1000} s: B received ${arrived.received} of ${N}, A saw ${acked.count} 'delivered'`)
  if (arrived.duplicates !== 0 || arrived.outOfOrder !== 0) throw new Error(`B received ${arrived.duplicates} duplicates, ${arrived.outOfOrder} out of order`)
  const statuses = await a.evaluate((ids) => window.harness.recovery.statuses(ids), [...ids])
  if (statuses.delivered !== N) throw new Error(`A's statuses after the drain: ${JSON.stringify(statuses)}`)
  const pending = await a.evaluate(() => window.harness.recovery.pending())
  if (pending.outbound !== 0) throw new Error(`A still holds ${pending.outbound} outbound messages`)
  const [offA, offB] = [await pageOffset(a), await pageOffset(b)]
  const receivedMs = arrived.last - offB - start
  const ackedMs = acked.last - offA - start
  return { ms: Math.max(receivedMs, ackedMs), receivedMs, ackedMs }
}

async function closeBoth(a: Page, b: Page): Promise<void> {
  await a.evaluate(() => window.harness.recovery.close())
  await b.evaluate(() => window.harness.recovery.close())
}

/** (b) N fresh messages, both online. */
async function fresh(a: Page, b: Page, relay: string, tag: string): Promise<Drain> {
  const [idA, idB] = [`freshA-${tag}`, `freshB-${tag}`]
  await bringUp(b, idB, relay, true)
  await bringUp(a, idA, relay, true)
  await warmUp(a, b, idB)
  await b.evaluate(({ phase, n }) => window.harness.recovery.expect(phase, n), { phase: MEASURED_PHASE, n: N })
  await a.evaluate((n) => window.harness.recovery.expectAcks(n), N)
  const offA = await pageOffset(a)
  const sent = await a.evaluate(({ to, phase, n, bytes, win }) => window.harness.recovery.send(to, phase, n, bytes, win), { to: idB, phase: MEASURED_PHASE, n: N, bytes: BYTES, win: WINDOW })
  const result = await drain(a, b, sent.ids, sent.firstSendAt - offA)
  await closeBoth(a, b)
  return result
}

/** (a) N queued while A is offline, then A's page reloads and connects again. */
async function recovery(a: Page, b: Page, relay: string, tag: string): Promise<Drain & { drainMs: number; queueMs: number; reloadMs: number; connectMs: number }> {
  const [idA, idB] = [`recoverA-${tag}`, `recoverB-${tag}`]
  await bringUp(b, idB, relay, true)
  await bringUp(a, idA, relay, true)
  await warmUp(a, b, idB)
  const state = await a.evaluate(() => window.harness.recovery.setOnline(false))
  if (state !== 'offline') throw new Error(`A did not go offline (${state})`)
  const queueStart = clock()
  const sent = await a.evaluate(({ to, phase, n, bytes, win }) => window.harness.recovery.send(to, phase, n, bytes, win), { to: idB, phase: MEASURED_PHASE, n: N, bytes: BYTES, win: WINDOW })
  const queueMs = clock() - queueStart
  const rows = await a.evaluate((id) => window.harness.outboxRows(id), idA)
  if (rows.length !== N) throw new Error(`A's outbox in IndexedDB holds ${rows.length} rows, not ${N}`)
  await b.evaluate(({ phase, n }) => window.harness.recovery.expect(phase, n), { phase: MEASURED_PHASE, n: N })

  const start = clock()
  await a.reload()
  await a.waitForFunction(() => document.title === 'ready', undefined, { timeout: 15_000 })
  const reloadMs = clock() - start
  await a.evaluate((n) => window.harness.recovery.expectAcks(n), N)
  await bringUp(a, idA, relay, true)
  const connectMs = clock() - start
  const drained = await drain(a, b, sent.ids, start)
  const left = await a.evaluate((id) => window.harness.outboxRows(id), idA)
  if (left.length !== 0) throw new Error(`A's outbox in IndexedDB still holds ${left.length} rows`)
  await closeBoth(a, b)
  return { ...drained, ms: queueMs + drained.ms, drainMs: drained.ms, queueMs, reloadMs, connectMs }
}

const median = (values: readonly number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!
const round = (value: number): number => Math.round(value)

async function main(): Promise<void> {
  if (!existsSync(resolve(DIST, 'index.html'))) {
    throw new Error(`${DIST}/index.html is missing: run \`npm run build && npx vite build --config test/browser/vite.config.ts --outDir ${DIST}\` (npm run bench:recovery does)`)
  }
  let server: StaticServer | undefined
  let relay: RelayProcess | undefined
  const profiles = [makeProfile('intersession-bench-recovery-a-'), makeProfile('intersession-bench-recovery-b-')]
  const contexts: BrowserContext[] = []
  try {
    server = await serveStatic(DIST)
    relay = await startRelayProcess(['--dev'], { INTERSESSION_RELAY_FRAMES_PER_SECOND: String(RELAY_FPS) })
    for (const profile of profiles) contexts.push(await launchProfile(profile))
    const a = await openReadyPage(contexts[0]!, `${server.url}/index.html`, { tag: 'page A', consoleErrors: true })
    const b = await openReadyPage(contexts[1]!, `${server.url}/index.html`, { tag: 'page B', consoleErrors: true })
    const browser = await browserVersion(a)
    const nonce = Date.now().toString(36)

    const freshRuns: Drain[] = []
    const recoveryRuns: Array<Awaited<ReturnType<typeof recovery>>> = []
    for (let run = 0; run < RUNS; run++) {
      freshRuns.push(await fresh(a, b, relay.url, `${nonce}-${run}`))
      recoveryRuns.push(await recovery(a, b, relay.url, `${nonce}-${run}`))
      console.log(`  run ${run + 1}/${RUNS}: fresh ${round(freshRuns[run]!.ms)} ms, recovery ${round(recoveryRuns[run]!.ms)} ms`)
    }

    const freshMs = round(median(freshRuns.map((r) => r.ms)))
    const recoveryMs = round(median(recoveryRuns.map((r) => r.ms)))
    const rate = (ms: number): number => Math.round((N / ms) * 1000)
    const result = {
      benchmark: 'recovery',
      date: new Date().toISOString(),
      machine: machine(browser),
      messages: N,
      bytes: BYTES,
      scenario: 'sender offline (setOnline(false)) while queuing; receiver online throughout; sender page reloads and connects online',
      sendWindow: WINDOW,
      runs: RUNS,
      recoveryMs,
      freshMs,
      ratio: Number((recoveryMs / freshMs).toFixed(4)),
      recoveryMsgsPerSec: rate(recoveryMs),
      freshMsgsPerSec: rate(freshMs),
      recoveryMsRuns: recoveryRuns.map((r) => round(r.ms)),
      /** The drain alone (reload -> all delivered), as this figure was timed before its writes were counted. */
      recoveryDrainMsRuns: recoveryRuns.map((r) => round(r.drainMs)),
      freshMsRuns: freshRuns.map((r) => round(r.ms)),
      /** Each run's recovery / fresh (the two measured back to back). */
      ratioRuns: recoveryRuns.map((r, i) => Number((r.ms / freshRuns[i]!.ms).toFixed(4))),
      recoveryReceivedMsRuns: recoveryRuns.map((r) => round(r.receivedMs)),
      recoveryAckedMsRuns: recoveryRuns.map((r) => round(r.ackedMs)),
      freshReceivedMsRuns: freshRuns.map((r) => round(r.receivedMs)),
      freshAckedMsRuns: freshRuns.map((r) => round(r.ackedMs)),
      reloadMsRuns: recoveryRuns.map((r) => round(r.reloadMs)),
      reconnectedMsRuns: recoveryRuns.map((r) => round(r.connectMs)),
      offlineQueueMsRuns: recoveryRuns.map((r) => round(r.queueMs)),
      relayFramesPerSecondLimit: RELAY_FPS,
      figures: [
        figure(
          `recovery: ${N.toLocaleString('en-US')} × ${BYTES} B queued offline (their writes counted), sender page reloads, until all delivered (browsers + relay)`,
          recoveryMs,
          'ms',
          `${N.toLocaleString('en-US')} fresh sends, both online`,
          freshMs,
        ),
      ],
    }
    console.log(
      [
        `bench:recovery  ${N} messages of ${BYTES} B, A -> B through a relay process, ${result.machine}`,
        `  recovery (A queued them offline, reload, connect online): ${recoveryMs} ms, queuing + drain  (${result.recoveryMsgsPerSec} msgs/s; runs ${result.recoveryMsRuns.join(', ')} ms)`,
        `    drain alone ${result.recoveryDrainMsRuns.join(', ')} ms; reload ${result.reloadMsRuns.join(', ')} ms; connected ${result.reconnectedMsRuns.join(', ')} ms after the reload; queuing offline took ${result.offlineQueueMsRuns.join(', ')} ms`,
        `  ceiling, ${N} fresh sends, both online:                    ${freshMs} ms until all delivered  (${result.freshMsgsPerSec} msgs/s; runs ${result.freshMsRuns.join(', ')} ms)`,
        `  ratio recovery / fresh: ${result.ratio}  (per run ${result.ratioRuns.join(', ')})`,
      ].join('\n'),
    )
    writeResult('recovery', result)
  } finally {
    for (const context of contexts) await context.close().catch(() => {})
    await relay?.stop().catch(() => {})
    await server?.stop()
    for (const profile of profiles) removeProfile(profile)
  }
}

runBench('recovery', main)
