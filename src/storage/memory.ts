import { duplicateId, refused, validateOps } from './op-validation.js'
import { ByteSlab } from '../core/byte-slab.js'
import { IlmError } from '../core/errors.js'
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
 * Failures to inject into a {@link MemoryStore}. When a function returns true
 * the call rejects with `IlmError('STORE_FAILED')` and changes nothing.
 */
export interface StoreFaults {
  /** Decides whether a commit of `ops` fails. */
  readonly commit?: ((ops: readonly StoreOp[]) => boolean) | undefined
  /** Decides whether a read (`load`, `readOutbox`, `count`, ...) fails. */
  readonly read?: (() => boolean) | undefined
}

/** Options of a {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Failures to inject from the start; see {@link MemoryStore.faults}. */
  readonly faults?: StoreFaults | undefined
}

/**
 * A {@link Store} kept in memory, with the atomicity, ordering, copying and
 * fencing of a persistent one. It holds any number of local identities and
 * outlives the engines that open it: opening a new engine on the same object
 * models a restart.
 */
export class MemoryStore implements Store {
  private readonly identities = new Map<PeerId, IdentityState>()
  private injected: StoreFaults | undefined

  /** @throws TypeError for options or faults that are not objects of functions. */
  constructor(options: MemoryStoreOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('MemoryStore: options must be an object')
    this.injected = checkFaults(options.faults)
  }

  /** Replaces the injected failures; `undefined` turns them off. */
  faults(faults: StoreFaults | undefined): void {
    this.injected = checkFaults(faults)
  }

  /** Opens `localId`, fencing every handle opened before for it. */
  async open(localId: PeerId): Promise<PeerStore> {
    if (!isPeerId(localId)) throw new IlmError('INVALID_PEER_ID', `not a valid peer id: ${String(localId)}`)
    let state = this.identities.get(localId)
    if (state === undefined) {
      state = newIdentityState()
      this.identities.set(localId, state)
    }
    state.generation += 1
    return new MemoryPeerStore(state, state.generation, () => this.injected)
  }
}

/** Everything stored for one local identity. */
interface IdentityState {
  /** Bumped by every open; a handle of an older generation is fenced. */
  generation: number
  meta: StoreMeta | undefined
  readonly outStreams: Map<PeerId, OutStreamState>
  readonly inStreams: Map<PeerId, InStreamState>
  readonly outbox: Map<PeerId, KeyedRows<IdEntry>>
  readonly inbox: Map<PeerId, KeyedRows<InboxRow>>
  /** By message id: its outbox row or the receipt its ack left (one map: a put's id check is one lookup). */
  readonly ids: Map<MessageId, IdEntry>
  /** The highest seq an ack settled, per stream: no row is queued at or below it again. */
  readonly settled: Map<PeerId, number>
  /** The end-to-end cipher's records. */
  readonly keys: Map<string, unknown>
  outboxCount: number
  inboxCount: number
  /** Outbox rows with an `expiresAt` that are not expired yet: lets expiry scans return at once when 0. */
  expiring: number
  /** Where stored contents are kept (reads copy them out into buffers of their own): one view each into shared chunks, not three objects of their own (a 64-byte array, its buffer and its bytes). */
  readonly bytes: ByteSlab
}

function newIdentityState(): IdentityState {
  return {
    generation: 0,
    meta: undefined,
    outStreams: new Map(),
    inStreams: new Map(),
    outbox: new Map(),
    inbox: new Map(),
    ids: new Map(),
    settled: new Map(),
    keys: new Map(),
    outboxCount: 0,
    inboxCount: 0,
    expiring: 0,
    bytes: new ByteSlab(),
  }
}

/**
 * What one message id names: its outbox row while it is queued, then the
 * receipt the ack that settled it left. One object per id, in the id map and,
 * while queued, in its stream's rows: an ack turns it into the receipt in
 * place instead of writing the id map again (a map of every id still known,
 * where each write of a message's id is a cache miss).
 */
interface IdEntry {
  /** The queued row (`expire` and `release` replace it); undefined once settled. */
  row: OutboxRow | undefined
  /** The receipt, once settled. */
  receipt: Receipt | undefined
}

/** The row of an entry in a stream's rows: queued, so it has one. */
function rowOf(entry: IdEntry): OutboxRow {
  return entry.row as OutboxRow
}

/** One handle on an identity's state; see {@link PeerStore} for the contract. */
class MemoryPeerStore implements PeerStore {
  private readonly state: IdentityState
  private readonly generation: number
  private readonly faults: () => StoreFaults | undefined
  private closed = false

  constructor(state: IdentityState, generation: number, faults: () => StoreFaults | undefined) {
    this.state = state
    this.generation = generation
    this.faults = faults
  }

  // Every method is async but does its work before its first await: commits
  // apply in call order, and a read sees every commit called before it.

  async load(): Promise<StoreSnapshot> {
    this.enterRead()
    return snapshot(this.state)
  }

  async commit(ops: readonly StoreOp[]): Promise<readonly Receipt[]> {
    this.enter()
    if (this.faults()?.commit?.(ops) === true) throw injectedFault('commit')
    validate(this.state, ops)
    return applyOps(this.state, ops.map(cloneKeyRecord)).map(copyReceipt)
  }

  async readOutbox(to: PeerId, fromSeq: number, limit: number): Promise<readonly OutboxRow[]> {
    this.enterRead()
    return (this.state.outbox.get(to)?.readFrom(fromSeq, limit) ?? []).map((entry) => copyOutboxRow(rowOf(entry)))
  }

  async readInbox(from: PeerId, fromIndex: number, limit: number): Promise<readonly InboxRow[]> {
    this.enterRead()
    return (this.state.inbox.get(from)?.readFrom(fromIndex, limit) ?? []).map(copyInboxRow)
  }

  async readExpired(now: number, limit: number): Promise<readonly OutboxRow[]> {
    this.enterRead()
    return dueRows(this.state, now, limit).map(copyOutboxRow)
  }

  async nextExpiry(): Promise<number | undefined> {
    this.enterRead()
    return earliestExpiry(this.state)
  }

  async findMessage(id: MessageId): Promise<MessageLookup | undefined> {
    this.enterRead()
    return lookup(this.state, id)
  }

  async count(): Promise<{ outbound: number; inbound: number }> {
    this.enterRead()
    return { outbound: this.state.outboxCount, inbound: this.state.inboxCount }
  }

  async readKeys(): Promise<ReadonlyMap<string, unknown>> {
    this.enterRead()
    return new Map([...this.state.keys].map(([name, value]) => [name, structuredClone(value)]))
  }

  /** Idempotent, and resolves also on a fenced handle so that cleanup paths never fail. */
  async close(): Promise<void> {
    this.closed = true
  }

  private enter(): void {
    if (this.closed) throw new IlmError('CLOSED', 'the store handle is closed')
    if (this.state.generation !== this.generation) {
      throw new IlmError('STORE_FENCED', 'another handle was opened for this identity; this one may no longer be used')
    }
  }

  private enterRead(): void {
    this.enter()
    if (this.faults()?.read?.() === true) throw injectedFault('read')
  }
}

function injectedFault(what: string): IlmError {
  return new IlmError('STORE_FAILED', `store ${what} failed`, { cause: new Error('injected fault') })
}

// ---------------------------------------------------------------- reads

function snapshot(state: IdentityState): StoreSnapshot {
  return {
    meta: state.meta === undefined ? undefined : { ...state.meta },
    outStreams: [...state.outStreams.values()].map((s) => ({ ...impliedOutStream(s, state.outbox.get(s.to)?.last()) })),
    inStreams: [...state.inStreams.values()].map((s) => ({ ...s })),
  }
}

function isExpiring(row: OutboxRow): boolean {
  return row.expiresAt !== undefined && row.expired !== true
}

function dueRows(state: IdentityState, now: number, limit: number): OutboxRow[] {
  const due: OutboxRow[] = []
  if (state.expiring === 0) return due
  for (const rows of state.outbox.values()) {
    for (const entry of rows.values()) {
      if (due.length >= limit) return due
      const row = rowOf(entry)
      if (isExpiring(row) && (row.expiresAt as number) <= now) due.push(row)
    }
  }
  return due
}

function earliestExpiry(state: IdentityState): number | undefined {
  if (state.expiring === 0) return undefined
  let earliest: number | undefined
  for (const rows of state.outbox.values()) {
    for (const entry of rows.values()) {
      const row = rowOf(entry)
      if (isExpiring(row) && (earliest === undefined || (row.expiresAt as number) < earliest)) earliest = row.expiresAt
    }
  }
  return earliest
}

function lookup(state: IdentityState, id: MessageId): MessageLookup | undefined {
  const entry = state.ids.get(id)
  if (entry?.receipt !== undefined) return { where: 'receipt', receipt: copyReceipt(entry.receipt) }
  const row = entry?.row
  return row && { where: 'outbox', to: row.to, seq: row.seq, expired: row.expired === true, ...(row.failed !== undefined && { failed: row.failed }) }
}

/**
 * Refuses the whole commit, before anything is applied, when an op is
 * malformed or would insert a key that exists at that point of the commit.
 */
function validate(state: IdentityState, ops: readonly StoreOp[]): void {
  const ids = new IdsInCommit(state)
  // Per outbox stream, the keys the ops validated so far add, ascending: each put is above every key of its stream.
  const added = new Map<PeerId, number[]>()
  // The highest outbox key of a stream at or below `key`, as the ops validated so far leave them; -1 if none.
  const outTop = (to: PeerId, key: number): number => {
    const keys = added.get(to)
    const rows = state.outbox.get(to)
    return Math.max(keys === undefined ? -1 : (keys[firstAtOrAbove(keys, key + 1) - 1] ?? -1), rows === undefined ? -1 : rows.lastAtOrBelow(key))
  }
  // Each inbox stream's highest index as the ops validated so far leave it; -1 while it has no row.
  const tops = new Map<PeerId, number>()
  const topOf = (from: PeerId): number => tops.get(from) ?? state.inbox.get(from)?.last() ?? -1
  // Each stream's watermark as the acks validated so far move it: to the highest row they settle.
  const marks = new Map<PeerId, number>()
  const markOf = (to: PeerId): number => marks.get(to) ?? state.settled.get(to) ?? -1
  validateOps(ops, (op) => {
    ids.follow(op)
    if (op.op === 'ack') {
      const top = outTop(op.to, op.upTo)
      if (top > markOf(op.to)) marks.set(op.to, top)
    }
    if (op.op === 'putOutbox') {
      const { to, seq } = op.row
      const mark = markOf(to)
      if (seq <= mark) return `outbox row (${to}, ${seq}) is at or below the acknowledged seqs`
      // The rows waiting above the watermark are contiguous. Every key is above the watermark (an ack deletes the
      // rows it settles), so a put that passes both checks is above every key: none can exist already.
      let keys = added.get(to)
      const top = Math.max(keys?.[keys.length - 1] ?? -1, state.outbox.get(to)?.last() ?? -1)
      if (top > mark && seq !== top + 1) return `outbox row (${to}, ${seq}) is not one above the highest waiting (${top})`
      if (keys === undefined) added.set(to, (keys = []))
      keys.push(seq)
    }
    if (op.op === 'putInbox') {
      const { from, index } = op.row
      const top = topOf(from)
      if (top !== -1 && index !== top + 1) return `inbox row (${from}, ${index}) is not one above the highest stored (${top})`
      tops.set(from, index)
    }
    if (op.op === 'deleteInbox' && op.below > topOf(op.from)) tops.set(op.from, -1)
    return undefined
  })
}

/**
 * Which ids are taken at each point of a commit. A stored id is followed as if
 * the commit's ops were applied one by one: an ack turns its queued row into a
 * receipt written at the ack's `at`, and a later prune before that time frees
 * the id. An id put twice in one commit is refused whatever lies between.
 */
class IdsInCommit {
  private readonly state: IdentityState
  private readonly steps: Extract<StoreOp, { op: 'ack' | 'pruneReceipts' }>[] = []
  private readonly queued = new Set<MessageId>()

  constructor(state: IdentityState) {
    this.state = state
  }

  /** Throws DUPLICATE_ID for a `putOutbox` whose id is taken at this point of the commit. */
  follow(op: StoreOp): void {
    if (op.op === 'ack' || op.op === 'pruneReceipts') this.steps.push(op)
    if (op.op !== 'putOutbox') return
    const { id } = op.row
    if (this.queued.has(id) || this.stored(id)) throw duplicateId(id)
    this.queued.add(id)
  }

  private stored(id: MessageId): boolean {
    const entry = this.state.ids.get(id)
    if (entry === undefined) return false
    const row = entry.row
    let receiptAt = entry.receipt?.at
    for (const step of this.steps) {
      if (step.op === 'ack') {
        if (row !== undefined && receiptAt === undefined && step.to === row.to && step.upTo >= row.seq) receiptAt = step.at
      } else if (receiptAt !== undefined && receiptAt < step.before) {
        return false
      }
    }
    return true
  }
}

/**
 * The index of the first of the ascending `keys` from `low` on that is >= `key` (`keys.length` if none): a binary
 * search, as a scan would make a commit of many puts quadratic.
 */
function firstAtOrAbove(keys: readonly number[], key: number, low = 0): number {
  let high = keys.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if ((keys[mid] as number) < key) low = mid + 1
    else high = mid
  }
  return low
}

// ---------------------------------------------------------------- writes

/** A cipher record is stored as a structured clone, as IndexedDB would; one that cannot be cloned refuses the commit before anything applies. */
function cloneKeyRecord(op: StoreOp): StoreOp {
  if (op.op !== 'putKey') return op
  try {
    return { ...op, value: structuredClone(op.value) }
  } catch (error) {
    throw refused(`op putKey ${op.name}: the value cannot be cloned (${String(error)})`)
  }
}

/** Applies validated ops; cannot fail. Returns the receipts `ack` ops wrote, in op order. */
function applyOps(state: IdentityState, ops: readonly StoreOp[]): Receipt[] {
  const receipts: Receipt[] = []
  for (const op of ops) applyOp(state, op, receipts)
  return receipts
}

function applyOp(state: IdentityState, op: StoreOp, receipts: Receipt[]): void {
  switch (op.op) {
    case 'meta':
      state.meta = { ...op.meta }
      return
    case 'outStream':
      state.outStreams.set(op.stream.to, { ...op.stream })
      return
    case 'inStream':
      state.inStreams.set(op.stream.from, { ...op.stream })
      return
    case 'putOutbox':
      putOutbox(state, { ...op.row, contents: state.bytes.copy(op.row.contents) })
      return
    case 'expire':
      expire(state, op.to, op.seq, op.reason)
      return
    case 'release':
      release(state, op.to, op.seq)
      return
    case 'ack':
      ack(state, op.to, op.upTo, op.at, receipts)
      return
    case 'putInbox':
      putInbox(state, { ...op.row, contents: state.bytes.copy(op.row.contents) })
      return
    case 'deleteInbox':
      deleteInbox(state, op.from, op.below)
      return
    case 'pruneReceipts':
      pruneReceipts(state, op.before)
      return
    case 'putKey':
      state.keys.set(op.name, op.value)
      return
    case 'deleteKey':
      state.keys.delete(op.name)
      return
  }
}

function putOutbox(state: IdentityState, row: OutboxRow): void {
  let rows = state.outbox.get(row.to)
  if (rows === undefined) state.outbox.set(row.to, (rows = new KeyedRows()))
  const entry: IdEntry = { row, receipt: undefined }
  rows.insert(row.seq, entry)
  state.ids.set(row.id, entry)
  state.outboxCount += 1
  if (isExpiring(row)) state.expiring += 1
}

function expire(state: IdentityState, to: PeerId, seq: number, reason: string | undefined): void {
  const entry = state.outbox.get(to)?.get(seq)
  if (entry === undefined) return
  const row = rowOf(entry)
  if (isExpiring(row)) state.expiring -= 1
  entry.row = { ...row, contents: new Uint8Array(0), expired: true, ...(reason !== undefined && { failed: reason }) }
}

function release(state: IdentityState, to: PeerId, seq: number): void {
  const entry = state.outbox.get(to)?.get(seq)
  if (entry !== undefined) entry.row = { ...rowOf(entry), contents: new Uint8Array(0) }
}

function ack(state: IdentityState, to: PeerId, upTo: number, at: number, receipts: Receipt[]): void {
  const rows = state.outbox.get(to)
  if (rows === undefined) return
  const settled = rows.deleteUpTo(upTo)
  let top = -1
  for (let i = 0; i < settled.length; i++) {
    const entry = settled[i] as IdEntry
    const row = rowOf(entry)
    state.outboxCount -= 1
    if (isExpiring(row)) state.expiring -= 1
    entry.receipt = receiptOf(row, at)
    entry.row = undefined
    receipts.push(entry.receipt)
    top = row.seq
  }
  if (top !== -1) state.settled.set(to, Math.max(top, state.settled.get(to) ?? -1))
  if (rows.size === 0) state.outbox.delete(to)
}

function putInbox(state: IdentityState, row: InboxRow): void {
  let rows = state.inbox.get(row.from)
  if (rows === undefined) state.inbox.set(row.from, (rows = new KeyedRows()))
  rows.insert(row.index, row)
  state.inboxCount += 1
}

function deleteInbox(state: IdentityState, from: PeerId, below: number): void {
  const rows = state.inbox.get(from)
  if (rows === undefined) return
  state.inboxCount -= rows.deleteUpTo(below - 1).length
  if (rows.size === 0) state.inbox.delete(from)
}

function pruneReceipts(state: IdentityState, before: number): void {
  for (const [id, entry] of state.ids) {
    if (entry.receipt !== undefined && entry.receipt.at < before) state.ids.delete(id)
  }
}

// ---------------------------------------------------------------- copies

// Field-wise copies rather than structuredClone: rows are flat, and cloning a
// Uint8Array view with structuredClone would copy its whole underlying buffer.
// `new Uint8Array(x)` also turns a Node Buffer into an unshared plain copy.

function copyOutboxRow(row: OutboxRow): OutboxRow {
  return { ...row, contents: new Uint8Array(row.contents) }
}

function copyInboxRow(row: InboxRow): InboxRow {
  return { ...row, contents: new Uint8Array(row.contents) }
}

function copyReceipt(receipt: Receipt): Receipt {
  return { ...receipt }
}

// ---------------------------------------------------------------- rows of one stream

/**
 * Rows of one stream keyed by a non-negative integer, in key order, as two
 * parallel arrays. Inserting above the highest key and deleting the lowest are
 * O(1), so the usual pattern (append at the top, ack or process from the
 * bottom) never scans; a lookup or a page is O(log n) (+ limit). Other inserts
 * and deletes are O(n) but stay correct.
 */
class KeyedRows<T> {
  /** Keys ascending; entries before `head` are deleted. */
  private keys: number[] = []
  /** `rows[i]` is the row of `keys[i]`. */
  private rows: (T | undefined)[] = []
  private head = 0

  get size(): number {
    return this.keys.length - this.head
  }

  get(key: number): T | undefined {
    const i = firstAtOrAbove(this.keys, key, this.head)
    return this.keys[i] === key ? this.rows[i] : undefined
  }

  has(key: number): boolean {
    return this.keys[firstAtOrAbove(this.keys, key, this.head)] === key
  }

  /** Rows in key order. */
  *values(): IterableIterator<T> {
    for (let i = this.head; i < this.keys.length; i++) yield this.rows[i] as T
  }

  /** Adds a key that is not present. */
  insert(key: number, row: T): void {
    const last = this.keys[this.keys.length - 1]
    if (this.head === this.keys.length || (last !== undefined && last < key)) {
      this.keys.push(key)
      this.rows.push(row)
      return
    }
    const i = firstAtOrAbove(this.keys, key, this.head)
    this.keys.splice(i, 0, key)
    this.rows.splice(i, 0, row)
  }

  /** Deletes every key <= `upTo`; returns their rows in key order. */
  deleteUpTo(upTo: number): T[] {
    const deleted: T[] = []
    for (let key = this.keys[this.head]; key !== undefined && key <= upTo; key = this.keys[this.head]) {
      deleted.push(this.rows[this.head] as T)
      // Frees the row now: the slot stays until the next compaction.
      this.rows[this.head] = undefined
      this.head += 1
    }
    this.compact()
    return deleted
  }

  /** The highest key; -1 if none. */
  last(): number {
    return this.head < this.keys.length ? (this.keys[this.keys.length - 1] as number) : -1
  }

  /** The highest key <= `key`; -1 if none. */
  lastAtOrBelow(key: number): number {
    const i = firstAtOrAbove(this.keys, key + 1, this.head) - 1
    return i >= this.head ? (this.keys[i] as number) : -1
  }

  /** Up to `limit` rows in key order, from the first key >= `from`. */
  readFrom(from: number, limit: number): T[] {
    const start = firstAtOrAbove(this.keys, from, this.head)
    return this.rows.slice(start, Math.min(this.keys.length, start + limit)) as T[]
  }

  // Drops deleted slots once they are the majority: amortised O(1) per delete.
  private compact(): void {
    if (this.head >= 32 && this.head * 2 >= this.keys.length) {
      this.keys = this.keys.slice(this.head)
      this.rows = this.rows.slice(this.head)
      this.head = 0
    }
  }
}

function checkFaults(faults: StoreFaults | undefined): StoreFaults | undefined {
  if (faults === undefined) return undefined
  if (typeof faults !== 'object' || faults === null) throw new TypeError('MemoryStore: faults must be an object')
  for (const key of ['commit', 'read'] as const) {
    if (faults[key] !== undefined && typeof faults[key] !== 'function') throw new TypeError(`MemoryStore: faults.${key} must be a function`)
  }
  return faults
}
