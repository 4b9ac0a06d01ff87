import type { ContentKind } from '../core/contents.js'
import type { PeerId } from '../core/ids.js'
import type { OutboxRow } from '../core/store.js'
import { ownBytes } from './own-bytes.js'
import { packContents, unpackContents } from './packed-contents.js'

/**
 * An outbox row as stored. `expiry` mirrors `expiresAt` only while the row can
 * still expire (not expired, not acknowledged), so that the `expiry` index
 * holds exactly the rows an expiry scan may return.
 */
export interface StoredOutboxRow extends OutboxRow {
  readonly expiry?: number
}

/**
 * Consecutive outbox rows of one stream in one IndexedDB record: IndexedDB
 * spends far more per record than per byte, so a commit of 50 sends writes
 * one record, not 50. Keyed `[to, seq]` with `seq` the last row's, so that a
 * range of keys up to `n` holds exactly the records whose every row is at or
 * below `n`. `id` and `expiry` list the rows' values for the `multiEntry`
 * indexes of the same names, as a single row's fields do for it.
 *
 * Its rows are stored by column (schema 8): a structured clone writes every
 * object's field names and every byte array's buffer on its own, so a chunk
 * of row objects cost a worker about 2 µs per row to write and as much to
 * read; columns and one buffer of all the contents cost a tenth of that.
 */
export interface OutboxChunk {
  readonly to: PeerId
  /** The last row's seq (the key). */
  readonly seq: number
  /** The first row's seq: the rows are `first`, `first + 1`, ... `seq`. */
  readonly first: number
  readonly id: readonly string[]
  /** The `expiry` of the rows that have one; absent when none has. */
  readonly expiry?: readonly number[]
  /** Each row's content kind, one character per row. */
  readonly kinds: string
  readonly createdAt: readonly number[]
  /** Each row's `expiresAt` (`null` for none); absent when no row has one. */
  readonly expiresAt?: readonly (number | null)[]
  /** Each row's contents length: its bytes follow the previous row's in `bytes`. */
  readonly lengths: readonly number[]
  readonly bytes: Uint8Array
}

/**
 * A chunk of schema 5 to 7, its rows stored as objects. Still read; still written for rows the columns have no place
 * for (expired or failed, or acknowledged with an `expiresAt`: rare, and each rewritten on its own).
 */
export interface RowsChunk {
  readonly to: PeerId
  readonly seq: number
  readonly first: number
  readonly rows: readonly StoredOutboxRow[]
  readonly id: readonly string[]
  readonly expiry?: readonly number[]
}

/** An outbox record: a chunk (by column, or of rows), or one row (as stores before chunks wrote every row). */
export type StoredOutbox = OutboxChunk | RowsChunk | StoredOutboxRow

/** `row` as stored on its own or in a chunk: its contents its own bytes (see `bytes`), `expiry` set as it can expire. */
export function toStored(row: OutboxRow, bytes: (contents: Uint8Array) => Uint8Array = (contents) => contents): StoredOutboxRow {
  const { expiry: _e, ...rest } = row as StoredOutboxRow
  const stored: StoredOutboxRow = { ...rest, contents: bytes(row.contents) }
  return row.expiresAt !== undefined && row.expired !== true ? { ...stored, expiry: row.expiresAt } : stored
}

export function fromStored(stored: StoredOutboxRow): OutboxRow {
  const { expiry: _e, ...row } = stored
  return row
}

/**
 * The record of `rows`: consecutive seqs of one stream, ascending, at least one (one row is stored as itself). A
 * chunk's contents are copied into its one buffer, so they need not be the rows' own bytes.
 */
export function recordOf(rows: readonly [StoredOutboxRow, ...StoredOutboxRow[]]): StoredOutbox {
  const [head] = rows
  return rows.length === 1 ? head : chunkOf(head.to, rows)
}

/** Rows decoded from a chunk by column, kept per chunk: a rewrite compares the rows it was given with the record's. */
const decoded = new WeakMap<OutboxChunk, readonly StoredOutboxRow[]>()

/**
 * The rows of a record, ascending. A chunk's row contents are views into its buffer: the engine copies what it
 * sends, and never posts an outbox row.
 */
export function outRowsOf(stored: StoredOutbox): readonly StoredOutboxRow[] {
  if ('rows' in stored) return stored.rows
  if (!('lengths' in stored)) return [stored]
  let rows = decoded.get(stored)
  if (rows === undefined) decoded.set(stored, (rows = columnRows(stored)))
  return rows
}

/** The first row's seq of a record. */
export function firstSeqOf(stored: StoredOutbox): number {
  return 'first' in stored ? stored.first : stored.seq
}

/** The record with `rows` (its rows, as many, some changed): `undefined` if none changed. */
export function rewritten(stored: StoredOutbox, rows: readonly StoredOutboxRow[]): StoredOutbox | undefined {
  const before = outRowsOf(stored)
  if (rows.every((row, i) => row === before[i])) return undefined
  return 'first' in stored ? chunkOf(stored.to, rows as [StoredOutboxRow, ...StoredOutboxRow[]]) : rows[0]
}

/** The record without its rows at or below `upTo` (some stay: `upTo` < its last seq). */
export function trimmedOutbox(stored: StoredOutbox, upTo: number): StoredOutbox {
  if (!('first' in stored) || upTo < stored.first) return stored
  return chunkOf(stored.to, outRowsOf(stored).slice(upTo + 1 - stored.first) as [StoredOutboxRow, ...StoredOutboxRow[]])
}

function chunkOf(to: PeerId, rows: readonly [StoredOutboxRow, ...StoredOutboxRow[]]): OutboxChunk | RowsChunk {
  const expiry = rows.flatMap((row) => (row.expiry === undefined ? [] : [row.expiry]))
  const head = { to, seq: rows[0].seq + rows.length - 1, first: rows[0].seq, id: rows.map((row) => row.id), ...(expiry.length > 0 && { expiry }) }
  // The columns keep no `expired` or `failed`, and derive `expiry` from `expiresAt`. Such rows' contents may be views
  // into a chunk read by column: stored as they are, each would take that whole buffer.
  if (rows.some((row) => row.expired === true || row.failed !== undefined || row.expiry !== row.expiresAt)) {
    return { ...head, rows: rows.map((row) => ({ ...row, contents: ownBytes(row.contents) })) }
  }
  return {
    ...head,
    kinds: rows.map((row) => row.contentKind).join(''),
    createdAt: rows.map((row) => row.createdAt),
    ...(expiry.length > 0 && { expiresAt: rows.map((row) => row.expiresAt ?? null) }),
    ...packContents(rows),
  }
}

function columnRows(chunk: OutboxChunk): StoredOutboxRow[] {
  return unpackContents(chunk).map((contents, i) => {
    const expiresAt = chunk.expiresAt?.[i] ?? undefined
    const row: StoredOutboxRow = {
      to: chunk.to,
      seq: chunk.first + i,
      id: chunk.id[i] as OutboxRow['id'],
      contentKind: chunk.kinds[i] as ContentKind,
      contents,
      createdAt: chunk.createdAt[i] as number,
    }
    return expiresAt === undefined ? row : { ...row, expiresAt, expiry: expiresAt }
  })
}
