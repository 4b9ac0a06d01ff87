/**
 * bench:net — two browsers (two Chromium persistent contexts, two profiles on
 * disk, IndexedDB on disk) exchange messages through a real relay process
 * (`src/relay/cli.ts --dev`, ephemeral port). Measured in the same run, in
 * the same two pages:
 *
 * (a) end to end: page A `send()`s N messages of 64 bytes to page B through
 *     `connect()` (engine in a worker, IndexedDB, WebSocket transport), in
 *     windows of WINDOW concurrent sends, each window awaited; B's
 *     `onMessage` handler timestamps each arrival. msgs/s = N / (first send
 *     call -> last handler call); latency = send call -> handler call.
 * (b) the ceiling: plain `WebSocket`s in the same pages log in to the same
 *     relay (`{t:'auth', token:'dev:rawA'}`) and A sends N envelopes of
 *     64-byte payloads to B (windows of WINDOW, one macrotask between windows,
 *     more while over 64 KiB is buffered); no engine, no persistence.
 *     Measured before and after (a); the figures combine both runs.
 *
 * The send time travels inside each payload. Both browsers run on this
 * machine and stamp `performance.timeOrigin + performance.now()`; the offset
 * of each page's clock to this process's is estimated (fastest of 30
 * round trips) and latencies are corrected by the difference (reported as
 * `clockSkewMs`, typically well under a millisecond).
 *
 * The relay's per-connection rate limit (default 2,000 frames/s, burst 2x)
 * would cap both measurements, so the relay runs with
 * INTERSESSION_RELAY_FRAMES_PER_SECOND = --relay-fps (default 1,000,000).
 *
 * Playwright subscribes to the pages' network events, WebSocket frames
 * included, which costs WebSocket throughput (roughly half, raw); both
 * figures are measured under that same harness.
 *
 *   npx tsx test/bench/net.ts --messages 20000 --window 1000 --relay-fps 1000000 [--breakdown] [--engine-window 256]
 *
 * (`npm run bench:net` builds, then runs this with the defaults and then
 * test/bench/relay.ts; arguments after `--` would reach only relay.ts.)
 *
 * `--breakdown` also sends the N messages to a fresh B that has no handler:
 * B stores and acks them but hands nothing over, which separates the
 * store-and-ack path from the hand-over path.
 *
 * Needs the built pages (`npm run bench:net` builds them). Exits non-zero
 * only when it could not run; the numbers are reported, not judged.
 */
import type { BrowserContext, Page } from '@playwright/test'
import { clockOffset } from './clock-offset.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { Arrivals } from '../browser/app/net-bench.js'
import {
  browserVersion,
  intArg,
  launchProfile,
  machine,
  makeProfile,
  openReadyPage,
  removeProfile,
  runBench,
  startPreview,
  writeResult,
} from './browser-harness.js'
import { figure } from './figures.js'

const N = intArg('--messages', 20_000)
const WINDOW = intArg('--window', 1000)
const RELAY_FPS = intArg('--relay-fps', 1_000_000)
const BREAKDOWN = process.argv.includes('--breakdown')
/** The engines' `limits.window` (unacked messages in flight per stream); the engine's default (256) unless given. */
const ENGINE_WINDOW = process.argv.includes('--engine-window') ? intArg('--engine-window', 256) : undefined
const BYTES = 64
const WARMUP = 500
const WAIT_MS = 300_000
const WARMUP_PHASE = 1
const MEASURED_PHASE = 2


/** The page's clock minus this process's, from the fastest of 30 round trips. */
const pageOffset = (page: Page): Promise<{ offset: number; rtt: number }> => clockOffset(() => page.evaluate(() => window.netBench.now()), 30)

/** The bench page in `context`, its errors and console errors printed as page `label`'s. */
function openPage(context: BrowserContext, url: string, label: string): Promise<Page> {
  return openReadyPage(context, `${url}/net-bench.html`, { tag: `page ${label}`, consoleErrors: true })
}

interface Run {
  /** First send call (sender's clock, corrected to the receiver's) to last arrival, ms. */
  ms: number
  received: number
  duplicates: number
  /** Send -> arrival, ms, corrected for clock skew. */
  latencies: number[]
}

function run(firstSendAt: number, arrivals: Arrivals, skew: number): Run {
  return {
    ms: arrivals.last - skew - firstSendAt,
    received: arrivals.received,
    duplicates: arrivals.duplicates,
    latencies: arrivals.latencies.map((l) => l - skew),
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
const ms2 = (value: number): number => Number(value.toFixed(2))

async function main(): Promise<void> {
  const preview = await startPreview('net-bench.html', 'bench:net')
  let relay: RelayProcess | undefined
  const profiles = [makeProfile('intersession-bench-net-a-'), makeProfile('intersession-bench-net-b-')]
  const contexts: BrowserContext[] = []
  try {
    relay = await startRelayProcess(['--dev'], { INTERSESSION_RELAY_FRAMES_PER_SECOND: String(RELAY_FPS) })
    const relayUrl = relay.url
    for (const profile of profiles) contexts.push(await launchProfile(profile))
    const a = await openPage(contexts[0]!, preview.url, 'A')
    const b = await openPage(contexts[1]!, preview.url, 'B')
    const browser = await browserVersion(a)

    const skews: number[] = []
    const measureSkew = async (): Promise<number> => {
      const [offA, offB] = [await pageOffset(a), await pageOffset(b)]
      const skew = offB.offset - offA.offset
      skews.push(skew)
      return skew
    }

    // (b) The ceiling: plain WebSockets through the relay, A -> B.
    const rawRun = async (): Promise<Run & { undeliverable: number }> => {
      await b.evaluate(({ id, url }) => window.netBench.rawOpen(id, url), { id: 'rawB', url: relayUrl })
      await a.evaluate(({ id, url }) => window.netBench.rawOpen(id, url), { id: 'rawA', url: relayUrl })
      const exchange = async (phase: number, count: number): Promise<{ firstSendAt: number; arrivals: Arrivals }> => {
        await b.evaluate(({ phase, count }) => window.netBench.expect(phase, count), { phase, count })
        const sent = await a.evaluate(({ phase, count, bytes, win }) => window.netBench.rawSend('rawB', phase, count, bytes, win), { phase, count, bytes: BYTES, win: WINDOW })
        const arrivals = await b.evaluate((ms) => window.netBench.wait(ms), WAIT_MS)
        return { firstSendAt: sent.firstSendAt, arrivals }
      }
      await exchange(WARMUP_PHASE, WARMUP)
      const skew = await measureSkew()
      const { firstSendAt, arrivals } = await exchange(MEASURED_PHASE, N)
      const { undeliverable } = await a.evaluate(() => window.netBench.rawStats())
      await a.evaluate(() => window.netBench.rawClose())
      await b.evaluate(() => window.netBench.rawClose())
      return { ...run(firstSendAt, arrivals, skew), undeliverable }
    }
    const rawRuns = [await rawRun()]

    // (a) End to end: connect() in both browsers, IndexedDB on disk, through the relay.
    const nonce = Date.now().toString(36)
    const idA = `netA-${nonce}`
    const idB = `netB-${nonce}`
    for (const [page, id] of [[b, idB], [a, idA]] as const) {
      const state = await page.evaluate(({ id, url, w }) => window.netBench.connect(id, url, true, w), { id, url: relayUrl, w: ENGINE_WINDOW })
      if (state.role !== 'leader' || state.connection !== 'online') throw new Error(`${id} did not come up (role ${state.role}, connection ${state.connection})`)
    }
    const e2eExchange = async (phase: number, count: number): Promise<{ firstSendAt: number; arrivals: Arrivals }> => {
      await b.evaluate(({ phase, count }) => window.netBench.expect(phase, count), { phase, count })
      await a.evaluate((count) => window.netBench.expectAcks(count), count)
      const sent = await a.evaluate(({ to, phase, count, bytes, win }) => window.netBench.send(to, phase, count, bytes, win), { to: idB, phase, count, bytes: BYTES, win: WINDOW })
      const arrivals = await b.evaluate((ms) => window.netBench.wait(ms), WAIT_MS)
      return { firstSendAt: sent.firstSendAt, arrivals }
    }
    // Warm-up: sessions open (hello both ways), IndexedDB backends in use on both sides.
    const warm = await e2eExchange(WARMUP_PHASE, Math.min(WARMUP, WINDOW))
    if (warm.arrivals.received !== Math.min(WARMUP, WINDOW)) throw new Error(`warm-up: B received ${warm.arrivals.received} of ${Math.min(WARMUP, WINDOW)}`)
    // ... and acked at A, so that no warm-up 'delivered' event counts toward the measured run.
    await a.evaluate((ms) => window.netBench.waitAcks(ms), 60_000)
    const e2eSkew = await measureSkew()
    const measured = await e2eExchange(MEASURED_PHASE, N)
    const e2e = run(measured.firstSendAt, measured.arrivals, e2eSkew)
    // Give the last acks a moment, then see what A still holds.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    // When B had stored (and acked) every message, on A's clock: 'delivered' status events at A.
    const acked = await a.evaluate(() => window.netBench.acks())
    const pendingA = await a.evaluate(() => window.netBench.pending())
    await a.evaluate(() => window.netBench.close())
    await b.evaluate(() => window.netBench.close())

    // Breakdown (--breakdown): the same sends to a B with no handler, so B only stores and acks.
    let ackedNoHandlerMsgsPerSec: number | null | undefined
    if (BREAKDOWN) {
      const a2 = `netA2-${nonce}`
      const b2 = `netB2-${nonce}`
      for (const [page, id, subscribe] of [[b, b2, false], [a, a2, true]] as const) {
        const state = await page.evaluate(({ id, url, subscribe, w }) => window.netBench.connect(id, url, subscribe, w), { id, url: relayUrl, subscribe, w: ENGINE_WINDOW })
        if (state.role !== 'leader' || state.connection !== 'online') throw new Error(`${id} did not come up (role ${state.role}, connection ${state.connection})`)
      }
      const ackedRun = async (phase: number, count: number): Promise<{ firstSendAt: number; count: number; last: number }> => {
        await a.evaluate((count) => window.netBench.expectAcks(count), count)
        const sent = await a.evaluate(({ to, phase, count, bytes, win }) => window.netBench.send(to, phase, count, bytes, win), { to: b2, phase, count, bytes: BYTES, win: WINDOW })
        return { firstSendAt: sent.firstSendAt, ...(await a.evaluate((ms) => window.netBench.waitAcks(ms), WAIT_MS)) }
      }
      await ackedRun(WARMUP_PHASE, Math.min(WARMUP, WINDOW))
      const noHandler = await ackedRun(MEASURED_PHASE, N)
      ackedNoHandlerMsgsPerSec = noHandler.count >= N ? Math.round((N / (noHandler.last - noHandler.firstSendAt)) * 1000) : null
      await a.evaluate(() => window.netBench.close())
      await b.evaluate(() => window.netBench.close())
    }

    rawRuns.push(await rawRun())

    const health = (await (await fetch(`http://127.0.0.1:${relay.port}/health`)).json()) as { refusals: Record<string, number>; framesOut: number }

    const rawMs = rawRuns.reduce((sum, r) => sum + r.ms, 0)
    const rawReceived = rawRuns.reduce((sum, r) => sum + r.received, 0)
    const rawLatencies = rawRuns.flatMap((r) => r.latencies).sort((x, y) => x - y)
    const e2eLatencies = [...e2e.latencies].sort((x, y) => x - y)
    const endToEndMsgsPerSec = Math.round((e2e.received / e2e.ms) * 1000)
    const rawWsMsgsPerSec = Math.round((rawReceived / rawMs) * 1000)
    const refused = Object.fromEntries(Object.entries(health.refusals).filter(([, count]) => count > 0))
    const result = {
      benchmark: 'net',
      date: new Date().toISOString(),
      machine: machine(browser),
      messages: N,
      bytes: BYTES,
      sendWindow: WINDOW,
      engineWindow: ENGINE_WINDOW ?? 256,
      endToEndMsgsPerSec,
      p50Ms: ms2(percentile(e2eLatencies, 0.5)),
      p99Ms: ms2(percentile(e2eLatencies, 0.99)),
      ackedMsgsPerSec: acked.count >= N ? Math.round((N / (acked.last - measured.firstSendAt)) * 1000) : null,
      ...(ackedNoHandlerMsgsPerSec !== undefined && { ackedNoHandlerMsgsPerSec }),
      endToEndReceived: e2e.received,
      endToEndDuplicates: e2e.duplicates,
      senderPendingAfter: pendingA.outbound,
      rawWsMsgsPerSec,
      rawP50Ms: ms2(percentile(rawLatencies, 0.5)),
      rawP99Ms: ms2(percentile(rawLatencies, 0.99)),
      rawWsMsgsPerSecRuns: rawRuns.map((r) => Math.round((r.received / r.ms) * 1000)),
      rawReceived: rawRuns.map((r) => r.received),
      rawUndeliverable: rawRuns.reduce((sum, r) => sum + r.undeliverable, 0),
      ratio: Number((endToEndMsgsPerSec / rawWsMsgsPerSec).toFixed(4)),
      relayFramesPerSecondLimit: RELAY_FPS,
      relayRefusals: refused,
      clockSkewMs: skews.map(ms2),
      figures: [
        figure(
          `net: two browsers through the relay, both persisting, ${N.toLocaleString('en-US')} × ${BYTES} B`,
          endToEndMsgsPerSec,
          'msgs/s',
          'raw WebSocket envelopes through the same relay',
          rawWsMsgsPerSec,
        ),
        figure(`net: latency p50, send() to handler (the sender queues all ${N.toLocaleString('en-US')} at once)`, ms2(percentile(e2eLatencies, 0.5)), 'ms', 'raw WebSocket p50', ms2(percentile(rawLatencies, 0.5))),
      ],
    }
    const incomplete = e2e.received !== N || rawRuns.some((r) => r.received !== N)
    console.log(
      [
        `bench:net  ${N} messages of ${BYTES} B, A -> B through a relay process, ${result.machine}`,
        `  end to end (connect(), worker + IndexedDB both sides, windows of ${WINDOW}): ${endToEndMsgsPerSec} msgs/s  p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms`,
        `    (received ${e2e.received}/${N}, duplicates ${e2e.duplicates}; A's outbox after 1 s: ${pendingA.outbound})`,
        `    stored and acked by B (first send -> A's last 'delivered' status event): ${result.ackedMsgsPerSec ?? `only ${acked.count} acked`} msgs/s`,
        ...(ackedNoHandlerMsgsPerSec === undefined
          ? []
          : [`    breakdown, stored and acked by a B with no handler (nothing handed over):   ${ackedNoHandlerMsgsPerSec ?? 'not all acked'} msgs/s`]),
        `  ceiling, raw WebSocket envelopes, no persistence:        ${rawWsMsgsPerSec} msgs/s  p50 ${result.rawP50Ms} ms  p99 ${result.rawP99Ms} ms  ratio ${result.ratio}`,
        `    (runs ${result.rawWsMsgsPerSecRuns.join(', ')} msgs/s; received ${result.rawReceived.join(', ')}; undeliverable ${result.rawUndeliverable})`,
        `  relay frames/s limit ${RELAY_FPS} (burst 2x); relay refusals ${JSON.stringify(refused)}; clock skew B-A ${result.clockSkewMs.join(', ')} ms`,
        ...(incomplete ? ['  WARNING: not every message arrived; rates count what did'] : []),
      ].join('\n'),
    )
    writeResult('net', result)
  } finally {
    for (const context of contexts) await context.close().catch(() => {})
    await relay?.stop().catch(() => {})
    preview.stop()
    for (const profile of profiles) removeProfile(profile)
  }
}

runBench('net', main)
