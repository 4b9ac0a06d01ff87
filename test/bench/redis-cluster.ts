/**
 * The Redis Cluster part of `npm run bench:cluster`: a real cluster on
 * loopback (six redis-server processes, three masters with one replica each,
 * test/helpers/redis-cluster-process.ts) and three relay processes on it with
 * `--redis-cluster`.
 *
 * (a) Frames across shards: PAIRS sender/receiver pairs, sender on node i,
 *     receiver on node i+1, run at once; every frame crosses the cluster (one
 *     `SPUBLISH` to the receiver's slot). The receivers' channels are spread
 *     over all three masters (asserted). Compared with bare `SPUBLISH` on the
 *     same cluster through node-redis's cluster client, to the same number of
 *     channels, with the same window.
 * (b) The mailbox with durability `replica` (`WAIT 1` before `stored`):
 *     stored-and-drained through RedisMailbox on the cluster, against bare
 *     `XADD` (a `WAIT 1` per window of puts on the key's master) + `XRANGE` +
 *     `XDEL` on the same cluster.
 * (c) Memory per connection: a fresh relay node on the cluster (no traffic
 *     before, so no heap already grown by it), warmed with 100 logins; its
 *     resident set (/proc, Linux) before and after CONNECTIONS more logged-in
 *     idle peers.
 */
import { readFileSync } from 'node:fs'
import { createCluster, type RedisClusterType } from 'redis'
import { envelope } from '../../src/protocol/relay.js'
import { startRedisCluster, type RedisClusterProcess } from '../helpers/redis-cluster-process.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { benchRedisMailbox, type MailboxBenchResult } from './cluster-mailbox.js'
import { figure, plainFigure, type Figure } from './figures.js'
import { spublishFlow } from './spublish-flow.js'
import { closeClient, flow, openClient } from './ws-flow.js'

/** Options of {@link benchRedisCluster}. */
export interface ClusterBenchOptions {
  readonly frames: number
  readonly runs: number
  readonly mailboxMessages: number
  readonly connections: number
}

/** What {@link benchRedisCluster} measured. */
export interface ClusterBenchResult {
  readonly pairs: number
  /** Receivers' channels per master (port -> count): every master carries traffic. */
  readonly channelsPerMaster: Record<string, number>
  readonly relayFramesPerSec: number
  readonly spublishPerSec: number
  readonly runsDetail: { readonly relay: number[]; readonly spublish: number[] }
  readonly refused: number
  readonly mailbox: Omit<MailboxBenchResult, 'figure'>
  readonly connections: number
  readonly bytesPerConnection: number
  readonly figures: Figure[]
}

const BYTES = 64
const IN_FLIGHT = 2_000
const PAIRS = 9
const median = (values: readonly number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!

/** Runs (a), (b) and (c) on a cluster it starts and stops. */
export async function benchRedisCluster(options: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const cluster = await startRedisCluster()
  const env = { INTERSESSION_DEV: '1', INTERSESSION_RELAY_FRAMES_PER_SECOND: '10000000' }
  let nodes: RelayProcess[] = []
  try {
    nodes = await Promise.all([0, 1, 2].map(() => startRelayProcess(['--redis-cluster', cluster.rootNodes.join(','), '--no-mailbox'], env)))
    const channelsPerMaster = await spread(cluster, options.runs)
    const relay: number[] = []
    const spublish: number[] = []
    let refused = 0
    for (let run = 0; run < options.runs; run++) {
      spublish.push(await spublishRun(cluster.rootNodes, receivers(run), options.frames))
      const r = await relayRun(nodes, run, options.frames)
      relay.push(r.rate)
      refused += r.refused
      console.log(`cluster run ${run + 1}: bare SPUBLISH ${spublish.at(-1)}/s, 3 relay nodes ${r.rate} frames/s`)
    }
    const fresh = await startRelayProcess(['--redis-cluster', cluster.rootNodes.join(','), '--no-mailbox'], env)
    nodes.push(fresh)
    const bytesPerConnection = await memoryPerConnection(fresh, options.connections)
    console.log(`cluster: ${Math.round(bytesPerConnection)} B resident per logged-in connection`)
    const { figure: mailboxFigure, ...mailbox } = await benchRedisMailbox(
      { rootNodes: cluster.rootNodes },
      { messages: options.mailboxMessages, runs: options.runs, durability: 'replica' },
    )
    const relayRate = median(relay)
    const spublishRate = median(spublish)
    return {
      pairs: PAIRS,
      channelsPerMaster,
      relayFramesPerSec: relayRate,
      spublishPerSec: spublishRate,
      runsDetail: { relay, spublish },
      refused,
      mailbox,
      connections: options.connections,
      bytesPerConnection: Math.round(bytesPerConnection),
      figures: [
        figure(
          `Redis Cluster (3 masters + 3 replicas): 3 relay nodes, ${PAIRS} pairs across nodes and shards, ${options.frames.toLocaleString('en')} × ${BYTES} B`,
          relayRate,
          'frames/s',
          `bare SPUBLISH on the same cluster, ${PAIRS} channels`,
          spublishRate,
        ),
        { ...mailboxFigure, figure: `Redis Cluster: ${mailboxFigure.figure}, durability replica (WAIT 1)`, against: `${mailboxFigure.against} with WAIT 1 per window` },
        plainFigure(`relay node on the cluster: resident memory per logged-in idle connection (${options.connections.toLocaleString('en')} connections)`, Math.round(bytesPerConnection), 'B'),
      ],
    }
  } finally {
    await Promise.all(nodes.map((node) => node.kill()))
    await cluster.stop()
  }
}

const receivers = (run: number): string[] => Array.from({ length: PAIRS }, (_, i) => `cb${run}-${i}`)

/** The master port of each run's receivers' channel slots; throws unless all three masters carry some. */
async function spread(cluster: RedisClusterProcess, runs: number): Promise<Record<string, number>> {
  const shards = await cluster.shards()
  const counts: Record<string, number> = Object.fromEntries(shards.map((shard) => [String(shard.masterPort), 0]))
  for (let run = 0; run < runs; run++) {
    for (const peer of receivers(run)) {
      const slot = await cluster.keySlot(`{${peer}}`)
      const shard = shards.find((s) => s.slots.some(([first, last]) => slot >= first && slot <= last))
      if (shard === undefined) throw new Error(`slot ${slot} has no master`)
      counts[String(shard.masterPort)]!++
    }
  }
  if (Object.values(counts).some((n) => n === 0)) throw new Error(`a master carries no receiver: ${JSON.stringify(counts)}`)
  return counts
}

async function relayRun(nodes: readonly RelayProcess[], run: number, frames: number): Promise<{ rate: number; refused: number }> {
  const to = receivers(run)
  const sockets = await Promise.all(
    to.map(async (id, i) => {
      const b = await openClient(nodes[(i + 1) % nodes.length]!.url, id)
      const a = await openClient(nodes[i % nodes.length]!.url, `ca${run}-${i}`)
      return { a, b, id }
    }),
  )
  // Presence of a fresh login reaches other nodes through the cluster: give it a moment before timing.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const each = Math.floor(frames / sockets.length)
  const flows = await Promise.all(sockets.map(({ a, b, id }) => flow(a, b, id, each, BYTES, Math.ceil(IN_FLIGHT / sockets.length))))
  await Promise.all(sockets.flatMap(({ a, b }) => [closeClient(a), closeClient(b)]))
  const received = flows.reduce((n, f) => n + f.received, 0)
  const span = Math.max(...flows.map((f) => f.last)) - Math.min(...flows.map((f) => f.start))
  return { rate: Math.round((received / span) * 1000), refused: flows.reduce((n, f) => n + f.refused, 0) }
}

/** Bare sharded pub/sub on the cluster: `count` messages round-robin over one channel per receiver, at most IN_FLIGHT unreceived. */
async function spublishRun(rootNodes: readonly string[], peers: readonly string[], count: number): Promise<number> {
  const clusterOf = (): RedisClusterType => createCluster({ rootNodes: rootNodes.map((node) => ({ url: `redis://${node}` })) })
  const pub = clusterOf()
  const sub = clusterOf()
  await Promise.all([pub.connect(), sub.connect()])
  const channels = peers.map((peer) => `bench:p:{${peer}}`)
  const body = Buffer.concat([Buffer.of(0), Buffer.from(envelope('peer', new Uint8Array(BYTES).fill(7)))])
  const rate = await spublishFlow(pub, sub, channels, count, body, IN_FLIGHT)
  await Promise.all([sub.close(), pub.close()])
  return rate
}

/** Resident bytes a relay node gains per logged-in idle connection. */
async function memoryPerConnection(node: RelayProcess, connections: number): Promise<number> {
  const warm = await Promise.all(Array.from({ length: 100 }, (_, i) => openClient(node.url, `warm-${i}`)))
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  const before = residentBytes(node.pid)
  const sockets = [...warm]
  for (let from = 0; from < connections; from += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, connections - from) }, (_, i) => openClient(node.url, `idle-${from + i}`)))))
  }
  // Let the relay settle (presence writes, buffers) before reading its resident set.
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  const after = residentBytes(node.pid)
  await Promise.all(sockets.map((ws) => closeClient(ws)))
  return (after - before) / connections
}

function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match === null) throw new Error(`no VmRSS for process ${pid}`)
  return Number(match[1]) * 1024
}
