import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ILM, MemoryNetwork, MemoryStore, type Message } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { tick } from '../helpers/engines.js'

/**
 * Property: under any schedule of drops, duplicates, reorders, disconnects and
 * crash-restarts, every message whose send() resolved reaches the receiver's
 * application exactly once and in order, and every outbox empties once the
 * faults stop. Reproduce a failure with PROPERTY_SEED (and PROPERTY_PATH)
 * printed by fast-check.
 */

type Step =
  | { t: 'send'; from: number; to: number; n: number }
  | { t: 'faults'; drop: number; duplicate: number; reorder: number }
  | { t: 'disconnect'; p: number }
  | { t: 'reconnect'; p: number }
  | { t: 'crash'; p: number }
  | { t: 'advance'; ms: number }

interface Schedule {
  peers: number
  processBatch: number
  /** 0 commits each ack at once; otherwise acks ride along with sends or wait this long. */
  deferCommitMs: number
  /** 0 acks at the end of each turn; otherwise a receiver holds its ack this long (or until a sixteenth of its window waits). */
  ackDelayMs: number
  seed: number
  faults: { drop: number; duplicate: number; reorder: number }
  steps: Step[]
}

const probability = fc.double({ min: 0, max: 0.5, noNaN: true })
const peer = fc.nat({ max: 3 })
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('send' as const), from: peer, to: peer, n: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('faults' as const), drop: probability, duplicate: probability, reorder: probability }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('disconnect' as const), p: peer }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reconnect' as const), p: peer }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), p: peer }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 3000 }) }) },
)
const schedule: fc.Arbitrary<Schedule> = fc.record({
  peers: fc.integer({ min: 2, max: 4 }),
  processBatch: fc.integer({ min: 1, max: 8 }),
  deferCommitMs: fc.constantFrom(0, 50, 1000),
  ackDelayMs: fc.constantFrom(0, 20, 500),
  seed: fc.integer(),
  faults: fc.record({ drop: probability, duplicate: probability, reorder: probability }),
  steps: fc.array(step, { minLength: 4, maxLength: 60, size: 'large' }),
})

/** Lets promise chains, the network and the engines' WebCrypto jobs (sealing, opening: on Node's thread pool) settle. */
const settle = (rounds = 4): Promise<void> => tick(rounds)

const LIMITS = { retransmitMs: 100, maxRetransmitMs: 800, handlerRetryMs: 100, window: 8 }

class World {
  readonly clock = new ManualClock()
  readonly net = new MemoryNetwork({ clock: this.clock })
  readonly ids: string[]
  readonly stores: MemoryStore[]
  readonly engines: Array<ILM | undefined>
  /** received[to][from] = handovers in the order the application saw them, with the receiver's incarnation. */
  readonly received: Array<Array<Array<{ text: string; incarnation: number }>>>
  readonly incarnations: number[]
  /** resolved[from][to] = contents of sends that resolved, in seq order. */
  readonly resolved: Array<Array<Array<{ seq: number; text: string }>>>
  readonly counters: number[][]
  readonly offline = new Set<number>()
  readonly opening: Array<Promise<void>> = []
  readonly sends: Array<Promise<unknown>> = []
  again = 0

  constructor(
    readonly peers: number,
    readonly processBatch: number,
    readonly deferCommitMs: number,
    readonly ackDelayMs: number,
  ) {
    this.ids = Array.from({ length: peers }, (_, i) => `p${i}`)
    this.stores = this.ids.map(() => new MemoryStore())
    this.engines = this.ids.map(() => undefined)
    this.received = this.ids.map(() => this.ids.map(() => []))
    this.resolved = this.ids.map(() => this.ids.map(() => []))
    this.counters = this.ids.map(() => this.ids.map(() => 0))
    this.incarnations = this.ids.map(() => 0)
  }

  async open(p: number): Promise<void> {
    const engine = await ILM.open({
      store: this.stores[p]!,
      transport: this.net.connect(this.ids[p]!),
      clock: this.clock,
      limits: { ...LIMITS, processBatch: this.processBatch, deferCommitMs: this.deferCommitMs, ackDelayMs: this.ackDelayMs },
    })
    const incarnation = ++this.incarnations[p]!
    engine.onMessage((m: Message) => {
      this.received[p]![this.ids.indexOf(m.from)]!.push({ text: m.contents as string, incarnation })
    })
    this.engines[p] = engine
    if (this.offline.has(p)) this.net.disconnect(this.ids[p]!)
  }

  send(from: number, to: number, n: number): void {
    const engine = this.engines[from]
    if (engine === undefined || from === to) return
    for (let i = 0; i < n; i++) {
      const text = `${from}>${to}#${this.counters[from]![to]!++}`
      this.sends.push(
        engine.send(this.ids[to]!, text).then(
          ({ seq }) => void this.resolved[from]![to]!.push({ seq, text }),
          () => {},
        ),
      )
    }
  }

  /**
   * A hard crash: the old instance stops at once and the new one fences its
   * store, so writes the old one had queued never land.
   */
  async crash(p: number): Promise<void> {
    const engine = this.engines[p]
    if (engine === undefined) return
    this.engines[p] = undefined
    void engine.close()
    await this.open(p)
  }

  async run(step: Step): Promise<void> {
    const p = (i: number): number => i % this.peers
    switch (step.t) {
      case 'send': {
        this.send(p(step.from), p(step.to), step.n)
        return
      }
      case 'faults': {
        this.net.faults({ drop: step.drop, duplicate: step.duplicate, reorder: step.reorder, seed: this.clock.now() })
        return
      }
      case 'disconnect':
        this.offline.add(p(step.p))
        {
          this.net.disconnect(this.ids[p(step.p)]!)
          return
        }
      case 'reconnect':
        this.offline.delete(p(step.p))
        {
          this.net.reconnect(this.ids[p(step.p)]!)
          return
        }
      case 'crash':
        return this.crash(p(step.p))
      case 'advance':
        this.clock.advance(step.ms)
        return settle()
    }
  }

  async heal(): Promise<void> {
    this.net.faults({})
    for (const p of this.offline) this.net.reconnect(this.ids[p]!)
    this.offline.clear()
    await Promise.all(this.sends)
    for (let round = 0; round < 400; round++) {
      this.clock.advance(250)
      await settle()
      if (await this.quiet()) return
    }
  }

  async quiet(): Promise<boolean> {
    for (const engine of this.engines) {
      const pending = await engine!.pending()
      if (pending.outbound + pending.inbound > 0) return false
    }
    return true
  }

  /**
   * Exactly once and in order, with the one allowance a real crash forces:
   * messages a crashed receiver had handed over but not yet marked processed
   * (at most `processBatch` per crash) are handed over again by its next
   * incarnation. Nothing else may ever come twice.
   */
  async check(): Promise<void> {
    for (let from = 0; from < this.peers; from++) {
      for (let to = 0; to < this.peers; to++) {
        const sent = [...this.resolved[from]![to]!].sort((x, y) => x.seq - y.seq).map((s) => s.text)
        const first = new Map<string, number>()
        const seen: string[] = []
        let again = 0
        for (const { text, incarnation } of this.received[to]![from]!) {
          const earlier = first.get(text)
          if (earlier === undefined) {
            first.set(text, incarnation)
            seen.push(text)
          } else {
            expect(incarnation, `${text} handed over twice by one incarnation`).toBeGreaterThan(earlier)
            again++
          }
        }
        expect(seen, `${from} -> ${to}`).toEqual(sent)
        expect(again).toBeLessThanOrEqual(this.processBatch * (this.incarnations[to]! - 1))
        this.again += again
      }
    }
    for (const engine of this.engines) expect(await engine!.pending()).toEqual({ outbound: 0, inbound: 0 })
  }

  async close(): Promise<void> {
    await Promise.all(this.engines.map((engine) => engine?.close()))
  }
}

const runs = Number(process.env.PROPERTY_RUNS ?? 2000)
const seed = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED)
const path = process.env.PROPERTY_PATH

const totals = { delivered: 0, faults: 0, repeats: 0 }

describe('delivery under random fault schedules', () => {
  it(`hands every resolved send over once, in order (a crash replays at most processBatch), and drains every outbox (${runs} schedules)`, async () => {
    await fc.assert(
      fc.asyncProperty(schedule, async ({ peers, processBatch, deferCommitMs, ackDelayMs, seed: netSeed, faults, steps }) => {
        const world = new World(peers, processBatch, deferCommitMs, ackDelayMs)
        world.net.faults({ ...faults, seed: netSeed })
        try {
          for (let p = 0; p < peers; p++) await world.open(p)
          for (const s of steps) await world.run(s)
          await world.heal()
          await world.check()
          totals.delivered += world.received.flat(2).length
          totals.repeats += world.again
          totals.faults += world.net.stats.dropped + world.net.stats.duplicated + world.net.stats.reordered
        } finally {
          await world.close()
        }
      }),
      { numRuns: runs, ...(seed !== undefined && { seed }), ...(path !== undefined && { path }) },
    )
    // Guards against a vacuous pass: the schedules must really move messages through faults.
    expect(totals.delivered).toBeGreaterThan(runs * 5)
    expect(totals.faults).toBeGreaterThan(runs)
    console.log(
      `property: ${runs} schedules, ${totals.delivered} messages delivered, ${totals.faults} frame faults, ${totals.repeats} handed over again after a crash`,
    )
  }, 600_000)
})
