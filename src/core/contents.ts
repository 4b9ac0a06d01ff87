import { IlmError } from './errors.js'

/** A JSON value as `JSON.stringify` round-trips it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue | undefined }

/** What the application may send; it comes out on the other side as the same kind. */
export type Contents = Uint8Array | string | JsonValue

/** How contents were encoded: raw bytes, UTF-8 text, or UTF-8 JSON. */
export type ContentKind = 'b' | 's' | 'j'

/** Contents in their stored and wire form. */
export interface EncodedContents {
  readonly kind: ContentKind
  readonly bytes: Uint8Array
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })
const MAX_JSON_DEPTH = 256

/**
 * Encodes contents, refusing anything that would not come back as it went in
 * (functions, symbols, bigints, non-finite numbers, class instances, cycles).
 * Bytes are copied (the caller may change them later) unless `owned`: no one
 * else holds them (a structured clone, e.g. the worker's copy of the page's
 * send), and they fill an `ArrayBuffer` of their own (a view on a larger or
 * a shared buffer is copied, so only its bytes are stored).
 * @throws IlmError `UNSERIALIZABLE` or `TOO_LARGE`; nothing else.
 */
export function encodeContents(contents: unknown, maxBytes: number, owned = false): EncodedContents {
  let encoded: EncodedContents
  if (contents instanceof Uint8Array) {
    const whole = owned && contents.buffer instanceof ArrayBuffer && contents.byteLength === contents.buffer.byteLength
    encoded = { kind: 'b', bytes: whole ? contents : contents.slice() }
  } else if (typeof contents === 'string') {
    encoded = { kind: 's', bytes: encoder.encode(contents) }
  } else {
    assertJson(contents, 0, new Set())
    encoded = { kind: 'j', bytes: encoder.encode(JSON.stringify(contents)) }
  }
  if (encoded.bytes.byteLength > maxBytes) {
    throw new IlmError('TOO_LARGE', `contents are ${encoded.bytes.byteLength} bytes; the limit is ${maxBytes}`)
  }
  return encoded
}

/** Decodes contents; `undefined` when the bytes do not match their kind. */
export function decodeContents(kind: ContentKind, bytes: Uint8Array): { value: Contents } | undefined {
  try {
    if (kind === 'b') return { value: bytes }
    const text = decoder.decode(bytes)
    return kind === 's' ? { value: text } : { value: JSON.parse(text) as JsonValue }
  } catch {
    return undefined
  }
}

function assertJson(value: unknown, depth: number, seen: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return
    throw unserializable(`the number ${value} has no JSON form`)
  }
  if (typeof value !== 'object') throw unserializable(`${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`} has no JSON form`)
  if (depth >= MAX_JSON_DEPTH) throw unserializable(`nesting deeper than ${MAX_JSON_DEPTH}`)
  if (seen.has(value)) throw unserializable('the value contains a cycle')
  seen.add(value)
  if (Array.isArray(value)) {
    for (const item of value) assertJson(item, depth + 1, seen)
  } else {
    const proto: unknown = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      throw unserializable('only plain objects, arrays, strings, numbers, booleans, null and Uint8Array can be sent')
    }
    // Undefined properties are dropped, exactly as JSON.stringify drops them.
    for (const item of Object.values(value)) if (item !== undefined) assertJson(item, depth + 1, seen)
  }
  seen.delete(value)
}

function unserializable(why: string): IlmError {
  return new IlmError('UNSERIALIZABLE', `contents cannot be sent: ${why}`)
}
