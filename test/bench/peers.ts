/**
 * bench:peers — intersession against the systems people would pick instead,
 * in the same run, the same browser (system Chromium, headless), the same
 * two pages, the same messages and the same send patterns, with the floors
 * measured in that run:
 *
 * - intersession: `connect()` on both pages (engine in a worker, IndexedDB on
 *   disk: two persistent profiles), through a real relay process
 *   (test/helpers/relay-process.ts, `--dev`, no mailbox, rate limit lifted as
 *   in bench:net). Persists: the sender's outbox and the receiver's inbox and
 *   receipts in IndexedDB (strict durability); the relay nothing. End-to-end
 *   encryption on (the default).
 * - intersession-plain: the same with `encryption: false` on both ends, run
 *   in the clean rounds only, for the cost of encryption (issue 16: on
 *   against off in the same run, >= 0.9): on / off for the rates (pipelined,
 *   awaited), off / on for the times (paced p50 and p99 at each rate, time
 *   to durable), over every round and per round.
 * - MQTT.js at QoS 1 over WebSocket to an aedes broker, persistent sessions
 *   (`clean: false`, fixed client ids). Persists: nothing in the browser;
 *   the broker keeps sessions and QoS 1 messages in memory.
 * - Socket.IO (WebSocket transport) with connection state recovery, every
 *   message `emitWithAck`ed to the server, which forwards it to the receiver.
 *   Persists: nothing in the browser; the server keeps recent packets in
 *   memory for recovery (2 min).
 * - the floors: `raw`, a plain WebSocket hop through the same relay (binary
 *   envelopes, no acks, nothing persisted), and `floor`, strict single-put
 *   IndexedDB transactions one after the other in a dedicated worker of
 *   page A (test/bench/peers-app/floor-worker.ts).
 * - `durable`, the durable pipeline floor (test/bench/peers-app/durable-worker.ts):
 *   the least any system that keeps each message durably at both ends must
 *   do, built by hand. A worker per page, strict IndexedDB group commits at
 *   each end, the raw envelopes through the same relay, one WebSocket message
 *   per sender commit; no acks, nothing deleted, no ordering state, no
 *   encryption. It runs every clean-round figure as a system does, so that
 *   intersession's figures have a like-with-like floor from the same run
 *   (intersession / durable for rates, durable / intersession for times),
 *   and its pipelined rate against the peers' says how far any design that
 *   persists both ends can get on this machine. Its own awaited, paced p50
 *   and time-to-durable figures are also set against the yardsticks of
 *   issue 13's goals (with the paired commit rate for awaited sends): where
 *   this floor misses a goal's bound, no such design meets it here.
 *
 * Every page is driven the same way: two Chromium processes on persistent
 * on-disk profiles (the Playwright kit's launcher, src/playwright/chromium-process.ts), each page over plain
 * CDP (test/helpers/cdp.ts, only `Runtime.evaluate` and `Page.reload`: no
 * network, console or frame reporting, so no system pays per WebSocket frame
 * for being watched). Each server runs in its own process on a loopback port.
 * Page A sends, page B receives; B reaches its server through a loopback TCP
 * proxy (test/bench/peers-proxy.ts) so that the clean and fault runs share a
 * path. Every message is a 64-character ASCII string carrying its index and
 * send time. Latency = send call on A -> B's handler, on one clock (each
 * page's offset to this process's clock is estimated from the fastest of 30
 * round trips, the difference B - A subtracted: `skewMs`).
 *
 * Runs, per system, in one session (fresh identities), systems in the order
 * intersession, intersession-plain, MQTT, Socket.IO (with `--rounds 2`, then
 * again reversed; `--systems intersession,intersession-plain` runs only those
 * named):
 * 1. pipelined: MESSAGES in windows of WINDOW sends issued at once, each
 *    window awaited; msgs/s = messages / (first send -> last arrival).
 * 2. paced at each of RATES msgs/s for PACED_SECONDS (test/bench/peers-app/pacer.ts):
 *    delivered rate (test/bench/peers-stats.ts `deliveredRate`) over the
 *    offered one, p50 and p99; p50 against the floor of that rate (the
 *    strict single-put commit p50 + the raw hop p50 at the same rate).
 * 3. awaited: AWAITED sends, each awaited before the next; msgs/s against the
 *    rate of sequential strict single-put transactions in a worker, and
 *    (intersession) against that rate in page A while page B runs it too:
 *    the receiver commits each message, on the same disk and cores. Last in
 *    an intersession session, B closes and A awaits AWAITED sends more: the
 *    sender's commits alone, against the single floor.
 * 4. time to durable: paced at LOAD_RATE msgs/s for LOAD_SECONDS; the p99 of
 *    send call -> resolve (intersession: durably queued in IndexedDB; MQTT:
 *    PUBACK; Socket.IO: the server's ack) against the strict single-put p50.
 * 5. reload (own session): paced at LOAD_RATE; after RELOAD_AFTER_MS the page
 *    stops sending, says how many sends have not resolved, and is reloaded
 *    over CDP at once: those are the sends an app could not know as kept.
 * 6. fault (own session, as before): the receiver's connections are reset and
 *    refused for CUT_MS once it has half of MESSAGES; lost and duplicated.
 *
 *   npx tsx test/bench/peers.ts [--systems intersession,intersession-plain,mqtt,socketio] [--messages 2000] [--window 500] [--paced-seconds 2] [--awaited 200] [--load-rate 2000] [--load-seconds 1.5] [--reload-after-ms 1000] [--floor 300] [--rounds 1] [--cut-ms 2000] [--no-fault]
 *
 * `npm run bench:peers` builds dist/ and the page first. Writes
 * test/bench/results/peers.json. Exits non-zero only when it could not run;
 * the numbers are reported, not judged (a loss or duplicate of
 * intersession's is printed as a bug).
 */
import { execSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { Cdp } from '../helpers/cdp.js'
import { CdpTab } from '../helpers/cdp-tab.js'
import { launchChromium, type ChromiumProcess } from '../../src/playwright/chromium-process.js'
import { startRelayProcess } from '../helpers/relay-process.js'
import { serveStatic } from '../helpers/static-server.js'
import type { SendReport, TimedSendReport } from './peers-app/main.js'
import type { SystemName } from './peers-app/peer.js'
import type { Tally } from './peers-app/receiver.js'
import { intArg, machine, makeProfile, removeProfile, runBench, writeResult } from './browser-harness.js'
import { clockOffset } from './clock-offset.js'
import { figure, plainFigure, type Figure } from './figures.js'
import { startPeerServer, startProxy, type CutReport, type Proxy } from './peers-processes.js'
import { ascending, costRatio, deliveredRate, median, ms2, percentile } from './peers-stats.js'

/** Where `npm run bench:peers` builds the page. */
const PAGE_DIR = fileURLToPath(new URL('./peers-app/.dist', import.meta.url))
const numArg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name)
  const value = at < 0 ? fallback : Number(process.argv[at + 1])
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number`)
  return value
}
const N = intArg('--messages', 2000)
const WINDOW = intArg('--window', 500)
const RATES = [100, 200, 1000] as const
const PACED_SECONDS = numArg('--paced-seconds', 2)
const AWAITED = intArg('--awaited', 200)
const LOAD_RATE = intArg('--load-rate', 2000)
const LOAD_SECONDS = numArg('--load-seconds', 1.5)
const RELOAD_AFTER_MS = intArg('--reload-after-ms', 1000)
const FLOOR_N = intArg('--floor', 300)
const ROUNDS = intArg('--rounds', 1)
const CUT_MS = intArg('--cut-ms', 2000)
const FAULT = !process.argv.includes('--no-fault')
const WARMUP = 200
const RELAY_FPS = 1_000_000
/** Goal of issue 13 for p99 at every paced rate, ms. */
const P99_GOAL_MS = 50
/** Bounds of waiting for a run's arrivals. */
const WAIT_MS = 120_000
const QUIET_MS = 10_000
const SETTLE_MS = 2000
/** Goal of issue 16: intersession with encryption on against off, in the same run. */
const COST_GOAL = 0.9
/** Every system of the clean rounds, in round order. */
const ALL_SYSTEMS = ['intersession', 'intersession-plain', 'durable', 'mqtt', 'socketio'] as const
type Clean = (typeof ALL_SYSTEMS)[number]
/**
 * The systems compared with each other (and reloaded, and cut); `intersession-plain` and `durable` are measured against
 * `intersession` only (`durable` against the peers too).
 */
type Compared = Exclude<Clean, 'intersession-plain' | 'durable'>

/** The systems named by `--systems a,b` (all when absent), in round order. */
function systemsArg(): Clean[] {
  const at = process.argv.indexOf('--systems')
  if (at < 0) return [...ALL_SYSTEMS]
  const named = (process.argv[at + 1] ?? '').split(',')
  if (!named.every((name) => (ALL_SYSTEMS as readonly string[]).includes(name))) throw new RangeError(`--systems takes a comma-separated list of ${ALL_SYSTEMS.join(', ')}`)
  return ALL_SYSTEMS.filter((system) => named.includes(system))
}
const SYSTEMS = systemsArg()
const COMPARED = SYSTEMS.filter((system): system is Compared => system !== 'intersession-plain' && system !== 'durable')

/** Where each system's ends connect: the sender straight to its server, the receiver through its proxy. */
interface Endpoints {
  readonly sender: string
  readonly receiver: string
  readonly proxy: Proxy
}

/** The two pages (one per Chromium process) and what they need to run a system. */
interface Bench {
  readonly a: CdpTab
  readonly b: CdpTab
  readonly endpoints: Partial<Record<SystemName, Endpoints>>
  /** A fresh phase number per run, so that no run counts another's leftovers. */
  nextPhase: number
}

/** Calls `window.peers.<method>(...args)` in `tab` (arguments as JSON) and returns its value. */
function call<T>(tab: CdpTab, method: string, ...args: unknown[]): Promise<T> {
  return tab.evaluate<T>(`window.peers.${method}(${args.map((arg) => JSON.stringify(arg) ?? 'undefined').join(', ')})`, WAIT_MS + 30_000)
}

/** A loaded (pipelined) run: what A sent, what B got. */
interface Exchange {
  readonly sent: SendReport
  readonly tally: Tally
}

/** An exchange and the clock skew (B's clock minus A's) measured for its session. */
interface Measured {
  readonly exchange: Exchange
  readonly skewMs: number
}

/** A paced run: the sends' report and what B got. */
interface PacedMeasured {
  readonly sent: TimedSendReport
  readonly tally: Tally
  readonly skewMs: number
}

/** The outcome of one or more loaded runs, latencies corrected for clock skew. */
interface Run {
  readonly received: number
  readonly expected: number
  readonly duplicates: number
  /** First send call -> last first-arrival, ms, summed over the runs. */
  readonly ms: number
  readonly msgsPerSec: number
  readonly msgsPerSecRuns: number[]
  readonly p50Ms: number
  readonly p99Ms: number
  readonly longestGapMs: number
  readonly sendsFailed: number
  readonly skewMs: number[]
}

/** The outcome of paced runs at one rate. */
interface PacedRun {
  readonly offeredPerSec: number
  readonly received: number
  readonly expected: number
  /** Achieved rate of the pacer itself (sends called per s). */
  readonly sentPerSec: number
  /** Distinct arrivals per s over the schedule (test/bench/peers-stats.ts). */
  readonly deliveredPerSec: number
  readonly keepUpRatio: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Send call -> send resolved. */
  readonly resolveP50Ms: number
  readonly resolveP99Ms: number
  readonly unresolved: number
  readonly sendsFailed: number
}

/** Awaited sends taken together: how many, their rate over the time spent sending, and their resolve p50. */
interface AwaitedSends {
  readonly sends: number
  readonly msgsPerSec: number
  readonly resolveP50Ms: number
}

interface AwaitedRun extends AwaitedSends {
  readonly received: number
}

interface FaultRun extends Run {
  readonly lost: number
  readonly duplicated: number
  readonly cut: (Omit<CutReport, 'at'> & { receivedBeforeCut: number }) | null
}

interface ReloadRun {
  /** Sends called before the page stopped sending and was reloaded. */
  readonly called: number
  /** Of them, sends not resolved at that moment. */
  readonly unresolved: number
  readonly failed: number
  /** The offered rate and how long the page sent before the reload. */
  readonly offeredPerSec: number
  readonly afterMs: number
}

/** What a system's clean sessions measured. */
interface CleanResults {
  loaded: Run
  paced: Record<string, PacedRun>
  awaited: AwaitedRun
  /** intersession only: awaited sends while the receiver is away, so only the sender's own commits are on the machine. */
  awaitedAlone?: AwaitedSends
  load: PacedRun
}

interface SystemResults extends CleanResults {
  reload: ReloadRun
  fault?: FaultRun
}

/** One clean session's runs. */
interface CleanSession {
  readonly loaded: Measured
  readonly paced: Record<string, PacedMeasured>
  readonly awaited: PacedMeasured
  readonly load: PacedMeasured
  readonly awaitedAlone?: TimedSendReport
}

/** One figure of intersession with encryption on against off; `ratio` is {@link costRatio}'s (goal {@link COST_GOAL}). */
interface CostRow {
  readonly what: string
  readonly unit: string
  readonly better: 'higher' | 'lower'
  readonly on: number
  readonly off: number
  readonly ratio: number
  /** The ratio of each round alone (the systems' sessions paired in round order), and their median. */
  readonly rounds: number[]
  readonly roundsMedian: number
}

/** Clock offsets measured before a session's runs: page B's to this process's, and B's minus A's. */
interface Clocks {
  readonly offsetB: number
  readonly skewMs: number
}

const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0)

/** The page's clock minus this process's, from the fastest of 30 round trips. */
const pageOffset = async (tab: CdpTab): Promise<number> => (await clockOffset(() => call<number>(tab, 'now'), 30)).offset

function via(url: string, port: number): string {
  const proxied = new URL(url)
  proxied.port = String(port)
  return proxied.toString()
}

function version(name: string): string {
  const file = new URL(name === 'intersession' ? '../../package.json' : `../../node_modules/${name}/package.json`, import.meta.url)
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

/** `count` messages sent A -> B in windows of `sendWindow`; what B got. With `cutUrl`, B pulls the proxy's cut at half. */
async function exchange(bench: Bench, count: number, sendWindow: number, cutUrl?: string): Promise<Exchange> {
  const phase = bench.nextPhase++
  await call(bench.b, 'expect', phase, count, cutUrl)
  const sent = await call<SendReport>(bench.a, 'send', phase, count, sendWindow, 0)
  const tally = await call<Tally>(bench.b, 'wait', WAIT_MS, QUIET_MS, cutUrl === undefined ? 0 : SETTLE_MS)
  return { sent, tally }
}

/** `count` messages paced at `rate` A -> B (or each awaited, `rate` 0); what B got. */
async function pacedExchange(bench: Bench, count: number, rate: number, skewMs: number): Promise<PacedMeasured> {
  const phase = bench.nextPhase++
  await call(bench.b, 'expect', phase, count)
  const sent = rate === 0 ? await call<TimedSendReport>(bench.a, 'awaited', phase, count) : await call<TimedSendReport>(bench.a, 'paced', phase, count, rate, WAIT_MS)
  const tally = await call<Tally>(bench.b, 'wait', WAIT_MS, QUIET_MS, 0)
  return { sent, tally, skewMs }
}

function combine(runs: readonly Measured[]): Run {
  const spans = runs.map(({ exchange: { sent, tally }, skewMs }) => tally.last - skewMs - sent.firstSendAt)
  const received = sum(runs.map((r) => r.exchange.tally.unique))
  const latencies = ascending(runs.flatMap(({ exchange, skewMs }) => exchange.tally.latencies.map((l) => l - skewMs)))
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
    sendsFailed: sum(runs.map((r) => r.exchange.sent.failed)),
    skewMs: runs.map((r) => ms2(r.skewMs)),
  }
}

/** Paced runs at one rate taken together: the delivered rate averaged over runs, percentiles over every message. */
function combinePaced(runs: readonly PacedMeasured[], rate: number): PacedRun {
  const latencies = ascending(runs.flatMap(({ tally, skewMs }) => tally.latencies.map((l) => l - skewMs)))
  const resolves = ascending(runs.flatMap(({ sent }) => sent.resolveMs))
  const p50 = percentile(latencies, 0.5)
  const delivered = sum(runs.map(({ tally }) => deliveredRate(tally.unique, tally.expected, rate, tally.first, tally.last))) / runs.length
  const sentPerSec = sum(runs.map(({ sent }) => ((sent.called - 1) / (sent.lastSendAt - sent.firstSendAt)) * 1000)) / runs.length
  return {
    offeredPerSec: rate,
    received: sum(runs.map((r) => r.tally.unique)),
    expected: sum(runs.map((r) => r.tally.expected)),
    sentPerSec: Math.round(sentPerSec),
    deliveredPerSec: ms2(delivered),
    keepUpRatio: Number((delivered / rate).toFixed(4)),
    p50Ms: ms2(p50),
    p99Ms: ms2(percentile(latencies, 0.99)),
    resolveP50Ms: ms2(percentile(resolves, 0.5)),
    resolveP99Ms: ms2(percentile(resolves, 0.99)),
    unresolved: sum(runs.map((r) => r.sent.unresolved)),
    sendsFailed: sum(runs.map((r) => r.sent.failed)),
  }
}

function endpoints(bench: Bench, system: SystemName): Endpoints {
  const found = bench.endpoints[system]
  if (found === undefined) throw new Error(`${system} has no server in this run`)
  return found
}

/** Opens `system` on both pages as fresh identities (B first), warms it up, runs `body`, and closes both ends. */
async function session<T>(bench: Bench, system: SystemName, tag: string, body: (clocks: Clocks) => Promise<T>): Promise<T> {
  const nonce = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
  const [idA, idB] = [`peers-${tag}-a-${nonce}`, `peers-${tag}-b-${nonce}`]
  const { sender, receiver } = endpoints(bench, system)
  try {
    await call(bench.b, 'open', system, { url: receiver, id: idB, other: idA, role: 'receiver' })
    await call(bench.a, 'open', system, { url: sender, id: idA, other: idB, role: 'sender' })
    const warm = await exchange(bench, WARMUP, WARMUP)
    if (warm.tally.unique !== WARMUP) throw new Error(`${system} warm-up: B received ${warm.tally.unique} of ${WARMUP}`)
    const offsetB = await pageOffset(bench.b)
    return await body({ offsetB, skewMs: offsetB - (await pageOffset(bench.a)) })
  } finally {
    // A close that fails is reported, not thrown: the session's figures stand (the durable floor's close checks its rows).
    await call(bench.a, 'close').catch((error: unknown) => console.error(`  ${system} page A close: ${String(error)}`))
    await call(bench.b, 'close').catch((error: unknown) => console.error(`  ${system} page B close: ${String(error)}`))
  }
}

const pacedCount = (rate: number, seconds: number): number => Math.max(20, Math.round(rate * seconds))

/** The clean session of `system`: pipelined, paced at each rate, awaited, and under load. */
function cleanSession(bench: Bench, system: Clean): Promise<CleanSession> {
  return session(bench, system, 'clean', async ({ skewMs }) => {
    const loaded = { exchange: await exchange(bench, N, WINDOW), skewMs }
    const paced: Record<string, PacedMeasured> = {}
    for (const rate of RATES) paced[rate] = await pacedExchange(bench, pacedCount(rate, PACED_SECONDS), rate, skewMs)
    const awaited = await pacedExchange(bench, AWAITED, 0, skewMs)
    const load = await pacedExchange(bench, pacedCount(LOAD_RATE, LOAD_SECONDS), LOAD_RATE, skewMs)
    if (!system.startsWith('intersession')) return { loaded, paced, awaited, load }
    // Last, as it leaves messages queued for a receiver that is gone.
    await call(bench.b, 'close')
    const awaitedAlone = await call<TimedSendReport>(bench.a, 'awaited', bench.nextPhase++, AWAITED)
    return { loaded, paced, awaited, load, awaitedAlone }
  })
}

/** The raw hop through the relay, paced at each rate: the network half of the floor. */
function rawSession(bench: Bench): Promise<Record<string, PacedMeasured>> {
  return session(bench, 'raw', 'raw', async ({ skewMs }) => {
    const paced: Record<string, PacedMeasured> = {}
    for (const rate of RATES) paced[rate] = await pacedExchange(bench, pacedCount(rate, PACED_SECONDS), rate, skewMs)
    return paced
  })
}

/**
 * The sender paced at LOAD_RATE, stopped after RELOAD_AFTER_MS and reloaded
 * at once; how many of its sends had not resolved. Leaves page A reloaded
 * and ready (no peer open).
 */
async function reloadSession(bench: Bench, system: Compared): Promise<ReloadRun> {
  const nonce = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
  const [idA, idB] = [`peers-reload-a-${nonce}`, `peers-reload-b-${nonce}`]
  const { sender, receiver } = endpoints(bench, system)
  const count = Math.ceil((LOAD_RATE * RELOAD_AFTER_MS) / 1000) * 4
  try {
    await call(bench.b, 'open', system, { url: receiver, id: idB, other: idA, role: 'receiver' })
    await call(bench.a, 'open', system, { url: sender, id: idA, other: idB, role: 'sender' })
    const phase = bench.nextPhase++
    await call(bench.b, 'expect', phase, count)
    const sending = call(bench.a, 'paced', phase, count, LOAD_RATE, WAIT_MS).catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, RELOAD_AFTER_MS))
    // The reload goes out as soon as the snapshot's answer is in (one CDP round trip, ~1 ms, later): sent back to
    // back, Page.reload (handled by the browser process) could overtake the answer (handled by the page).
    const snap = await call<TimedSendReport>(bench.a, 'snapshot')
    await bench.a.send('Page.reload', { ignoreCache: false })
    await sending
    await bench.a.waitUntilReady(`document.title === 'ready' && typeof window.peers === 'object'`, 30_000)
    return { called: snap.called, unresolved: snap.unresolved, failed: snap.failed, offeredPerSec: LOAD_RATE, afterMs: RELOAD_AFTER_MS }
  } finally {
    await call(bench.b, 'close').catch(() => {})
  }
}

function faultSession(bench: Bench, system: Compared): Promise<FaultRun> {
  const { proxy } = endpoints(bench, system)
  return session(bench, system, 'fault', async ({ offsetB, skewMs }) => {
    const cutsBefore = proxy.cuts.length
    const exchanged = await exchange(bench, N, WINDOW, proxy.cutUrl(CUT_MS))
    await proxy.settled(CUT_MS + 10_000)
    const report = proxy.cuts[cutsBefore]
    let cut: FaultRun['cut'] = null
    if (report !== undefined) {
      const { at, ...rest } = report
      cut = { ...rest, receivedBeforeCut: await call<number>(bench.b, 'countBefore', at + offsetB) }
    }
    const { tally } = exchanged
    return { ...combine([{ exchange: exchanged, skewMs }]), lost: N - tally.unique, duplicated: tally.duplicates, cut }
  })
}

/** The floors measured in the run. */
interface Floors {
  /** Sequential strict single-put transactions in a worker: per-commit p50/p99 and their rate. */
  readonly commitP50Ms: number
  readonly commitP99Ms: number
  readonly commitsPerSec: number
  /**
   * The same in page A while page B runs it too (B runs half as many again,
   * so that it outlasts A's): the floor of a message kept durably at both
   * ends on this one machine, whose two commits share its disk and cores.
   */
  readonly pairedCommitsPerSec: number
  /** The raw WebSocket hop through the relay, paced at each rate. */
  readonly raw: Record<string, PacedRun>
  /** Commit p50 + raw hop p50, per rate: the durable floor of one message. */
  readonly durableP50Ms: Record<string, number>
}

function compared(name: string, value: number, unit: string, against: string, againstValue: number): Figure[] {
  return Number.isFinite(value) && Number.isFinite(againstValue) && againstValue !== 0 ? [figure(name, value, unit, against, againstValue)] : []
}

function figures(results: Partial<Record<Compared, SystemResults>>, floors: Floors, labels: Record<SystemName, string>): Figure[] {
  const ours = results.intersession
  const present = COMPARED.flatMap((system) => {
    const r = results[system]
    return r === undefined ? [] : [[system, r] as const]
  })
  const peers = present.filter(([system]) => system !== 'intersession')
  const out: Figure[] = []
  const load = `${N} x 64 B, windows of ${WINDOW} sends`
  for (const [peer, theirs] of peers) {
    if (ours !== undefined) out.push(...compared(`peers: intersession pipelined end-to-end throughput (${load})`, ours.loaded.msgsPerSec, 'msgs/s', labels[peer], theirs.loaded.msgsPerSec))
  }
  for (const rate of RATES) {
    const floor = floors.durableP50Ms[rate]!
    const floorName = `durable floor: strict single-put commit p50 ${floors.commitP50Ms} ms + raw WebSocket hop p50 ${floors.raw[rate]!.p50Ms} ms`
    for (const [system, r] of present) {
      const run = r.paced[rate]!
      const what = `peers: paced ${rate} msgs/s, ${labels[system]}`
      out.push(...compared(`${what}: delivered rate`, run.deliveredPerSec, 'msgs/s', 'offered rate', rate))
      out.push(...compared(`${what}: latency p50, send call -> receiver handler`, run.p50Ms, 'ms', floorName, floor))
      out.push(...compared(`${what}: latency p99`, run.p99Ms, 'ms', 'goal (issue 13)', P99_GOAL_MS))
    }
    for (const [peer, theirs] of peers) {
      if (ours !== undefined) out.push(...compared(`peers: paced ${rate} msgs/s, intersession latency p50`, ours.paced[rate]!.p50Ms, 'ms', labels[peer], theirs.paced[rate]!.p50Ms))
    }
  }
  const commitFloor = `sequential strict single-put IndexedDB transactions in a worker`
  for (const [system, r] of present) {
    out.push(...compared(`peers: awaited sends (each send() awaited before the next), ${labels[system]}`, r.awaited.msgsPerSec, 'msgs/s', commitFloor, floors.commitsPerSec))
  }
  const pairedFloor = `${commitFloor}, in both pages at once (one commit per message at each end)`
  for (const [system, r] of present.filter(([system]) => system === 'intersession')) {
    out.push(...compared(`peers: awaited sends, receiver committing each message too, ${labels[system]}`, r.awaited.msgsPerSec, 'msgs/s', pairedFloor, floors.pairedCommitsPerSec))
    if (r.awaitedAlone !== undefined) {
      out.push(...compared(`peers: awaited sends, receiver away (only the sender's commits), ${labels[system]}`, r.awaitedAlone.msgsPerSec, 'msgs/s', commitFloor, floors.commitsPerSec))
    }
  }
  for (const [system, { load: run }] of present) {
    out.push(...compared(`peers: time to durable, send() resolve p99 at ${LOAD_RATE} msgs/s offered, ${labels[system]}`, run.resolveP99Ms, 'ms', 'strict single-put commit p50', floors.commitP50Ms))
  }
  for (const [system, { reload }] of present) {
    out.push(plainFigure(`peers: sends not resolved when the sender page reloaded after ${RELOAD_AFTER_MS} ms at ${LOAD_RATE} msgs/s (of ${reload.called}), ${labels[system]}`, reload.unresolved, 'msgs'))
  }
  const outage = `${N} x 64 B, receiver's connections reset and refused for ${CUT_MS / 1000} s at half`
  for (const [system, { fault }] of present) {
    if (fault === undefined) continue
    out.push(plainFigure(`peers: ${labels[system]}: messages lost (${outage})`, fault.lost, 'msgs'))
    out.push(plainFigure(`peers: ${labels[system]}: messages duplicated (${outage})`, fault.duplicated, 'msgs'))
  }
  return out
}

/**
 * intersession against the durable pipeline floor, figure by figure (rates: intersession / floor; times: the same
 * division, so lower is better), and the floor's pipelined rate against each peer's: how far any design that keeps
 * each message durably at both ends gets on this machine.
 */
function durableFloorFigures(ours: CleanResults | undefined, floor: CleanResults, peers: Partial<Record<Compared, SystemResults>>, labels: Record<SystemName, string>): Figure[] {
  const out: Figure[] = []
  const name = 'the durable pipeline floor (both ends strict IndexedDB group commits, no acks)'
  const load = `${N} x 64 B, windows of ${WINDOW} sends`
  for (const peer of ['mqtt', 'socketio'] as const) {
    const theirs = peers[peer]
    if (theirs !== undefined) out.push(...compared(`peers: ${name}, pipelined end-to-end throughput (${load})`, floor.loaded.msgsPerSec, 'msgs/s', labels[peer], theirs.loaded.msgsPerSec))
  }
  if (ours === undefined) return out
  out.push(...compared(`peers: intersession pipelined end-to-end throughput (${load})`, ours.loaded.msgsPerSec, 'msgs/s', name, floor.loaded.msgsPerSec))
  for (const rate of RATES) {
    out.push(...compared(`peers: paced ${rate} msgs/s, intersession latency p50`, ours.paced[rate]!.p50Ms, 'ms', name, floor.paced[rate]!.p50Ms))
    out.push(...compared(`peers: paced ${rate} msgs/s, intersession latency p99`, ours.paced[rate]!.p99Ms, 'ms', name, floor.paced[rate]!.p99Ms))
  }
  out.push(...compared('peers: awaited sends (each send() awaited before the next), intersession', ours.awaited.msgsPerSec, 'msgs/s', name, floor.awaited.msgsPerSec))
  out.push(...compared(`peers: time to durable, send() resolve p99 at ${LOAD_RATE} msgs/s offered, intersession`, ours.load.resolveP99Ms, 'ms', name, floor.load.resolveP99Ms))
  return out
}

/**
 * The durable pipeline floor (and, for awaited sends, the paired commits)
 * against the yardstick of each of issue 13's latency and awaited goals, as
 * intersession is judged: where such a floor misses a goal's bound, no design
 * that keeps each message durably at both ends meets it on this machine.
 * Goals: awaited >= 0.8 of the single-put rate; paced p50 <= 2x (commit p50 +
 * raw hop p50); time to durable p99 <= 2x the commit p50.
 */
function goalFloorFigures(floor: CleanResults, floors: Floors): Figure[] {
  const name = 'the durable pipeline floor (both ends strict IndexedDB group commits, no acks)'
  const commits = 'sequential strict single-put IndexedDB transactions in a worker'
  const out: Figure[] = [
    ...compared(`peers: ${name}, awaited sends (goal for intersession >= 0.8)`, floor.awaited.msgsPerSec, 'msgs/s', commits, floors.commitsPerSec),
    ...compared(`peers: ${commits}, in both pages at once (goal for awaited sends >= 0.8)`, floors.pairedCommitsPerSec, 'commits/s', `${commits}, in one page`, floors.commitsPerSec),
  ]
  for (const rate of RATES) {
    const against = `strict single-put commit p50 ${floors.commitP50Ms} ms + raw WebSocket hop p50 ${floors.raw[rate]!.p50Ms} ms`
    out.push(...compared(`peers: ${name}, paced ${rate} msgs/s latency p50 (goal for intersession <= 2)`, floor.paced[rate]!.p50Ms, 'ms', against, floors.durableP50Ms[rate]!))
  }
  out.push(...compared(`peers: ${name}, time to durable, send() resolve p99 at ${LOAD_RATE} msgs/s offered (goal for intersession <= 2)`, floor.load.resolveP99Ms, 'ms', 'strict single-put commit p50', floors.commitP50Ms))
  return out
}

/** A system's clean sessions taken together. */
function summarize(runs: readonly CleanSession[]): CleanResults {
  const awaited = runs.map((r) => r.awaited)
  const alone = runs.flatMap((r) => (r.awaitedAlone === undefined ? [] : [r.awaitedAlone]))
  return {
    loaded: combine(runs.map((r) => r.loaded)),
    paced: Object.fromEntries(RATES.map((rate) => [rate, combinePaced(runs.map((r) => r.paced[rate]!), rate)])),
    awaited: { ...awaitedSends(awaited.map((r) => r.sent)), received: sum(awaited.map((r) => r.tally.unique)) },
    load: combinePaced(runs.map((r) => r.load), LOAD_RATE),
    ...(alone.length > 0 && { awaitedAlone: awaitedSends(alone) }),
  }
}

function awaitedSends(sent: readonly TimedSendReport[]): AwaitedSends {
  return {
    sends: sum(sent.map((r) => r.called)),
    msgsPerSec: Math.round((sum(sent.map((r) => r.called)) / sum(sent.map((r) => r.lastSendAt - r.firstSendAt))) * 1000),
    resolveP50Ms: ms2(percentile(ascending(sent.flatMap((r) => r.resolveMs)), 0.5)),
  }
}

/** The figures the cost of encryption is judged on, as [what, unit, which way is better, the figure of a system]. */
const COST_FIGURES: ReadonlyArray<readonly [string, string, 'higher' | 'lower', (r: CleanResults) => number]> = [
  [`pipelined throughput (${N} x 64 B, windows of ${WINDOW} sends)`, 'msgs/s', 'higher', (r) => r.loaded.msgsPerSec],
  ['awaited sends', 'msgs/s', 'higher', (r) => r.awaited.msgsPerSec],
  ...RATES.flatMap((rate) => [
    [`paced ${rate} msgs/s: latency p50`, 'ms', 'lower', (r: CleanResults) => r.paced[rate]!.p50Ms] as const,
    [`paced ${rate} msgs/s: latency p99`, 'ms', 'lower', (r: CleanResults) => r.paced[rate]!.p99Ms] as const,
  ]),
  [`time to durable: send() resolve p99 at ${LOAD_RATE} msgs/s offered`, 'ms', 'lower', (r) => r.load.resolveP99Ms],
]

/** Encryption on (`intersession`'s sessions) against off (`intersession-plain`'s), over all rounds and per round. */
function encryptionCost(on: readonly CleanSession[], off: readonly CleanSession[]): CostRow[] {
  const [allOn, allOff] = [summarize(on), summarize(off)]
  const rounds = Array.from({ length: Math.min(on.length, off.length) }, (_, i) => [summarize([on[i]!]), summarize([off[i]!])] as const)
  return COST_FIGURES.map(([what, unit, better, pick]) => {
    const each = rounds.map(([x, y]) => costRatio(better, pick(x), pick(y)))
    return { what, unit, better, on: pick(allOn), off: pick(allOff), ratio: costRatio(better, pick(allOn), pick(allOff)), rounds: each, roundsMedian: ms2(median(each)) }
  })
}

/** The cost rows as figures whose ratio is the cost ratio: on / off for rates, off / on for times. */
function costFigures(rows: readonly CostRow[]): Figure[] {
  const goal = `goal (issue 16) >= ${COST_GOAL}`
  return rows.flatMap(({ what, unit, better, on, off }) =>
    better === 'higher'
      ? compared(`peers: cost of end-to-end encryption, ${what}, on / off (${goal})`, on, unit, 'intersession, encryption off', off)
      : compared(`peers: cost of end-to-end encryption, ${what}, off / on (${goal})`, off, unit, 'intersession, encryption on', on),
  )
}

/** The checkout's commit (with `+dirty` when src/ has uncommitted changes): what the built dist/ was measured from. */
function gitCommit(): string {
  try {
    const head = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim()
    return execSync('git status --porcelain -- src', { encoding: 'utf8' }).trim() === '' ? head : `${head}+dirty`
  } catch {
    return 'unknown'
  }
}

/** Page `url` in a new Chromium process on its own persistent profile, over plain CDP. */
async function openTab(name: string, profile: string, url: string, stops: Array<() => Promise<unknown>>): Promise<CdpTab> {
  const chromium: ChromiumProcess = await launchChromium(chromiumPath, chromiumArgs, { userDataDir: profile })
  stops.push(() => chromium.kill())
  const cdp = await Cdp.connect(chromium.wsEndpoint)
  stops.push(async () => cdp.close())
  const tab = await CdpTab.open(cdp, name, url)
  await tab.waitUntilReady(`document.title === 'ready' && typeof window.peers === 'object'`, 20_000)
  return tab
}

async function withBench<T>(body: (bench: Bench, browser: string) => Promise<T>): Promise<T> {
  const page = await serveStatic(PAGE_DIR)
  const stops: Array<() => Promise<unknown>> = [() => page.stop()]
  const profiles = [makeProfile('intersession-bench-peers-a-'), makeProfile('intersession-bench-peers-b-')]
  try {
    const relay = await startRelayProcess(['--dev'], { INTERSESSION_RELAY_FRAMES_PER_SECOND: String(RELAY_FPS) })
    stops.push(() => relay.stop())
    const servers: Partial<Record<SystemName, { url: string; port: number }>> = { intersession: relay, 'intersession-plain': relay, raw: relay, durable: relay }
    for (const system of ['mqtt', 'socketio'] as const) {
      if (!SYSTEMS.includes(system)) continue
      const server = await startPeerServer(system)
      stops.push(() => server.stop())
      servers[system] = server
    }
    const endpoints: Partial<Record<SystemName, Endpoints>> = {}
    for (const system of [...SYSTEMS, 'raw'] as const) {
      const { url, port } = servers[system]!
      const proxy = await startProxy(port)
      stops.push(() => proxy.stop())
      endpoints[system] = { sender: url, receiver: via(url, proxy.port), proxy }
    }
    const a = await openTab('page A', profiles[0]!, `${page.url}/index.html`, stops)
    const b = await openTab('page B', profiles[1]!, `${page.url}/index.html`, stops)
    const userAgent = await a.evaluate<string>('navigator.userAgent')
    return await body({ a, b, endpoints, nextPhase: 1 }, /(?:Headless)?Chrome\/[\d.]+/.exec(userAgent)?.[0] ?? 'Chromium')
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {})
    for (const profile of profiles) removeProfile(profile)
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(PAGE_DIR, 'index.html'))) {
    throw new Error('test/bench/peers-app/.dist is missing: run `npm run build && npx vite build --config test/bench/peers-app/vite.config.ts` (npm run bench:peers does)')
  }
  const labels: Record<SystemName, string> = {
    intersession: `intersession ${version('intersession')} (persists: IndexedDB both ends)`,
    'intersession-plain': `intersession ${version('intersession')}, end-to-end encryption off (persists: IndexedDB both ends)`,
    mqtt: `MQTT.js ${version('mqtt')} QoS 1 -> aedes ${version('aedes')} (persists: broker memory only)`,
    socketio: `Socket.IO ${version('socket.io')} emitWithAck (persists: server memory only)`,
    raw: 'raw WebSocket through the relay (persists: nothing)',
    durable: 'the durable pipeline floor: strict IndexedDB group commits at both ends, raw WebSocket through the relay, no acks (persists: IndexedDB both ends)',
  }
  await withBench(async (bench, browser) => {
    const floorRun = await call<{ durations: number[]; totalMs: number }>(bench.a, 'floor', FLOOR_N)
    const commits = ascending(floorRun.durations)
    console.log(`  floor: ${FLOOR_N} strict single-put commits, p50 ${ms2(percentile(commits, 0.5))} ms, ${Math.round((FLOOR_N / floorRun.totalMs) * 1000)}/s`)
    const [pairedRun] = await Promise.all([
      call<{ durations: number[]; totalMs: number }>(bench.a, 'floor', FLOOR_N),
      call<{ durations: number[]; totalMs: number }>(bench.b, 'floor', Math.round(FLOOR_N * 1.5)),
    ])
    console.log(`  paired floor: ${FLOOR_N} strict single-put commits in A while B commits too, ${Math.round((FLOOR_N / pairedRun.totalMs) * 1000)}/s`)
    const rawRuns = [await rawSession(bench)]
    const sessions = Object.fromEntries(SYSTEMS.map((system) => [system, [] as CleanSession[]])) as Partial<Record<Clean, CleanSession[]>>
    const order: Clean[] = []
    for (let round = 0; round < ROUNDS; round++) order.push(...(round % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse()))
    for (const system of order) {
      const measured = await cleanSession(bench, system)
      sessions[system]!.push(measured)
      console.log(`  ${system}: clean session, ${measured.loaded.exchange.tally.unique}/${N} pipelined, ${combine([measured.loaded]).msgsPerSec} msgs/s; paced p50 ${RATES.map((r) => ms2(combinePaced([measured.paced[r]!], r).p50Ms)).join(' / ')} ms`)
    }
    const results: Partial<Record<Compared, SystemResults>> = {}
    for (const system of COMPARED) {
      const reload = await reloadSession(bench, system)
      results[system] = { ...summarize(sessions[system]!), reload }
      console.log(`  ${system}: reload, ${reload.unresolved} of ${reload.called} sends not resolved`)
    }
    if (FAULT) {
      for (const system of COMPARED) {
        const fault = await faultSession(bench, system)
        results[system]!.fault = fault
        console.log(`  ${system}: fault session, lost ${fault.lost}, duplicated ${fault.duplicated}`)
      }
    }
    const [on, off] = [sessions.intersession, sessions['intersession-plain']]
    const cost = on === undefined || off === undefined ? undefined : encryptionCost(on, off)
    const plain = off === undefined ? undefined : summarize(off)
    const durable = sessions.durable === undefined ? undefined : summarize(sessions.durable)
    const raw = Object.fromEntries(RATES.map((rate) => [rate, combinePaced(rawRuns.map((r) => r[rate]!), rate)]))
    const commitP50Ms = ms2(percentile(commits, 0.5))
    const floors: Floors = {
      commitP50Ms,
      commitP99Ms: ms2(percentile(commits, 0.99)),
      commitsPerSec: Math.round((FLOOR_N / floorRun.totalMs) * 1000),
      pairedCommitsPerSec: Math.round((FLOOR_N / pairedRun.totalMs) * 1000),
      raw,
      durableP50Ms: Object.fromEntries(RATES.map((rate) => [rate, ms2(commitP50Ms + raw[rate]!.p50Ms)])),
    }
    const compares = [
      ...figures(results, floors, labels),
      ...(durable === undefined ? [] : [...durableFloorFigures(results.intersession, durable, results, labels), ...goalFloorFigures(durable, floors)]),
    ]
    const result = {
      benchmark: 'peers',
      date: new Date().toISOString(),
      machine: machine(browser),
      commit: gitCommit(),
      driver: 'plain CDP (Runtime.evaluate, Page.reload), no network or frame reporting; two Chromium processes on persistent profiles',
      bytes: 64,
      messages: N,
      window: WINDOW,
      rates: RATES,
      pacedSeconds: PACED_SECONDS,
      awaited: AWAITED,
      load: { rate: LOAD_RATE, seconds: LOAD_SECONDS, reloadAfterMs: RELOAD_AFTER_MS },
      rounds: ROUNDS,
      systemsRun: SYSTEMS,
      cutMs: FAULT ? CUT_MS : null,
      persists: {
        intersession: "sender's outbox and receiver's inbox/receipts in IndexedDB (strict durability); the relay nothing (no mailbox)",
        'intersession-plain': 'as intersession',
        mqtt: 'nothing in the browser; aedes keeps sessions and QoS 1 messages in memory',
        socketio: 'nothing in the browser; the server keeps recent packets in memory for connection state recovery (2 min)',
        raw: 'nothing',
        durable: 'each message in IndexedDB at both ends (strict durability, group commits); the relay nothing',
      },
      sendSettlesOn: {
        intersession: 'durably queued in IndexedDB (sender side)',
        'intersession-plain': 'as intersession',
        mqtt: "the broker's PUBACK",
        socketio: "the server's ack, sent after it forwarded the message",
        raw: 'handed to the socket',
        durable: "the sender's strict commit completed and the message handed to the socket",
      },
      systems: labels,
      relayFramesPerSecondLimit: RELAY_FPS,
      floors,
      figures: [...compares, ...(cost === undefined ? [] : costFigures(cost))],
      ...(cost !== undefined && { encryptionCost: { goal: COST_GOAL, ratio: 'on / off for rates, off / on for times', meets: cost.every((row) => row.ratio >= COST_GOAL), rows: cost } }),
      results: { ...results, ...(plain !== undefined && { 'intersession-plain': plain }), ...(durable !== undefined && { durable }) },
    }
    report(compares, result.results, floors, labels, result.machine, cost)
    writeResult('peers', result)
  })
}

function report(
  rows: readonly Figure[],
  results: Partial<Record<Clean, CleanResults & Partial<SystemResults>>>,
  floors: Floors,
  labels: Record<SystemName, string>,
  machineName: string,
  cost: readonly CostRow[] | undefined,
): void {
  const lines = [`bench:peers  64 B messages, A -> B, ${machineName}`]
  lines.push(`  floors: strict single-put commit p50 ${floors.commitP50Ms} ms, p99 ${floors.commitP99Ms} ms, ${floors.commitsPerSec} commits/s (${floors.pairedCommitsPerSec}/s while the other page commits too); raw hop p50 ${RATES.map((r) => `${floors.raw[r]!.p50Ms} ms @${r}`).join(', ')}`)
  for (const system of SYSTEMS) {
    const r = results[system]!
    lines.push(
      `  ${labels[system]}:`,
      `    pipelined ${r.loaded.msgsPerSec} msgs/s (received ${r.loaded.received}/${r.loaded.expected}), p50 ${r.loaded.p50Ms} ms, p99 ${r.loaded.p99Ms} ms`,
      ...RATES.map((rate) => {
        const p = r.paced[rate]!
        return `    paced ${rate}/s: sent ${p.sentPerSec}/s, delivered ${p.deliveredPerSec}/s (keep-up ${p.keepUpRatio}), p50 ${p.p50Ms} ms (${ms2(p.p50Ms / floors.durableP50Ms[rate]!)}x floor), p99 ${p.p99Ms} ms; received ${p.received}/${p.expected}`
      }),
      `    awaited ${r.awaited.msgsPerSec} msgs/s (${ms2(r.awaited.msgsPerSec / floors.commitsPerSec)} of the commit floor, ${ms2(r.awaited.msgsPerSec / floors.pairedCommitsPerSec)} of the paired one), resolve p50 ${r.awaited.resolveP50Ms} ms` +
        (r.awaitedAlone === undefined ? '' : `; receiver away ${r.awaitedAlone.msgsPerSec} msgs/s (${ms2(r.awaitedAlone.msgsPerSec / floors.commitsPerSec)} of the commit floor), resolve p50 ${r.awaitedAlone.resolveP50Ms} ms`),
      `    load ${LOAD_RATE}/s: send() resolve p50 ${r.load.resolveP50Ms} ms, p99 ${r.load.resolveP99Ms} ms (${ms2(r.load.resolveP99Ms / floors.commitP50Ms)}x commit p50); delivered ${r.load.deliveredPerSec}/s`,
    )
    if (r.reload !== undefined) lines.push(`    reload after ${RELOAD_AFTER_MS} ms at ${LOAD_RATE}/s: ${r.reload.unresolved} of ${r.reload.called} sends not resolved`)
    if (r.fault !== undefined) lines.push(`    fault: lost ${r.fault.lost}, duplicated ${r.fault.duplicated}, cut ${r.fault.cut === null ? 'did not happen' : `with ${r.fault.cut.receivedBeforeCut} received`}`)
  }
  for (const f of rows.filter((row) => row.ratio !== null)) lines.push(`  ${f.figure}: ${f.value} ${f.unit} vs ${f.againstValue} (${f.against}) ratio ${f.ratio}`)
  if (cost !== undefined) {
    lines.push(`  cost of end-to-end encryption (intersession on vs off, ratio on / off for rates, off / on for times, goal >= ${COST_GOAL}; per round in brackets, then their median):`)
    for (const row of cost) {
      const mark = row.ratio >= COST_GOAL ? '' : '  BELOW GOAL'
      lines.push(`    ${row.what}: on ${row.on} ${row.unit}, off ${row.off} ${row.unit}, ratio ${row.ratio} [${row.rounds.join(', ')}] median ${row.roundsMedian}${mark}`)
    }
  }
  const fault = results.intersession?.fault
  if (fault !== undefined && (fault.lost !== 0 || fault.duplicated !== 0)) lines.push('  BUG: intersession lost or duplicated messages in the fault run')
  console.log(lines.join('\n'))
}

runBench('peers', main)
