import type { PeerId } from '../core/ids.js'
import type { InboxRow } from '../core/store.js'

/** One received message inside an {@link InboxChunk}: its stream and index are the chunk's. */
export type ChunkedRow = Omit<InboxRow, 'from' | 'index'>

/**
 * Consecutive inbox rows of one stream in one IndexedDB record: IndexedDB
 * spends far more per record than per byte, so a commit of 50 received
 * messages writes one record, not 50. Keyed `[from, index]` with `index` the
 * last row's, so that a range of keys below `n` holds exactly the records
 * whose every row is below `n`.
 */
export interface InboxChunk {
  readonly from: PeerId
  /** The last row's index (the key). */
  readonly index: number
  /** The first row's index: the rows are `first`, `first + 1`, ... `index`. */
  readonly first: number
  readonly rows: readonly ChunkedRow[]
}

/** An inbox record: a chunk, or one row as stores before chunks wrote it (a chunk of one). */
export type StoredInbox = InboxChunk | InboxRow

/**
 * The chunk of `rows`: consecutive indexes of one stream, ascending, at least
 * one. `bytes` gives the contents to keep (e.g. a copy of a partial view).
 */
export function chunkOf(rows: readonly [InboxRow, ...InboxRow[]], bytes: (contents: Uint8Array) => Uint8Array): InboxChunk {
  const head = rows[0]
  return {
    from: head.from,
    index: head.index + rows.length - 1,
    first: head.index,
    rows: rows.map(({ id, epoch, seq, contentKind, contents, receivedAt }) => ({ id, epoch, seq, contentKind, contents: bytes(contents), receivedAt })),
  }
}

/** The first row's index of a record. */
export function firstOf(stored: StoredInbox): number {
  return 'rows' in stored ? stored.first : stored.index
}

/** The rows of a record at or above `fromIndex`, ascending. */
export function rowsOf(stored: StoredInbox, fromIndex = -Infinity): InboxRow[] {
  if (!('rows' in stored)) return stored.index >= fromIndex ? [stored] : []
  const { from, first, rows } = stored
  const skip = Math.max(0, fromIndex - first)
  return rows.slice(skip).map((row, i) => ({ from, index: first + skip + i, ...row }))
}
