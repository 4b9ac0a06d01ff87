import type { LinkContext } from './context.js'
import type { TimerHandle } from './clock.js'
import type { MsgFrame } from './frame.js'
import type { PeerId } from './ids.js'
import { RowCache } from './row-cache.js'
import { RttEstimator } from './rtt.js'
import type { OutboxRow } from './store.js'

/**
 * Where an outbound link stands:
 * - `stopped`: nothing is sent, no timer runs, nothing is kept in memory;
 * - `awaitingHello`: the peer is reachable; our hello is out, and nothing else
 *   is sent until its hello says where to resume (or the timer gives up waiting);
 * - `direct`: frames go to the reachable peer;
 * - `viaMailbox`: the peer is offline and the relay's mailbox stores frames for
 *   it; no hello (nobody answers).
 */
export type LinkMode = 'stopped' | 'awaitingHello' | 'direct' | 'viaMailbox'

/**
 * The sending side of the stream `local -> to`: a sliding window over the
 * outbox with go-back-N retransmission.
 *
 * Invariants:
 * - Only committed rows are sent (seq < committed nextSeq).
 * - At most `window` seqs past the cumulative ack are in flight.
 * - Seqs go on the wire in order; after a failed send nothing later is sent
 *   until the failed seq has been sent again.
 * - Rows live in memory only while the peer is online, in a bounded
 *   {@link RowCache}: rows committed in this session (so a fresh row is never
 *   read back) and pages read ahead of the cursor; the rest is paged in from
 *   the store. A fresh row is held only while the cache holds every row from
 *   the cursor up (`#holding`): once one does not fit, fresh rows wait in the
 *   store and come back in pages, in order, so the pump never reads a page to
 *   send one row of it.
 * - A seq the relay's mailbox holds (`stored`) is settled for sending: the
 *   timer never sends it again, and the window slides past it. Once per
 *   peer's hello and per change of its keys, stored rows whose contents were
 *   kept (sealed end to end) go to it once more, sealed under its current
 *   keys: what the mailbox holds may be sealed for keys it no longer has, or
 *   be lost. Released rows (contents dropped) are left to the mailbox. Only
 *   acks move `floor`.
 */
export class OutboundLink {
  #mode: LinkMode = 'stopped'
  #cursor = 0
  /** The highest ack heard in this session; the committed one may lag behind. */
  #ackedSeen = -1
  /** The highest contiguous `stored` receipt heard in this session. */
  #storedSeen = -1
  #sentUpTo = -1
  #highestSent = -1
  /** Stored rows with kept contents are being sent once more (after a hello or a change of keys), until the cursor passes them. */
  #replaying = false
  #pumping = false
  /** The cache holds every committed row from the cursor up: a fresh row joins it as it commits. */
  #holding = false
  #timer: TimerHandle | undefined
  #rto: number
  readonly #rtt: RttEstimator
  /**
   * First-transmission times of seqs in flight, for RTT samples (Karn: a resent seq is dropped). Its keys are in
   * ascending order: a seq is added only above the highest sent so far, and a Map keeps insertion order.
   */
  readonly #sentAt = new Map<number, number>()
  readonly #cache = new RowCache()
  /** Sealed bodies of cached rows (or their sealing under way), under the receiver's current keys; dropped when those change. */
  readonly #sealed = new Map<number, Uint8Array | Promise<void>>()
  /** When a repeated ack last sent the link back to its first unacked seq. */
  #wentBackAt = -Infinity
  /**
   * Seqs at or below it are sealed whole, whatever was acked: they went unanswered until a timeout. A sealed body may
   * leave out what the receiver should keep from an earlier one (a sender key header); if it did not keep it, only a
   * body with it opens.
   */
  #wholeUpTo = -1

  constructor(
    readonly to: PeerId,
    private readonly ctx: LinkContext,
  ) {
    this.#rtt = new RttEstimator(ctx.limits.retransmitMs, ctx.limits.maxRetransmitMs)
    this.#rto = this.#rtt.timeout
  }

  /** Where the link stands; only its methods move it. */
  get mode(): LinkMode {
    return this.#mode
  }

  /** Highest seq sent by this engine instance (`sent` status), -1 if none. */
  get highestSent(): number {
    return this.#highestSent
  }

  /** A new session: say hello, and wait for the peer's hello (or a timeout) before sending. */
  start(): void {
    this.#mode = 'awaitingHello'
    this.#replaying = false
    this.#dropCache()
    this.#sealed.clear()
    this.#sentAt.clear()
    this.#ackedSeen = -1
    this.#storedSeen = -1
    this.#rto = this.#rtt.timeout
    this.ctx.sendHello(this.to, false)
    this.#arm()
  }

  /** The peer is offline but the relay stores for it: send at once, no hello (nobody answers). */
  startStored(): void {
    this.#mode = 'viaMailbox'
    this.#dropCache()
    this.#sealed.clear()
    this.#sentAt.clear()
    this.#rto = this.#rtt.timeout
    this.resume(this.#settled() + 1)
  }

  /** The peer went away: forget the session, keep nothing in memory. */
  stop(): void {
    this.#mode = 'stopped'
    this.#replaying = false
    this.#dropCache()
    this.#sealed.clear()
    this.#disarm()
  }

  /**
   * The peer said where to resume (or waiting for it ended): every seq below `fromSeq` is stored on its side. With
   * `replayStored` (its hello), stored rows from there on with kept contents go to it once more.
   */
  resume(fromSeq: number, replayStored = false): void {
    if (this.#mode === 'awaitingHello') this.#mode = 'direct'
    this.#replaying = replayStored && this.ctx.sealing
    this.#cursor = fromSeq
    this.#sentUpTo = fromSeq - 1
    void this.pump()
  }

  /** A send committed; {@link pump} sends it (the engine pumps once per batch of sends). */
  enqueued(row: OutboxRow): void {
    if (this.#holding && this.#sending() && row.seq > this.#settled() && !this.#cache.set(row)) this.#holding = false
  }

  /**
   * The peer acknowledged every seq <= `upTo`. The window moves at once, before
   * the ack is committed here: the receiver has the messages durably, so
   * sending more is safe, and the sender's commit stays off the critical path.
   */
  acked(upTo: number): void {
    if (upTo <= this.#acked()) return
    this.#ackedSeen = upTo
    this.#cache.dropUpTo(upTo)
    this.#dropSealed(upTo)
    const sentAt = this.#sentAt.get(upTo)
    if (sentAt !== undefined) this.#rtt.sample(this.ctx.clock.now() - sentAt)
    this.#forgetSentUpTo(upTo)
    this.#rto = this.#rtt.timeout
    this.#rearm(upTo)
    void this.pump()
  }

  #forgetSentUpTo(upTo: number): void {
    // Ascending (see #sentAt): the scan stops at the first seq above `upTo`, so an ack costs what it settles, not every seq in flight.
    for (const seq of this.#sentAt.keys()) {
      if (seq > upTo) return
      this.#sentAt.delete(seq)
    }
  }

  /** An ack from the peer itself: it moves the window ({@link acked}) or, the same as the last one, tells of a gap. */
  heard(upTo: number): void {
    if (upTo === this.#acked()) this.#repeated()
    else this.acked(upTo)
  }

  /**
   * The relay stored `seq`, its record not committed yet: when it follows on from what is settled, the window moves
   * now (true). The caller commits the record of each receipt that moved it, in the order they came.
   */
  heardStored(seq: number): boolean {
    if (seq !== this.#settled() + 1) return false
    this.stored(seq)
    return true
  }

  /**
   * The relay's mailbox holds every seq <= `upTo`: never send them again. Also called once a receipt's record
   * committed, when the committed `storedUpTo` already says `upTo`: only what this link heard decides whether the
   * window moves.
   */
  stored(upTo: number): void {
    if (upTo <= Math.max(this.#acked(), this.#storedSeen)) return
    this.#storedSeen = upTo
    this.#cache.dropUpTo(upTo)
    this.#dropSealed(upTo)
    this.#forgetSentUpTo(upTo)
    this.#rearm(upTo)
    void this.pump()
  }

  /**
   * The receiver's keys changed (rotated, or a new identity accepted): what is sent from now on is sealed afresh, and
   * to a peer online what the mailbox holds (sealed under the old keys) goes once more, from the last ack.
   */
  rekeyed(): void {
    this.#sealed.clear()
    if (this.#mode !== 'direct' || !this.ctx.sealing) return
    this.#replaying = true
    this.#cursor = Math.min(this.#cursor, this.#acked() + 1)
  }

  /** Sends what the window allows. Safe to call any time; one pump runs at a time. */
  async pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    // Sealings dropped under way (the receiver's keys changed) are started again once per pump; a failing seal waits for the timer.
    let resealed = false
    try {
      while (this.#mayContinue()) {
        const stream = this.ctx.state.out.get(this.to)
        // Caught up (nothing committed yet, or nothing from the cursor up): fresh rows join the cache as they commit.
        if (stream === undefined) {
          this.#holding = true
          return
        }
        const acked = this.#acked()
        if (this.#replaying && this.#cursor > this.#settled()) this.#replaying = false
        const settled = this.#sendFloor()
        if (this.#cursor <= settled) this.#cursor = settled + 1
        if (this.#cursor >= stream.nextSeq) {
          this.#holding = true
          return
        }
        if (this.#cursor > settled + this.ctx.limits.window) return
        if (!this.ctx.keysReady(this.to)) {
          // Held until the receiver's keys are usable; the timer looks again (and asks the directory), backing off.
          this.#arm()
          return
        }
        const row = this.#cache.get(this.#cursor) ?? (await this.#load(this.#cursor))
        if (row === undefined) continue
        if (this.#released(row)) {
          this.#cursor = row.seq + 1
          continue
        }
        // A run of rows is sealed at once and then sent back to back, in one turn, as without encryption.
        if (this.ctx.sealing && !(this.#sealed.get(row.seq) instanceof Uint8Array)) {
          await this.#sealRun(row)
          if (!(this.#sealed.get(row.seq) instanceof Uint8Array) && !resealed) {
            resealed = true
            continue
          }
        }
        const sent = this.#send(row, acked + 1)
        // Most transports take a frame synchronously: no promise, no extra turn per frame.
        if (!(sent === true || (sent !== false && (await sent)))) return
      }
    } catch (error) {
      this.ctx.fail(error)
    } finally {
      this.#pumping = false
    }
  }

  /** The row of `seq` if this link holds it (sent, or about to be, in this session). */
  sentRow(seq: number): OutboxRow | undefined {
    return this.#cache.get(seq)
  }

  /** The row expired (committed): from now on only its seq is sent, as a skip. */
  markExpired(seq: number): void {
    const row = this.#cache.get(seq)
    if (row !== undefined) this.#cache.set({ ...row, contents: new Uint8Array(0), expired: true })
  }

  /** Closes for good: no timer survives. */
  dispose(): void {
    this.stop()
  }

  #acked(): number {
    return Math.max(this.#ackedSeen, this.ctx.state.out.get(this.to)?.ackedUpTo ?? -1)
  }

  /** Acked or held by the relay. */
  #settled(): number {
    return Math.max(this.#acked(), this.#storedSeen, this.ctx.state.out.get(this.to)?.storedUpTo ?? -1)
  }

  /** Nothing at or below it is sent (again); while replaying, stored rows go once more (see the class invariants). */
  #sendFloor(): number {
    return this.#replaying ? this.#acked() : this.#settled()
  }

  /** A stored row whose contents were released: only the mailbox has them. */
  #released(row: OutboxRow): boolean {
    return row.contents.byteLength === 0 && row.expired !== true && row.seq <= this.#settled()
  }

  #dropCache(): void {
    this.#cache.clear()
    this.#holding = false
  }

  /** Frames may be sent: the peer said where to resume, or the relay stores them for it. */
  #sending(): boolean {
    return this.#mode === 'direct' || this.#mode === 'viaMailbox'
  }

  #mayContinue(): boolean {
    return this.#sending() && !this.ctx.closed
  }

  /** Pages rows in from the store; `undefined` only when `fromSeq` was acked meanwhile. */
  async #load(fromSeq: number): Promise<OutboxRow | undefined> {
    const rows = await this.ctx.store.readOutbox(this.to, fromSeq, this.ctx.limits.window)
    const settled = this.#sendFloor()
    if (!this.#mayContinue()) return undefined
    let read: OutboxRow | undefined
    let held = true
    for (const row of rows) {
      if (row.seq <= settled) continue
      if (!this.#cache.set(row)) held = false
      if (row.seq === fromSeq) read = row
    }
    const top = rows[rows.length - 1]?.seq ?? -1
    // Every row committed so far from the cursor up is held now (one committed during the read past the page is not).
    if (held && top >= (this.ctx.state.out.get(this.to)?.nextSeq ?? Infinity) - 1) this.#holding = true
    // A full cache holds none of the page: the row read is used all the same.
    const row = this.#cache.get(fromSeq) ?? read
    if (row === undefined && fromSeq > settled) throw new Error(`outbox row ${this.to}#${fromSeq} is missing from the store`)
    return row
  }

  #send(row: OutboxRow, floor: number): boolean | Promise<boolean> {
    const expired = row.expired === true || (row.expiresAt !== undefined && row.expiresAt <= this.ctx.clock.now())
    if (expired && row.expired !== true) this.ctx.expire([row])
    if (!this.ctx.sealing || expired) return this.#transmit(row, toFrame(this.ctx, row, floor, expired), expired)
    const body = this.#sealed.get(row.seq)
    // Not sealed: its sealing failed (the receiver's keys went meanwhile); the timer tries again.
    if (!(body instanceof Uint8Array)) return this.#unsent()
    return this.#transmit(row, toFrame(this.ctx, row, floor, false, body), false)
  }

  /**
   * Seals `first` and the cached rows after it (up to {@link SEAL_AHEAD}) that are not sealed yet; resolves when all
   * are done, to be sent back to back. The next run (as many rows again) starts sealing too, not awaited: it seals
   * while this one is sent.
   */
  #sealRun(first: OutboxRow): Promise<unknown> {
    const run: Promise<unknown>[] = []
    for (let seq = first.seq, row: OutboxRow | undefined = first; row !== undefined && seq < first.seq + 2 * SEAL_AHEAD; row = this.#cache.get(++seq)) {
      if (row.expired !== true && !this.#sealed.has(seq)) this.#startSealing(row)
      const sealing = this.#sealed.get(seq)
      if (seq < first.seq + SEAL_AHEAD && sealing instanceof Promise) run.push(sealing)
    }
    return Promise.all(run)
  }

  /** Starts sealing `row`; its body is kept unless the sealing was dropped meanwhile. It never rejects: a failed one is forgotten. */
  #startSealing(row: OutboxRow): void {
    const at = row.seq
    const sealing = this.ctx.seal(row, row.seq <= this.#wholeUpTo ? -1 : this.#acked()).then(
      (body) => {
        if (this.#sealed.get(at) === sealing) this.#sealed.set(at, body)
      },
      () => {
        if (this.#sealed.get(at) === sealing) this.#sealed.delete(at)
      },
    )
    this.#sealed.set(at, sealing)
  }

  #dropSealed(upTo: number): void {
    for (const seq of this.#sealed.keys()) if (seq <= upTo) this.#sealed.delete(seq)
  }

  #transmit(row: OutboxRow, frame: MsgFrame, expired: boolean): boolean | Promise<boolean> {
    const at = this.ctx.clock.now()
    let pending: void | Promise<void>
    try {
      pending = this.ctx.transmit(frame)
    } catch {
      return this.#unsent()
    }
    if (pending === undefined) return this.#sent(row, at, expired)
    return pending.then(
      () => this.#sent(row, at, expired),
      () => this.#unsent(),
    )
  }

  // Go back to this seq; the timer retries with backoff, so a dead link never spins.
  #unsent(): false {
    this.#arm()
    return false
  }

  #sent(row: OutboxRow, at: number, expired: boolean): true {
    this.#cursor = row.seq + 1
    this.#sentUpTo = Math.max(this.#sentUpTo, row.seq)
    if (row.seq <= this.#highestSent) this.#sentAt.delete(row.seq)
    else {
      this.#sentAt.set(row.seq, at)
      this.#highestSent = row.seq
      // A stored row sent again to the peer stays `stored`.
      if (!expired && row.seq > this.#settled()) this.ctx.status(row.id, this.to, row.seq, 'sent')
    }
    this.#arm()
    return true
  }

  /**
   * The peer acked the last seq it acked again: it got a frame past one that was lost (a receiver acks again on a
   * gap). Go back to the gap now rather than wait for the timer, which may have backed off for up to
   * `maxRetransmitMs`; at most once per round-trip timeout, so never more often than the timer would at its base rate.
   */
  #repeated(): void {
    if (this.#mode !== 'direct' || this.#sentUpTo <= this.#acked()) return
    const now = this.ctx.clock.now()
    if (now - this.#wentBackAt < this.#rtt.timeout) return
    this.#wentBackAt = now
    // As the timer does, but a replay of stored rows under way goes on (see the class invariants).
    this.#cursor = this.#sendFloor() + 1
    this.#sentUpTo = this.#cursor - 1
    void this.pump()
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#mode === 'stopped' || this.ctx.closed) return
    this.#timer = this.ctx.clock.setTimeout(() => this.#timeout(), this.#rto)
  }

  /**
   * The timer starts afresh after progress up to `upTo`, and runs on while something is unanswered: frames sent past
   * it, or the hello (an ack can come before the peer's hello: one in flight to the previous incarnation, say; were
   * the timer stopped, a lost hello would leave the link waiting for good).
   */
  #rearm(upTo: number): void {
    this.#disarm()
    if (this.#sentUpTo > upTo || this.#mode === 'awaitingHello') this.#arm()
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.ctx.clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #timeout(): void {
    this.#timer = undefined
    if (this.#mode === 'stopped' || this.ctx.closed) return
    this.#rto = Math.min(this.#rto * 2, this.ctx.limits.maxRetransmitMs)
    if (this.#mode === 'awaitingHello') this.ctx.sendHello(this.to, false)
    if (this.ctx.sealing && this.#highestSent > this.#wholeUpTo) {
      this.#wholeUpTo = this.#highestSent
      this.#sealed.clear()
    }
    // Go back to the last ack (or mailbox receipt). This also stops waiting for a lost hello: resending is always safe.
    this.resume(this.#settled() + 1)
  }
}

/**
 * How many rows one run seals before they are sent, back to back in one turn (one pack through a relay). A run only
 * holds rows already queued, so a paced sender's runs stay short; a backlog's are long. 128 rather than 32: packs of
 * pipelined sends half as many, all CPU per message -5 % (A/B in one run).
 */
const SEAL_AHEAD = 128

/** The frame of `row`: its contents, or none (`skip`), or `sealed` (its content kind and contents, sealed). */
function toFrame(ctx: LinkContext, row: OutboxRow, floor: number, skip: boolean, sealed?: Uint8Array): MsgFrame {
  const frame: MsgFrame = {
    kind: 'msg',
    from: ctx.localId,
    to: row.to,
    epoch: ctx.state.meta.epoch,
    seq: row.seq,
    floor,
    id: row.id,
    contentKind: skip || sealed !== undefined ? 'b' : row.contentKind,
    contents: skip ? new Uint8Array(0) : (sealed ?? row.contents),
  }
  // The common shapes without conditional spreads (slow in V8; this runs per frame).
  if (row.expiresAt === undefined && !skip) return sealed === undefined ? frame : { ...frame, sealed: true }
  return {
    ...frame,
    ...(row.expiresAt !== undefined && { expiresAt: row.expiresAt }),
    ...(skip && { skip: true }),
    ...(sealed !== undefined && { sealed: true }),
  }
}
