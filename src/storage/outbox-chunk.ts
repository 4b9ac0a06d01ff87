import type { PeerId } from '../core/ids.js'
import type { OutboxRow } from '../core/store.js'

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
 */
export interface OutboxChunk {
  readonly to: PeerId
  /** The last row's seq (the key). */
  readonly seq: number
  /** The first row's seq: the rows are `first`, `first + 1`, ... `seq`. */
  readonly first: number
  readonly rows: readonly StoredOutboxRow[]
  readonly id: readonly string[]
  /** The `expiry` of the rows that have one; absent when none has. */
  readonly expiry?: readonly number[]
}

/** An outbox record: a chunk, or one row (as stores before chunks wrote every row). */
export type StoredOutbox = OutboxChunk | StoredOutboxRow

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

/** The record of `rows`: consecutive seqs of one stream, ascending, at least one (one row is stored as itself). */
export function recordOf(rows: readonly [StoredOutboxRow, ...StoredOutboxRow[]]): StoredOutbox {
  const [head] = rows
  return rows.length === 1 ? head : chunkOf(head.to, rows)
}

/** The rows of a record, ascending. */
export function outRowsOf(stored: StoredOutbox): readonly StoredOutboxRow[] {
  return 'rows' in stored ? stored.rows : [stored]
}

/** The first row's seq of a record. */
export function firstSeqOf(stored: StoredOutbox): number {
  return 'rows' in stored ? stored.first : stored.seq
}

/** The record with `rows` (its rows, as many, some changed): `undefined` if none changed. */
export function rewritten(stored: StoredOutbox, rows: readonly StoredOutboxRow[]): StoredOutbox | undefined {
  const before = outRowsOf(stored)
  if (rows.every((row, i) => row === before[i])) return undefined
  return 'rows' in stored ? chunkOf(stored.to, rows as typeof stored.rows & [StoredOutboxRow]) : rows[0]
}

/** The record without its rows at or below `upTo` (some stay: `upTo` < its last seq). */
export function trimmedOutbox(stored: StoredOutbox, upTo: number): StoredOutbox {
  if (!('rows' in stored) || upTo < stored.first) return stored
  return chunkOf(stored.to, stored.rows.slice(upTo + 1 - stored.first) as [StoredOutboxRow, ...StoredOutboxRow[]])
}

function chunkOf(to: PeerId, rows: readonly [StoredOutboxRow, ...StoredOutboxRow[]]): OutboxChunk {
  const expiry = rows.flatMap((row) => (row.expiry === undefined ? [] : [row.expiry]))
  return {
    to,
    seq: rows[0].seq + rows.length - 1,
    first: rows[0].seq,
    rows,
    id: rows.map((row) => row.id),
    ...(expiry.length > 0 && { expiry }),
  }
}
