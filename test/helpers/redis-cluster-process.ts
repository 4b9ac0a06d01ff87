/// <reference types="node" />
/**
 * A real Redis Cluster on loopback: six `redis-server` processes (from
 * {@link startRedisProcess}, cluster mode, no persistence) joined by
 * `redis-cli --cluster create … --cluster-replicas 1` into three masters with
 * one replica each, and a short `cluster-node-timeout` so that a killed
 * master's replica takes over within a couple of seconds.
 */
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient } from 'redis'
import { startRedisProcess, type RedisProcess } from './redis-process.js'

/** The redis-cli binary: `REDIS_CLI`, or `redis-cli` on PATH (it comes with redis-server). */
export const redisCliPath = process.env.REDIS_CLI ?? 'redis-cli'

/** One master of the cluster as its nodes see it now. */
export interface ClusterShard {
  readonly masterPort: number
  readonly replicaPorts: readonly number[]
  /** Slot ranges `[first, last]` it serves. */
  readonly slots: readonly (readonly [number, number])[]
}

export interface RedisClusterProcess {
  /** Every node, by port. */
  readonly nodes: ReadonlyMap<number, RedisProcess>
  /** `127.0.0.1:port` of every node (for `--redis-cluster`). */
  readonly rootNodes: readonly string[]
  /** The masters (and their replicas) as the node on `askPort` (default: any live one) sees them. */
  shards(askPort?: number): Promise<ClusterShard[]>
  /** The slot of `key` (`CLUSTER KEYSLOT`). */
  keySlot(key: string): Promise<number>
  /** A raw command on the node at `port`. */
  command(port: number, args: string[]): Promise<unknown>
  /** Resolves once every live node reports `cluster_state:ok` and each master has an online replica. */
  healthy(timeoutMs?: number): Promise<void>
  /** Stops every node and removes their directories. */
  stop(): Promise<void>
}

/** Starts six nodes and makes them a cluster of three shards; resolves once it is healthy. */
export async function startRedisCluster(nodeTimeoutMs = 1_000): Promise<RedisClusterProcess> {
  const started: RedisProcess[] = []
  const stop = async (): Promise<void> => void (await Promise.allSettled(started.map((node) => node.stop())))
  try {
    const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(nodeTimeoutMs)]
    started.push(...(await Promise.all(Array.from({ length: 6 }, () => startRedisProcess({ persistence: 'none', args })))))
    await run(redisCliPath, ['--cluster', 'create', ...started.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes'])
  } catch (error) {
    await stop()
    throw error
  }
  const nodes = new Map(started.map((node) => [node.port, node]))
  const dead = new Set<number>()
  const command = async (port: number, args: string[]): Promise<unknown> => {
    const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false, connectTimeout: 1_000 } })
    client.on('error', () => {})
    await client.connect()
    try {
      return await client.sendCommand(args)
    } finally {
      await client.close().catch(() => client.destroy())
    }
  }
  const live = async (): Promise<number[]> => {
    const ports: number[] = []
    for (const port of nodes.keys()) {
      if (dead.has(port)) continue
      try {
        await command(port, ['PING'])
        ports.push(port)
      } catch {
        dead.add(port)
      }
    }
    return ports
  }
  const shards = async (askPort?: number): Promise<ClusterShard[]> => {
    const port = askPort ?? (await live())[0]!
    const lines = String(await command(port, ['CLUSTER', 'NODES']))
      .trim()
      .split('\n')
    const rows = lines.map((line) => line.split(' '))
    const portOf = (row: string[]): number => Number(/:(\d+)@/.exec(row[1]!)![1])
    const masters = rows.filter((row) => row[2]!.includes('master') && !row[2]!.includes('fail') && row.length > 8)
    return masters.map((row) => ({
      masterPort: portOf(row),
      replicaPorts: rows.filter((r) => r[3] === row[0] && !r[2]!.includes('fail')).map(portOf),
      slots: row.slice(8).map((range) => {
        const [first, last = first] = range.split('-').map(Number)
        return [first!, last!] as const
      }),
    }))
  }
  const healthy = async (timeoutMs = 20_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const ports = await live()
        const states = await Promise.all(ports.map(async (port) => String(await command(port, ['CLUSTER', 'INFO']))))
        const found = await shards(ports[0])
        const replicated = await Promise.all(
          found.map(async (shard) => /^slave\d+:.*state=online/m.test(String(await command(shard.masterPort, ['INFO', 'replication'])))),
        )
        if (states.every((info) => info.includes('cluster_state:ok')) && found.length === 3 && replicated.every(Boolean)) return
      } catch {
        // A node mid-failover: ask again.
      }
      if (Date.now() > deadline) throw new Error(`the redis cluster was not healthy within ${timeoutMs} ms`)
      await sleep(50)
    }
  }
  await healthy()
  return {
    nodes,
    rootNodes: started.map((node) => `127.0.0.1:${node.port}`),
    shards,
    keySlot: async (key) => Number(await command((await live())[0]!, ['CLUSTER', 'KEYSLOT', key])),
    command,
    healthy,
    stop,
  }
}

function run(program: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-4096)))
    child.stderr.on('data', (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-4096)))
    child.once('error', (error) => reject(new Error(`could not run ${program}: ${error.message}`, { cause: error })))
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${program} ${args.join(' ')} exited ${code}: ${output.trim()}`))))
  })
}
