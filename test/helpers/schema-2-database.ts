/**
 * A database as IndexedDBStore's schema 2 left it (releases before
 * 2026-12-05), and what the current store must show of it once opened: the
 * upgrade check run in Node (fake-indexeddb, test/unit/indexeddb-store.test.ts)
 * and in real Chromium and Firefox (test/browser/runtime.spec.ts,
 * test/engines/store-contract.test.ts). Plain IndexedDB API only, so the
 * browser test page can bundle it.
 */
import type { MessageId, PeerId } from '../../src/core/ids.js'
import type { OutboxRow, PeerStore, StoreOp } from '../../src/core/store.js'

const B = 'bob' as PeerId
const C = 'carol' as PeerId
const D = 'dave' as PeerId

function row(to: PeerId, seq: number, extra: Partial<OutboxRow> = {}): OutboxRow {
  return { to, seq, id: `${to}${seq}` as MessageId, contentKind: 'b', contents: new Uint8Array([seq]), createdAt: 1, ...extra }
}

/**
 * The object stores schema 1 created (written out here, not taken from the
 * store's code, so that a change there cannot move the fixture along with it);
 * returns the outbox. Schema 1 also had a `receipts` store, schema 2 two more
 * outbox indexes.
 */
export function createSchema1Stores(db: IDBDatabase): IDBObjectStore {
  db.createObjectStore('meta')
  db.createObjectStore('outStreams', { keyPath: 'to' })
  db.createObjectStore('inStreams', { keyPath: 'from' })
  const outbox = db.createObjectStore('outbox', { keyPath: ['to', 'seq'] })
  outbox.createIndex('id', 'id', { unique: true })
  outbox.createIndex('expiry', 'expiry')
  db.createObjectStore('inbox', { keyPath: ['from', 'index'] })
  return outbox
}

/**
 * Writes a schema 2 database named `name`: receipts are outbox rows with
 * `ackedAt` (contents dropped), waiting rows carry `pending`. Stream `bob`
 * has four receipts (one of them acknowledged at a time earlier than the one
 * before: a clock set back) and two waiting rows, one that can expire;
 * `carol` one receipt and one waiting row; `dave` only a waiting row.
 */
export async function writeSchema2(factory: IDBFactory, name: string): Promise<void> {
  const open = factory.open(name, 2)
  open.onupgradeneeded = () => {
    const outbox = createSchema1Stores(open.result)
    outbox.createIndex('pending', 'pending')
    outbox.createIndex('ackedAt', 'ackedAt')
  }
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    open.onsuccess = () => resolve(open.result)
    open.onerror = () => reject(open.error ?? new Error('open failed'))
  })
  const tx = db.transaction(['meta', 'outbox'], 'readwrite')
  tx.objectStore('meta').put({ epoch: '000000001.abcdef', createdAt: 1 }, 'identity')
  const receipt = (to: PeerId, seq: number, ackedAt: number, extra: Partial<OutboxRow> = {}): object => ({
    ...row(to, seq, { contents: new Uint8Array(0), ...extra }),
    ackedAt,
  })
  const waiting = (to: PeerId, seq: number, extra: Partial<OutboxRow> & { expiry?: number } = {}): object => ({ ...row(to, seq, extra), pending: [to, seq] })
  const outbox = tx.objectStore('outbox')
  outbox.put(receipt(B, 0, 10))
  outbox.put(receipt(B, 1, 10, { expired: true }))
  outbox.put(receipt(B, 2, 5, { expired: true, failed: 'retention' }))
  outbox.put(receipt(B, 3, 40))
  outbox.put(waiting(B, 4, { expiresAt: 90, expiry: 90 }))
  outbox.put(waiting(B, 5))
  outbox.put(receipt(C, 0, 30))
  outbox.put(waiting(C, 1))
  outbox.put(waiting(D, 0))
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onabort = () => reject(tx.error ?? new Error('aborted'))
  })
  db.close()
}

/**
 * Reads and writes the upgraded store of {@link writeSchema2} step by step and
 * returns what each step saw; it must equal {@link UPGRADED}.
 */
export async function observeUpgraded(handle: PeerStore): Promise<Record<string, unknown>> {
  const seen = async (to: PeerId, seq: number): Promise<unknown> => {
    const found = await handle.findMessage(`${to}${seq}` as MessageId)
    return found?.where === 'receipt' ? [found.receipt.status, found.receipt.at] : (found?.where ?? null)
  }
  const code = (promise: Promise<unknown>): Promise<unknown> =>
    promise.then(
      () => 'applied',
      (error: unknown) => (error as { code?: unknown }).code,
    )
  const seqs = (rows: readonly { seq: number }[]): number[] => rows.map((r) => r.seq)
  const put = (seq: number, id: string): StoreOp => ({ op: 'putOutbox', row: row(B, seq, { id: id as MessageId }) })
  const observed: Record<string, unknown> = {
    bobQueue: seqs(await handle.readOutbox(B, 0, 10)),
    carolQueue: seqs(await handle.readOutbox(C, 0, 10)),
    count: await handle.count(),
    receipts: await Promise.all([seen(B, 0), seen(B, 1), seen(B, 2), seen(B, 3), seen(B, 4), seen(C, 0), seen(D, 0)]),
    expired: seqs(await handle.readExpired(100, 10)),
    takenId: await code(handle.commit([put(6, `${B}0`)])),
    settledSeq: await code(handle.commit([put(3, 'fresh')])),
    acked: seqs(await handle.commit([{ op: 'ack', to: B, upTo: 4, at: 50 }])),
  }
  await handle.commit([{ op: 'pruneReceipts', before: 35 }])
  observed.afterPrune = await Promise.all([seen(B, 2), seen(C, 0), seen(B, 3), seen(B, 4)])
  observed.countAfterPrune = await handle.count()
  return observed
}

/** What {@link observeUpgraded} must see. */
export const UPGRADED: Record<string, unknown> = {
  bobQueue: [4, 5],
  carolQueue: [1],
  count: { outbound: 4, inbound: 0 },
  // bob 2 was acknowledged at 5, after bob 1 at 10: ack times never go back within a stream, so it keeps 10.
  receipts: [['delivered', 10], ['expired', 10], ['failed', 10], ['delivered', 40], 'outbox', ['delivered', 30], 'outbox'],
  expired: [4],
  takenId: 'DUPLICATE_ID',
  settledSeq: 'STORE_FAILED',
  acked: [4],
  afterPrune: [null, null, ['delivered', 40], ['delivered', 50]],
  countAfterPrune: { outbound: 3, inbound: 0 },
}
