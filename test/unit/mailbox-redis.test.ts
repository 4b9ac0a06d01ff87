/**
 * RedisMailbox against a real redis-server (AOF, `appendfsync always`, and
 * the mailbox's durability `fsync`; the policies themselves are tested in
 * redis-durability.test.ts): the same
 * behaviour suite runs for MemoryMailbox and RedisMailbox, so the two are held
 * to one semantics; then what only Redis has: several nodes on one mailbox,
 * the expiry index, and Redis going away and coming back.
 */
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { isIlmError } from '../../src/core/errors.js'
import type { Mailbox, MailboxEntry, MailboxRecord, Tombstone } from '../../src/relay/mailbox/mailbox.js'
import { MemoryMailbox } from '../../src/relay/mailbox/memory.js'
import { RedisMailbox } from '../../src/relay/mailbox/redis.js'
import { startRedisProcess, type RedisProcess } from '../helpers/redis-process.js'

const LIMITS = { maxMessages: 100, maxBytes: 1_000_000 }
const E1 = '0000000a1.epochone'
const E2 = '0000000b2.epochtwo'
const encoder = new TextEncoder()
const decoder = new TextDecoder()

function msg(from: string, epoch: string, seq: number, extra: Partial<MailboxRecord> = {}): MailboxRecord {
  return { kind: 'msg', from, epoch, seq, id: `m-${from}-${seq}`, size: 8, storedAt: 1_000, ...extra }
}

function frameOf(record: MailboxRecord): Uint8Array {
  return encoder.encode(`${record.kind}:${record.from}:${record.seq}`.padEnd(record.size, '.').slice(0, Math.max(record.size, 1)))
}

const tombstone: Tombstone = (to, entry) => encoder.encode(`skip ${to} ${entry.from} ${entry.seq}`)

/** What a mailbox holds for `to`, as comparable plain data. */
async function contents(box: Mailbox, to: string): Promise<{ entry: MailboxEntry; frame: string }[]> {
  return (await box.read(to, undefined, 1_000)).map(({ entry, frame }) => ({ entry, frame: decoder.decode(frame) }))
}

function withoutKeys(items: { entry: MailboxEntry; frame: string }[]): unknown[] {
  return items.map(({ entry: { key: _key, ...record }, frame }) => ({ ...record, frame }))
}

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
  await redis.stop()
})

const implementations: [string, () => Promise<Mailbox>][] = [
  ['MemoryMailbox', async () => new MemoryMailbox()],
  ['RedisMailbox', () => redisMailbox()],
]

describe.each(implementations)('%s', (_name, make) => {
  it('reads entries back in order, in pages after a key, per destination', async () => {
    const box = await make()
    const records: MailboxRecord[] = [
      msg('alice', E1, 1),
      msg('carol', E1, 7, { size: 12, expiresAt: 99_999 }),
      { kind: 'ack', from: 'carol', epoch: E2, seq: 3, id: '', size: 20, storedAt: 1_001 },
      msg('alice', E1, 2),
      { kind: 'notice', from: 'dave', epoch: E1, seq: 9, id: 'n-9', size: 0, storedAt: 1_002, reason: 'retention' },
      { kind: 'skip', from: 'alice', epoch: E1, seq: 3, id: 'm-alice-3', size: 5, storedAt: 1_003, reason: 'full_bytes' },
    ]
    const keys: string[] = []
    for (const record of records) {
      const result = await box.put('bob', record, frameOf(record), LIMITS)
      expect(result).toMatchObject({ ok: true, duplicate: false, entry: record })
      if (result.ok) keys.push(result.entry.key)
    }
    await box.put('erin', msg('alice', E1, 1), frameOf(msg('alice', E1, 1)), LIMITS)

    const all = await contents(box, 'bob')
    expect(all.map(({ entry }) => entry.key)).toEqual(keys)
    expect(withoutKeys(all)).toEqual(records.map((record) => ({ ...record, frame: decoder.decode(frameOf(record)) })))
    const first = await box.read('bob', undefined, 4)
    const rest = await box.read('bob', first.at(-1)!.entry.key, 4)
    expect([...first, ...rest].map(({ entry }) => entry.key)).toEqual(keys)
    expect(rest).toHaveLength(2)
    expect(await box.read('bob', keys.at(-1), 10)).toEqual([])
    expect(await box.read('nobody', undefined, 10)).toEqual([])
    expect(await box.size('bob')).toEqual({ entries: 6, bytes: 8 + 12 + 8 })
    expect(await box.size('erin')).toEqual({ entries: 1, bytes: 8 })
  })

  it('stores each (from, epoch, seq) once, as a msg or a skip', async () => {
    const box = await make()
    const first = await box.put('bob', msg('alice', E1, 1), frameOf(msg('alice', E1, 1)), LIMITS)
    const again = await box.put('bob', msg('alice', E1, 1, { id: 'other', storedAt: 5 }), Uint8Array.of(1), LIMITS)
    const asSkip = await box.put('bob', { ...msg('alice', E1, 1), kind: 'skip', reason: 'full_messages' }, Uint8Array.of(2), LIMITS)
    expect(first.ok && again.ok && asSkip.ok).toBe(true)
    if (!first.ok || !again.ok || !asSkip.ok) return
    expect(again).toEqual({ ok: true, duplicate: true, entry: first.entry })
    expect(asSkip).toEqual({ ok: true, duplicate: true, entry: first.entry })

    expect(await box.put('bob', msg('alice', E2, 1), Uint8Array.of(3), LIMITS)).toMatchObject({ duplicate: false })
    expect(await box.put('bob', msg('carol', E1, 1), Uint8Array.of(4), LIMITS)).toMatchObject({ duplicate: false })
    expect(await box.put('dave', msg('alice', E1, 1), Uint8Array.of(5), LIMITS)).toMatchObject({ duplicate: false })
    const ack = { kind: 'ack', from: 'alice', epoch: E1, seq: 1, id: '', size: 1, storedAt: 1 } as const
    expect(await box.put('bob', ack, Uint8Array.of(6), LIMITS)).toMatchObject({ duplicate: false })
    expect(await box.put('bob', ack, Uint8Array.of(6), LIMITS)).toMatchObject({ duplicate: false })
    expect(await box.size('bob')).toEqual({ entries: 5, bytes: 24 })
  })

  it('refuses a msg beyond the count or byte limit, and other kinds beyond twice the count', async () => {
    const box = await make()
    const limits = { maxMessages: 3, maxBytes: 20 }
    expect(await box.put('bob', msg('alice', E1, 1, { size: 10 }), Uint8Array.of(1), limits)).toMatchObject({ ok: true })
    expect(await box.put('bob', msg('alice', E1, 2, { size: 11 }), Uint8Array.of(2), limits)).toEqual({ ok: false, reason: 'full_bytes' })
    expect(await box.put('bob', msg('alice', E1, 2, { size: 10 }), Uint8Array.of(2), limits)).toMatchObject({ ok: true })
    const skip = (seq: number): MailboxRecord => ({ ...msg('alice', E1, seq, { size: 50 }), kind: 'skip', reason: 'full_bytes' })
    expect(await box.put('bob', skip(3), Uint8Array.of(3), limits)).toMatchObject({ ok: true })
    expect(await box.size('bob')).toEqual({ entries: 3, bytes: 20 })
    expect(await box.put('bob', msg('alice', E1, 4, { size: 0 }), Uint8Array.of(4), limits)).toEqual({ ok: false, reason: 'full_messages' })
    // A duplicate is found before the limits are applied.
    expect(await box.put('bob', msg('alice', E1, 1, { size: 10 }), Uint8Array.of(1), limits)).toMatchObject({ ok: true, duplicate: true })
    for (const seq of [5, 6, 7]) expect(await box.put('bob', skip(seq), Uint8Array.of(seq), limits)).toMatchObject({ ok: true })
    expect(await box.put('bob', skip(8), Uint8Array.of(8), limits)).toEqual({ ok: false, reason: 'full_messages' })
    const notice: MailboxRecord = { kind: 'notice', from: 'carol', epoch: E1, seq: 1, id: 'x', size: 0, storedAt: 1, reason: 'retention' }
    expect(await box.put('bob', notice, new Uint8Array(0), limits)).toEqual({ ok: false, reason: 'full_messages' })
    expect(await box.size('bob')).toEqual({ entries: 6, bytes: 20 })
    expect(await box.put('carol', msg('alice', E1, 4, { size: 20 }), Uint8Array.of(4), limits)).toMatchObject({ ok: true })
  })

  it('acks msgs and skips of one (from, epoch) up to a seq, leaving other streams and kinds', async () => {
    const box = await make()
    const records: MailboxRecord[] = [
      ...[1, 2, 3, 4, 5].map((seq) => msg('alice', E1, seq)),
      { ...msg('alice', E1, 6), kind: 'skip', size: 3, reason: 'full_bytes' },
      msg('alice', E2, 1),
      msg('carol', E1, 2),
      { kind: 'ack', from: 'alice', epoch: E1, seq: 2, id: '', size: 4, storedAt: 1 },
      { kind: 'notice', from: 'alice', epoch: E1, seq: 3, id: 'n', size: 0, storedAt: 1, reason: 'retention' },
    ]
    for (const record of records) await box.put('bob', record, frameOf(record), LIMITS)
    expect(await box.ack('bob', 'alice', E1, 3)).toBe(3)
    expect(await box.ack('bob', 'alice', E1, 3)).toBe(0)
    expect(await box.ack('bob', 'alice', E1, -1)).toBe(0)
    expect(await box.ack('nobody', 'alice', E1, 9)).toBe(0)
    expect((await contents(box, 'bob')).map(({ entry }) => `${entry.kind} ${entry.from} ${entry.epoch === E1 ? 1 : 2} ${entry.seq}`)).toEqual([
      'msg alice 1 4',
      'msg alice 1 5',
      'skip alice 1 6',
      'msg alice 2 1',
      'msg carol 1 2',
      'ack alice 1 2',
      'notice alice 1 3',
    ])
    expect(await box.ack('bob', 'alice', E1, 6)).toBe(3)
    expect(await box.size('bob')).toEqual({ entries: 4, bytes: 16 })
    // Once acked, a seq may be stored again (a new message after the receiver took the old one).
    expect(await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)).toMatchObject({ duplicate: false })
  })

  it('removes entries by key', async () => {
    const box = await make()
    const keys: string[] = []
    for (const seq of [1, 2, 3]) {
      const result = await box.put('bob', msg('alice', E1, seq), Uint8Array.of(seq), LIMITS)
      if (result.ok) keys.push(result.entry.key)
    }
    const other = await box.put('carol', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
    await box.remove('bob', [keys[0]!, keys[0]!, keys[2]!, 'no-such-key', '99999999999999999999-0'])
    await box.remove('bob', [keys[0]!])
    await box.remove('bob', [])
    expect((await contents(box, 'bob')).map(({ entry }) => entry.key)).toEqual([keys[1]])
    expect(await box.size('bob')).toEqual({ entries: 1, bytes: 8 })
    expect(await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)).toMatchObject({ duplicate: false })
    if (other.ok) await box.remove('bob', [other.entry.key])
    expect(await box.size('carol')).toEqual({ entries: 1, bytes: 8 })
  })

  it('expires old msgs into skips in place and old acks away; skips and notices stay', async () => {
    const box = await make()
    const records: MailboxRecord[] = [
      msg('alice', E1, 1, { storedAt: 100 }),
      { kind: 'ack', from: 'carol', epoch: E2, seq: 4, id: '', size: 6, storedAt: 100 },
      { ...msg('alice', E1, 2, { storedAt: 100 }), kind: 'skip', size: 3, reason: 'full_bytes' },
      { kind: 'notice', from: 'carol', epoch: E1, seq: 5, id: 'n', size: 0, storedAt: 100, reason: 'retention' },
      msg('alice', E1, 3, { storedAt: 200 }),
      msg('alice', E1, 4, { storedAt: 120, size: 10, expiresAt: 5_000 }),
    ]
    const stored: MailboxEntry[] = []
    for (const record of records) {
      const result = await box.put('bob', record, frameOf(record), LIMITS)
      if (result.ok) stored.push(result.entry)
    }
    await box.put('carol', msg('alice', E1, 1, { storedAt: 90 }), Uint8Array.of(1), LIMITS)
    const before = await contents(box, 'bob')

    const expired = await box.expire(150, tombstone)
    const byKey = (a: { to: string; entry: MailboxEntry }, b: { to: string; entry: MailboxEntry }): number =>
      a.to.localeCompare(b.to) || stored.findIndex((e) => e.key === a.entry.key) - stored.findIndex((e) => e.key === b.entry.key)
    expect(expired.length).toBe(3)
    expect([...expired].sort(byKey).map(({ to, entry }) => ({ to, seq: entry.seq, kind: entry.kind }))).toEqual([
      { to: 'bob', seq: 1, kind: 'msg' },
      { to: 'bob', seq: 4, kind: 'msg' },
      { to: 'carol', seq: 1, kind: 'msg' },
    ])
    expect(expired.find(({ to, entry }) => to === 'bob' && entry.seq === 1)?.entry).toEqual(stored[0])

    const after = await contents(box, 'bob')
    const skipOf = (item: { entry: MailboxEntry; frame: string }) => {
      const frame = `skip bob ${item.entry.from} ${item.entry.seq}`
      return { entry: { ...item.entry, kind: 'skip', size: encoder.encode(frame).byteLength, reason: 'retention' }, frame }
    }
    expect(after).toEqual([skipOf(before[0]!), before[2], before[3], before[4], skipOf(before[5]!)])
    expect(await box.size('bob')).toEqual({ entries: 5, bytes: 8 })
    expect(await box.expire(150, tombstone)).toEqual([])

    const resent = await box.put('bob', msg('alice', E1, 1), Uint8Array.of(9), LIMITS)
    expect(resent).toEqual({ ok: true, duplicate: true, entry: after[0]!.entry })

    const later = await box.expire(10_000, tombstone)
    expect(later.map(({ to, entry }) => `${to} ${entry.seq}`)).toEqual(['bob 3'])
    expect((await contents(box, 'bob')).map(({ entry }) => entry.kind)).toEqual(['skip', 'skip', 'notice', 'skip', 'skip'])
    expect(await box.size('bob')).toEqual({ entries: 5, bytes: 0 })
    expect(await box.ack('bob', 'alice', E1, 4)).toBe(4)
    expect(await box.size('bob')).toEqual({ entries: 1, bytes: 0 })
  })

  it('rejects every call once closed; close is idempotent', async () => {
    const box = await make()
    await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
    await box.close()
    await box.close()
    await expect(box.put('bob', msg('alice', E1, 2), Uint8Array.of(1), LIMITS)).rejects.toThrow()
    await expect(box.read('bob', undefined, 10)).rejects.toThrow()
    await expect(box.ack('bob', 'alice', E1, 1)).rejects.toThrow()
    await expect(box.remove('bob', [])).rejects.toThrow()
    await expect(box.expire(1, tombstone)).rejects.toThrow()
    await expect(box.size('bob')).rejects.toThrow()
  })
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
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).put('carol', msg('alice', E1, i), Uint8Array.of(i), limits)),
    )
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
  })
})
