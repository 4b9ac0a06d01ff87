/**
 * encodeContents keeps bytes it owns (the worker's clone of a page's send)
 * without another copy, but copies what someone else may change or what
 * would store more than its own bytes.
 */
import { describe, expect, it } from 'vitest'
import { encodeContents } from '../../src/core/contents.js'

describe('encodeContents and bytes', () => {
  it('copies bytes the caller still holds', () => {
    const bytes = new Uint8Array([1, 2, 3])
    const encoded = encodeContents(bytes, 1024)
    expect(encoded.bytes).not.toBe(bytes)
    bytes[0] = 9
    expect([...encoded.bytes]).toEqual([1, 2, 3])
  })

  it('keeps owned bytes that fill their buffer as they are', () => {
    const bytes = new Uint8Array([1, 2, 3])
    expect(encodeContents(bytes, 1024, true).bytes).toBe(bytes)
  })

  it('copies an owned view on a larger buffer: only its bytes are stored', () => {
    const view = new Uint8Array(64 * 1024).subarray(10, 13)
    const encoded = encodeContents(view, 1024, true)
    expect(encoded.bytes).not.toBe(view)
    expect(encoded.bytes.buffer.byteLength).toBe(3)
  })

  it('copies owned bytes on a shared buffer', () => {
    const bytes = new Uint8Array(new SharedArrayBuffer(3))
    expect(encodeContents(bytes, 1024, true).bytes).not.toBe(bytes)
  })
})
