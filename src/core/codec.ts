import type { ByteSlab } from './byte-slab.js'
import { decodeContents, type ContentKind } from './contents.js'
import { fastHeader, fastHeaderFields, rememberPrefix } from './header-fast-path.js'
import type { Frame } from './frame.js'
import { PROTOCOL_VERSION } from './frame.js'
import { isEpoch, isMessageId, isPeerId, isSeq, type Epoch, type MessageId, type PeerId } from './ids.js'

/** Why a frame was refused. */
export type DecodeFailure = 'TRUNCATED' | 'OVERSIZE' | 'VERSION' | 'KIND' | 'HEADER' | 'FIELD'

/** The result of {@link decodeFrame}: a valid frame, or a typed refusal. */
export type DecodeResult = { readonly ok: true; readonly frame: Frame } | { readonly ok: false; readonly reason: DecodeFailure; readonly detail: string }

const KIND_CODES = { hello: 1, msg: 2, ack: 3, reset: 4 } as const
const KINDS = ['', 'hello', 'msg', 'ack', 'reset'] as const
const PREFIX = 6 // version u8, kind u8, header length u32
/**
 * The largest valid header is under 2 KiB (two 128-character peer ids, even
 * fully escaped, two epochs, a message id, four numbers). Refusing longer ones
 * before parsing keeps a hostile frame from costing more than a valid one:
 * deeply nested JSON parses ~30x slower per byte than flat JSON.
 */
const MAX_HEADER_BYTES = 4096
/** A hello's key bundle is a few hundred bytes; anything longer is not one. */
const MAX_KEYS_BYTES = 1024
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Encodes a frame as `[version u8][kind u8][header length u32 BE][JSON header][body]`.
 * A `msg` frame's body is its contents (sealed or not), a `hello`'s is the
 * sender's key bundle (when it encrypts); the other kinds have none.
 *
 * Given a `slab`, the frame is a view into its shared chunks (see {@link ByteSlab});
 * otherwise it has a buffer of its own.
 */
export function encodeFrame(frame: Frame, slab?: ByteSlab): Uint8Array {
  const body = frame.kind === 'msg' ? frame.contents : frame.kind === 'hello' ? (frame.keys ?? EMPTY) : EMPTY
  const fast = frame.kind === 'msg' || frame.kind === 'ack' ? fastHeader(frame) : undefined
  let out: Uint8Array | undefined
  let written = 0
  if (fast !== undefined) {
    const { prefix, rest } = fast
    written = prefix.length + rest.length
    out = allocate(PREFIX + written + body.byteLength, slab)
    if (writeAscii(rest, out, PREFIX + prefix.length)) {
      out.set(prefix, PREFIX)
      // The rest's opening brace is the comma after the prefix.
      out[PREFIX + prefix.length] = 0x2c
    } else out = undefined
  }
  if (out === undefined) {
    const head = JSON.stringify(headerOf(frame))
    // An ASCII header is one byte per character: written in place, with one allocation.
    out = allocate(PREFIX + head.length + body.byteLength, slab)
    written = head.length
    if (!writeAscii(head, out, PREFIX)) {
      const bytes = encoder.encode(head)
      out = allocate(PREFIX + bytes.byteLength + body.byteLength, slab)
      out.set(bytes, PREFIX)
      written = bytes.byteLength
    }
  }
  out[0] = PROTOCOL_VERSION
  out[1] = KIND_CODES[frame.kind]
  out[2] = written >>> 24
  out[3] = (written >>> 16) & 0xff
  out[4] = (written >>> 8) & 0xff
  out[5] = written & 0xff
  out.set(body, PREFIX + written)
  return out
}

const EMPTY = new Uint8Array(0)

/**
 * Writes `text` at `at` one byte per character; false (and `out` partly written) at the first character that is not
 * ASCII. A loop, not `TextEncoder.encodeInto`: in a Chromium worker that call cost about 2 µs per frame (bench:peers'
 * sending worker, 16 -> 14 µs of CPU per message), the loop a fraction of that; in Node both are cheap.
 */
function writeAscii(text: string, out: Uint8Array, at: number): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code > 0x7f) return false
    out[at + i] = code
  }
  return true
}

function allocate(bytes: number, slab: ByteSlab | undefined): Uint8Array {
  return slab === undefined ? new Uint8Array(bytes) : slab.take(bytes)
}

// Field by field, in a fixed order, rather than a rest spread: one shape per kind, and no copy of the contents.
function headerOf(frame: Frame): object {
  const { from, to, epoch } = frame
  switch (frame.kind) {
    case 'hello': {
      const { floor, known, upTo, reply, claim } = frame
      const e2e = frame.keys !== undefined
      return claim === undefined ? { from, to, epoch, floor, known, upTo, reply, e2e } : { from, to, epoch, floor, known, upTo, reply, claim, e2e }
    }
    case 'msg': {
      const { seq, floor, id, contentKind, expiresAt, skip, sealed } = frame
      return { from, to, epoch, seq, floor, id, contentKind, expiresAt, skip, sealed }
    }
    case 'ack':
      return { from, to, epoch, upTo: frame.upTo }
    case 'reset':
      return { from, to, epoch, expected: frame.expected }
  }
}

/** The kind a frame says it is, without decoding or validating the rest (for routing); `undefined` if unknown. */
export function peekKind(bytes: Uint8Array): Frame['kind'] | undefined {
  const kind = bytes.byteLength >= PREFIX && bytes[0] === PROTOCOL_VERSION ? KINDS[bytes[1] ?? 0] : undefined
  return kind === '' ? undefined : kind
}

/**
 * Decodes and validates a frame. Never throws: anything malformed, oversize,
 * of another version or of an unknown kind comes back as a typed refusal.
 */
export function decodeFrame(bytes: Uint8Array, maxBytes: number): DecodeResult {
  if (!(bytes instanceof Uint8Array)) return fail('HEADER', 'frame is not binary')
  if (bytes.byteLength > maxBytes) return fail('OVERSIZE', `${bytes.byteLength} > ${maxBytes} bytes`)
  if (bytes.byteLength < PREFIX) return fail('TRUNCATED', 'shorter than the frame prefix')
  const version = bytes[0] as number
  if (version !== PROTOCOL_VERSION) return fail('VERSION', `version ${version}`)
  const kind = KINDS[bytes[1] as number]
  if (kind === undefined || kind === '') return fail('KIND', `kind code ${bytes[1] as number}`)
  // Unsigned: `<<` would make a length of 2^31 or more negative.
  const headerLength = (bytes[2] as number) * 0x1000000 + (((bytes[3] as number) << 16) | ((bytes[4] as number) << 8) | (bytes[5] as number))
  if (PREFIX + headerLength > bytes.byteLength) return fail('TRUNCATED', 'header runs past the end')
  if (headerLength > MAX_HEADER_BYTES) return fail('HEADER', `header of ${headerLength} bytes > ${MAX_HEADER_BYTES}`)
  const end = PREFIX + headerLength
  const stream = kind === 'msg' || kind === 'ack'
  const fast = stream ? fastHeaderFields(kind, bytes, PREFIX, end) : undefined
  let h = fast
  if (h === undefined) {
    let header: unknown
    try {
      header = JSON.parse(decoder.decode(bytes.subarray(PREFIX, end)))
    } catch {
      return fail('HEADER', 'header is not UTF-8 JSON')
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('HEADER', 'header is not an object')
    h = header as Record<string, unknown>
  }
  const body = bytes.subarray(end)
  // A prefix the fast path knows had its `from`, `to` and `epoch` checked when it was first read.
  const problem = (fast === undefined ? base(h) : undefined) ?? FIELDS[kind](h, body)
  if (problem !== undefined) return fail('FIELD', `${kind}.${problem}`)
  if (stream && fast === undefined) rememberPrefix(bytes, PREFIX, end, h.from as PeerId, h.to as PeerId, h.epoch as Epoch)
  return { ok: true, frame: build(kind, h, body) }
}

type Validator = (h: Record<string, unknown>, body: Uint8Array) => string | undefined

function base(h: Record<string, unknown>): string | undefined {
  if (!isPeerId(h.from)) return 'from'
  if (!isPeerId(h.to)) return 'to'
  if (h.from === h.to) return 'to'
  if (!isEpoch(h.epoch)) return 'epoch'
  return undefined
}

// Each kind's fields after `base`'s.
const FIELDS: Record<Frame['kind'], Validator> = {
  hello: (h, body) =>
    (!isSeq(h.floor) ? 'floor' : undefined) ??
    (h.known !== null && !isEpoch(h.known) ? 'known' : undefined) ??
    (!isSeqOrNone(h.upTo) ? 'upTo' : undefined) ??
    (typeof h.reply !== 'boolean' ? 'reply' : undefined) ??
    (h.claim !== undefined && h.claim !== true ? 'claim' : undefined) ??
    (h.e2e !== undefined && typeof h.e2e !== 'boolean' ? 'e2e' : undefined) ??
    ((h.e2e === true) !== body.byteLength > 0 || body.byteLength > MAX_KEYS_BYTES ? 'body' : undefined),
  msg: (h, body) =>
    (!isSeq(h.seq) ? 'seq' : undefined) ??
    (!isSeq(h.floor) || h.floor > (h.seq as number) ? 'floor' : undefined) ??
    (!isMessageId(h.id) ? 'id' : undefined) ??
    (h.contentKind !== 'b' && h.contentKind !== 's' && h.contentKind !== 'j' ? 'contentKind' : undefined) ??
    (h.expiresAt !== undefined && !isSeq(h.expiresAt) ? 'expiresAt' : undefined) ??
    (h.skip !== undefined && h.skip !== true ? 'skip' : undefined) ??
    (h.skip === true && body.byteLength !== 0 ? 'body' : undefined) ??
    (h.sealed !== undefined && (h.sealed !== true || h.skip === true || h.contentKind !== 'b') ? 'sealed' : undefined) ??
    // Sealed contents are checked once opened.
    (h.sealed !== true && decodeContents(h.contentKind as ContentKind, body) === undefined ? 'contents' : undefined),
  ack: (h, body) => (!isSeq(h.upTo) ? 'upTo' : undefined) ?? (body.byteLength !== 0 ? 'body' : undefined),
  reset: (h, body) => (!isEpoch(h.expected) ? 'expected' : undefined) ?? (body.byteLength !== 0 ? 'body' : undefined),
}

function isSeqOrNone(value: unknown): value is number {
  return value === -1 || isSeq(value)
}

// Builds frames field by field so unknown header fields never reach the engine.
function build(kind: Frame['kind'], h: Record<string, unknown>, body: Uint8Array): Frame {
  const from = h.from as PeerId
  const to = h.to as PeerId
  const epoch = h.epoch as Epoch
  switch (kind) {
    case 'hello': {
      const hello = { kind, from, to, epoch, floor: int(h.floor), known: h.known as Epoch | null, upTo: int(h.upTo), reply: h.reply as boolean }
      if (h.claim !== true && h.e2e !== true) return hello
      return { ...hello, ...(h.claim === true && { claim: true as const }), ...(h.e2e === true && { keys: body.slice() }) }
    }
    case 'ack':
      return { kind, from, to, epoch, upTo: int(h.upTo) }
    case 'reset':
      return { kind, from, to, epoch, expected: h.expected as Epoch }
    case 'msg': {
      const msg = {
        kind,
        from,
        to,
        epoch,
        seq: int(h.seq),
        floor: int(h.floor),
        id: h.id as MessageId,
        contentKind: h.contentKind as ContentKind,
        contents: body.slice(),
      }
      // The common shapes without conditional spreads (slow in V8; this runs per frame).
      if (h.expiresAt === undefined && h.skip !== true) return h.sealed === true ? { ...msg, sealed: true as const } : msg
      return {
        ...msg,
        ...(h.expiresAt !== undefined && { expiresAt: int(h.expiresAt) }),
        ...(h.skip === true && { skip: true as const }),
        ...(h.sealed === true && { sealed: true as const }),
      }
    }
  }
}

/** A validated integer with `-0` (valid JSON, and a safe integer) made `0`, so the frame re-encodes as it reads. */
function int(value: unknown): number {
  return (value as number) + 0
}

function fail(reason: DecodeFailure, detail: string): DecodeResult {
  return { ok: false, reason, detail }
}
