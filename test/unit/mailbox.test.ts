/**
 * The mailbox contract (src/relay/mailbox/contract.ts, which
 * mailbox-redis.test.ts runs for RedisMailbox) for MemoryMailbox and
 * LevelMailbox; then what only LevelMailbox has: a reopen.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Mailbox, MailboxRecord } from '../../src/relay/mailbox/mailbox.js'
import { mailboxContract } from '../../src/relay/mailbox/contract.js'
import { LevelMailbox } from '../../src/relay/mailbox/level.js'
import { MemoryMailbox } from '../../src/relay/mailbox/memory.js'
import { runContract } from '../helpers/contract.js'

const LIMITS = { maxMessages: 100, maxBytes: 10_000 }
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function msg(from: string, seq: number, size = 10, storedAt = 1000, epoch = 'e1'): MailboxRecord {
  return { kind: 'msg', from, epoch, seq, id: `${from}-${seq}`, size, storedAt }
}

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)

async function seqsOf(box: Mailbox, to: string): Promise<string[]> {
  return (await box.read(to, undefined, 1000)).map(({ entry }) => `${entry.kind}:${entry.from}:${entry.seq}`)
}

async function levelMailbox(): Promise<{ box: Mailbox; reopen: () => Promise<Mailbox> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbox-unit-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const box = await LevelMailbox.open(dir)
  let current: Mailbox = box
  cleanups.push(() => current.close())
  return {
    box,
    reopen: async () => {
      await current.close()
      current = await LevelMailbox.open(dir)
      return current
    },
  }
}

describe('MemoryMailbox', () => {
  runContract(mailboxContract(async () => new MemoryMailbox()))
})

describe('LevelMailbox', () => {
  runContract(mailboxContract(async () => (await levelMailbox()).box))
})

describe('LevelMailbox on disk', () => {
  it('survives a reopen with order, counters, dedup and frames intact, and keeps counting keys upward', async () => {
    const { box, reopen } = await levelMailbox()
    await box.put('bob', msg('alice', 0), bytes(10, 1), LIMITS)
    await box.put('bob', msg('alice', 1), bytes(10, 2), LIMITS)
    await box.put('carol', msg('alice', 0), bytes(10, 3), LIMITS)
    await box.ack('bob', 'alice', 'e1', 0)
    const again = await reopen()
    expect(await seqsOf(again, 'bob')).toEqual(['msg:alice:1'])
    expect((await again.read('carol', undefined, 5))[0]!.frame).toEqual(bytes(10, 3))
    expect(await again.size('bob')).toEqual({ entries: 1, bytes: 10 })
    expect(await again.put('bob', msg('alice', 1), bytes(10), LIMITS)).toMatchObject({ duplicate: true })
    await again.put('bob', msg('alice', 2), bytes(10), LIMITS)
    expect(await seqsOf(again, 'bob')).toEqual(['msg:alice:1', 'msg:alice:2'])
  })

  it('after a reopen, entries keep every field and the retention sweep expires what it loaded, in or out of storedAt order', async () => {
    const { box, reopen } = await levelMailbox()
    await box.put('bob', { ...msg('alice', 0, 10, 500), expiresAt: 9_000 }, bytes(10, 1), LIMITS)
    await box.put('bob', msg('alice', 1, 10, 300), bytes(10, 2), LIMITS)
    await box.put('bob', { kind: 'notice', from: 'carol', epoch: 'e9', seq: 4, id: 'n', size: 0, storedAt: 100, reason: 'retention' }, bytes(0), LIMITS)
    await box.put('bob', msg('alice', 2, 10, 2_000), bytes(10, 3), LIMITS)
    const before = (await box.read('bob', undefined, 10)).map(({ entry }) => entry)
    const again = await reopen()
    expect((await again.read('bob', undefined, 10)).map(({ entry }) => entry)).toEqual(before)
    const skip = (to: string, entry: { seq: number }): Uint8Array => new TextEncoder().encode(`skip:${to}:${entry.seq}`)
    expect((await again.expire(1_000, skip)).map(({ entry }) => entry.seq).sort()).toEqual([0, 1])
    expect(await seqsOf(again, 'bob')).toEqual(['skip:alice:0', 'skip:alice:1', 'notice:carol:4', 'msg:alice:2'])
    expect((await again.read('bob', undefined, 1))[0]!.entry).toMatchObject({ kind: 'skip', reason: 'retention', expiresAt: 9_000 })
  })

  it('keeps key bundles across a reopen, apart from the entries it loads', async () => {
    const { box, reopen } = await levelMailbox()
    await box.putKeys('alice', bytes(700, 5))
    await box.putKeys('bob', bytes(3, 1))
    await box.putKeys('bob', bytes(4, 2))
    const again = await reopen()
    expect(await again.getKeys('alice')).toEqual(bytes(700, 5))
    expect(await again.getKeys('bob')).toEqual(bytes(4, 2))
    expect(await again.getKeys('carol')).toBeUndefined()
    expect(again.totals!()).toEqual({ entries: 0, bytes: 0 })
  })
})

describe('LevelMailbox totals (the /metrics gauges; the contract checks them through every change)', () => {
  it('are rebuilt from disk at open', async () => {
    const { box, reopen } = await levelMailbox()
    await box.put('bob', msg('alice', 0, 10), bytes(10), LIMITS)
    await box.put('bob', msg('alice', 1, 20), bytes(20), LIMITS)
    await box.put('carol', { kind: 'ack', from: 'dave', epoch: 'e9', seq: 4, id: '', size: 5, storedAt: 5000 }, bytes(5), LIMITS)
    await box.ack('bob', 'alice', 'e1', 0)
    expect(box.totals!()).toEqual({ entries: 2, bytes: 20 })
    const again = await reopen()
    expect(again.totals!()).toEqual({ entries: 2, bytes: 20 })
    await again.ack('bob', 'alice', 'e1', 1)
    expect(again.totals!()).toEqual({ entries: 1, bytes: 0 })
  })
})

/** A MemoryMailbox with one planted fault. */
class FaultyMailbox extends MemoryMailbox {
  constructor(private readonly fault: string) {
    super()
  }
  override async put(...args: Parameters<MemoryMailbox['put']>): ReturnType<MemoryMailbox['put']> {
    const [to, record, frame, limits] = args
    if (this.fault === 'limits off by one') return super.put(to, record, frame, { maxMessages: limits.maxMessages + 1, maxBytes: limits.maxBytes + 1 })
    const result = await super.put(to, record, frame, limits)
    return this.fault === 'duplicates pass for new' && result.ok ? { ...result, duplicate: false } : result
  }
  override async read(...args: Parameters<MemoryMailbox['read']>): ReturnType<MemoryMailbox['read']> {
    const [to, after, limit] = args
    if (this.fault === 'read ignores after') return super.read(to, undefined, limit)
    const items = await super.read(to, after, limit)
    return this.fault === 'read out of order' ? [...items].reverse() : items
  }
  override ack(...args: Parameters<MemoryMailbox['ack']>): ReturnType<MemoryMailbox['ack']> {
    const [to, from, epoch, upTo] = args
    return super.ack(to, from, epoch, this.fault === 'ack one too far' ? upTo + 1 : upTo)
  }
  override async remove(...args: Parameters<MemoryMailbox['remove']>): Promise<void> {
    if (this.fault !== 'remove does nothing') await super.remove(...args)
  }
  override async expire(...args: Parameters<MemoryMailbox['expire']>): ReturnType<MemoryMailbox['expire']> {
    return this.fault === 'expire does nothing' ? [] : super.expire(...args)
  }
  override async size(to: string): ReturnType<MemoryMailbox['size']> {
    const size = await super.size(to)
    return this.fault === 'size counts an entry too many' ? { ...size, entries: size.entries + 1 } : size
  }
  override totals(): ReturnType<MemoryMailbox['totals']> {
    const totals = super.totals()
    if (this.fault === 'totals count a byte too many') return { ...totals, bytes: totals.bytes + 1 }
    return this.fault === 'totals are read once' ? (this.firstTotals ??= totals) : totals
  }
  private firstTotals: ReturnType<MemoryMailbox['totals']> | undefined
  private lastBundle: Uint8Array | undefined
  private readonly byReference = new Map<string, Uint8Array>()
  override async putKeys(peer: string, bundle: Uint8Array): Promise<void> {
    if (this.fault === 'key bundles keep the first put' && (await super.getKeys(peer)) !== undefined) return
    if (this.fault === 'key bundles are kept by reference') this.byReference.set(peer, bundle)
    this.lastBundle = bundle
    await super.putKeys(peer, bundle)
  }
  override async getKeys(peer: string): Promise<Uint8Array | undefined> {
    if (this.fault === 'key bundles are one for every peer') return this.lastBundle
    if (this.fault === 'key bundles are kept by reference') return this.byReference.get(peer)
    return super.getKeys(peer)
  }
  override async close(): Promise<void> {
    if (this.fault !== 'close does nothing') await super.close()
  }
}

describe('the mailbox contract', () => {
  const faults = [
    'duplicates pass for new',
    'limits off by one',
    'read ignores after',
    'read out of order',
    'ack one too far',
    'remove does nothing',
    'expire does nothing',
    'size counts an entry too many',
    'totals count a byte too many',
    'totals are read once',
    'close does nothing',
    'key bundles keep the first put',
    'key bundles are one for every peer',
    'key bundles are kept by reference',
  ]
  it.each(faults)('fails a mailbox whose %s', async (fault) => {
    const failures: string[] = []
    for (const c of mailboxContract(async () => new FaultyMailbox(fault))) {
      await c.run().catch((error: unknown) => failures.push(`${c.name}: ${String(error)}`))
    }
    expect(failures.length).toBeGreaterThan(0)
    expect(failures.every((failure) => failure.includes('ContractFailure'))).toBe(true)
  })

  it('passes the MemoryMailbox it is planted in', async () => {
    for (const c of mailboxContract(async () => new FaultyMailbox('none'))) await c.run()
  })
})
