/**
 * RedisMailbox against a real redis-server (AOF, `appendfsync always`, and
 * the mailbox's durability `fsync`; the policies themselves are tested in
 * redis-durability.test.ts): the mailbox contract
 * (src/relay/mailbox/contract.ts, which mailbox.test.ts runs for MemoryMailbox
 * and LevelMailbox), so all three are held to one semantics; then what only
 * Redis has: several nodes on one mailbox, the expiry index, and Redis going
 * away and coming back.
 */
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { isIlmError } from '../../src/core/errors.js'
import type { Mailbox, MailboxRecord, Tombstone } from '../../src/relay/mailbox/mailbox.js'
import { mailboxContract } from '../../src/relay/mailbox/contract.js'
import { RedisMailbox } from '../../src/relay/mailbox/redis.js'
import { runContract } from '../helpers/contract.js'
import { startRedisProcess, type RedisProcess } from '../helpers/redis-process.js'

const LIMITS = { maxMessages: 100, maxBytes: 1_000_000 }
const E1 = '0000000a1.epochone'
const encoder = new TextEncoder()

function msg(from: string, epoch: string, seq: number, extra: Partial<MailboxRecord> = {}): MailboxRecord {
  return { kind: 'msg', from, epoch, seq, id: `m-${from}-${seq}`, size: 8, storedAt: 1_000, ...extra }
}

const tombstone: Tombstone = (to, entry) => encoder.encode(`skip ${to} ${entry.from} ${entry.seq}`)

let redis: RedisProcess
let prefixes = 0
const open: Mailbox[] = []

async function redisMailbox(prefix = `t${++prefixes}:`): Promise<RedisMailbox> {
  const box = await RedisMailbox.open({ url: redis.url, prefix, durability: 'fsync' })
  open.push(box)
  return box
}

beforeAll(async () => {
  redis = await startRedisProcess({ persistence: 'aof-always' })
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((box) => box.close()))
})
afterAll(async () => {
  await redis?.stop() // undefined when beforeAll failed, whose error is the one to show
})

describe('RedisMailbox', () => {
  runContract(mailboxContract(() => redisMailbox()))
})

describe('RedisMailbox across nodes and Redis failures', () => {
  it('gives two nodes one mailbox: duplicates, limits, acks and expiry hold across them', async () => {
    const a = await redisMailbox('nodes:')
    const b = await redisMailbox('nodes:')
    const stored = await a.put('bob', msg('alice', E1, 1), Uint8Array.of(1, 2, 255), LIMITS)
    expect(await b.put('bob', msg('alice', E1, 1), Uint8Array.of(7), LIMITS)).toEqual({ ...stored, duplicate: true })
    const [item] = await b.read('bob', undefined, 10)
    expect(item && [...item.frame]).toEqual([1, 2, 255])

    // Racing puts from both nodes: the limit holds exactly.
    const limits = { maxMessages: 10, maxBytes: 1_000 }
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).put('carol', msg('alice', E1, i), Uint8Array.of(i), limits)))
    expect(results.filter((result) => result.ok)).toHaveLength(10)
    expect(await a.size('carol')).toEqual({ entries: 10, bytes: 80 })
    expect(await b.ack('carol', 'alice', E1, 100)).toBe(10)
    expect(await a.size('carol')).toEqual({ entries: 0, bytes: 0 })

    // Both nodes sweep at once: each expired message is reported once.
    for (let seq = 2; seq <= 40; seq++) await a.put('bob', msg('alice', E1, seq, { storedAt: 10 }), Uint8Array.of(seq), LIMITS)
    const [fromA, fromB] = await Promise.all([a.expire(1_000_000, tombstone), b.expire(1_000_000, tombstone)])
    const seqs = [...fromA, ...fromB].map(({ entry }) => entry.seq).sort((x, y) => x - y)
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    expect((await a.read('bob', undefined, 100)).every(({ entry }) => entry.kind === 'skip')).toBe(true)
  })

  it('finds an older entry put after newer ones, before and after a sweep', async () => {
    const box = await redisMailbox()
    await box.put('bob', msg('alice', E1, 1, { storedAt: 500 }), Uint8Array.of(1), LIMITS)
    await box.put('bob', msg('alice', E1, 2, { storedAt: 50 }), Uint8Array.of(2), LIMITS)
    expect((await box.expire(100, tombstone)).map(({ entry }) => entry.seq)).toEqual([2])
    await box.put('bob', { kind: 'ack', from: 'carol', epoch: E1, seq: 1, id: '', size: 1, storedAt: 60 }, Uint8Array.of(3), LIMITS)
    expect(await box.expire(100, tombstone)).toEqual([])
    expect(await box.size('bob')).toEqual({ entries: 2, bytes: 8 })
    expect((await box.expire(1_000, tombstone)).map(({ entry }) => entry.seq)).toEqual([1])
  })

  it('repairs the expiry index on a resend when the put that stored the message failed after its script', async () => {
    const box = await redisMailbox('repair:')
    await box.put('bob', msg('alice', E1, 1, { storedAt: 10 }), Uint8Array.of(1), LIMITS)
    const raw = createClient({ url: redis.url })
    await raw.connect()
    try {
      await raw.del('repair:e')
    } finally {
      await raw.close()
    }
    expect(await box.expire(100, tombstone)).toEqual([])
    expect(await box.put('bob', msg('alice', E1, 1, { storedAt: 10 }), Uint8Array.of(1), LIMITS)).toMatchObject({ duplicate: true })
    expect((await box.expire(100, tombstone)).map(({ entry }) => entry.seq)).toEqual([1])
  })

  it('resolves with what it expired when a later destination fails, and leaves that one due', async () => {
    const errors: Error[] = []
    const box = await RedisMailbox.open({ url: redis.url, prefix: 'partial:', durability: 'fsync', onError: (error) => errors.push(error) })
    open.push(box)
    await box.put('anna', msg('alice', E1, 1, { storedAt: 10 }), Uint8Array.of(1), LIMITS)
    await box.put('bert', msg('alice', E1, 1, { storedAt: 20 }), Uint8Array.of(1), LIMITS)
    const failing: Tombstone = (to, entry) => {
      if (to === 'bert') throw new Error('tombstone failed')
      return tombstone(to, entry)
    }
    expect((await box.expire(100, failing)).map(({ to }) => to)).toEqual(['anna'])
    expect(errors.map((error) => error.message)).toEqual(['tombstone failed'])
    await expect(box.expire(100, failing)).rejects.toThrow('tombstone failed')
    expect((await box.expire(100, tombstone)).map(({ to }) => to)).toEqual(['bert'])
  })

  it('leaves no keys behind once everything is acked and swept', async () => {
    const box = await redisMailbox('tidy:')
    for (let seq = 1; seq <= 5; seq++) await box.put('bob', msg('alice', E1, seq), Uint8Array.of(seq), LIMITS)
    await box.put('bob', { kind: 'ack', from: 'carol', epoch: E1, seq: 1, id: '', size: 1, storedAt: 5 }, Uint8Array.of(1), LIMITS)
    await box.expire(1_001, tombstone)
    await box.ack('bob', 'alice', E1, 5)
    await box.put('carol', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
    await box.ack('carol', 'alice', E1, 1)
    await box.expire(0, tombstone)
    const raw = createClient({ url: redis.url })
    await raw.connect()
    try {
      expect(await raw.keys('tidy:*')).toEqual(['tidy:e'])
      await box.expire(10_000, tombstone)
      expect(await raw.keys('tidy:*')).toEqual([])
    } finally {
      await raw.close()
    }
  })

  it('rejects with STORE_FAILED while Redis is down and works again once it is back', async () => {
    const errors: Error[] = []
    const box = await RedisMailbox.open({ url: redis.url, prefix: 'restart:', durability: 'fsync', onError: (error) => errors.push(error) })
    open.push(box)
    await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
    await redis.kill()
    const failure = await box.put('bob', msg('alice', E1, 2), Uint8Array.of(2), LIMITS).catch((error: unknown) => error)
    expect(isIlmError(failure, 'STORE_FAILED')).toBe(true)
    expect(await box.size('bob').catch((error: unknown) => isIlmError(error, 'STORE_FAILED'))).toBe(true)
    await redis.restart()
    const end = Date.now() + 5_000
    let result = await box.put('bob', msg('alice', E1, 2), Uint8Array.of(2), LIMITS).catch(() => undefined)
    while (result === undefined && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 25))
      result = await box.put('bob', msg('alice', E1, 2), Uint8Array.of(2), LIMITS).catch(() => undefined)
    }
    expect(result).toMatchObject({ ok: true, duplicate: false })
    // The AOF (appendfsync always) kept what was put before the SIGKILL.
    expect((await box.read('bob', undefined, 10)).map(({ entry }) => entry.seq)).toEqual([1, 2])
    expect(errors.length).toBeGreaterThan(0)
  })

  it('gives a command up after timeoutMs while Redis does not answer (SIGSTOP); a put given up is found a duplicate when sent again', async () => {
    const box = await RedisMailbox.open({ url: redis.url, prefix: 'stalled:', durability: 'fsync', timeoutMs: 300 })
    open.push(box)
    await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
    redis.pause()
    try {
      let start = Date.now()
      const failure = await box.put('bob', msg('alice', E1, 2), Uint8Array.of(2), LIMITS).catch((error: unknown) => error)
      expect(failure).toMatchObject({ name: 'IlmError', code: 'STORE_FAILED' })
      expect(String(failure)).toMatch(/no answer from Redis within 300 ms/)
      expect(Date.now() - start).toBeLessThan(2_000)
      start = Date.now()
      await expect(box.read('bob', undefined, 10)).rejects.toMatchObject({ code: 'STORE_FAILED' })
      await expect(box.ack('bob', 'alice', E1, 1)).rejects.toMatchObject({ code: 'STORE_FAILED' })
      expect(Date.now() - start).toBeLessThan(2_000)
    } finally {
      redis.resume()
    }
    // The put given up was written: Redis runs it once it answers, and the sender's next try is a duplicate of it.
    expect(await box.put('bob', msg('alice', E1, 2), Uint8Array.of(2), LIMITS)).toMatchObject({ ok: true, duplicate: true })
    expect((await box.read('bob', undefined, 10)).map(({ entry }) => entry.seq)).toEqual([2])
  })

  it('counts totals under its own prefix only, with glob characters in it taken literally', async () => {
    // Unescaped, `b[a]\?^-:` would miss its own keys, and `g*:` would walk those of `g:` and `gx:`.
    const star = await redisMailbox('g*:')
    const brackets = await redisMailbox('b[a]\\?^-:')
    const plain = await redisMailbox('g:')
    const other = await redisMailbox('gx:')
    await plain.put('bob', msg('alice', E1, 1, { size: 6 }), Uint8Array.of(1), LIMITS)
    await other.put('bob', msg('alice', E1, 1, { size: 5 }), Uint8Array.of(1), LIMITS)
    await star.put('carol', msg('alice', E1, 1, { size: 7 }), Uint8Array.of(1), LIMITS)
    await brackets.put('dave', msg('alice', E1, 1, { size: 8 }), Uint8Array.of(1), LIMITS)
    expect(await star.totals()).toEqual({ entries: 1, bytes: 7 })
    expect(await brackets.totals()).toEqual({ entries: 1, bytes: 8 })
    expect(await plain.totals()).toEqual({ entries: 1, bytes: 6 })
    await star.close()
    await expect(star.totals()).rejects.toThrow(/closed/)
  })

  it('refuses misuse at once', async () => {
    const box = await redisMailbox()
    await expect(box.put('', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)).rejects.toThrow(TypeError)
    await expect(box.put('bob', msg('alice', E1, -1), Uint8Array.of(1), LIMITS)).rejects.toThrow(RangeError)
    await expect(box.read('bob', 'not-a-key', 10)).rejects.toThrow(TypeError)
    await expect(box.remove('bob', [1 as unknown as string])).rejects.toThrow(TypeError)
    await expect(box.ack('bob', 'alice', E1, 1.5)).rejects.toThrow(TypeError)
    await expect(box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), { maxMessages: -1, maxBytes: 1 })).rejects.toThrow(TypeError)
    expect(await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), { maxMessages: Infinity, maxBytes: Infinity })).toMatchObject({ ok: true })
    await expect(RedisMailbox.open({ url: redis.url, prefix: 'a{b}:' })).rejects.toThrow(TypeError)
    await expect(RedisMailbox.open({ url: redis.url, durability: 'sometimes' as never })).rejects.toThrow(TypeError)
    await expect(RedisMailbox.open({ url: redis.url, durability: 'replica', replicaTimeoutMs: 0 })).rejects.toThrow(RangeError)
    await expect(RedisMailbox.open({ url: redis.url, timeoutMs: 0 })).rejects.toThrow(RangeError)
  })
})
