import type { KeyDirectory } from '../key-directory.js'

/**
 * The relay's mailbox: frames held for peers that are offline (store and
 * forward). One ordered queue per destination; entries are opaque frame bytes
 * plus the little the relay needs to route, limit, acknowledge and expire
 * them. Entry keys are opaque and ordered within a destination (a
 * zero-padded counter in memory and LevelDB, a stream id on Redis Streams: do
 * not compare them as plain strings across implementations), so the same
 * interface maps onto `XADD` (put), `XRANGE` (read) and `XDEL` (ack, remove);
 * expiry turns messages into skips in place (a tombstone on Redis).
 */

/**
 * What an entry holds:
 * - `msg`: a message frame for the destination;
 * - `skip`: a message frame without contents (its seq will never come), kept in
 *   place of a message the relay gave up on, so the receiver moves past it;
 * - `ack`: an acknowledgement frame for the destination (a sender that was
 *   offline learns `delivered`); sent once, then removed;
 * - `notice`: a failure notice for the destination, about a message it sent to
 *   `from` (`reason` says why); sent once, then removed.
 */
export type MailboxEntryKind = 'msg' | 'skip' | 'ack' | 'notice'

/** The facts about one stored entry (everything but the frame bytes). */
export interface MailboxRecord {
  readonly kind: MailboxEntryKind
  /** The authenticated peer the frame came from (for `notice`: the peer the failed message was for). */
  readonly from: string
  /** The epoch of the stream the entry belongs to (for `ack` and `notice`: the destination's own epoch). */
  readonly epoch: string
  /** The message's seq (for `ack`: the acknowledged `upTo`). */
  readonly seq: number
  /** The message id (`''` for `ack`). */
  readonly id: string
  /** Frame bytes, as counted against `maxBytes`. */
  readonly size: number
  /** When the entry was stored (ms since the Unix epoch). */
  readonly storedAt: number
  /** `notice`, and a `skip` the relay made in place of a message: why the message failed. */
  readonly reason?: string
  /** `msg` only: the message's own expiry (ms since the Unix epoch); past it, it is drained as a skip. */
  readonly expiresAt?: number
}

/** A stored entry with its opaque, ordered key. */
export interface MailboxEntry extends MailboxRecord {
  readonly key: string
}

/** An entry with its frame, as read for draining. */
export interface MailboxItem {
  readonly entry: MailboxEntry
  readonly frame: Uint8Array
}

/** Entries and `msg` bytes, of one destination or of all (see {@link Mailbox.totals}). */
export interface MailboxTotals {
  readonly entries: number
  readonly bytes: number
}

/** Per-destination limits checked by {@link Mailbox.put}. */
export interface MailboxLimits {
  /** Entries per destination. `skip`, `ack` and `notice` entries may use up to twice as many. */
  readonly maxMessages: number
  /** Frame bytes of `msg` entries per destination. */
  readonly maxBytes: number
}

/** The outcome of {@link Mailbox.put}. */
export type PutResult =
  /** Stored as `entry`; or, `duplicate`, `entry` (a `msg` or `skip` of the same `(from, epoch, seq)`) was already there. */
  | { readonly ok: true; readonly duplicate: boolean; readonly entry: MailboxEntry }
  /** Refused: the destination's mailbox is full by count or by bytes. */
  | { readonly ok: false; readonly reason: 'full_messages' | 'full_bytes' }

/** Turns an expired `msg` entry into the frame of its `skip`. */
export type Tombstone = (to: string, entry: MailboxEntry) => Uint8Array

/**
 * Durable, ordered, per-destination storage of frames. Every method is async
 * and the operations on one destination apply in call order (a `read` sees
 * every `put` called before it). Implementations: `MemoryMailbox` (tests),
 * `LevelMailbox` (the embedded on-disk default), `RedisMailbox` (a cluster).
 * Each is also the relay's {@link KeyDirectory}, with the same durability
 * and reach as its entries.
 */
export interface Mailbox extends KeyDirectory {
  /** Appends an entry for `to` at the end of its queue, unless a limit refuses it. */
  put(to: string, record: MailboxRecord, frame: Uint8Array, limits: MailboxLimits): Promise<PutResult>
  /** Up to `limit` entries of `to` in order, starting after `after` (from the start when undefined). */
  read(to: string, after: string | undefined, limit: number): Promise<readonly MailboxItem[]>
  /** Removes the `msg` and `skip` entries of `to` from `from` in `epoch` with seq <= `upTo`; resolves with how many. */
  ack(to: string, from: string, epoch: string, upTo: number): Promise<number>
  /** Removes entries of `to` by key. */
  remove(to: string, keys: readonly string[]): Promise<void>
  /**
   * Expires every entry stored before `before`: a `msg` becomes the `skip` made
   * by `tombstone` (same place in the queue, `reason` `retention`), an `ack` is
   * removed; skips and notices never expire (the count limit bounds them).
   * Resolves with the expired `msg` entries, per destination.
   */
  expire(before: number, tombstone: Tombstone): Promise<readonly { readonly to: string; readonly entry: MailboxEntry }[]>
  /** Entries and `msg` bytes held for `to`. */
  size(to: string): Promise<{ readonly entries: number; readonly bytes: number }>
  /**
   * Entries and `msg` bytes held for every destination, for the metrics: the
   * sum of {@link Mailbox.size} over them. Synchronous when the mailbox keeps
   * counters with every change (memory, LevelDB), which the metrics read on
   * every scrape; a promise when it has to walk its storage (Redis: a scan of
   * every master), which the metrics read at most once per interval.
   */
  totals?(): MailboxTotals | Promise<MailboxTotals>
  /** Releases the storage; later calls reject. Idempotent. */
  close(): Promise<void>
}
