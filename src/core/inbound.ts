import { decodeContents } from './contents.js'
import type { LinkContext } from './context.js'
import type { TimerHandle } from './clock.js'
import type { Draft } from './state.js'
import type { Intent } from './writer.js'
import type { Epoch, PeerId } from './ids.js'
import type { MsgFrame } from './frame.js'
import type { InboxRow, InStreamState } from './store.js'
import type { Message } from './api.js'

const PAGE = 64
/** Rows kept in memory after their commit, to hand over without reading them back. */
const MAX_FRESH = 1024
const MAX_PAST_EPOCHS = 4

/**
 * The receiving side of the stream `from -> local`.
 *
 * Invariants:
 * - A message is acked only after the transaction that stored it committed.
 * - `receivedUpTo` only grows within an epoch; a newer epoch of the sender
 *   (its store was wiped) restarts it, an older one is refused.
 * - Messages are handed to the application in inbox order, in batches of at
 *   most `processBatch`, and one is handed again only if it was not marked
 *   processed.
 * - Out-of-order frames wait in a memory buffer of at most `window` entries;
 *   they are not acked until stored, so losing the buffer loses nothing. So
 *   do frames a full inbox refused: once a mark makes room, they are stored
 *   from there, with no round trip to the sender.
 */
export class InboundLink {
  readonly #buffer = new Map<number, MsgFrame>()
  /** Rows this link committed and has not marked processed, by index (a bounded subset). */
  readonly #fresh = new Map<number, InboxRow>()
  /**
   * The frames of this link's last queued intent while it is a receive intent not built yet: later frames join it.
   * Any other intent this link queues ({@link #submit}) closes it: every frame is taken after what was queued before it came.
   */
  #batch: MsgFrame[] | undefined
  #delivering = false
  /** A full inbox refused frames of this sender since the last mark: the next mark that makes room takes them. */
  #heldBack = false
  /**
   * Frames were dropped that only the relay's mailbox may have (their sender never sends a stored seq again): from the
   * mailbox and past the window, or refused by a full inbox past the window: they are asked for again once they can be
   * kept ({@link #askAgain}).
   */
  #wanting = false
  /** A redrain was asked for and its answer has not come. */
  #asking = false
  /** Where the last redrain started: asked again only from further on (what did not open would come again, and again). */
  #askedAfter: { readonly epoch: Epoch; readonly after: number } | undefined
  #handedBelow = 0
  #retryTimer: TimerHandle | undefined
  #retryDelay: number

  constructor(
    readonly from: PeerId,
    private readonly ctx: LinkContext,
  ) {
    this.#retryDelay = ctx.limits.handlerRetryMs
  }

  /**
   * Stores a `msg` frame (and any buffered successors) in the writer's next
   * transaction, then acks; the frames that arrive before that transaction is
   * built share one intent (no promise per frame). False, and nothing queued,
   * for contents whose expiry has passed: they are refused outright (not
   * stored, not acked), the sender expires them and sends a skip instead, so a
   * message is never handed over after its deadline.
   */
  receive(frame: MsgFrame): boolean {
    // The clock is read only for a frame that can be overdue: this runs per frame.
    if (frame.expiresAt !== undefined && isOverdue(frame, this.ctx.clock.now())) return false
    if (this.#batch !== undefined) {
      this.#batch.push(frame)
      return true
    }
    // Taken in arrival order: all stored or, should one throw, none (none is acked). A batch the store refused for a
    // send's id builds the intent again, with the same frames.
    const frames = [frame]
    this.#batch = frames
    this.ctx.writer
      .submit((draft) => {
        if (this.#batch === frames) this.#batch = undefined
        const now = this.ctx.clock.now()
        const afters: (() => void)[] = []
        for (let at = 0; at < frames.length;) at = this.#take(draft, frames, at, now, afters)
        return () => {
          for (const after of afters) after()
          this.#askAgain()
        }
      })
      .then(
        () => this.ctx.received(this.from),
        (error: unknown) => {
          if (this.#batch === frames) this.#batch = undefined
          this.ctx.fail(error)
        },
      )
    return true
  }

  /**
   * Takes `frames[at]` and, when it is the next one of its stream, the frames after it in `frames` and in the buffer
   * that follow on from it; adds what to do once they are committed to `afters` and returns the index of the first
   * frame not taken.
   */
  #take(draft: Draft, frames: readonly MsgFrame[], at: number, now: number, afters: (() => void)[]): number {
    const frame = frames[at] as MsgFrame
    const stream = this.#follow(draft, frame.epoch, frame.floor)
    if (stream === undefined) afters.push(() => this.#refuse(frame.epoch))
    else if (frame.seq <= stream.receivedUpTo) afters.push(() => this.ctx.scheduleAck(this.from, 0))
    else if (frame.seq > stream.receivedUpTo + 1) {
      const full = this.#full(stream.nextIndex, stream.processedBelow)
      if (frame.seq <= stream.receivedUpTo + this.ctx.limits.window) this.#buffer.set(frame.seq, frame)
      else if (full) this.#wanting = true
      // A gap: the same ack again tells the sender to go back to it now; not when a full inbox made the gap.
      if (!full) afters.push(() => this.ctx.scheduleAck(this.from, 0))
      else this.#heldBack = true
    } else {
      const rows: InboxRow[] = []
      const next = this.#store(draft, stream, frames, at, now, rows)
      afters.push(() => {
        for (const row of rows) if (this.#fresh.size < MAX_FRESH) this.#fresh.set(row.index, row)
        // Nothing stored (a full inbox, an overdue frame): no ack, or the sender would go back as for a gap.
        if (rows.length > 0) this.ctx.scheduleAck(this.from, rows.length)
        this.kick()
      })
      return next
    }
    return at + 1
  }

  /** A hello from the sender: follow its epoch (also an older one it claims) and skip what it says is settled. */
  hello(epoch: Epoch, floor: number, claim: boolean): Promise<boolean> {
    let followed = false
    // Frames that arrive after it are taken after it: a claimed epoch is followed before its frames come.
    return this.#submit((draft) => {
      const stream = this.#follow(draft, epoch, floor, claim)
      followed = stream !== undefined
      return stream === undefined ? () => this.#refuse(epoch) : () => {}
    }).then(() => followed)
  }

  /** Queues an intent other than a receive batch; it closes the open batch, so frames that arrive later are taken after it. */
  #submit<T>(build: Intent<T>): Promise<T> {
    this.#batch = undefined
    return this.ctx.writer.submit(build)
  }

  /** Starts handing stored messages to the application, unless already doing so. */
  kick(): void {
    if (this.#delivering || this.#retryTimer !== undefined || this.ctx.closed || !this.ctx.hasHandlers()) return
    this.#delivering = true
    // A microtask first, so that every handler subscribed in this turn sees the first batch.
    queueMicrotask(() => void this.#deliver())
  }

  /**
   * The sender went away: drop what only memory held. Its next session resends from what its hello is told; what a
   * full inbox held back may have come from the relay's mailbox, so it is asked for again once there is room.
   */
  reset(): void {
    this.#buffer.clear()
    if (this.#heldBack) this.#wanting = true
    this.#heldBack = false
    this.#askAgain()
  }

  /** A frame the relay's mailbox sent was not kept (not even opened): it is asked for again ({@link #askAgain}). */
  dropped(): void {
    this.#wanting = true
  }

  /** The relay's mailbox came or went: a redrain asked for on the connection that ended is not answered; a login sends every message again. */
  mailboxChanged(): void {
    this.#asking = false
    this.#wanting = false
    this.#askedAfter = undefined
  }

  /** The relay sent what the last redrain asked for; `more`: it stopped at the limit. Heard after those frames are taken. */
  redrained(more: boolean): void {
    this.#asking = false
    if (more) this.#wanting = true
    void this.#submit(() => () => this.#askAgain())
  }

  /**
   * The engine closes cleanly: commits that the messages whose handlers
   * returned were processed, so that only a crash hands them over again.
   */
  flushProcessed(): Promise<boolean> {
    return this.#markProcessed()
  }

  /** Closes for good: no timer survives. */
  dispose(): void {
    this.reset()
    this.#fresh.clear()
    if (this.#retryTimer !== undefined) this.ctx.clock.clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
  }

  /**
   * The stream state to receive `epoch` with, written to the draft if it
   * changed; `undefined` if `epoch` is older than the one followed.
   */
  #follow(draft: Draft, epoch: Epoch, floor: number, claim = false): InStreamState | undefined {
    const current = draft.inStream(this.from)
    if (current !== undefined && epoch < current.epoch && !claim) return undefined
    let next: InStreamState
    if (current === undefined || epoch !== current.epoch) {
      this.#buffer.clear()
      const past = current === undefined ? [] : [{ epoch: current.epoch, receivedUpTo: current.receivedUpTo }, ...(current.past ?? [])]
      const before = past.find((p) => p.epoch === epoch)?.receivedUpTo ?? -1
      next = {
        from: this.from,
        epoch,
        receivedUpTo: Math.max(floor - 1, before),
        nextIndex: current?.nextIndex ?? 0,
        processedBelow: current?.processedBelow ?? 0,
        past: past.filter((p) => p.epoch !== epoch).slice(0, MAX_PAST_EPOCHS),
      }
    } else if (floor - 1 > current.receivedUpTo) {
      // Only after this store lost state (restored backup): what the sender settled is gone for good.
      next = { ...current, receivedUpTo: floor - 1 }
    } else {
      return current
    }
    for (const seq of this.#buffer.keys()) if (seq <= next.receivedUpTo) this.#buffer.delete(seq)
    draft.setIn(next)
    return next
  }

  /**
   * Writes `frames[at]` and its successors to the draft, from `frames` while they follow on and from the buffer, into
   * `rows`; returns the index in `frames` of the first frame not written. Taking a run of frames at once is as taking
   * each alone: each would have found the stream as the one before left it.
   */
  #store(draft: Draft, start: InStreamState, frames: readonly MsgFrame[], at: number, now: number, rows: InboxRow[]): number {
    // The stream's two counters move per frame; its state is written once, after the last.
    let { receivedUpTo, nextIndex } = start
    const buffer = this.#buffer
    let next = at
    let frame: MsgFrame | undefined = frames[at]
    let inFrames = true
    while (frame !== undefined && frame.epoch === start.epoch && !isOverdue(frame, now)) {
      // Backpressure: a full inbox stores (and acks) nothing more. The frame waits in the buffer for room (#resume).
      if (this.#full(nextIndex, start.processedBelow)) {
        buffer.set(frame.seq, frame)
        this.#heldBack = true
        break
      }
      if (inFrames) next++
      if (buffer.size > 0) buffer.delete(frame.seq)
      receivedUpTo = frame.seq
      if (frame.skip !== true) {
        const row = toRow(frame, nextIndex++, now)
        draft.write({ op: 'putInbox', row })
        rows.push(row)
      }
      const following = frames[next]
      inFrames = following?.seq === receivedUpTo + 1
      frame = inFrames ? following : buffer.size > 0 ? buffer.get(receivedUpTo + 1) : undefined
    }
    draft.setIn(receivedUpTo === start.receivedUpTo ? start : { ...start, receivedUpTo, nextIndex })
    return Math.max(next, at + 1)
  }

  #full(nextIndex: number, processedBelow: number): boolean {
    return nextIndex - processedBelow >= this.ctx.limits.maxInboxPerPeer
  }

  #refuse(epoch: Epoch): void {
    const expected = this.ctx.state.in.get(this.from)?.epoch
    if (expected === undefined || this.ctx.closed) return
    try {
      void Promise.resolve(this.ctx.transmit({ kind: 'reset', from: this.ctx.localId, to: this.from, epoch, expected })).catch(() => {})
    } catch {
      // Best effort: the sender hears it again on its next frame.
    }
  }

  async #deliver(): Promise<void> {
    this.#delivering = true
    try {
      this.#handedBelow = Math.max(this.#handedBelow, this.#processedBelow())
      // Until caught up: rows stored while a page was handed over count too.
      do {
        while (this.#mayDeliver()) {
          const rows = this.#freshFrom(this.#handedBelow) ?? (await this.ctx.store.readInbox(this.from, this.#handedBelow, PAGE))
          if (rows.length === 0) break
          if (!(await this.#handOverPage(rows))) return
        }
        // Caught up with fewer than processBatch unmarked: the mark may wait (a crash replays them, within the bound).
        this.#deferMark()
      } while (this.#mayDeliver())
    } catch (error) {
      this.ctx.fail(error)
      this.#retryLater()
    } finally {
      this.#delivering = false
    }
  }

  /**
   * Hands rows over in order, in batches that never take the messages handed
   * over but not marked processed past `processBatch`, marking them processed
   * whenever they reach it; false to stop.
   */
  async #handOverPage(rows: readonly InboxRow[]): Promise<boolean> {
    let next = 0
    while (next < rows.length) {
      if (!this.#mayDeliver()) return true
      if (rows[next]!.index < this.#handedBelow) {
        next++
        continue
      }
      const room = this.ctx.limits.processBatch - (this.#handedBelow - this.#processedBelow())
      const batch = rows.slice(next, next + Math.max(1, room))
      next += batch.length
      const handedTo = (handled: number): void => {
        if (handled > 0) this.#handedBelow = Math.max(this.#handedBelow, batch[handled - 1]!.index + 1)
      }
      const handled = await this.ctx.handOver(
        batch.map((row) => toMessage(row, this.ctx.localId)),
        handedTo,
      )
      handedTo(handled)
      if (handled > 0) this.#retryDelay = this.ctx.limits.handlerRetryMs
      if (handled < batch.length) {
        await this.#markProcessed()
        this.#retryLater()
        return false
      }
      const unmarked = this.#handedBelow - this.#processedBelow()
      if (unmarked >= this.ctx.limits.processBatch && !(await this.#markProcessed())) return false
    }
    return true
  }

  /** Up to a page of committed rows from `index` on, if memory holds the first. */
  #freshFrom(index: number): InboxRow[] | undefined {
    const rows: InboxRow[] = []
    for (let row = this.#fresh.get(index); row !== undefined && rows.length < PAGE; row = this.#fresh.get(row.index + 1)) rows.push(row)
    return rows.length > 0 ? rows : undefined
  }

  #mayDeliver(): boolean {
    const stream = this.ctx.state.in.get(this.from)
    return !this.ctx.closed && this.ctx.hasHandlers() && stream !== undefined && this.#handedBelow < stream.nextIndex
  }

  #processedBelow(): number {
    return this.ctx.state.in.get(this.from)?.processedBelow ?? 0
  }

  /**
   * Commits that every message handed over so far was processed, in one
   * transaction. Awaited before more than `processBatch` messages are
   * handed over unmarked, so a crash hands at most that many over again.
   */
  async #markProcessed(): Promise<boolean> {
    const upTo = this.#handedBelow
    if (upTo <= this.#processedBelow()) return true
    try {
      await this.#submit((draft) => this.#markIntent(draft, upTo))
      return true
    } catch {
      // The writer already reported it; hand over again from what the store says was processed.
      this.#handedBelow = this.#processedBelow()
      this.#retryLater()
      return false
    }
  }

  #deferMark(): void {
    if (this.#handedBelow <= this.#processedBelow()) return
    this.ctx.writer.defer(`mark ${this.from}`, (draft) => this.#markIntent(draft, this.#handedBelow))
    this.ctx.deferCommit()
  }

  /** Marks every message below `upTo` processed: deletes their rows and moves `processedBelow`. */
  #markIntent(draft: Draft, upTo: number): () => void {
    const stream = draft.inStream(this.from)
    if (stream === undefined || upTo <= stream.processedBelow) return () => {}
    draft.write({ op: 'deleteInbox', from: this.from, below: upTo })
    draft.setIn({ ...stream, processedBelow: upTo })
    return () => {
      for (const index of this.#fresh.keys()) if (index < upTo) this.#fresh.delete(index)
      if (this.#heldBack) this.#resume()
      this.#askAgain()
    }
  }

  /**
   * The inbox has room again after refusing frames: the next one, if the buffer holds it, is stored now (its
   * successors follow from the buffer); otherwise the last ack again sends the sender back to it. Without this the
   * stream would resume only at the sender's next timeout, which may have backed off to `maxRetransmitMs`.
   */
  #resume(): void {
    this.#heldBack = false
    const stream = this.ctx.state.in.get(this.from)
    if (stream === undefined || this.ctx.closed) return
    const next = this.#buffer.get(stream.receivedUpTo + 1)
    if (next === undefined || !this.receive(next)) this.ctx.scheduleAck(this.from, 0)
  }

  /**
   * Asks the relay's mailbox again for what was dropped, once it can be kept: the inbox has room, the buffer has
   * nothing to store next and nothing is being opened. A window's worth past the last message stored, which the
   * buffer (and the frames being opened) can hold should the inbox fill again; the answer says whether to ask for more.
   */
  #askAgain(): void {
    if (!this.#wanting || this.#asking || this.ctx.closed || this.ctx.opening(this.from)) return
    const stream = this.ctx.state.in.get(this.from)
    if (stream === undefined || this.#full(stream.nextIndex, stream.processedBelow) || this.#buffer.has(stream.receivedUpTo + 1)) return
    this.#wanting = false
    const { epoch, receivedUpTo: after } = stream
    const asked = this.#askedAfter
    if (asked?.epoch === epoch && asked.after === after) return
    this.#askedAfter = { epoch, after }
    this.#asking = this.ctx.redrain(this.from, epoch, after, this.ctx.limits.window)
  }

  #retryLater(): void {
    if (this.#retryTimer !== undefined || this.ctx.closed) return
    this.#retryTimer = this.ctx.clock.setTimeout(() => {
      this.#retryTimer = undefined
      this.kick()
    }, this.#retryDelay)
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.ctx.limits.maxRetransmitMs)
  }
}

function isOverdue(frame: MsgFrame, now: number): boolean {
  return frame.skip !== true && frame.expiresAt !== undefined && frame.expiresAt <= now
}

function toRow(frame: MsgFrame, index: number, receivedAt: number): InboxRow {
  return {
    from: frame.from,
    index,
    id: frame.id,
    epoch: frame.epoch,
    seq: frame.seq,
    contentKind: frame.contentKind,
    contents: frame.contents,
    receivedAt,
  }
}

function toMessage(row: InboxRow, to: PeerId): Message {
  const decoded = decodeContents(row.contentKind, row.contents)
  // Frames are validated before they are stored, so this only trips on a corrupted store.
  if (decoded === undefined) throw new Error(`inbox row ${row.from}#${row.index} has undecodable contents`)
  return { id: row.id, from: row.from, to, seq: row.seq, epoch: row.epoch, contents: decoded.value }
}
