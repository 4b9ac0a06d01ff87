import { describe, expect, it } from 'vitest'
import { malformation } from '../../src/storage/op-validation.js'

const outRow = { to: 'bob', seq: 3, id: 'm-3', contentKind: 'b', contents: new Uint8Array([1]), createdAt: 1_700_000_000_000 }
const inRow = {
  from: 'alice',
  index: 0,
  id: 'm-3',
  epoch: '00m5x3k1a.abc',
  seq: 3,
  contentKind: 's',
  contents: new Uint8Array([104]),
  receivedAt: 1_700_000_000_000,
}

describe('malformation: the rows of every message', () => {
  it('accepts well-formed rows, with and without their optional fields', () => {
    expect(malformation({ op: 'putOutbox', row: outRow })).toBeUndefined()
    expect(malformation({ op: 'putOutbox', row: { ...outRow, expiresAt: 5, expired: true, failed: 'ttl' } })).toBeUndefined()
    expect(malformation({ op: 'putInbox', row: inRow })).toBeUndefined()
  })

  // Every field, each with a value of the wrong kind: a field the check forgets lets its row through.
  const outBad: Record<string, unknown[]> = {
    to: [undefined, '', 'a b', 7],
    seq: [undefined, -1, 1.5, '3', Number.MAX_SAFE_INTEGER + 1],
    id: [undefined, '', 5],
    contentKind: [undefined, 'x', 1],
    contents: [undefined, 'text', [1], new ArrayBuffer(1)],
    createdAt: [undefined, Number.NaN, Infinity, '1'],
    expiresAt: [null, Number.NaN, '1'],
    expired: [false, 1, 'true'],
    failed: [null, '', 3],
  }
  const inBad: Record<string, unknown[]> = {
    from: [undefined, '', 'a\tb', 7],
    index: [undefined, -1, 0.5, '0'],
    id: [undefined, '', 5],
    epoch: [undefined, '', 1],
    seq: [undefined, -1, 2.5],
    contentKind: [undefined, 'B'],
    contents: [undefined, 'h', new DataView(new ArrayBuffer(1))],
    receivedAt: [undefined, Number.NaN, -Infinity, '1'],
  }

  it.each(Object.entries(outBad))('refuses a putOutbox row with a bad %s', (field, values) => {
    for (const value of values)
      expect(malformation({ op: 'putOutbox', row: { ...outRow, [field]: value } }), `${field}: ${String(value)}`).toBe('malformed field "row"')
  })

  it.each(Object.entries(inBad))('refuses a putInbox row with a bad %s', (field, values) => {
    for (const value of values)
      expect(malformation({ op: 'putInbox', row: { ...inRow, [field]: value } }), `${field}: ${String(value)}`).toBe('malformed field "row"')
  })

  it('refuses a row that is not an object', () => {
    for (const row of [undefined, null, 'row', 3]) {
      expect(malformation({ op: 'putOutbox', row })).toBe('malformed field "row"')
      expect(malformation({ op: 'putInbox', row })).toBe('malformed field "row"')
    }
  })
})
