import { describe, expect, it } from 'vitest'
import { RowCache } from '../../src/core/row-cache.js'
import type { OutboxRow } from '../../src/core/store.js'
import type { MessageId, PeerId } from '../../src/core/ids.js'

function row(seq: number, bytes = 8): OutboxRow {
  return { to: 'b' as PeerId, seq, id: `m${seq}` as MessageId, contentKind: 'b', contents: new Uint8Array(bytes), createdAt: 0 }
}

describe('RowCache', () => {
  it('holds rows up to its row bound, then refuses more', () => {
    const cache = new RowCache(3, 1024)
    expect([0, 1, 2, 3].map((seq) => cache.set(row(seq)))).toEqual([true, true, true, false])
    expect(cache.size).toBe(3)
    expect(cache.get(3)).toBeUndefined()
  })

  it('holds rows up to its byte bound; a replacement that shrinks always fits', () => {
    const cache = new RowCache(100, 20)
    expect(cache.set(row(0, 10))).toBe(true)
    expect(cache.set(row(1, 10))).toBe(true)
    expect(cache.set(row(2, 1))).toBe(false)
    expect(cache.set(row(1, 0))).toBe(true)
    expect(cache.set(row(2, 10))).toBe(true)
    expect(cache.set(row(2, 20))).toBe(false)
    expect(cache.get(2)).toBeUndefined()
  })

  it('drops rows up to a seq, in order or not, and frees their room', () => {
    const cache = new RowCache(4, 1024)
    for (const seq of [5, 3, 4, 9]) cache.set(row(seq))
    cache.dropUpTo(4)
    expect([3, 4, 5, 9].map((seq) => cache.get(seq)?.seq)).toEqual([undefined, undefined, 5, 9])
    cache.dropUpTo(100)
    expect(cache.size).toBe(0)
    expect([10, 11, 12, 13].every((seq) => cache.set(row(seq)))).toBe(true)
    cache.dropUpTo(11)
    expect(cache.size).toBe(2)
    expect(cache.get(12)?.seq).toBe(12)
  })
})
