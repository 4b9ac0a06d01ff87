/**
 * bench:backlog — a backlog through the relay's mailbox, end to end: two
 * engines in Node (memory stores, end-to-end encryption on, as by default)
 * through `createRelay` in this process with a synced LevelDB mailbox in a
 * directory on the repository's disk (not /tmp, which may be a tmpfs), as
 * the CLI runs it.
 *
 * (a) Offline: bob is away; alice queues N messages of 64 bytes for him and
 *     the mailbox stores them (until all are `stored`); alice leaves; bob
 *     logs in and his handler gets all N. Rate = N / (first send -> last
 *     handed to bob), both phases. Bob's window is the default (256), so all
 *     but the first window come by redrain (docs/PROTOCOL.md, "Redrain"; the
 *     login's drain stops each sender at his window, "Login window").
 * (b) The drain alone, against the same drain into a receiver whose window
 *     takes the whole backlog at once (no redrain): what asking again costs.
 * (c) The ceiling: both online, the same N from alice's send to bob's
 *     handler, through the same relay (nothing stored).
 *
 * Runs alternate (a) (c), RUNS of each (b's ceiling is a third run per
 * round); medians are compared. Both relay and engines share this event loop,
 * in every mode alike.
 *
 *   npx tsx test/bench/backlog.ts --messages 5000 --runs 3
 *
 * Writes test/bench/results/backlog.json. Exits non-zero only when it could not run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { ILM, MemoryStore, type Limits } from '../../src/index.js'
import { LevelMailbox } from '../../src/relay/mailbox/level.js'
import { createRelay, type RelayHandle } from '../../src/relay/relay.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'
import { intArg } from './args.js'
import { figure } from './figures.js'

const N = intArg('--messages', 5000)
const RUNS = intArg('--runs', 3)
const TIMEOUT_MS = 120_000
const PAYLOAD = new Uint8Array(64).fill(7)
const SCRATCH = fileURLToPath(new URL('./.backlog-scratch/', import.meta.url))

interface Peer {
  readonly ilm: ILM
  readonly transport: WebSocketTransport
}

async function peer(relay: RelayHandle, id: string, store: MemoryStore, limits: Partial<Limits> = {}): Promise<Peer> {
  const transport = new WebSocketTransport({ localId: id, url: relay.url, token: `dev:${id}`, WebSocket })
  const ilm = await ILM.open({ store, transport, limits })
  await until(() => transport.state.status === 'online', `${id} online`)
  return { ilm, transport }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/** A relay with a fresh synced LevelDB mailbox; frames per second raised so the rate limit is not what is measured. */
async function relayWithMailbox(): Promise<{ relay: RelayHandle; close: () => Promise<void> }> {
  mkdirSync(SCRATCH, { recursive: true })
  const dir = mkdtempSync(`${SCRATCH}run-`)
  const relay = await createRelay({ dev: true, port: 0, logger: () => {}, mailbox: await LevelMailbox.open(dir), limits: { framesPerSecond: 10_000_000 } })
  return {
    relay,
    close: async () => {
      await relay.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Bob publishes his keys once (so alice can seal for him while he is away) and leaves. */
async function registered(relay: RelayHandle, store: MemoryStore): Promise<void> {
  const bob = await peer(relay, 'bob', store)
  await until(() => relay.stats().logins >= 1, 'bob logged in')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await bob.ilm.close()
}

/** Counts what bob's handler gets; resolves when it has `n`. */
function receiving(ilm: ILM, n: number): Promise<void> {
  let got = 0
  return new Promise((resolve) => {
    ilm.onMessage(() => {
      if (++got === n) resolve()
    })
  })
}

interface OfflineRun {
  readonly totalMs: number
  readonly drainMs: number
}

/** (a), or with `bobWindow` the whole backlog, (b)'s ceiling. */
async function offline(bobWindow?: number): Promise<OfflineRun> {
  const { relay, close } = await relayWithMailbox()
  try {
    const bobStore = new MemoryStore()
    await registered(relay, bobStore)
    const alice = await peer(relay, 'alice', new MemoryStore())
    let stored = 0
    alice.ilm.on('status', (s) => {
      if (s.status === 'stored') stored++
    })
    const start = performance.now()
    await Promise.all(Array.from({ length: N }, () => alice.ilm.send('bob', PAYLOAD)))
    await until(() => stored === N, `${N} stored`)
    await alice.ilm.close()
    const drainStart = performance.now()
    const bob = await peer(relay, 'bob', bobStore, bobWindow === undefined ? {} : { window: bobWindow })
    await Promise.race([receiving(bob.ilm, N), until(() => false, `bob has ${N}`)])
    const end = performance.now()
    await bob.ilm.close()
    return { totalMs: end - start, drainMs: end - drainStart }
  } finally {
    await close()
  }
}

/** (c): both online. */
async function live(): Promise<number> {
  const { relay, close } = await relayWithMailbox()
  try {
    const bobStore = new MemoryStore()
    await registered(relay, bobStore)
    const bob = await peer(relay, 'bob', bobStore)
    const alice = await peer(relay, 'alice', new MemoryStore())
    await until(() => alice.transport.state.status === 'online', 'alice online')
    const got = receiving(bob.ilm, N)
    const start = performance.now()
    await Promise.all(Array.from({ length: N }, () => alice.ilm.send('bob', PAYLOAD)))
    await Promise.race([got, until(() => false, `bob has ${N} live`)])
    const ms = performance.now() - start
    await alice.ilm.close()
    await bob.ilm.close()
    return ms
  } finally {
    await close()
  }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const offlineRuns: OfflineRun[] = []
const wholeRuns: OfflineRun[] = []
const liveRuns: number[] = []
for (let run = 0; run < RUNS; run++) {
  offlineRuns.push(await offline())
  liveRuns.push(await live())
  wholeRuns.push(await offline(Math.max(256, N)))
  console.log(
    `run ${run + 1}: offline ${offlineRuns.at(-1)!.totalMs.toFixed(0)} ms (drain ${offlineRuns.at(-1)!.drainMs.toFixed(0)}), live ${liveRuns.at(-1)!.toFixed(0)} ms, drain into a window of N ${wholeRuns.at(-1)!.drainMs.toFixed(0)} ms`,
  )
}
const rate = (ms: number): number => Math.round(N / (ms / 1000))
const offlineRate = rate(median(offlineRuns.map((r) => r.totalMs)))
const liveRate = rate(median(liveRuns))
const drainRate = rate(median(offlineRuns.map((r) => r.drainMs)))
const wholeDrainRate = rate(median(wholeRuns.map((r) => r.drainMs)))
const count = N.toLocaleString('en-US')
const figures = [
  figure(`a backlog of ${count} × 64 B for an offline peer: stored, then drained at its login (sealed, LevelDB synced)`, offlineRate, 'msgs/s', 'both online, same relay', liveRate),
  figure(`the drain alone, window 256 (all past the first window by redrain)`, drainRate, 'msgs/s', `the same drain into a window of ${count}`, wholeDrainRate),
]
const out = {
  benchmark: 'backlog',
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}`,
  messages: N,
  runs: { offline: offlineRuns, live: liveRuns, wholeWindow: wholeRuns },
  figures,
}
console.log(JSON.stringify(figures, null, 2))
rmSync(SCRATCH, { recursive: true, force: true })
const dir = fileURLToPath(new URL('./results/', import.meta.url))
mkdirSync(dir, { recursive: true })
writeFileSync(`${dir}backlog.json`, `${JSON.stringify(out, null, 2)}\n`)
