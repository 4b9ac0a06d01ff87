import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { PeerId } from '../../src/core/ids.js'
import type { ClusterHandlers, RelayCluster } from '../../src/relay/cluster/cluster.js'
import { createRedisCluster } from '../../src/relay/cluster/redis.js'
import { startRedisProcess, type RedisProcess } from '../helpers/redis-process.js'

interface Node {
  readonly cluster: RelayCluster
  readonly events: string[]
  readonly frames: { to: string; bytes: number[] }[]
}

const alice = 'alice' as PeerId
const bob = 'bob' as PeerId

async function node(url: string, prefix: string, options: { timeoutMs?: number; nodeId?: string } = {}): Promise<Node> {
  const events: string[] = []
  const frames: { to: string; bytes: number[] }[] = []
  const cluster = createRedisCluster({ url, prefix, ...options })
  const handlers: ClusterHandlers = {
    frame: (to, envelope) => frames.push({ to, bytes: [...envelope] }),
    text: (to, text) => events.push(`text ${to} ${text}`),
    replaced: (peer) => events.push(`replaced ${peer}`),
    mail: (to) => events.push(`mail ${to}`),
    presence: (peer, online) => events.push(`presence ${peer} ${online}`),
  }
  await cluster.start(handlers)
  return { cluster, events, frames }
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('createRedisCluster against a real redis-server', () => {
  let redis: RedisProcess
  beforeAll(async () => {
    redis = await startRedisProcess({ persistence: 'none' }) // pub/sub only: nothing to persist
  })
  afterAll(async () => {
    await redis?.stop() // undefined when beforeAll failed, whose error is the one to show
  })
  afterEach(() => redis.resume()) // a test that failed while Redis was paused must not hang the next

  it('routes to the node holding the peer, reports presence, and replaces older claims', async () => {
    const a = await node(redis.url, 'route:')
    const b = await node(redis.url, 'route:')
    try {
      expect(await b.cluster.sendFrame(alice, Uint8Array.of(1))).toBe(false)
      await b.cluster.watch(alice)
      await a.cluster.claim(alice)
      await until(() => b.events.includes('presence alice true'))
      expect(await b.cluster.isOnline(alice)).toBe(true)
      expect(await b.cluster.isOnline(bob)).toBe(false)

      expect(await b.cluster.sendFrame(alice, Uint8Array.of(1, 2, 255))).toBe(true)
      expect(await b.cluster.sendText(alice, '{"t":"signal"}')).toBe(true)
      await b.cluster.mail(alice)
      await until(() => a.events.includes('mail alice'))
      expect(a.frames).toEqual([{ to: 'alice', bytes: [1, 2, 255] }])
      expect(a.events).toContain('text alice {"t":"signal"}')

      await b.cluster.claim(alice)
      await until(() => a.events.includes('replaced alice'))
      expect(b.events).not.toContain('replaced alice')
      await a.cluster.release(alice)
      expect(await a.cluster.isOnline(alice)).toBe(true)
      await b.cluster.release(alice)
      await until(() => b.events.includes('presence alice false'))
      expect(await a.cluster.isOnline(alice)).toBe(false)
    } finally {
      await a.cluster.close()
      await b.cluster.close()
    }
  })

  it('fails fast while Redis is down and recovers its subscriptions after a restart', async () => {
    const a = await node(redis.url, 'restart:')
    const b = await node(redis.url, 'restart:')
    try {
      await a.cluster.claim(alice)
      await redis.kill()
      const started = Date.now()
      await expect(b.cluster.sendFrame(alice, Uint8Array.of(7))).rejects.toBeInstanceOf(Error)
      expect(Date.now() - started).toBeLessThan(1_000)
      await redis.restart()
      let delivered = false
      const end = Date.now() + 10_000
      while (!delivered && Date.now() < end) {
        delivered = await b.cluster.sendFrame(alice, Uint8Array.of(8)).catch(() => false)
        if (!delivered) await new Promise((resolve) => setTimeout(resolve, 50))
      }
      expect(delivered).toBe(true)
      await until(() => a.frames.some((f) => f.bytes[0] === 8))
      expect(a.frames.some((f) => f.bytes[0] === 7)).toBe(false)
    } finally {
      await a.cluster.close()
      await b.cluster.close()
    }
  })

  it('gives up a claim Redis does not answer within timeoutMs, does not hold later claims behind it, and leaves nothing once Redis answers', async () => {
    const a = await node(redis.url, 'hung:', { timeoutMs: 300 })
    const b = await node(redis.url, 'hung:')
    try {
      redis.pause()
      const first = Date.now()
      const given = a.cluster.claim(alice)
      const again = a.cluster.claim(alice)
      await expect(given).rejects.toMatchObject({ name: 'IlmError', code: 'TRANSPORT_FAILED' })
      expect(Date.now() - first).toBeLessThan(2_000)
      const second = Date.now()
      // The second waited for the first only until it was given up, then had its own bound.
      await expect(again).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' })
      expect(Date.now() - second).toBeLessThan(2_000)
      redis.resume()
      // Their commands now answer: each claim stops at its next step and is released; alice is held nowhere.
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await b.cluster.isOnline(alice)).toBe(false)
      expect(await b.cluster.sendFrame(alice, Uint8Array.of(1))).toBe(false)
      await a.cluster.claim(alice)
      expect(await b.cluster.isOnline(alice)).toBe(true)
      expect(await b.cluster.sendFrame(alice, Uint8Array.of(2))).toBe(true)
      await until(() => a.frames.some((f) => f.bytes[0] === 2))
    } finally {
      await a.cluster.close()
      await b.cluster.close()
    }
  })

  it('gives up a release Redis does not answer within timeoutMs: a claim after it waits for it only that long, and the peer ends where the last answered call left it', async () => {
    const a = await node(redis.url, 'release:', { timeoutMs: 300 })
    const b = await node(redis.url, 'release:')
    try {
      await a.cluster.claim(alice)
      redis.pause()
      const started = Date.now()
      const released = a.cluster.release(alice)
      const claimed = a.cluster.claim(alice)
      await expect(released).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' })
      await expect(claimed).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' })
      expect(Date.now() - started).toBeLessThan(3_000)
      redis.resume()
      // The release's unsubscribe answers (it then stops), the claim's first publish too (it stops, and is released).
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await b.cluster.isOnline(alice)).toBe(false)
      await a.cluster.claim(alice)
      expect(await b.cluster.isOnline(alice)).toBe(true)
    } finally {
      await a.cluster.close()
      await b.cluster.close()
    }
  })

  it('gives up a watch Redis does not answer within timeoutMs; tried again, it holds once Redis answers', async () => {
    const a = await node(redis.url, 'watch:')
    const b = await node(redis.url, 'watch:', { timeoutMs: 300 })
    try {
      redis.pause()
      const started = Date.now()
      await expect(b.cluster.watch(bob)).rejects.toMatchObject({ name: 'IlmError', code: 'TRANSPORT_FAILED' })
      expect(Date.now() - started).toBeLessThan(2_000)
      redis.resume()
      await b.cluster.watch(bob)
      await a.cluster.claim(bob)
      await until(() => b.events.includes('presence bob true'))
    } finally {
      await a.cluster.close()
      await b.cluster.close()
    }
  })

  it('gives up a frame forwarded to another node and a presence lookup that Redis does not answer within timeoutMs', async () => {
    const a = await node(redis.url, 'forward:')
    const b = await node(redis.url, 'forward:', { timeoutMs: 300 })
    try {
      await a.cluster.claim(alice)
      redis.pause()
      const start = Date.now()
      await expect(b.cluster.sendFrame(alice, Uint8Array.of(1))).rejects.toMatchObject({ name: 'IlmError', code: 'TRANSPORT_FAILED' })
      await expect(b.cluster.isOnline(alice)).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' })
      expect(Date.now() - start).toBeLessThan(2_000)
      redis.resume()
      // Written before it was given up, the frame went out once Redis answered (its sender would send it again).
      expect(await b.cluster.sendFrame(alice, Uint8Array.of(2))).toBe(true)
      await until(() => a.frames.some((f) => f.bytes[0] === 2))
      expect(a.frames.map((f) => f.bytes[0])).toEqual([1, 2])
    } finally {
      await a.cluster.close()
      await b.cluster.close()
    }
  })

  it('undoes a claim that failed after subscribing, so that the peer is not taken for online here', async () => {
    const a = await node(redis.url, 'partial:', { nodeId: 'node-a' })
    const b = await node(redis.url, 'partial:')
    const raw = createClient({ url: redis.url })
    await raw.connect()
    try {
      // The node's set of held peers is a string now: registering alice there (after her subscription) fails.
      await raw.set('partial:n:{node-a}', 'not a set')
      await expect(a.cluster.claim(alice)).rejects.toThrow(/WRONGTYPE/)
      const end = Date.now() + 5_000
      while ((await b.cluster.isOnline(alice)) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20))
      expect(await b.cluster.isOnline(alice)).toBe(false)
      expect(await b.cluster.sendFrame(alice, Uint8Array.of(3))).toBe(false)
      await raw.del('partial:n:{node-a}')
      await a.cluster.claim(alice)
      expect(await b.cluster.isOnline(alice)).toBe(true)
    } finally {
      await raw.close()
      await a.cluster.close()
      await b.cluster.close()
    }
  })
})
