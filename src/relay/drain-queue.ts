import type { Clock, TimerHandle } from '../core/clock.js'
import type { PeerId } from '../core/ids.js'
import { envelope, type RelayControl } from '../protocol/relay.js'
import type { Mailbox, MailboxEntry } from './mailbox/mailbox.js'
import { notice, skipOf } from './mailbox-frames.js'

/** Where a {@link DrainQueue} sends: one peer's connection. */
export interface DrainSink {
  /** False once the connection is closed: nothing more is sent. */
  readonly open: boolean
  /** Bytes queued on the socket and not yet sent. */
  readonly bufferedAmount: number
  /** Sends an envelope. */
  sendFrame(envelope: Uint8Array): void
  /** Sends a control message the relay made (the sink may drop it when the socket is far behind). */
  sendControl(message: RelayControl): void
}

/** What a {@link DrainQueue} reports. */
export interface DrainHooks {
  /** One mailbox entry was sent. */
  drained(): void
  /** A mailbox operation failed: the drain stopped (the entries stay, for the next login). */
  failed(error: unknown): void
}

/** What a peer asks to be sent again: up to `limit` stored messages from `from` past `after` in `epoch`, or of a newer epoch. */
export interface Redrain {
  readonly from: string
  readonly epoch: string
  readonly after: number
  readonly limit: number
}

/**
 * What the last redrain of a sender read (keys `undefined`: the mailbox's start): asked past `after` in `epoch`, it
 * skipped everything up to `begin` and sent up to `end`, the highest message `lastSeq` of `lastEpoch`.
 */
interface ResumePoint {
  readonly epoch: string
  readonly after: number
  readonly begin: string | undefined
  readonly end: string | undefined
  readonly lastEpoch: string
  readonly lastSeq: number
}

/** Mailbox entries read per step of a drain. */
export const DRAIN_BATCH = 256
/** Senders whose messages a peer may have asked for again at once; past it, its whole mailbox goes again, as at login. */
export const MAX_REDRAINS = 256
/** Senders a restart (past {@link MAX_REDRAINS}) answers; an ask past it waits for the peer's next login. */
export const MAX_RESTART_ANSWERS = 4_096
/** How often a drain waiting for a socket that is too far behind looks again, in ms. */
export const DRAIN_POLL_MS = 10

/**
 * One connection's way out when the relay has a mailbox: it sends the peer
 * its mailbox, in order, before any live frame (per sender order holds
 * across the two), and never buffers more than `maxPendingBytes` on the
 * socket.
 *
 * While a drain runs, live frames for the peer wait here (at most
 * `maxPendingBytes` of them; beyond that {@link deliver} says the peer is too
 * slow) and go out, in order, right after the last drained entry. A drain
 * asked for while one runs (new mail) makes it read again when it is done.
 * Messages stay in the mailbox until acked; `ack` and `notice` entries are
 * sent once, then removed.
 *
 * A drain sends each entry once per connection. A peer that could not keep
 * some as they came (its inbox full, or more than its window at once) asks
 * for them again ({@link redrain}) once it can, a window at a time, so they
 * wait for its application, not for its next login.
 */
export class DrainQueue {
  readonly #peer: PeerId
  readonly #mailbox: Mailbox
  readonly #sink: DrainSink
  readonly #clock: Clock
  readonly #maxPendingBytes: number
  readonly #hooks: DrainHooks
  readonly #perSender: number | undefined
  #draining = false
  /** Told of new entries during a drain: read again when it ends. */
  #again = false
  /** Key of the last entry sent: a later drain goes on from there. */
  #after: string | undefined = undefined
  /** The next drain starts from the first entry again (too many redrains asked for). */
  #restart = false
  /** What the peer asked to be sent again, by sender (the last ask wins), sent after the drain. */
  readonly #redrains = new Map<string, Redrain>()
  /** Senders whose asks the pending restart answers (it sends their messages again with all the rest). */
  readonly #restartAnswers = new Set<string>()
  /** Per sender, what its last redrain read: the next one reads on from there ({@link #resumePoint}). */
  readonly #resumeAt = new Map<string, ResumePoint>()
  #held: Uint8Array[] = []
  #heldBytes = 0
  /** The drain is waiting for the socket to catch up. */
  #waiting: { readonly timer: TimerHandle; readonly resume: () => void } | undefined = undefined

  /**
   * `perSender`: the most messages of one sender the peer said it keeps as they come (its window), if it did. A drain
   * from the mailbox's first entry (a login's, a restart's) sends each sender's first `perSender` messages and answers
   * for a sender it stopped `redrained {more: true}`, so the peer asks for the rest once it can keep them: sent whole,
   * what is past the window would cross twice (dropped, then asked for).
   */
  constructor(peer: PeerId, mailbox: Mailbox, sink: DrainSink, clock: Clock, maxPendingBytes: number, hooks: DrainHooks, perSender?: number) {
    this.#peer = peer
    this.#mailbox = mailbox
    this.#sink = sink
    this.#clock = clock
    this.#maxPendingBytes = maxPendingBytes
    this.#hooks = hooks
    this.#perSender = perSender
  }

  /** Whether a drain is running (live frames wait behind it). */
  get draining(): boolean {
    return this.#draining
  }

  /** Sends a live envelope for the peer, or holds it behind a running drain; false when the peer is too far behind (not sent). */
  deliver(out: Uint8Array): boolean {
    if (this.#draining) {
      if (this.#heldBytes + out.byteLength > this.#maxPendingBytes) return false
      this.#held.push(out)
      this.#heldBytes += out.byteLength
      return true
    }
    if (this.#sink.bufferedAmount > this.#maxPendingBytes) return false
    this.#sink.sendFrame(out)
    return true
  }

  /**
   * Sends what the mailbox holds after the last entry sent, then the live
   * frames held meanwhile. Resolves when done, or when the connection closed;
   * never rejects (a mailbox failure goes to `hooks.failed`).
   */
  async drain(): Promise<void> {
    if (this.#draining) {
      this.#again = true
      return
    }
    this.#draining = true
    try {
      do {
        this.#again = false
        const answers = new Set(this.#restartAnswers)
        this.#restartAnswers.clear()
        if (this.#restart) [this.#restart, this.#after] = [false, undefined]
        for (const from of await this.#drainOnce()) answers.add(from)
        // Senders the pass stopped, and those a restart answers: the peer may drop what is past its window, so `more`
        // lets it ask on from where it got.
        for (const from of answers) if (this.#sink.open) await this.#answer(from, true)
        for (const [from, request] of this.#redrains) {
          this.#redrains.delete(from)
          if (this.#sink.open) await this.#answer(from, await this.#resend(request))
        }
      } while (this.#pending() && this.#sink.open)
    } catch (error) {
      this.#hooks.failed(error)
    } finally {
      this.#draining = false
      const held = this.#held
      this.#held = []
      this.#heldBytes = 0
      if (this.#sink.open) for (const out of held) this.#sink.sendFrame(out)
    }
  }

  /**
   * Sends `request`'s messages again, after the drain under way (a later ask
   * for the same sender replaces one not yet sent). Never rejects.
   */
  redrain(request: Redrain): Promise<void> {
    if (!this.#restart && this.#redrains.size >= MAX_REDRAINS && !this.#redrains.has(request.from)) {
      for (const from of this.#redrains.keys()) this.#restartAnswers.add(from)
      this.#redrains.clear()
      this.#restart = true
    }
    // Each asker waits for its answer before it asks again: one left unanswered would wait until the next login.
    if (!this.#restart) this.#redrains.set(request.from, request)
    else if (this.#restartAnswers.size < MAX_RESTART_ANSWERS) this.#restartAnswers.add(request.from)
    // A drain under way sends it when done.
    return this.#draining ? Promise.resolve() : this.drain()
  }

  /** The connection closed: held frames are dropped, and a drain waiting for the socket ends now. */
  close(): void {
    this.#redrains.clear()
    this.#restartAnswers.clear()
    this.#resumeAt.clear()
    this.#held = []
    this.#heldBytes = 0
    const waiting = this.#waiting
    if (waiting === undefined) return
    this.#waiting = undefined
    this.#clock.clearTimeout(waiting.timer)
    waiting.resume()
  }

  /** Sends the mailbox from after the last entry sent; resolves with the senders it stopped at `perSender` (from the first entry only). */
  async #drainOnce(): Promise<Set<string>> {
    const peer = this.#peer
    // Messages sent per sender, from the mailbox's first entry: a drain that goes on from an entry sent before (new
    // mail) cannot tell what the peer kept, so it sends all, as the live frames do.
    const limit = this.#after === undefined ? this.#perSender : undefined
    const counts = new Map<string, number>()
    const stopped = new Set<string>()
    for (;;) {
      const items = await this.#mailbox.read(peer, this.#after, DRAIN_BATCH)
      if (!this.#sink.open) return stopped
      const once: string[] = []
      for (const { entry, frame } of items) {
        const message = entry.kind !== 'notice' && entry.kind !== 'ack'
        const count = counts.get(entry.from) ?? 0
        if (message && limit !== undefined && count >= limit) stopped.add(entry.from)
        else if (!(await this.#send(entry, frame))) return stopped
        else if (message && limit !== undefined) counts.set(entry.from, count + 1)
        this.#after = entry.key
        if (!message) once.push(entry.key)
      }
      if (once.length > 0) await this.#mailbox.remove(peer, once)
      if (items.length < DRAIN_BATCH) return stopped
    }
  }

  /**
   * Sends up to `limit` of the messages (and skips) from `from` the mailbox still holds, in order, past `after` in
   * `epoch` or of a newer epoch; true when it stopped at `limit`.
   */
  async #resend({ from, epoch, after, limit }: Redrain): Promise<boolean> {
    let cursor = this.#resumePoint(from, epoch, after)
    const point = { epoch, after, begin: cursor, end: cursor, lastEpoch: '', lastSeq: -1 }
    let sent = 0
    try {
      for (;;) {
        // No more read than may be sent: the rest of a page would be read again by the next ask.
        const want = Math.min(DRAIN_BATCH, limit - sent)
        const items = await this.#mailbox.read(this.#peer, cursor, want)
        for (const { entry, frame } of items) {
          const before = cursor
          cursor = entry.key
          // An older epoch's would be refused (epochs order as strings: their creation time comes first, fixed-width).
          if (entry.from !== from || entry.kind === 'ack' || entry.kind === 'notice' || entry.epoch < epoch || (entry.epoch === epoch && entry.seq <= after))
            continue
          if (sent === 0) point.begin = before
          if (!(await this.#send(entry, frame))) return false
          if (entry.epoch > point.lastEpoch || (entry.epoch === point.lastEpoch && entry.seq > point.lastSeq))
            [point.lastEpoch, point.lastSeq] = [entry.epoch, entry.seq]
          if (++sent === limit) return true
        }
        if (items.length < want) return false
      }
    } finally {
      // Every entry up to the cursor was sent or skipped, unless the connection went (an entry not sent).
      if (this.#sink.open) {
        if (sent === 0) point.begin = cursor
        point.end = cursor
        this.#remember(from, point)
      }
    }
  }

  /**
   * Where a redrain of `from` past `after` in `epoch` may start reading. The receiver asks again only from further on
   * (its `receivedUpTo` never goes back, nor its sender's epoch), so every entry the last pass skipped is skipped
   * again, and, once the receiver is past the last pass's highest message, every entry that pass read: without this,
   * each pass would read the mailbox from its first entry, and a backlog asked for a window at a time would cost its
   * square in reads (of frames too).
   */
  #resumePoint(from: string, epoch: string, after: number): string | undefined {
    const point = this.#resumeAt.get(from)
    if (point === undefined || epoch < point.epoch || (epoch === point.epoch && after < point.after)) return undefined
    return epoch > point.lastEpoch || (epoch === point.lastEpoch && after >= point.lastSeq) ? point.end : point.begin
  }

  #remember(from: string, point: ResumePoint): void {
    // A hint only: a peer asking for ever more senders does not grow it without bound.
    if (this.#resumeAt.size >= MAX_RESTART_ANSWERS && !this.#resumeAt.has(from)) this.#resumeAt.clear()
    this.#resumeAt.set(from, point)
  }

  /** Tells the peer a redrain was sent, after its messages; not dropped for a slow socket: the peer waits for it to ask again. */
  async #answer(from: string, more: boolean): Promise<void> {
    await this.#caughtUp()
    if (this.#sink.open) this.#sink.sendControl({ t: 'redrained', from, more })
  }

  /** More to send: new mail, a restart, or redrains asked for meanwhile. */
  #pending(): boolean {
    return this.#again || this.#restart || this.#redrains.size > 0
  }

  /** Sends one entry once the socket has room; false when the connection closed first (nothing sent). */
  async #send(entry: MailboxEntry, frame: Uint8Array): Promise<boolean> {
    if (this.#sink.bufferedAmount > this.#maxPendingBytes) await this.#caughtUp()
    if (!this.#sink.open) return false
    this.#hooks.drained()
    // The receiver refuses contents past their expiry (so would wait forever for the seq): it gets the skip.
    const overdue = entry.expiresAt !== undefined && entry.expiresAt <= this.#clock.now()
    if (entry.kind === 'notice') this.#sink.sendControl(notice(entry))
    else this.#sink.sendFrame(envelope(entry.from, overdue ? skipOf(this.#peer, entry) : frame, true))
    return true
  }

  /** Resolves once the socket is at most `maxPendingBytes` behind, or closed. */
  async #caughtUp(): Promise<void> {
    while (this.#sink.open && this.#sink.bufferedAmount > this.#maxPendingBytes) {
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimeout(() => {
          this.#waiting = undefined
          resolve()
        }, DRAIN_POLL_MS)
        this.#waiting = { timer, resume: resolve }
      })
    }
  }
}
