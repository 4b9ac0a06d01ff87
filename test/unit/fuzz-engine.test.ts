/**
 * Feeds a real engine (memory store) 100,000+ hostile frames, generated and
 * mutated, authenticated as its real peer or as a third party, and proves that
 * whatever it must refuse changes nothing: no store commit, the same message
 * statuses and pending counts, and exactly the refusal counted that the
 * protocol calls for. Reproduce with the seed and path fast-check prints
 * (`FUZZ_SEED=... npx vitest run test/unit/fuzz-engine.test.ts`).
 */
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame } from '../../src/core/codec.js'
import type { Epoch, PeerId } from '../../src/core/ids.js'
import { ILM, MemoryNetwork, MemoryStore, type MessageStatus } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { ProbeTransport, RecordingStore } from '../helpers/engine-probes.js'
import { openPeer, tick, until } from '../helpers/engines.js'
import { frameArb, FUZZ_SEED, fuzzRuns, mutatedFrameArb, validFrameInputArb, type FuzzInput } from '../helpers/fuzz-frames.js'

const MAX_MESSAGE_BYTES = 16 * 1024 // small, so oversize inputs stay cheap to build
const FRAME_LIMIT = MAX_MESSAGE_BYTES + 16 * 1024 // the engine adds a 16 KiB header allowance
const BATCH = 500
const TARGET = fuzzRuns(100_000)
// ~1.5% of the inputs are legitimate frames, skipped: 3% more runs keep the fed count above the target.
const RUNS = Math.ceil((TARGET * 1.03) / BATCH)

/** What bob's store holds after the setup: streams both ways with alice, part of it unacknowledged. */
interface World {
  readonly store: MemoryStore
  readonly clock: ManualClock
  readonly aliceEpoch: Epoch
  readonly bobEpoch: Epoch
  readonly sentIds: string[]
  /** bob -> alice: nextSeq 5, ackedUpTo 2. alice -> bob: receivedUpTo 2. */
  readonly outNext: number
  readonly outAcked: number
  readonly inUpTo: number
}

let world: World

beforeAll(async () => {
  const clock = new ManualClock()
  const net = new MemoryNetwork({ clock })
  const store = new MemoryStore()
  const aliceStore = new MemoryStore()
  // Frames are generated and mutated in clear, so encryption is off here; sealed frames that do not open: e2e-hostile-relay.test.ts.
  const alice = await openPeer(net.connect('alice'), { store: aliceStore, clock, encryption: false })
  const bob = await openPeer(net.connect('bob'), { store, clock, encryption: false }, false)
  const sentIds: string[] = []
  for (let i = 0; i < 3; i++) await alice.ilm.delivered((await alice.ilm.send('bob', `a${i}`)).id)
  for (let i = 0; i < 3; i++) {
    const { id } = await bob.ilm.send('alice', `b${i}`)
    sentIds.push(id)
    await bob.ilm.delivered(id)
  }
  net.disconnect('alice')
  for (let i = 3; i < 5; i++) sentIds.push((await bob.ilm.send('alice', `b${i}`)).id)
  await until(async () => (await bob.ilm.pending()).outbound === 2)
  await Promise.all([alice.ilm.close(), bob.ilm.close()])
  world = { store, clock, aliceEpoch: await epochOf(aliceStore, 'alice'), bobEpoch: await epochOf(store, 'bob'), sentIds, outNext: 5, outAcked: 2, inUpTo: 2 }
})

/** The epoch of `id` in `store`, read once its engine has closed. */
async function epochOf(store: MemoryStore, id: string): Promise<Epoch> {
  const handle = await store.open(id as PeerId)
  const { meta } = await handle.load()
  await handle.close()
  return meta!.epoch
}

/** What the engine must do with an input, by the protocol's rules and bob's known state. */
type Verdict = { readonly refuse: string } | 'noop' | 'legit'

function verdict(input: FuzzInput, auth: string, w: World): Verdict {
  const decoded = decodeFrame(input.bytes, FRAME_LIMIT)
  if (!decoded.ok) return { refuse: decoded.reason }
  const f = decoded.frame
  if (f.from !== auth) return { refuse: 'FORGED' }
  if (f.to !== 'bob') return { refuse: 'MISDIRECTED' }
  if (auth !== 'alice') return 'legit' // a third party's own stream: its to open
  switch (f.kind) {
    case 'ack':
      if (f.epoch !== w.bobEpoch) return { refuse: 'STALE_ACK' }
      if (f.upTo >= w.outNext) return { refuse: 'ACK_UNSENT' }
      return f.upTo <= w.outAcked ? 'noop' : 'legit'
    case 'reset':
      return f.epoch !== w.bobEpoch ? { refuse: 'BAD_RESET' } : 'noop'
    case 'msg':
      if (f.skip !== true && f.expiresAt !== undefined && f.expiresAt <= w.clock.now()) return { refuse: 'EXPIRED' }
      if (f.epoch < w.aliceEpoch) return 'noop' // answered with a reset
      if (f.epoch > w.aliceEpoch || f.floor - 1 > w.inUpTo || f.seq === w.inUpTo + 1) return 'legit'
      return 'noop' // a duplicate, or a gap buffered in memory
    case 'hello': {
      const acks = f.known === w.bobEpoch && f.upTo > w.outAcked && f.upTo < w.outNext
      const follows = (f.epoch < w.aliceEpoch && f.claim === true) || f.epoch > w.aliceEpoch || (f.epoch === w.aliceEpoch && f.floor - 1 > w.inUpTo)
      return acks || follows ? 'legit' : 'noop'
    }
  }
}

interface Observed {
  statuses: MessageStatus[]
  pending: { outbound: number; inbound: number }
  refused: Record<string, number>
}

async function observe(ilm: ILM, ids: readonly string[]): Promise<Observed> {
  return { statuses: await Promise.all(ids.map((id) => ilm.status(id))), pending: await ilm.pending(), refused: { ...ilm.refused() } }
}

const totals = { fed: 0, skippedLegit: 0, noop: 0, refused: {} as Record<string, number> }

describe('engine fuzzing: hostile frames change nothing', () => {
  it(`refuses ${TARGET}+ generated and mutated frames without a commit or a status change (seed ${FUZZ_SEED})`, { timeout: 600_000 }, async () => {
    const epochs = [world.aliceEpoch, world.bobEpoch, `000000000.${'o'.repeat(8)}`, `zzzzzzzzz.${'n'.repeat(8)}`]
    // Half between alice and bob (hitting the real streams' edges), half among anyone.
    const sample = [
      ...fc.sample(frameArb({ peers: ['alice', 'bob'], epochs, smallSeqs: 8 }), { numRuns: 1500, seed: FUZZ_SEED }),
      ...fc.sample(frameArb({ peers: ['alice', 'bob', 'carol', 'mallory'], epochs }), { numRuns: 1500, seed: FUZZ_SEED }),
    ]
    const frames = fc.constantFrom(...sample)
    const aliceHello = encodeFrame({
      kind: 'hello',
      from: 'alice' as PeerId,
      to: 'bob' as PeerId,
      epoch: world.aliceEpoch,
      floor: world.inUpTo + 1,
      known: world.bobEpoch,
      upTo: world.outAcked,
      reply: true,
    })
    const input = fc.tuple(
      fc.oneof({ weight: 1, arbitrary: validFrameInputArb(frames) }, { weight: 3, arbitrary: mutatedFrameArb(frames, FRAME_LIMIT) }),
      fc.constantFrom('alice', 'mallory'),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(input, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const chosen = batch.map(([i, auth]) => ({ input: i, auth, verdict: verdict(i, auth, world) })).filter((c) => c.verdict !== 'legit')
        totals.skippedLegit += BATCH - chosen.length
        const store = new RecordingStore(world.store)
        const transport = new ProbeTransport('bob')
        const ilm = await ILM.open({ store, transport, clock: world.clock, limits: { maxMessageBytes: MAX_MESSAGE_BYTES }, encryption: false })
        try {
          // Alice is online and resumed: bob has sent her everything (statuses 'sent'), so nothing is pending on the hostile input.
          transport.presence('alice', true)
          transport.inject('alice', aliceHello)
          await until(async () => (await ilm.status(world.sentIds.at(-1)!)) === 'sent')
          const before = await observe(ilm, world.sentIds)
          const commitsBefore = store.commits.length
          for (const c of chosen) transport.inject(c.auth, c.input.bytes)
          await tick(3)
          const after = await observe(ilm, world.sentIds)
          const expected = { ...before.refused }
          for (const { verdict: v } of chosen) {
            if (typeof v === 'string') totals.noop++
            else {
              expected[v.refuse] = (expected[v.refuse] ?? 0) + 1
              totals.refused[v.refuse] = (totals.refused[v.refuse] ?? 0) + 1
            }
          }
          totals.fed += chosen.length
          expect(store.commits.slice(commitsBefore)).toEqual([])
          expect(after).toEqual({ ...before, refused: expected })
        } finally {
          await ilm.close()
        }
      }),
      { numRuns: RUNS, seed: FUZZ_SEED },
    )
    console.log(`fed ${totals.fed} frames (${totals.skippedLegit} legitimate ones skipped); no-ops ${totals.noop}; refused by reason:`)
    console.table(totals.refused)
    // Not vacuous: most inputs are fed, and every engine-level refusal was exercised.
    expect(totals.fed).toBeGreaterThanOrEqual(TARGET)
    for (const reason of ['FORGED', 'MISDIRECTED', 'STALE_ACK', 'ACK_UNSENT', 'BAD_RESET', 'TRUNCATED', 'FIELD', 'HEADER', 'VERSION', 'KIND']) {
      expect(totals.refused[reason] ?? 0, reason).toBeGreaterThan(0)
    }
  })
})
