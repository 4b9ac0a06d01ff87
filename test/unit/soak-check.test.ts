/// <reference types="node" />
/** The soak's checker and fault proxy (test/soak): each failure they claim to catch is planted here and must be caught. */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { check, type Verdict } from '../soak/check.js'
import { FaultProxy } from '../soak/fault-proxy.js'
import { Ledger, type Crash, type Handover, type Outcome } from '../soak/ledger.js'
import { Rng } from '../soak/rng.js'

const idOf = (from: string, to: string, n: number): string => `${from}-${to}-${n}`

/** Builds a ledger: sends with their outcome, handovers in time order, crashes. Defaults: stream a>b, seq = n, one epoch, b's handler in tab b/0. */
class Scenario {
  readonly ledger = new Ledger()
  #keys = 0

  /** Sends `ns` from `from` to `to` with `outcome`; a resolved one's receipt names its id and seq n. */
  send(ns: readonly number[], outcome: Outcome = 'resolved', from = 'a', to = 'b'): this {
    for (const n of ns) {
      const s = this.ledger.attempt(from, to, n, idOf(from, to, n))
      s.outcome = outcome
      if (outcome === 'resolved') {
        s.seq = n
        s.receiptId = s.id
      }
      if (outcome === 'rejected') s.error = 'QUEUE_FULL: full'
    }
    return this
  }

  /** A handover of n at `at`. */
  hand(n: number, at: number, over: Partial<Handover> = {}): this {
    const from = over.from ?? 'a'
    const to = over.to ?? 'b'
    const key = `k${++this.#keys}`
    this.ledger.handover({ from, to, n, id: idOf(from, to, n), seq: n, epoch: 'e1', tab: 'b/0', load: 'L1', role: 'leader', key, at, ...over })
    return this
  }

  /** A crash of b's tab b/0 (leading, page load L1) from `at` until `at + 5`. */
  crash(at: number, over: Partial<Crash> = {}): this {
    const c = this.ledger.crash({ peer: 'b', tab: 'b/0', kind: 'reload', led: true, roles: ['leader'], load: 'L1', at, ...over })
    c.until = over.until ?? at + 5
    return this
  }

  /** Tab `tab` of b reports at `at` that it leads (runs b's engine). */
  lead(at: number, tab = 'b/1', load = 'M1'): this {
    this.ledger.role({ peer: 'b', tab, load, role: 'leader', key: `k${++this.#keys}`, at })
    return this
  }

  /** Hands over every send of stream a>b in n order, from time `at` on, 10 apart. */
  handAll(at: number): this {
    for (const s of this.ledger.sends.get('a>b') ?? []) if (s.outcome === 'resolved') this.hand(s.n, at + s.n * 10)
    return this
  }

  check(): Verdict {
    return check(this.ledger)
  }
}

const CLEAN = { lost: 0, duplicated: 0, reordered: 0, phantom: 0, rejectedDelivered: 0, ok: true }

describe('soak verdict', () => {
  it('passes a clean stream', () => {
    const v = new Scenario().send([0, 1, 2]).hand(0, 10).hand(1, 20).hand(2, 30).check()
    expect(v).toMatchObject({ ...CLEAN, attempted: 3, sent: 3, rejected: 0, unknown: 0, replayed: 0 })
    expect(v.details).toEqual([])
  })

  it('catches a duplicate: the same message handed over twice with no crash', () => {
    const v = new Scenario().send([0, 1]).hand(0, 10).hand(1, 20).hand(1, 30).check()
    expect(v).toMatchObject({ duplicated: 1, replayed: 0, ok: false })
    expect(v.details[0]).toMatch(/^duplicated a>b n=1 .*no crash of b's engine/)
  })

  it('catches a loss: a resolved send never handed over', () => {
    expect(new Scenario().send([0, 1, 2]).hand(0, 10).hand(2, 30).check()).toMatchObject({ lost: 1, reordered: 0, ok: false })
  })

  it('catches a reorder: an older message after a newer one', () => {
    expect(new Scenario().send([0, 1, 2]).hand(0, 10).hand(2, 20).hand(1, 30).check()).toMatchObject({ reordered: 1, lost: 0, ok: false })
  })

  it('catches phantoms: an unknown id, and an id whose from, to, n or seq disagree with its send', () => {
    const v = new Scenario()
      .send([0, 1, 2, 3])
      .send([0], 'resolved', 'c', 'b')
      .hand(0, 10, { id: 'never-sent' })
      .hand(0, 11)
      .hand(1, 20, { n: 7 })
      .hand(2, 30, { seq: 9 })
      .hand(3, 40)
      .hand(0, 50, { from: 'a', id: idOf('c', 'b', 0) })
      .check()
    expect(v).toMatchObject({ phantom: 4, duplicated: 0, ok: false })
    expect(v.details.filter((d) => d.startsWith('phantom'))).toHaveLength(4)
  })

  it('catches a send resolved with a receipt for another id', () => {
    const s = new Scenario().send([0]).hand(0, 10)
    s.ledger.sends.get('a>b')![0]!.receiptId = 'other'
    expect(s.check()).toMatchObject({ phantom: 1, ok: false })
  })

  it('catches a rejected send that was handed over', () => {
    const v = new Scenario().send([0]).send([1], 'rejected').send([2]).hand(0, 10).hand(1, 20).hand(2, 30).check()
    expect(v).toMatchObject({ rejected: 1, rejectedDelivered: 1, ok: false })
  })

  it('lets a send of unknown outcome arrive once or not at all, and catches one that arrives twice', () => {
    const base = (): Scenario =>
      new Scenario()
        .send([0], 'unknown')
        .send([1], 'unknown')
        .send(Array.from({ length: 200 }, (_, n) => n + 2))
    expect(base().hand(0, 5).handAll(100).check()).toMatchObject({ ...CLEAN, unknown: 2, sent: 200 })
    const twice = base().hand(0, 5).hand(0, 6).handAll(100).check()
    expect(twice).toMatchObject({ duplicated: 1, ok: false })
    expect(twice.details[0]).toMatch(/send unknown/)
  })

  it('fails the run when sends of unknown outcome exceed 1% of sends', () => {
    const within = new Scenario()
      .send([0, 1], 'unknown')
      .send(Array.from({ length: 198 }, (_, n) => n + 2))
      .handAll(0)
      .check()
    expect(within).toMatchObject({ attempted: 200, unknown: 2, unknownLimit: 2, lost: 0, ok: true })
    const over = new Scenario()
      .send([0, 1, 2], 'unknown')
      .send(Array.from({ length: 197 }, (_, n) => n + 3))
      .handAll(0)
      .check()
    expect(over).toMatchObject({ attempted: 200, unknown: 3, unknownLimit: 2, lost: 0, ok: false })
  })

  it('catches a replay with another seq or another epoch than the first handover, even after a crash', () => {
    expect(new Scenario().send([0, 1]).hand(0, 10).hand(1, 20).crash(30).hand(1, 40, { seq: 2 }).check()).toMatchObject({
      duplicated: 1,
      replayed: 0,
      ok: false,
    })
    expect(new Scenario().send([0, 1]).hand(0, 10).hand(1, 20).crash(30).hand(1, 40, { epoch: 'e2' }).check()).toMatchObject({
      duplicated: 1,
      replayed: 0,
      ok: false,
    })
  })

  it('catches a replay with no crash of the handling context in between', () => {
    const s = (): Scenario => new Scenario().send([0, 1]).hand(0, 10).hand(1, 20)
    // No crash at all.
    expect(s().hand(1, 40).check()).toMatchObject({ duplicated: 1, ok: false })
    // A crash of the sender, not the receiver.
    expect(s().crash(30, { peer: 'a', tab: 'a/0' }).hand(1, 40).check()).toMatchObject({ duplicated: 1, ok: false })
    // A reload of a tab of b that neither led nor ran the handler.
    expect(s().crash(30, { tab: 'b/1', led: false, load: 'M1' }).hand(1, 40).check()).toMatchObject({ duplicated: 1, ok: false })
    // A crash of a page load of the handler's tab other than the one the handler ran in.
    expect(s().crash(30, { led: false, load: 'L0' }).hand(1, 40).check()).toMatchObject({ duplicated: 1, ok: false })
    // A crash over before the first handover, or after the repeat.
    expect(s().crash(12, { until: 15 }).hand(1, 40).check()).toMatchObject({ duplicated: 1, ok: false })
    expect(s().hand(1, 40).crash(45).check()).toMatchObject({ duplicated: 1, ok: false })
  })

  it('catches a repeat of a message the next engine handed over after it took over', () => {
    // b/1 leads from 35: the handover at 40 was its own, and it handed the message over again with no crash in between.
    const v = new Scenario().send([0, 1]).hand(0, 10).crash(30).lead(35).hand(1, 40, { tab: 'b/1', load: 'M1' }).hand(1, 60, { tab: 'b/1', load: 'M1' }).check()
    expect(v).toMatchObject({ duplicated: 1, replayed: 0, ok: false })
    expect(v.details[0]).toMatch(/leaders: b\/1 at/)
    // With no leader reported, the dead engine's handovers end when the crash took effect.
    expect(
      new Scenario().send([0, 1]).hand(0, 10).crash(30).hand(1, 40, { tab: 'b/1', load: 'M1' }).hand(1, 60, { tab: 'b/1', load: 'M1' }).check(),
    ).toMatchObject({ duplicated: 1, ok: false })
  })

  it('catches a replay of a handover that was already marked processed (another followed it before the crash)', () => {
    const v = new Scenario().send([0, 1]).hand(0, 10).hand(1, 20).crash(30).hand(0, 40).check()
    expect(v).toMatchObject({ duplicated: 1, replayed: 0, ok: false })
    expect(v.details[0]).toMatch(/n=1 was handed over in between/)
  })

  it('catches replays over the bound: one crash excuses one repeat per sender stream', () => {
    // A slow crash: both repeats fall inside its window.
    const v = new Scenario().send([0, 1]).hand(0, 10).hand(1, 20).crash(30, { until: 60 }).hand(1, 40).hand(1, 50).check()
    expect(v).toMatchObject({ replayed: 1, duplicated: 1, ok: false })
    expect(v.details[0]).toMatch(/over the bound/)
  })

  it('passes legitimate replays', () => {
    // The leader's engine died with the message in hand; the handler ran in another tab.
    const engine = new Scenario()
      .send([0, 1, 2])
      .hand(0, 10)
      .hand(1, 20, { tab: 'b/1', load: 'M1' })
      .crash(30)
      .hand(1, 40, { tab: 'b/1', load: 'M1' })
      .hand(2, 50, { tab: 'b/1', load: 'M1' })
    expect(engine.check()).toMatchObject({ ...CLEAN, replayed: 1 })
    // The follower page that ran the handler froze before its result reached the leader; it resumed and got the message again.
    const frozen = new Scenario()
      .send([0, 1])
      .hand(0, 10)
      .hand(1, 20, { tab: 'b/1', load: 'M1' })
      .crash(30, { tab: 'b/1', kind: 'freeze', led: false, load: 'M1' })
      .hand(1, 40, { tab: 'b/1', load: 'M1' })
    expect(frozen.check()).toMatchObject({ ...CLEAN, replayed: 1 })
    // That follower was reloaded instead: the new page load gets it.
    const reloaded = new Scenario()
      .send([0, 1])
      .hand(0, 10)
      .hand(1, 20, { tab: 'b/1', load: 'M1' })
      .crash(30, { tab: 'b/1', led: false, load: 'M1' })
      .hand(1, 40, { tab: 'b/1', load: 'M2' })
    expect(reloaded.check()).toMatchObject({ ...CLEAN, replayed: 1 })
    // The handler in the follower ran after the leader's page was gone (the message was in flight to it), before the follower took over.
    const inFlight = new Scenario().send([0, 1]).hand(0, 10).crash(30).hand(1, 40, { tab: 'b/1', load: 'M1' }).lead(50).hand(1, 60, { tab: 'b/1', load: 'M1' })
    const flown = inFlight.check()
    expect(flown).toMatchObject({ ...CLEAN, replayed: 1 })
    expect(flown.replays).toEqual([expect.stringMatching(/^replayed a>b n=1 .*in flight to its handler when the engine died; crash: reload b\/0 \(led\)/)])
    // The handler ran after the reload was ordered, before the page went away.
    expect(new Scenario().send([0]).crash(10, { until: 30 }).hand(0, 20).hand(0, 40, { load: 'L2' }).check()).toMatchObject({ ...CLEAN, replayed: 1 })
    // Two crashes in a row, each before the message was marked: two replays.
    expect(new Scenario().send([0, 1]).hand(0, 10).hand(1, 20).crash(30).hand(1, 40).crash(50).hand(1, 60).hand(1, 80).crash(70).check()).toMatchObject({
      ...CLEAN,
      replayed: 3,
    })
    // One engine crash replays one message of each sender.
    const senders = new Scenario()
      .send([0])
      .send([0], 'resolved', 'c', 'b')
      .hand(0, 10)
      .hand(0, 12, { from: 'c' })
      .crash(30)
      .hand(0, 40)
      .hand(0, 42, { from: 'c' })
    expect(senders.check()).toMatchObject({ ...CLEAN, replayed: 2 })
    // A send of unknown outcome may be replayed too.
    const unknown = new Scenario()
      .send([0], 'unknown')
      .send(Array.from({ length: 100 }, (_, n) => n + 1))
      .hand(0, 10)
      .crash(20)
      .hand(0, 30)
      .handAll(100)
    expect(unknown.check()).toMatchObject({ ...CLEAN, unknown: 1, replayed: 1 })
  })
})

describe('soak fault proxy', () => {
  async function echoServer(): Promise<{ port: number; close(): void }> {
    const server = net.createServer((s) => s.pipe(s))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
  }

  async function roundTrip(proxy: FaultProxy, chunks: readonly string[], during?: () => void): Promise<{ text: string; ms: number }> {
    const socket = net.connect(proxy.port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    await new Promise((resolve) => setTimeout(resolve, 20))
    during?.()
    const started = Date.now()
    const want = chunks.join('')
    let text = ''
    const done = new Promise<void>((resolve) =>
      socket.on('data', (d) => {
        text += String(d)
        if (text.length >= want.length) resolve()
      }),
    )
    for (const c of chunks) socket.write(c)
    await done
    socket.destroy()
    return { text, ms: Date.now() - started }
  }

  it('keeps the byte order under delays, holds bytes during a stall, and cuts', async () => {
    const echo = await echoServer()
    const proxy = await FaultProxy.start(new Rng(7), echo.port)
    try {
      const chunks = Array.from({ length: 50 }, (_, i) => `<${i}>`)
      const delayed = await roundTrip(proxy, chunks, () => expect(proxy.delay(5000, 30)).toBe(true))
      expect(delayed.text).toBe(chunks.join(''))
      const stalled = await roundTrip(proxy, ['x'], () => expect(proxy.stall(300)).toBe(true))
      expect(stalled.ms).toBeGreaterThanOrEqual(250)
      const socket = net.connect(proxy.port, '127.0.0.1')
      const closed = new Promise((resolve) => socket.once('close', resolve))
      await new Promise((resolve) => socket.once('connect', resolve))
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(proxy.cut()).toBe(true)
      await closed
      proxy.setUpstream(undefined)
      const refused = net.connect(proxy.port, '127.0.0.1')
      await new Promise((resolve) => refused.once('close', resolve))
    } finally {
      await proxy.close()
      echo.close()
    }
  })
})
