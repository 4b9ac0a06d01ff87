/**
 * bench:cluster — relays as a cluster on Redis, in Node on loopback.
 *
 * (a) Ceiling: bare Redis sharded pub/sub on the same redis-server: one
 *     client `SPUBLISH`es N messages of the envelope's size to a channel
 *     another client subscribes to, at most IN_FLIGHT unreceived; rate = N /
 *     (first publish -> last arrival).
 * (b) One node (`--redis`): A and B on the same relay process, N envelopes of
 *     64 B payload A -> B (the local path: Redis is not involved), compared
 *     with like: the same flow through a standalone relay process (no
 *     `--redis`), so the figure is what cluster mode costs a node's local
 *     path. (It was compared with (a) before, which it never uses.)
 * (c) Three nodes: three pairs, A_i on node i and B_i on node i+1, each pair
 *     N/3 envelopes at once: every frame crosses Redis (one SPUBLISH).
 *     Rate = all received / (first send -> last arrival).
 * (d) The mailbox: RedisMailbox stored-and-drained msgs/s against bare
 *     XADD + XRANGE + XDEL (test/bench/cluster-mailbox.ts).
 * (e) On a real Redis Cluster (3 masters + 3 replicas) with three relay
 *     nodes: frames across shards against bare SPUBLISH on the cluster, the
 *     mailbox with durability `replica` against bare XADD + WAIT + XRANGE +
 *     XDEL, and a node's memory per connection (test/bench/redis-cluster.ts).
 *     `--no-redis-cluster` skips it.
 * Relay processes run with a frame rate limit far above the test's rate, so
 * the limit does not cap them. Runs alternate; medians are compared.
 *
 *   npx tsx test/bench/cluster.ts --frames 60000 --runs 3 --connections 2000
 *
 * Writes test/bench/results/cluster.json. Exits non-zero only when it could not run.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { createClient } from 'redis'
import { envelope } from '../../src/protocol/relay.js'
import { startRedisProcess } from '../helpers/redis-process.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { benchRedisMailbox } from './cluster-mailbox.js'
import { benchRedisCluster } from './redis-cluster.js'
import { intArg } from './args.js'
import { figure } from './figures.js'
import { spublishFlow } from './spublish-flow.js'
import { flow, openClient } from './ws-flow.js'


const BYTES = 64
const IN_FLIGHT = 2_000
const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!

/** Pairs (sender node, receiver node), run at once; frames/s over all of them. */
async function relayRun(nodes: readonly RelayProcess[], pairs: readonly [number, number][], frames: number, run: number): Promise<{ rate: number; refused: number }> {
  const sockets = await Promise.all(
    pairs.map(async ([from, to], i) => {
      const b = await openClient(nodes[to]!.url, `b${run}-${i}`)
      const a = await openClient(nodes[from]!.url, `a${run}-${i}`)
      return { a, b, to: `b${run}-${i}` }
    }),
  )
  // Presence of a fresh login reaches other nodes through Redis: give it a moment before timing.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const each = Math.floor(frames / pairs.length)
  const flows = await Promise.all(sockets.map(({ a, b, to }) => flow(a, b, to, each, BYTES, IN_FLIGHT)))
  for (const { a, b } of sockets) {
    a.terminate()
    b.terminate()
  }
  const received = flows.reduce((n, f) => n + f.received, 0)
  const span = Math.max(...flows.map((f) => f.last)) - Math.min(...flows.map((f) => f.start))
  return { rate: Math.round((received / span) * 1000), refused: flows.reduce((n, f) => n + f.refused, 0) }
}

/** Bare sharded pub/sub: `count` messages of the envelope's size through one channel. */
async function redisRun(url: string, count: number, run: number): Promise<number> {
  const pub = createClient({ url })
  const sub = pub.duplicate()
  await Promise.all([pub.connect(), sub.connect()])
  const channel = `bench:{${run}}`
  const body = Buffer.concat([Buffer.of(0), Buffer.from(envelope('peer', new Uint8Array(BYTES).fill(7)))])
  const rate = await spublishFlow(pub, sub, [channel], count, body, IN_FLIGHT)
  await Promise.all([sub.close(), pub.close()])
  return rate
}

async function main(): Promise<void> {
  const FRAMES = intArg('--frames', 60_000)
  const RUNS = intArg('--runs', 3)
  const MAILBOX_MESSAGES = intArg('--mailbox-messages', 10_000)
  // No persistence: the relay paths measured here store nothing, and the mailbox figure is the mailbox's own cost (durability 'none').
  const redis = await startRedisProcess({ persistence: 'none' })
  const env = { INTERSESSION_DEV: '1', INTERSESSION_RELAY_FRAMES_PER_SECOND: '10000000' }
  const nodes = await Promise.all([0, 1, 2].map(() => startRelayProcess(['--redis', redis.url, '--no-mailbox'], env)))
  const standalone = await startRelayProcess(['--no-mailbox'], env)
  const ceiling: number[] = []
  const alone: number[] = []
  const one: number[] = []
  const three: number[] = []
  let refused = 0
  try {
    for (let run = 0; run < RUNS; run++) {
      ceiling.push(await redisRun(redis.url, FRAMES, run))
      alone.push((await relayRun([standalone], [[0, 0]], FRAMES, run * 10 + 2)).rate)
      const single = await relayRun(nodes, [[0, 0]], FRAMES, run * 10)
      const spread = await relayRun(nodes, [[0, 1], [1, 2], [2, 0]], FRAMES, run * 10 + 1)
      one.push(single.rate)
      three.push(spread.rate)
      refused += single.refused + spread.refused
      console.log(`run ${run + 1}: redis SPUBLISH ${ceiling.at(-1)}/s, standalone relay ${alone.at(-1)} frames/s, 1 node ${single.rate} frames/s, 3 nodes ${spread.rate} frames/s`)
    }
  } finally {
    await Promise.all([...nodes, standalone].map((n) => n.kill()))
  }
  const mailbox = await benchRedisMailbox(redis.url, { messages: MAILBOX_MESSAGES, runs: RUNS })
  await redis.stop()
  const onCluster = process.argv.includes('--no-redis-cluster')
    ? undefined
    : await benchRedisCluster({ frames: FRAMES, runs: RUNS, mailboxMessages: MAILBOX_MESSAGES, connections: intArg('--connections', 2_000) })

  const ceilingRate = median(ceiling)
  const aloneRate = median(alone)
  const oneRate = median(one)
  const threeRate = median(three)
  const result = {
    benchmark: 'cluster',
    date: new Date().toISOString(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
    frames: FRAMES,
    bytes: BYTES,
    inFlight: IN_FLIGHT,
    runs: RUNS,
    redisSpublishPerSec: ceilingRate,
    standaloneRelayFramesPerSec: aloneRate,
    oneNodeFramesPerSec: oneRate,
    threeNodesFramesPerSec: threeRate,
    refused,
    runsDetail: { ceiling, alone, one, three },
    mailbox: { ...mailbox, figure: undefined },
    redisCluster: onCluster === undefined ? undefined : { ...onCluster, figures: undefined },
    figures: [
      figure(`cluster: 1 node with --redis, ${FRAMES.toLocaleString('en')} × ${BYTES} B, sender and receiver on it`, oneRate, 'frames/s', 'the same flow through a standalone relay (no --redis)', aloneRate),
      figure(`cluster: 3 nodes over Redis, 3 pairs on different nodes, ${FRAMES.toLocaleString('en')} × ${BYTES} B in all`, threeRate, 'frames/s', 'bare Redis SPUBLISH -> subscriber', ceilingRate),
      mailbox.figure,
      ...(onCluster?.figures ?? []),
    ],
  }
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/cluster.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
  console.log(`bench:cluster  ${result.machine}`)
  for (const f of result.figures) console.log(`  ${f.figure}: ${f.value} ${f.unit} vs ${f.against} ${f.againstValue} -> ratio ${f.ratio}`)
  if (refused > 0) console.log(`  (${refused} frames refused undeliverable)`)
}

main().catch((error: unknown) => {
  console.error('bench:cluster could not run:', error)
  process.exit(1)
})
