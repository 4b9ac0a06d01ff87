/// <reference types="node" />
/**
 * Chaos soak: `npm run soak -- [--minutes N] [--seed S] [--drain-seconds D] [--verbose]`
 * (`npm run test:soak` is the CI run: half a minute of chaos).
 *
 * Four browser peers (system Chromium, a profile on disk) talk through a real
 * relay process behind a fault-injecting proxy while pages reload, workers
 * die, leader tabs freeze, peers go offline and the relay is SIGKILLed. Then
 * the faults stop, everything drains, and the ledger is checked by message
 * id (test/soak/check.ts): every resolved send handed over exactly once, in
 * order, repeats only as the documented replay after a crash, no rejected send
 * delivered, few sends of unknown outcome, every outbox empty. Exits 1 on any
 * violation, printing the seed and the command to reproduce.
 */
import { randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { Cdp } from '../helpers/cdp.js'
import { launchChromium, type ChromiumProcess } from '../../src/playwright/chromium-process.js'
import { Chaos, FAULT_KINDS } from './chaos.js'
import { check, PROCESS_BATCH, UNKNOWN_LIMIT, type Verdict } from './check.js'
import { FaultProxy } from './fault-proxy.js'
import { Ledger } from './ledger.js'
import { Peers, type PeerSpec } from './peers.js'
import { RelayControl } from './relay-control.js'
import { Rng } from './rng.js'
import { serveStatic } from '../helpers/static-server.js'
import { Traffic } from './traffic.js'

const DIST = fileURLToPath(new URL('./.dist', import.meta.url))

const PEERS: readonly PeerSpec[] = [
  { id: 'p0', tabs: 2, ownWorker: false, subscriber: 0 },
  // Its handler runs in a follower tab most of the time: handovers cross tabs.
  { id: 'p1', tabs: 2, ownWorker: false, subscriber: 1 },
  { id: 'p2', tabs: 1, ownWorker: true, subscriber: 0 },
  { id: 'p3', tabs: 1, ownWorker: true, subscriber: 0 },
]
const ENGINES = { heartbeatMs: 500, staleAfterMs: 2000, processBatch: PROCESS_BATCH }
// Per stream (12 of them): a send every 250..750 ms.
const RATE = { minMs: 250, maxMs: 750 }
const PACE = { minMs: 300, maxMs: 1500 }

interface Args {
  readonly minutes: number
  readonly seed: number
  readonly drainSeconds: number
  /** Print the whole diagnostic log at the end. */
  readonly verbose: boolean
}

function parse(): Args {
  const { values } = parseArgs({
    options: { minutes: { type: 'string' }, seed: { type: 'string' }, 'drain-seconds': { type: 'string' }, verbose: { type: 'boolean' } },
    strict: true,
    allowPositionals: false,
  })
  const minutes = Number(values.minutes ?? 3)
  const seed = values.seed === undefined ? randomInt(0, 2 ** 31) : Number(values.seed)
  const drainSeconds = Number(values['drain-seconds'] ?? 60)
  if (!(minutes > 0 && minutes <= 24 * 60)) throw new RangeError(`--minutes must be in (0, 1440], got ${values.minutes}`)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`--seed must be a non-negative integer, got ${values.seed}`)
  if (!(drainSeconds > 0 && drainSeconds <= 3600)) throw new RangeError(`--drain-seconds must be in (0, 3600], got ${values['drain-seconds']}`)
  return { minutes, seed, drainSeconds, verbose: values.verbose === true }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function main(): Promise<number> {
  const args = parse()
  const reproduce = `npm run soak -- --minutes ${args.minutes} --seed ${args.seed}`
  console.log(`soak: seed ${args.seed}, ${args.minutes} min of chaos (reproduce: ${reproduce})`)
  if (!existsSync(`${DIST}/index.html`)) throw new Error(`${DIST} is missing: npm run soak builds it`)
  const started = Date.now()
  const rng = new Rng(args.seed)
  const cleanup: Array<() => Promise<void>> = []
  let peers: Peers | undefined
  try {
    const server = await serveStatic(DIST)
    cleanup.push(() => server.stop())
    const relay = await RelayControl.start()
    cleanup.push(() => relay.stop())
    const proxy = await FaultProxy.start(rng.fork(), relay.port!)
    cleanup.push(() => proxy.close())
    relay.attach(proxy)
    const chromium: ChromiumProcess = await launchChromium(chromiumPath, chromiumArgs)
    cleanup.push(() => chromium.kill())
    const cdp = await Cdp.connect(chromium.wsEndpoint)
    cleanup.push(async () => cdp.close())

    const ledger = new Ledger()
    peers = await Peers.open(cdp, `${server.url}/index.html`, `ws://127.0.0.1:${proxy.port}`, PEERS, ledger, ENGINES)
    const traffic = new Traffic(peers, ledger, rng.fork(), RATE)
    const chaos = new Chaos(rng.fork(), proxy, peers, relay, PACE)
    console.log(`soak: ${PEERS.length} peers up after ${((Date.now() - started) / 1000).toFixed(1)} s; chaos starts`)
    traffic.start()
    chaos.start()
    await sleep(args.minutes * 60_000)

    await chaos.stop()
    await traffic.stop()
    proxy.calm()
    await relay.ensureUp()
    await peers.reviveAll()
    console.log(`soak: faults stopped after ${((Date.now() - started) / 1000).toFixed(1)} s; draining (at most ${args.drainSeconds} s)`)
    const drained = await drain(peers, ledger, args.drainSeconds * 1000)
    await sleep(2000) // late duplicates would show up now
    await peers.recoverReports()
    const outboxes = await Promise.all(peers.list.map(async (p) => [p.spec.id, await peers!.outboxRows(p).catch(() => Number.NaN)] as const))
    const verdict = check(ledger)
    const outboxesEmpty = outboxes.every(([, rows]) => rows === 0)
    report(verdict, chaos.counts, outboxes, drained, relay.restarts, Date.now() - started)
    console.log(`  reports known only from localStorage (lost in a navigation): ${peers.recovered}`)
    for (const line of verdict.replays) console.log(`  ${line}`)
    if (args.verbose) for (const line of peers.log()) console.log(`  ${line}`)
    const ok = verdict.ok && drained && outboxesEmpty
    if (!ok) {
      for (const line of verdict.details) console.log(`  ${line}`)
      console.log('soak: last log lines:')
      for (const line of peers.log().slice(-60)) console.log(`  ${line}`)
      console.log(`soak: FAILED with seed ${args.seed}; reproduce: ${reproduce}`)
      return 1
    }
    console.log(`soak: OK (seed ${args.seed})`)
    return 0
  } catch (error) {
    console.log(`soak: ERROR ${String((error as Error).stack ?? error)}`)
    for (const line of peers?.log().slice(-60) ?? []) console.log(`  ${line}`)
    console.log(`soak: FAILED with seed ${args.seed}; reproduce: ${reproduce}`)
    return 1
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => {})
  }
}

/** Waits until every resolved send was handed over and every outbox is empty; false at the deadline. */
async function drain(peers: Peers, ledger: Ledger, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (ledger.undelivered().length > 0) await peers.recoverReports()
    const missing = ledger.undelivered().length
    const outbound = missing === 0 ? await Promise.all(peers.list.map((p) => peers.pendingOutbound(p))) : []
    if (missing === 0 && outbound.every((n) => n === 0)) return true
    if (Date.now() >= deadline) {
      peers.note(`drain timed out: ${missing} undelivered, outbound ${JSON.stringify(outbound)}`)
      for (const line of await peers.describe()) peers.note(line)
      return false
    }
    await sleep(500)
  }
}

function report(v: Verdict, faults: Readonly<Record<string, number>>, outboxes: ReadonlyArray<readonly [string, number]>, drained: boolean, restarts: number, ms: number): void {
  const total = FAULT_KINDS.reduce((sum, k) => sum + (faults[k] ?? 0), 0)
  console.log(
    [
      `soak: summary after ${(ms / 1000).toFixed(1)} s`,
      `  sends:                           ${v.attempted}`,
      `  sent (send() resolved):          ${v.sent}`,
      `  rejected (send() rejected):      ${v.rejected}`,
      `  unknown (page died first):       ${v.unknown} (at most ${v.unknownLimit}: ${UNKNOWN_LIMIT * 100}% of sends; each may arrive at most once)`,
      `  faults injected:                 ${total} (${FAULT_KINDS.map((k) => `${k} ${faults[k] ?? 0}`).join(', ')}; relay restarts ${restarts})`,
      `  crashes of receiving contexts:   ${v.crashes} (reloads, worker kills, freezes, revivals)`,
      `  lost:                            ${v.lost} (must be 0)`,
      `  duplicated:                      ${v.duplicated} (must be 0)`,
      `  replayed after a crash:          ${v.replayed} (bound: at most ${PROCESS_BATCH} per crash per sender stream, of an unmarked handover)`,
      `  reordered:                       ${v.reordered} (must be 0)`,
      `  phantom:                         ${v.phantom} (must be 0)`,
      `  rejected sends delivered:        ${v.rejectedDelivered} (must be 0)`,
      `  drained:                         ${drained ? 'yes' : 'NO'}`,
      `  outboxes empty:                  ${outboxes.every(([, n]) => n === 0) ? 'yes' : 'NO'} (${outboxes.map(([id, n]) => `${id} ${n}`).join(', ')})`,
    ].join('\n'),
  )
}

process.exit(await main())
