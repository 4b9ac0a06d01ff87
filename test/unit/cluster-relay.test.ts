/**
 * The relay as a cluster: a real redis-server, three relay processes started
 * with `--redis`, and real engines over WebSocketTransport with HS256 tokens.
 */
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createToken } from '../../src/relay/token.js'
import { MemoryStore } from '../../src/index.js'
import { openClusterPeer, registerClusterPeer, seen, waitFor, type ClusterPeer } from '../helpers/cluster-peer.js'
import { scrapeMetrics } from '../helpers/metrics.js'
import { RawClient } from '../helpers/relay-clients.js'
import { startRedisProcess, type RedisProcess } from '../helpers/redis-process.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'

const SECRET = 'cluster-test-secret-long-enough-for-hs256!'
const cleanups: (() => Promise<unknown> | unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

type Peer = ClusterPeer
const peer = (id: string, urls: readonly string[]): Promise<Peer> => openClusterPeer(id, urls, SECRET, cleanups)
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

describe('relay cluster over Redis (three relay processes)', () => {
  let redis: RedisProcess
  beforeAll(async () => {
    redis = await startRedisProcess({ persistence: 'aof-always' })
  })
  afterAll(async () => {
    await redis?.stop() // undefined when beforeAll failed, whose error is the one to show
  })
  // Each test starts from an empty Redis. Its peers are named as the last test's but made afresh, with new keys: a
  // sender that found the last test's bundle of a peer in the directory would pin it, and then hold its messages when
  // the peer's hello shows another key, as for any key change. A run once timed out so, "waiting for first message"
  // (about one in ten runs of this file, before logins carried their bundle in auth); the hold reproduces every time
  // the sender looks the peer up before the new one logs in.
  beforeEach(async () => {
    const client = createClient({ url: redis.url }).on('error', () => {})
    await client.connect()
    await client.flushAll()
    await client.close()
  })

  async function nodes(count = 3, args: readonly string[] = []): Promise<RelayProcess[]> {
    const started = await Promise.all(
      Array.from({ length: count }, () =>
        startRelayProcess(['--redis', redis.url, '--redis-durability', 'fsync', ...args], { INTERSESSION_JWT_SECRET: SECRET }),
      ),
    )
    for (const node of started) cleanups.push(() => node.kill())
    return started
  }

  it('peers on different nodes exchange messages both ways, exactly once and in order', async () => {
    const [n1, n2, n3] = await nodes()
    const alice = await peer('alice', [n1!.url])
    const bob = await peer('bob', [n2!.url])
    const carol = await peer('carol', [n3!.url])
    const all = [alice, bob, carol]
    for (let n = 0; n < 40; n++) {
      for (const from of all) for (const to of all) if (from !== to) await from.ilm.send(to.id, { n })
    }
    await waitFor(() => all.every((p) => p.got.length === 80), 'every message handed over')
    for (const from of all) for (const to of all) if (from !== to) expect(seen(to, from)).toEqual(upTo(40))
    await waitFor(() => alice.statuses.filter((s) => s.status === 'delivered').length === 80, 'alice sees all delivered')
  })

  it('a node killed with SIGKILL mid-stream: its peers fail over to another node and nothing is lost or doubled', async () => {
    const all = await nodes()
    const alice = await peer(
      'alice',
      all.map((n) => n.url),
    )
    const bob = await peer(
      'bob',
      all.map((n) => n.url),
    )
    const nodeOf = (p: Peer): string | undefined => (p.transport.state as { url?: string }).url
    const victim = all.find((n) => n.url === nodeOf(alice))!
    const sends: Promise<unknown>[] = []
    for (let n = 0; n < 300; n++) {
      sends.push(alice.ilm.send('bob', { n }))
      sends.push(bob.ilm.send('alice', { n }))
      if (n === 100) {
        await waitFor(() => bob.got.length > 20, 'traffic flowing before the kill')
        await victim.kill()
      }
      if (n % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await Promise.all(sends)
    await waitFor(() => alice.got.length === 300 && bob.got.length === 300, 'all 600 handed over after the fail-over', 60_000)
    expect(seen(bob, alice)).toEqual(upTo(300))
    expect(seen(alice, bob)).toEqual(upTo(300))
    expect(alice.transport.state.status).toBe('online')
    expect(nodeOf(alice)).not.toBe(victim.url)
  })

  it('a peer that was offline receives from its mailbox in Redis, through any node', async () => {
    const [n1, n2, n3] = await nodes()
    // Bob was online once (through node 2): his keys are in the directory, so alice can seal for him.
    const bobStore = new MemoryStore()
    await registerClusterPeer('bob', [n2!.url], SECRET, bobStore)
    const alice = await peer('alice', [n1!.url])
    const ids: string[] = []
    for (let n = 0; n < 20; n++) ids.push((await alice.ilm.send('bob', { n })).id)
    await waitFor(() => alice.statuses.filter((s) => s.status === 'stored').length === 20, 'alice told 20 are stored')
    const bob = await openClusterPeer('bob', [n3!.url], SECRET, cleanups, bobStore)
    await waitFor(() => bob.got.length === 20, 'bob receives the stored 20 from another node')
    expect(seen(bob, alice)).toEqual(upTo(20))
    await waitFor(async () => (await alice.ilm.status(ids[19]!)) === 'delivered', 'alice sees delivered')
    const carol = await peer('carol', [n2!.url])
    await carol.ilm.send('bob', { n: 0 })
    await waitFor(() => seen(bob, carol).length === 1, 'live traffic after the drain')
  })

  it('recovers when Redis restarts: logins and routing work again, nothing sent meanwhile is lost', async () => {
    const [n1, n2] = await nodes(2)
    const alice = await peer('alice', [n1!.url])
    const bob = await peer('bob', [n2!.url])
    await alice.ilm.send('bob', { n: 0 })
    await waitFor(() => bob.got.length === 1, 'first message')
    const DURATION = 'intersession_relay_redis_command_duration_seconds_count'
    const ERRORS = 'intersession_relay_redis_command_errors_total'
    const before = await scrapeMetrics(n1!.port)
    expect(before.sum(DURATION, { command: 'SPUBLISH' })).toBeGreaterThan(0)
    expect(before.sum(DURATION, { node: String(n1!.logs().find((e) => e.event === 'listening')?.node) })).toBe(before.sum(DURATION))
    const offline: string[] = []
    alice.ilm.on('peer-offline', (e) => void offline.push(e.peer))
    await redis.kill()
    for (let n = 1; n < 30; n++) await alice.ilm.send('bob', { n })
    await new Promise((resolve) => setTimeout(resolve, 500))
    // Her node could not route them and said so (undeliverable: unavailable), but bob never went offline: her engine
    // keeps sending to him (it would otherwise wait for a presence change that nothing sends).
    expect(offline).toEqual([])
    // Every command sent while Redis was down failed, and was timed too.
    const down = await scrapeMetrics(n1!.port)
    expect(down.sum(ERRORS)).toBeGreaterThan(before.sum(ERRORS))
    expect(down.sum(DURATION)).toBeGreaterThan(before.sum(DURATION))
    await redis.restart()
    for (let n = 30; n < 60; n++) await alice.ilm.send('bob', { n })
    await waitFor(() => bob.got.length === 60, 'all 60 after the restart', 60_000)
    expect(seen(bob, alice)).toEqual(upTo(60))
    const carol = await peer('carol', [n1!.url])
    await carol.ilm.send('bob', { n: 0 })
    await waitFor(() => bob.got.some((m) => m.from === 'carol'), 'a login after the restart is routed')
    // On a loaded machine this once took over 30 s (a clean-clone run); the wait above allows 60 s, and so does the test.
  }, 90_000)

  /** Kills Redis, has `alice` send bob 9 more meanwhile (refused by her `node`), and restarts it; resolves with when. */
  async function outage(node: RelayProcess, alice: Peer): Promise<number> {
    await redis.kill()
    for (let n = 1; n < 10; n++) await alice.ilm.send('bob', { n })
    await waitFor(() => node.logs().some((e) => e.event === 'cluster_failed' && e.operation === 'route'), 'a frame refused during the outage')
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    await redis.restart()
    return Date.now()
  }

  it('after a Redis outage a sender hears at once that its peer is reachable again, not at its backed-off retransmission', async () => {
    const [n1, n2] = await nodes(2)
    // Longer than the wait below: only the relay's word (available) can deliver in time.
    const RETRANSMIT_MS = 20_000
    const alice = await openClusterPeer('alice', [n1!.url], SECRET, cleanups, undefined, RETRANSMIT_MS)
    const bob = await openClusterPeer('bob', [n2!.url], SECRET, cleanups, undefined, RETRANSMIT_MS)
    await alice.ilm.send('bob', { n: 0 })
    await waitFor(() => bob.got.length === 1, 'first message')
    const restarted = await outage(n1!, alice)
    await waitFor(() => bob.got.length === 10, 'the nine sent during the outage', RETRANSMIT_MS / 2)
    console.log(`after a Redis outage: delivered ${Date.now() - restarted} ms after the restart (retransmission ${RETRANSMIT_MS} ms)`)
    expect(seen(bob, alice)).toEqual(upTo(10))
  }, 60_000)

  it("after a Redis outage a sender to an offline peer's mailbox hears at once that it can store again", async () => {
    const [n1, n2] = await nodes(2)
    const RETRANSMIT_MS = 20_000
    // Bob was online once (his keys are in the directory), and is offline now: alice sends to his mailbox.
    await registerClusterPeer('bob', [n2!.url], SECRET, new MemoryStore())
    const alice = await openClusterPeer('alice', [n1!.url], SECRET, cleanups, undefined, RETRANSMIT_MS)
    const stored = (): number => alice.statuses.filter((s) => s.status === 'stored').length
    await alice.ilm.send('bob', { n: 0 })
    await waitFor(() => stored() === 1, 'the first stored')
    const restarted = await outage(n1!, alice)
    await waitFor(() => stored() === 10, 'the nine sent during the outage stored', RETRANSMIT_MS / 2).catch((error: unknown) => {
      // Seen once in a full run (not reproduced): what the relay and alice saw, to tell a failed put from a lost `available`.
      const errors = n1!.logs().filter((e) => e.level === 'error' || e.event === 'available')
      throw new Error(
        `${String(error)}; statuses ${JSON.stringify(alice.statuses.map((s) => [s.seq, s.status]))}; relay ${JSON.stringify(errors).slice(0, 4000)}`,
      )
    })
    console.log(`after a Redis outage: stored for an offline peer ${Date.now() - restarted} ms after the restart (retransmission ${RETRANSMIT_MS} ms)`)
  }, 60_000)

  it('a watch begun while Redis is down tells nothing false, then the truth once Redis is back, and later changes', async () => {
    const [n1, n2] = await nodes(2)
    const login = async (url: string, id: string): Promise<RawClient> => {
      const client = await RawClient.login(url, await createToken({ secret: SECRET, peerId: id }))
      cleanups.push(() => client.terminate())
      return client
    }
    const erin = await login(n2!.url, 'erin')
    const watcher = await login(n1!.url, 'frank')
    await redis.kill()
    watcher.send({ t: 'watch', peers: ['erin'] })
    await waitFor(() => n1!.logs().some((e) => e.event === 'cluster_failed' && e.operation === 'watch'), "the watch's subscription refused")
    await watcher.barrier()
    // Not known, so not "offline" (which would have the watcher's engine stop sending to erin until she changes).
    expect(watcher.received.filter((m) => m.t === 'presence' || m.t === 'available')).toEqual([])
    await redis.restart()
    expect(await watcher.next('available', (m) => m.peer === 'erin', 10_000)).toEqual({ t: 'available', peer: 'erin', online: true })
    // The watch's subscription to erin's changes on n2 holds now too.
    erin.terminate()
    await watcher.next('presence', (m) => m.peer === 'erin' && !m.online, 10_000)
  }, 60_000)

  it('a stalled Redis (SIGSTOP): a login is refused 1013 within --cluster-timeout-ms, and welcomed once Redis answers again', async () => {
    const [n1, n2] = await nodes(2, ['--cluster-timeout-ms', '500'])
    const token = await createToken({ secret: SECRET, peerId: 'gina' })
    const watcher = await RawClient.login(n2!.url, await createToken({ secret: SECRET, peerId: 'hal' }))
    cleanups.push(() => watcher.terminate())
    watcher.send({ t: 'watch', peers: ['gina'] })
    await watcher.next('presence', (m) => m.peer === 'gina' && !m.online)
    const stalled = await RawClient.connect(n1!.url)
    cleanups.push(() => stalled.terminate())
    redis.pause()
    cleanups.push(() => redis.resume())
    const started = Date.now()
    stalled.send({ t: 'auth', token })
    expect((await stalled.closed).code).toBe(1013)
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(n1!.logs().some((e) => e.event === 'cluster_failed' && e.operation === 'claim' && /took over 500 ms/.test(String(e.message)))).toBe(true)
    redis.resume()
    // The given-up claim stops at its next step once Redis answers, and is released: gina is not online anywhere.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(watcher.received.filter((m) => m.t === 'presence' && m.online)).toEqual([])
    const gina = await RawClient.login(n1!.url, token)
    cleanups.push(() => gina.terminate())
    await watcher.next('presence', (m) => m.peer === 'gina' && m.online)
  }, 60_000)

  it('a stalled Redis (SIGSTOP) mid-stream: frames routed through it are given up within --cluster-timeout-ms, and once it answers every message arrives once, in order, live or from the mailbox', async () => {
    const [n1, n2] = await nodes(2, ['--cluster-timeout-ms', '500'])
    const bobStore = new MemoryStore()
    await registerClusterPeer('bob', [n2!.url], SECRET, bobStore)
    const alice = await peer('alice', [n1!.url])
    const carol = await peer('carol', [n2!.url])
    await alice.ilm.send('carol', { n: 0 })
    await alice.ilm.send('bob', { n: 0 })
    await waitFor(() => carol.got.length === 1 && alice.statuses.some((s) => s.status === 'stored'), 'both paths work')
    redis.pause()
    cleanups.push(() => redis.resume())
    for (let n = 1; n < 10; n++) {
      await alice.ilm.send('carol', { n })
      await alice.ilm.send('bob', { n })
    }
    // Routing comes first: a frame for bob (offline) asks Redis where he is before it goes to his mailbox.
    const givenUp = (to: string): boolean => n1!.logs().some((e) => e.event === 'cluster_failed' && e.to === to && /took over 500 ms/.test(String(e.message)))
    await waitFor(() => givenUp('carol') && givenUp('bob'), 'frames to carol and bob given up', 10_000)
    redis.resume()
    await waitFor(() => carol.got.length === 10, 'carol gets the rest once Redis answers', 60_000)
    expect(seen(carol, alice)).toEqual(upTo(10))
    await waitFor(() => alice.statuses.filter((s) => s.status === 'stored').length >= 10, "all 10 in bob's mailbox", 60_000)
    const bob = await openClusterPeer('bob', [n1!.url], SECRET, cleanups, bobStore)
    await waitFor(() => bob.got.length === 10, 'bob gets the 10 from his mailbox')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(seen(bob, alice)).toEqual(upTo(10))
  }, 120_000)

  it('a node killed with SIGKILL: watchers on other nodes see its peers go offline within the lease, a slow node is not reaped, a login restores presence', async () => {
    const LEASE_MS = 1_000
    // Nobody of the earlier tests: their SIGKILLed nodes' leases lapse during this test, and the reaper would announce
    // their peers offline too (once a's SIGKILL leaves them held nowhere), before a's own lease lapses.
    const [a, b] = await nodes(2, ['--lease-ms', String(LEASE_MS)])
    const login = async (url: string, id: string): Promise<RawClient> => {
      const client = await RawClient.login(url, await createToken({ secret: SECRET, peerId: id }))
      cleanups.push(() => client.terminate())
      return client
    }
    await login(a!.url, 'dora')
    const watcher = await login(b!.url, 'watcher')
    watcher.send({ t: 'watch', peers: ['dora'] })
    await watcher.next('presence', (m) => m.peer === 'dora' && m.online)
    const nodeOf = (relay: RelayProcess): string => String(relay.logs().find((e) => e.event === 'listening')?.node)
    const redisClient = createClient({ url: redis.url }).on('error', () => {})
    await redisClient.connect()
    cleanups.push(() => redisClient.close())
    // Nodes of the earlier tests (SIGKILLed, default lease) may still be listed: only a and b are looked at.
    const leased = async (): Promise<string[]> => (await redisClient.zRange('ilm:nodes', 0, -1)).filter((n) => n === nodeOf(a!) || n === nodeOf(b!)).sort()
    expect(await leased()).toEqual([nodeOf(a!), nodeOf(b!)].sort())
    expect(await redisClient.sMembers(`ilm:n:{${nodeOf(a!)}}`)).toEqual(['dora'])

    // Stopped (not dead) for two leases: b reaps a's lease, but a still holds dora's subscription, so nobody hears "offline".
    process.kill(a!.pid, 'SIGSTOP')
    cleanups.push(() => {
      try {
        process.kill(a!.pid, 'SIGCONT')
      } catch {
        // Killed by the test already.
      }
    })
    await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS))
    expect(await leased()).toEqual([nodeOf(b!)])
    expect(await redisClient.exists(`ilm:n:{${nodeOf(a!)}}`)).toBe(0)
    process.kill(a!.pid, 'SIGCONT')
    // Two renewals of a: the first registers dora again (a had been reaped).
    await new Promise((resolve) => setTimeout(resolve, LEASE_MS))
    await watcher.barrier()
    expect(watcher.received.filter((m) => m.t === 'presence')).toEqual([])
    expect(await leased()).toEqual([nodeOf(a!), nodeOf(b!)].sort())
    expect(await redisClient.sMembers(`ilm:n:{${nodeOf(a!)}}`)).toEqual(['dora'])

    await a!.kill()
    const killed = Date.now()
    await watcher.next('presence', (m) => m.peer === 'dora' && !m.online, 4 * LEASE_MS)
    const offlineAfterMs = Date.now() - killed
    console.log(`presence: offline seen ${offlineAfterMs} ms after SIGKILL (lease ${LEASE_MS} ms)`)
    // The lease, plus up to a third of it before b's next renewal looks, plus slack for a loaded machine.
    expect(offlineAfterMs).toBeLessThan(LEASE_MS + LEASE_MS / 3 + 1_000)

    expect(await leased()).toEqual([nodeOf(b!)])
    expect(await redisClient.exists(`ilm:n:{${nodeOf(a!)}}`)).toBe(0)

    await login(b!.url, 'dora')
    await watcher.next('presence', (m) => m.peer === 'dora' && m.online)
  })
})
