import type { ContentKind } from './contents.js'
import type { Epoch, MessageId, PeerId } from './ids.js'

/** Identity of the local store: created once, when the store is first initialised. */
export interface StoreMeta {
  readonly epoch: Epoch
  readonly createdAt: number
}

/** Sender-side counters of the stream `local -> to`. */
export interface OutStreamState {
  readonly to: PeerId
  /**
   * The seq the next `send()` gets. A commit that queues rows of the stream
   * may leave this op out when `nextSeq` is the only field it changes, to one
   * above the highest row it queues: a store's snapshot gives it as
   * {@link impliedOutStream} does.
   */
  readonly nextSeq: number
  /** Every seq <= `ackedUpTo` is acknowledged (or abandoned) and gone from the outbox; -1 if none. */
  readonly ackedUpTo: number
  /**
   * Every seq <= `storedUpTo` is held by the relay's mailbox (or given up with
   * a skip held in its place): it is not sent again. Absent: none.
   */
  readonly storedUpTo?: number
}

/**
 * Receiver-side counters of the stream `from -> local`. Inbox rows get a local
 * `index` of their own so that a sender's new epoch (its seqs restart) keeps
 * the order of what is already stored.
 */
export interface InStreamState {
  readonly from: PeerId
  /** The sender epoch this stream follows. */
  readonly epoch: Epoch
  /** Highest contiguous seq stored in `epoch`; -1 if none. */
  readonly receivedUpTo: number
  /** The index the next stored message gets. */
  readonly nextIndex: number
  /** Every inbox index < `processedBelow` has been handed over and removed. */
  readonly processedBelow: number
  /**
   * The last few epochs followed before `epoch`, with how far each got, so that
   * going back to one of them (a late frame, then a `claim`) never accepts a
   * seq twice. At most 4, newest first.
   */
  readonly past?: readonly { readonly epoch: Epoch; readonly receivedUpTo: number }[]
}

/** A message waiting for its receiver's acknowledgement. */
export interface OutboxRow {
  readonly to: PeerId
  readonly seq: number
  readonly id: MessageId
  readonly contentKind: ContentKind
  /** Empty once expired. */
  readonly contents: Uint8Array
  readonly createdAt: number
  readonly expiresAt?: number
  /** Set when the message expired: only its seq is still sent, as a skip. */
  readonly expired?: true
  /** Set (with `expired`) when the relay's mailbox gave up on it: why. */
  readonly failed?: string
}

/** A received message waiting to be handed to the application. */
export interface InboxRow {
  readonly from: PeerId
  readonly index: number
  readonly id: MessageId
  readonly epoch: Epoch
  readonly seq: number
  readonly contentKind: ContentKind
  readonly contents: Uint8Array
  readonly receivedAt: number
}

/** What became of a message that left the outbox. */
export interface Receipt {
  readonly id: MessageId
  readonly to: PeerId
  readonly seq: number
  readonly status: 'delivered' | 'expired' | 'failed'
  /** For `failed`: why. */
  readonly reason?: string
  readonly at: number
}

/** One write. A list of them is committed atomically by {@link PeerStore.commit}. */
export type StoreOp =
  | { readonly op: 'meta'; readonly meta: StoreMeta }
  | { readonly op: 'outStream'; readonly stream: OutStreamState }
  | { readonly op: 'inStream'; readonly stream: InStreamState }
  /**
   * Queues one row. The rows waiting on a stream are contiguous: the commit
   * fails unless `row.seq` is above the stream's acknowledged seqs and, while
   * rows wait, one above the highest of them, at that point of the commit.
   */
  | { readonly op: 'putOutbox'; readonly row: OutboxRow }
  /** Marks one outbox row expired: contents dropped, `expired` set (and `failed` to `reason`, if given). */
  | { readonly op: 'expire'; readonly to: PeerId; readonly seq: number; readonly reason?: string }
  /** Drops the contents of one outbox row (the relay holds the message); the row stays for its receipt. */
  | { readonly op: 'release'; readonly to: PeerId; readonly seq: number }
  /**
   * Settles the outbox rows of `to` with seq <= upTo: each leaves the outbox
   * and becomes its receipt (what became of it, and when). A receipt keeps its
   * id taken until it is pruned. The stream is then settled up to the highest
   * row the ack found: no row is ever queued at or below it again (a commit
   * doing so fails), while rows queued later above it wait as usual.
   */
  | {
      readonly op: 'ack'
      readonly to: PeerId
      readonly upTo: number
      readonly at: number
    }
  /**
   * Stores one received row. A stream's rows are contiguous: the commit fails
   * unless `row.index` is one above the highest index of `row.from` stored at
   * that point of the commit (any index while it has none).
   */
  | { readonly op: 'putInbox'; readonly row: InboxRow }
  /** Removes every inbox row of `from` whose index is below `below` (processed messages). */
  | { readonly op: 'deleteInbox'; readonly from: PeerId; readonly below: number }
  /** Removes receipts written before `before`. */
  | { readonly op: 'pruneReceipts'; readonly before: number }
  /**
   * Keeps one record of the end-to-end cipher under `name` (its keys, pins and
   * counters): any structured-clonable value, CryptoKeys included. Only the
   * cipher reads them ({@link PeerStore.readKeys}).
   */
  | { readonly op: 'putKey'; readonly name: string; readonly value: unknown }
  | { readonly op: 'deleteKey'; readonly name: string }

/** Everything the engine keeps in memory, loaded once at open: O(peers), never O(messages). */
export interface StoreSnapshot {
  readonly meta: StoreMeta | undefined
  readonly outStreams: readonly OutStreamState[]
  readonly inStreams: readonly InStreamState[]
}

/** Where a message id was found. */
export type MessageLookup =
  | { readonly where: 'outbox'; readonly to: PeerId; readonly seq: number; readonly expired: boolean; readonly failed?: string }
  | { readonly where: 'receipt'; readonly receipt: Receipt }

/**
 * The persistent state of one local peer, opened by {@link Store.open}.
 *
 * Contract (checked by `storeContract` in `intersession/testing`):
 * - `commit` is atomic: all of its ops are applied, or none is.
 * - Commits are applied in the order they were called.
 * - Reads return copies; mutating them changes nothing stored.
 * - Once another handle is opened for the same identity, this one is fenced:
 *   every call rejects with `IlmError('STORE_FENCED')`. After `close()` every
 *   call rejects with `IlmError('CLOSED')`.
 * - A message id is queued at most once: a commit with a `putOutbox` whose
 *   id is taken at that point of the commit, its earlier ops applied (an
 *   outbox row, or a receipt an earlier `pruneReceipts` did not remove), or
 *   that an earlier `putOutbox` of the same commit puts, rejects with
 *   `IlmError('DUPLICATE_ID')` and applies nothing. The check runs inside the
 *   commit, so it holds whoever commits and whatever they looked up first.
 * - Failures reject with `IlmError('STORE_FAILED')` carrying the platform error as `cause`.
 */
export interface PeerStore {
  load(): Promise<StoreSnapshot>
  /** Applies the ops atomically; resolves with the receipts that `ack` ops wrote, in op order. */
  commit(ops: readonly StoreOp[]): Promise<readonly Receipt[]>
  /** Up to `limit` outbox rows of `to`, seq ascending, starting at the first seq >= `fromSeq`. */
  readOutbox(to: PeerId, fromSeq: number, limit: number): Promise<readonly OutboxRow[]>
  /** Up to `limit` inbox rows of `from`, index ascending, starting at the first index >= `fromIndex`. */
  readInbox(from: PeerId, fromIndex: number, limit: number): Promise<readonly InboxRow[]>
  /** Up to `limit` outbox rows (any stream) not yet expired whose `expiresAt` <= `now`. */
  readExpired(now: number, limit: number): Promise<readonly OutboxRow[]>
  /** The earliest `expiresAt` of an outbox row not yet expired. */
  nextExpiry(): Promise<number | undefined>
  findMessage(id: MessageId): Promise<MessageLookup | undefined>
  /** Rows in the outbox (including expired ones not yet skipped) and in the inbox. */
  count(): Promise<{ outbound: number; inbound: number }>
  /** Every record the end-to-end cipher keeps (see the `putKey` op), by name. */
  readKeys(): Promise<ReadonlyMap<string, unknown>>
  close(): Promise<void>
}

/** A place where peers keep their state: one {@link PeerStore} per local identity. */
export interface Store {
  /** Opens the state of `localId`, fencing any handle opened before for it. */
  open(localId: PeerId): Promise<PeerStore>
}

/**
 * A stream as a snapshot gives it: its stored record, and one above the
 * highest seq of its outbox rows if that is higher.
 */
export function impliedOutStream(stream: OutStreamState, topSeq: number | undefined): OutStreamState {
  return topSeq === undefined || topSeq < stream.nextSeq ? stream : { ...stream, nextSeq: topSeq + 1 }
}

/** The receipt an outbox row leaves when its seq is acknowledged: what became of the message. */
export function receiptOf(row: OutboxRow, at: number): Receipt {
  // Two literal shapes, not a conditional spread (slow in V8): this runs for every acknowledged message.
  if (row.failed !== undefined) return { id: row.id, to: row.to, seq: row.seq, status: 'failed', reason: row.failed, at }
  return { id: row.id, to: row.to, seq: row.seq, status: row.expired === true ? 'expired' : 'delivered', at }
}
