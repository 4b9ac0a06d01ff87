import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, type Frame, type MsgFrame } from '../../src/index.js'
import { ByteSlab } from '../../src/core/byte-slab.js'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'

const MAX = 64 * 1024
const epoch = '00m5x3k1a.abcDEF123_-' as Epoch
const msg: MsgFrame = {
  kind: 'msg',
  from: 'alice' as PeerId,
  to: 'bob' as PeerId,
  epoch,
  seq: 41,
  floor: 40,
  id: 'V1StGXR8_Z5jdHi6B-myT' as MessageId,
  contentKind: 's',
  contents: new TextEncoder().encode('héllo'),
  expiresAt: 1_700_000_000_000,
}
const frames: Frame[] = [
  msg,
  { ...msg, contentKind: 'b', contents: new Uint8Array(0), skip: true },
  { kind: 'hello', from: msg.from, to: msg.to, epoch, floor: 0, known: null, upTo: -1, reply: false },
  { kind: 'hello', from: msg.from, to: msg.to, epoch, floor: 7, known: epoch, upTo: 12, reply: true },
  { kind: 'ack', from: msg.to, to: msg.from, epoch, upTo: Number.MAX_SAFE_INTEGER - 1 },
  { kind: 'reset', from: msg.to, to: msg.from, epoch, expected: '00m5x3k1b.xyz789' as Epoch },
  // Headers that are not ASCII take more bytes than characters: Latin-1 alone, and beyond it.
  { ...msg, from: 'zoë' as PeerId },
  { ...msg, from: 'zoë' as PeerId, to: '🦊-fox' as PeerId },
  { kind: 'ack', from: '李' as PeerId, to: msg.from, epoch, upTo: 3 },
]

function mutateHeader(frame: Frame, patch: Record<string, unknown>): Uint8Array {
  const bytes = encodeFrame(frame)
  const view = new DataView(bytes.buffer)
  const length = view.getUint32(2)
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(6, 6 + length))) as Record<string, unknown>
  const head = new TextEncoder().encode(JSON.stringify({ ...header, ...patch }))
  const out = new Uint8Array(6 + head.length + bytes.length - 6 - length)
  out.set(bytes.subarray(0, 6))
  new DataView(out.buffer).setUint32(2, head.length)
  out.set(head, 6)
  out.set(bytes.subarray(6 + length), 6 + head.length)
  return out
}

describe('frame codec', () => {
  it.each(frames.map((f) => [f.kind, f] as const))('round-trips a %s frame', (_kind, frame) => {
    expect(decodeFrame(encodeFrame(frame), MAX)).toEqual({ ok: true, frame })
  })

  it('refuses each kind of malformed frame with a typed reason', () => {
    const good = encodeFrame(msg)
    const wrongVersion = good.slice()
    wrongVersion[0] = 1
    const unknownKind = good.slice()
    unknownKind[1] = 9
    const cases: Array<[Uint8Array, string]> = [
      [good.subarray(0, 3), 'TRUNCATED'],
      [good.subarray(0, 20), 'TRUNCATED'],
      [wrongVersion, 'VERSION'],
      [unknownKind, 'KIND'],
      [new Uint8Array(MAX + 1), 'OVERSIZE'],
      [mutateHeader(msg, { seq: -1 }), 'FIELD'],
      [mutateHeader(msg, { seq: 2 ** 53 }), 'FIELD'],
      [mutateHeader(msg, { seq: 1.5 }), 'FIELD'],
      [mutateHeader(msg, { floor: 42 }), 'FIELD'],
      [mutateHeader(msg, { from: 'bad id' }), 'FIELD'],
      [mutateHeader(msg, { to: 'alice' }), 'FIELD'],
      [mutateHeader(msg, { epoch: 'nope' }), 'FIELD'],
      [mutateHeader(msg, { id: '' }), 'FIELD'],
      [mutateHeader(msg, { contentKind: 'x' }), 'FIELD'],
      [mutateHeader(msg, { contentKind: 'j' }), 'FIELD'],
      [mutateHeader(msg, { skip: true }), 'FIELD'],
      [mutateHeader(frames[4]!, { upTo: '3' }), 'FIELD'],
      [mutateHeader(frames[2]!, { known: 5 }), 'FIELD'],
    ]
    for (const [bytes, reason] of cases) {
      const result = decodeFrame(bytes, MAX)
      expect(result.ok, reason).toBe(false)
      if (!result.ok) expect(result.reason).toBe(reason)
    }
    const notJson = good.slice()
    notJson[6] = 0xff
    expect(decodeFrame(notJson, MAX)).toMatchObject({ ok: false, reason: 'HEADER' })
  })

  it('drops unknown header fields instead of passing them on', () => {
    const result = decodeFrame(mutateHeader(frames[4]!, { __proto__: { polluted: true }, extra: 1 }), MAX)
    expect(result).toEqual({ ok: true, frame: frames[4] })
  })

  it('writes the same bytes into a slab as into buffers of their own, one view per frame', () => {
    const slab = new ByteSlab(4096)
    const views = frames.map((frame) => encodeFrame(frame, slab))
    views.forEach((view, index) => {
      expect([...view]).toEqual([...encodeFrame(frames[index] as Frame)])
      expect(decodeFrame(view, MAX)).toEqual({ ok: true, frame: frames[index] })
    })
    expect(views[0]?.buffer).toBe(views[1]?.buffer)
  })

  it('never throws on random or mutated bytes (fuzz)', () => {
    const encoded = frames.map((frame) => encodeFrame(frame))
    const mutated = fc
      .tuple(fc.constantFrom(...encoded), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 8 }), fc.nat())
      .map(([bytes, flips, cut]) => {
        const copy = bytes.slice(0, Math.max(0, bytes.length - (cut % 4 === 0 ? cut % bytes.length : 0)))
        for (const [at, value] of flips) if (copy.length > 0) copy[at % copy.length] = value
        return copy
      })
    const arbitrary = fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated)
    let refused = 0
    fc.assert(
      fc.property(arbitrary, (bytes) => {
        const result = decodeFrame(bytes, MAX)
        if (!result.ok) {
          refused++
          expect(['TRUNCATED', 'OVERSIZE', 'VERSION', 'KIND', 'HEADER', 'FIELD']).toContain(result.reason)
        } else {
          // Whatever decodes must re-encode to a frame that decodes to the same thing.
          expect(decodeFrame(encodeFrame(result.frame), MAX)).toEqual(result)
        }
      }),
      { numRuns: 20_000 },
    )
    expect(refused).toBeGreaterThan(10_000)
  })
})
