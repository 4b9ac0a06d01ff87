/**
 * MailboxIndex, the in-memory side of the memory and LevelDB mailboxes,
 * against a model that walks a plain list of entries for everything (as the
 * index did before it kept each destination's keys and each stream's seqs in
 * order): every operation of a random schedule must answer alike. Bulk
 * operations make the index compact its key list, its streams and its
 * retention queue. Then the costs: a read, an ack or a retention sweep must
 * not walk the destination's queue.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { MailboxEntry, MailboxEntryKind, MailboxLimits, MailboxRecord } from '../../src/relay/mailbox/mailbox.js'
import { MailboxIndex } from '../../src/relay/mailbox/mailbox-index.js'
import { RetentionQueue } from '../../src/relay/mailbox/retention-queue.js'

const LIMITS: MailboxLimits = { maxMessages: 5_000, maxBytes: 1_000_000 }

/** The index's rules over one list per destination, every operation a walk of it. */
class ListModel {
  readonly boxes = new Map<string, MailboxEntry[]>()
  next = 0

  admit(to: string, record: MailboxRecord): MailboxEntry | 'full' {
    const box = this.boxes.get(to) ?? []
    const seqEntry = record.kind === 'msg' || record.kind === 'skip'
    const existing = seqEntry
      ? box.find((e) => (e.kind === 'msg' || e.kind === 'skip') && e.from === record.from && e.epoch === record.epoch && e.seq === record.seq)
      : undefined
    if (existing !== undefined) return existing
    const bytes = box.reduce((sum, e) => sum + (e.kind === 'msg' ? e.size : 0), 0)
    if (record.kind === 'msg' ? box.length >= LIMITS.maxMessages || bytes + record.size > LIMITS.maxBytes : box.length >= 2 * LIMITS.maxMessages) return 'full'
    const entry = { ...record, key: String(this.next++).padStart(16, '0') }
    box.push(entry)
    this.boxes.set(to, box)
    return entry
  }

  read(to: string, after: string | undefined, limit: number): MailboxEntry[] {
    return (this.boxes.get(to) ?? []).filter((e) => after === undefined || e.key > after).slice(0, limit)
  }

  ack(to: string, from: string, epoch: string, upTo: number): string[] {
    const keys = (this.boxes.get(to) ?? [])
      .filter((e) => (e.kind === 'msg' || e.kind === 'skip') && e.from === from && e.epoch === epoch && e.seq <= upTo)
      .map((e) => e.key)
    return this.remove(to, keys)
  }

  remove(to: string, keys: readonly string[]): string[] {
    const box = this.boxes.get(to) ?? []
    const removed = [...new Set(keys)].filter((key) => box.some((e) => e.key === key))
    const left = box.filter((e) => !removed.includes(e.key))
    if (left.length === 0) this.boxes.delete(to)
    else this.boxes.set(to, left)
    return removed
  }

  toSkip(to: string, key: string, size: number): MailboxEntry | undefined {
    const box = this.boxes.get(to) ?? []
    const at = box.findIndex((e) => e.key === key)
    const entry = box[at]
    if (entry?.kind !== 'msg') return undefined
    const skip: MailboxEntry = { ...entry, kind: 'skip', size, reason: 'retention' }
    box[at] = skip
    return skip
  }

  /** Every `msg` and `ack` entry stored before `before`, over every destination. */
  due(before: number): { to: string; entry: MailboxEntry }[] {
    return [...this.boxes].flatMap(([to, box]) =>
      box.filter((e) => (e.kind === 'msg' || e.kind === 'ack') && e.storedAt < before).map((entry) => ({ to, entry })),
    )
  }

  size(to: string): { entries: number; bytes: number } {
    const box = this.boxes.get(to) ?? []
    return { entries: box.length, bytes: box.reduce((sum, e) => sum + (e.kind === 'msg' ? e.size : 0), 0) }
  }
}

const DESTS = ['bob', 'carol']
const FROMS = ['alice', 'dave']
const EPOCHS = ['e1', 'e2']

const record = (kind: MailboxEntryKind, from: string, epoch: string, seq: number, size = 10, storedAt = seq): MailboxRecord => ({
  kind,
  from,
  epoch,
  seq,
  id: kind === 'ack' ? '' : `${from}-${epoch}-${seq}`,
  size,
  storedAt,
})

type Op =
  | { op: 'admit'; to: string; kind: MailboxEntryKind; from: string; epoch: string; seq: number }
  | { op: 'bulk'; to: string; from: string; first: number; count: number; upTo: number }
  | { op: 'read'; to: string; after: number | undefined; limit: number }
  | { op: 'ack'; to: string; from: string; epoch: string; upTo: number }
  | { op: 'remove'; to: string; keys: number[] }
  | { op: 'toSkip'; to: string; key: number }
  | { op: 'due'; before: number }

const key = (n: number): string => String(n).padStart(16, '0')
const to = fc.constantFrom(...DESTS)
const from = fc.constantFrom(...FROMS)
const epoch = fc.constantFrom(...EPOCHS)
const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('admit' as const),
        to,
        kind: fc.constantFrom<MailboxEntryKind>('msg', 'msg', 'skip', 'ack', 'notice'),
        from,
        epoch,
        seq: fc.nat(30),
      }),
    },
    // Seqs of a third sender, many at once, then acked up to `upTo`: enough removals to compact the key list and the stream.
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('bulk' as const),
        to,
        from: fc.constant('zed'),
        first: fc.nat(3_000),
        count: fc.integer({ min: 500, max: 1_500 }),
        upTo: fc.integer({ min: -1, max: 4_500 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('read' as const),
        to,
        after: fc.option(fc.nat(5_000), { nil: undefined }),
        limit: fc.integer({ min: 1, max: 40 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('ack' as const),
        to,
        from: fc.constantFrom(...FROMS, 'zed'),
        epoch: fc.constantFrom(...EPOCHS, 'z'),
        upTo: fc.integer({ min: -1, max: 4_500 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), to, keys: fc.array(fc.nat(5_000), { maxLength: 6 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('toSkip' as const), to, key: fc.nat(5_000) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('due' as const), before: fc.nat(4_600) }) },
  ),
  { maxLength: 60 },
)

describe('MailboxIndex', () => {
  it('answers every operation of a random schedule as a walk of a plain list does', () => {
    fc.assert(
      fc.property(ops, (schedule) => {
        const index = new MailboxIndex()
        const model = new ListModel()
        for (const step of schedule) {
          switch (step.op) {
            case 'admit': {
              const r = record(step.kind, step.from, step.epoch, step.seq)
              const got = index.admit(step.to, r, LIMITS)
              const want = model.admit(step.to, r)
              expect(got.ok ? got.entry : 'full').toEqual(want)
              break
            }
            case 'bulk':
              // Seqs from `first` on, some out of order: each pair swapped.
              for (let i = 0; i < step.count; i++) {
                const seq = step.first + (i % 2 === 0 ? i + 1 : i - 1)
                const r = record('msg', step.from, 'z', seq, 1, i % 7 === 0 ? 4_500 - seq : seq)
                const got = index.admit(step.to, r, LIMITS)
                expect(got.ok ? got.entry : 'full').toEqual(model.admit(step.to, r))
              }
              expect(index.ack(step.to, step.from, 'z', step.upTo)).toEqual(model.ack(step.to, step.from, 'z', step.upTo))
              break
            case 'read': {
              const after = step.after === undefined ? undefined : key(step.after)
              expect(index.read(step.to, after, step.limit)).toEqual(model.read(step.to, after, step.limit))
              break
            }
            case 'ack':
              expect(index.ack(step.to, step.from, step.epoch, step.upTo)).toEqual(model.ack(step.to, step.from, step.epoch, step.upTo))
              break
            case 'remove': {
              const keys = step.keys.map(key)
              expect(index.remove(step.to, keys)).toEqual(model.remove(step.to, keys))
              break
            }
            case 'toSkip':
              expect(index.toSkip(step.to, key(step.key), 3, 'retention')).toEqual(model.toSkip(step.to, key(step.key), 3))
              break
            case 'due': {
              // In any order; then expired as the mailboxes do: a msg becomes a skip, an ack goes.
              const byKey = (a: { to: string; entry: MailboxEntry }, b: { to: string; entry: MailboxEntry }): number =>
                a.to.localeCompare(b.to) || a.entry.key.localeCompare(b.entry.key)
              const got = index.takeDue(step.before).sort(byKey)
              expect(got).toEqual(model.due(step.before).sort(byKey))
              for (const { to, entry } of got) {
                if (entry.kind === 'msg') expect(index.toSkip(to, entry.key, 3, 'retention')).toEqual(model.toSkip(to, entry.key, 3))
                else expect(index.remove(to, [entry.key])).toEqual(model.remove(to, [entry.key]))
              }
              break
            }
          }
          for (const dest of DESTS) expect(index.size(dest)).toEqual(model.size(dest))
        }
        expect(index.read('bob', undefined, 10_000)).toEqual(model.read('bob', undefined, 10_000))
        expect(index.read('carol', undefined, 10_000)).toEqual(model.read('carol', undefined, 10_000))
      }),
      {
        numRuns: 120,
        // A compaction while the head is past removed keys: acked from the front, an entry of another sender, then more.
        examples: [
          [
            [
              { op: 'bulk', to: 'bob', from: 'zed', first: 0, count: 600, upTo: 299 },
              { op: 'admit', to: 'bob', kind: 'msg', from: 'alice', epoch: 'e1', seq: 0 },
              { op: 'bulk', to: 'bob', from: 'zed', first: 600, count: 1_500, upTo: 4_500 },
              { op: 'read', to: 'bob', after: undefined, limit: 5 },
            ],
          ],
        ],
      },
    )
  })

  it('a drain of 200,000 entries of 4 senders, read a page after the last and acked per sender, costs about what 20,000 do per entry, not 10x', () => {
    // Walking the queue per read and per ack made this quadratic: 2.2 s and 5.0 s at 100,000, 33 s and 71 s at 400,000.
    const drain = (n: number): number => {
      const index = new MailboxIndex()
      const limits = { maxMessages: 1_000_000, maxBytes: 1e12 }
      for (let i = 0; i < n; i++) index.admit('bob', record('msg', `s${i % 4}`, 'e', Math.floor(i / 4), 64), limits)
      const start = performance.now()
      let after: string | undefined
      for (let page = index.read('bob', after, 256); page.length > 0; page = index.read('bob', after, 256)) {
        after = page.at(-1)!.key
        for (let s = 0; s < 4; s++) index.ack('bob', `s${s}`, 'e', Math.max(...page.filter((e) => e.from === `s${s}`).map((e) => e.seq), -1))
      }
      expect(index.totals()).toEqual({ entries: 0, bytes: 0 })
      return (performance.now() - start) / n
    }
    drain(20_000)
    const small = Math.min(drain(20_000), drain(20_000))
    const large = drain(200_000)
    // Per entry; generous for a noisy machine: the quadratic walk made it ~10x.
    expect(large / small).toBeLessThan(4)
  })

  it('a retention sweep costs what it expires: 1,000 sweeps that find nothing among 200,000 entries take less than one walk of them', () => {
    // Each sweep walked every entry of every destination: 1,000 of them took 1,000 walks.
    const index = new MailboxIndex()
    const limits = { maxMessages: 1_000_000, maxBytes: 1e12 }
    const n = 200_000
    for (let i = 0; i < n; i++) index.admit(`d${i % 50}`, record('msg', `s${i % 4}`, 'e', i, 64, 1_000 + i), limits)
    const walk = (): number => {
      const start = performance.now()
      let due = 0
      for (let d = 0; d < 50; d++) for (const entry of index.read(`d${d}`, undefined, n)) if (entry.storedAt < 1_000) due++
      expect(due).toBe(0)
      return performance.now() - start
    }
    const once = Math.min(walk(), walk(), walk())
    const start = performance.now()
    for (let i = 0; i < 1_000; i++) expect(index.takeDue(1_000)).toEqual([])
    expect(performance.now() - start).toBeLessThan(once)
    // And one that expires the older half takes those, in the order they were stored.
    const due = index.takeDue(1_000 + n / 2)
    expect(due).toHaveLength(n / 2)
    expect(due.every(({ entry }, i) => entry.storedAt === 1_000 + i)).toBe(true)
  })
})

describe('RetentionQueue', () => {
  it('keeps at most twice its live slots and 1,024 more however entries go: acked in order, out of order, or stored late', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(100), { minLength: 3_000, maxLength: 3_000 }), fc.integer({ min: 1, max: 50 }), (times, keep) => {
        const live = new Set<number>()
        const queue = new RetentionQueue<{ storedAt: number; n: number }>((_to, entry) => live.has(entry.n))
        times.forEach((storedAt, n) => {
          live.add(n)
          queue.added('bob', { storedAt, n })
        })
        for (let n = 0; n < times.length; n++) {
          if (n % keep === 0) continue
          live.delete(n)
          queue.dropped()
          expect(queue.slots).toBeLessThanOrEqual(2 * live.size + 1_024)
        }
        // The survivors, taken in two sweeps: the first takes those stored before 50, and only those.
        const first = queue.take(50).map(({ entry }) => entry)
        const rest = queue.take(101).map(({ entry }) => entry)
        expect([...first, ...rest].map((e) => e.n).sort((a, b) => a - b)).toEqual([...live].sort((a, b) => a - b))
        expect(first.every((e) => e.storedAt < 50) && rest.every((e) => e.storedAt >= 50)).toBe(true)
        expect(queue.take(1_000)).toEqual([])
      }),
      { numRuns: 30 },
    )
  })
})
