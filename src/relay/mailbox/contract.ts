import { check, checkEqual, checkRejects, ContractFailure, type ContractCase } from '../../testing/contract.js'
import type { Mailbox, MailboxEntry, MailboxRecord, Tombstone } from './mailbox.js'

/**
 * The contract every {@link Mailbox} keeps, as a runner-agnostic list of
 * cases: `MemoryMailbox`, `LevelMailbox` and `RedisMailbox` all run it, so
 * they are held to one semantics.
 *
 * `makeMailbox` must return a new, empty mailbox on every call (a case may
 * ask for two); the case closes what it was given.
 *
 * @example
 * for (const c of mailboxContract(async () => new MemoryMailbox())) it(c.name, () => c.run())
 */
export function mailboxContract(makeMailbox: () => Promise<Mailbox>): ContractCase[] {
  const using = async (body: (make: () => Promise<Mailbox>) => Promise<void>): Promise<void> => {
    const made: Mailbox[] = []
    try {
      await body(async () => {
        const box = await makeMailbox()
        made.push(box)
        return box
      })
    } finally {
      await Promise.all(made.map((box) => box.close().catch(() => {})))
    }
  }
  const cases: Record<string, (make: () => Promise<Mailbox>) => Promise<void>> = {
    'keeps entries per destination in put order and pages with `after`': async (make) => {
      const box = await make()
      const put = await box.put('bob', small('alice', 0), bytes(10, 7), SMALL)
      checkSubset(put, { ok: true }, 'first put')
      await box.put('bob', small('carol', 0), bytes(10), SMALL)
      await box.put('bob', small('alice', 1), bytes(10), SMALL)
      await box.put('dave', small('alice', 0), bytes(10), SMALL)
      checkEqual(await seqsOf(box, 'bob'), ['msg:alice:0', 'msg:carol:0', 'msg:alice:1'], 'entries of bob')
      const [first, ...rest] = await box.read('bob', undefined, 1)
      checkEqual(rest, [], 'read with limit 1')
      check(first !== undefined, 'read with limit 1 returns an entry')
      checkEqual(first.frame, bytes(10, 7), 'frame bytes')
      checkEqual(
        (await box.read('bob', first.entry.key, 10)).map(({ entry }) => entry.from),
        ['carol', 'alice'],
        'read after the first key',
      )
      checkEqual(await box.size('bob'), { entries: 3, bytes: 30 }, 'size')
      checkEqual(await box.read('nobody', undefined, 10), [], 'unknown destination')

      const other = await make()
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
        const result = await other.put('bob', record, frameOf(record), LIMITS)
        checkSubset(result, { ok: true, duplicate: false, entry: record }, `put ${record.kind} ${record.seq}`)
        if (result.ok) keys.push(result.entry.key)
      }
      await other.put('erin', msg('alice', E1, 1), frameOf(msg('alice', E1, 1)), LIMITS)
      const all = await contents(other, 'bob')
      checkEqual(
        all.map(({ entry }) => entry.key),
        keys,
        'keys in put order',
      )
      checkEqual(
        withoutKeys(all),
        records.map((record) => ({ ...record, frame: decoder.decode(frameOf(record)) })),
        'records and frames read back',
      )
      const page = await other.read('bob', undefined, 4)
      const next = await other.read('bob', page.at(-1)?.entry.key, 4)
      checkEqual(
        [...page, ...next].map(({ entry }) => entry.key),
        keys,
        'two pages',
      )
      checkEqual(next.length, 2, 'second page')
      checkEqual(await other.read('bob', keys.at(-1), 10), [], 'after the last key')
      checkEqual(await other.size('bob'), { entries: 6, bytes: 8 + 12 + 8 }, 'size counts msg bytes only')
      checkEqual(await other.size('erin'), { entries: 1, bytes: 8 }, 'size of another destination')
    },

    'stores each (from, epoch, seq) once, as a msg or a skip; acks are never duplicates': async (make) => {
      const box = await make()
      await box.put('bob', small('alice', 0), bytes(10), SMALL)
      checkSubset(await box.put('bob', small('alice', 0), bytes(10), SMALL), { ok: true, duplicate: true, entry: { seq: 0, from: 'alice' } }, 'same seq again')

      const other = await make()
      const first = await other.put('bob', msg('alice', E1, 1), frameOf(msg('alice', E1, 1)), LIMITS)
      const again = await other.put('bob', msg('alice', E1, 1, { id: 'other', storedAt: 5 }), Uint8Array.of(1), LIMITS)
      const asSkip = await other.put('bob', { ...msg('alice', E1, 1), kind: 'skip', reason: 'full_messages' }, Uint8Array.of(2), LIMITS)
      check(first.ok && again.ok && asSkip.ok, 'puts of one seq succeed')
      checkEqual(again, { ok: true, duplicate: true, entry: first.entry }, 'a msg again')
      checkEqual(asSkip, { ok: true, duplicate: true, entry: first.entry }, 'a skip of a stored msg')
      checkSubset(await other.put('bob', msg('alice', E2, 1), Uint8Array.of(3), LIMITS), { duplicate: false }, 'another epoch')
      checkSubset(await other.put('bob', msg('carol', E1, 1), Uint8Array.of(4), LIMITS), { duplicate: false }, 'another sender')
      checkSubset(await other.put('dave', msg('alice', E1, 1), Uint8Array.of(5), LIMITS), { duplicate: false }, 'another destination')
      const ack = { kind: 'ack', from: 'alice', epoch: E1, seq: 1, id: '', size: 1, storedAt: 1 } as const
      checkSubset(await other.put('bob', ack, Uint8Array.of(6), LIMITS), { duplicate: false }, 'an ack')
      checkSubset(await other.put('bob', ack, Uint8Array.of(6), LIMITS), { duplicate: false }, 'the same ack again')
      checkEqual(await other.size('bob'), { entries: 5, bytes: 24 }, 'size')
    },

    'refuses a msg beyond the count or byte limit; skips, acks and notices get twice the count and no byte limit': async (make) => {
      const box = await make()
      const limits = { maxMessages: 3, maxBytes: 100 }
      checkSubset(await box.put('bob', small('a', 0, 60), bytes(60), limits), { ok: true }, '60 bytes')
      checkEqual(await box.put('bob', small('a', 1, 50), bytes(50), limits), { ok: false, reason: 'full_bytes' }, '50 more bytes')
      await box.put('bob', small('a', 1, 40), bytes(40), limits)
      await box.put('bob', small('a', 2, 0), bytes(0), limits)
      checkEqual(await box.put('bob', small('a', 3, 0), bytes(0), limits), { ok: false, reason: 'full_messages' }, 'a fourth msg')
      for (let seq = 3; seq < 6; seq++) {
        checkSubset(await box.put('bob', { ...small('a', seq, 500), kind: 'skip', reason: 'full_messages' }, bytes(500), limits), { ok: true }, `skip ${seq}`)
      }
      checkEqual(await box.put('bob', { ...small('a', 6, 5), kind: 'skip' }, bytes(5), limits), { ok: false, reason: 'full_messages' }, 'a seventh entry')
      checkEqual(await box.size('bob'), { entries: 6, bytes: 100 }, 'size')

      const other = await make()
      const tight = { maxMessages: 3, maxBytes: 20 }
      checkSubset(await other.put('bob', msg('alice', E1, 1, { size: 10 }), Uint8Array.of(1), tight), { ok: true }, 'first msg')
      checkEqual(await other.put('bob', msg('alice', E1, 2, { size: 11 }), Uint8Array.of(2), tight), { ok: false, reason: 'full_bytes' }, 'one byte too many')
      checkSubset(await other.put('bob', msg('alice', E1, 2, { size: 10 }), Uint8Array.of(2), tight), { ok: true }, 'exactly the byte limit')
      const skip = (seq: number): MailboxRecord => ({ ...msg('alice', E1, seq, { size: 50 }), kind: 'skip', reason: 'full_bytes' })
      checkSubset(await other.put('bob', skip(3), Uint8Array.of(3), tight), { ok: true }, 'a skip past the byte limit')
      checkEqual(await other.size('bob'), { entries: 3, bytes: 20 }, 'size at the count limit')
      checkEqual(
        await other.put('bob', msg('alice', E1, 4, { size: 0 }), Uint8Array.of(4), tight),
        { ok: false, reason: 'full_messages' },
        'a msg past the count',
      )
      checkSubset(
        await other.put('bob', msg('alice', E1, 1, { size: 10 }), Uint8Array.of(1), tight),
        { ok: true, duplicate: true },
        'a duplicate is found before the limits',
      )
      for (const seq of [5, 6, 7]) checkSubset(await other.put('bob', skip(seq), Uint8Array.of(seq), tight), { ok: true }, `skip ${seq}`)
      checkEqual(await other.put('bob', skip(8), Uint8Array.of(8), tight), { ok: false, reason: 'full_messages' }, 'a skip past twice the count')
      const notice: MailboxRecord = { kind: 'notice', from: 'carol', epoch: E1, seq: 1, id: 'x', size: 0, storedAt: 1, reason: 'retention' }
      checkEqual(await other.put('bob', notice, new Uint8Array(0), tight), { ok: false, reason: 'full_messages' }, 'a notice past twice the count')
      checkEqual(await other.size('bob'), { entries: 6, bytes: 20 }, 'size')
      checkSubset(await other.put('carol', msg('alice', E1, 4, { size: 20 }), Uint8Array.of(4), tight), { ok: true }, 'limits are per destination')
    },

    'acks remove the msgs and skips of one (from, epoch) up to a seq, nothing else': async (make) => {
      const box = await make()
      for (let seq = 0; seq < 4; seq++) await box.put('bob', small('alice', seq), bytes(10), SMALL)
      await box.put('bob', small('alice', 0, 10, 1000, 'e2'), bytes(10), SMALL)
      await box.put('bob', small('carol', 1), bytes(10), SMALL)
      checkEqual(await box.ack('bob', 'alice', 'e1', 2), 3, 'ack up to 2')
      checkEqual(await box.ack('bob', 'alice', 'e1', 2), 0, 'the same ack again')
      checkEqual(await box.ack('carol', 'alice', 'e1', 9), 0, 'ack at another destination')
      checkEqual(await seqsOf(box, 'bob'), ['msg:alice:3', 'msg:alice:0', 'msg:carol:1'], 'entries left')
      const keys = (await box.read('bob', undefined, 10)).map(({ entry }) => entry.key)
      await box.remove('bob', [keys[2]!, 'no-such-key'])
      checkEqual(await seqsOf(box, 'bob'), ['msg:alice:3', 'msg:alice:0'], 'entries left after a remove')

      const other = await make()
      const records: MailboxRecord[] = [
        ...[1, 2, 3, 4, 5].map((seq) => msg('alice', E1, seq)),
        { ...msg('alice', E1, 6), kind: 'skip', size: 3, reason: 'full_bytes' },
        msg('alice', E2, 1),
        msg('carol', E1, 2),
        { kind: 'ack', from: 'alice', epoch: E1, seq: 2, id: '', size: 4, storedAt: 1 },
        { kind: 'notice', from: 'alice', epoch: E1, seq: 3, id: 'n', size: 0, storedAt: 1, reason: 'retention' },
      ]
      for (const record of records) await other.put('bob', record, frameOf(record), LIMITS)
      checkEqual(await other.ack('bob', 'alice', E1, 3), 3, 'ack up to 3')
      checkEqual(await other.ack('bob', 'alice', E1, 3), 0, 'the same ack again')
      checkEqual(await other.ack('bob', 'alice', E1, -1), 0, 'an ack of nothing')
      checkEqual(await other.ack('nobody', 'alice', E1, 9), 0, 'ack at an unknown destination')
      checkEqual(
        (await contents(other, 'bob')).map(({ entry }) => `${entry.kind} ${entry.from} ${entry.epoch === E1 ? 1 : 2} ${entry.seq}`),
        ['msg alice 1 4', 'msg alice 1 5', 'skip alice 1 6', 'msg alice 2 1', 'msg carol 1 2', 'ack alice 1 2', 'notice alice 1 3'],
        'entries left',
      )
      checkEqual(await other.ack('bob', 'alice', E1, 6), 3, 'ack up to 6 takes the skip too')
      checkEqual(await other.size('bob'), { entries: 4, bytes: 16 }, 'size')
      // Once acked, a seq may be stored again (a new message after the receiver took the old one).
      checkSubset(await other.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS), { duplicate: false }, 'an acked seq stored again')
    },

    'removes entries by key, ignoring unknown and repeated keys': async (make) => {
      const box = await make()
      const keys: string[] = []
      for (const seq of [1, 2, 3]) {
        const result = await box.put('bob', msg('alice', E1, seq), Uint8Array.of(seq), LIMITS)
        if (result.ok) keys.push(result.entry.key)
      }
      const elsewhere = await box.put('carol', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
      await box.remove('bob', [keys[0]!, keys[0]!, keys[2]!, 'no-such-key', '99999999999999999999-0'])
      await box.remove('bob', [keys[0]!])
      await box.remove('bob', [])
      checkEqual(
        (await contents(box, 'bob')).map(({ entry }) => entry.key),
        [keys[1]],
        'entries left',
      )
      checkEqual(await box.size('bob'), { entries: 1, bytes: 8 }, 'size')
      checkSubset(await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS), { duplicate: false }, 'a removed seq stored again')
      if (elsewhere.ok) await box.remove('bob', [elsewhere.entry.key])
      checkEqual(await box.size('carol'), { entries: 1, bytes: 8 }, 'a key of another destination removes nothing')
    },

    'expires old msgs into skips in place and old acks away; skips and notices stay': async (make) => {
      const box = await make()
      await box.put('bob', small('alice', 0, 10, 100), bytes(10), SMALL)
      await box.put('bob', { kind: 'ack', from: 'carol', epoch: 'e9', seq: 4, id: '', size: 3, storedAt: 100 }, bytes(3), SMALL)
      await box.put('bob', { kind: 'notice', from: 'carol', epoch: 'e9', seq: 1, id: 'n', size: 0, storedAt: 100, reason: 'retention' }, bytes(0), SMALL)
      await box.put('bob', small('alice', 1, 10, 5000), bytes(10), SMALL)
      const expired = await box.expire(1000, simpleTombstone)
      checkEqual(
        expired.map(({ to, entry }) => [to, entry.seq]),
        [['bob', 0]],
        'expired',
      )
      const items = await box.read('bob', undefined, 10)
      checkEqual(
        items.map(({ entry }) => `${entry.kind}:${entry.seq}:${entry.reason ?? ''}`),
        ['skip:0:retention', 'notice:1:retention', 'msg:1:'],
        'entries after expiry',
      )
      checkEqual(decoder.decode(items[0]?.frame), 'skip:bob:0', 'the tombstone frame')
      checkEqual(await box.expire(1000, simpleTombstone), [], 'expiring again')
      checkEqual(await box.size('bob'), { entries: 3, bytes: 10 }, 'size')
      // A message resent after the relay gave up on it finds the skip, not a new slot.
      checkSubset(
        await box.put('bob', small('alice', 0), bytes(10), SMALL),
        { ok: true, duplicate: true, entry: { kind: 'skip', reason: 'retention' } },
        'resent',
      )

      const other = await make()
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
        const result = await other.put('bob', record, frameOf(record), LIMITS)
        if (result.ok) stored.push(result.entry)
      }
      await other.put('carol', msg('alice', E1, 1, { storedAt: 90 }), Uint8Array.of(1), LIMITS)
      const before = await contents(other, 'bob')
      const swept = await other.expire(150, tombstone)
      const order = (a: { to: string; entry: MailboxEntry }, b: { to: string; entry: MailboxEntry }): number =>
        a.to.localeCompare(b.to) || stored.findIndex((e) => e.key === a.entry.key) - stored.findIndex((e) => e.key === b.entry.key)
      checkEqual(
        [...swept].sort(order).map(({ to, entry }) => ({ to, seq: entry.seq, kind: entry.kind })),
        [
          { to: 'bob', seq: 1, kind: 'msg' },
          { to: 'bob', seq: 4, kind: 'msg' },
          { to: 'carol', seq: 1, kind: 'msg' },
        ],
        'expired',
      )
      checkEqual(swept.find(({ to, entry }) => to === 'bob' && entry.seq === 1)?.entry, stored[0], 'an expired entry as it was stored')
      const after = await contents(other, 'bob')
      const skipOf = (item: { entry: MailboxEntry; frame: string }): { entry: MailboxEntry; frame: string } => {
        const frame = `skip bob ${item.entry.from} ${item.entry.seq}`
        return { entry: { ...item.entry, kind: 'skip', size: encoder.encode(frame).byteLength, reason: 'retention' }, frame }
      }
      checkEqual(after, [skipOf(before[0]!), before[2], before[3], before[4], skipOf(before[5]!)], 'entries after expiry')
      checkEqual(await other.size('bob'), { entries: 5, bytes: 8 }, 'size')
      checkEqual(await other.expire(150, tombstone), [], 'expiring again')
      checkEqual(await other.put('bob', msg('alice', E1, 1), Uint8Array.of(9), LIMITS), { ok: true, duplicate: true, entry: after[0]?.entry }, 'resent')
      const later = await other.expire(10_000, tombstone)
      checkEqual(
        later.map(({ to, entry }) => `${to} ${entry.seq}`),
        ['bob 3'],
        'a later sweep',
      )
      checkEqual(
        (await contents(other, 'bob')).map(({ entry }) => entry.kind),
        ['skip', 'skip', 'notice', 'skip', 'skip'],
        'kinds after it',
      )
      checkEqual(await other.size('bob'), { entries: 5, bytes: 0 }, 'size after it')
      checkEqual(await other.ack('bob', 'alice', E1, 4), 4, 'acking the skips')
      checkEqual(await other.size('bob'), { entries: 1, bytes: 0 }, 'size after the ack')
    },

    'totals, when it has them, are the entries and msg bytes of every destination through puts, refusals, acks, removals and expiry': async (make) => {
      const box = await make()
      const read = box.totals?.bind(box)
      if (read === undefined) return
      const totals = async (): Promise<unknown> => {
        const { entries, bytes } = await read()
        return { entries, bytes }
      }
      const summed = async (): Promise<unknown> => {
        const sizes = await Promise.all(['bob', 'carol', 'dave'].map((to) => box.size(to)))
        return sizes.reduce((a, b) => ({ entries: a.entries + b.entries, bytes: a.bytes + b.bytes }), { entries: 0, bytes: 0 })
      }
      const expect = async (entries: number, bytes: number, message: string): Promise<void> => {
        checkEqual(await totals(), { entries, bytes }, message)
        checkEqual(await summed(), { entries, bytes }, `${message}: the sizes`)
      }
      await expect(0, 0, 'empty')
      const keys: string[] = []
      for (const [to, record] of [
        ['bob', msg('alice', E1, 1, { size: 10, storedAt: 100 })],
        ['bob', msg('alice', E1, 2, { size: 20, storedAt: 5_000 })],
        ['carol', msg('alice', E1, 1, { size: 30, storedAt: 5_000 })],
        ['carol', { kind: 'ack', from: 'dave', epoch: E2, seq: 4, id: '', size: 5, storedAt: 5_000 }],
        ['dave', { kind: 'notice', from: 'erin', epoch: E1, seq: 2, id: 'n', size: 0, storedAt: 5_000, reason: 'retention' }],
        ['dave', { ...msg('erin', E1, 3), kind: 'skip', size: 7, reason: 'full_bytes' }],
      ] as const) {
        const result = await box.put(to, record, frameOf(record), LIMITS)
        if (result.ok) keys.push(result.entry.key)
      }
      await expect(6, 60, 'after six puts (three msgs of 10, 20, 30 bytes)')
      await box.put('bob', msg('alice', E1, 2, { size: 20 }), Uint8Array.of(1), LIMITS)
      checkEqual(
        await box.put('carol', msg('alice', E1, 2, { size: 100 }), Uint8Array.of(1), { maxMessages: 100, maxBytes: 50 }),
        { ok: false, reason: 'full_bytes' },
        'refused',
      )
      await expect(6, 60, 'after a duplicate and a refusal')
      await box.expire(1_000, tombstone)
      await expect(6, 50, "after bob's first msg expired into a skip")
      checkEqual(await box.ack('bob', 'alice', E1, 2), 2, 'ack of bob')
      await expect(4, 30, 'after the ack')
      const [, , carolMsg = '', carolAck = '', notice = ''] = keys
      await box.remove('carol', [carolAck])
      await expect(3, 30, "after carol's ack was removed")
      await box.remove('carol', [carolMsg])
      await box.ack('dave', 'erin', E1, 3)
      await box.remove('dave', [notice])
      await expect(0, 0, 'after everything went')
    },

    'keeps one key bundle per peer, the last put replacing the one before, apart from the entries': async (make) => {
      const box = await make()
      checkEqual(await box.getKeys('alice'), undefined, 'no bundle before a put')
      const all = Uint8Array.from({ length: 768 }, (_, i) => i % 256)
      await box.putKeys('alice', all)
      await box.putKeys('bob', Uint8Array.of(0, 255, 0))
      checkEqual(await box.getKeys('alice'), all, "alice's bundle, every byte value")
      checkEqual(await box.getKeys('bob'), Uint8Array.of(0, 255, 0), "bob's bundle")
      checkEqual(await box.getKeys('carol'), undefined, 'a peer that put none')
      const next = Uint8Array.of(9, 8, 7)
      await box.putKeys('alice', next)
      next[0] = 0
      checkEqual(await box.getKeys('alice'), Uint8Array.of(9, 8, 7), 'the second put replaced the first, and was copied in')
      const read = await box.getKeys('bob')
      if (read !== undefined) read[0] = 42
      checkEqual(await box.getKeys('bob'), Uint8Array.of(0, 255, 0), 'a read is a copy')
      checkEqual(await box.read('alice', undefined, 10), [], 'a bundle is no mailbox entry')
      checkEqual(await box.size('alice'), { entries: 0, bytes: 0 }, 'a bundle counts toward no mailbox size')
      const totals = await box.totals?.()
      if (totals !== undefined) checkEqual(totals, { entries: 0, bytes: 0 }, 'nor toward the totals')
      await box.put('alice', msg('bob', E1, 1), Uint8Array.of(1), LIMITS)
      await box.ack('alice', 'bob', E1, 1)
      checkEqual(await box.getKeys('alice'), Uint8Array.of(9, 8, 7), "the peer's mailbox emptying leaves its bundle")
      const other = await make()
      checkEqual(await other.getKeys('alice'), undefined, 'another (empty) mailbox has none')
    },

    'rejects every call once closed ("mailbox closed"); close is idempotent': async (make) => {
      const box = await make()
      await box.put('bob', msg('alice', E1, 1), Uint8Array.of(1), LIMITS)
      await box.close()
      await box.close()
      const calls: [string, () => Promise<unknown>][] = [
        ['put', () => box.put('bob', msg('alice', E1, 2), Uint8Array.of(1), LIMITS)],
        ['read', () => box.read('bob', undefined, 10)],
        ['ack', () => box.ack('bob', 'alice', E1, 1)],
        ['remove', () => box.remove('bob', [])],
        ['expire', () => box.expire(1, tombstone)],
        ['size', () => box.size('bob')],
        ['putKeys', () => box.putKeys('bob', Uint8Array.of(1))],
        ['getKeys', () => box.getKeys('bob')],
      ]
      for (const [name, call] of calls) {
        const error = await checkRejects(call(), `${name} after close`)
        check(error instanceof Error && /closed/.test(error.message), `${name} after close rejects "mailbox closed", got ${String(error)}`)
      }
    },
  }
  return Object.entries(cases).map(([name, body]) => ({ name, run: () => using(body) }))
}

const LIMITS = { maxMessages: 100, maxBytes: 1_000_000 }
const SMALL = { maxMessages: 100, maxBytes: 10_000 }
const E1 = '0000000a1.epochone'
const E2 = '0000000b2.epochtwo'
const encoder = new TextEncoder()
const decoder = new TextDecoder()

function msg(from: string, epoch: string, seq: number, extra: Partial<MailboxRecord> = {}): MailboxRecord {
  return { kind: 'msg', from, epoch, seq, id: `m-${from}-${seq}`, size: 8, storedAt: 1_000, ...extra }
}

function small(from: string, seq: number, size = 10, storedAt = 1000, epoch = 'e1'): MailboxRecord {
  return { kind: 'msg', from, epoch, seq, id: `${from}-${seq}`, size, storedAt }
}

function frameOf(record: MailboxRecord): Uint8Array {
  return encoder.encode(`${record.kind}:${record.from}:${record.seq}`.padEnd(record.size, '.').slice(0, Math.max(record.size, 1)))
}

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)
const tombstone: Tombstone = (to, entry) => encoder.encode(`skip ${to} ${entry.from} ${entry.seq}`)
const simpleTombstone: Tombstone = (to, entry) => encoder.encode(`skip:${to}:${entry.seq}`)

async function seqsOf(box: Mailbox, to: string): Promise<string[]> {
  return (await box.read(to, undefined, 1000)).map(({ entry }) => `${entry.kind}:${entry.from}:${entry.seq}`)
}

/** What a mailbox holds for `to`, as comparable plain data. */
async function contents(box: Mailbox, to: string): Promise<{ entry: MailboxEntry; frame: string }[]> {
  return (await box.read(to, undefined, 1_000)).map(({ entry, frame }) => ({ entry, frame: decoder.decode(frame) }))
}

function withoutKeys(items: { entry: MailboxEntry; frame: string }[]): unknown[] {
  return items.map(({ entry: { key: _key, ...record }, frame }) => ({ ...record, frame }))
}

/** Fails unless every property of `expected` (recursively, for plain objects) equals the one in `actual`. */
function checkSubset(actual: unknown, expected: Record<string, unknown>, message: string): void {
  if (!subset(actual, expected)) throw new ContractFailure(`${message}: expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`)
}

function subset(actual: unknown, expected: unknown): boolean {
  if (typeof expected !== 'object' || expected === null || Array.isArray(expected) || expected instanceof Uint8Array) {
    try {
      checkEqual(actual, expected, '')
      return true
    } catch {
      return false
    }
  }
  if (typeof actual !== 'object' || actual === null) return false
  return Object.entries(expected).every(([key, value]) => subset((actual as Record<string, unknown>)[key], value))
}
