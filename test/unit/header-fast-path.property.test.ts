/**
 * The codec's fast path for `msg` and `ack` headers (src/core/header-fast-path.ts) against `JSON.stringify` and
 * `JSON.parse`: it writes exactly what `JSON.stringify` writes or declines, reads exactly what `JSON.parse` reads or
 * declines, and takes every header of a valid frame of a stream the codec has read before (so that it is the path
 * the engine runs).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { AckFrame, MsgFrame } from '../../src/core/frame.js'
import { decodeFrame, encodeFrame } from '../../src/core/codec.js'
import { fastHeader, fastHeaderFields } from '../../src/core/header-fast-path.js'
import { frameArb, FUZZ_SEED, fuzzRuns } from '../helpers/fuzz-frames.js'

const RUNS = fuzzRuns(3_000)
const MAX_BYTES = 64 * 1024
const encoder = new TextEncoder()
const POOLS = {
  peers: ['alice', 'bob', 'carol', 'mallory', 'ünï©ødé', 'q"uote', 'back\\slash', 'x'.repeat(128)],
  epochs: ['00000000a.aliceA', '00000000b.aliceB'],
}

/** The header `JSON.stringify` writes for the frame, fields in the codec's order (`undefined` ones left out). */
function stringified(frame: MsgFrame | AckFrame): string {
  const { from, to, epoch } = frame
  if (frame.kind === 'ack') return JSON.stringify({ from, to, epoch, upTo: frame.upTo })
  const { seq, floor, id, contentKind, expiresAt, skip, sealed } = frame
  return JSON.stringify({ from, to, epoch, seq, floor, id, contentKind, expiresAt, skip, sealed })
}

function written(frame: MsgFrame | AckFrame): string | undefined {
  const header = fastHeader(frame)
  // The rest's opening brace stands for the comma after the prefix.
  return header === undefined ? undefined : `${new TextDecoder().decode(header.prefix)},${header.rest.slice(1)}`
}

/** The header's place in an encoded frame: after the version, the kind and the header's length (4 bytes). */
function headerEnd(bytes: Uint8Array): number {
  return 6 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(2)
}

const validArb = frameArb(POOLS).filter((frame): frame is MsgFrame | AckFrame => frame.kind === 'msg' || frame.kind === 'ack')

/** Frames whose fields may be anything JSON can hold, or nothing. */
const oddValue = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom('', '"', '\\', '\n', '\u2028', '\ud800', 'é'),
  fc.integer(),
  fc.double(),
  fc.constantFrom(-0, -1, Number.MAX_SAFE_INTEGER + 1, 1e21, Number.NaN),
  fc.boolean(),
  fc.constant(undefined),
  fc.constant(null),
)
const oddArb = fc
  .tuple(validArb, fc.constantFrom('from', 'to', 'epoch', 'seq', 'floor', 'id', 'contentKind', 'expiresAt', 'skip', 'sealed', 'upTo'), oddValue)
  .map(([frame, field, value]): MsgFrame | AckFrame => ({ ...frame, [field]: value }))

describe('the fast header path', () => {
  it('writes what JSON.stringify writes for every valid msg and ack frame', () => {
    fc.assert(
      fc.property(validArb, (frame) => {
        expect(written(frame)).toBe(stringified(frame))
      }),
      { seed: FUZZ_SEED, numRuns: RUNS },
    )
  })

  it('writes what JSON.stringify writes, or declines, for frames with any field values', () => {
    fc.assert(
      fc.property(oddArb, (frame) => {
        const text = written(frame)
        if (text !== undefined) expect(text).toBe(stringified(frame))
      }),
      { seed: FUZZ_SEED, numRuns: RUNS * 3 },
    )
  })

  it('reads every header of a stream it has read before, as JSON.parse does', () => {
    fc.assert(
      fc.property(validArb, (frame) => {
        const bytes = encodeFrame(frame)
        const first = decodeFrame(bytes, MAX_BYTES)
        expect(first).toEqual({ ok: true, frame })
        const fields = fastHeaderFields(frame.kind, bytes, 6, headerEnd(bytes))
        expect(fields).toBeDefined()
        expect(fields).toEqual(JSON.parse(new TextDecoder().decode(bytes.subarray(6, headerEnd(bytes)))))
        expect(decodeFrame(bytes, MAX_BYTES)).toEqual(first)
      }),
      { seed: FUZZ_SEED, numRuns: RUNS },
    )
  })

  it('reads any bytes after a known prefix as JSON.parse would, or declines', () => {
    // Bytes that mean something in JSON, more often than at random; `escape` inserts `\/`, which JSON reads as `/`.
    const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...Array.from('\\"0123456789.eE-+ ,:{}[]tfn', (c) => c.charCodeAt(0))))
    const edits = fc.array(fc.tuple(fc.nat(), fc.constantFrom('flip', 'insert', 'delete', 'cut', 'escape'), byte), { maxLength: 3 })
    fc.assert(
      fc.property(validArb, edits, fc.nat(3), (frame, changes, pad) => {
        expect(decodeFrame(encodeFrame(frame), MAX_BYTES).ok).toBe(true)
        let header = [...encoder.encode(stringified(frame))]
        for (const [at, edit, byte] of changes) {
          const i = header.length === 0 ? 0 : at % header.length
          if (edit === 'flip') header[i] = byte
          else if (edit === 'insert') header.splice(i, 0, byte)
          else if (edit === 'delete') header.splice(i, 1)
          else if (edit === 'escape') header.splice(i, 0, 0x5c, 0x2f)
          else header = header.slice(0, i)
        }
        // The header sits inside a frame: the bytes before and after it are not its own.
        const bytes = new Uint8Array(pad + header.length + pad).fill(0x7d)
        bytes.set(header, pad)
        const fields = fastHeaderFields(frame.kind, bytes, pad, pad + header.length)
        if (fields === undefined) return
        expect(fields).toEqual(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(header))))
      }),
      { seed: FUZZ_SEED, numRuns: RUNS * 10 },
    )
  })

  it('reads interleaved streams right, more of them than it remembers', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 19 }), fc.nat(10), fc.nat()), { minLength: 1, maxLength: 60 }), (steps) => {
        for (const [peer, extra, upTo] of steps) {
          // Epochs (and peers) that extend one another: their headers share bytes up to the closing quote.
          const epoch = `00000000a.aaaaaa${'x'.repeat(extra)}`
          const frame: AckFrame = { kind: 'ack', from: `p${'1'.repeat(peer)}` as never, to: 'me' as never, epoch: epoch as never, upTo }
          expect(decodeFrame(encodeFrame(frame), MAX_BYTES)).toEqual({ ok: true, frame })
        }
      }),
      { seed: FUZZ_SEED, numRuns: RUNS / 10 },
    )
  })
})
