/**
 * Fuzzes the frame decoder with 100,000+ generated and mutated frames: every
 * input comes back as a typed refusal or as a valid frame that round-trips,
 * never as an exception, and in bounded time. Reproduce a failure with the
 * seed and path fast-check prints (`FUZZ_SEED=... npx vitest run test/unit/fuzz-codec.test.ts`).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, type DecodeFailure, type DecodeResult } from '../../src/core/codec.js'
import type { Frame } from '../../src/core/frame.js'
import { isEpoch, isMessageId, isPeerId, type Epoch, type MessageId, type PeerId } from '../../src/core/ids.js'
import { frameArb, FUZZ_SEED, fuzzRuns, MAX_HEADER_BYTES, MUTATIONS, mutatedFrameArb, validFrameInputArb, type FuzzInput } from '../helpers/fuzz-frames.js'

const MAX_BYTES = 64 * 1024
const REASONS: readonly DecodeFailure[] = ['TRUNCATED', 'OVERSIZE', 'VERSION', 'KIND', 'HEADER', 'FIELD']
const POOLS = { peers: ['alice', 'bob', 'carol', 'mallory', 'ünï©ødé', 'x'.repeat(128)], epochs: ['00000000a.aliceA', '00000000b.aliceB', '00000000a.bobbbb'] }
const MUTATED_RUNS = fuzzRuns(100_000)
const VALID_RUNS = fuzzRuns(2_000)

interface Tally {
  readonly byMutation: Map<string, { accepted: number; refused: Partial<Record<DecodeFailure, number>> }>
  slowestMs: number
}

function decodeTimed(bytes: Uint8Array, tally: Tally): DecodeResult {
  const start = performance.now()
  const result = decodeFrame(bytes, MAX_BYTES)
  tally.slowestMs = Math.max(tally.slowestMs, performance.now() - start)
  return result
}

/** A decoded frame is well formed by the protocol's own rules, independently of the decoder. */
function assertWellFormed(frame: Frame): void {
  const seq = (n: number | undefined): boolean => n === undefined || (Number.isSafeInteger(n) && n >= 0 && !Object.is(n, -0))
  const ok =
    isPeerId(frame.from) &&
    isPeerId(frame.to) &&
    frame.from !== frame.to &&
    isEpoch(frame.epoch) &&
    (frame.kind !== 'hello' || (seq(frame.floor) && (frame.upTo === -1 || seq(frame.upTo)) && (frame.known === null || isEpoch(frame.known)))) &&
    (frame.kind !== 'ack' || seq(frame.upTo)) &&
    (frame.kind !== 'reset' || isEpoch(frame.expected)) &&
    (frame.kind !== 'msg' ||
      (seq(frame.seq) &&
        seq(frame.floor) &&
        seq(frame.expiresAt) &&
        frame.floor <= frame.seq &&
        isMessageId(frame.id) &&
        (frame.skip !== true || frame.contents.byteLength === 0)))
  if (!ok) throw new Error(`decoded a malformed frame: ${JSON.stringify(frame)}`)
}

/** The oracle: a typed refusal (the expected one when determined), or a frame that round-trips. Plain checks: this runs 100,000 times. */
function check(input: FuzzInput, tally: Tally): void {
  let result: DecodeResult
  try {
    result = decodeTimed(input.bytes, tally)
  } catch (error) {
    throw new Error(`decodeFrame threw on a ${input.mutation} input: ${String(error)}`)
  }
  const name = input.mutation.split(':')[0]!
  const entry = tally.byMutation.get(name) ?? { accepted: 0, refused: {} }
  tally.byMutation.set(name, entry)
  if (result.ok) {
    entry.accepted++
    if (input.expect !== undefined && !('frame' in input.expect)) {
      throw new Error(`${input.mutation}: expected ${input.expect.reason} ${input.expect.detail ?? ''}, got a frame`)
    }
    if (input.expect !== undefined) expect(result.frame, input.mutation).toEqual(input.expect.frame)
    assertWellFormed(result.frame)
    expect(decodeFrame(encodeFrame(result.frame), MAX_BYTES)).toEqual({ ok: true, frame: result.frame })
    return
  }
  entry.refused[result.reason] = (entry.refused[result.reason] ?? 0) + 1
  if (!REASONS.includes(result.reason) || typeof result.detail !== 'string') throw new Error(`untyped refusal ${JSON.stringify(result)}`)
  if (input.expect === undefined) return
  if (!('reason' in input.expect)) throw new Error(`${input.mutation} should have been accepted, got ${result.reason} ${result.detail}`)
  if (result.reason !== input.expect.reason || (input.expect.detail !== undefined && result.detail !== input.expect.detail)) {
    throw new Error(`${input.mutation}: expected ${input.expect.reason} ${input.expect.detail ?? ''}, got ${result.reason} ${result.detail}`)
  }
}

describe('frame decoder fuzzing', () => {
  it(
    `refuses ${MUTATED_RUNS} mutated frames with a typed reason or accepts them as valid, round-tripping frames (seed ${FUZZ_SEED})`,
    { timeout: 600_000 },
    () => {
      const tally: Tally = { byMutation: new Map(), slowestMs: 0 }
      fc.assert(
        // Mutations of a fixed sample of valid frames: generating a fresh frame per input would double the runtime.
        fc.property(mutatedFrameArb(fc.constantFrom(...fc.sample(frameArb(POOLS), { numRuns: 2000, seed: FUZZ_SEED })), MAX_BYTES), (input) =>
          check(input, tally),
        ),
        { numRuns: MUTATED_RUNS, seed: FUZZ_SEED },
      )
      const rows = [...tally.byMutation].sort(([a], [b]) => a.localeCompare(b))
      console.table(Object.fromEntries(rows.map(([m, e]) => [m, { accepted: e.accepted, ...e.refused }])))
      console.log(`slowest decode: ${tally.slowestMs.toFixed(2)} ms`)
      // Not vacuous: every mutation ran, and every refusal reason was produced.
      expect(new Set(rows.map(([m]) => m))).toEqual(new Set(MUTATIONS))
      const reasons = new Set(rows.flatMap(([, e]) => Object.keys(e.refused)))
      expect([...reasons].sort()).toEqual([...REASONS].sort())
      expect(rows.reduce((n, [, e]) => n + e.accepted + Object.values(e.refused).reduce((a, b) => a + b, 0), 0)).toBe(MUTATED_RUNS)
      expect(tally.slowestMs).toBeLessThan(1000)
    },
  )

  it(`decodes ${VALID_RUNS} generated valid frames to themselves`, () => {
    const tally: Tally = { byMutation: new Map(), slowestMs: 0 }
    fc.assert(
      fc.property(validFrameInputArb(frameArb(POOLS)), (input) => check(input, tally)),
      { numRuns: VALID_RUNS, seed: FUZZ_SEED },
    )
    expect(tally.byMutation.get('none')?.accepted).toBe(VALID_RUNS)
  })

  it('the header limit leaves room for the largest valid header', () => {
    // Lone surrogates are valid peer-id characters that JSON escapes to 6 bytes each: the worst case.
    const from = '\ud800'.repeat(128) as PeerId
    const to = '\udbff'.repeat(128) as PeerId
    const epoch = `zzzzzzzzz.${'_'.repeat(32)}` as Epoch
    const big = Number.MAX_SAFE_INTEGER
    const worst: Frame[] = [
      {
        kind: 'msg',
        from,
        to,
        epoch,
        seq: big,
        floor: big,
        id: 'x'.repeat(64) as MessageId,
        contentKind: 'b',
        contents: new Uint8Array(0),
        expiresAt: big,
        skip: true,
      },
      { kind: 'hello', from, to, epoch, floor: big, known: epoch, upTo: big, reply: false, claim: true },
    ]
    for (const frame of worst) {
      const bytes = encodeFrame(frame)
      const headerLength = new DataView(bytes.buffer).getUint32(2)
      expect(headerLength).toBeLessThan(MAX_HEADER_BYTES / 2)
      expect(decodeFrame(bytes, MAX_BYTES)).toEqual({ ok: true, frame })
    }
  })

  it('refuses non-binary input and arbitrary byte strings without throwing', () => {
    for (const value of [null, undefined, 'string', 42, {}, [1, 2], new ArrayBuffer(8), new Uint16Array(4)]) {
      expect(decodeFrame(value as Uint8Array, MAX_BYTES)).toMatchObject({ ok: false, reason: 'HEADER' })
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const result = decodeFrame(bytes, MAX_BYTES)
        if (!result.ok) expect(REASONS).toContain(result.reason)
        else assertWellFormed(result.frame)
      }),
      { numRuns: fuzzRuns(5_000), seed: FUZZ_SEED },
    )
  })
})
