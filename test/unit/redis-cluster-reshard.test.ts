/**
 * A relay node SIGKILLed while the Redis Cluster reshapes: the slots of two
 * talking peers and of an offline peer's mailbox migrate from one master to
 * another (`CLUSTER SETSLOT … MIGRATING/IMPORTING`, `MIGRATE` of the keys,
 * `SETSLOT … NODE`) while traffic flows, and one peer's relay process is
 * killed in the middle of it. Its own cluster (six redis-server processes)
 * and three relay processes with `--redis-durability replica`.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStore } from '../../src/index.js'
import { openClusterPeer, registerClusterPeer, seen, waitFor, type ClusterPeer } from '../helpers/cluster-peer.js'
import { startRedisCluster, type ClusterShard, type RedisClusterProcess } from '../helpers/redis-cluster-process.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'

const SECRET = 'redis-cluster-test-secret-long-enough-for-hs256!'
const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
const holds = (shard: ClusterShard, slot: number): boolean => shard.slots.some(([first, last]) => slot >= first && slot <= last)

describe('a relay node killed while the Redis Cluster reshards', () => {
  let redis: RedisClusterProcess
  let started: RedisClusterProcess | undefined // unset when beforeAll failed, whose error is the one to show
  beforeAll(async () => {
    redis = started = await startRedisCluster(1_000)
  }, 60_000)
  afterAll(async () => {
    await started?.stop()
  })

  const peer = (id: string, urls: readonly string[]): Promise<ClusterPeer> => openClusterPeer(id, urls, SECRET, cleanups)
  const myId = async (port: number): Promise<string> => String(await redis.command(port, ['CLUSTER', 'MYID']))

  /** Moves `slot` from the master at `from` to the one at `to` as `redis-cli --cluster reshard` does, holding each state for `holdMs`. */
  async function migrate(slot: number, from: number, to: number, masters: readonly number[], holdMs: number): Promise<void> {
    const [fromId, toId] = await Promise.all([myId(from), myId(to)])
    await redis.command(to, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId])
    await redis.command(from, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId])
    await sleep(holdMs)
    for (;;) {
      const keys = (await redis.command(from, ['CLUSTER', 'GETKEYSINSLOT', String(slot), '100'])) as string[]
      if (keys.length === 0) break
      await redis.command(from, ['MIGRATE', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...keys])
    }
    await sleep(holdMs)
    for (const port of [to, from, ...masters.filter((p) => p !== to && p !== from)])
      await redis.command(port, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', toId])
  }

  it('traffic on migrating slots with one relay SIGKILLed mid-migration: every message once and in order, and a mailbox moved with its slot drains', async () => {
    const args = ['--redis-cluster', redis.rootNodes.join(','), '--redis-durability', 'replica', '--redis-wait-ms', '1000']
    const nodes: RelayProcess[] = await Promise.all([0, 1, 2].map(() => startRelayProcess(args, { INTERSESSION_JWT_SECRET: SECRET })))
    for (const node of nodes) cleanups.push(() => node.kill())
    const urls = nodes.map((n) => n.url)
    const shards = await redis.shards()
    const source = shards[0]!
    const target = shards[1]!
    const idOn = async (stem: string): Promise<{ id: string; slot: number }> => {
      for (let i = 0; ; i++) {
        const slot = await redis.keySlot(`{${stem}-${i}}`)
        if (holds(source, slot)) return { id: `${stem}-${i}`, slot }
      }
    }
    const [a, b, d] = [await idOn('alice'), await idOn('bob'), await idOn('dave')]
    // Dave was online once: his keys are in the directory, so carol can seal for him while he is offline.
    const daveStore = new MemoryStore()
    await registerClusterPeer(d.id, [urls[0]!], SECRET, daveStore)
    const alice = await peer(a.id, [urls[0]!])
    const bob = await peer(b.id, [urls[1]!, urls[2]!])
    const carol = await peer('carol', [urls[2]!])
    const stored: string[] = []
    for (let n = 0; n < 20; n++) stored.push((await carol.ilm.send(d.id, { n })).id)
    await waitFor(() => stored.every((id) => carol.statuses.some((s) => s.id === id && s.status === 'stored')), 'carol told all 20 for offline dave are stored')

    const total = 300
    const sends: Promise<unknown>[] = []
    let resharding: Promise<void> | undefined
    const handedOver = (): number => alice.got.length + bob.got.length
    let atStart = 0
    let atEnd = 0
    for (let n = 0; n < total; n++) {
      sends.push(alice.ilm.send(b.id, { n }))
      sends.push(bob.ilm.send(a.id, { n }))
      if (n === 80) {
        await waitFor(() => bob.got.length > 20, 'traffic flowing before the reshard')
        const masters = shards.map((s) => s.masterPort)
        atStart = handedOver()
        resharding = (async () => {
          for (const slot of new Set([a.slot, b.slot, d.slot])) await migrate(slot, source.masterPort, target.masterPort, masters, 400)
          atEnd = handedOver()
        })()
      }
      if (n === 120) await nodes[1]!.kill() // bob's relay, while the slots are in flight
      if (n % 10 === 0) await sleep(25)
    }
    await resharding
    expect(atEnd - atStart, 'messages handed over while the slots migrated').toBeGreaterThan(0)
    await Promise.all(sends)
    await waitFor(() => alice.got.length === total && bob.got.length === total, `all ${2 * total} handed over`, 60_000)
    expect(seen(bob, alice)).toEqual(upTo(total))
    expect(seen(alice, bob)).toEqual(upTo(total))

    const now = await redis.shards()
    for (const slot of [a.slot, b.slot, d.slot]) expect(now.find((s) => holds(s, slot))?.masterPort, `slot ${slot} moved`).toBe(target.masterPort)
    const dave = await openClusterPeer(d.id, [urls[0]!], SECRET, cleanups, daveStore)
    await waitFor(() => dave.got.length === 20, "dave drains his mailbox from the slot's new master")
    expect(seen(dave, carol)).toEqual(upTo(20))
    await sleep(500)
    expect(dave.got).toHaveLength(20)
  }, 120_000)
})
