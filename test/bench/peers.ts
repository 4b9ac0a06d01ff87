/**
 * bench:peers — intersession against the systems people would pick instead,
 * in the same run, the same browser (system Chromium, headless), the same
 * two pages, the same messages and the same send pattern:
 *
 * - intersession: `connect()` on both pages (engine in a worker, IndexedDB on
 *   disk: two persistent profiles), through a real relay process
 *   (test/helpers/relay-process.ts, `--dev`, rate limit lifted as in bench:net);
 * - MQTT.js at QoS 1 over WebSocket to an aedes broker, persistent sessions
 *   (`clean: false`, fixed client ids);
 * - Socket.IO (WebSocket transport) with connection state recovery, every
 *   message `emitWithAck`ed to the server, which forwards it to the receiver.
 *
 * Each server runs in its own process on a loopback port. Page A sends, page
 * B receives; B always reaches its server through a loopback TCP proxy
 * (test/bench/peers-proxy.ts, its own process), so the clean and the fault
 * runs have the same path. Every message is a 64-character ASCII string (64
 * bytes as UTF-8) carrying its index and send time.
 *
 * Runs, per system:
 * 1. clean, twice per system in fresh sessions, in the order A B C C B A so
 *    that the shared machine's drifting load weighs on each alike (figures
 *    combine both: msgs/s over the summed time, percentiles over every
 *    message): N messages in windows of WINDOW sends issued at once, each
 *    window awaited (every send settled: intersession once durably queued
 *    in IndexedDB, MQTT on the broker's PUBACK, Socket.IO on the server's
 *    ack after it forwarded), the next window right after. msgs/s = N /
 *    (first send call -> last first-arrival in B's handler); latency = send
 *    call -> B's handler, per message.
 * 2. paced, in the same sessions: PACED messages one at a time, each awaited
 *    then GAP ms of pause (far below every system's capacity): latency
 *    without queueing.
 * 3. fault, once per system on fresh identities: as 1, but the moment B's
 *    handler has half of them, B's page itself POSTs to its proxy's control
 *    port, and the proxy resets B's connections (TCP RST both ways, which
 *    neither client asked for) and refuses B's new ones for CUT ms; then B
 *    reconnects on its own (each client's default policy). Counted per
 *    system: messages B never got (lost) and arrivals of a message B already
 *    had (duplicated), once the stream completed plus 2 s, or after 15 s
 *    without any arrival.
 *
 * Latency is on one clock: both browsers stamp `performance.timeOrigin +
 * performance.now()`, and each page's offset to this process's clock is
 * estimated (fastest of 30 round trips) before each session, the difference
 * corrected for (reported as `skewMs`).
 *
 * As in bench:net, Playwright gets an event for every WebSocket frame of both
 * pages (the engine's worker's included), which costs each system per frame
 * on this 2-core machine; frames per message are reported with each run.
 *
 *   npx tsx test/bench/peers.ts [--messages 5000] [--window 1000] [--paced 300] [--gap 10] [--cut-ms 2000]
 *
 * `npm run bench:peers` builds dist/ and the page first. Writes
 * test/bench/results/peers.json. Exits non-zero only when it could not run;
 * the numbers are reported, not judged (a loss or duplicate of intersession's
 * is printed as a bug).
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrowserContext, Page } from '@playwright/test'
import { startRelayProcess } from '../helpers/relay-process.js'
import type { SendReport } from './peers-app/main.js'
import type { SystemName } from './peers-app/peer.js'
import type { Tally } from './peers-app/receiver.js'
import { clockOffset } from './clock-offset.js'
import { figure, plainFigure, type Figure } from './figures.js'
import { browserVersion, intArg, launchProfile, machine, makeProfile, openReadyPage, removeProfile, runBench, writeResult } from './browser-harness.js'
import { startPeerServer, startProxy, type CutReport, type Proxy } from './peers-processes.js'
import { serveStatic } from '../helpers/static-server.js'

/** Where `npm run bench:peers` builds the page. */
const PAGE_DIR = fileURLToPath(new URL('./peers-app/.dist', import.meta.url))
const N = intArg('--messages', 5000)
const WINDOW = intArg('--window', 1000)
const PACED = intArg('--paced', 300)
const GAP_MS = intArg('--gap', 10)
const CUT_MS = intArg('--cut-ms', 2000)
const WARMUP = 200
const RELAY_FPS = 1_000_000
/** Bounds of waiting for a run's arrivals. */
const WAIT_MS = 300_000
const QUIET_MS = 15_000
const SETTLE_MS = 2000
const PHASE = { warmup: 1, clean: 2, paced: 3, fault: 4 } as const
const SYSTEMS: readonly SystemName[] = ['intersession', 'mqtt', 'socketio']

/** Where each system's ends connect: the sender straight to its server, the receiver through its proxy. */
interface Endpoints {
  readonly sender: string
  readonly receiver: string
  readonly proxy: Proxy
}

/** The two pages and what they need to run a system. */
interface Bench {
  readonly a: Page
  readonly b: Page
  readonly endpoints: Record<SystemName, Endpoints>
  /** WebSocket frames sent and received by both pages so far (as Playwright reports them). */
  readonly frames: { count: number }
}

/** What one {@link exchange} sent, what B got, and the WebSocket frames it took. */
interface Exchange {
  readonly sent: SendReport
  readonly tally: Tally
  readonly frames: number
}

/** An exchange and the clock skew (B's clock minus A's) measured for its session. */
interface Measured {
  readonly exchange: Exchange
  readonly skewMs: number
}

/** The outcome of one or more runs of one kind, latencies corrected for clock skew. */
interface Run {
  /** Distinct messages received over the expected, summed over the runs. */
  readonly received: number
  readonly expected: number
  readonly duplicates: number
  /** First send call -> last first-arrival, ms, summed over the runs. */
  readonly ms: number
  /** Received / ms of all runs together. */
  readonly msgsPerSec: number
  /** Each run's own msgs/s, in run order. */
  readonly msgsPerSecRuns: number[]
  /** Over every message of every run. */
  readonly p50Ms: number
  readonly p99Ms: number
  /** The longest wait between two consecutive first arrivals in any run, ms (an outage shows here). */
  readonly longestGapMs: number
  /** WebSocket frames (both directions, both pages, acks and control included) per message received. */
  readonly framesPerMessage: number
  /** Sends that rejected. */
  readonly sendsFailed: number
  readonly skewMs: number[]
}

interface FaultRun extends Run {
  readonly lost: number
  readonly duplicated: number
  /** What the proxy did, and how many messages B had when it reset B's connections; `null` when no cut happened. */
  readonly cut: (Omit<CutReport, 'at'> & { receivedBeforeCut: number }) | null
}

/** Clock offsets measured before a session's runs: page B's to this process's, and B's minus A's. */
interface Clocks {
  readonly offsetB: number
  readonly skewMs: number
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
const ms2 = (value: number): number => Number(value.toFixed(2))
const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0)

/** The page's clock minus this process's, from the fastest of 30 round trips. */
const pageOffset = async (page: Page): Promise<number> => (await clockOffset(() => page.evaluate(() => window.peers.now()), 30)).offset

/** `url` with its port replaced by `port` (the proxy in front of it). */
function via(url: string, port: number): string {
  const proxied = new URL(url)
  proxied.port = String(port)
  return proxied.toString()
}

/** The installed version of package `name` (`intersession`: this one). */
function version(name: string): string {
  const file = new URL(name === 'intersession' ? '../../package.json' : `../../node_modules/${name}/package.json`, import.meta.url)
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

/**
 * `count` messages of `phase` sent A -> B in windows of `sendWindow`, then
 * `gapMs` apart; what B got. With `cutUrl`, B pulls the proxy's cut at half.
 */
async function exchange(bench: Bench, phase: number, count: number, sendWindow: number, gapMs: number, cutUrl?: string): Promise<Exchange> {
  const framesBefore = bench.frames.count
  await bench.b.evaluate(({ phase, count, cutUrl }) => window.peers.expect(phase, count, cutUrl), { phase, count, cutUrl })
  const sent = await bench.a.evaluate(({ phase, count, win, gapMs }) => window.peers.send(phase, count, win, gapMs), { phase, count, win: sendWindow, gapMs })
  const settle = cutUrl === undefined ? 0 : SETTLE_MS
  const tally = await bench.b.evaluate(({ wait, quiet, settle }) => window.peers.wait(wait, quiet, settle), { wait: WAIT_MS, quiet: QUIET_MS, settle })
  return { sent, tally, frames: bench.frames.count - framesBefore }
}

/** Runs of one kind taken together: rates over the summed time, percentiles over every message. */
function combine(runs: readonly Measured[]): Run {
  const spans = runs.map(({ exchange: { sent, tally }, skewMs }) => tally.last - skewMs - sent.firstSendAt)
  const received = sum(runs.map((r) => r.exchange.tally.unique))
  const latencies = runs.flatMap(({ exchange, skewMs }) => exchange.tally.latencies.map((l) => l - skewMs)).sort((x, y) => x - y)
  const ms = sum(spans)
  return {
    received,
    expected: sum(runs.map((r) => r.exchange.tally.expected)),
    duplicates: sum(runs.map((r) => r.exchange.tally.duplicates)),
    ms: ms2(ms),
    msgsPerSec: Math.round((received / ms) * 1000),
    msgsPerSecRuns: runs.map((r, i) => Math.round((r.exchange.tally.unique / spans[i]!) * 1000)),
    p50Ms: ms2(percentile(latencies, 0.5)),
    p99Ms: ms2(percentile(latencies, 0.99)),
    longestGapMs: ms2(Math.max(...runs.map((r) => r.exchange.tally.longestGapMs))),
    framesPerMessage: ms2(sum(runs.map((r) => r.exchange.frames)) / received),
    sendsFailed: sum(runs.map((r) => r.exchange.sent.failed)),
    skewMs: runs.map((r) => ms2(r.skewMs)),
  }
}

/**
 * Opens `system` on both pages as fresh identities (B, the receiver, first,
 * through its proxy), warms it up, runs `body`, and closes both ends.
 */
async function session<T>(bench: Bench, system: SystemName, tag: string, body: (clocks: Clocks) => Promise<T>): Promise<T> {
  const nonce = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
  const [idA, idB] = [`peers-${tag}-a-${nonce}`, `peers-${tag}-b-${nonce}`]
  const { sender, receiver } = bench.endpoints[system]
  try {
    await bench.b.evaluate(({ system, options }) => window.peers.open(system, options), { system, options: { url: receiver, id: idB, other: idA, role: 'receiver' as const } })
    await bench.a.evaluate(({ system, options }) => window.peers.open(system, options), { system, options: { url: sender, id: idA, other: idB, role: 'sender' as const } })
    const warm = await exchange(bench, PHASE.warmup, WARMUP, WARMUP, 0)
    if (warm.tally.unique !== WARMUP) throw new Error(`${system} warm-up: B received ${warm.tally.unique} of ${WARMUP}`)
    const offsetB = await pageOffset(bench.b)
    return await body({ offsetB, skewMs: offsetB - (await pageOffset(bench.a)) })
  } finally {
    await bench.a.evaluate(() => window.peers.close()).catch(() => {})
    await bench.b.evaluate(() => window.peers.close()).catch(() => {})
  }
}

/** One clean session of `system`: the loaded run, then the paced one. */
function cleanSession(bench: Bench, system: SystemName): Promise<{ loaded: Measured; paced: Measured }> {
  return session(bench, system, 'clean', async ({ skewMs }) => ({
    loaded: { exchange: await exchange(bench, PHASE.clean, N, WINDOW, 0), skewMs },
    paced: { exchange: await exchange(bench, PHASE.paced, PACED, 1, GAP_MS), skewMs },
  }))
}

/** One fault session of `system`: the loaded run, B's connections cut at half. */
function faultSession(bench: Bench, system: SystemName): Promise<FaultRun> {
  const { proxy } = bench.endpoints[system]
  return session(bench, system, 'fault', async ({ offsetB, skewMs }) => {
    const cutsBefore = proxy.cuts.length
    const exchanged = await exchange(bench, PHASE.fault, N, WINDOW, 0, proxy.cutUrl(CUT_MS))
    await proxy.settled(CUT_MS + 10_000)
    const report = proxy.cuts[cutsBefore]
    let cut: FaultRun['cut'] = null
    if (report !== undefined) {
      const { at, ...rest } = report
      cut = { ...rest, receivedBeforeCut: await bench.b.evaluate((at) => window.peers.countBefore(at), at + offsetB) }
    }
    const { tally } = exchanged
    return { ...combine([{ exchange: exchanged, skewMs }]), lost: N - tally.unique, duplicated: tally.duplicates, cut }
  })
}

/** `value` against `againstValue`, or nothing when they cannot be compared (e.g. no message arrived). */
function compared(name: string, value: number, unit: string, against: string, againstValue: number): Figure[] {
  return Number.isFinite(value) && Number.isFinite(againstValue) && againstValue !== 0 ? [figure(name, value, unit, against, againstValue)] : []
}

/** Ours against each peer (clean runs), then each system's losses and duplicates in the fault run. */
function figures(clean: Record<SystemName, { loaded: Run; paced: Run }>, fault: Record<SystemName, FaultRun>, labels: Record<SystemName, string>): Figure[] {
  const ours = clean.intersession
  const load = `${N} x 64 B, windows of ${WINDOW} sends`
  const paced = `${PACED} x 64 B, one at a time, ${GAP_MS} ms apart`
  const out = (['mqtt', 'socketio'] as const).flatMap((peer) => {
    const theirs = clean[peer]
    return [
      ...compared(`intersession end-to-end throughput, msgs/s until all received (${load})`, ours.loaded.msgsPerSec, 'msgs/s', labels[peer], theirs.loaded.msgsPerSec),
      ...compared(`intersession latency p50, send call -> receiver handler (${load})`, ours.loaded.p50Ms, 'ms', labels[peer], theirs.loaded.p50Ms),
      ...compared(`intersession latency p99, send call -> receiver handler (${load})`, ours.loaded.p99Ms, 'ms', labels[peer], theirs.loaded.p99Ms),
      ...compared(`intersession latency p50, send call -> receiver handler, paced (${paced})`, ours.paced.p50Ms, 'ms', labels[peer], theirs.paced.p50Ms),
      ...compared(`intersession latency p99, send call -> receiver handler, paced (${paced})`, ours.paced.p99Ms, 'ms', labels[peer], theirs.paced.p99Ms),
    ]
  })
  const outage = `${N} x 64 B, receiver's connections reset and refused for ${CUT_MS / 1000} s at half`
  for (const system of SYSTEMS) {
    out.push(plainFigure(`${labels[system]}: messages lost (${outage})`, fault[system].lost, 'msgs'))
    out.push(plainFigure(`${labels[system]}: messages duplicated (${outage})`, fault[system].duplicated, 'msgs'))
  }
  return out
}

/** Starts the servers, their proxies and the two browsers; runs `body`; stops everything. */
async function withBench<T>(body: (bench: Bench, browser: string) => Promise<T>): Promise<T> {
  const page = await serveStatic(PAGE_DIR)
  const stops: Array<() => Promise<unknown>> = [() => page.stop()]
  const profiles = [makeProfile('intersession-bench-peers-a-'), makeProfile('intersession-bench-peers-b-')]
  const contexts: BrowserContext[] = []
  try {
    const relay = await startRelayProcess(['--dev'], { INTERSESSION_RELAY_FRAMES_PER_SECOND: String(RELAY_FPS) })
    stops.push(() => relay.stop())
    const mqtt = await startPeerServer('mqtt')
    stops.push(() => mqtt.stop())
    const socketio = await startPeerServer('socketio')
    stops.push(() => socketio.stop())
    const servers: Record<SystemName, { url: string; port: number }> = { intersession: relay, mqtt, socketio }
    const endpoints = {} as Record<SystemName, Endpoints>
    for (const system of SYSTEMS) {
      const { url, port } = servers[system]
      const proxy = await startProxy(port)
      stops.push(() => proxy.stop())
      endpoints[system] = { sender: url, receiver: via(url, proxy.port), proxy }
    }
    for (const profile of profiles) contexts.push(await launchProfile(profile))
    const a = await openReadyPage(contexts[0]!, `${page.url}/index.html`, { tag: 'page A', consoleErrors: true })
    const b = await openReadyPage(contexts[1]!, `${page.url}/index.html`, { tag: 'page B', consoleErrors: true })
    const bench: Bench = { a, b, endpoints, frames: { count: 0 } }
    for (const side of [a, b]) {
      side.on('websocket', (socket) => {
        socket.on('framesent', () => bench.frames.count++)
        socket.on('framereceived', () => bench.frames.count++)
      })
    }
    return await body(bench, await browserVersion(a))
  } finally {
    for (const context of contexts) await context.close().catch(() => {})
    for (const stop of stops.reverse()) await stop().catch(() => {})
    for (const profile of profiles) removeProfile(profile)
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(PAGE_DIR, 'index.html'))) {
    throw new Error('test/bench/peers-app/.dist is missing: run `npm run build && npx vite build --config test/bench/peers-app/vite.config.ts` (npm run bench:peers does)')
  }
  const labels: Record<SystemName, string> = {
    intersession: `intersession ${version('intersession')} (relay, IndexedDB)`,
    mqtt: `MQTT.js ${version('mqtt')} QoS 1 over WebSocket -> aedes ${version('aedes')} (clean: false)`,
    socketio: `Socket.IO ${version('socket.io')} (WebSocket, connectionStateRecovery, emitWithAck)`,
  }
  await withBench(async (bench, browser) => {
    // Clean sessions in the order A B C C B A, so that drift of this shared machine's load weighs on each alike.
    const sessions = Object.fromEntries(SYSTEMS.map((system) => [system, [] as Array<{ loaded: Measured; paced: Measured }>])) as Record<SystemName, Array<{ loaded: Measured; paced: Measured }>>
    for (const system of [...SYSTEMS, ...[...SYSTEMS].reverse()]) {
      const measured = await cleanSession(bench, system)
      sessions[system].push(measured)
      const { tally } = measured.loaded.exchange
      console.log(`  ${system}: clean session, ${tally.unique}/${N} received, ${combine([measured.loaded]).msgsPerSec} msgs/s`)
    }
    const clean = Object.fromEntries(
      SYSTEMS.map((system) => [system, { loaded: combine(sessions[system].map((s) => s.loaded)), paced: combine(sessions[system].map((s) => s.paced)) }]),
    ) as Record<SystemName, { loaded: Run; paced: Run }>
    const fault = {} as Record<SystemName, FaultRun>
    for (const system of SYSTEMS) {
      fault[system] = await faultSession(bench, system)
      console.log(`  ${system}: fault session, lost ${fault[system].lost}, duplicated ${fault[system].duplicated}`)
    }
    const result = {
      benchmark: 'peers',
      date: new Date().toISOString(),
      machine: machine(browser),
      messages: N,
      bytes: 64,
      sendPattern: `windows of ${WINDOW} sends issued at once, each window awaited (every send settled) before the next`,
      sendSettlesOn: {
        intersession: 'durably queued in IndexedDB (sender side)',
        mqtt: "the broker's PUBACK",
        socketio: "the server's ack, sent after it forwarded the message",
      },
      paced: { messages: PACED, gapMs: GAP_MS },
      cleanSessionsPerSystem: 2,
      cutMs: CUT_MS,
      systems: labels,
      relayFramesPerSecondLimit: RELAY_FPS,
      figures: figures(clean, fault, labels),
      clean,
      fault,
    }
    report(result.figures, clean, fault, labels, result.machine)
    writeResult('peers', result)
  })
}

function report(
  rows: readonly Figure[],
  clean: Record<SystemName, { loaded: Run; paced: Run }>,
  fault: Record<SystemName, FaultRun>,
  labels: Record<SystemName, string>,
  machineName: string,
): void {
  const lines = [`bench:peers  ${N} messages of 64 B, A -> B, ${machineName}`]
  for (const system of SYSTEMS) {
    const { loaded, paced } = clean[system]
    lines.push(
      `  ${labels[system]}:`,
      `    ${loaded.msgsPerSec} msgs/s (runs ${loaded.msgsPerSecRuns.join(', ')}; received ${loaded.received}/${loaded.expected}, ${loaded.framesPerMessage} frames/msg), p50 ${loaded.p50Ms} ms, p99 ${loaded.p99Ms} ms; paced p50 ${paced.p50Ms} ms, p99 ${paced.p99Ms} ms`,
    )
  }
  for (const f of rows.filter((row) => row.ratio !== null)) lines.push(`  ${f.figure}: ${f.value} ${f.unit}  vs ${f.againstValue} ${f.unit} (${f.against})  ratio ${f.ratio}`)
  lines.push(`  fault (receiver's connections reset and refused for ${CUT_MS} ms once it had ${Math.ceil(N / 2)}):`)
  for (const system of SYSTEMS) {
    const run = fault[system]
    const cut =
      run.cut === null
        ? 'no cut happened'
        : `cut with ${run.cut.receivedBeforeCut} received (reset ${run.cut.resetSockets} sockets, refused ${run.cut.refused} connects)`
    lines.push(`    ${labels[system]}: lost ${run.lost}, duplicated ${run.duplicated}; received ${run.received}/${N} in ${run.ms} ms, longest gap ${run.longestGapMs} ms; ${cut}`)
  }
  if (fault.intersession.lost !== 0 || fault.intersession.duplicated !== 0) lines.push('  BUG: intersession lost or duplicated messages in the fault run')
  console.log(lines.join('\n'))
}

runBench('peers', main)
