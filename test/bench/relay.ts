/**
 * bench:relay — the relay alone, in Node (part of `npm run bench:net`).
 *
 * (a) Forwarded frames/s: two `ws` clients (in this process) log in to
 *     `createRelay({ dev: true, port: 0, limits: { framesPerSecond } })` and
 *     A sends N envelopes of 64-byte payloads to B, at most IN_FLIGHT
 *     unreceived at a time (far below the relay's 8 MiB slow-socket cut);
 *     rate = N / (first send -> last arrival at B).
 * (b) The ceiling: the same clients and count through a bare `ws` forwarder
 *     (a WebSocketServer that sends every binary message from one socket to
 *     the other, nothing else). Runs alternate bare / relay, RUNS of each; the
 *     medians are compared.
 *     Both servers run in a forked child (one process each run), so the
 *     clients and the server do not share an event loop.
 * (c) Memory per idle connection: a relay in a forked child (default limits,
 *     no log output) takes IDLE authenticated idle connections; the child
 *     reports `process.memoryUsage()` after a full GC (IPC `memory`) before,
 *     at 1,000 and at IDLE connections.
 *
 *   npx tsx test/bench/relay.ts --frames 200000 --idle 5000 --relay-fps 10000000 --runs 5
 *   npm run bench:net -- --frames 200000 (arguments after `--` reach this script)
 *
 * Writes test/bench/results/relay.json. Exits non-zero only when it could not run.
 */
import { execSync, fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import WebSocket, { WebSocketServer } from 'ws'
import { createRelay, type RelayLimits, type RelayStats } from '../../src/relay/relay.js'
import { closeClient, flow, openClient } from './ws-flow.js'
import { intArg } from './args.js'
import { figure, plainFigure } from './figures.js'


// ---- the child: a relay or a bare forwarder, answering IPC ------------------

type Request = { id: number; t: 'memory' | 'stats' | 'stop' }
type ChildMessage =
  | { t: 'ready'; port: number }
  | { id: number; t: 'memory'; usage: NodeJS.MemoryUsage }
  | { id: number; t: 'stats'; stats: RelayStats | undefined }
  | { id: number; t: 'stopped' }

async function child(mode: string, limits: Partial<RelayLimits>): Promise<void> {
  let port: number
  let stats: () => RelayStats | undefined = () => undefined
  let close: () => Promise<void>
  if (mode === 'relay') {
    const relay = await createRelay({ dev: true, port: 0, limits, logger: () => {} })
    port = relay.port
    stats = () => relay.stats()
    close = () => relay.close()
  } else {
    // The bare forwarder: pairs sockets in connection order; every binary message goes to the other one.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
    const peerOf = new Map<WebSocket, WebSocket>()
    let waiting: WebSocket | undefined
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      if (waiting === undefined || waiting.readyState !== WebSocket.OPEN) waiting = ws
      else {
        peerOf.set(ws, waiting)
        peerOf.set(waiting, ws)
        waiting = undefined
      }
      ws.on('message', (data, isBinary) => {
        if (isBinary) peerOf.get(ws)?.send(data, { binary: true })
      })
      ws.on('close', () => {
        peerOf.delete(ws)
        if (waiting === ws) waiting = undefined
      })
    })
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
    port = (wss.address() as { port: number }).port
    close = () => new Promise<void>((resolve) => {
      for (const ws of wss.clients) ws.terminate()
      wss.close(() => resolve())
    })
  }
  const send = (m: ChildMessage): void => void process.send!(m)
  process.on('message', (request: Request) => {
    void (async () => {
      switch (request.t) {
        case 'memory': {
          const gc = (globalThis as { gc?: () => void }).gc
          for (let i = 0; i < 3; i++) {
            gc?.()
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
          send({ id: request.id, t: 'memory', usage: process.memoryUsage() }); return;
        }
        case 'stats':
          { send({ id: request.id, t: 'stats', stats: stats() }); return; }
        case 'stop':
          await close()
          send({ id: request.id, t: 'stopped' })
          process.disconnect()
          return
      }
    })()
  })
  send({ t: 'ready', port })
}

// ---- the driver -------------------------------------------------------------

interface Server {
  readonly url: string
  memory(): Promise<NodeJS.MemoryUsage>
  stats(): Promise<RelayStats | undefined>
  stop(): Promise<void>
}

/** Forks this file as a server child (`relay` or `bare`) and resolves once it listens. */
function startServer(mode: 'relay' | 'bare', limits: Partial<RelayLimits> = {}): Promise<Server> {
  const proc: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child', mode, JSON.stringify(limits)], {
    cwd: fileURLToPath(new URL('../../', import.meta.url)),
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let nextId = 1
  const pending = new Map<number, (m: ChildMessage) => void>()
  const request = <T extends ChildMessage>(t: Request['t']): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => reject(new Error(`${mode} child: no answer to ${t} within 30 s`)), 30_000)
      pending.set(id, (m) => (clearTimeout(timer), resolve(m as T)))
      proc.send({ id, t } satisfies Request)
    })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (proc.kill('SIGKILL'), reject(new Error(`${mode} child did not start within 30 s`))), 30_000)
    proc.once('exit', (code, signal) => reject(new Error(`${mode} child exited (${code ?? signal}) before it was ready`)))
    proc.on('message', (m: ChildMessage) => {
      if (m.t === 'ready') {
        clearTimeout(timer)
        resolve({
          url: `ws://127.0.0.1:${m.port}`,
          memory: async () => (await request<Extract<ChildMessage, { t: 'memory' }>>('memory')).usage,
          stats: async () => (await request<Extract<ChildMessage, { t: 'stats' }>>('stats')).stats,
          async stop() {
            const exited = new Promise<void>((done) => (proc.exitCode !== null ? done() : proc.once('exit', () => done())))
            await request('stop').catch(() => proc.kill('SIGKILL'))
            const timeout = setTimeout(() => proc.kill('SIGKILL'), 5000)
            await exited
            clearTimeout(timeout)
          },
        })
      } else if ('id' in m) {
        pending.get(m.id)?.(m)
        pending.delete(m.id)
      }
    })
  })
}

interface ForwardRun {
  framesPerSec: number
  received: number
  undeliverable: number
}

/** A -> B, `count` envelopes of `bytes` bytes, at most `inFlight` unreceived; measured at B. */
async function forward(url: string, login: boolean, count: number, bytes: number, inFlight: number): Promise<ForwardRun> {
  const b = await openClient(url, login ? 'benchB' : undefined)
  const a = await openClient(url, login ? 'benchA' : undefined)
  const run = await flow(a, b, 'benchB', count, bytes, inFlight, 60_000)
  await Promise.all([closeClient(a), closeClient(b)])
  return { framesPerSec: Math.round((run.received / (run.last - run.start)) * 1000), received: run.received, undeliverable: run.refused }
}

const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!

function openFileLimit(): number {
  try {
    const text = execSync('ulimit -n', { shell: '/bin/sh', encoding: 'utf8' }).trim()
    return text === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(text)
  } catch {
    return NaN
  }
}

async function main(): Promise<void> {
  const FRAMES = intArg('--frames', 200_000)
  const IDLE_WANTED = intArg('--idle', 5000)
  const RELAY_FPS = intArg('--relay-fps', 10_000_000)
  const RUNS = intArg('--runs', 5)
  const BYTES = 64
  const IN_FLIGHT = 10_000
  const OPEN_BATCH = 200

  // (a) + (b), alternating, each run on a fresh server process.
  const relayRuns: ForwardRun[] = []
  const bareRuns: ForwardRun[] = []
  const refusals: Record<string, number> = {}
  for (let i = 0; i < RUNS; i++) {
    const bare = await startServer('bare')
    try {
      bareRuns.push(await forward(bare.url, false, FRAMES, BYTES, IN_FLIGHT))
    } finally {
      await bare.stop()
    }
    const relay = await startServer('relay', { framesPerSecond: RELAY_FPS })
    try {
      relayRuns.push(await forward(relay.url, true, FRAMES, BYTES, IN_FLIGHT))
      const stats = await relay.stats()
      for (const [reason, n] of Object.entries(stats?.refusals ?? {})) if (n > 0) refusals[reason] = (refusals[reason] ?? 0) + n
    } finally {
      await relay.stop()
    }
  }
  const relayRate = median(relayRuns.map((r) => r.framesPerSec))
  const bareRate = median(bareRuns.map((r) => r.framesPerSec))

  // (c) Memory per idle, authenticated connection.
  const ulimit = openFileLimit()
  const idle = Number.isFinite(ulimit) && ulimit < IDLE_WANTED + 500 ? Math.max(0, ulimit - 500) : IDLE_WANTED
  const checkpoint = Math.min(1000, Math.floor(idle / 5))
  const memoryRelay = await startServer('relay')
  const clients: WebSocket[] = []
  let memory: { before: NodeJS.MemoryUsage; atCheckpoint: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage; authenticated: number }
  let openMs: number
  try {
    // Warm-up: the login path compiled and its buffers allocated before the baseline.
    const warm = await Promise.all(Array.from({ length: 100 }, (_, i) => openClient(memoryRelay.url, `warm-${i}`)))
    await Promise.all(warm.map(closeClient))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const before = await memoryRelay.memory()
    const openUpTo = async (n: number): Promise<void> => {
      while (clients.length < n) {
        const batch = Math.min(OPEN_BATCH, n - clients.length)
        const base = clients.length
        clients.push(...(await Promise.all(Array.from({ length: batch }, (_, i) => openClient(memoryRelay.url, `idle-${base + i}`)))))
      }
    }
    const openStart = performance.now()
    await openUpTo(checkpoint)
    const atCheckpoint = await memoryRelay.memory()
    await openUpTo(idle)
    openMs = performance.now() - openStart
    await new Promise((resolve) => setTimeout(resolve, 500))
    const after = await memoryRelay.memory()
    const stats = await memoryRelay.stats()
    memory = { before, atCheckpoint, after, authenticated: stats?.authenticated ?? 0 }
  } finally {
    for (const ws of clients) ws.terminate()
    await memoryRelay.stop()
  }
  const perConnection = (key: keyof NodeJS.MemoryUsage, from: NodeJS.MemoryUsage, to: NodeJS.MemoryUsage, n: number): number =>
    Math.round((to[key] - from[key]) / n)
  const { before, atCheckpoint, after } = memory
  const result = {
    benchmark: 'relay',
    date: new Date().toISOString(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
    frames: FRAMES,
    bytes: BYTES,
    inFlight: IN_FLIGHT,
    relayFramesPerSec: relayRate,
    bareWsFramesPerSec: bareRate,
    ratio: Number((relayRate / bareRate).toFixed(4)),
    relayFramesPerSecRuns: relayRuns.map((r) => r.framesPerSec),
    bareWsFramesPerSecRuns: bareRuns.map((r) => r.framesPerSec),
    received: { relay: relayRuns.map((r) => r.received), bare: bareRuns.map((r) => r.received) },
    relayFramesPerSecondLimit: RELAY_FPS,
    relayRefusals: refusals,
    openFileLimit: ulimit,
    idleConnections: idle,
    idleAuthenticated: memory.authenticated,
    idleOpenPerSec: Math.round((idle / openMs) * 1000),
    memoryBefore: { rss: before.rss, heapUsed: before.heapUsed, external: before.external, arrayBuffers: before.arrayBuffers },
    memoryAfter: { rss: after.rss, heapUsed: after.heapUsed, external: after.external, arrayBuffers: after.arrayBuffers },
    rssBytesPerConnection: perConnection('rss', before, after, idle),
    heapUsedBytesPerConnection: perConnection('heapUsed', before, after, idle),
    externalBytesPerConnection: perConnection('external', before, after, idle),
    /** The slope between `checkpoint` and `idle` connections: fixed costs of the first connections excluded. */
    rssBytesPerConnectionSlope: perConnection('rss', atCheckpoint, after, idle - checkpoint),
    heapUsedBytesPerConnectionSlope: perConnection('heapUsed', atCheckpoint, after, idle - checkpoint),
    figures: [
      figure(`relay: forwarding, ${FRAMES.toLocaleString('en-US')} × ${BYTES} B`, relayRate, 'frames/s', 'bare ws forwarder', bareRate),
      plainFigure(`relay: RSS per idle authenticated connection (${idle.toLocaleString('en-US')})`, perConnection('rss', before, after, idle), 'B'),
      plainFigure(`relay: JS heap per idle authenticated connection (${idle.toLocaleString('en-US')})`, perConnection('heapUsed', before, after, idle), 'B'),
    ],
  }
  const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`
  console.log(
    [
      `bench:relay  ${FRAMES} envelopes of ${BYTES} B A -> B (at most ${IN_FLIGHT} in flight), ${result.machine}`,
      `  relay (createRelay, dev, framesPerSecond ${RELAY_FPS}): ${relayRate} frames/s  (runs ${result.relayFramesPerSecRuns.join(', ')})`,
      `  ceiling, bare ws forwarder:                           ${bareRate} frames/s  (runs ${result.bareWsFramesPerSecRuns.join(', ')})  ratio ${result.ratio}`,
      `    relay refusals ${JSON.stringify(refusals)}; received relay ${result.received.relay.join(', ')}, bare ${result.received.bare.join(', ')}`,
      `  memory, ${idle} idle authenticated connections (ulimit -n ${ulimit}; relay counts ${memory.authenticated}; opened at ${result.idleOpenPerSec}/s):`,
      `    rss ${kib(result.rssBytesPerConnection)}/conn, heapUsed ${kib(result.heapUsedBytesPerConnection)}/conn, external ${kib(result.externalBytesPerConnection)}/conn`,
      `    slope ${checkpoint}..${idle}: rss ${kib(result.rssBytesPerConnectionSlope)}/conn, heapUsed ${kib(result.heapUsedBytesPerConnectionSlope)}/conn`,
      `    (rss ${(before.rss / 1048576).toFixed(1)} -> ${(after.rss / 1048576).toFixed(1)} MiB, heapUsed ${(before.heapUsed / 1048576).toFixed(1)} -> ${(after.heapUsed / 1048576).toFixed(1)} MiB)`,
      ...(idle < IDLE_WANTED ? [`  NOTE: ulimit -n is ${ulimit}, so only ${idle} of ${IDLE_WANTED} connections were opened`] : []),
    ].join('\n'),
  )
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/relay.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
}

const childIndex = process.argv.indexOf('--child')
if (childIndex > 0) {
  const mode = process.argv[childIndex + 1] ?? 'relay'
  void child(mode, JSON.parse(process.argv[childIndex + 2] ?? '{}') as Partial<RelayLimits>).catch((error: unknown) => {
    console.error(`bench:relay ${mode} child failed:`, error)
    process.exit(1)
  })
} else {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error('bench:relay could not run:', error)
      process.exit(1)
    },
  )
}
