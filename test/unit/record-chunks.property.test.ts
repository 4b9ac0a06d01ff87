/**
 * IndexedDB's records of several rows (schema 8: by column, or as row objects
 * where the columns have no place): any run of rows written as a record,
 * cloned as IndexedDB clones it, reads back as the same rows: their fields,
 * `expiry` as it was, and their bytes alone, whatever buffer they were views
 * into. A record rewritten with one row changed, or trimmed, reads back as
 * those rows; rewritten with its own rows, it is not written again.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ContentKind } from '../../src/core/contents.js'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'
import type { InboxRow } from '../../src/core/store.js'
import { chunkOf, rowsOf } from '../../src/storage/inbox-chunk.js'
import { outRowsOf, recordOf, rewritten, trimmedOutbox, type StoredOutboxRow } from '../../src/storage/outbox-chunk.js'
import { ownBytes } from '../../src/storage/own-bytes.js'

const kind = fc.constantFrom<ContentKind>('b', 's', 'j')

/** Contents of 0-300 bytes, often a view into a larger buffer (as a frame's body is). */
const contents = fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 40 }), fc.nat({ max: 40 })).map(([bytes, before, after]) => {
  const buffer = new Uint8Array(before + bytes.byteLength + after).fill(0xee)
  buffer.set(bytes, before)
  return buffer.subarray(before, before + bytes.byteLength)
})

/** One outbox row's variable fields: a plain row, one that can expire, an expired (maybe failed) one, or an acknowledged one whose `expiry` went. */
const outFields = fc.record({
  contentKind: kind,
  contents,
  createdAt: fc.nat(),
  shape: fc.constantFrom('plain', 'plain', 'plain', 'expiring', 'expired', 'failed', 'acked-expiring'),
  expiresAt: fc.nat(),
})

type OutFields = typeof outFields extends fc.Arbitrary<infer T> ? T : never

function outRow(seq: number, f: OutFields): StoredOutboxRow {
  const base = { to: 'bob' as PeerId, seq, id: `m${seq}` as MessageId, contentKind: f.contentKind, contents: f.contents, createdAt: f.createdAt }
  switch (f.shape) {
    case 'expiring':
      return { ...base, expiresAt: f.expiresAt, expiry: f.expiresAt }
    case 'expired':
      return { ...base, contents: new Uint8Array(0), expiresAt: f.expiresAt, expired: true }
    case 'failed':
      return { ...base, contents: new Uint8Array(0), expired: true, failed: 'mailbox full' }
    case 'acked-expiring':
      return { ...base, expiresAt: f.expiresAt }
    default:
      return base
  }
}

const outRun = fc
  .tuple(fc.nat({ max: 1000 }), fc.array(outFields, { minLength: 1, maxLength: 64 }))
  .map(([first, fields]) => fields.map((f, i) => outRow(first + i, f)))

/** What a reader compares: the fields, and the bytes as plain numbers (a view and a copy of the same bytes are equal). */
const plain = (rows: readonly { readonly contents: Uint8Array }[]): unknown[] => rows.map((row) => ({ ...row, contents: [...row.contents] }))

describe('outbox records', () => {
  it('read back as the rows written, with `expiry` as it was; by column exactly when the columns hold every row', () => {
    fc.assert(
      fc.property(outRun, (rows) => {
        const record = recordOf(rows as [StoredOutboxRow, ...StoredOutboxRow[]])
        const read = outRowsOf(structuredClone(record))
        expect(plain(read)).toEqual(plain(rows))
        const fits = rows.every((row) => row.expired !== true && row.failed === undefined && row.expiry === row.expiresAt)
        if (rows.length > 1) expect('lengths' in record).toBe(fits)
        // A record holds only its rows' bytes, not the buffers they were views into.
        if ('bytes' in record) expect(record.bytes.buffer.byteLength).toBe(rows.reduce((sum, row) => sum + row.contents.byteLength, 0))
        if ('rows' in record) for (const row of record.rows) expect(row.contents.buffer.byteLength).toBe(row.contents.byteLength)
      }),
    )
  })

  it('rewritten with one row changed or trimmed, read back as those rows; rewritten with its own rows, not written', () => {
    fc.assert(
      fc.property(outRun, fc.nat(), fc.boolean(), (rows, pick, expire) => {
        const record = structuredClone(recordOf(rows as [StoredOutboxRow, ...StoredOutboxRow[]]))
        const before = outRowsOf(record)
        expect(rewritten(record, before)).toBeUndefined()
        const at = pick % rows.length
        const changed = before.map((row, i) => {
          if (i !== at) return row
          const { expiry: _e, ...rest } = row
          return expire ? { ...rest, contents: new Uint8Array(0), expired: true as const } : { ...rest, contents: new Uint8Array(0) }
        })
        const again = rewritten(record, changed)
        expect(again).toBeDefined()
        expect(plain(outRowsOf(structuredClone(again!)))).toEqual(plain(changed))
        if (rows.length > 1) {
          const upTo = rows[0]!.seq + at
          if (upTo < rows[rows.length - 1]!.seq) expect(plain(outRowsOf(structuredClone(trimmedOutbox(record, upTo))))).toEqual(plain(rows.slice(at + 1)))
        }
      }),
    )
  })
})

const inRun = fc
  .tuple(
    fc.nat({ max: 1000 }),
    fc.array(fc.record({ contentKind: kind, contents, seq: fc.nat(), receivedAt: fc.nat(), later: fc.boolean() }), { minLength: 1, maxLength: 64 }),
    fc.boolean(),
  )
  .map(([first, fields, twoEpochs]) =>
    fields.map((f, i): InboxRow => ({
      from: 'carol' as PeerId,
      index: first + i,
      id: `i${first + i}` as MessageId,
      epoch: (twoEpochs && f.later ? '000000002.abcdef' : '000000001.abcdef') as Epoch,
      seq: f.seq,
      contentKind: f.contentKind,
      contents: f.contents,
      receivedAt: f.receivedAt,
    })),
  )

describe('inbox records', () => {
  it('read back from any index as the rows written there, each with bytes of its own; by column when one epoch', () => {
    fc.assert(
      fc.property(inRun, fc.nat({ max: 70 }), (rows, skip) => {
        const record = structuredClone(chunkOf(rows as [InboxRow, ...InboxRow[]], ownBytes))
        expect('lengths' in record).toBe(rows.every((row) => row.epoch === rows[0]!.epoch))
        const from = rows[0]!.index + skip
        const read = rowsOf(record, from)
        expect(plain(read)).toEqual(plain(rows.filter((row) => row.index >= from)))
        // Handed to the page, a view would take the whole record's bytes with it.
        for (const row of read) expect(row.contents.buffer.byteLength).toBe(row.contents.byteLength)
      }),
    )
  })
})
