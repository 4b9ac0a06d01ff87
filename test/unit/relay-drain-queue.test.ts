/**
 * One connection's mailbox drain (src/relay/drain-queue.ts) on a ManualClock
 * and a MemoryMailbox, with a sink that records what would go on the socket
 * and whose `bufferedAmount` the test sets: order of drained and live frames,
 * a slow consumer, new mail during a drain, and a connection that goes
 * mid-drain. The same paths through real sockets: mailbox-relay.test.ts.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeFrame } from '../../src/core/codec.js'
import { makeEpoch, type PeerId } from '../../src/core/ids.js'
import { envelope, openEnvelope, type RelayControl } from '../../src/protocol/relay.js'
import { DRAIN_BATCH, DRAIN_POLL_MS, DrainQueue, MAX_REDRAINS, MAX_RESTART_ANSWERS, type DrainSink, type Redrain } from '../../src/relay/drain-queue.js'
import type { Mailbox, MailboxRecord } from '../../src/relay/mailbox/mailbox.js'
import { MemoryMailbox } from '../../src/relay/mailbox/memory.js'
import { ManualClock } from '../../src/testing/manual-clock.js'

const BOB = 'bob' as PeerId
const EPOCH = makeEpoch(ManualClock.DEFAULT_START, 'abcdef')
const MAX_PENDING = 1000
const LIMITS = { maxMessages: 10_000, maxBytes: 10_000_000 }
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** What a socket would carry: `stored <from> <text>` (drained), `live <from> <text>`, or a control message. */
class RecordingSink implements DrainSink {
  open = true
  bufferedAmount = 0
  readonly sent: string[] = []

  sendFrame(out: Uint8Array): void {
    const opened = openEnvelope(out)
    if (opened === undefined) throw new Error('not an envelope')
    const decoded = decodeFrame(opened.frame, 1 << 20)
    const text = decoded.ok && decoded.frame.kind === 'msg' && decoded.frame.skip === true ? `skip:${decoded.frame.seq}` : decoder.decode(opened.frame)
    this.sent.push(`${opened.stored ? 'stored' : 'live'} ${opened.address} ${text}`)
  }

  sendControl(message: RelayControl): void {
    this.sent.push(`control ${JSON.stringify(message)}`)
  }
}

interface Setup {
  clock: ManualClock
  mailbox: Mailbox
  sink: RecordingSink
  queue: DrainQueue
  drained: () => number
  failures: unknown[]
}

function setup(mailbox: Mailbox = new MemoryMailbox(), sink = new RecordingSink(), perSender?: number): Setup {
  const clock = new ManualClock()
  let drained = 0
  const failures: unknown[] = []
  const hooks = { drained: () => drained++, failed: (error: unknown) => failures.push(error) }
  const queue = new DrainQueue(BOB, mailbox, sink, clock, MAX_PENDING, hooks, perSender)
  return { clock, mailbox, sink, queue, drained: () => drained, failures }
}

function record(from: string, seq: number, extra: Partial<MailboxRecord> = {}): MailboxRecord {
  return { kind: 'msg', from, epoch: EPOCH, seq, id: `${from}-${seq}`, size: 8, storedAt: ManualClock.DEFAULT_START, ...extra }
}

async function store(mailbox: Mailbox, from: string, seq: number, extra: Partial<MailboxRecord> = {}): Promise<void> {
  const result = await mailbox.put(BOB, record(from, seq, extra), encoder.encode(`${from}-${seq}`), LIMITS)
  if (!result.ok) throw new Error('mailbox full')
}

const live = (from: string, text: string): Uint8Array => envelope(from, encoder.encode(text))

/** Lets the mailbox's promises and the drain's continuations run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('DrainQueue', () => {
  it('sends the mailbox in order, marked stored; acks and notices once, messages until acked; a later drain goes on after the last entry', async () => {
    const { mailbox, sink, queue, drained } = setup()
    await store(mailbox, 'alice', 0)
    await mailbox.put(BOB, { kind: 'ack', from: 'carol', epoch: EPOCH, seq: 4, id: '', size: 3, storedAt: 1 }, encoder.encode('ack-4'), LIMITS)
    await mailbox.put(
      BOB,
      { kind: 'notice', from: 'dave', epoch: EPOCH, seq: 2, id: 'n', size: 0, storedAt: 1, reason: 'full_bytes' },
      new Uint8Array(0),
      LIMITS,
    )
    await store(mailbox, 'alice', 1)
    await queue.drain()
    expect(sink.sent).toEqual([
      'stored alice alice-0',
      'stored carol ack-4',
      `control ${JSON.stringify({ t: 'failed', peer: 'dave', epoch: EPOCH, seq: 2, reason: 'full_bytes', held: true })}`,
      'stored alice alice-1',
    ])
    expect(drained()).toBe(4)
    expect((await mailbox.read(BOB, undefined, 10)).map(({ entry }) => `${entry.kind} ${entry.seq}`)).toEqual(['msg 0', 'msg 1'])
    await store(mailbox, 'alice', 2)
    await queue.drain()
    expect(sink.sent.slice(4)).toEqual(['stored alice alice-2'])
  })

  it("with the peer's window, a drain from the first entry sends each sender's first `window` messages (acks and notices all), then `redrained more` for each sender it stopped; a drain on after new mail sends all; a restart stops them again", async () => {
    const { mailbox, sink, queue } = setup(undefined, undefined, 2)
    await store(mailbox, 'alice', 0)
    await store(mailbox, 'carol', 0)
    await store(mailbox, 'alice', 1)
    await mailbox.put(BOB, { kind: 'ack', from: 'dave', epoch: EPOCH, seq: 4, id: '', size: 3, storedAt: 1 }, encoder.encode('ack-4'), LIMITS)
    await store(mailbox, 'alice', 2)
    await store(mailbox, 'carol', 1, { kind: 'skip' })
    await store(mailbox, 'alice', 3)
    await queue.drain()
    const stopped = (from: string): string => `control ${JSON.stringify({ t: 'redrained', from, more: true })}`
    expect(sink.sent).toEqual([
      'stored alice alice-0',
      'stored carol carol-0',
      'stored alice alice-1',
      'stored dave ack-4',
      'stored carol carol-1',
      stopped('alice'),
    ])
    // The peer asks for the rest; mail that comes meanwhile goes on from the last entry, unbounded.
    await queue.redrain({ from: 'alice', epoch: EPOCH, after: 1, limit: 2 })
    expect(sink.sent.slice(6)).toEqual([
      'stored alice alice-2',
      'stored alice alice-3',
      `control ${JSON.stringify({ t: 'redrained', from: 'alice', more: true })}`,
    ])
    for (const seq of [4, 5, 6]) await store(mailbox, 'alice', seq)
    await queue.drain()
    expect(sink.sent.slice(9)).toEqual(['stored alice alice-4', 'stored alice alice-5', 'stored alice alice-6'])
    // Past MAX_REDRAINS senders asked for at once, the whole mailbox goes again from its first entry: stopped again,
    // each sender answered once (alice was both asked for and stopped).
    sink.sent.length = 0
    for (let i = 0; i <= MAX_REDRAINS; i++) void queue.redrain({ from: i === 0 ? 'alice' : `peer${i}`, epoch: EPOCH, after: -1, limit: 1 })
    await queue.drain()
    await settle()
    const sent = sink.sent.filter((line) => line.startsWith('stored'))
    expect(sent).toEqual(['stored alice alice-0', 'stored carol carol-0', 'stored alice alice-1', 'stored carol carol-1'])
    expect(sink.sent.filter((line) => line === stopped('alice'))).toHaveLength(1)
  })

  it("with the peer's window, counts each sender's messages across the drain's pages", async () => {
    const { mailbox, sink, queue } = setup(undefined, undefined, 300)
    for (let seq = 0; seq < 600; seq++) {
      await store(mailbox, 'alice', seq)
      if (seq % 100 === 0) await store(mailbox, 'carol', seq / 100)
    }
    await queue.drain()
    const alice = sink.sent.filter((line) => line.startsWith('stored alice'))
    expect(alice).toHaveLength(300)
    expect(alice.at(-1)).toBe('stored alice alice-299')
    expect(sink.sent.filter((line) => line.startsWith('stored carol'))).toHaveLength(6)
    expect(sink.sent.at(-1)).toBe(`control ${JSON.stringify({ t: 'redrained', from: 'alice', more: true })}`)
    expect(DRAIN_BATCH).toBeLessThan(300)
  })

  it('sends a message past its own expiry as a skip, so the receiver moves past its seq', async () => {
    const { clock, mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0, { expiresAt: clock.now() + 1000 })
    await store(mailbox, 'alice', 1, { expiresAt: clock.now() + 5000 })
    clock.advance(1000)
    await queue.drain()
    expect(sink.sent).toEqual(['stored alice skip:0', 'stored alice alice-1'])
  })

  it('without a drain, delivers live frames at once, or refuses them while the socket is too far behind', () => {
    const { sink, queue } = setup()
    expect(queue.deliver(live('alice', 'a'))).toBe(true)
    sink.bufferedAmount = MAX_PENDING + 1
    expect(queue.deliver(live('alice', 'b'))).toBe(false)
    sink.bufferedAmount = MAX_PENDING
    expect(queue.deliver(live('alice', 'c'))).toBe(true)
    expect(sink.sent).toEqual(['live alice a', 'live alice c'])
  })

  it('holds live frames behind a drain of several pages and sends them after its last entry, in order', async () => {
    const { mailbox, sink, queue } = setup()
    const stored = DRAIN_BATCH * 2 + 3
    for (let seq = 0; seq < stored; seq++) await store(mailbox, 'alice', seq)
    const done = queue.drain()
    expect(queue.draining).toBe(true)
    expect(queue.deliver(live('alice', 'live-0'))).toBe(true)
    await settle() // first page sent, second page being read
    expect(queue.deliver(live('carol', 'live-1'))).toBe(true)
    await done
    expect(queue.draining).toBe(false)
    expect(sink.sent).toHaveLength(stored + 2)
    expect(sink.sent.slice(0, stored)).toEqual(Array.from({ length: stored }, (_, seq) => `stored alice alice-${seq}`))
    expect(sink.sent.slice(stored)).toEqual(['live alice live-0', 'live carol live-1'])
    expect(queue.deliver(live('alice', 'live-2'))).toBe(true)
    expect(sink.sent.at(-1)).toBe('live alice live-2')
  })

  it('holds at most maxPendingBytes of live frames during a drain: beyond that the peer is too slow', async () => {
    const { mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0)
    const done = queue.drain()
    const frame = (n: number): Uint8Array => envelope('carol', encoder.encode(`${n}`.padEnd(400, '.')))
    const size = frame(0).byteLength
    const fits = Math.floor(MAX_PENDING / size)
    const accepted = Array.from({ length: fits + 2 }, (_, n) => queue.deliver(frame(n)))
    expect(accepted).toEqual([...Array(fits).fill(true), false, false])
    await done
    expect(sink.sent[0]).toBe('stored alice alice-0')
    expect(sink.sent.slice(1).map((line) => line.replace(/\.+$/, ''))).toEqual(Array.from({ length: fits }, (_, n) => `live carol ${n}`))
  })

  it('waits, on the clock, while the socket is too far behind, and goes on once it caught up; live frames still come last', async () => {
    const { clock, mailbox, sink, queue } = setup()
    for (let seq = 0; seq < 5; seq++) await store(mailbox, 'alice', seq)
    sink.bufferedAmount = MAX_PENDING + 1
    let finished = false
    const done = queue.drain().then(() => (finished = true))
    await settle()
    expect(sink.sent).toEqual([])
    expect(clock.pending).toBe(1) // one poll timer, nothing busy-waiting
    expect(queue.deliver(live('carol', 'live'))).toBe(true)
    clock.advance(DRAIN_POLL_MS * 10)
    await settle()
    expect(sink.sent).toEqual([])
    sink.bufferedAmount = MAX_PENDING
    clock.advance(DRAIN_POLL_MS - 1)
    await settle()
    expect(sink.sent).toEqual([])
    clock.advance(1)
    await done
    expect(finished).toBe(true)
    expect(sink.sent).toEqual([...Array.from({ length: 5 }, (_, seq) => `stored alice alice-${seq}`), 'live carol live'])
    expect(clock.pending).toBe(0)
  })

  it('reads again when told of new mail during a drain: the new entries go out before the held live frames', async () => {
    const { clock, mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0)
    sink.bufferedAmount = MAX_PENDING + 1 // the drain read alice-0 and waits to send it
    const done = queue.drain()
    await settle()
    await store(mailbox, 'alice', 1)
    await queue.drain() // returns at once: the running drain reads again when it is done
    expect(queue.deliver(live('carol', 'live'))).toBe(true)
    sink.bufferedAmount = 0
    clock.advance(DRAIN_POLL_MS)
    await done
    expect(sink.sent).toEqual(['stored alice alice-0', 'stored alice alice-1', 'live carol live'])
  })

  it('stops when the connection goes while the drain waits for the socket: nothing more is sent, held frames are dropped, no timer is left', async () => {
    const { clock, mailbox, sink, queue, drained } = setup()
    for (let seq = 0; seq < 3; seq++) await store(mailbox, 'alice', seq)
    sink.bufferedAmount = MAX_PENDING + 1
    const done = queue.drain()
    await settle()
    expect(queue.deliver(live('carol', 'live'))).toBe(true)
    expect(clock.pending).toBe(1)
    sink.open = false
    queue.close()
    await done // resolves without the clock moving
    expect(clock.pending).toBe(0)
    expect(queue.draining).toBe(false)
    expect(sink.sent).toEqual([])
    expect(drained()).toBe(0)
    expect((await mailbox.read(BOB, undefined, 10)).length).toBe(3)
  })

  it('stops when the connection goes while the mailbox is being read, and sends nothing of what the read returns', async () => {
    const { mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0)
    const done = queue.drain()
    expect(queue.deliver(live('carol', 'live'))).toBe(true)
    sink.open = false
    queue.close()
    await done
    expect(sink.sent).toEqual([])
  })

  it('stops between two entries when the socket closes mid-page, and drops the live frames it held', async () => {
    /** A socket that closes right after its first frame. */
    class ClosingSink extends RecordingSink {
      override sendFrame(out: Uint8Array): void {
        super.sendFrame(out)
        this.open = false
      }
    }
    const { mailbox, sink, queue, drained, failures } = setup(new MemoryMailbox(), new ClosingSink())
    for (let seq = 0; seq < 3; seq++) await store(mailbox, 'alice', seq)
    const done = queue.drain()
    expect(queue.deliver(live('carol', 'live'))).toBe(true)
    await done
    expect(sink.sent).toEqual(['stored alice alice-0'])
    expect(drained()).toBe(1)
    expect(failures).toEqual([])
  })

  it('reports a mailbox failure, stops the drain, and still sends the live frames it held', async () => {
    const failing = new MemoryMailbox()
    const broken = Object.assign(Object.create(failing) as MemoryMailbox, {
      read: () => Promise.reject(new Error('disk gone')),
    })
    const { sink, queue, failures } = setup(broken)
    const done = queue.drain()
    expect(queue.deliver(live('carol', 'live'))).toBe(true)
    await done
    expect(failures.map((error) => (error as Error).message)).toEqual(['disk gone'])
    expect(sink.sent).toEqual(['live carol live'])
    expect(queue.draining).toBe(false)
  })

  it("redrain: sends again only the asked sender's messages and skips the mailbox still holds, past `after` in its epoch or of a newer epoch, at most `limit`, then says whether it stopped at the limit", async () => {
    const { clock, mailbox, sink, queue, drained } = setup()
    const older = makeEpoch(ManualClock.DEFAULT_START - 1000, 'olderE')
    await store(mailbox, 'alice', 7, { epoch: older })
    for (let seq = 0; seq < 6; seq++) {
      await store(mailbox, 'alice', seq, seq === 4 ? { expiresAt: clock.now() + 10 } : {})
      await store(mailbox, 'carol', seq)
    }
    await mailbox.put(BOB, { kind: 'ack', from: 'alice', epoch: EPOCH, seq: 9, id: '', size: 3, storedAt: 1 }, encoder.encode('ack-9'), LIMITS)
    await queue.drain()
    expect(sink.sent).toHaveLength(14)
    clock.advance(10)
    /** What one redrain sends: the frames' `from text`, then `more` from its answer. */
    const resent = async (request: Redrain): Promise<string[]> => {
      sink.sent.length = 0
      await queue.redrain(request)
      const answer = sink.sent.at(-1) ?? ''
      expect(answer).toMatch(/^control \{"t":"redrained"/)
      const { more } = JSON.parse(answer.slice('control '.length)) as { more: boolean }
      return [...sink.sent.slice(0, -1).map((line) => line.replace(/^stored alice /, '')), `more: ${more}`]
    }
    // Its older epoch's message is not sent: the receiver, following the newer one, would refuse it.
    expect(await resent({ from: 'alice', epoch: EPOCH, after: 1, limit: 3 })).toEqual(['alice-2', 'alice-3', 'skip:4', 'more: true'])
    // The ack was sent once, by the drain, and removed: never again. Seq 4 expired meanwhile: its skip.
    expect(await resent({ from: 'alice', epoch: EPOCH, after: 3, limit: 3 })).toEqual(['skip:4', 'alice-5', 'more: false'])
    // Asked from the older epoch, the newer epoch's come after it.
    expect(await resent({ from: 'alice', epoch: older, after: 6, limit: 3 })).toEqual(['alice-7', 'alice-0', 'alice-1', 'more: true'])
    expect(await resent({ from: 'alice', epoch: older, after: 7, limit: 3 })).toEqual(['alice-0', 'alice-1', 'alice-2', 'more: true'])
    expect(await resent({ from: 'alice', epoch: EPOCH, after: 5, limit: 3 })).toEqual(['more: false'])
    expect(await resent({ from: 'dave', epoch: EPOCH, after: -1, limit: 3 })).toEqual(['more: false'])
    expect(drained()).toBe(14 + 3 + 2 + 3 + 3)
    // The drain's own place is unchanged: new mail goes out once.
    await store(mailbox, 'carol', 6)
    sink.sent.length = 0
    await queue.drain()
    expect(sink.sent).toEqual(['stored carol carol-6'])
  })

  it('redrain: a receiver asking a window at a time reads the mailbox once over, not from its first entry each time', async () => {
    /** Counts the entries each read returns. */
    class CountingMailbox extends MemoryMailbox {
      entriesRead = 0
      override async read(to: string, after: string | undefined, limit: number): ReturnType<MemoryMailbox['read']> {
        const items = await super.read(to, after, limit)
        this.entriesRead += items.length
        return items
      }
    }
    const mailbox = new CountingMailbox()
    const { sink, queue } = setup(mailbox)
    const N = 2_000
    const WINDOW = 100
    for (let seq = 0; seq < 300; seq++) await store(mailbox, 'carol', seq)
    for (let seq = 0; seq < N; seq++) await store(mailbox, 'alice', seq)
    await queue.drain()
    mailbox.entriesRead = 0
    sink.sent.length = 0
    // As the receiver does: from what it got to, each time.
    for (let after = WINDOW - 1, more = true; more; after += WINDOW) {
      await queue.redrain({ from: 'alice', epoch: EPOCH, after, limit: WINDOW })
      more = sink.sent.at(-1) === `control ${JSON.stringify({ t: 'redrained', from: 'alice', more: true })}`
    }
    const frames = sink.sent.filter((line) => line.startsWith('stored'))
    expect(frames).toEqual(Array.from({ length: N - WINDOW }, (_, i) => `stored alice alice-${i + WINDOW}`))
    // The mailbox once over (and the last ask's empty read), where reading from the start each time is ~6 times that.
    expect(mailbox.entriesRead).toBeLessThanOrEqual(300 + N)
  })

  it('redrain: where a pass starts reading changes nothing it sends (property: asks mostly moving on, sometimes back, against a queue with no memory of earlier passes)', async () => {
    const older = makeEpoch(ManualClock.DEFAULT_START - 1000, 'olderE')
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ from: fc.constantFrom('alice', 'carol'), older: fc.boolean(), seq: fc.nat(40) }), { maxLength: 60 }),
        fc.array(fc.record({ newer: fc.boolean(), step: fc.integer({ min: -6, max: 8 }), limit: fc.integer({ min: 1, max: 12 }), mail: fc.nat(40) }), {
          minLength: 1,
          maxLength: 12,
        }),
        async (entries, asks) => {
          const mailbox = new MemoryMailbox()
          const put = (from: string, epoch: typeof EPOCH, seq: number): Promise<unknown> =>
            mailbox.put(BOB, record(from, seq, { epoch }), encoder.encode(`${from}-${epoch === older ? 'o' : 'n'}${seq}`), LIMITS)
          for (const entry of entries) await put(entry.from, entry.older ? older : EPOCH, entry.seq)
          const remembering = setup(mailbox)
          // Each queue sends the whole mailbox first, as at login; the redrains are compared.
          await remembering.queue.drain()
          let after = -1
          for (const ask of asks) {
            // Mostly moving on, as a receiver does; sometimes back, or to the older epoch.
            const epoch = ask.newer ? EPOCH : older
            after = Math.max(-1, after + ask.step)
            const request = { from: 'alice', epoch, after, limit: ask.limit }
            const fresh = setup(mailbox)
            await fresh.queue.drain()
            fresh.sink.sent.length = 0
            remembering.sink.sent.length = 0
            await remembering.queue.redrain(request)
            await fresh.queue.redrain(request)
            expect(remembering.sink.sent).toEqual(fresh.sink.sent)
            // New mail between asks (its drain aside).
            await put('alice', EPOCH, ask.mail)
            await remembering.queue.drain()
          }
        },
      ),
      { numRuns: 300, seed: 20261207 },
    )
  })

  it('redrain: asked during a drain, it goes after the drain (a later ask for the same sender replacing it), before the live frames held', async () => {
    const { mailbox, sink, queue } = setup()
    const stored = DRAIN_BATCH + 2
    for (let seq = 0; seq < stored; seq++) await store(mailbox, 'alice', seq)
    const done = queue.drain()
    expect(queue.deliver(live('carol', 'live-0'))).toBe(true)
    void queue.redrain({ from: 'alice', epoch: EPOCH, after: -1, limit: 2 })
    void queue.redrain({ from: 'alice', epoch: EPOCH, after: 5, limit: 2 })
    await done
    expect(sink.sent.slice(stored)).toEqual([
      'stored alice alice-6',
      'stored alice alice-7',
      `control ${JSON.stringify({ t: 'redrained', from: 'alice', more: true })}`,
      'live carol live-0',
    ])
    expect(sink.sent).toHaveLength(stored + 4)
  })

  it('redrain: the answer waits for a socket too far behind (it is not dropped as a slow control message), and nothing is sent once the connection goes', async () => {
    const { clock, mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0)
    await queue.drain()
    sink.bufferedAmount = MAX_PENDING + 1
    const done = queue.redrain({ from: 'alice', epoch: EPOCH, after: -1, limit: 5 })
    await settle()
    expect(sink.sent).toEqual(['stored alice alice-0'])
    sink.bufferedAmount = 0
    clock.advance(DRAIN_POLL_MS)
    await done
    expect(sink.sent).toEqual(['stored alice alice-0', 'stored alice alice-0', `control ${JSON.stringify({ t: 'redrained', from: 'alice', more: false })}`])
    sink.open = false
    await queue.redrain({ from: 'alice', epoch: EPOCH, after: -1, limit: 5 })
    expect(sink.sent).toHaveLength(3)
  })

  it(`redrain: asked for more than ${MAX_REDRAINS} senders at once, the whole mailbox goes again, as at login`, async () => {
    const { mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0)
    await store(mailbox, 'carol', 0)
    const done = queue.drain()
    for (let i = 0; i <= MAX_REDRAINS; i++) void queue.redrain({ from: `peer-${i}`, epoch: EPOCH, after: -1, limit: 1 })
    // Asked while the restart waits: answered by it too.
    void queue.redrain({ from: 'alice', epoch: EPOCH, after: -1, limit: 1 })
    await done
    // Every ask is answered (`more`: the restart had no limit), or its link would wait for the next login.
    const answers = [...Array.from({ length: MAX_REDRAINS + 1 }, (_, i) => `peer-${i}`), 'alice'].map(
      (from) => `control ${JSON.stringify({ t: 'redrained', from, more: true })}`,
    )
    expect(sink.sent).toEqual(['stored alice alice-0', 'stored carol carol-0', 'stored alice alice-0', 'stored carol carol-0', ...answers])
  })

  it(`redrain: a restart answers at most ${MAX_RESTART_ANSWERS} asks, and none once the connection goes`, async () => {
    const { mailbox, sink, queue } = setup()
    await store(mailbox, 'alice', 0)
    const done = queue.drain()
    for (let i = 0; i < MAX_RESTART_ANSWERS + 10; i++) void queue.redrain({ from: `peer-${i}`, epoch: EPOCH, after: -1, limit: 1 })
    await done
    const answered = sink.sent.filter((line) => line.startsWith('control'))
    expect(answered).toHaveLength(MAX_RESTART_ANSWERS)
    expect(sink.sent.filter((line) => line.startsWith('stored'))).toEqual(['stored alice alice-0', 'stored alice alice-0'])

    const closing = setup()
    await store(closing.mailbox, 'alice', 0)
    const draining = closing.queue.drain()
    for (let i = 0; i <= MAX_REDRAINS; i++) void closing.queue.redrain({ from: `peer-${i}`, epoch: EPOCH, after: -1, limit: 1 })
    closing.sink.open = false
    closing.queue.close()
    await draining
    expect(closing.sink.sent.filter((line) => line.startsWith('control'))).toEqual([])
  })
})
