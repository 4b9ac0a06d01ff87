import type { AckFrame, MsgFrame } from './frame.js'
import type { Epoch, PeerId } from './ids.js'

/*
 * The JSON headers of `msg` and `ack` frames, the frames of every message. Every header of a stream begins with the
 * same bytes, `{"from":…,"to":…,"epoch":"…"`: those are written once per stream, and read and checked once per stream;
 * the rest is `JSON.stringify` of the other fields, read without `JSON.parse` in the one form that gives. In Node a msg
 * frame's header cost 0.55 µs to stringify and 0.65 µs to parse, and the checks of its ids more.
 *
 * Invariants: a header written here is exactly `JSON.stringify`'s; fields read here are exactly `JSON.parse`'s, and
 * their `from`, `to` and `epoch` passed the codec's checks when their prefix was first read.
 */

/** A stream's `from`, `to` and `epoch` as its headers begin: the bytes, and the values they stand for. */
interface Prefix {
  readonly bytes: Uint8Array
  readonly from: PeerId
  readonly to: PeerId
  readonly epoch: Epoch
}

/** A few recent prefixes, replaced in turn: streams interleave at a sender, a receiver or a relay. */
class Recent {
  readonly items: (Prefix | undefined)[] = new Array<Prefix | undefined>(8)
  #next = 0

  add(prefix: Prefix): Prefix {
    this.items[this.#next] = prefix
    this.#next = (this.#next + 1) % this.items.length
    return prefix
  }
}

const INT = 0
const TEXT = 1
const BOOL = 2
type Field = readonly [name: string, type: typeof INT | typeof TEXT | typeof BOOL, key: Uint8Array]

function field(name: string, type: Field[1]): Field {
  return [name, type, Uint8Array.from(`,"${name}":${type === TEXT ? '"' : ''}`, (c) => c.charCodeAt(0))]
}

/** The fields after the prefix, in the order the codec writes them (`JSON.stringify` leaves out those undefined). */
const FIELDS = {
  msg: [
    field('seq', INT),
    field('floor', INT),
    field('id', TEXT),
    field('contentKind', TEXT),
    field('expiresAt', INT),
    field('skip', BOOL),
    field('sealed', BOOL),
  ],
  ack: [field('upTo', INT)],
}
const SAFE_DIGITS = 16

const written = new Recent()
const read = new Recent()
const encoder = new TextEncoder()
const decoder = new TextDecoder()

function prefixBytes(from: string, to: string, epoch: string): Uint8Array {
  return encoder.encode(`{"from":${JSON.stringify(from)},"to":${JSON.stringify(to)},"epoch":${JSON.stringify(epoch)}`)
}

/**
 * The header of a `msg` or `ack` frame as `JSON.stringify` writes it, in two parts: its stream's prefix (bytes) and
 * `JSON.stringify` of the other fields, whose opening brace stands for the comma after the prefix (the same length);
 * undefined when the frame has no such prefix or no other field (the caller stringifies it whole).
 */
export function fastHeader(frame: MsgFrame | AckFrame): { prefix: Uint8Array; rest: string } | undefined {
  const { from, to, epoch } = frame
  let prefix: Prefix | undefined
  for (const known of written.items) if (known !== undefined && known.from === from && known.to === to && known.epoch === epoch) prefix = known
  if (prefix === undefined) {
    if (typeof from !== 'string' || typeof to !== 'string' || typeof epoch !== 'string') return undefined
    prefix = written.add({ bytes: prefixBytes(from, to, epoch), from, to, epoch })
  }
  // In the codec's order. Written in code instead, they cost more than this in a Chromium worker's profile.
  let rest: string
  if (frame.kind === 'ack') rest = JSON.stringify({ upTo: frame.upTo })
  else {
    const { seq, floor, id, contentKind, expiresAt, skip, sealed } = frame
    rest = JSON.stringify({ seq, floor, id, contentKind, expiresAt, skip, sealed })
  }
  return rest.length > 2 ? { prefix: prefix.bytes, rest } : undefined
}

/**
 * The fields of the `msg` or `ack` header in `bytes[start, end)` as `JSON.parse` reads them, when it begins with a
 * prefix read before and the rest is in the form written here; undefined otherwise (the caller parses it whole).
 */
export function fastHeaderFields(kind: 'msg' | 'ack', bytes: Uint8Array, start: number, end: number): Record<string, unknown> | undefined {
  let prefix: Prefix | undefined
  for (const known of read.items) if (known !== undefined && startsWith(bytes, start, end, known.bytes)) prefix = known
  if (prefix === undefined) return undefined
  const fields: Record<string, unknown> = { from: prefix.from, to: prefix.to, epoch: prefix.epoch }
  let at = start + prefix.bytes.length
  for (const [name, type, key] of FIELDS[kind]) {
    if (!startsWith(bytes, at, end, key)) continue
    at += key.length
    const from = at
    let value: unknown
    if (type === INT) {
      let n = 0
      while (at < end && at - from <= SAFE_DIGITS && (bytes[at] as number) >= 0x30 && (bytes[at] as number) <= 0x39)
        n = n * 10 + ((bytes[at++] as number) - 0x30)
      // JSON has no leading zeros; a sign, fraction or exponent stops the digits and fails what must follow them.
      if (at === from || (bytes[from] === 0x30 && at - from > 1) || !Number.isSafeInteger(n)) return undefined
      value = n
    } else if (type === TEXT) {
      while (at < end && (bytes[at] as number) >= 0x20 && (bytes[at] as number) <= 0x7e && bytes[at] !== 0x22 && bytes[at] !== 0x5c) at++
      if (bytes[at] !== 0x22 || at >= end) return undefined
      value = decoder.decode(bytes.subarray(from, at++))
    } else {
      value = bytes[at] === 0x74 ? true : bytes[at] === 0x66 ? false : undefined
      if (value === undefined || !startsWith(bytes, at, end, value ? TRUE : FALSE)) return undefined
      at += value ? 4 : 5
    }
    fields[name] = value
  }
  return at === end - 1 && bytes[at] === 0x7d ? fields : undefined
}

const TRUE = Uint8Array.of(0x74, 0x72, 0x75, 0x65)
const FALSE = Uint8Array.of(0x66, 0x61, 0x6c, 0x73, 0x65)

/**
 * After the header at `start` was parsed whole and its `from`, `to` and `epoch` checked: keeps their prefix, if the
 * header begins with it (a sender that writes another form would only take the places of those that do).
 */
export function rememberPrefix(bytes: Uint8Array, start: number, end: number, from: PeerId, to: PeerId, epoch: Epoch): void {
  const prefix = prefixBytes(from, to, epoch)
  if (startsWith(bytes, start, end, prefix)) read.add({ bytes: prefix, from, to, epoch })
}

// `length`, not `byteLength`: V8 reads a typed array's `byteLength` in a loop several times slower.
function startsWith(bytes: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  const length = expected.length
  if (end - start < length) return false
  for (let i = 0; i < length; i++) if (bytes[start + i] !== expected[i]) return false
  return true
}
