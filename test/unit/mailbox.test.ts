import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Mailbox, MailboxRecord } from '../../src/relay/mailbox/mailbox.js'
import { LevelMailbox } from '../../src/relay/mailbox/level.js'
import { MemoryMailbox } from '../../src/relay/mailbox/memory.js'

const LIMITS = { maxMessages: 100, maxBytes: 10_000 }
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function msg(from: string, seq: number, size = 10, storedAt = 1000, epoch = 'e1'): MailboxRecord {
  return { kind: 'msg', from, epoch, seq, id: `${from}-${seq}`, size, storedAt }
}

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)
const tombstone = (to: string, entry: { seq: number }): Uint8Array => new TextEncoder().encode(`skip:${to}:${entry.seq}`)

async function seqsOf(box: Mailbox, to: string): Promise<string[]> {
  return (await box.read(to, undefined, 1000)).map(({ entry }) => `${entry.kind}:${entry.from}:${entry.seq}`)
}

const kinds: [string, () => Promise<{ box: Mailbox; reopen?: () => Promise<Mailbox> }>][] = [
  ['MemoryMailbox', async () => ({ box: new MemoryMailbox() })],
  [
    'LevelMailbox',
    async () => {
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
    },
  ],
]

describe.each(kinds)('%s', (_name, make) => {
  it('keeps entries per destination in put order, stores each seq once, and pages with `after`', async () => {
    const { box } = await make()
    expect((await box.put('bob', msg('alice', 0), bytes(10, 7), LIMITS)).ok).toBe(true)
    await box.put('bob', msg('carol', 0), bytes(10), LIMITS)
    await box.put('bob', msg('alice', 1), bytes(10), LIMITS)
    await box.put('dave', msg('alice', 0), bytes(10), LIMITS)
    const again = await box.put('bob', msg('alice', 0), bytes(10), LIMITS)
    expect(again).toMatchObject({ ok: true, duplicate: true, entry: { seq: 0, from: 'alice' } })
    expect(await seqsOf(box, 'bob')).toEqual(['msg:alice:0', 'msg:carol:0', 'msg:alice:1'])
    const [first, ...rest] = await box.read('bob', undefined, 1)
    expect(rest).toEqual([])
    expect(first!.frame).toEqual(bytes(10, 7))
    expect((await box.read('bob', first!.entry.key, 10)).map(({ entry }) => entry.from)).toEqual(['carol', 'alice'])
    expect(await box.size('bob')).toEqual({ entries: 3, bytes: 30 })
    expect(await box.read('nobody', undefined, 10)).toEqual([])
  })

  it('acks remove the entries of one (sender, epoch) up to a seq, nothing else', async () => {
    const { box } = await make()
    for (let seq = 0; seq < 4; seq++) await box.put('bob', msg('alice', seq), bytes(10), LIMITS)
    await box.put('bob', msg('alice', 0, 10, 1000, 'e2'), bytes(10), LIMITS)
    await box.put('bob', msg('carol', 1), bytes(10), LIMITS)
    expect(await box.ack('bob', 'alice', 'e1', 2)).toBe(3)
    expect(await box.ack('bob', 'alice', 'e1', 2)).toBe(0)
    expect(await box.ack('carol', 'alice', 'e1', 9)).toBe(0)
    expect(await seqsOf(box, 'bob')).toEqual(['msg:alice:3', 'msg:alice:0', 'msg:carol:1'])
    const keys = (await box.read('bob', undefined, 10)).map(({ entry }) => entry.key)
    await box.remove('bob', [keys[2]!, 'no-such-key'])
    expect(await seqsOf(box, 'bob')).toEqual(['msg:alice:3', 'msg:alice:0'])
  })

  it('refuses a message past maxMessages or maxBytes; skips, acks and notices get twice the count and no byte limit', async () => {
    const { box } = await make()
    const limits = { maxMessages: 3, maxBytes: 100 }
    expect(await box.put('bob', msg('a', 0, 60), bytes(60), limits)).toMatchObject({ ok: true })
    expect(await box.put('bob', msg('a', 1, 50), bytes(50), limits)).toEqual({ ok: false, reason: 'full_bytes' })
    await box.put('bob', msg('a', 1, 40), bytes(40), limits)
    await box.put('bob', msg('a', 2, 0), bytes(0), limits)
    expect(await box.put('bob', msg('a', 3, 0), bytes(0), limits)).toEqual({ ok: false, reason: 'full_messages' })
    for (let seq = 3; seq < 6; seq++) {
      expect(await box.put('bob', { ...msg('a', seq, 500), kind: 'skip', reason: 'full_messages' }, bytes(500), limits)).toMatchObject({ ok: true })
    }
    expect(await box.put('bob', { ...msg('a', 6, 5), kind: 'skip' }, bytes(5), limits)).toEqual({ ok: false, reason: 'full_messages' })
    expect(await box.size('bob')).toEqual({ entries: 6, bytes: 100 })
  })

  it('expires messages into skips in place, drops old acks, keeps skips and notices', async () => {
    const { box } = await make()
    await box.put('bob', msg('alice', 0, 10, 100), bytes(10), LIMITS)
    await box.put('bob', { kind: 'ack', from: 'carol', epoch: 'e9', seq: 4, id: '', size: 3, storedAt: 100 }, bytes(3), LIMITS)
    await box.put('bob', { kind: 'notice', from: 'carol', epoch: 'e9', seq: 1, id: 'n', size: 0, storedAt: 100, reason: 'retention' }, bytes(0), LIMITS)
    await box.put('bob', msg('alice', 1, 10, 5000), bytes(10), LIMITS)
    const expired = await box.expire(1000, tombstone)
    expect(expired.map(({ to, entry }) => [to, entry.seq])).toEqual([['bob', 0]])
    const items = await box.read('bob', undefined, 10)
    expect(items.map(({ entry }) => `${entry.kind}:${entry.seq}:${entry.reason ?? ''}`)).toEqual(['skip:0:retention', 'notice:1:retention', 'msg:1:'])
    expect(new TextDecoder().decode(items[0]!.frame)).toBe('skip:bob:0')
    expect(await box.expire(1000, tombstone)).toEqual([])
    expect(await box.size('bob')).toEqual({ entries: 3, bytes: 10 })
    // A message resent after the relay gave up on it finds the skip, not a new slot.
    expect(await box.put('bob', msg('alice', 0), bytes(10), LIMITS)).toMatchObject({ ok: true, duplicate: true, entry: { kind: 'skip', reason: 'retention' } })
  })

  it('rejects use after close', async () => {
    const { box } = await make()
    await box.close()
    await expect(box.put('bob', msg('a', 0), bytes(1), LIMITS)).rejects.toThrow(/closed/)
    await box.close()
  })
})

describe('LevelMailbox on disk', () => {
  it('survives a reopen with order, counters, dedup and frames intact, and keeps counting keys upward', async () => {
    const [, make] = kinds[1]!
    const { box, reopen } = await make()
    await box.put('bob', msg('alice', 0), bytes(10, 1), LIMITS)
    await box.put('bob', msg('alice', 1), bytes(10, 2), LIMITS)
    await box.put('carol', msg('alice', 0), bytes(10, 3), LIMITS)
    await box.ack('bob', 'alice', 'e1', 0)
    const again = await reopen!()
    expect(await seqsOf(again, 'bob')).toEqual(['msg:alice:1'])
    expect((await again.read('carol', undefined, 5))[0]!.frame).toEqual(bytes(10, 3))
    expect(await again.size('bob')).toEqual({ entries: 1, bytes: 10 })
    expect(await again.put('bob', msg('alice', 1), bytes(10), LIMITS)).toMatchObject({ duplicate: true })
    await again.put('bob', msg('alice', 2), bytes(10), LIMITS)
    expect(await seqsOf(again, 'bob')).toEqual(['msg:alice:1', 'msg:alice:2'])
  })
})
