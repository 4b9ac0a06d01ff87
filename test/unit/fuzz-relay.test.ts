/// <reference types="node" />
/**
 * Fuzzes the relay's input handling: the wire parsers with 100,000+ inputs
 * each, then a real relay (in-process for 100,000+ messages, then a smaller
 * run against a real relay process) with sessions of generated and mutated
 * envelopes, frames and control messages, some ending in garbage, while
 * legitimate engines keep exchanging messages through it. A model of the relay
 * predicts each answer: forwarded byte-exact with the sender stamped,
 * `undeliverable`, `pong`, `presence`, or a close with the documented code.
 * Reproduce with the seed and path fast-check prints (`FUZZ_SEED=...`).
 */
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isEpoch, isPeerId } from '../../src/core/ids.js'
import { createRelay, type RelayHandle, type RelayStats } from '../../src/relay/relay.js'
import { createToken } from '../../src/relay/token.js'
import { CLOSE_CODES, envelope, isWireBundle, openEnvelope, pack, parseClientControl, unpack } from '../../src/protocol/relay.js'
import { frameArb, FUZZ_SEED, fuzzRuns, mutatedFrameArb, validFrameInputArb } from '../helpers/fuzz-frames.js'
import { LegitTraffic, openLegitPeer, RawClient } from '../helpers/relay-clients.js'
import { startRelayProcess } from '../helpers/relay-process.js'

const SECRET = 'fuzz-secret-long-enough-for-hs256-0123456789'
const MAX_FRAME_BYTES = 64 * 1024
const FUZZ_IDS = Array.from({ length: 8 }, (_, i) => `fuzz-${i}`)
const ONLINE = ['alice', 'bob', 'sink']

// ---- the model ------------------------------------------------------------------

/** One message a fuzz connection sends. */
interface Input {
  readonly label: string
  readonly data: Uint8Array | string
}

type Outcome =
  | { readonly kind: 'forward'; readonly to: string }
  | { readonly kind: 'undeliverable'; readonly to: string }
  | { readonly kind: 'pong' }
  /** `keys` is stored and not answered (as `redrain` is, without a mailbox); `key?` is answered `key` with its `n`. */
  | { readonly kind: 'keys' }
  | { readonly kind: 'key' }
  | { readonly kind: 'watch'; readonly peers: readonly string[] }
  | { readonly kind: 'close'; readonly code: number }

/** What the relay must do with `input` from an authenticated connection, by its documented rules. */
function model(input: Input): Outcome {
  const size = typeof input.data === 'string' ? Buffer.byteLength(input.data) : input.data.byteLength
  if (size > MAX_FRAME_BYTES) return { kind: 'close', code: CLOSE_CODES.TOO_BIG }
  if (typeof input.data !== 'string') {
    // The sessions send envelopes one per message; anything that reads as a pack of several is malformed here.
    const envelopes = unpack(input.data)
    const opened = envelopes?.length === 1 ? openEnvelope(envelopes[0]!) : undefined
    if (opened === undefined || !isPeerId(opened.address)) return { kind: 'close', code: CLOSE_CODES.PROTOCOL }
    return ONLINE.includes(opened.address) ? { kind: 'forward', to: opened.address } : { kind: 'undeliverable', to: opened.address }
  }
  const control = parseClientControl(input.data)
  switch (control?.t) {
    case 'ping':
      return { kind: 'pong' }
    case 'keys':
      return { kind: 'keys' }
    case 'redrain':
      // A relay without a mailbox (this one) has nothing to send again: not answered.
      return { kind: 'keys' }
    case 'key?':
      return { kind: 'key' }
    case 'watch':
      return control.peers.every(isPeerId) ? { kind: 'watch', peers: control.peers } : { kind: 'close', code: CLOSE_CODES.PROTOCOL }
    case 'signal':
      if (!isPeerId(control.to)) return { kind: 'close', code: CLOSE_CODES.PROTOCOL }
      return ONLINE.includes(control.to) ? { kind: 'forward', to: control.to } : { kind: 'undeliverable', to: control.to }
    default:
      return { kind: 'close', code: CLOSE_CODES.PROTOCOL } // malformed, or a second auth
  }
}

/** What the relay must do with the first message of a connection that has not authenticated. */
function modelBeforeAuth(input: Input): Outcome {
  const size = typeof input.data === 'string' ? Buffer.byteLength(input.data) : input.data.byteLength
  if (size > MAX_FRAME_BYTES) return { kind: 'close', code: CLOSE_CODES.TOO_BIG }
  if (typeof input.data !== 'string') return { kind: 'close', code: CLOSE_CODES.PROTOCOL }
  // The only auth a generator makes carries a made-up token.
  return { kind: 'close', code: parseClientControl(input.data)?.t === 'auth' ? CLOSE_CODES.AUTH_FAILED : CLOSE_CODES.PROTOCOL }
}

// ---- generators ------------------------------------------------------------------

const POOLS = { peers: ['alice', 'bob', 'carol', 'mallory'], epochs: ['00000000a.aliceA', '00000000b.bobbbb'] }
const destination = fc.constantFrom('alice', 'bob', 'sink', 'nobody', 'carol')

/** Envelopes to valid addresses carrying valid or mutated frames: never close the connection. */
function frameInputs(): fc.Arbitrary<Input> {
  const frames = fc.constantFrom(...fc.sample(frameArb(POOLS), { numRuns: 1000, seed: FUZZ_SEED }))
  const payload = fc.oneof({ weight: 1, arbitrary: validFrameInputArb(frames) }, { weight: 4, arbitrary: mutatedFrameArb(frames, MAX_FRAME_BYTES - 4096 - 64) })
  return fc.tuple(destination, payload).map(([to, p]) => ({ label: `frame:${p.mutation}>${to}`, data: envelope(to, p.bytes) }))
}

/** Control messages that are valid (ping, watch, signal). */
const controlInputs: fc.Arbitrary<Input> = fc.oneof(
  fc.integer().map((n) => ({ label: 'ping', data: JSON.stringify({ t: 'ping', n }) })),
  fc
    .array(fc.constantFrom('alice', 'bob', 'sink', 'nobody', 'carol', ...FUZZ_IDS), { maxLength: 6 })
    .map((peers) => ({ label: 'watch', data: JSON.stringify({ t: 'watch', peers }) })),
  fc.tuple(destination, fc.jsonValue({ maxDepth: 2 })).map(([to, data]) => ({ label: 'signal', data: JSON.stringify({ t: 'signal', to, data }) })),
  fc
    .uint8Array({ minLength: 1, maxLength: 768 })
    .map((bundle) => ({ label: 'keys', data: JSON.stringify({ t: 'keys', bundle: Buffer.from(bundle).toString('base64url') }) })),
  fc.tuple(fc.nat(), destination).map(([n, peer]) => ({ label: 'key?', data: JSON.stringify({ t: 'key?', n, peer }) })),
  fc
    .tuple(destination, fc.constantFrom(...POOLS.epochs), fc.integer({ min: -1, max: 1000 }), fc.integer({ min: 1, max: 65_536 }))
    .map(([from, epoch, after, limit]) => ({ label: 'redrain', data: JSON.stringify({ t: 'redrain', from, epoch, after, limit }) })),
)

/** Inputs that must end the connection (or, rarely, turn out valid; the model decides). */
const closingInputs: fc.Arbitrary<Input> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((data) => ({ label: 'random-binary', data })),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 32 })).map(([length, rest]) => {
    const data = new Uint8Array(2 + rest.byteLength)
    new DataView(data.buffer).setUint16(0, length)
    data.set(rest, 2)
    return { label: 'bad-length-envelope', data }
  }),
  fc
    .constantFrom('has space', '', 'x'.repeat(129), 'nul\u0000', '\u200b')
    .map((address) => ({ label: 'bad-address', data: envelope(address, new Uint8Array([1, 2, 3])) })),
  fc.constant({ label: 'address-not-utf8', data: new Uint8Array([0, 2, 0xff, 0xfe, 1]) }),
  fc.string({ maxLength: 64 }).map((data) => ({ label: 'random-text', data })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => ({ label: 'random-json', data: JSON.stringify(v) })),
  fc
    .constantFrom(
      { t: 'auth', token: 'again' },
      { t: 'watch', peers: ['ok', 'not ok'] },
      { t: 'watch', peers: 'alice' },
      { t: 'watch', peers: Array.from({ length: 10_001 }, (_, i) => `p${i}`) },
      { t: 'signal', to: 'bad id' },
      { t: 'signal', to: 'alice' },
      { t: 'ping', n: 1.5 },
      { t: 'ping', n: '1' },
      { t: 'keys', bundle: '' },
      { t: 'keys', bundle: 'QR' },
      { t: 'keys', bundle: 'A'.repeat(1028) },
      { t: 'key?', n: 1, peer: 'bad id' },
      { t: 'key?', n: 1.5, peer: 'alice' },
      { t: 'redrain', from: 'alice', epoch: '00000000a.aliceA', after: -2, limit: 1 },
      { t: 'redrain', from: 'alice', epoch: '00000000a.aliceA', after: 0, limit: 0 },
      { t: 'redrain', from: 'alice', epoch: '00000000a.aliceA', after: 0, limit: 65_537 },
      { t: 'redrain', from: 'alice', epoch: 'not an epoch', after: 0, limit: 1 },
      { t: 'redrain', from: 'bad id', epoch: '00000000a.aliceA', after: 0, limit: 1 },
      { t: 'key', n: 1, peer: 'alice', bundle: null },
      { t: 'pong', n: 1 },
      { t: 'welcome' },
      { t: 'PING', n: 1 },
      ['ping'],
      null,
    )
    .map((m) => ({ label: 'bad-control', data: JSON.stringify(m) })),
  fc.integer({ min: 1, max: 4096 }).map((extra) => ({ label: 'oversize-binary', data: envelope('alice', new Uint8Array(MAX_FRAME_BYTES + extra)) })),
  fc
    .integer({ min: 1, max: 4096 })
    .map((extra) => ({ label: 'oversize-text', data: JSON.stringify({ t: 'ping', n: 1, pad: 'x'.repeat(MAX_FRAME_BYTES + extra) }) })),
)

/** A session: an authenticated (or not) connection sends inputs, then maybe one that should close it. */
interface Session {
  readonly id: string
  readonly authenticate: boolean
  readonly inputs: readonly Input[]
  readonly last: Input | undefined
}

/**
 * Sessions are long (`long` inputs, maybe ending in garbage) or short (a few
 * inputs, then garbage), so that both the bulk of messages and the number of
 * connection-ending inputs are large without paying a login per few messages.
 */
function sessionArb(long: number): fc.Arbitrary<Session> {
  const input = fc.oneof({ weight: 9, arbitrary: frameInputs() }, { weight: 1, arbitrary: controlInputs })
  const body = fc.oneof(fc.array(input, { minLength: long, maxLength: long }), fc.array(input, { maxLength: 4 }), fc.array(input, { maxLength: 4 }))
  return fc
    .record({
      id: fc.constantFrom(...FUZZ_IDS),
      authenticate: fc.nat(9).map((n) => n > 0),
      inputs: body,
      last: fc.option(closingInputs, { nil: undefined, freq: 4 }),
    })
    .map((s) => (s.authenticate ? s : { ...s, inputs: [], last: s.last ?? { label: 'before-auth', data: JSON.stringify({ t: 'ping', n: 1 }) } }))
    .map((s) => Object.defineProperty(s, fc.toStringMethod, { value: () => describeSession(s), enumerable: false }))
}

/** A short form of a session for fast-check's counterexample report. */
function describeSession(s: Session): string {
  const show = (i: Input): string =>
    `${i.label}(${typeof i.data === 'string' ? JSON.stringify(i.data.slice(0, 60)) : Buffer.from(i.data.subarray(0, 40)).toString('hex')})`
  return `${s.id}${s.authenticate ? '' : ' (no auth)'}: ${s.inputs.map(show).join(' ')}${s.last === undefined ? '' : ` then ${show(s.last)}`}`
}

// ---- running sessions against a relay ----------------------------------------------------

/** Running totals of what the fuzz sessions sent and what the model expects. */
class Ledger {
  messages = 0
  sessions = 0
  closes = new Map<number, number>()
  /** Frames forwarded to each online peer, per the model (minus those the relay reported `slow`). */
  forwardedFrames = new Map<string, number>()
  forwardedSignals = new Map<string, number>()
  /** What the sink must receive: `${from}|${hex}` -> count. */
  sinkExpected = new Map<string, number>()
  labels = new Map<string, number>()

  bump(map: Map<string | number, number>, key: string | number, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by)
  }
}

const tokens = new Map<string, string>()
async function token(id: string): Promise<string> {
  let t = tokens.get(id)
  if (t === undefined) tokens.set(id, (t = await createToken({ secret: SECRET, peerId: id, expiresIn: '2h' })))
  return t
}

/** Runs one session; throws (with the labels involved) when the relay's behaviour departs from the model. */
async function runSession(url: string, session: Session, ledger: Ledger): Promise<void> {
  ledger.sessions++
  const client = session.authenticate ? await RawClient.login(url, await token(session.id)) : await RawClient.connect(url)
  try {
    let pongs = 0
    let undeliverable = 0
    let presence = 0
    let keyAnswers = 0
    let watching = new Set<string>()
    for (const input of session.inputs) {
      const outcome = model(input)
      ledger.messages++
      ledger.bump(ledger.labels, input.label.split(':')[0]! + (typeof input.data === 'string' ? ':text' : ':binary'))
      if (outcome.kind === 'close') throw new Error(`generator bug: ${input.label} would close`)
      if (outcome.kind === 'pong') pongs++
      if (outcome.kind === 'key') keyAnswers++
      if (outcome.kind === 'undeliverable') undeliverable++
      if (outcome.kind === 'watch') {
        const next = new Set(outcome.peers)
        presence += [...next].filter((p) => !watching.has(p)).length
        watching = next
      }
      if (outcome.kind === 'forward') {
        const isSignal = typeof input.data === 'string'
        ledger.bump(isSignal ? ledger.forwardedSignals : ledger.forwardedFrames, outcome.to)
        if (outcome.to === 'sink' && !isSignal)
          ledger.bump(ledger.sinkExpected, `${session.id}|${Buffer.from(openEnvelope(input.data)!.frame).toString('hex')}`)
      }
      typeof input.data === 'string' ? client.send(input.data) : client.sendBinary(input.data)
    }
    if (session.authenticate) {
      await client.barrier()
      // Answered once the directory has read (after a promise tick): possibly behind the pong. Fetches are answered in order.
      const deadline = Date.now() + 10_000
      while (client.count('key') < keyAnswers && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
      const slow = client.received.filter((m) => m.t === 'undeliverable' && m.reason === 'slow')
      for (const m of slow) if (m.t === 'undeliverable') ledger.bump(ledger.forwardedFrames, m.peer, -1)
      const got = {
        pongs: client.count('pong'),
        undeliverable: client.count('undeliverable') - slow.length,
        presence: client.count('presence'),
        keyAnswers: client.count('key'),
      }
      expect(got, `session of ${session.id}: ${session.inputs.map((i) => i.label).join(', ')}`).toEqual({ pongs, undeliverable, presence, keyAnswers })
    }
    if (session.last !== undefined) {
      const outcome = session.authenticate ? model(session.last) : modelBeforeAuth(session.last)
      ledger.messages++
      ledger.bump(ledger.labels, `${session.last.label}:closing`)
      const data = session.last.data
      typeof data === 'string' ? client.send(data) : client.sendBinary(data)
      if (outcome.kind === 'close') {
        const { code } = await client.closed
        expect(code, `${session.last.label} ${typeof data === 'string' ? data.slice(0, 80) : Buffer.from(data.subarray(0, 40)).toString('hex')}`).toBe(
          outcome.code,
        )
        ledger.bump(ledger.closes, code)
      } else if (outcome.kind === 'forward' && typeof data !== 'string') {
        ledger.bump(ledger.forwardedFrames, outcome.to)
        if (outcome.to === 'sink') ledger.bump(ledger.sinkExpected, `${session.id}|${Buffer.from(openEnvelope(data)!.frame).toString('hex')}`)
      } else if (outcome.kind === 'forward') ledger.bump(ledger.forwardedSignals, outcome.to)
    }
    expect(client.malformed).toEqual([])
  } finally {
    client.ws.close()
    await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, 2000))])
    client.terminate()
  }
}

/** Everything the legitimate side runs: engines exchanging messages, and a sink recording forwarded frames. */
interface Bystanders {
  readonly traffic: LegitTraffic
  readonly sink: RawClient
}

async function bystanders(url: string): Promise<Bystanders> {
  const peers = [await openLegitPeer(url, 'alice', SECRET), await openLegitPeer(url, 'bob', SECRET)]
  const sink = await RawClient.login(url, await token('sink'))
  const traffic = new LegitTraffic(peers)
  await traffic.round() // streams both ways: each engine now watches the other's presence
  await traffic.settle()
  expect(traffic.check().problems).toEqual([])
  return { traffic, sink }
}

/** After the fuzz: legitimate delivery was exactly once and in order, and engines and sink saw exactly the forwarded frames. */
async function verify(b: Bystanders, ledger: Ledger): Promise<void> {
  await b.traffic.settle()
  const result = b.traffic.check()
  expect(result.problems).toEqual([])
  expect(b.traffic.total).toBeGreaterThan(0)
  await b.sink.barrier()
  const sinkFrames = b.sink.received.filter((m) => m.t === 'frame')
  const unexpected = new Map(ledger.sinkExpected)
  for (const m of sinkFrames) if (m.t === 'frame') ledger.bump(unexpected, `${m.from}|${Buffer.from(m.frame).toString('hex')}`, -1)
  expect([...unexpected].filter(([, n]) => n !== 0).slice(0, 5)).toEqual([])
  expect(b.sink.received.filter((m) => m.t === 'signal').length).toBe(ledger.forwardedSignals.get('sink') ?? 0)
  // Every fuzz frame that reached an engine was refused there (FORGED or a decode reason), none handed over.
  const deadline = Date.now() + 10_000
  for (const peer of b.traffic.peers) {
    const refused = (): number => Object.values(peer.ilm.refused()).reduce((a, c) => a + c, 0)
    while (refused() < (ledger.forwardedFrames.get(peer.id) ?? 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(refused(), `${peer.id} refusals`).toBe(ledger.forwardedFrames.get(peer.id) ?? 0)
  }
}

function summary(name: string, ledger: Ledger, stats: Partial<RelayStats>, extra: Record<string, unknown> = {}): void {
  console.log(`${name}: ${ledger.messages} fuzz messages in ${ledger.sessions} sessions; closes by code ${JSON.stringify(Object.fromEntries(ledger.closes))}`)
  console.table(Object.fromEntries([...ledger.labels].sort(([a], [b]) => a.localeCompare(b))))
  console.log(
    JSON.stringify({
      ...extra,
      relay: { connections: stats.connections, authenticated: stats.authenticated, pendingBytes: stats.pendingBytes, refusals: stats.refusals },
    }),
  )
}

// ---- tests ---------------------------------------------------------------------------

describe('wire parser fuzzing', () => {
  it(`openEnvelope: ${fuzzRuns(100_000)} byte strings, never throws, agrees with the format`, { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          fc.tuple(fc.string({ maxLength: 40, unit: 'binary' }), fc.uint8Array({ maxLength: 40 })).map(([a, f]) => envelope(a, f)),
        ),
        (bytes) => {
          const opened = openEnvelope(bytes)
          const length = bytes.byteLength >= 2 ? (bytes[0]! << 8) | bytes[1]! : -1
          if (opened === undefined) return
          if (length <= 0 || 2 + length > bytes.byteLength) throw new Error('opened an envelope with a bad length')
          if (Buffer.compare(envelope(opened.address, opened.frame), bytes) !== 0) throw new Error('an opened envelope does not re-encode to its bytes')
        },
      ),
      { numRuns: fuzzRuns(100_000), seed: FUZZ_SEED },
    )
  })

  it(`unpack: ${fuzzRuns(100_000)} byte strings, never throws, agrees with the format`, { timeout: 600_000 }, () => {
    const envelopeArb = fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.uint8Array({ maxLength: 30 })).map(([a, f]) => envelope(a, f))
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          fc.uint8Array({ maxLength: 80 }).map((tail) => Uint8Array.of(0xff, 0xff, ...tail)),
          fc.array(envelopeArb, { minLength: 2, maxLength: 6 }).map((all) => pack(all)),
          // Items of any bytes, as short as none: the mark, then each with its true length.
          fc
            .array(fc.uint8Array({ maxLength: 6 }), { maxLength: 4 })
            .map((items) => Uint8Array.of(0xff, 0xff, ...items.flatMap((item) => [0, 0, 0, item.byteLength, ...item]))),
          // A pack cut short, or with bytes added.
          fc.tuple(fc.array(envelopeArb, { minLength: 2, maxLength: 6 }), fc.integer({ min: -8, max: 8 })).map(([all, cut]) => {
            const whole = pack(all)
            return cut < 0 ? whole.subarray(0, Math.max(0, whole.byteLength + cut)) : Uint8Array.of(...whole, ...new Array<number>(cut).fill(7))
          }),
        ),
        (bytes) => {
          const envelopes = unpack(bytes)
          const marked = bytes.byteLength >= 2 && bytes[0] === 0xff && bytes[1] === 0xff
          if (!marked) {
            if (envelopes?.length !== 1 || envelopes[0] !== bytes) throw new Error('a message without the mark is not its one envelope')
            return
          }
          if (envelopes === undefined) return
          if (envelopes.length === 0 || envelopes.some((one) => one.byteLength < 2)) throw new Error('a pack opened to nothing, or to a too short envelope')
          // The one-envelope pack is valid to read, though never sent (one goes bare): its bytes then are the mark, a length, the envelope.
          const again = envelopes.length === 1 ? Uint8Array.of(0xff, 0xff, 0, 0, 0, 0, ...envelopes[0]!) : pack(envelopes)
          if (envelopes.length === 1) new DataView(again.buffer).setUint32(2, envelopes[0]!.byteLength)
          if (Buffer.compare(again, bytes) !== 0) throw new Error('an opened pack does not re-encode to its bytes')
        },
      ),
      { numRuns: fuzzRuns(100_000), seed: FUZZ_SEED },
    )
  })

  it(`parseClientControl: ${fuzzRuns(100_000)} texts, never throws, returns only well-typed messages`, { timeout: 600_000 }, () => {
    const text = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc
        .record(
          {
            t: fc.constantFrom('auth', 'watch', 'signal', 'ping', 'pong', 'keys', 'key?', 'key', 'redrain', 'x'),
            bundle: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.string({ unit: fc.constantFrom(...'AQgw_-+/=a '.split('')), maxLength: 12 })),
            peer: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('alice', 'a b', '')),
            token: fc.jsonValue({ maxDepth: 1 }),
            peers: fc.jsonValue({ maxDepth: 2 }),
            to: fc.jsonValue({ maxDepth: 1 }),
            data: fc.jsonValue({ maxDepth: 1 }),
            n: fc.oneof(fc.double(), fc.integer(), fc.jsonValue({ maxDepth: 1 })),
            from: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('alice', 'a b', '')),
            epoch: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom(...POOLS.epochs, '0.x')),
            after: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double(), fc.jsonValue({ maxDepth: 1 })),
            limit: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.double(), fc.jsonValue({ maxDepth: 1 })),
            window: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.double(), fc.jsonValue({ maxDepth: 1 })),
          },
          { requiredKeys: ['t'] },
        )
        .map((m) => JSON.stringify(m)),
    )
    fc.assert(
      fc.property(text, (t) => {
        const m = parseClientControl(t)
        if (m === undefined) return
        const ok =
          (m.t === 'auth' &&
            typeof m.token === 'string' &&
            m.token.length > 0 &&
            (m.window === undefined || (Number.isSafeInteger(m.window) && m.window >= 1 && m.window <= 65_536))) ||
          (m.t === 'watch' && Array.isArray(m.peers) && m.peers.every((p) => typeof p === 'string')) ||
          (m.t === 'signal' && typeof m.to === 'string') ||
          (m.t === 'ping' && Number.isSafeInteger(m.n)) ||
          (m.t === 'keys' && isWireBundle(m.bundle)) ||
          (m.t === 'key?' && Number.isSafeInteger(m.n) && isPeerId(m.peer)) ||
          (m.t === 'redrain' &&
            isPeerId(m.from) &&
            isEpoch(m.epoch) &&
            Number.isSafeInteger(m.after) &&
            m.after >= -1 &&
            Number.isSafeInteger(m.limit) &&
            m.limit >= 1 &&
            m.limit <= 65_536)
        if (!ok) throw new Error(`ill-typed control accepted: ${t}`)
      }),
      { numRuns: fuzzRuns(100_000), seed: FUZZ_SEED },
    )
  })
})

describe('relay fuzzing (in-process relay)', () => {
  let relay: RelayHandle
  let side: Bystanders
  const ledger = new Ledger()
  const TARGET = fuzzRuns(100_000)
  const SESSION = 1000
  // About a third of the sessions are long; a top-up after the property covers the rest.
  const RUNS = Math.ceil((TARGET * 3) / SESSION)

  beforeAll(async () => {
    // The rate limit is raised so the fuzz measures input handling, not drops; hostile-peers.test.ts tests the limits.
    relay = await createRelay({ jwtSecret: SECRET, logger: () => {}, limits: { maxFrameBytes: MAX_FRAME_BYTES, framesPerSecond: 1_000_000 } })
    side = await bystanders(relay.url)
  }, 60_000)

  afterAll(async () => {
    await side?.traffic.close()
    side?.sink.terminate()
    await relay?.close()
  }, 60_000)

  it(`answers ${TARGET}+ fuzz messages as its model predicts while legitimate peers keep delivering (seed ${FUZZ_SEED})`, { timeout: 300_000 }, async () => {
    let sessions = 0
    await fc.assert(
      fc.asyncProperty(sessionArb(SESSION), async (session) => {
        await runSession(relay.url, session, ledger)
        if (++sessions % 5 === 0) await side.traffic.round()
      }),
      { numRuns: RUNS, seed: FUZZ_SEED, endOnFailure: true },
    )
    // Session lengths are random: top up with long sessions (seeded too) until the target is reached.
    for (let k = 1; ledger.messages < TARGET; k++) {
      const [session] = fc.sample(
        sessionArb(SESSION).filter((s) => s.authenticate && s.inputs.length === SESSION),
        { numRuns: 1, seed: FUZZ_SEED + k },
      )
      await runSession(relay.url, session!, ledger)
    }
    await verify(side, ledger)
    const stats = relay.stats()
    summary('in-process relay', ledger, stats, { legitDelivered: side.traffic.total })
    expect(ledger.messages).toBeGreaterThanOrEqual(TARGET)
    // Bounded: only the bystanders remain, nothing queued, every refusal counted under its documented reason.
    expect(stats).toMatchObject({ connections: 3, authenticated: 3 })
    expect(stats.pendingBytes).toBeLessThan(64 * 1024)
    expect(stats.refusals.malformed).toBe(ledger.closes.get(CLOSE_CODES.PROTOCOL) ?? 0)
    expect(stats.refusals.too_big).toBe(ledger.closes.get(CLOSE_CODES.TOO_BIG) ?? 0)
  })
})

describe('relay fuzzing (real relay process)', () => {
  it(
    `answers ${fuzzRuns(5_000)} fuzz messages as its model predicts; the process stays up with bounded memory (seed ${FUZZ_SEED})`,
    { timeout: 300_000 },
    async () => {
      const proc = await startRelayProcess(
        [],
        {
          INTERSESSION_JWT_SECRET: SECRET,
          INTERSESSION_RELAY_MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
          INTERSESSION_RELAY_FRAMES_PER_SECOND: '1000000',
        },
        60_000,
      )
      const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
      const health = async (): Promise<RelayStats> => (await (await fetch(`http://127.0.0.1:${proc.port}/health`)).json()) as RelayStats
      const side = await bystanders(proc.url)
      const ledger = new Ledger()
      try {
        const rssBefore = rss()
        let sessions = 0
        await fc.assert(
          fc.asyncProperty(sessionArb(200), async (session) => {
            await runSession(proc.url, session, ledger)
            if (++sessions % 5 === 0) await side.traffic.round()
          }),
          { numRuns: Math.ceil((fuzzRuns(5_000) * 3) / 200), seed: FUZZ_SEED + 1, endOnFailure: true },
        )
        for (let k = 1; ledger.messages < fuzzRuns(5_000); k++) {
          const [session] = fc.sample(
            sessionArb(200).filter((s) => s.authenticate && s.inputs.length === 200),
            { numRuns: 1, seed: FUZZ_SEED + 1 + k },
          )
          await runSession(proc.url, session!, ledger)
        }
        await verify(side, ledger)
        const stats = await health()
        const rssAfter = rss()
        summary('relay process', ledger, stats, { rssBeforeMiB: +(rssBefore / 2 ** 20).toFixed(1), rssAfterMiB: +(rssAfter / 2 ** 20).toFixed(1) })
        expect(stats).toMatchObject({ connections: 3, authenticated: 3 })
        expect(stats.refusals.malformed).toBe(ledger.closes.get(CLOSE_CODES.PROTOCOL) ?? 0)
        expect(rssAfter - rssBefore).toBeLessThan(64 * 2 ** 20)
      } finally {
        await side.traffic.close()
        side.sink.terminate()
        expect(await proc.stop()).toBe(0) // it never crashed: a clean SIGTERM exit
      }
    },
  )
})
