import { unwrap, wrap } from 'idb'
import type { DBSchema, IDBPDatabase, IDBPObjectStore, IDBPTransaction, StoreNames } from 'idb'
import { chunkOf, firstOf, rowsOf, type StoredInbox } from './inbox-chunk.js'
import { firstSeqOf, fromStored, outRowsOf, recordOf, rewritten, toStored, trimmedOutbox, type StoredOutbox, type StoredOutboxRow } from './outbox-chunk.js'
import { duplicateId, validateOps } from './op-validation.js'
import { ownBytes } from './own-bytes.js'
import { joinsRecord, RECORD_ROWS } from './record-size.js'
import { IlmError, isIlmError } from '../core/errors.js'
import { isPeerId } from '../core/ids.js'
import type { MessageId, PeerId } from '../core/ids.js'
import type {
  InboxRow,
  InStreamState,
  MessageLookup,
  OutboxRow,
  OutStreamState,
  PeerStore,
  Receipt,
  Store,
  StoreMeta,
  StoreOp,
  StoreSnapshot,
} from '../core/store.js'
import { impliedOutStream, receiptOf } from '../core/store.js'

/**
 * The schema version of the databases an {@link IndexedDBStore} creates. Bump
 * it together with a new step at the end of `upgrade`.
 */
export const SCHEMA_VERSION = 8

/** Options of an {@link IndexedDBStore} (and of {@link deleteDatabase}). */
export interface IndexedDBStoreOptions {
  /**
   * The IndexedDB factory; default `globalThis.indexedDB`, looked up at open.
   * It must be the implementation whose classes (`IDBRequest`, `IDBKeyRange`,
   * ...) are the realm's globals: `idb` recognises requests by `instanceof`.
   * In Node with fake-indexeddb, import `fake-indexeddb/auto` first, then pass
   * `new IDBFactory()` for an isolated set of databases.
   */
  readonly indexedDB?: IDBFactory | undefined
  /** The database name of a local identity; default `intersession:${localId}`. */
  readonly dbName?: ((localId: PeerId) => string) | undefined
  /** Rows fetched per request when a commit walks a range (`ack`, `pruneReceipts`); default 256. */
  readonly pageSize?: number | undefined
  /** How long an open waits while another connection blocks the upgrade before it rejects with `STORE_BLOCKED`; default 10000 ms. */
  readonly blockedTimeoutMs?: number | undefined
  /**
   * Durability of commit transactions; default `'strict'`: a commit resolves
   * only once flushed to disk, so `send()` survives an OS crash too.
   * `'relaxed'` is faster and still survives a crashed tab or browser.
   */
  readonly durability?: IDBTransactionDurability | undefined
}

/**
 * A {@link Store} in IndexedDB: one database per local identity, named by
 * `options.dbName`. Each {@link IndexedDBStore.open} bumps a generation
 * counter stored in the database, which fences every handle opened before it,
 * in this realm or in another tab or worker.
 *
 * @example
 * const ilm = await ILM.open({ store: new IndexedDBStore(), transport })
 */
export class IndexedDBStore implements Store {
  readonly #options: IndexedDBStoreOptions
  readonly #pageSize: number

  /**
   * @throws TypeError for options of the wrong type (a factory without `open`,
   * a `dbName` that is not a function, an unknown `durability`); RangeError for
   * a `pageSize` or `blockedTimeoutMs` that is not a positive integer.
   */
  constructor(options: IndexedDBStoreOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('IndexedDBStore: options must be an object')
    const { indexedDB, dbName, durability } = options
    if (indexedDB !== undefined && typeof (indexedDB as Partial<IDBFactory> | null)?.open !== 'function') {
      throw new TypeError('IndexedDBStore: indexedDB must be an IDBFactory')
    }
    if (dbName !== undefined && typeof dbName !== 'function') throw new TypeError('IndexedDBStore: dbName must be a function of the peer id')
    if (durability !== undefined && !['default', 'strict', 'relaxed'].includes(durability)) {
      throw new TypeError('IndexedDBStore: durability must be "strict", "relaxed" or "default"')
    }
    this.#options = { ...options }
    this.#pageSize = positiveInteger('pageSize', options.pageSize, DEFAULT_PAGE_SIZE)
    positiveInteger('blockedTimeoutMs', options.blockedTimeoutMs, DEFAULT_BLOCKED_TIMEOUT_MS)
  }

  /**
   * Opens (creating or upgrading) the database of `localId` and fences every
   * handle opened before. Rejects with `INVALID_PEER_ID`, `STORE_BLOCKED`
   * (an old connection keeps the upgrade from running), `QUOTA_EXCEEDED` or
   * `STORE_FAILED`.
   */
  async open(localId: PeerId): Promise<PeerStore> {
    if (!isPeerId(localId)) throw new IlmError('INVALID_PEER_ID', `not a valid peer id: ${String(localId)}`)
    const target = resolveTarget(this.#options, localId)
    const db = await connect(target, 'create')
    try {
      const generation = await claimGeneration(db, target.durability)
      return new IndexedDBPeerStore({ ...target, pageSize: this.#pageSize }, db, generation)
    } catch (error) {
      db.close()
      throw platformError(error, 'open')
    }
  }
}

/**
 * Deletes the database of `localId`, wiping that identity. Open handles on it
 * close their connections when asked (they are fenced afterwards). Rejects
 * with `STORE_BLOCKED` when a foreign connection still holds the database
 * after `blockedTimeoutMs`; the deletion then stays queued in the browser and
 * happens once that connection closes.
 */
export async function deleteDatabase(localId: PeerId, options: IndexedDBStoreOptions = {}): Promise<void> {
  if (!isPeerId(localId)) throw new IlmError('INVALID_PEER_ID', `not a valid peer id: ${String(localId)}`)
  const target = resolveTarget(options, localId)
  try {
    await settleRequest(target.factory.deleteDatabase(target.name), target, 'delete')
  } catch (error) {
    throw platformError(error, 'delete')
  }
}

/**
 * Whether the database of `localId` exists, found out without creating it:
 * from `indexedDB.databases()` where the factory has it, else by opening it
 * with no version and aborting the upgrade that a new database starts (which
 * leaves nothing behind). Rejects with `INVALID_PEER_ID` or `STORE_FAILED`.
 */
export async function databaseExists(localId: PeerId, options: IndexedDBStoreOptions = {}): Promise<boolean> {
  if (!isPeerId(localId)) throw new IlmError('INVALID_PEER_ID', `not a valid peer id: ${String(localId)}`)
  const { factory, name } = resolveTarget(options, localId)
  try {
    if (typeof factory.databases === 'function') return (await factory.databases()).some((db) => db.name === name)
    return await new Promise<boolean>((resolve, reject) => {
      const request = factory.open(name)
      let created = false
      request.addEventListener('upgradeneeded', () => {
        created = true
        request.transaction?.abort()
      })
      request.addEventListener('success', () => {
        request.result.close()
        resolve(true)
      })
      request.addEventListener('error', () => (created ? resolve(false) : reject(request.error ?? new Error('the open failed'))))
    })
  } catch (error) {
    throw platformError(error, 'open')
  }
}

// ---------------------------------------------------------------- schema

const META_KEY = 'identity'
const FENCE_KEY = 'generation'
const DEFAULT_PAGE_SIZE = 256
const DEFAULT_BLOCKED_TIMEOUT_MS = 10_000
/** How far apart (in indexes) a stream's processed marks delete the records and floors below them (see `deleteInbox`). */
const SWEEP_EVERY = 1024
/** Largest count `getAll` accepts (an unsigned long). */
const MAX_COUNT = 0xffff_ffff

/**
 * Contents of at most this many bytes stay in an acknowledged row until its
 * receipt is pruned: an ack then writes nothing per message. Larger contents
 * are dropped at the ack (one rewrite per such row), so that what the outbox
 * keeps for receipts stays a few hundred bytes per message at most.
 */
const KEPT_CONTENTS_BYTES = 256

/*
 * The outbox: a message keeps its row after it is acknowledged: the row is
 * its receipt, until pruned. So one unique `id` index covers queued messages
 * and receipts, and the database itself refuses to queue an id twice, at no
 * cost per send. Which rows are receipts is not written in them: every row of
 * a stream at or below the stream's {@link Settled} watermark is one. The rows
 * one commit queues on a stream are one record ({@link OutboxChunk}).
 */

/**
 * How far a stream is settled: its rows with seq <= `upTo` are receipts. It
 * only moves up, to the highest row an ack found (never past the rows there
 * are, so a later row above it is queued as usual); `at` is the time of the
 * latest {@link AckEntry}.
 */
interface Settled {
  readonly to: string
  readonly upTo: number
  readonly at: number
}

/**
 * One ack that moved a watermark: the receipts of its stream in (the entry
 * below, `upTo`] were settled at `at`. Times never go back within a stream
 * (an ack read from a clock set back takes the time of the one before), so
 * the entries older than a cutoff are a prefix of their stream: a prune
 * deletes them and their rows by range, without reading a row.
 */
interface AckEntry {
  readonly to: string
  readonly upTo: number
  readonly at: number
}

interface Schema extends DBSchema {
  /** `identity` -> {@link StoreMeta}; `generation` -> the fencing counter. */
  meta: { key: string; value: StoreMeta | number }
  outStreams: { key: string; value: OutStreamState }
  inStreams: { key: string; value: InStreamState }
  outbox: { key: [string, number]; value: StoredOutbox; indexes: { id: string; expiry: number } }
  inbox: { key: [string, number]; value: StoredInbox }
  /** Processed marks: each stream's rows below its highest are gone, also those still inside a record (see {@link deleteInbox}). */
  inboxFloors: { key: [string, number]; value: InboxFloor }
  settled: { key: string; value: Settled }
  acks: { key: [string, number]; value: AckEntry; indexes: { at: number } }
  /** The end-to-end cipher's records (keys, pins), by name; out-of-line keys. */
  keys: { key: string; value: unknown }
}

/** A processed mark of a stream: its rows below `below` are gone. */
interface InboxFloor {
  readonly from: string
  readonly below: number
}

/** Schema 1 kept receipts in a store of their own. */
interface SchemaV1 extends DBSchema {
  outbox: { key: [string, number]; value: OutboxRow; indexes: { id: string; expiry: number } }
  receipts: { key: string; value: Receipt; indexes: { at: number } }
}

/** Schema 2 marked every row: `pending` while it waited, `ackedAt` once it was a receipt (contents dropped). Schema 1 rows carry neither. */
interface StoredRowV2 extends StoredOutboxRow {
  readonly pending?: [string, number]
  readonly ackedAt?: number
}

type Db = IDBPDatabase<Schema>
/** An object store of an older schema, as the upgrade steps see it. */
type LooseStore = IDBPObjectStore<unknown, ArrayLike<string>, string, 'versionchange'>
type StoreName = StoreNames<Schema>
type Tx<Mode extends IDBTransactionMode> = IDBPTransaction<Schema, StoreName[], Mode>

/**
 * Brings the schema from `oldVersion` to `newVersion`, step by step. Steps
 * only ever get appended (`if (oldVersion < 3) { ... }`), so a database of
 * any older version reaches the current one. Steps that move rows run one
 * after the other inside the version change transaction: all of it lands, or
 * none.
 */
function upgrade(db: Db, oldVersion: number, _newVersion: number | null, tx: Tx<'versionchange'>): void {
  if (oldVersion < 1) {
    db.createObjectStore('meta')
    db.createObjectStore('outStreams', { keyPath: 'to' })
    db.createObjectStore('inStreams', { keyPath: 'from' })
    createOutboxIndexes(db.createObjectStore('outbox', { keyPath: ['to', 'seq'] }))
    db.createObjectStore('inbox', { keyPath: ['from', 'index'] })
    if (oldVersion === 0) {
      createWatermarkStores(db)
      db.createObjectStore('keys')
      createInboxFloors(db)
      return
    }
  }
  void (async () => {
    if (oldVersion < 2) await upgradeReceiptsIntoOutbox(db, tx)
    if (oldVersion < 3) await upgradeToWatermarks(db, tx)
    // Schema 4: the cipher's records. A store from before has no keys: the cipher makes them, as for a new store.
    if (oldVersion < 4) db.createObjectStore('keys')
    // Schema 5: a record may hold several rows (an OutboxChunk), so its ids and expiries index each.
    if (oldVersion < 5) {
      const outbox = tx.objectStore('outbox')
      outbox.deleteIndex('id')
      outbox.deleteIndex('expiry')
      createOutboxIndexes(outbox)
    }
    // Schema 6: processed marks, so that a mark inside an inbox record hides its rows below it instead of rewriting it.
    if (oldVersion < 6) createInboxFloors(db)
    // Schema 7 moves nothing: from it on, a stream's `nextSeq` may lag behind its outbox rows (see OutStreamState). Code
    // of schema 6 or before would take the lagging one as is and refuse every send to it, so it must not open such a
    // database: the version makes it fail at open (a tab of it still open is fenced), not later.
    // Schema 8 moves nothing either: from it on, chunks store their rows by column (OutboxChunk, InboxChunk), which
    // code of schema 7 or before would take for single rows. Chunks of rows as objects are still read.
  })().catch(() => abortQuietly(tx))
}

function createInboxFloors(db: Db): void {
  db.createObjectStore('inboxFloors', { keyPath: ['from', 'below'] })
}

function createOutboxIndexes(outbox: IDBPObjectStore<Schema, StoreName[], 'outbox', 'versionchange'>): void {
  outbox.createIndex('id', 'id', { unique: true, multiEntry: true })
  outbox.createIndex('expiry', 'expiry', { multiEntry: true })
}

function createWatermarkStores(db: Db): void {
  db.createObjectStore('settled', { keyPath: 'to' })
  db.createObjectStore('acks', { keyPath: ['to', 'upTo'] }).createIndex('at', 'at')
}

/** Schema 1 to 2: every receipt becomes an acknowledged outbox row (the next step reads it as such). */
async function upgradeReceiptsIntoOutbox(db: Db, tx: Tx<'versionchange'>): Promise<void> {
  const old = tx as unknown as IDBPTransaction<SchemaV1, ['outbox', 'receipts'], 'versionchange'>
  const outbox = tx.objectStore('outbox') as unknown as LooseStore
  for (const receipt of await old.objectStore('receipts').getAll()) issue(outbox.put(receiptRowV2(receipt)))
  db.deleteObjectStore('receipts' as never)
}

/**
 * Schema 2 to 3: the rows lose their `pending` and `ackedAt` marks (and those
 * indexes go); each stream's receipts, a prefix of its rows, become its
 * watermark, with one ack entry per run of receipts acknowledged at one time.
 */
async function upgradeToWatermarks(db: Db, tx: Tx<'versionchange'>): Promise<void> {
  const outbox = tx.objectStore('outbox') as unknown as LooseStore
  for (const name of ['pending', 'ackedAt']) if (outbox.indexNames.contains(name)) outbox.deleteIndex(name)
  createWatermarkStores(db)
  const settled = tx.objectStore('settled')
  const acks = tx.objectStore('acks')
  // The stream walked so far (its watermark and last ack time), and its current run of receipts acknowledged at one time.
  let stream: Settled | undefined
  let run: AckEntry | undefined
  const endRun = (): void => {
    if (run === undefined) return
    issue(acks.put(run))
    stream = run
    run = undefined
  }
  const endStream = (): void => {
    endRun()
    if (stream !== undefined) issue(settled.put(stream))
    stream = undefined
  }
  for (let cursor = await outbox.openCursor(); cursor !== null; cursor = await cursor.continue()) {
    const { pending: _p, ackedAt, ...row } = cursor.value as StoredRowV2
    if (stream !== undefined && stream.to !== row.to) endStream()
    stream ??= { to: row.to, upTo: -1, at: -Infinity }
    if (ackedAt !== undefined) {
      // Ack times never go back within a stream (see AckEntry).
      const at = Math.max(ackedAt, run?.at ?? stream.at)
      if (run !== undefined && run.at !== at) endRun()
      run = { to: row.to, upTo: row.seq, at }
    } else {
      endRun()
    }
    issue(cursor.update(row))
  }
  endStream()
}

// ---------------------------------------------------------------- connections

/** Where one identity's database is and how to talk to it. */
interface Target {
  readonly factory: IDBFactory
  readonly name: string
  readonly blockedTimeoutMs: number
  readonly durability: IDBTransactionDurability
}

interface HandleConfig extends Target {
  readonly pageSize: number
}

function resolveTarget(options: IndexedDBStoreOptions, localId: PeerId): Target {
  const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB
  if (factory === undefined || typeof IDBRequest === 'undefined' || typeof IDBKeyRange === 'undefined') {
    throw new IlmError('STORE_FAILED', 'IndexedDB is not available here (no indexedDB factory or IDB globals)', {
      cause: new Error('IndexedDB missing'),
    })
  }
  return {
    factory,
    name: options.dbName?.(localId) ?? `intersession:${localId}`,
    blockedTimeoutMs: positiveInteger('blockedTimeoutMs', options.blockedTimeoutMs, DEFAULT_BLOCKED_TIMEOUT_MS),
    durability: options.durability ?? 'strict',
  }
}

/**
 * Opens a connection at {@link SCHEMA_VERSION}. `existing` is a reconnect of
 * a live handle: finding no database means it was deleted meanwhile, so the
 * handle is fenced instead of recreating an empty database.
 */
async function connect(target: Target, mode: 'create' | 'existing'): Promise<Db> {
  let request: IDBOpenDBRequest
  try {
    request = target.factory.open(target.name, SCHEMA_VERSION)
  } catch (error) {
    // e.g. SecurityError: storage disabled (sandboxed frame, some private modes).
    throw platformError(error, 'open')
  }
  let gaveUp = false
  let deleted = false
  let failed: unknown
  request.addEventListener('upgradeneeded', (event) => {
    const tx = request.transaction as IDBTransaction
    deleted = mode === 'existing' && event.oldVersion === 0
    // Nobody waits for this connection any more, or it would recreate a deleted database.
    if (gaveUp || deleted) {
      tx.abort()
      return
    }
    const wrapped = wrap(tx) as unknown as Tx<'versionchange'>
    wrapped.done.catch(ignore)
    try {
      upgrade(wrap(request.result) as unknown as Db, event.oldVersion, event.newVersion, wrapped)
    } catch (error) {
      failed = error
      tx.abort()
    }
  })
  try {
    const raw = await settleRequest(request, target, 'open', () => (gaveUp = true))
    if (!(raw instanceof IDBDatabase)) {
      ;(raw as IDBDatabase).close()
      throw new TypeError('the indexedDB factory is not the implementation of the IDB globals')
    }
    // Never hold up an upgrade or a deletion elsewhere: step aside and reconnect on next use.
    raw.addEventListener('versionchange', () => raw.close())
    return wrap(raw) as unknown as Db
  } catch (error) {
    if (deleted) throw fencedError('the database was deleted')
    // A live handle finding a newer schema: a newer app version took over this identity for good.
    if (mode === 'existing' && (error as Error | null)?.name === 'VersionError') {
      throw fencedError('a newer schema version of the database was opened elsewhere')
    }
    throw platformError(failed ?? error, 'open')
  }
}

/**
 * Settles an open or delete request. A `blocked` request rejects with
 * `STORE_BLOCKED` after `blockedTimeoutMs`; a connection it still opens
 * afterwards is closed at once.
 */
function settleRequest<T>(request: IDBRequest<T>, target: Target, what: string, onGiveUp?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    let settled = false
    const settle = (): boolean => {
      clearTimeout(timer)
      return settled ? false : (settled = true)
    }
    request.addEventListener('success', () => {
      if (settle()) resolve(request.result)
      else if (request.result instanceof IDBDatabase) request.result.close()
    })
    request.addEventListener('error', () => settle() && reject(request.error))
    request.addEventListener('blocked', () => {
      timer ??= setTimeout(() => {
        if (!settle()) return
        onGiveUp?.()
        reject(new IlmError('STORE_BLOCKED', `${what} of ${target.name} is blocked by another open connection (an old tab?)`))
      }, target.blockedTimeoutMs)
    })
  })
}

/** Bumps the generation stored in the database: every handle opened before is fenced from now on. */
async function claimGeneration(db: Db, durability: IDBTransactionDurability): Promise<number> {
  const tx = db.transaction('meta', 'readwrite', { durability })
  tx.done.catch(ignore)
  const generation = generationOf(await tx.store.get(FENCE_KEY)) + 1
  tx.store.put(generation, FENCE_KEY).catch(ignore)
  await tx.done
  return generation
}

function generationOf(value: StoreMeta | number | undefined): number {
  return typeof value === 'number' ? value : 0
}

// ---------------------------------------------------------------- the handle

/** One open identity; see {@link PeerStore} for the contract. */
class IndexedDBPeerStore implements PeerStore {
  readonly #config: HandleConfig
  readonly #generation: number
  /** Undefined while the connection is lost; the next call reconnects. */
  #db: Db | undefined
  /** Set while calls queue behind a reconnect, so that transactions still start in call order. */
  #tail: Promise<void> | undefined
  #closed = false
  #fenced = false
  /**
   * Each stream's watermark as this handle's own committed transactions left
   * it (null: the stream has none), so that a commit need not read it. Sound
   * because only the unfenced handle's commits ever land: every commit reads
   * the generation first and aborts if another handle was opened since, so
   * while this one may write, nothing else changed `settled`. It is updated
   * only once a commit is done, used only by a commit started while no other
   * is in flight (one started earlier could still move a watermark), emptied
   * by a failed commit (whatever it got to apply was rolled back, but the
   * cause may be anything) and by a reconnect (the database may have been
   * deleted and created anew meanwhile).
   */
  readonly #watermarks = new Map<string, Watermark>()
  /**
   * Each inbox stream's highest stored index (-1: no row) as this handle's
   * committed transactions left it, kept and used as the watermarks are: a
   * commit that knows it checks a put's contiguity without a read.
   */
  readonly #inboxTops = new Map<string, number>()
  /** Each outbox stream's highest stored seq (-1: no row), kept and used as the inbox tops are. */
  readonly #outboxTops = new Map<string, number>()
  /** See `Commit.swept`. */
  readonly #swept = new Map<string, number>()
  /** Each inbox stream's bound on its highest floor (none above it), kept and used as the inbox tops are. */
  readonly #floorBounds = new Map<string, number>()
  /** Commits started and not yet done or failed. */
  #writing = 0

  constructor(config: HandleConfig, db: Db, generation: number) {
    this.#config = config
    this.#generation = generation
    this.#adopt(db)
  }

  // Every method starts its transaction synchronously (or queued in call
  // order behind a reconnect). IndexedDB runs transactions whose scopes
  // overlap in creation order, and every one includes `meta`: so commits
  // apply in call order and a read sees every commit called before it.

  async load(): Promise<StoreSnapshot> {
    return this.#read(['outStreams', 'inStreams', 'outbox'], async (tx) => {
      const [meta, written, inStreams] = await Promise.all([
        tx.objectStore('meta').get(META_KEY),
        tx.objectStore('outStreams').getAll(),
        tx.objectStore('inStreams').getAll(),
      ])
      // A send commit may leave `nextSeq` behind the rows it queued (see OutStreamState): the stream's highest record
      // at or above it says how far it got (a record's key is its last row's).
      const outbox = tx.objectStore('outbox')
      const outStreams = await Promise.all(
        written.map(async (stream) => {
          const above = await outbox.openKeyCursor(IDBKeyRange.bound([stream.to, stream.nextSeq], [stream.to, Infinity]), 'prev')
          return impliedOutStream(stream, above?.key[1])
        }),
      )
      return { meta: typeof meta === 'object' ? meta : undefined, outStreams, inStreams }
    })
  }

  async commit(ops: readonly StoreOp[]): Promise<readonly Receipt[]> {
    this.#enter()
    validateOps(ops)
    const ids = new Set<string>()
    for (const op of ops) {
      if (op.op !== 'putOutbox') continue
      if (ids.has(op.row.id)) throw duplicateId(op.row.id)
      ids.add(op.row.id)
    }
    return this.#run((db) => this.#write(db, ops))
  }

  async readOutbox(to: PeerId, fromSeq: number, limit: number): Promise<readonly OutboxRow[]> {
    return this.#read(['outbox', 'settled'], async (tx) => {
      if (limit < 1) return []
      const outbox = tx.objectStore('outbox')
      // Each record holds at least one row at or above `from`, so `limit` records hold enough, or all there are.
      const page = async (from: number): Promise<{ rows: StoredOutboxRow[]; end: boolean }> => {
        const records = await outbox.getAll(IDBKeyRange.bound([to, from], [to, Infinity]), count(limit))
        return { rows: records.flatMap(outRowsOf).filter((row) => row.seq >= from), end: records.length < limit }
      }
      // Callers read above the watermark: both requests go at once, and a page that started below it is read again.
      const [settled, first] = await Promise.all([tx.objectStore('settled').get(to), page(fromSeq)])
      const above = settled?.upTo ?? -1
      let rows = first.rows.filter((row) => row.seq > above)
      if (rows.length < limit && !first.end) rows = (await page(above + 1)).rows
      return rows.slice(0, limit).map(fromStored)
    })
  }

  async readInbox(from: PeerId, fromIndex: number, limit: number): Promise<readonly InboxRow[]> {
    return this.#read(['inbox', 'inboxFloors'], async (tx) => {
      if (limit < 1) return []
      // Records wholly below the floor may still be there: the read starts at the floor. Each record from there holds
      // a row at or above the start, so `limit` records hold enough.
      const start = Math.max(fromIndex, await floorOf(tx.objectStore('inboxFloors'), from))
      const records = await tx.objectStore('inbox').getAll(IDBKeyRange.bound([from, start], [from, Infinity]), count(limit))
      return records.flatMap((record) => rowsOf(record, start)).slice(0, limit)
    })
  }

  async readExpired(now: number, limit: number): Promise<readonly OutboxRow[]> {
    return this.#read(['outbox'], async (tx) => {
      if (limit < 1) return []
      // One entry per row due: a record comes once per row of it that is due.
      const records = new Map<string, StoredOutbox>()
      for (const record of await tx.objectStore('outbox').index('expiry').getAll(IDBKeyRange.upperBound(now), count(limit))) {
        records.set(JSON.stringify([record.to, record.seq]), record)
      }
      const due = [...records.values()].flatMap(outRowsOf).flatMap((row) => (row.expiry !== undefined && row.expiry <= now ? [{ row, at: row.expiry }] : []))
      return due
        .sort((a, b) => a.at - b.at)
        .slice(0, limit)
        .map(({ row }) => fromStored(row))
    })
  }

  async nextExpiry(): Promise<number | undefined> {
    return this.#read(['outbox'], async (tx) => {
      const cursor = await tx.objectStore('outbox').index('expiry').openKeyCursor()
      return cursor?.key
    })
  }

  async findMessage(id: MessageId): Promise<MessageLookup | undefined> {
    return this.#read<MessageLookup | undefined>(['outbox', 'settled', 'acks'], async (tx) => {
      const stored = await tx.objectStore('outbox').index('id').get(id)
      const found = stored === undefined ? undefined : outRowsOf(stored).find((row) => row.id === id)
      if (found === undefined) return undefined
      const row = fromStored(found)
      const settled = await tx.objectStore('settled').get(row.to)
      if (row.seq > (settled?.upTo ?? -1)) {
        return { where: 'outbox', to: row.to, seq: row.seq, expired: row.expired === true, ...(row.failed !== undefined && { failed: row.failed }) }
      }
      // The ack that settled it: the first entry of its stream at or above its seq.
      const entry = await tx.objectStore('acks').openCursor(IDBKeyRange.bound([row.to, row.seq], [row.to, Infinity]))
      if (entry === null) throw new Error(`no ack entry covers the receipt ${row.to}#${row.seq}`)
      return { where: 'receipt', receipt: receiptOf(row, entry.value.at) }
    })
  }

  async count(): Promise<{ outbound: number; inbound: number }> {
    return this.#read(['outbox', 'inbox', 'inboxFloors', 'settled'], async (tx) => {
      // Every stream with rows has its watermark entry. The rows above it are the outbox: contiguous, from the lowest to the highest.
      const outbox = tx.objectStore('outbox')
      const [streams, inbound] = await Promise.all([tx.objectStore('settled').getAll(), countInbox(tx.objectStore('inbox'), tx.objectStore('inboxFloors'))])
      const waiting = await Promise.all(
        streams.map(async ({ to, upTo }) => {
          const above = IDBKeyRange.bound([to, upTo], [to, Infinity], true)
          const [[lowest], highest] = await Promise.all([outbox.getAll(above, 1), outbox.openKeyCursor(above, 'prev')])
          if (lowest === undefined || highest === null) return 0
          return highest.key[1] - Math.max(upTo + 1, firstSeqOf(lowest)) + 1
        }),
      )
      return { outbound: waiting.reduce((sum, n) => sum + n, 0), inbound }
    })
  }

  async readKeys(): Promise<ReadonlyMap<string, unknown>> {
    return this.#read(['keys'], async (tx) => {
      const store = tx.objectStore('keys')
      const [names, values] = await Promise.all([store.getAllKeys(), store.getAll()])
      return new Map(names.map((name, i) => [name, values[i]]))
    })
  }

  /** Idempotent, and resolves also on a fenced handle. Transactions in flight still complete. */
  async close(): Promise<void> {
    this.#closed = true
    this.#drop(this.#db)
  }

  // ------------------------------------------------------------ plumbing

  #enter(): void {
    if (this.#closed) throw new IlmError('CLOSED', 'the store handle is closed')
    if (this.#fenced) throw fencedError()
  }

  /** Runs `work` on the connection, reconnecting first when it was lost. */
  #run<T>(work: (db: Db) => Promise<T>): Promise<T> {
    try {
      this.#enter()
    } catch (error) {
      return Promise.reject(error)
    }
    const db = this.#db
    if (db !== undefined && this.#tail === undefined) return this.#attempt(db, work)
    return this.#queue(work)
  }

  #queue<T>(work: (db: Db) => Promise<T>): Promise<T> {
    const previous = this.#tail ?? Promise.resolve()
    let release = (): void => {}
    const turn = new Promise<void>((resolve) => (release = resolve))
    this.#tail = turn
    return previous.then(async () => {
      try {
        this.#enter()
        const db = this.#db ?? (await this.#reconnect())
        // Starts the transaction before the next queued call gets its turn.
        return this.#attempt(db, work)
      } finally {
        if (this.#tail === turn) this.#tail = undefined
        release()
      }
    })
  }

  async #reconnect(): Promise<Db> {
    let db: Db | undefined
    try {
      db = await connect(this.#config, 'existing')
      const tx = db.transaction('meta', 'readonly')
      tx.done.catch(ignore)
      this.#checkFence(await tx.store.get(FENCE_KEY))
      this.#enter()
      this.#adopt(db)
      return db
    } catch (error) {
      db?.close()
      throw this.#failure(error, undefined)
    }
  }

  #attempt<T>(db: Db, work: (db: Db) => Promise<T>): Promise<T> {
    return work(db).catch((error: unknown) => {
      throw this.#failure(error, db)
    })
  }

  #adopt(db: Db): void {
    this.#db = db
    this.#watermarks.clear()
    this.#inboxTops.clear()
    this.#outboxTops.clear()
    this.#floorBounds.clear()
    const lost = (): void => this.#drop(db)
    db.addEventListener('versionchange', lost)
    db.addEventListener('close', lost)
  }

  /** Forgets and closes `db` if it is still the current connection; the next call reconnects. */
  #drop(db: Db | undefined): void {
    if (db === undefined || db !== this.#db) return
    this.#db = undefined
    db.close()
  }

  #failure(error: unknown, db: Db | undefined): IlmError {
    if (isIlmError(error, 'STORE_FENCED')) {
      this.#fenced = true
      this.#drop(this.#db)
    } else if (isConnectionLoss(error)) {
      this.#drop(db)
    }
    return platformError(error, 'call')
  }

  #checkFence(stored: StoreMeta | number | undefined): void {
    if (generationOf(stored) !== this.#generation) throw fencedError()
  }

  /** A readonly transaction over `meta` and `stores` that also checks the fence. */
  #read<T>(stores: readonly StoreName[], body: (tx: Tx<'readonly'>) => Promise<T>): Promise<T> {
    return this.#run(async (db) => {
      const tx = db.transaction(['meta', ...stores], 'readonly')
      tx.done.catch(ignore)
      const [stored, value] = await Promise.all([tx.objectStore('meta').get(FENCE_KEY), body(tx)])
      this.#checkFence(stored)
      return value
    })
  }

  /** The first id among the `putOutbox` ops that the store already holds, read after a refused commit. */
  async #takenId(db: Db, ops: readonly StoreOp[]): Promise<string | undefined> {
    const ids = ops.flatMap((op) => (op.op === 'putOutbox' ? [op.row.id] : []))
    if (ids.length === 0) return undefined
    const tx = db.transaction('outbox', 'readonly')
    tx.done.catch(ignore)
    const found = await Promise.all(ids.map((id) => tx.store.index('id').getKey(id)))
    return ids.find((_, i) => found[i] !== undefined)
  }

  /**
   * One readwrite transaction. Its first request reads the generation and
   * aborts everything if another handle opened since; the op requests are
   * queued behind it without waiting, except where an op must read first.
   * The abort always lands before the commit could: the events of the later
   * requests are still to be fired, and a transaction commits only after them
   * (or, for the last request, after the microtasks its event runs).
   */
  async #write(db: Db, ops: readonly StoreOp[]): Promise<Receipt[]> {
    const tx = db.transaction(scopeOf(ops), 'readwrite', { durability: this.#config.durability })
    // A failed request's error event rejects `done` before the browser aborts
    // the transaction, so `tx.error` is still null in the catch below (and
    // `abortQuietly` then aborts it as if by script): keep the first request's
    // error, caught in the capture phase, before any promise hears of it.
    let failed: DOMException | null = null
    tx.addEventListener('error', (event) => (failed ??= (event.target as IDBRequest).error), { capture: true })
    const done = tx.done
    done.catch(ignore)
    let stale = false
    const fence = tx
      .objectStore('meta')
      .get(FENCE_KEY)
      .then((stored) => {
        if (generationOf(stored) === this.#generation) return
        stale = true
        tx.abort()
      })
    fence.catch(ignore)
    const commit: Commit = {
      tx,
      pageSize: this.#config.pageSize,
      fence,
      known: this.#writing === 0 ? this.#watermarks : undefined,
      knownTops: this.#writing === 0 ? this.#inboxTops : undefined,
      knownFloorBounds: this.#writing === 0 ? this.#floorBounds : undefined,
      floorBounds: new Map(),
      tops: new Map(),
      knownOutTops: this.#writing === 0 ? this.#outboxTops : undefined,
      outTops: new Map(),
      outPruned: false,
      swept: this.#swept,
      receipts: [],
      settled: new Map(),
      acking: [],
      created: new Set(),
    }
    this.#writing++
    try {
      const receipts = await applyOps(commit, ops)
      await fence
      await done
      this.#writing--
      for (const [to, settled] of commit.settled) {
        if (settled instanceof Promise) this.#watermarks.delete(to)
        else this.#watermarks.set(to, settled)
      }
      for (const [from, top] of commit.tops) {
        if (top === undefined) this.#inboxTops.delete(from)
        else this.#inboxTops.set(from, top)
      }
      for (const [from, bound] of commit.floorBounds) this.#floorBounds.set(from, bound)
      if (commit.outPruned) this.#outboxTops.clear()
      for (const [to, top] of commit.outTops) this.#outboxTops.set(to, top)
      return receipts
    } catch (error) {
      this.#writing--
      this.#watermarks.clear()
      this.#inboxTops.clear()
      this.#outboxTops.clear()
      this.#floorBounds.clear()
      abortQuietly(tx)
      if (stale) throw fencedError()
      if (commit.refused !== undefined) throw settledSeq(commit.refused)
      if (commit.gap !== undefined) throw inboxGap(commit.gap)
      const first = tx.error ?? failed
      // The unique `id` index refused a row: a queued message's or a receipt's id.
      if (first?.name === 'ConstraintError') {
        const taken = await this.#takenId(db, ops)
        if (taken !== undefined) throw duplicateId(taken)
      }
      // The request that failed first is the transaction's error; later ones only say "aborted".
      throw tx.error ?? failed ?? error
    }
  }
}

// ---------------------------------------------------------------- writes

type WriteTx = Tx<'readwrite'>

/** The object stores each op touches; `meta` is always in scope for the fence. */
const SCOPES: Record<StoreOp['op'], readonly StoreName[]> = {
  meta: [],
  outStream: ['outStreams'],
  inStream: ['inStreams'],
  putOutbox: ['outbox', 'settled'],
  expire: ['outbox', 'settled'],
  release: ['outbox', 'settled'],
  ack: ['outbox', 'settled', 'acks'],
  putInbox: ['inbox', 'inboxFloors'],
  deleteInbox: ['inbox', 'inboxFloors'],
  pruneReceipts: ['outbox', 'acks'],
  putKey: ['keys'],
  deleteKey: ['keys'],
}

function scopeOf(ops: readonly StoreOp[]): StoreName[] {
  return [...new Set<StoreName>(['meta', ...ops.flatMap((op) => SCOPES[op.op])])]
}

/** A stream's watermark; null while it has none (no row was ever queued to it). */
type Watermark = Settled | null

/** One commit's transaction, with what its ops read or settled so far. */
interface Commit {
  readonly tx: WriteTx
  readonly pageSize: number
  /** Settles once the generation was read (the transaction is aborted if it is stale). */
  readonly fence: Promise<void>
  /** The handle's watermarks as its committed transactions left them, when this commit may use them. */
  readonly known: ReadonlyMap<string, Watermark> | undefined
  /** The receipts of each `ack` op, in op order (an ack fills its own once its rows are read). */
  readonly receipts: Receipt[][]
  /**
   * Each stream's watermark as the ops issued so far leave it: the value when
   * known without waiting, else the read or ack that will tell.
   */
  readonly settled: Map<string, Watermark | Promise<Watermark>>
  /** Acks still reading their rows. */
  readonly acking: Promise<void>[]
  /** Streams given their first watermark entry by this commit. */
  readonly created: Set<string>
  /** A `putOutbox` run not the next seq of its stream (at or below its watermark or a waiting row, or leaving a gap); the commit is aborted. */
  refused?: OutboxRow
  /** The handle's outbox tops as its committed transactions left them, when this commit may use them. */
  readonly knownOutTops: ReadonlyMap<string, number> | undefined
  /** Each outbox stream's highest seq as the ops issued so far leave it (-1: no row), where this commit put rows since any prune. */
  readonly outTops: Map<string, number>
  /** A prune ran: it may have deleted a stream's highest rows, so the handle's outbox tops no longer hold. */
  outPruned: boolean
  /** The handle's inbox tops as its committed transactions left them, when this commit may use them. */
  readonly knownTops: ReadonlyMap<string, number> | undefined
  /** Each inbox stream's highest index as the ops issued so far leave it (-1: no row; undefined: not known). */
  readonly tops: Map<string, number | undefined>
  /**
   * The handle's marks at which each inbox stream's records and floors below were last deleted. Only how often they
   * are deleted depends on it, not what reads see: so it is the handle's own map, updated as ops are issued.
   */
  readonly swept: Map<string, number>
  /** The handle's floor bounds as its committed transactions left them, when this commit may use them. */
  readonly knownFloorBounds: ReadonlyMap<string, number> | undefined
  /** Each inbox stream's bound on its highest floor as the ops issued so far leave it, where this commit moved it. */
  readonly floorBounds: Map<string, number>
  /** A `putInbox` run not one above its stream's highest row; the commit is aborted. */
  gap?: { readonly from: PeerId; readonly index: number; readonly highest: number }
}

/** The watermark of `to` as the ops issued so far leave it; a promise when a request must tell. */
function watermarkOf(commit: Commit, to: string): Watermark | Promise<Watermark> {
  const current = commit.settled.get(to)
  if (current !== undefined) return current
  const known = commit.known?.get(to)
  if (known !== undefined) {
    commit.settled.set(to, known)
    return known
  }
  const read: Promise<Watermark> = commit.tx
    .objectStore('settled')
    .get(to)
    .then((found) => {
      const settled = found ?? null
      settle(commit, to, read, settled)
      return settled
    })
  commit.settled.set(to, read)
  return read
}

/** `pending` told `to`'s watermark: it is known from now on, unless a later op already made it pending again. */
function settle(commit: Commit, to: string, pending: Promise<Watermark>, settled: Watermark): void {
  if (commit.settled.get(to) === pending) commit.settled.set(to, settled)
}

/**
 * Issues the requests of every op in order; resolves with the receipts of the
 * `ack` ops, in op order. Requests are not awaited (a failing one aborts the
 * transaction, seen through `tx.done`), only reads an op depends on. Each
 * request sees the ones issued before it, so ops apply one after the other,
 * exactly as `MemoryStore` judges them: an ack reading its rows holds up only
 * the later ops that depend on what it settles (another ack or a rewrite on
 * its stream, a prune), and the refusal of a row queued on its stream.
 * `add` lets the database refuse a key that exists at that point of the
 * commit.
 * Blind writes go through the plain IndexedDB API: nothing awaits them, and
 * idb's promise and listeners per request are overhead in a batch of 1,000.
 */
async function applyOps(commit: Commit, ops: readonly StoreOp[]): Promise<Receipt[]> {
  const { tx } = commit
  const plain = unwrap(tx)
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!
    switch (op.op) {
      case 'meta':
        plain.objectStore('meta').put({ ...op.meta }, META_KEY)
        break
      case 'outStream':
        plain.objectStore('outStreams').put({ ...op.stream })
        break
      case 'inStream':
        plain.objectStore('inStreams').put({ ...op.stream })
        break
      case 'putOutbox': {
        // A run of rows of one stream with consecutive seqs (what one commit queued) is one record, up to a size.
        const rows = runFrom(op.row, ops, i, (next) => (next.op === 'putOutbox' ? next.row : undefined), joinsOutboxRecord)
        i += rows.length - 1
        putOutbox(commit, rows)
        break
      }
      case 'expire':
      case 'release': {
        // A run of them (an expiry scan's, the mailbox's releases) reads and writes each record it touches once.
        const run = runFrom<RewriteOp>(
          op,
          ops,
          i,
          (next) => (next.op === 'expire' || next.op === 'release' ? next : undefined),
          () => true,
        )
        i += run.length - 1
        await rewriteRows(commit, run)
        break
      }
      case 'ack':
        await ack(commit, op)
        break
      case 'putInbox': {
        // A run of rows of one stream with consecutive indexes (what one commit received) is one record, up to a size.
        const rows = runFrom(op.row, ops, i, (next) => (next.op === 'putInbox' ? next.row : undefined), joinsInboxRecord)
        i += rows.length - 1
        putInbox(commit, rows)
        break
      }
      case 'deleteInbox':
        deleteInbox(commit, op.from, op.below)
        break
      case 'pruneReceipts':
        // It reads the ack entries the acks before it write.
        await Promise.all(commit.acking)
        await pruneReceipts(commit, op.before)
        break
      case 'putKey':
        plain.objectStore('keys').put(op.value, op.name)
        break
      case 'deleteKey':
        plain.objectStore('keys').delete(op.name)
        break
    }
  }
  await Promise.all(commit.acking)
  return commit.receipts.flat()
}

// Module functions, not closures made per row: a commit asks once per row it writes.
const outStreamOf = (row: OutboxRow): string => row.to
const outKeyOf = (row: OutboxRow): number => row.seq
const inStreamOf = (row: InboxRow): string => row.from
const inKeyOf = (row: InboxRow): number => row.index
const joinsOutboxRecord = (run: readonly [OutboxRow, ...OutboxRow[]], row: OutboxRow): boolean => joinsRecord(run, row, outStreamOf, outKeyOf)
const joinsInboxRecord = (run: readonly [InboxRow, ...InboxRow[]], row: InboxRow): boolean => joinsRecord(run, row, inStreamOf, inKeyOf)

/** `first` (what `member` gives of `ops[start]`), then what it gives of each op after it while `joins` takes it into the run so far. */
function runFrom<T>(
  first: T,
  ops: readonly StoreOp[],
  start: number,
  member: (op: StoreOp) => T | undefined,
  joins: (run: readonly [T, ...T[]], next: T) => boolean,
): [T, ...T[]] {
  const run: [T, ...T[]] = [first]
  for (let next = ops[start + run.length]; next !== undefined; next = ops[start + run.length]) {
    const item = member(next)
    if (item === undefined || !joins(run, item)) break
    run.push(item)
  }
  return run
}

/**
 * Adds `rows` (consecutive, of one stream) as one record without waiting. A
 * stream's rows above its watermark are contiguous, and a seq at or below the
 * watermark would be taken for a receipt: so the commit is aborted unless the
 * first row is one above the highest waiting row, or above the watermark when
 * none waits. The watermark and the highest row are known from the handle's
 * earlier commits, or read in parallel with the writes (the highest issued
 * before the add, so it sees every earlier op of the commit and not this one).
 */
function putOutbox(commit: Commit, rows: readonly [OutboxRow, ...OutboxRow[]]): void {
  const outbox = unwrap(commit.tx).objectStore('outbox')
  const [head] = rows
  const { to } = head
  const settled = watermarkOf(commit, to)
  let highest: number | Promise<number> | undefined = commit.outTops.has(to) || commit.outPruned ? commit.outTops.get(to) : commit.knownOutTops?.get(to)
  if (highest === undefined) {
    const cursor = outbox.openKeyCursor(IDBKeyRange.bound([to, -Infinity], [to, Infinity]), 'prev')
    highest = new Promise<number>((resolve) => (cursor.onsuccess = () => resolve((cursor.result?.key as [string, number] | undefined)?.[1] ?? -1)))
  }
  // A chunk packs its rows' bytes into one buffer of its own (see recordOf): only a row stored alone needs its own bytes.
  const bytes = rows.length === 1 ? ownBytes : undefined
  outbox.add(recordOf(rows.map((row) => toStored(row, bytes)) as [StoredOutboxRow, ...StoredOutboxRow[]]))
  commit.outTops.set(to, head.seq + rows.length - 1)
  if (settled instanceof Promise || highest instanceof Promise) {
    Promise.all([settled, highest]).then(([known, top]) => checkRow(commit, head, top, known), ignore)
  } else {
    checkRow(commit, head, highest, settled)
  }
}

function checkRow(commit: Commit, row: OutboxRow, highest: number, settled: Watermark): void {
  const mark = settled?.upTo ?? -1
  if (row.seq <= mark || (highest > mark && row.seq !== highest + 1)) {
    commit.refused ??= row
    // Not before the generation is read: a fenced handle's commit fails as fenced, whatever else it got wrong.
    commit.fence.then(() => abortQuietly(commit.tx), ignore)
    return
  }
  // A stream's first row gives it its watermark entry, so that counting walks only the rows above watermarks.
  if (settled !== null || commit.created.has(row.to)) return
  const created: Settled = { to: row.to, upTo: -1, at: -Infinity }
  unwrap(commit.tx).objectStore('settled').put(created)
  commit.created.add(row.to)
  if (!(commit.settled.get(row.to) instanceof Promise)) commit.settled.set(row.to, created)
}

/**
 * Adds `rows` (consecutive, of one stream) as one record without waiting (a
 * single row as a plain row: the cheapest record). A stream's rows are
 * contiguous, so the commit is aborted unless the first is one above the
 * highest stored: known from the handle's earlier commits, or read in
 * parallel with the writes (issued first, so it sees every earlier op of the
 * commit and not this add).
 */
function putInbox(commit: Commit, rows: readonly [InboxRow, ...InboxRow[]]): void {
  const inbox = unwrap(commit.tx).objectStore('inbox')
  const [head] = rows
  const { from, index: first } = head
  const top = commit.tops.has(from) ? commit.tops.get(from) : commit.knownTops?.get(from)
  if (top !== undefined) checkInboxTop(commit, from, first, top)
  else {
    const highest = inbox.openKeyCursor(IDBKeyRange.bound([from, -Infinity], [from, Infinity]), 'prev')
    highest.onsuccess = () => checkInboxTop(commit, from, first, (highest.result?.key as [string, number] | undefined)?.[1] ?? -1)
  }
  // A stream with no row takes any index, even one below a floor it has: the floors above it go (a stream with rows has
  // none above its highest row). Known to be none, no delete.
  const bound = floorBoundOf(commit, from)
  if ((top === undefined || top === -1) && (bound === undefined || bound > first)) {
    unwrap(commit.tx)
      .objectStore('inboxFloors')
      .delete(IDBKeyRange.bound([from, first], [from, Infinity], true))
    commit.floorBounds.set(from, first)
  }
  inbox.add(rows.length === 1 ? { ...head, contents: ownBytes(head.contents) } : chunkOf(rows, ownBytes))
  commit.tops.set(from, first + rows.length - 1)
}

function checkInboxTop(commit: Commit, from: PeerId, first: number, top: number): void {
  if (top === -1 || top + 1 === first) return
  commit.gap ??= { from, index: first, highest: top }
  // Not before the generation is read: a fenced handle's commit fails as fenced, whatever else it got wrong.
  commit.fence.then(() => abortQuietly(commit.tx), ignore)
}

/**
 * Removes every inbox row of `from` below `below`, without waiting, by
 * keeping `below` as the stream's floor: reads and counts skip the rows
 * below the highest floor. Deleting them is a range delete, which costs
 * IndexedDB far more than the small write of a floor: so the records wholly
 * below the floor (and the lower floors) are deleted only at the stream's
 * first mark in this handle, every {@link SWEEP_EVERY} indexes, and whenever
 * the mark may empty the stream (a stream with no rows takes any index: see
 * {@link putInbox}). A mark known to empty it keeps no floor. A record that
 * straddles the floor stays as it is.
 */
function deleteInbox(commit: Commit, from: PeerId, below: number): void {
  const plain = unwrap(commit.tx)
  const top = commit.tops.has(from) ? commit.tops.get(from) : commit.knownTops?.get(from)
  // A mark above the top empties the stream; one at or below it leaves the top; a top not known stays so.
  commit.tops.set(from, top === undefined ? undefined : below > top ? -1 : top)
  const swept = commit.swept.get(from)
  if (top === undefined || below > top || swept === undefined || below - swept >= SWEEP_EVERY) {
    plain.objectStore('inbox').delete(IDBKeyRange.bound([from, -Infinity], [from, below - 1]))
    commit.swept.set(from, below)
    // Emptied, the stream has no row to hide: no floor, and those it has are below the next index it takes (or go then).
    if (top !== undefined && below > top) return
    plain.objectStore('inboxFloors').delete(IDBKeyRange.bound([from, -Infinity], [from, below], false, true))
  }
  plain.objectStore('inboxFloors').put({ from, below })
  const bound = floorBoundOf(commit, from)
  if (bound !== undefined) commit.floorBounds.set(from, Math.max(bound, below))
}

/** A bound on the highest floor of `from` (none is above it); undefined when not known. */
function floorBoundOf(commit: Commit, from: string): number | undefined {
  return commit.floorBounds.get(from) ?? commit.knownFloorBounds?.get(from)
}

/**
 * How many rows the inbox holds, from keys and one record per stream: a
 * stream's rows are contiguous, from its first record's first row to its last
 * record's key.
 */
async function countInbox(inbox: IDBPObjectStore<Schema, StoreName[], 'inbox'>, floors: IDBPObjectStore<Schema, StoreName[], 'inboxFloors'>): Promise<number> {
  const keys = await inbox.getAllKeys()
  const last = new Map<string, number>()
  for (const [from, index] of keys) last.set(from, index)
  const counts = await Promise.all(
    [...last].map(async ([from, index]) => {
      const [[head], floor] = await Promise.all([inbox.getAll(IDBKeyRange.bound([from, -Infinity], [from, Infinity]), 1), floorOf(floors, from)])
      return head === undefined ? 0 : index - Math.max(firstOf(head), floor) + 1
    }),
  )
  return counts.reduce((sum, n) => sum + n, 0)
}

/** The highest processed mark of `from`: its rows below it are gone, also those still inside a record. */
async function floorOf(floors: IDBPObjectStore<Schema, StoreName[], 'inboxFloors'>, from: string): Promise<number> {
  const highest = await floors.openKeyCursor(IDBKeyRange.bound([from, -Infinity], [from, Infinity]), 'prev')
  return highest?.key[1] ?? -Infinity
}

type RewriteOp = Extract<StoreOp, { op: 'expire' | 'release' }>

/**
 * Drops the contents of the waiting rows `ops` name, in op order: an `expire`
 * marks its row expired (and failed, with a reason). Rows at or below their
 * stream's watermark are receipts, and left as they are. Each record is read
 * and written once, however many of its rows the ops name.
 */
async function rewriteRows(commit: Commit, ops: readonly RewriteOp[]): Promise<void> {
  const outbox = commit.tx.objectStore('outbox')
  await Promise.all(
    [...grouped(ops, (op) => op.to)].map(async ([to, run]) => {
      const mark = (await watermarkOf(commit, to))?.upTo ?? -1
      const bySeq = grouped(
        run.filter((op) => op.seq > mark),
        (op) => op.seq,
      )
      if (bySeq.size === 0) return
      const seqs = [...bySeq.keys()]
      const low = seqs.reduce((a, b) => Math.min(a, b))
      const high = seqs.reduce((a, b) => Math.max(a, b))
      // The records holding rows in [low, high]: the last row of each is at least low, and less than a record's size above high.
      const records = await outbox.getAll(IDBKeyRange.bound([to, low], [to, high + RECORD_ROWS - 1]))
      for (const record of records) {
        const rows = outRowsOf(record).map((row) => {
          let changed = row
          for (const op of bySeq.get(row.seq) ?? []) {
            const fields = op.op === 'expire' ? { expired: true as const, ...(op.reason !== undefined && { failed: op.reason }) } : {}
            changed = toStored({ ...fromStored(changed), contents: new Uint8Array(0), ...fields })
          }
          return changed
        })
        const updated = rewritten(record, rows)
        if (updated !== undefined) unwrap(outbox).put(updated)
      }
    }),
  )
}

/**
 * Settles the waiting rows of `op.to` up to `op.upTo`: reads them page by page
 * (for their receipts), rewrites only those whose contents are large or that
 * could still expire, and moves the watermark to the highest one, with one
 * ack entry. Resolves once its requests are issued: the read goes on while
 * the ops after it are issued (see {@link applyOps}), if it is one page; an
 * ack of more rows resolves once they are read. The engine acks only
 * seqs it queued, so the watermark and entry are written at once for
 * `op.upTo`, and corrected once the rows are read in the rare case that they
 * end below it.
 */
async function ack(commit: Commit, op: Extract<StoreOp, { op: 'ack' }>): Promise<void> {
  const { to, upTo } = op
  let settled = watermarkOf(commit, to)
  // Whatever was pending on the stream (an earlier ack's rows, or a read) is settled before this ack's own read is issued.
  while (settled instanceof Promise) {
    await settled
    settled = watermarkOf(commit, to)
  }
  const from = settled?.upTo ?? -1
  if (upTo <= from) return
  const prior = settled
  const at = Math.max(op.at, prior?.at ?? -Infinity)
  const receipts: Receipt[] = []
  commit.receipts.push(receipts)
  const plain = unwrap(commit.tx)
  const write = (entry: AckEntry): void => {
    plain.objectStore('settled').put(entry)
    plain.objectStore('acks').put(entry)
  }
  // A stream without a watermark has no rows, unless this commit queued its first: then the rows tell.
  const guess: AckEntry | undefined = prior === null ? undefined : { to, upTo, at }
  if (guess !== undefined) write(guess)
  const outbox = commit.tx.objectStore('outbox')
  const reading = (async (): Promise<Watermark> => {
    let top = from
    const settleRows = (record: StoredOutbox): void => {
      const rows = outRowsOf(record).map((stored) => {
        if (stored.seq <= top || stored.seq > upTo) return stored
        const row = fromStored(stored)
        receipts.push(receiptOf(row, at))
        top = row.seq
        return stored.expiry !== undefined || row.contents.byteLength > KEPT_CONTENTS_BYTES ? { ...row, contents: new Uint8Array(0) } : stored
      })
      const updated = rewritten(record, rows)
      if (updated !== undefined) plain.objectStore('outbox').put(updated)
    }
    // The one record that may hold upTo and rows above it (its key, the last row's seq, is the first above upTo). Read
    // apart, so that no record wholly above upTo is read: a sender pipelining holds many, and every ack read them all.
    const straddling = outbox.getAll(IDBKeyRange.bound([to, upTo], [to, Infinity], true), 1)
    // Its failure is the transaction's (seen through tx.done), and it may come while a page is awaited.
    straddling.catch(ignore)
    for (;;) {
      // The records whose last row is in (top, upTo]: the first of them may hold rows of earlier acks.
      const page = await outbox.getAll(IDBKeyRange.bound([to, top + 1], [to, upTo]), commit.pageSize)
      for (const record of page) settleRows(record)
      if (page.length < commit.pageSize || (page.at(-1)?.seq ?? upTo) >= upTo) break
    }
    const [above] = await straddling
    if (above !== undefined && firstSeqOf(above) <= upTo) settleRows(above)
    if (top === upTo && guess !== undefined) return guess
    if (guess !== undefined) plain.objectStore('acks').delete([to, upTo])
    if (top === from) {
      if (prior !== null) plain.objectStore('settled').put(prior)
      return prior
    }
    const entry: AckEntry = { to, upTo: top, at }
    write(entry)
    return entry
  })()
  const pending: Promise<Watermark> = reading.then((result) => {
    settle(commit, to, pending, result)
    return result
  })
  commit.settled.set(to, pending)
  // A read of more than one page must end before a later op may add a row in its range (see applyOps).
  if (upTo - from > commit.pageSize) {
    await pending
    return
  }
  const acked = pending.then(ignore)
  // Its failure surfaces through the commit's (it aborts the transaction); handled now, as the ops after it may keep applyOps waiting on other requests.
  acked.catch(ignore)
  commit.acking.push(acked)
}

/**
 * Deletes the ack entries older than `before` and the receipts they settled,
 * by range: a stream's old entries are a prefix of it (see {@link AckEntry}),
 * so one delete per stream and page covers them, rows unread.
 */
async function pruneReceipts(commit: Commit, before: number): Promise<void> {
  const index = commit.tx.objectStore('acks').index('at')
  const plain = unwrap(commit.tx)
  const range = IDBKeyRange.upperBound(before, true)
  for (;;) {
    // Each page is read after the deletes of the one before, so it starts afresh.
    const keys = await index.getAllKeys(range, commit.pageSize)
    const tops = new Map<string, number>()
    for (const [to, upTo] of keys) tops.set(to, Math.max(upTo, tops.get(to) ?? -1))
    const trims: Promise<void>[] = []
    for (const [to, upTo] of tops) {
      const span = IDBKeyRange.bound([to, -Infinity], [to, upTo])
      plain.objectStore('outbox').delete(span)
      plain.objectStore('acks').delete(span)
      trims.push(trimOutbox(commit, to, upTo))
    }
    // Deleted rows may have been a stream's highest.
    commit.outTops.clear()
    commit.outPruned = true
    // Awaited, so that the ops after it read the trimmed record.
    await Promise.all(trims)
    if (keys.length < commit.pageSize) return
  }
}

/** Rewrites the record of `to` that straddles `upTo` (if one does) without its rows at or below it: their ids are free again. */
async function trimOutbox(commit: Commit, to: string, upTo: number): Promise<void> {
  const [straddling] = await commit.tx.objectStore('outbox').getAll(IDBKeyRange.bound([to, upTo + 1], [to, Infinity]), 1)
  if (straddling !== undefined && firstSeqOf(straddling) <= upTo) unwrap(commit.tx).objectStore('outbox').put(trimmedOutbox(straddling, upTo))
}

/** `items` by `key`, each group in the order of `items`. */
function grouped<K, T>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>()
  for (const item of items) {
    const group = groups.get(key(item))
    if (group === undefined) groups.set(key(item), [item])
    else group.push(item)
  }
  return groups
}

/** A request whose failure surfaces through `tx.done`; its own promise must not reject unhandled. */
function issue(request: Promise<unknown>): void {
  request.catch(ignore)
}

function abortQuietly(tx: IDBPTransaction<Schema, StoreName[], IDBTransactionMode>): void {
  try {
    tx.abort()
  } catch {
    // Already finished or aborted.
  }
}

// ---------------------------------------------------------------- rows

/** A schema 1 receipt as a schema 2 receipt row. */
function receiptRowV2(receipt: Receipt): StoredRowV2 {
  const { id, to, seq, status, reason, at } = receipt
  return {
    to,
    seq,
    id,
    contentKind: 'b',
    contents: new Uint8Array(0),
    createdAt: at,
    ...(status !== 'delivered' && { expired: true }),
    ...(status === 'failed' && { failed: reason ?? 'failed' }),
    ackedAt: at,
  }
}

// ---------------------------------------------------------------- errors and helpers

const LOST_CONNECTION = /Connection to Indexed Database server lost/i

/** Errors after which the connection is unusable and must be reopened. */
function isConnectionLoss(error: unknown): boolean {
  if (!(error instanceof Error || error instanceof DOMException)) return false
  return error.name === 'InvalidStateError' || error.name === 'UnknownError' || LOST_CONNECTION.test(error.message)
}

/** An {@link IlmError} as is; a platform error as `QUOTA_EXCEEDED` or `STORE_FAILED` with it as `cause`. */
function platformError(error: unknown, what: string): IlmError {
  if (isIlmError(error)) return error
  const name = error instanceof Error || error instanceof DOMException ? error.name : undefined
  if (name === 'QuotaExceededError') {
    return new IlmError('QUOTA_EXCEEDED', `storage quota exceeded; nothing was applied`, { cause: error })
  }
  return new IlmError('STORE_FAILED', `IndexedDB ${what} failed: ${String((error as Error | null)?.message ?? error)}`, {
    cause: error,
  })
}

function settledSeq(row: OutboxRow): IlmError {
  return new IlmError('STORE_FAILED', `outbox row ${row.to}#${row.seq} is not the next seq of its stream; nothing was applied`)
}

function inboxGap({ from, index, highest }: NonNullable<Commit['gap']>): IlmError {
  return new IlmError('STORE_FAILED', `inbox row ${from}#${index} is not one above the highest stored, #${highest}; nothing was applied`)
}

function fencedError(why = 'another handle was opened for this identity; this one may no longer be used'): IlmError {
  return new IlmError('STORE_FENCED', why)
}

/** A `getAll` count: IndexedDB reads 0 as "no limit", so callers handle limits below 1 themselves. */
function count(limit: number): number {
  return Math.min(Math.floor(limit), MAX_COUNT)
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}

function ignore(): void {}
