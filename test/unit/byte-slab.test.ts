import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ByteSlab } from '../../src/core/byte-slab.js'

describe('ByteSlab', () => {
  it('hands out zeroed views that never share a byte, however sizes fall', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 600 }), { maxLength: 200 }), (sizes) => {
        const slab = new ByteSlab(1024)
        const views = sizes.map((bytes, index) => {
          const view = slab.take(bytes)
          expect(view.byteLength).toBe(bytes)
          expect(view.every((byte) => byte === 0)).toBe(true)
          // Marks every byte with its owner, then checks nobody else's marks were overwritten.
          view.fill((index % 255) + 1)
          return view
        })
        views.forEach((view, index) => expect(view.every((byte) => byte === (index % 255) + 1)).toBe(true))
      }),
    )
  })

  it('shares chunks for small arrays and gives a large one a buffer of its own', () => {
    const slab = new ByteSlab(1024)
    const a = slab.take(100)
    const b = slab.take(100)
    expect(a.buffer).toBe(b.buffer)
    expect(b.byteOffset).toBe(100)
    const large = slab.take(257)
    expect(large.buffer.byteLength).toBe(257)
    expect(slab.take(1).buffer).toBe(a.buffer)
  })

  it('copies bytes into a view of their own', () => {
    const slab = new ByteSlab(1024)
    const source = new Uint8Array([1, 2, 3])
    const copy = slab.copy(source)
    source[0] = 9
    expect([...copy]).toEqual([1, 2, 3])
    expect(copy.buffer).toBe(slab.take(1).buffer)
  })

  it('starts a new chunk when the current one has no room, leaving the old views as they were', () => {
    const slab = new ByteSlab(1024)
    const views = Array.from({ length: 5 }, () => slab.take(256).fill(9))
    expect(views[4]?.buffer).not.toBe(views[0]?.buffer)
    expect(views[4]?.byteOffset).toBe(0)
    expect(views.every((view) => view.every((byte) => byte === 9))).toBe(true)
  })
})
