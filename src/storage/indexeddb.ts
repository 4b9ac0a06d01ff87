import { unwrap, wrap } from 'idb'
import type { DBSchema, IDBPDatabase, IDBPTransaction, StoreNames } from 'idb'
import { duplicateId, validateOps } from './op-validation.js'
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
import { receiptOf } from '../core/store.js'

/**
 * The schema version of the databases an {@link IndexedDBStore} creates. Bump
 * it together with a new step at the end of `upgrade`.
 */
export const SCHEMA_VERSION = 2

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

// ---------------------------------------------------------------- schema

const META_KEY = 'identity'
const FENCE_KEY = 'generation'
const DEFAULT_PAGE_SIZE = 256
const DEFAULT_BLOCKED_TIMEOUT_MS = 10_000
/** Largest count `getAll` accepts (an unsigned long). */
const MAX_COUNT = 0xffff_ffff

/**
 * An outbox row as stored. A message keeps its row after it is acknowledged:
 * the row, its contents dropped and `ackedAt` set, is its receipt. So one
 * unique `id` index covers queued messages and receipts, and the database
 * itself refuses to queue an id twice, at no cost per send.
 * - `pending` (`[to, seq]`) is set only while the row waits for its ack: the
 *   sparse `pending` index holds exactly the outbox proper, in stream order.
 * - `ackedAt` is set only on receipts: the `ackedAt` index prunes them.
 * - `expiry` mirrors `expiresAt` only while the row can still expire, so the
 *   `expiry` index holds exactly the rows an expiry scan may return.
 */
interface StoredOutboxRow extends OutboxRow {
  readonly pending?: [string, number]
  readonly ackedAt?: number
  readonly expiry?: number
}

interface Schema extends DBSchema {
  /** `identity` -> {@link StoreMeta}; `generation` -> the fencing counter. */
  meta: { key: string; value: StoreMeta | number }
  outStreams: { key: string; value: OutStreamState }
  inStreams: { key: string; value: InStreamState }
  outbox: { key: [string, number]; value: StoredOutboxRow; indexes: { id: string; expiry: number; pending: [string, number]; ackedAt: number } }
  inbox: { key: [string, number]; value: InboxRow }
}

/** Schema 1 kept receipts in a store of their own; schema 2 moves them into the outbox. */
interface SchemaV1 extends DBSchema {
  outbox: { key: [string, number]; value: OutboxRow; indexes: { id: string; expiry: number } }
  receipts: { key: string; value: Receipt; indexes: { at: number } }
}

type Db = IDBPDatabase<Schema>
type StoreName = StoreNames<Schema>
type Tx<Mode extends IDBTransactionMode> = IDBPTransaction<Schema, StoreName[], Mode>

/**
 * Brings the schema from `oldVersion` to `newVersion`, step by step. Steps
 * only ever get appended (`if (oldVersion < 2) { ... }`), so a database of
 * any older version reaches the current one.
 */
function upgrade(db: Db, oldVersion: number, _newVersion: number | null, tx: Tx<'versionchange'>): void {
  if (oldVersion < 1) {
    db.createObjectStore('meta')
    db.createObjectStore('outStreams', { keyPath: 'to' })
    db.createObjectStore('inStreams', { keyPath: 'from' })
    const outbox = db.createObjectStore('outbox', { keyPath: ['to', 'seq'] })
    outbox.createIndex('id', 'id', { unique: true })
    outbox.createIndex('expiry', 'expiry')
    db.createObjectStore('inbox', { keyPath: ['from', 'index'] })
    if (oldVersion === 0) {
      outbox.createIndex('pending', 'pending')
      outbox.createIndex('ackedAt', 'ackedAt')
      return
    }
  }
  if (oldVersion < 2) upgradeReceiptsIntoOutbox(tx)
}

/**
 * Schema 1 to 2: every outbox row gets its `pending` key, and every receipt
 * becomes an acknowledged outbox row; the receipts store goes. Runs inside
 * the version change transaction: all of it lands, or none.
 */
function upgradeReceiptsIntoOutbox(tx: Tx<'versionchange'>): void {
  const old = tx as unknown as IDBPTransaction<SchemaV1, ['outbox', 'receipts'], 'versionchange'>
  const outbox = tx.objectStore('outbox')
  outbox.createIndex('pending', 'pending')
  outbox.createIndex('ackedAt', 'ackedAt')
  const rows = old.objectStore('outbox').openCursor()
  const moved = old.objectStore('receipts').getAll()
  void (async () => {
    for (let cursor = await rows; cursor !== null; cursor = await cursor.continue()) {
      issue(cursor.update(toStored(cursor.value)))
    }
    for (const receipt of await moved) issue(outbox.put(receiptRow(receipt)))
    tx.db.deleteObjectStore('receipts' as never)
  })().catch(() => abortQuietly(tx))
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
    return this.#read(['outStreams', 'inStreams'], async (tx) => {
      const [meta, outStreams, inStreams] = await Promise.all([
        tx.objectStore('meta').get(META_KEY),
        tx.objectStore('outStreams').getAll(),
        tx.objectStore('inStreams').getAll(),
      ])
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
    return this.#read(['outbox'], async (tx) => {
      if (limit < 1) return []
      const range = IDBKeyRange.bound([to, fromSeq], [to, Infinity])
      return (await tx.objectStore('outbox').index('pending').getAll(range, count(limit))).map(fromStored)
    })
  }

  async readInbox(from: PeerId, fromIndex: number, limit: number): Promise<readonly InboxRow[]> {
    return this.#read(['inbox'], async (tx) => {
      if (limit < 1) return []
      return tx.objectStore('inbox').getAll(IDBKeyRange.bound([from, fromIndex], [from, Infinity]), count(limit))
    })
  }

  async readExpired(now: number, limit: number): Promise<readonly OutboxRow[]> {
    return this.#read(['outbox'], async (tx) => {
      if (limit < 1) return []
      const index = tx.objectStore('outbox').index('expiry')
      return (await index.getAll(IDBKeyRange.upperBound(now), count(limit))).map(fromStored)
    })
  }

  async nextExpiry(): Promise<number | undefined> {
    return this.#read(['outbox'], async (tx) => {
      const cursor = await tx.objectStore('outbox').index('expiry').openKeyCursor()
      return cursor?.key
    })
  }

  async findMessage(id: MessageId): Promise<MessageLookup | undefined> {
    return this.#read<MessageLookup | undefined>(['outbox'], async (tx) => {
      const row = await tx.objectStore('outbox').index('id').get(id)
      if (row === undefined) return undefined
      if (row.ackedAt !== undefined) return { where: 'receipt', receipt: receiptOf(row, row.ackedAt) }
      return { where: 'outbox', to: row.to, seq: row.seq, expired: row.expired === true, ...(row.failed !== undefined && { failed: row.failed }) }
    })
  }

  async count(): Promise<{ outbound: number; inbound: number }> {
    return this.#read(['outbox', 'inbox'], async (tx) => {
      const [outbound, inbound] = await Promise.all([tx.objectStore('outbox').index('pending').count(), tx.objectStore('inbox').count()])
      return { outbound, inbound }
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

  /**
   * One readwrite transaction. Its first request reads the generation and
   * aborts everything if another handle opened since; the op requests are
   * queued behind it without waiting, except where an op must read first.
   * The abort always lands before the commit could: the events of the later
   * requests are still to be fired, and a transaction commits only after them.
   */
  /** The first id among the `putOutbox` ops that the store already holds, read after a refused commit. */
  async #takenId(db: Db, ops: readonly StoreOp[]): Promise<string | undefined> {
    const ids = ops.flatMap((op) => (op.op === 'putOutbox' ? [op.row.id] : []))
    if (ids.length === 0) return undefined
    const tx = db.transaction('outbox', 'readonly')
    tx.done.catch(ignore)
    const found = await Promise.all(ids.map((id) => tx.store.index('id').getKey(id)))
    return ids.find((_, i) => found[i] !== undefined)
  }

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
    try {
      const receipts = await applyOps(tx, ops, this.#config.pageSize)
      await fence
      await done
      return receipts
    } catch (error) {
      abortQuietly(tx)
      if (stale) throw fencedError()
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
  putOutbox: ['outbox'],
  expire: ['outbox'],
  release: ['outbox'],
  ack: ['outbox'],
  putInbox: ['inbox'],
  deleteInbox: ['inbox'],
  pruneReceipts: ['outbox'],
}

function scopeOf(ops: readonly StoreOp[]): StoreName[] {
  return [...new Set<StoreName>(['meta', ...ops.flatMap((op) => SCOPES[op.op])])]
}

/**
 * Issues the requests of every op in order; resolves with the receipts of the
 * `ack` ops, in op order. Requests are not awaited (a failing one aborts the
 * transaction, seen through `tx.done`), only reads an op depends on.
 * `add` lets the database refuse a key that exists at that point of the
 * commit, exactly as `MemoryStore` judges it op by op.
 * Blind writes go through the plain IndexedDB API: nothing awaits them, and
 * idb's promise and listeners per request are overhead in a batch of 1,000.
 */
async function applyOps(tx: WriteTx, ops: readonly StoreOp[], pageSize: number): Promise<Receipt[]> {
  const receipts: Receipt[] = []
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
      case 'putOutbox':
        plain.objectStore('outbox').add(toStored(op.row))
        break
      case 'expire':
        await rewrite(tx, op.to, op.seq, { expired: true, ...(op.reason !== undefined && { failed: op.reason }) })
        break
      case 'release':
        await rewrite(tx, op.to, op.seq, {})
        break
      case 'ack':
        await ack(tx, op, pageSize, receipts)
        break
      case 'putInbox':
        plain.objectStore('inbox').add({ ...op.row, contents: ownBytes(op.row.contents) })
        break
      case 'deleteInbox': {
        // A run of deletes of consecutive indexes (a processed mark) is one range delete: one request, not one per row.
        let last = op.index
        for (let next = ops[i + 1]; next?.op === 'deleteInbox' && next.from === op.from && next.index === last + 1; next = ops[i + 1]) {
          last = next.index
          i++
        }
        plain.objectStore('inbox').delete(last === op.index ? [op.from, op.index] : IDBKeyRange.bound([op.from, op.index], [op.from, last]))
        break
      }
      case 'pruneReceipts':
        await pruneReceipts(tx, op.before, pageSize)
        break
    }
  }
  return receipts
}

/** Drops the contents of one outbox row, setting `fields`. */
async function rewrite(tx: WriteTx, to: PeerId, seq: number, fields: Pick<OutboxRow, 'expired' | 'failed'>): Promise<void> {
  const outbox = tx.objectStore('outbox')
  const row = await outbox.get([to, seq])
  if (row === undefined || row.ackedAt !== undefined) return
  unwrap(outbox).put(toStored({ ...fromStored(row), contents: new Uint8Array(0), ...fields }))
}

/**
 * Turns the waiting rows of `op.to` up to `op.upTo` into receipts, page by page
 * through the `pending` index: contents dropped, `ackedAt` set.
 */
async function ack(tx: WriteTx, op: Extract<StoreOp, { op: 'ack' }>, pageSize: number, receipts: Receipt[]): Promise<void> {
  const outbox = tx.objectStore('outbox')
  const pending = outbox.index('pending')
  const plain = unwrap(outbox)
  for (;;) {
    // Each page is read after the rewrites of the one before, so it starts afresh.
    const page = await pending.getAll(IDBKeyRange.bound([op.to, (op.above ?? -Infinity) + 1], [op.to, op.upTo]), pageSize)
    for (const row of page) {
      const receipt = receiptOf(row, op.at)
      plain.put(settledRow(fromStored(row), op.at))
      receipts.push(receipt)
    }
    if (page.length < pageSize) return
  }
}

async function pruneReceipts(tx: WriteTx, before: number, pageSize: number): Promise<void> {
  const index = tx.objectStore('outbox').index('ackedAt')
  const plain = unwrap(tx).objectStore('outbox')
  const range = IDBKeyRange.upperBound(before, true)
  for (;;) {
    // Each page is read after the deletes of the one before, so it starts afresh.
    const keys = await index.getAllKeys(range, pageSize)
    for (const key of keys) plain.delete(key)
    if (keys.length < pageSize) return
  }
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

/** A waiting row as stored. */
function toStored(row: OutboxRow): StoredOutboxRow {
  const { expiry: _e, pending: _p, ackedAt: _a, ...rest } = row as StoredOutboxRow
  const stored: StoredOutboxRow = { ...rest, contents: ownBytes(row.contents), pending: [row.to, row.seq] }
  return row.expiresAt !== undefined && row.expired !== true ? { ...stored, expiry: row.expiresAt } : stored
}

/** The receipt row a waiting row becomes once acknowledged at `at`. */
function settledRow(row: OutboxRow, at: number): StoredOutboxRow {
  return { ...row, contents: new Uint8Array(0), ackedAt: at }
}

/** A schema 1 receipt as a schema 2 receipt row. */
function receiptRow(receipt: Receipt): StoredOutboxRow {
  const { id, to, seq, status, reason, at } = receipt
  const row: OutboxRow = {
    to,
    seq,
    id,
    contentKind: 'b',
    contents: new Uint8Array(0),
    createdAt: at,
    ...(status !== 'delivered' && { expired: true }),
    ...(status === 'failed' && { failed: reason ?? 'failed' }),
  }
  return settledRow(row, at)
}

function fromStored(stored: StoredOutboxRow): OutboxRow {
  const { expiry: _e, pending: _p, ackedAt: _a, ...row } = stored
  return row
}

/**
 * The bytes of `contents` alone. Structured clone copies a view's whole
 * buffer (a Node Buffer from the pool is a view on 8 KiB), so a partial view,
 * a subclass or a shared buffer is copied first.
 */
function ownBytes(contents: Uint8Array): Uint8Array {
  const whole =
    contents.constructor === Uint8Array &&
    contents.byteOffset === 0 &&
    contents.buffer instanceof ArrayBuffer &&
    contents.byteLength === contents.buffer.byteLength
  return whole ? contents : new Uint8Array(contents)
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
