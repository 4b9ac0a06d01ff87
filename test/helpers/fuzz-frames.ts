/**
 * fast-check arbitraries for fuzzing the frame decoder and everything behind
 * it: valid protocol-v1 frames, and mutations of their encodings (truncated,
 * extended, oversize, bit flips, wrong JSON types and raw odd numbers in the
 * header, unknown kinds and versions, bad ids and epochs). Each mutation says
 * what a correct decoder must answer when that is determined (`expect`), so a
 * test can check the exact refusal and not just "no crash".
 */
import fc from 'fast-check'
import { encodeFrame, type DecodeFailure } from '../../src/core/codec.js'
import { PROTOCOL_VERSION, type Frame } from '../../src/core/frame.js'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'

/** The seed every fuzz test uses unless `FUZZ_SEED` is set; fast-check prints it (and the path) on failure. */
export const FUZZ_SEED = process.env.FUZZ_SEED === undefined ? 20_261_128 : Number(process.env.FUZZ_SEED)

/** `FUZZ_RUNS` scales the run counts (e.g. `FUZZ_RUNS=1000000` for a long local soak). */
export function fuzzRuns(defaultRuns: number): number {
  return process.env.FUZZ_RUNS === undefined ? defaultRuns : Number(process.env.FUZZ_RUNS)
}

/** What the decoder must answer for a mutated frame: a refusal (with the field, for FIELD), or the frame itself. */
export type Expectation = { readonly reason: DecodeFailure; readonly detail?: string } | { readonly frame: Frame } | undefined

/** One fuzz input: bytes, how they were made, and the expected answer when determined. */
export interface FuzzInput {
  readonly bytes: Uint8Array
  readonly mutation: string
  readonly expect: Expectation
  /** The valid frame the bytes were derived from. */
  readonly source: Frame
}

/** Ids and epochs the generated frames draw from, so that some of them hit real streams. */
export interface FramePools {
  readonly peers: readonly string[]
  readonly epochs: readonly string[]
  /** Draw most seqs from `0..smallSeqs` (to hit a small real stream's edges). */
  readonly smallSeqs?: number
}

/** The decoder's header limit (codec.ts); a longer header is refused unparsed. */
export const MAX_HEADER_BYTES = 4096
const encoder = new TextEncoder()
const URL_SAFE = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-']

/** A well-formed epoch: 9 base-36 characters, a dot, 6..32 url-safe characters. */
export const epochArb: fc.Arbitrary<Epoch> = fc
  .tuple(fc.integer({ min: 0, max: 36 ** 9 - 1 }), urlSafe(6, 32))
  .map(([time, random]) => `${time.toString(36).padStart(9, '0')}.${random}` as Epoch)

const messageIdArb = urlSafe(1, 64).map((s) => s as MessageId)

/** Strings of `[A-Za-z0-9_-]`, `min..max` long (much faster than `stringMatching`). */
function urlSafe(min: number, max: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...URL_SAFE), minLength: min, maxLength: max })
}
const anySeqArb = fc.oneof(fc.nat(1000), fc.constantFrom(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1), fc.maxSafeNat())

/** Valid frames whose ids and epochs come from `pools` (or, sometimes, anywhere). */
export function frameArb(pools: FramePools): fc.Arbitrary<Frame> {
  const seqArb = pools.smallSeqs === undefined ? anySeqArb : fc.oneof({ weight: 4, arbitrary: fc.nat(pools.smallSeqs) }, { weight: 1, arbitrary: anySeqArb })
  const peer = fc.oneof(
    { weight: 9, arbitrary: fc.constantFrom(...pools.peers) },
    { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), minLength: 1, maxLength: 12 }) },
  )
  const epoch: fc.Arbitrary<Epoch> = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...(pools.epochs as Epoch[])) }, { weight: 1, arbitrary: epochArb })
  const ends = fc
    .tuple(peer, peer)
    .filter(([from, to]) => from !== to)
    .map(([from, to]) => ({ from: from as PeerId, to: to as PeerId }))
  const hello = fc.record({
    ends,
    epoch,
    floor: seqArb,
    known: fc.option(epoch, { nil: null }),
    upTo: fc.oneof(fc.constant(-1), seqArb),
    reply: fc.boolean(),
    claim: fc.boolean(),
  })
  const msg = fc
    .record({
      ends,
      epoch,
      seq: seqArb,
      floorBack: fc.nat(5),
      id: messageIdArb,
      body: fc.oneof(
        fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ contentKind: 'b' as const, contents: bytes })),
        fc.string({ maxLength: 64, unit: 'binary' }).map((s) => ({ contentKind: 's' as const, contents: encoder.encode(s) })),
        fc.jsonValue({ maxDepth: 3 }).map((v) => ({ contentKind: 'j' as const, contents: encoder.encode(JSON.stringify(v)) })),
      ),
      expiresAt: fc.option(seqArb, { nil: undefined }),
      skip: fc.boolean(),
    })
    .map(({ ends: e, epoch: ep, seq, floorBack, id, body, expiresAt, skip }) => ({
      kind: 'msg' as const,
      ...e,
      epoch: ep,
      seq,
      floor: Math.max(0, seq - floorBack),
      id,
      contentKind: skip ? ('b' as const) : body.contentKind,
      contents: skip ? new Uint8Array(0) : body.contents,
      ...(expiresAt !== undefined && { expiresAt }),
      ...(skip && { skip: true }),
    }))
  return fc.oneof(
    hello.map(({ ends: e, claim, ...rest }) => ({ kind: 'hello' as const, ...e, ...rest, ...(claim && { claim: true as const }) })),
    msg,
    fc.record({ ends, epoch, upTo: seqArb }).map(({ ends: e, ...rest }) => ({ kind: 'ack' as const, ...e, ...rest })),
    fc.record({ ends, epoch, expected: epoch }).map(({ ends: e, ...rest }) => ({ kind: 'reset' as const, ...e, ...rest })),
  )
}

// ---- header surgery -----------------------------------------------------------

const RAW = '\u0000raw\u0000'

interface Parts {
  readonly version: number
  readonly kind: number
  readonly header: Record<string, unknown>
  readonly body: Uint8Array
}

function split(bytes: Uint8Array): Parts {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const length = view.getUint32(2)
  return {
    version: bytes[0]!,
    kind: bytes[1]!,
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(6, 6 + length))) as Record<string, unknown>,
    body: bytes.subarray(6 + length),
  }
}

/** Re-encodes with `headerText` as the header, a correct length prefix and the given body. */
function join(version: number, kind: number, headerText: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(6 + headerText.byteLength + body.byteLength)
  const view = new DataView(out.buffer)
  view.setUint8(0, version)
  view.setUint8(1, kind)
  view.setUint32(2, headerText.byteLength)
  out.set(headerText, 6)
  out.set(body, 6 + headerText.byteLength)
  return out
}

/** The header as JSON text, with `raw` values spliced in verbatim (numbers JSON.stringify cannot write, such as `-0` or `1e400`). */
function headerText(header: Record<string, unknown>, raw: Record<string, string> = {}): Uint8Array {
  const withMarks = { ...header }
  for (const key of Object.keys(raw)) withMarks[key] = `${RAW}${key}`
  let text = JSON.stringify(withMarks)
  for (const [key, value] of Object.entries(raw)) text = text.replace(JSON.stringify(`${RAW}${key}`), () => value)
  return encoder.encode(text)
}

/** Fields each kind requires, in the decoder's validation order. */
const REQUIRED: Record<Frame['kind'], readonly string[]> = {
  hello: ['from', 'to', 'epoch', 'floor', 'known', 'upTo', 'reply'],
  msg: ['from', 'to', 'epoch', 'seq', 'floor', 'id', 'contentKind'],
  ack: ['from', 'to', 'epoch', 'upTo'],
  reset: ['from', 'to', 'epoch', 'expected'],
}
const OPTIONAL: Record<Frame['kind'], readonly string[]> = { hello: ['claim'], msg: ['expiresAt', 'skip'], ack: [], reset: [] }

const BAD_IDS = ['', 'has space', 'tab\there', 'x'.repeat(129), 'nul\u0000', 'zero\u200bwidth', 'new\nline', 7, null, ['alice'], { id: 'alice' }]
const BAD_EPOCHS = [
  '',
  'nope',
  '00000000a.abc',
  '00000000A.abcdefg',
  '0000000a.abcdefg',
  '00000000a.abc def',
  '00000000a-abcdefg',
  `00000000a.${'x'.repeat(33)}`,
  5,
  null,
  true,
]
const BAD_SEQS = [-1, -5, 1.5, 2 ** 53, 2 ** 64, 1e21, -(2 ** 53), '5', '', null, true, [], {}, [3]]
/** Raw JSON numbers no valid seq reads as (`1e400` parses to Infinity, `9007199254740993` rounds to 2^53). */
const BAD_RAW_SEQS = ['1e400', '-1e400', '5e-324', '9007199254740993', '-1.0e-7', '0.5']
/** Raw JSON numbers that are odd on the wire but read as valid seqs. */
const ODD_VALID_RAW_SEQS = ['-0', '1.0', '1E2', '0e5', '2.50e1']

/** Invalid values for `field` of `kind`: the decoder must refuse with FIELD `kind.field`. */
function badValues(kind: Frame['kind'], field: string): unknown[] {
  switch (field) {
    case 'from':
    case 'to':
      return BAD_IDS
    case 'epoch':
    case 'expected':
      return BAD_EPOCHS
    case 'known':
      return BAD_EPOCHS.filter((v) => v !== null)
    case 'id':
      return ['', 'has space', 'x'.repeat(65), 'dot.dot', 'é', 9, null]
    case 'contentKind':
      return ['x', 'B', '', 'bs', 1, null]
    case 'reply':
      return [0, 1, 'true', null, []]
    case 'claim':
    case 'skip':
      return [false, 1, 'true', null]
    case 'upTo':
      return kind === 'hello' ? BAD_SEQS.filter((v) => v !== -1).concat([-2]) : BAD_SEQS
    default:
      return BAD_SEQS // seq, floor, expiresAt
  }
}

const NUMERIC = new Set(['seq', 'floor', 'upTo', 'expiresAt'])

/** One way of damaging an encoded frame; `make` returns the bytes and the expected decoder answer. */
type Mutator = (frame: Frame, bytes: Uint8Array, maxBytes: number) => fc.Arbitrary<Omit<FuzzInput, 'source'>>

const mutators: Record<string, Mutator> = {
  truncatePrefix: (_f, bytes) => fc.nat(5).map((n) => ({ bytes: bytes.slice(0, n), mutation: 'truncatePrefix', expect: { reason: 'TRUNCATED' as const } })),
  truncateHeader: (_f, bytes) => {
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(2)
    return fc
      .integer({ min: 6, max: 6 + length - 1 })
      .map((n) => ({ bytes: bytes.slice(0, n), mutation: 'truncateHeader', expect: { reason: 'TRUNCATED' as const } }))
  },
  truncateAnywhere: (_f, bytes) => fc.nat(bytes.byteLength - 1).map((n) => ({ bytes: bytes.slice(0, n), mutation: 'truncateAnywhere', expect: undefined })),
  extend: (_f, bytes) => fc.uint8Array({ minLength: 1, maxLength: 64 }).map((tail) => ({ bytes: concat(bytes, tail), mutation: 'extend', expect: undefined })),
  oversize: (_f, bytes, maxBytes) =>
    fc.integer({ min: 1, max: 4096 }).map((extra) => ({
      bytes: concat(bytes, new Uint8Array(Math.max(0, maxBytes - bytes.byteLength) + extra)),
      mutation: 'oversize',
      expect: { reason: 'OVERSIZE' as const },
    })),
  version: (_f, bytes) =>
    fc
      .integer({ min: 0, max: 255 })
      .filter((v) => v !== PROTOCOL_VERSION)
      .map((v) => ({ bytes: patchByte(bytes, 0, v), mutation: 'version', expect: { reason: 'VERSION' as const } })),
  kind: (_f, bytes) =>
    fc
      .oneof(fc.constant(0), fc.integer({ min: 5, max: 255 }))
      .map((k) => ({ bytes: patchByte(bytes, 1, k), mutation: 'kind', expect: { reason: 'KIND' as const } })),
  swapKind: (_f, bytes) => fc.integer({ min: 1, max: 4 }).map((k) => ({ bytes: patchByte(bytes, 1, k), mutation: 'swapKind', expect: undefined })),
  headerLengthLong: (_f, bytes) =>
    fc.integer({ min: 1, max: 0xffffffff }).map((grow) => {
      const out = bytes.slice()
      new DataView(out.buffer).setUint32(2, Math.min(0xffffffff, bytes.byteLength - 6 + grow))
      return { bytes: out, mutation: 'headerLengthLong', expect: { reason: 'TRUNCATED' as const } }
    }),
  headerLengthShort: (_f, bytes) => {
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(2)
    return fc.integer({ min: 0, max: length - 1 }).map((n) => {
      const out = bytes.slice()
      new DataView(out.buffer).setUint32(2, n)
      return { bytes: out, mutation: 'headerLengthShort', expect: { reason: 'HEADER' as const } }
    })
  },
  bitFlips: (_f, bytes) =>
    fc.array(fc.tuple(fc.nat(bytes.byteLength - 1), fc.nat(7)), { minLength: 1, maxLength: 8 }).map((flips) => {
      const out = bytes.slice()
      for (const [at, bit] of flips) out[at]! ^= 1 << bit
      return { bytes: out, mutation: 'bitFlips', expect: undefined }
    }),
  randomBytes: () => fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ bytes, mutation: 'randomBytes', expect: undefined })),
  randomAfterPrefix: (_f, bytes) =>
    fc.uint8Array({ maxLength: 256 }).map((tail) => ({ bytes: concat(bytes.slice(0, 6), tail), mutation: 'randomAfterPrefix', expect: undefined })),
  splice: (_f, bytes) =>
    fc.tuple(fc.nat(bytes.byteLength), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, insert]) => ({
      bytes: concat(concat(bytes.slice(0, at), insert), bytes.slice(at)),
      mutation: 'splice',
      expect: undefined,
    })),
  wrongField: (frame, bytes) => {
    const { version, kind, header, body } = split(bytes)
    const fields = [...REQUIRED[frame.kind], ...OPTIONAL[frame.kind]]
    return fc
      .constantFrom(...fields)
      .chain((field) => fc.constantFrom(...badValues(frame.kind, field)).map((value) => ({ field, value })))
      .map(({ field, value }) => ({
        bytes: join(version, kind, headerText({ ...header, [field]: value }), body),
        mutation: `wrongField:${field}`,
        expect: { reason: 'FIELD' as const, detail: `${frame.kind}.${field}` },
      }))
  },
  rawNumber: (frame, bytes) => {
    const { version, kind, header, body } = split(bytes)
    // Reset frames have no numbers: a number where an epoch belongs is always wrong.
    const numeric = [...REQUIRED[frame.kind], ...OPTIONAL[frame.kind]].filter((f) => NUMERIC.has(f))
    const fields = numeric.length > 0 ? numeric : ['epoch']
    return fc
      .tuple(fc.constantFrom(...fields), fc.boolean(), fc.constantFrom(...BAD_RAW_SEQS), fc.constantFrom(...ODD_VALID_RAW_SEQS))
      .map(([field, bad, badRaw, oddRaw]) => ({
        bytes: join(version, kind, headerText(header, { [field]: bad ? badRaw : oddRaw }), body),
        mutation: `rawNumber:${field}:${bad ? 'bad' : 'odd'}`,
        expect: bad || !NUMERIC.has(field) ? { reason: 'FIELD' as const, detail: `${frame.kind}.${field}` } : undefined,
      }))
  },
  deleteField: (frame, bytes) => {
    const { version, kind, header, body } = split(bytes)
    const present = Object.keys(header)
    return fc.constantFrom(...present).map((field) => {
      const { [field]: _gone, ...rest } = header
      const required = REQUIRED[frame.kind].includes(field)
      const expect: Expectation = required ? { reason: 'FIELD', detail: `${frame.kind}.${field}` } : { frame: withoutField(frame, field) }
      return { bytes: join(version, kind, headerText(rest), body), mutation: `deleteField:${field}`, expect }
    })
  },
  extraField: (frame, bytes) => {
    const { version, kind, header, body } = split(bytes)
    const names = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'contents', 'kind', 'toString', 'x'), fc.string({ maxLength: 12 }))
    return fc
      .tuple(names, fc.jsonValue({ maxDepth: 2 }))
      .filter(([name]) => !Object.hasOwn(header, name) && !OPTIONAL[frame.kind].includes(name))
      .map(([name, value]) => {
        const text = encoder.encode(JSON.stringify(header).replace(/^\{/, () => `{${JSON.stringify(name)}:${JSON.stringify(value)},`))
        const expect: Expectation = text.byteLength > MAX_HEADER_BYTES ? { reason: 'HEADER' } : { frame }
        return { bytes: join(version, kind, text, body), mutation: 'extraField', expect }
      })
  },
  headerNotObject: (_f, bytes) => {
    const { version, kind, body } = split(bytes)
    return fc
      .constantFrom('[]', '[1,2]', '"hello"', '5', 'null', 'true', '', ' ', '{', '{"from":}', 'NaN', "{'from':'a'}")
      .map((text) => ({ bytes: join(version, kind, encoder.encode(text), body), mutation: 'headerNotObject', expect: { reason: 'HEADER' as const } }))
  },
  headerNotUtf8: (_f, bytes) => {
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(2)
    return fc.tuple(fc.nat(length - 1), fc.constantFrom(0xff, 0xfe, 0xc0, 0xc1, 0xf5)).map(([at, byte]) => ({
      bytes: patchByte(bytes, 6 + at, byte),
      mutation: 'headerNotUtf8',
      expect: { reason: 'HEADER' as const },
    }))
  },
  badBody: (frame, bytes) => {
    const { version, kind, header } = split(bytes)
    return fc.constantFrom(new Uint8Array([0xff]), new Uint8Array([0xc3]), encoder.encode('{not json'), encoder.encode('"unterminated')).map((body) => {
      let expect: Expectation
      if (frame.kind !== 'msg') expect = { reason: 'FIELD', detail: `${frame.kind}.body` }
      else if (frame.skip === true) expect = { reason: 'FIELD', detail: 'msg.body' }
      else if (frame.contentKind === 'b') expect = { frame: { ...frame, contents: body } }
      else if (frame.contentKind === 's' && body[0] !== 0xff && body[0] !== 0xc3) expect = { frame: { ...frame, contents: body } }
      else expect = { reason: 'FIELD', detail: 'msg.contents' }
      return { bytes: join(version, kind, headerText(header), body), mutation: 'badBody', expect }
    })
  },
  deepHeader: (frame, bytes) =>
    fc.integer({ min: 100, max: 30_000 }).map((depth) => {
      const text = encoder.encode(`{"x":${'['.repeat(depth)}${']'.repeat(depth)}}`)
      return {
        bytes: join(bytes[0]!, bytes[1]!, text, new Uint8Array(0)),
        mutation: 'deepHeader',
        expect: text.byteLength > MAX_HEADER_BYTES ? { reason: 'HEADER' as const } : { reason: 'FIELD' as const, detail: `${frame.kind}.from` },
      }
    }),
  offsetView: (frame, bytes) =>
    fc.tuple(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 16 })).map(([before, after]) => {
      const big = concat(concat(before, bytes), after)
      return { bytes: big.subarray(before.byteLength, before.byteLength + bytes.byteLength), mutation: 'offsetView', expect: { frame } }
    }),
}

/** Names of every mutation, for counting coverage. */
export const MUTATIONS: readonly string[] = Object.keys(mutators)

/**
 * Mutated encodings of frames from `frames`, one mutation each (bit flips of
 * several bits count as one), with the expected decoder answer when determined.
 */
export function mutatedFrameArb(frames: fc.Arbitrary<Frame>, maxBytes: number): fc.Arbitrary<FuzzInput> {
  return fc.tuple(frames, fc.constantFrom(...MUTATIONS)).chain(([frame, name]) => {
    const bytes = encodeFrame(frame)
    return mutators[name]!(frame, bytes, maxBytes).map((input) => printable({ ...input, source: frame }))
  })
}

/** Valid frames, encoded, expected to decode to themselves. */
export function validFrameInputArb(frames: fc.Arbitrary<Frame>): fc.Arbitrary<FuzzInput> {
  return frames.map((frame) => printable({ bytes: encodeFrame(frame), mutation: 'none', expect: { frame }, source: frame }))
}

/** Gives an input a short form for fast-check's counterexample report (the mutation and the bytes, in hex, cut at 512). */
function printable(input: FuzzInput): FuzzInput {
  const hex = Buffer.from(input.bytes.subarray(0, 512)).toString('hex')
  const text = `${input.mutation}(${input.bytes.byteLength} bytes: ${hex}${input.bytes.byteLength > 512 ? '…' : ''})`
  return Object.defineProperty(input, fc.toStringMethod, { value: () => text, enumerable: false })
}

function withoutField(frame: Frame, field: string): Frame {
  const { [field as keyof Frame]: _gone, ...rest } = frame
  return rest as Frame
}

function patchByte(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const out = bytes.slice()
  out[at] = value
  return out
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}
