import { decodeContents, type ContentKind } from './contents.js'
import type { AckFrame, Frame, HelloFrame, MsgFrame, ResetFrame } from './frame.js'
import { PROTOCOL_VERSION } from './frame.js'
import { isEpoch, isMessageId, isPeerId, isSeq } from './ids.js'

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
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Encodes a frame as `[version u8][kind u8][header length u32 BE][JSON header][body]`.
 * Only `msg` frames have a body (the contents, as raw bytes).
 */
export function encodeFrame(frame: Frame): Uint8Array {
  const { body, header } = splitFrame(frame)
  const head = encoder.encode(JSON.stringify(header))
  const out = new Uint8Array(PREFIX + head.byteLength + body.byteLength)
  const view = new DataView(out.buffer)
  view.setUint8(0, PROTOCOL_VERSION)
  view.setUint8(1, KIND_CODES[frame.kind])
  view.setUint32(2, head.byteLength)
  out.set(head, PREFIX)
  out.set(body, PREFIX + head.byteLength)
  return out
}

function splitFrame(frame: Frame): { header: Record<string, unknown>; body: Uint8Array } {
  if (frame.kind !== 'msg') {
    const { kind: _kind, ...header } = frame
    return { header, body: new Uint8Array(0) }
  }
  const { kind: _kind, contents, ...header } = frame
  return { header, body: contents }
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
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = view.getUint8(0)
  if (version !== PROTOCOL_VERSION) return fail('VERSION', `version ${version}`)
  const kind = KINDS[view.getUint8(1)]
  if (kind === undefined || kind === '') return fail('KIND', `kind code ${view.getUint8(1)}`)
  const headerLength = view.getUint32(2)
  if (PREFIX + headerLength > bytes.byteLength) return fail('TRUNCATED', 'header runs past the end')
  if (headerLength > MAX_HEADER_BYTES) return fail('HEADER', `header of ${headerLength} bytes > ${MAX_HEADER_BYTES}`)
  let header: unknown
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(PREFIX, PREFIX + headerLength)))
  } catch {
    return fail('HEADER', 'header is not UTF-8 JSON')
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('HEADER', 'header is not an object')
  const body = bytes.subarray(PREFIX + headerLength)
  const h = header as Record<string, unknown>
  const problem = VALIDATORS[kind](h, body)
  if (problem !== undefined) return fail('FIELD', `${kind}.${problem}`)
  return { ok: true, frame: build(kind, h, body) }
}

type Validator = (h: Record<string, unknown>, body: Uint8Array) => string | undefined

const base: Validator = (h) => {
  if (!isPeerId(h.from)) return 'from'
  if (!isPeerId(h.to)) return 'to'
  if (h.from === h.to) return 'to'
  if (!isEpoch(h.epoch)) return 'epoch'
  return undefined
}

const VALIDATORS: Record<Frame['kind'], Validator> = {
  hello: (h, body) =>
    base(h, body) ??
    (!isSeq(h.floor) ? 'floor' : undefined) ??
    (h.known !== null && !isEpoch(h.known) ? 'known' : undefined) ??
    (!isSeqOrNone(h.upTo) ? 'upTo' : undefined) ??
    (typeof h.reply !== 'boolean' ? 'reply' : undefined) ??
    (h.claim !== undefined && h.claim !== true ? 'claim' : undefined) ??
    (body.byteLength !== 0 ? 'body' : undefined),
  msg: (h, body) =>
    base(h, body) ??
    (!isSeq(h.seq) ? 'seq' : undefined) ??
    (!isSeq(h.floor) || h.floor > (h.seq as number) ? 'floor' : undefined) ??
    (!isMessageId(h.id) ? 'id' : undefined) ??
    (h.contentKind !== 'b' && h.contentKind !== 's' && h.contentKind !== 'j' ? 'contentKind' : undefined) ??
    (h.expiresAt !== undefined && !isSeq(h.expiresAt) ? 'expiresAt' : undefined) ??
    (h.skip !== undefined && h.skip !== true ? 'skip' : undefined) ??
    (h.skip === true && body.byteLength !== 0 ? 'body' : undefined) ??
    (decodeContents(h.contentKind as ContentKind, body) === undefined ? 'contents' : undefined),
  ack: (h, body) => base(h, body) ?? (!isSeq(h.upTo) ? 'upTo' : undefined) ?? (body.byteLength !== 0 ? 'body' : undefined),
  reset: (h, body) => base(h, body) ?? (!isEpoch(h.expected) ? 'expected' : undefined) ?? (body.byteLength !== 0 ? 'body' : undefined),
}

function isSeqOrNone(value: unknown): value is number {
  return value === -1 || isSeq(value)
}

// Builds frames field by field so unknown header fields never reach the engine.
function build(kind: Frame['kind'], h: Record<string, unknown>, body: Uint8Array): Frame {
  const common = { from: h.from, to: h.to, epoch: h.epoch }
  switch (kind) {
    case 'hello':
      return {
        kind,
        ...common,
        floor: int(h.floor),
        known: h.known,
        upTo: int(h.upTo),
        reply: h.reply,
        ...(h.claim === true && { claim: true }),
      } as HelloFrame
    case 'ack':
      return { kind, ...common, upTo: int(h.upTo) } as AckFrame
    case 'reset':
      return { kind, ...common, expected: h.expected } as ResetFrame
    case 'msg': {
      const msg = {
        kind,
        ...common,
        seq: int(h.seq),
        floor: int(h.floor),
        id: h.id,
        contentKind: h.contentKind as ContentKind,
        contents: body.slice(),
        ...(h.expiresAt !== undefined && { expiresAt: int(h.expiresAt) }),
        ...(h.skip === true && { skip: true }),
      }
      return msg as MsgFrame
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
