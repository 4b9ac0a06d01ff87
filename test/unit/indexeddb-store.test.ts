// The IDB globals (IDBRequest, IDBKeyRange, ...) must be fake-indexeddb's: idb recognises requests by instanceof.
import 'fake-indexeddb/auto'
import { forceCloseDatabase, IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { isIlmError } from '../../src/core/errors.js'
import type { IlmErrorCode } from '../../src/core/errors.js'
import type { MessageId, PeerId } from '../../src/core/ids.js'
import type { InboxRow, OutboxRow, PeerStore, StoreOp } from '../../src/core/store.js'
import { ILM, MemoryNetwork, type Message } from '../../src/index.js'
import { deleteDatabase, IndexedDBStore, SCHEMA_VERSION } from '../../src/storage/indexeddb.js'
import { storeContract } from '../../src/testing/store-contract.js'
import { runContract } from '../helpers/contract.js'
import { createSchema1Stores, observeUpgraded, UPGRADED, writeSchema2 } from '../helpers/schema-2-database.js'

const B = 'bob' as PeerId
const C = 'carol' as PeerId
let identities = 0

/** A fresh local identity per test. */
function identity(): PeerId {
  identities += 1
  return `idb-test-${identities}` as PeerId
}

function row(seq: number, extra: Partial<OutboxRow> = {}): OutboxRow {
  return { to: B, seq, id: `m${seq}` as MessageId, contentKind: 'b', contents: new Uint8Array([seq % 256]), createdAt: 1, ...extra }
}

function inRow(index: number): InboxRow {
  return {
    from: C,
    index,
    id: `i${index}` as MessageId,
    epoch: '000000001.abcdef' as InboxRow['epoch'],
    seq: index,
    contentKind: 's',
    contents: new Uint8Array([index % 256]),
    receivedAt: 1,
  }
}

const put = (seq: number, extra: Partial<OutboxRow> = {}): StoreOp => ({ op: 'putOutbox', row: row(seq, extra) })

async function codeOf(promise: Promise<unknown>): Promise<IlmErrorCode> {
  const error = await promise.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e,
  )
  if (!isIlmError(error)) throw new Error(`expected an IlmError, got ${String(error)}`)
  return error.code
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e as Error,
  )
}

/** Records every connection the factory hands out, so a test can close one behind the store's back. */
function tracked(factory: IDBFactory): IDBDatabase[] {
  const connections: IDBDatabase[] = []
  const open = factory.open.bind(factory)
  factory.open = (name: string, version?: number) => {
    const request = open(name, version)
    request.addEventListener('success', () => connections.push(request.result))
    return request
  }
  return connections
}

/** The same databases, opened one schema version above what the store asks for: "the next app release". */
function nextRelease(factory: IDBFactory): IDBFactory {
  return otherRelease(factory, (version) => version + 1)
}

/** The same databases, opened at the schema version `version` gives for the one the store asks for: another app release. */
function otherRelease(factory: IDBFactory, version: (asked: number) => number): IDBFactory {
  return {
    open: (name: string, asked?: number) => factory.open(name, version(asked ?? 1)),
    deleteDatabase: (name: string) => factory.deleteDatabase(name),
    cmp: (a: unknown, b: unknown) => factory.cmp(a, b),
    databases: () => factory.databases(),
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

/** A plain connection at the current version (no versionchange handler: it blocks upgrades). */
function rawOpen(factory: IDBFactory, localId: PeerId): Promise<IDBDatabase> {
  return request(factory.open(`intersession:${localId}`))
}

async function rawAll<T>(db: IDBDatabase, store: string): Promise<T[]> {
  return request(db.transaction(store).objectStore(store).getAll()) as Promise<T[]>
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('IndexedDBStore contract (fake-indexeddb)', () => {
  runContract(storeContract(() => new IndexedDBStore({ indexedDB: new IDBFactory() })))
  const shared = new IndexedDBStore({ indexedDB: new IDBFactory() })
  runContract(
    storeContract(() => shared),
    '(one shared store)',
  )
  const paged = new IndexedDBStore({ indexedDB: new IDBFactory(), pageSize: 1 })
  runContract(
    storeContract(() => paged),
    '(pageSize 1)',
  )
})

describe('IndexedDBStore', () => {
  it('fences a handle once another tab opens the same identity', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const tabA = new IndexedDBStore({ indexedDB: factory })
    const tabB = new IndexedDBStore({ indexedDB: factory })
    const a = await tabA.open(id)
    await a.commit([put(0)])
    const b = await tabB.open(id)
    expect(await codeOf(a.commit([put(1)]))).toBe('STORE_FENCED')
    expect(await codeOf(a.readOutbox(B, 0, 10))).toBe('STORE_FENCED')
    expect(await codeOf(a.count())).toBe('STORE_FENCED')
    expect((await b.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([0])
    await b.commit([put(1)])
    // Tab A comes back (a new engine there) and takes over: B is fenced in turn.
    const a2 = await tabA.open(id)
    expect(await codeOf(b.load())).toBe('STORE_FENCED')
    expect(await a2.count()).toEqual({ outbound: 2, inbound: 0 })
    await a.close()
    await b.close()
  })

  it("commits racing another tab's open either apply whole before it or are fenced", async () => {
    const factory = new IDBFactory()
    const id = identity()
    const a = await new IndexedDBStore({ indexedDB: factory }).open(id)
    const outcomes: Promise<'applied' | IlmErrorCode>[] = []
    let opening: Promise<PeerStore> | undefined
    for (let i = 0; i < 30; i++) {
      outcomes.push(
        a.commit([put(2 * i), put(2 * i + 1)]).then(
          () => 'applied' as const,
          (e: unknown) => codeOf(Promise.reject(e)),
        ),
      )
      opening ??= new IndexedDBStore({ indexedDB: factory }).open(id)
      await new Promise((resolve) => setImmediate(resolve))
    }
    const b = (await opening)!
    const results = await Promise.all(outcomes)
    const applied = results.filter((r) => r === 'applied').length
    expect(applied).toBeGreaterThan(0)
    expect(applied).toBeLessThan(30)
    // A prefix applied, the rest fenced: never half a commit, never a write after the fence.
    expect(results).toEqual([...Array(applied).fill('applied'), ...Array(30 - applied).fill('STORE_FENCED')])
    expect((await b.readOutbox(B, 0, 100)).map((r) => r.seq)).toEqual(Array.from({ length: 2 * applied }, (_, i) => i))
  })

  it('stores the schema version, the stores and indexes, and the generation', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const store = new IndexedDBStore({ indexedDB: factory })
    const handle = await store.open(id)
    await handle.commit([put(0, { expiresAt: 50 }), put(1), put(2, { expiresAt: 60 }), { op: 'expire', to: B, seq: 2 }])
    await store.open(id)
    const db = await rawOpen(factory, id)
    try {
      expect(db.version).toBe(SCHEMA_VERSION)
      expect(Array.from(db.objectStoreNames).sort()).toEqual(['acks', 'inStreams', 'inbox', 'inboxFloors', 'keys', 'meta', 'outStreams', 'outbox', 'settled'])
      const tx = db.transaction(['outbox', 'meta', 'acks'])
      expect(Array.from(tx.objectStore('outbox').indexNames).sort()).toEqual(['expiry', 'id'])
      expect(tx.objectStore('outbox').index('id').unique).toBe(true)
      // A record may hold several rows: each of their ids and expiries is an index entry.
      expect(tx.objectStore('outbox').index('id').multiEntry).toBe(true)
      expect(tx.objectStore('outbox').index('expiry').multiEntry).toBe(true)
      expect(Array.from(tx.objectStore('acks').indexNames)).toEqual(['at'])
      expect(await request(tx.objectStore('meta').get('generation'))).toBe(2)
      // The commit's rows are one record. Only the row that can still expire carries the `expiry` field, and the record lists it.
      const [chunk, ...others] = await rawAll<{ seq: number; first: number; id: string[]; expiry: number[]; rows: (OutboxRow & { expiry?: number })[] }>(
        db,
        'outbox',
      )
      expect(others).toEqual([])
      expect([chunk?.first, chunk?.seq, chunk?.id, chunk?.expiry]).toEqual([0, 2, ['m0', 'm1', 'm2'], [50]])
      expect(chunk?.rows.map((r) => [r.seq, r.expiry])).toEqual([
        [0, 50],
        [1, undefined],
        [2, undefined],
      ])
    } finally {
      db.close()
    }
    expect((await factory.databases()).map((d) => d.name)).toContain(`intersession:${id}`)
  })

  it('names databases with dbName and wipes one with deleteDatabase', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const options = { indexedDB: factory, dbName: (localId: PeerId) => `app/${localId}` }
    const handle = await new IndexedDBStore(options).open(id)
    await handle.commit([put(0)])
    expect((await factory.databases()).map((d) => d.name)).toEqual([`app/${id}`])
    await deleteDatabase(id, options)
    expect(await factory.databases()).toEqual([])
    // The open handle stepped aside; it is fenced rather than recreating an empty database.
    expect(await codeOf(handle.count())).toBe('STORE_FENCED')
    expect(await factory.databases()).toEqual([])
    const fresh = await new IndexedDBStore(options).open(id)
    expect(await fresh.count()).toEqual({ outbound: 0, inbound: 0 })
  })

  it('stores only the bytes of a view, not its whole buffer', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    const big = new Uint8Array(4096).map((_, i) => i % 256)
    await handle.commit([put(0, { contents: big.subarray(10, 13) })])
    const [read] = await handle.readOutbox(B, 0, 1)
    expect(read?.contents).toEqual(new Uint8Array([10, 11, 12]))
    const db = await rawOpen(factory, id)
    const [stored] = await rawAll<OutboxRow>(db, 'outbox')
    db.close()
    expect(stored?.contents.buffer.byteLength).toBe(3)
  })

  it('keeps the inbox rows a commit stores as one record, and its own copy of their bytes', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    const big = new Uint8Array(4096).map((_, i) => i % 256)
    await handle.commit([0, 1, 2].map((index) => ({ op: 'putInbox', row: { ...inRow(index), contents: big.subarray(index, index + 2) } })))
    await handle.commit([3, 4].map((index) => ({ op: 'putInbox', row: inRow(index) })))
    const db = await rawOpen(factory, id)
    const records = await rawAll<{ index: number; first: number; lengths: number[]; bytes: Uint8Array; rows?: unknown }>(db, 'inbox')
    db.close()
    // By column (schema 8): the rows' lengths, and their bytes in one buffer of their own (not the 4 KiB they were viewed in).
    expect(records.map(({ first, index, lengths, rows }) => [first, index, lengths, rows])).toEqual([
      [0, 2, [2, 2, 2], undefined],
      [3, 4, [1, 1], undefined],
    ])
    expect(records[0]!.bytes.buffer.byteLength).toBe(6)
    expect([...records[0]!.bytes]).toEqual([0, 1, 1, 2, 2, 3])
    expect((await handle.readInbox(C, 1, 3)).map((r) => [r.index, [...r.contents]])).toEqual([
      [1, [1, 2]],
      [2, [2, 3]],
      [3, [3]],
    ])
    // A mark keeps its floor: the highest hides the rows below it. The records and floors below are deleted at the
    // stream's first mark, then only every 1,024 indexes or when a mark may empty the stream.
    await handle.commit([
      { op: 'deleteInbox', from: C, below: 1 },
      { op: 'deleteInbox', from: C, below: 4 },
    ])
    const after = await rawOpen(factory, id)
    const left = await rawAll<{ index: number; first: number; lengths: unknown[] }>(after, 'inbox')
    const floors = await rawAll(after, 'inboxFloors')
    after.close()
    expect(left.map(({ first, index, lengths }) => [first, index, lengths.length])).toEqual([
      [0, 2, 3],
      [3, 4, 2],
    ])
    expect(floors).toEqual([
      { from: C, below: 1 },
      { from: C, below: 4 },
    ])
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 1 })
    expect((await handle.readInbox(C, 0, 10)).map((r) => r.index)).toEqual([4])
    // Emptied, the stream takes any index, also one below its floor: the floor goes.
    await handle.commit([
      { op: 'deleteInbox', from: C, below: 9 },
      { op: 'putInbox', row: inRow(2) },
    ])
    expect((await handle.readInbox(C, 0, 10)).map((r) => r.index)).toEqual([2])
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 1 })
  })

  it('reads, counts, trims and follows inbox rows stored one per record (before chunks)', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    const db = await rawOpen(factory, id)
    const tx = db.transaction('inbox', 'readwrite')
    for (const index of [4, 5, 6]) tx.objectStore('inbox').add(inRow(index))
    await new Promise((resolve) => (tx.oncomplete = resolve))
    db.close()
    expect(await handle.readInbox(C, 5, 10)).toEqual([inRow(5), inRow(6)])
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 3 })
    await expect(codeOf(handle.commit([{ op: 'putInbox', row: inRow(6) }]))).resolves.toBe('STORE_FAILED')
    await handle.commit([
      { op: 'deleteInbox', from: C, below: 5 },
      { op: 'putInbox', row: inRow(7) },
    ])
    expect(await handle.readInbox(C, 0, 10)).toEqual([inRow(5), inRow(6), inRow(7)])
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 3 })
  })

  it('reads, settles, rewrites and trims chunks of row objects (schema 5 to 7), and writes chunks by column', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit([put(0)])
    const db = await rawOpen(factory, id)
    const tx = db.transaction(['outbox', 'inbox'], 'readwrite')
    const rows = [1, 2, 3, 4].map((seq) => row(seq, seq === 3 ? { expiresAt: 1e15 } : {}))
    tx.objectStore('outbox').add({
      to: B,
      seq: 4,
      first: 1,
      rows: rows.map((r) => (r.expiresAt === undefined ? r : { ...r, expiry: r.expiresAt })),
      id: rows.map((r) => r.id),
      expiry: [1e15],
    })
    const inRows = [0, 1, 2].map(inRow)
    tx.objectStore('inbox').add({ from: C, index: 2, first: 0, rows: inRows.map(({ from: _f, index: _i, ...rest }) => rest) })
    await new Promise((resolve) => (tx.oncomplete = resolve))
    db.close()
    expect(await handle.readOutbox(B, 2, 10)).toEqual([row(2), row(3, { expiresAt: 1e15 }), row(4)])
    expect(await handle.readInbox(C, 1, 10)).toEqual([inRow(1), inRow(2)])
    expect(await handle.count()).toEqual({ outbound: 5, inbound: 3 })
    expect(await handle.nextExpiry()).toBe(1e15)
    expect((await handle.findMessage(row(4).id))?.where).toBe('outbox')
    await handle.commit([{ op: 'release', to: B, seq: 2 }])
    expect((await handle.readOutbox(B, 1, 10)).map((r) => r.contents.byteLength)).toEqual([1, 0, 1, 1])
    expect((await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 5 }])).map((r) => r.seq)).toEqual([0, 1, 2])
    await handle.commit([{ op: 'pruneReceipts', before: 6 }])
    expect(await handle.readOutbox(B, 0, 10)).toEqual([row(3, { expiresAt: 1e15 }), row(4)])
    expect(await handle.findMessage(row(1).id)).toBeUndefined()
    await handle.commit([put(5), put(6, { expiresAt: 2e15 }), { op: 'deleteInbox', from: C, below: 1 }, { op: 'putInbox', row: inRow(3) }])
    expect(await handle.readOutbox(B, 0, 10)).toEqual([row(3, { expiresAt: 1e15 }), row(4), row(5), row(6, { expiresAt: 2e15 })])
    expect(await handle.readInbox(C, 0, 10)).toEqual([inRow(1), inRow(2), inRow(3)])
    expect(await handle.readExpired(3e15, 10)).toEqual([row(3, { expiresAt: 1e15 }), row(6, { expiresAt: 2e15 })])
    const after = await rawOpen(factory, id)
    const outbox = await rawAll<{ first: number; seq: number; rows?: unknown[]; lengths?: number[]; expiresAt?: unknown[]; expiry?: number[] }>(after, 'outbox')
    after.close()
    // The old chunk, trimmed by the prune, is written again by column; the new one too. Each has its expiresAt column and expiry index.
    expect(outbox.map((r) => [r.first, r.seq, r.rows?.length, r.lengths, r.expiresAt, r.expiry])).toEqual([
      [3, 4, undefined, [1, 1], [1e15, null], [1e15]],
      [5, 6, undefined, [1, 1], [null, 2e15], [2e15]],
    ])
  })

  it('stores rows by column only when the columns hold them whole: expired or failed rows, and inbox rows of two epochs, as objects', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit([put(0, { expiresAt: 50 }), put(1), put(2, { expiresAt: 60 })])
    await handle.commit([{ op: 'expire', to: B, seq: 0, reason: 'mailbox full' }])
    const epochs = [0, 1, 2].map((index) => ({ ...inRow(index), epoch: (index === 2 ? '000000002.abcdef' : inRow(index).epoch) as InboxRow['epoch'] }))
    await handle.commit(epochs.map((r) => ({ op: 'putInbox', row: r })))
    const db = await rawOpen(factory, id)
    const outbox = await rawAll<{ rows?: unknown[]; lengths?: unknown[] }>(db, 'outbox')
    const inbox = await rawAll<{ rows?: unknown[]; lengths?: unknown[] }>(db, 'inbox')
    db.close()
    expect(outbox.map((r) => [r.rows?.length, r.lengths])).toEqual([[3, undefined]])
    expect(inbox.map((r) => [r.rows?.length, r.lengths])).toEqual([[3, undefined]])
    expect(await handle.readOutbox(B, 0, 10)).toEqual([
      row(0, { expiresAt: 50, expired: true, failed: 'mailbox full', contents: new Uint8Array(0) }),
      row(1),
      row(2, { expiresAt: 60 }),
    ])
    expect(await handle.readInbox(C, 0, 10)).toEqual(epochs)
    expect(await handle.readExpired(100, 10)).toEqual([row(2, { expiresAt: 60 })])
    // A chunk by column whose acked row had an expiresAt is written again of rows, each with bytes of its own: not
    // views that would store the whole buffer again.
    const kib = (seq: number): Uint8Array => new Uint8Array(1024).fill(seq)
    await handle.commit([put(3, { expiresAt: 70, contents: kib(3) }), put(4, { contents: kib(4) }), put(5, { contents: kib(5) })])
    await handle.commit([{ op: 'ack', to: B, upTo: 3, at: 5 }])
    const after = await rawOpen(factory, id)
    const [, chunk] = await rawAll<{ first: number; rows?: OutboxRow[] }>(after, 'outbox')
    after.close()
    expect(chunk?.rows?.map((r) => [r.seq, r.contents.byteLength, r.contents.buffer.byteLength])).toEqual([
      [3, 0, 0],
      [4, 1024, 1024],
      [5, 1024, 1024],
    ])
    expect((await handle.readOutbox(B, 4, 10)).map((r) => [...new Set(r.contents)])).toEqual([[4], [5]])
  })

  it('maps a QuotaExceededError thrown by a request to QUOTA_EXCEEDED and applies nothing', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    await handle.commit([put(0)])
    const add = IDBObjectStore.prototype.add
    let calls = 0
    vi.spyOn(IDBObjectStore.prototype, 'add').mockImplementation(function (this: IDBObjectStore, ...args) {
      calls += 1
      if (calls === 1) throw new DOMException('quota', 'QuotaExceededError')
      return add.apply(this, args)
    })
    const error = await rejection(
      handle.commit([{ op: 'ack', to: B, upTo: 0, at: 1 }, put(1), put(2), { op: 'outStream', stream: { to: B, nextSeq: 3, ackedUpTo: 0 } }]),
    )
    expect(isIlmError(error, 'QUOTA_EXCEEDED')).toBe(true)
    expect((error.cause as DOMException).name).toBe('QuotaExceededError')
    vi.restoreAllMocks()
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([0])
    expect(await handle.findMessage(row(0).id)).toEqual({ where: 'outbox', to: B, seq: 0, expired: false })
    expect((await handle.load()).outStreams).toEqual([])
    await handle.commit([put(1), put(2)])
    expect(await handle.count()).toEqual({ outbound: 3, inbound: 0 })
  })

  it('maps a transaction aborted with QuotaExceededError (the browser path) to QUOTA_EXCEEDED', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    const add = IDBObjectStore.prototype.add
    vi.spyOn(IDBObjectStore.prototype, 'add').mockImplementationOnce(function (this: IDBObjectStore, ...args) {
      const req = add.apply(this, args)
      // Browsers report a full disk when the transaction commits: it aborts with the quota error.
      // `_abort(name)` is fake-indexeddb's internal way to abort with an error.
      const tx = this.transaction as IDBTransaction & { _abort(name: string): void }
      req.addEventListener('success', () => tx._abort('QuotaExceededError'))
      return req
    })
    const error = await rejection(handle.commit([put(0), put(1)]))
    expect(isIlmError(error, 'QUOTA_EXCEEDED')).toBe(true)
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 0 })
  })

  it('a duplicate message id is refused as DUPLICATE_ID, and nothing of its commit is applied', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    await handle.commit([put(0)])
    // In a record of its own, and in one with another row.
    for (const ops of [[put(1, { id: row(0).id })], [put(1), put(2, { id: row(0).id })]]) {
      const error = await rejection(handle.commit(ops))
      expect(isIlmError(error, 'DUPLICATE_ID')).toBe(true)
      expect(await handle.count()).toEqual({ outbound: 1, inbound: 0 })
    }
  })

  it('reopens after the connection was closed behind its back', async () => {
    const factory = new IDBFactory()
    const connections = tracked(factory)
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(identity())
    await handle.commit([put(0)])
    connections.at(-1)?.close()
    const error = await rejection(handle.commit([put(1)]))
    expect(isIlmError(error, 'STORE_FAILED')).toBe(true)
    expect((error.cause as DOMException).name).toBe('InvalidStateError')
    expect(connections).toHaveLength(1)
    await handle.commit([put(1)])
    expect(connections).toHaveLength(2)
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([0, 1])
  })

  it("reopens after Safari's lost connection", async () => {
    const factory = new IDBFactory()
    const connections = tracked(factory)
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(identity())
    vi.spyOn(IDBDatabase.prototype, 'transaction').mockImplementationOnce(() => {
      throw new DOMException('Connection to Indexed Database server lost. Refresh the page to try again', 'UnknownError')
    })
    expect(await codeOf(handle.load())).toBe('STORE_FAILED')
    expect(await handle.load()).toEqual({ meta: undefined, outStreams: [], inStreams: [] })
    expect(connections).toHaveLength(2)
  })

  it('reopens transparently after the browser closed the connection, keeping call order', async () => {
    const factory = new IDBFactory()
    const connections = tracked(factory)
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(identity())
    await handle.commit([put(0), put(1), put(2)])
    forceCloseDatabase(connections.at(-1) as never)
    // All three queue behind one reconnect and still run in call order.
    const calls = [
      handle.commit([{ op: 'ack', to: B, upTo: 0, at: 1 }]),
      handle.readOutbox(B, 0, 10),
      handle.commit([{ op: 'ack', to: B, upTo: 1, at: 2 }]),
      handle.readOutbox(B, 0, 10),
    ] as const
    const [first, afterFirst, second, afterSecond] = await Promise.all(calls)
    expect(first.map((r) => r.seq)).toEqual([0])
    expect(afterFirst.map((r) => r.seq)).toEqual([1, 2])
    expect(second.map((r) => r.seq)).toEqual([1])
    expect(afterSecond.map((r) => r.seq)).toEqual([2])
    expect(connections).toHaveLength(2)
  })

  it('is fenced when it reconnects after another handle opened meanwhile', async () => {
    const factory = new IDBFactory()
    const connections = tracked(factory)
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    forceCloseDatabase(connections.at(-1) as never)
    await new IndexedDBStore({ indexedDB: factory }).open(id)
    expect(await codeOf(handle.commit([put(0)]))).toBe('STORE_FENCED')
    expect(await codeOf(handle.count())).toBe('STORE_FENCED')
    await handle.close()
    expect(await codeOf(handle.count())).toBe('CLOSED')
  })

  it('a release before stream counters implied by their rows cannot open a database of this one (schema 7): STORE_FAILED, VersionError', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit([put(0), { op: 'outStream', stream: { to: B, nextSeq: 1, ackedUpTo: -1 } }])
    await handle.commit([put(1), put(2)])
    await handle.close()
    const error = await rejection(new IndexedDBStore({ indexedDB: otherRelease(factory, () => 6) }).open(id))
    expect(isIlmError(error, 'STORE_FAILED')).toBe(true)
    expect((error.cause as Error).name).toBe('VersionError')
    const again = await new IndexedDBStore({ indexedDB: factory }).open(id)
    expect((await again.load()).outStreams).toEqual([{ to: B, nextSeq: 3, ackedUpTo: -1 }])
    await again.close()
  })

  it('a release before records by column cannot open a database of this one (schema 8): STORE_FAILED, VersionError', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit([put(0), put(1), put(2)])
    await handle.close()
    const error = await rejection(new IndexedDBStore({ indexedDB: otherRelease(factory, () => 7) }).open(id))
    expect(isIlmError(error, 'STORE_FAILED')).toBe(true)
    expect((error.cause as Error).name).toBe('VersionError')
    const again = await new IndexedDBStore({ indexedDB: factory }).open(id)
    expect((await again.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([0, 1, 2])
    await again.close()
  })

  it('rejects with STORE_BLOCKED while an old connection blocks the upgrade, and opens once it is gone', async () => {
    const factory = new IDBFactory()
    const id = identity()
    await (await new IndexedDBStore({ indexedDB: factory }).open(id)).close()
    const oldTab = await rawOpen(factory, id)
    const next = new IndexedDBStore({ indexedDB: nextRelease(factory), blockedTimeoutMs: 20 })
    expect(await codeOf(next.open(id))).toBe('STORE_BLOCKED')
    oldTab.close()
    // The given-up open proceeds now, but its upgrade is aborted and its connection not kept.
    const check = await rawOpen(factory, id)
    expect(check.version).toBe(SCHEMA_VERSION)
    check.close()
    const handle = await next.open(id)
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 0 })
  })

  it('steps aside for an upgrade elsewhere and is then fenced', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit([put(0)])
    const upgraded = await new IndexedDBStore({ indexedDB: nextRelease(factory), blockedTimeoutMs: 20 }).open(id)
    expect(await upgraded.count()).toEqual({ outbound: 1, inbound: 0 })
    expect(await codeOf(handle.count())).toBe('STORE_FENCED')
  })

  it('upgrades a schema 1 database: its receipts become acknowledged outbox rows, its queue stays', async () => {
    const factory = new IDBFactory()
    const id = identity()
    // Schema 1 as release 0.1 made it: receipts in a store of their own.
    const open = factory.open(`intersession:${id}`, 1)
    open.onupgradeneeded = () => {
      createSchema1Stores(open.result)
      open.result.createObjectStore('receipts', { keyPath: 'id' }).createIndex('at', 'at')
    }
    const v1 = await request(open)
    const tx = v1.transaction(['meta', 'outStreams', 'outbox', 'receipts'], 'readwrite')
    tx.objectStore('meta').put({ epoch: '000000001.abcdef', createdAt: 1 }, 'identity')
    tx.objectStore('outStreams').put({ to: B, nextSeq: 4, ackedUpTo: 1 })
    tx.objectStore('outbox').put({ ...row(2), expiresAt: 90, expiry: 90 })
    tx.objectStore('outbox').put(row(3))
    tx.objectStore('receipts').put({ id: 'm0', to: B, seq: 0, status: 'delivered', at: 10 })
    tx.objectStore('receipts').put({ id: 'm1', to: B, seq: 1, status: 'failed', reason: 'retention', at: 20 })
    await new Promise((resolve) => (tx.oncomplete = resolve))
    v1.close()

    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([2, 3])
    expect(await handle.count()).toEqual({ outbound: 2, inbound: 0 })
    expect(await handle.findMessage('m0' as MessageId)).toEqual({ where: 'receipt', receipt: { id: 'm0', to: B, seq: 0, status: 'delivered', at: 10 } })
    expect(await handle.findMessage('m1' as MessageId)).toEqual({
      where: 'receipt',
      receipt: { id: 'm1', to: B, seq: 1, status: 'failed', reason: 'retention', at: 20 },
    })
    expect((await handle.findMessage('m2' as MessageId))?.where).toBe('outbox')
    expect((await handle.readExpired(100, 10)).map((r) => r.seq)).toEqual([2])
    expect(await codeOf(handle.commit([put(4, { id: 'm0' as MessageId })]))).toBe('DUPLICATE_ID')
    await handle.commit([{ op: 'pruneReceipts', before: 15 }])
    expect(await handle.findMessage('m0' as MessageId)).toBeUndefined()
    expect((await handle.findMessage('m1' as MessageId))?.where).toBe('receipt')
  })

  it("upgrades a schema 2 database: receipts become each stream's watermark and ack entries, its queue stays", async () => {
    const factory = new IDBFactory()
    const id = identity()
    await writeSchema2(factory, `intersession:${id}`)
    expect(await observeUpgraded(await new IndexedDBStore({ indexedDB: factory }).open(id))).toEqual(UPGRADED)
    const db = await rawOpen(factory, id)
    try {
      const outbox = db.transaction('outbox').objectStore('outbox')
      expect(Array.from(outbox.indexNames).sort()).toEqual(['expiry', 'id'])
      expect([outbox.index('id').unique, outbox.index('id').multiEntry, outbox.index('expiry').multiEntry]).toEqual([true, true, true])
      const rows = await rawAll<Record<string, unknown>>(db, 'outbox')
      expect(rows.filter((r) => 'pending' in r || 'ackedAt' in r)).toEqual([])
    } finally {
      db.close()
    }
  })

  it('reads pages with bounded requests', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    await handle.commit(Array.from({ length: 100 }, (_, seq) => put(seq, seq % 2 === 0 ? { expiresAt: 1_000 + seq } : {})))
    await handle.commit(Array.from({ length: 100 }, (_, i) => ({ op: 'putInbox', row: inRow(i) })))
    const storeGetAll = vi.spyOn(IDBObjectStore.prototype, 'getAll')
    const indexGetAll = vi.spyOn(IDBIndex.prototype, 'getAll')
    expect((await handle.readOutbox(B, 40, 5)).map((r) => r.seq)).toEqual([40, 41, 42, 43, 44])
    expect((await handle.readInbox(C, 90, 3)).map((r) => r.index)).toEqual([90, 91, 92])
    expect((await handle.readExpired(10_000, 4)).map((r) => r.seq)).toEqual([0, 2, 4, 6])
    expect(await handle.readOutbox(B, 0, 0)).toEqual([])
    expect(storeGetAll.mock.calls.map((call) => call[1])).toEqual([5, 3])
    expect(indexGetAll.mock.calls.map((call) => call[1])).toEqual([4])
    expect(await handle.nextExpiry()).toBe(1_000)
  })

  it('walks ack and pruneReceipts ranges in pages of pageSize', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory(), pageSize: 16 }).open(identity())
    // A record per row: the pages count records.
    for (let seq = 0; seq < 100; seq++) await handle.commit([put(seq)])
    const getAll = vi.spyOn(IDBObjectStore.prototype, 'getAll')
    const receipts = await handle.commit([{ op: 'ack', to: B, upTo: 69, at: 5 }])
    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 70 }, (_, i) => i))
    // The one record that may hold upTo and rows above it, then the records up to upTo in pages.
    expect(getAll.mock.calls.map((call) => call[1])).toEqual([1, 16, 16, 16, 16, 16])
    // 20 more acks, one ack entry each: 21 entries to prune, in pages of 16.
    for (let upTo = 70; upTo < 90; upTo++) await handle.commit([{ op: 'ack', to: B, upTo, at: 5 }])
    const getAllKeys = vi.spyOn(IDBIndex.prototype, 'getAllKeys')
    await handle.commit([{ op: 'pruneReceipts', before: 6 }])
    expect(getAllKeys.mock.calls.map((call) => call[1])).toEqual([16, 16])
    expect(await handle.findMessage(row(3).id)).toBeUndefined()
    expect(await handle.findMessage(row(89).id)).toBeUndefined()
    expect(await handle.count()).toEqual({ outbound: 10, inbound: 0 })
    expect((await handle.readOutbox(B, 0, 100)).map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 90 + i))
  })

  it('an ack reads no record wholly above upTo: a sender pipelining holds many waiting rows', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    // A record per row, as sends committed one by one write them.
    for (let seq = 0; seq < 100; seq++) await handle.commit([put(seq)])
    const requests: IDBRequest<unknown[]>[] = []
    const { getAll } = IDBObjectStore.prototype as { getAll: (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['getAll']>) => IDBRequest<unknown[]> }
    const spy = vi.spyOn(IDBObjectStore.prototype, 'getAll').mockImplementation(function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['getAll']>) {
      const request = getAll.apply(this, args)
      requests.push(request)
      return request
    })
    const receipts = await handle.commit([{ op: 'ack', to: B, upTo: 9, at: 5 }])
    spy.mockRestore()
    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i))
    // Rows 0-9, and row 10's record (the first above upTo, which might have held rows up to it); not the 89 after.
    expect(requests.reduce((sum, request) => sum + request.result.length, 0)).toBe(11)
    expect((await handle.readOutbox(B, 0, 100)).map((r) => r.seq)).toEqual(Array.from({ length: 90 }, (_, i) => 10 + i))
  })

  it('acks with one read of the rows (and one of the record holding upTo) and no write per row, except rows with large contents or an expiry', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    const large = new Uint8Array(257).fill(7)
    await handle.commit([put(0), put(1, { contents: large }), put(2, { expiresAt: 1e15 }), put(3), put(4)])
    const puts = vi.spyOn(IDBObjectStore.prototype, 'put')
    const gets = vi.spyOn(IDBObjectStore.prototype, 'getAll')
    const receipts = await handle.commit([{ op: 'ack', to: B, upTo: 3, at: 9 }])
    expect(receipts.map((r) => [r.seq, r.status, r.at])).toEqual([
      [0, 'delivered', 9],
      [1, 'delivered', 9],
      [2, 'delivered', 9],
      [3, 'delivered', 9],
    ])
    // The records ending at or below upTo (none), and the one after (rows 0-4).
    expect(gets).toHaveBeenCalledTimes(2)
    // The watermark and the ack entry at once (the rows reach upTo), then the record of rows 0-4 rewritten once read (rows 1 and 2 changed).
    expect(puts.mock.calls.map(([value]) => (value as { upTo?: number }).upTo ?? (value as { seq: number }).seq)).toEqual([3, 3, 4])
    puts.mockRestore()
    const db = await rawOpen(factory, id)
    try {
      const [chunk] = await rawAll<{ expiry?: number[]; rows: (OutboxRow & { expiry?: number })[] }>(db, 'outbox')
      expect(chunk?.expiry).toBeUndefined()
      expect(chunk?.rows.map((r) => [r.seq, r.contents.byteLength, r.expiry])).toEqual([
        [0, 1, undefined],
        [1, 0, undefined],
        [2, 0, undefined],
        [3, 1, undefined],
        [4, 1, undefined],
      ])
      expect(await rawAll(db, 'settled')).toEqual([{ to: B, upTo: 3, at: 9 }])
    } finally {
      db.close()
    }
    expect(await handle.nextExpiry()).toBeUndefined()
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([4])
    expect(await handle.findMessage(row(3).id)).toEqual({ where: 'receipt', receipt: { id: row(3).id, to: B, seq: 3, status: 'delivered', at: 9 } })
  })

  it('keeps the rows a commit queues or stores on a stream as records of at most 64; outbox records rewritten whole, trimmed by a prune', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit(Array.from({ length: 150 }, (_, seq) => put(seq, seq === 140 ? { expiresAt: 1e15 } : {})))
    type Chunk = { seq: number; first: number; id: string[]; expiry?: number[]; lengths?: number[]; rows?: OutboxRow[] }
    const rowCount = (r: Chunk): number => r.lengths?.length ?? r.rows?.length ?? 1
    const records = async (store = 'outbox'): Promise<Chunk[]> => {
      const db = await rawOpen(factory, id)
      try {
        return await rawAll<Chunk>(db, store)
      } finally {
        db.close()
      }
    }
    // The inbox's records too.
    await handle.commit(Array.from({ length: 150 }, (_, index) => ({ op: 'putInbox', row: inRow(index) })))
    expect((await records('inbox')).map(rowCount)).toEqual([64, 64, 22])
    expect((await records()).map((r) => [r.first, r.seq, rowCount(r), r.id.length, r.expiry])).toEqual([
      [0, 63, 64, 64, undefined],
      [64, 127, 64, 64, undefined],
      [128, 149, 22, 22, [1e15]],
    ])
    // A run of releases (the relay's mailbox took the messages) reads and writes each record it touches once.
    const gets = vi.spyOn(IDBObjectStore.prototype, 'getAll')
    const puts = vi.spyOn(IDBObjectStore.prototype, 'put')
    await handle.commit(Array.from({ length: 30 }, (_, i): StoreOp => ({ op: 'release', to: B, seq: 50 + i })))
    expect(gets).toHaveBeenCalledTimes(1)
    expect(puts.mock.calls.map(([value]) => (value as Chunk).seq)).toEqual([63, 127])
    vi.restoreAllMocks()
    expect((await handle.readOutbox(B, 48, 4)).map((r) => r.contents.byteLength)).toEqual([1, 1, 0, 0])
    await handle.commit([{ op: 'expire', to: B, seq: 140 }])
    expect((await records())[2]?.expiry).toBeUndefined()
    expect(await handle.nextExpiry()).toBeUndefined()
    // Receipts up to 99 pruned: the record of 64-127 keeps its rows above 99, and the ids below are free again.
    await handle.commit([{ op: 'ack', to: B, upTo: 99, at: 5 }])
    await handle.commit([{ op: 'ack', to: B, upTo: 110, at: 7 }])
    await handle.commit([{ op: 'pruneReceipts', before: 6 }])
    expect((await records()).map((r) => [r.first, r.seq, r.id[0]])).toEqual([
      [100, 127, 'm100'],
      [128, 149, 'm128'],
    ])
    expect(await handle.findMessage(row(99).id)).toBeUndefined()
    expect((await handle.findMessage(row(100).id))?.where).toBe('receipt')
    expect((await handle.findMessage(row(111).id))?.where).toBe('outbox')
    await handle.commit([put(150, { id: row(64).id })])
    expect(await handle.count()).toEqual({ outbound: 40, inbound: 150 })
  })

  it('splits a run of rows into records of at most 48 KiB (Chromium keeps a value over 64 KiB as a blob file)', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    const kib = (n: number): Uint8Array => new Uint8Array(n * 1024)
    // 20 + 20 KiB fit, a third does not; 60 KiB alone is a row of its own, as any single row is.
    const sizes = [20, 20, 20, 60, 1, 1]
    await handle.commit(sizes.map((n, seq) => put(seq, { contents: kib(n) })))
    await handle.commit(sizes.map((n, index) => ({ op: 'putInbox', row: { ...inRow(index), contents: kib(n) } })))
    const db = await rawOpen(factory, id)
    try {
      const shape = (records: Array<{ lengths?: unknown[]; rows?: unknown[] }>): number[] => records.map((r) => r.lengths?.length ?? r.rows?.length ?? 1)
      expect(shape(await rawAll(db, 'outbox'))).toEqual([2, 1, 1, 2])
      expect(shape(await rawAll(db, 'inbox'))).toEqual([2, 1, 1, 2])
    } finally {
      db.close()
    }
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.contents.byteLength / 1024)).toEqual(sizes)
    expect((await handle.readInbox(C, 0, 10)).map((r) => r.contents.byteLength / 1024)).toEqual(sizes)
  })

  it('an ack above the rows there are corrects the watermark it wrote at once: to the highest row, or back', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await handle.commit([put(0), put(1), put(2)])
    await handle.commit([{ op: 'ack', to: B, upTo: 0, at: 5 }])
    // Acks of seqs never queued: the first finds rows 1 and 2, the second none.
    expect((await handle.commit([{ op: 'ack', to: B, upTo: 9, at: 6 }])).map((r) => r.seq)).toEqual([1, 2])
    expect(await handle.commit([{ op: 'ack', to: B, upTo: 12, at: 7 }])).toEqual([])
    const db = await rawOpen(factory, id)
    try {
      expect(await rawAll(db, 'settled')).toEqual([{ to: B, upTo: 2, at: 6 }])
      expect(await rawAll(db, 'acks')).toEqual([
        { to: B, upTo: 0, at: 5 },
        { to: B, upTo: 2, at: 6 },
      ])
    } finally {
      db.close()
    }
    // Seq 3 is above the watermark: queued as usual.
    await handle.commit([put(3)])
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([3])
  })

  it('an ack of more rows than a page reads them all before a later op of its commit queues a row in its range', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory(), pageSize: 2 }).open(identity())
    await handle.commit([put(0), put(1), put(2)])
    // Acked up to 3 before row 3 is queued, in the same commit: the ack settles 0..2 only, and row 3 waits.
    expect((await handle.commit([{ op: 'ack', to: B, upTo: 3, at: 5 }, put(3)])).map((r) => r.seq)).toEqual([0, 1, 2])
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([3])
  })

  it('a commit that fails while an ack reads its rows and a later op waits leaves no rejection unhandled', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    await handle.commit([put(0), put(1), { op: 'putOutbox', row: row(0, { to: C, id: 'c0' as MessageId }) }])
    const unhandled: unknown[] = []
    const record = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', record)
    try {
      // Seq 1 of bob is queued already: the add fails, which aborts the ack's read while the expire still waits.
      const failing = handle.commit([put(1, { id: 'again' as MessageId }), { op: 'ack', to: B, upTo: 0, at: 5 }, { op: 'expire', to: C, seq: 0 }])
      expect(await codeOf(failing)).toBe('STORE_FAILED')
      await new Promise((resolve) => setTimeout(resolve, 20))
    } finally {
      process.off('unhandledRejection', record)
    }
    expect(unhandled).toEqual([])
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([0, 1])
  })

  it("reads no watermark once its own commits told it, and reads it again after a failed commit, during another's, or after a reconnect", async () => {
    const factory = new IDBFactory()
    const connections = tracked(factory)
    const handle = await new IndexedDBStore({ indexedDB: factory }).open(identity())
    await handle.commit([put(0), put(1)])
    const gets = vi.spyOn(IDBObjectStore.prototype, 'get')
    const settledReads = (): number => gets.mock.contexts.filter((store) => (store as IDBObjectStore).name === 'settled').length
    await handle.commit([put(2), { op: 'ack', to: B, upTo: 1, at: 5 }, put(3)])
    await handle.commit([put(4)])
    expect(settledReads()).toBe(0)
    // Refused (seq 1 is settled), and decided from what the handle knew: nothing applied.
    expect(await codeOf(handle.commit([put(5), put(1, { id: 'again' as MessageId })]))).toBe('STORE_FAILED')
    expect(settledReads()).toBe(0)
    await handle.commit([put(5)])
    expect(settledReads()).toBe(1)
    // Two commits in flight: the second reads what the first leaves.
    await Promise.all([handle.commit([{ op: 'ack', to: B, upTo: 3, at: 6 }]), handle.commit([put(6)])])
    expect(settledReads()).toBe(2)
    await handle.commit([put(7)])
    expect(settledReads()).toBe(2)
    forceCloseDatabase(connections.at(-1) as never)
    await handle.commit([put(8)])
    expect(settledReads()).toBe(3)
    gets.mockRestore()
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([4, 5, 6, 7, 8])
    expect(await codeOf(handle.commit([put(3, { id: 'late' as MessageId })]))).toBe('STORE_FAILED')
  })

  it('a fenced handle fails as fenced even where what it knows of the watermarks would refuse the row', async () => {
    const factory = new IDBFactory()
    const id = identity()
    const a = await new IndexedDBStore({ indexedDB: factory }).open(id)
    await a.commit([put(0), put(1), put(2)])
    await a.commit([{ op: 'ack', to: B, upTo: 2, at: 5 }])
    const b = await new IndexedDBStore({ indexedDB: factory }).open(id)
    expect(await codeOf(a.commit([put(1, { id: 'again' as MessageId })]))).toBe('STORE_FENCED')
    expect(await b.count()).toEqual({ outbound: 0, inbound: 0 })
  })

  it('keeps ack times from going back within a stream, so that a prune removes a prefix of it', async () => {
    const handle = await new IndexedDBStore({ indexedDB: new IDBFactory() }).open(identity())
    await handle.commit([put(0), put(1), put(2)])
    await handle.commit([{ op: 'ack', to: B, upTo: 0, at: 50 }])
    // The clock went back: this receipt takes the time of the ack before it.
    expect((await handle.commit([{ op: 'ack', to: B, upTo: 1, at: 20 }])).map((r) => r.at)).toEqual([50])
    await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 60 }])
    await handle.commit([{ op: 'pruneReceipts', before: 30 }])
    expect((await handle.findMessage(row(1).id))?.where).toBe('receipt')
    await handle.commit([{ op: 'pruneReceipts', before: 55 }])
    expect(await handle.findMessage(row(0).id)).toBeUndefined()
    expect(await handle.findMessage(row(1).id)).toBeUndefined()
    expect(await handle.findMessage(row(2).id)).toEqual({ where: 'receipt', receipt: { id: row(2).id, to: B, seq: 2, status: 'delivered', at: 60 } })
  })

  it('validates its options and needs IndexedDB only at open', async () => {
    expect(() => new IndexedDBStore({ pageSize: 0 })).toThrow(RangeError)
    expect(() => new IndexedDBStore({ blockedTimeoutMs: -1 })).toThrow(RangeError)
    expect(await codeOf(new IndexedDBStore().open('has space' as PeerId))).toBe('INVALID_PEER_ID')
  })

  it('rejects with STORE_FAILED when the factory refuses to open (storage disabled)', async () => {
    const refusing = {
      open: () => {
        throw new DOMException('denied', 'SecurityError')
      },
    } as unknown as IDBFactory
    const error = await rejection(new IndexedDBStore({ indexedDB: refusing }).open(identity()))
    expect(isIlmError(error, 'STORE_FAILED')).toBe(true)
    expect((error.cause as DOMException).name).toBe('SecurityError')
  })
})

describe('engine on IndexedDBStore', () => {
  async function engine(net: MemoryNetwork, factory: IDBFactory, id: string): Promise<ILM> {
    return ILM.open({ store: new IndexedDBStore({ indexedDB: factory }), transport: net.connect(id) })
  }

  it('delivers a few hundred messages in order', async () => {
    const factory = new IDBFactory()
    const net = new MemoryNetwork()
    const a = await engine(net, factory, 'alice')
    const b = await engine(net, factory, 'bob')
    const got: Message[] = []
    b.onMessage((m) => void got.push(m))
    const sent = await Promise.all(Array.from({ length: 300 }, (_, i) => a.send('bob', `m${i}`)))
    await until(() => got.length >= 300, '300 messages')
    expect(got.map((m) => m.contents)).toEqual(Array.from({ length: 300 }, (_, i) => `m${i}`))
    expect(got.map((m) => m.id)).toEqual(sent.map((r) => r.id))
    await a.delivered(sent.at(-1)!.id)
    await until(async () => (await a.pending()).outbound === 0, 'acks')
    await a.close()
    await b.close()
  })

  it('keeps pending messages across a restart of both ends', async () => {
    const factory = new IDBFactory()
    const net = new MemoryNetwork()
    let a = await engine(net, factory, 'alice')
    let b = await engine(net, factory, 'bob')
    // Stored by bob (delivered) but not processed: no handler yet.
    for (let i = 0; i < 20; i++) await a.send('bob', `early${i}`)
    await until(async () => (await a.pending()).outbound === 0, 'bob stores the early messages')
    expect(await b.pending()).toEqual({ outbound: 0, inbound: 20 })
    await b.close()
    // Bob is away: these stay in alice's outbox.
    for (let i = 0; i < 30; i++) await a.send('bob', `late${i}`)
    expect(await a.pending()).toEqual({ outbound: 30, inbound: 0 })
    await a.close()

    a = await engine(net, factory, 'alice')
    expect(await a.pending()).toEqual({ outbound: 30, inbound: 0 })
    b = await engine(net, factory, 'bob')
    const got: unknown[] = []
    b.onMessage((m) => void got.push(m.contents))
    await until(() => got.length >= 50, 'all 50 messages')
    expect(got).toEqual([...Array.from({ length: 20 }, (_, i) => `early${i}`), ...Array.from({ length: 30 }, (_, i) => `late${i}`)])
    await until(async () => (await a.pending()).outbound === 0 && (await b.pending()).inbound === 0, 'everything acked')
    await a.close()
    await b.close()
  })
})
