import type { ContentKind } from '../core/contents.js'
import type { Epoch, MessageId, PeerId } from '../core/ids.js'
import type { InboxRow } from '../core/store.js'
import { unpackContents, packContents } from './packed-contents.js'

/** One received message inside a {@link RowsInboxChunk}: its stream and index are the chunk's. */
export type ChunkedRow = Omit<InboxRow, 'from' | 'index'>

/**
 * Consecutive inbox rows of one stream in one IndexedDB record: IndexedDB
 * spends far more per record than per byte, so a commit of 50 received
 * messages writes one record, not 50. Keyed `[from, index]` with `index` the
 * last row's, so that a range of keys below `n` holds exactly the records
 * whose every row is below `n`.
 *
 * Its rows are stored by column (schema 8), as an outbox chunk's are (see
 * `OutboxChunk`): a tenth of the structured clone's work of row objects.
 */
export interface InboxChunk {
  readonly from: PeerId
  /** The last row's index (the key). */
  readonly index: number
  /** The first row's index: the rows are `first`, `first + 1`, ... `index`. */
  readonly first: number
  readonly id: readonly string[]
  /** Every row's epoch (a chunk whose rows' epochs differ is stored by row). */
  readonly epoch: Epoch
  readonly seq: readonly number[]
  /** Each row's content kind, one character per row. */
  readonly kinds: string
  readonly receivedAt: readonly number[]
  /** Each row's contents length: its bytes follow the previous row's in `bytes`. */
  readonly lengths: readonly number[]
  readonly bytes: Uint8Array
}

/** A chunk of schema 5 to 7, its rows stored as objects. Still read; still written for rows of two epochs. */
export interface RowsInboxChunk {
  readonly from: PeerId
  readonly index: number
  readonly first: number
  readonly rows: readonly ChunkedRow[]
}

/** An inbox record: a chunk (by column, or of rows), or one row as stores before chunks wrote it (a chunk of one). */
export type StoredInbox = InboxChunk | RowsInboxChunk | InboxRow

/**
 * The chunk of `rows`: consecutive indexes of one stream, ascending, at least one. Their contents are copied into
 * the chunk's one buffer, or (rows of two epochs) given by `bytes` (e.g. a copy of a partial view).
 */
export function chunkOf(rows: readonly [InboxRow, ...InboxRow[]], bytes: (contents: Uint8Array) => Uint8Array): InboxChunk | RowsInboxChunk {
  const head = rows[0]
  const key = { from: head.from, index: head.index + rows.length - 1, first: head.index }
  if (rows.some((row) => row.epoch !== head.epoch)) {
    return {
      ...key,
      rows: rows.map(({ id, epoch, seq, contentKind, contents, receivedAt }) => ({ id, epoch, seq, contentKind, contents: bytes(contents), receivedAt })),
    }
  }
  return {
    ...key,
    id: rows.map((row) => row.id),
    epoch: head.epoch,
    seq: rows.map((row) => row.seq),
    kinds: rows.map((row) => row.contentKind).join(''),
    receivedAt: rows.map((row) => row.receivedAt),
    ...packContents(rows),
  }
}

/** The first row's index of a record. */
export function firstOf(stored: StoredInbox): number {
  return 'first' in stored ? stored.first : stored.index
}

/**
 * The rows of a record at or above `fromIndex`, ascending. A chunk's row contents are copies of their own: they are
 * handed to the page, and a view would take the whole chunk's buffer with it.
 */
export function rowsOf(stored: StoredInbox, fromIndex = -Infinity): InboxRow[] {
  if (!('first' in stored)) return stored.index >= fromIndex ? [stored] : []
  const { from, first } = stored
  const skip = Math.max(0, fromIndex - first)
  if ('rows' in stored) return stored.rows.slice(skip).map((row, i) => ({ from, index: first + skip + i, ...row }))
  return unpackContents(stored)
    .slice(skip)
    .map((contents, k): InboxRow => {
      const i = skip + k
      return {
        from,
        index: first + i,
        id: stored.id[i] as MessageId,
        epoch: stored.epoch,
        seq: stored.seq[i] as number,
        contentKind: stored.kinds[i] as ContentKind,
        contents: contents.slice(),
        receivedAt: stored.receivedAt[i] as number,
      }
    })
}
