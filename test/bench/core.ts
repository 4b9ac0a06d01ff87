/**
 * bench:core — two engines over the memory network and memory stores push
 * N messages of 64 bytes, with end-to-end encryption off (the engine's own
 * work: the figure issue 13's CPU goal compares across commits) and on (the
 * default: Node's WebCrypto adds its own cost per seal and open); the ceiling is the same count through (1) a bare
 * in-memory async queue and (2) raw memory-network frames, measured in the
 * same run, and the floor below the engines (3): the same messages moved with
 * the same store, codec and network and nothing else (core-floor.ts), so the
 * engines' CPU divided by the floor's is the engine's own overhead. Then the
 * send path alone: one engine queues N messages for a peer
 * that is not there (validation, the writer, the memory store; no frames).
 * Prints msgs/s, CPU per message and ratios; writes
 * test/bench/results/core.json.
 *
 *   npm run bench:core -- --messages 100000
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { ILM, MemoryNetwork, MemoryStore } from '../../src/index.js'
import { storeAndCodecFloor } from './core-floor.js'
import { figure } from './figures.js'
import { sendInTurns } from './send-turns.js'

const argIndex = process.argv.indexOf('--messages')
const N = argIndex > 0 ? Number(process.argv[argIndex + 1]) : 100_000
const CHUNK = 1000
const payload = new Uint8Array(64).fill(7)

async function bareQueue(): Promise<number> {
  const queue: Uint8Array[] = []
  let head = 0
  let wake: (() => void) | undefined
  const handler = async (item: Uint8Array): Promise<number> => item.byteLength
  const consumer = (async () => {
    while (head < N) {
      if (head === queue.length) await new Promise<void>((resolve) => (wake = resolve))
      while (head < queue.length) await handler(queue[head++]!)
    }
  })()
  const start = performance.now()
  for (let i = 0; i < N; i++) {
    queue.push(payload.slice())
    if (i % CHUNK === CHUNK - 1 || i === N - 1) {
      wake?.()
      await Promise.resolve()
    }
  }
  await consumer
  return performance.now() - start
}

async function rawNetwork(): Promise<number> {
  const net = new MemoryNetwork()
  const a = net.connect('a')
  const b = net.connect('b')
  let received = 0
  let done!: () => void
  const finished = new Promise<void>((resolve) => (done = resolve))
  a.open({ frame() {}, peer() {}, closed() {} })
  b.open({ frame: () => void (++received === N && done()), peer() {}, closed() {} })
  await new Promise((resolve) => setTimeout(resolve, 10))
  const start = performance.now()
  for (let i = 0; i < N; i++) {
    a.send('b', payload)
    if (i % CHUNK === CHUNK - 1) await Promise.resolve()
  }
  await finished
  const ms = performance.now() - start
  a.close()
  b.close()
  return ms
}

async function engines(encryption: boolean): Promise<{ ms: number; cpuUs: number; p50: number; p99: number }> {
  const net = new MemoryNetwork()
  const off = encryption ? {} : { encryption: false as const }
  const a = await ILM.open({ store: new MemoryStore(), transport: net.connect('a'), ...off })
  const b = await ILM.open({ store: new MemoryStore(), transport: net.connect('b'), ...off })
  const sentAt = new Map<string, number>()
  const latencies: number[] = []
  let done!: () => void
  const finished = new Promise<void>((resolve) => (done = resolve))
  b.onMessage((m) => {
    latencies.push(performance.now() - sentAt.get(m.id)!)
    if (latencies.length === N) done()
  })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const cpu = process.cpuUsage()
  const start = performance.now()
  await sendInTurns(N, CHUNK, (): Promise<unknown> => {
    const t = performance.now()
    return a.send('b', payload).then(({ id }) => sentAt.set(id, t))
  })
  await finished
  const ms = performance.now() - start
  const used = process.cpuUsage(cpu)
  await a.close()
  await b.close()
  latencies.sort((x, y) => x - y)
  return { ms, cpuUs: used.user + used.system, p50: latencies[Math.floor(N * 0.5)]!, p99: latencies[Math.floor(N * 0.99)]! }
}

/** One engine, its peer absent: every send is queued and stays queued (turns of CHUNK sends, as above). */
async function sendPath(): Promise<{ ms: number; cpuUs: number }> {
  const net = new MemoryNetwork()
  const a = await ILM.open({ store: new MemoryStore(), transport: net.connect('a'), limits: { maxPendingPerPeer: N } })
  const cpu = process.cpuUsage()
  const start = performance.now()
  await sendInTurns(N, CHUNK, () => a.send('b', payload))
  const ms = performance.now() - start
  const used = process.cpuUsage(cpu)
  await a.close()
  return { ms, cpuUs: used.user + used.system }
}

const rate = (ms: number): number => Math.round((N / ms) * 1000)

const queueMs = await bareQueue()
const rawMs = await rawNetwork()
const ilm = await engines(false)
// After the engines, so that it is not the one to warm up the store and codec they share.
const floor = await storeAndCodecFloor(N, payload, CHUNK)
const sealed = await engines(true)
const sendOnly = await sendPath()
const result = {
  benchmark: 'core',
  date: new Date().toISOString(),
  machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
  messages: N,
  bytes: payload.byteLength,
  engineMsgsPerSec: rate(ilm.ms),
  /** Process CPU (user + system, GC threads included) per message, both engines, encryption off: what the engine costs a battery. */
  engineCpuMicrosPerMsg: Number((ilm.cpuUs / N).toFixed(2)),
  latencyP50Ms: Number(ilm.p50.toFixed(2)),
  /** The same two engines with end-to-end encryption on (the default), in Node's WebCrypto. */
  sealedMsgsPerSec: rate(sealed.ms),
  sealedCpuMicrosPerMsg: Number((sealed.cpuUs / N).toFixed(2)),
  sendPathMsgsPerSec: rate(sendOnly.ms),
  /** Process CPU per message of one engine queuing sends (no peer, no frames): the send path alone. */
  sendPathCpuMicrosPerMsg: Number((sendOnly.cpuUs / N).toFixed(2)),
  latencyP99Ms: Number(ilm.p99.toFixed(2)),
  floorMsgsPerSec: rate(floor.ms),
  /** Process CPU per message of the store-and-codec floor: the least any engine spends here with this store, codec and network. */
  floorCpuMicrosPerMsg: Number((floor.cpuUs / N).toFixed(2)),
  /** The engines' CPU per message over the floor's: the engine's own overhead. */
  engineCpuToFloor: Number((ilm.cpuUs / floor.cpuUs).toFixed(2)),
  bareQueueMsgsPerSec: rate(queueMs),
  rawNetworkMsgsPerSec: rate(rawMs),
  ratioToBareQueue: Number((queueMs / ilm.ms).toFixed(4)),
  ratioToRawNetwork: Number((rawMs / ilm.ms).toFixed(4)),
  figures: [
    figure(`core: two engines, memory store and network, encryption off, ${N.toLocaleString('en-US')} × ${payload.byteLength} B`, rate(ilm.ms), 'msgs/s', 'bare in-memory queue', rate(queueMs)),
    figure(`core: the same, encryption on (Node's WebCrypto)`, rate(sealed.ms), 'msgs/s', 'encryption off, same run', rate(ilm.ms)),
    figure(
      'core: two engines, encryption off, process CPU per message',
      Number((ilm.cpuUs / N).toFixed(2)),
      'us',
      'the store-and-codec floor (the same store, codec and network, nothing else)',
      Number((floor.cpuUs / N).toFixed(2)),
    ),
  ],
}
console.log(
  [
    `bench:core  ${N} messages of ${payload.byteLength} B`,
    `  engines (memory store + memory network): ${result.engineMsgsPerSec} msgs/s  ${result.engineCpuMicrosPerMsg} us CPU/msg  p50 ${result.latencyP50Ms} ms  p99 ${result.latencyP99Ms} ms`,
    `  the same, encryption on:                 ${result.sealedMsgsPerSec} msgs/s  ${result.sealedCpuMicrosPerMsg} us CPU/msg`,
    `  send path alone (one engine, no peer):   ${result.sendPathMsgsPerSec} msgs/s  ${result.sendPathCpuMicrosPerMsg} us CPU/msg`,
    `  floor, the same store, codec, network:   ${result.floorMsgsPerSec} msgs/s  ${result.floorCpuMicrosPerMsg} us CPU/msg  engines / floor ${result.engineCpuToFloor}`,
    `  ceiling, bare in-memory queue:           ${result.bareQueueMsgsPerSec} msgs/s  ratio ${result.ratioToBareQueue}`,
    `  ceiling, raw memory-network frames:      ${result.rawNetworkMsgsPerSec} msgs/s  ratio ${result.ratioToRawNetwork}`,
  ].join('\n'),
)
writeFileSync(new URL('./results/core.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
