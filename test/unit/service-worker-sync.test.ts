/**
 * The service worker's sync (src/service-worker) in Node: options checked at
 * once, the lock taken only if free, the budget, the hand-over to a tab, and
 * the engine always closed before the lock goes back. The engine is a
 * scripted session here; the real one, in a real service worker on a real
 * relay: test/browser/service-worker.spec.ts.
 */
// The IDB globals must be fake-indexeddb's (idb recognises requests by instanceof).
import 'fake-indexeddb/auto'
import { describe, expect, it } from 'vitest'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'
import { databaseExists, IndexedDBStore } from '../../src/storage/indexeddb.js'
import { openSyncSession } from '../../src/service-worker/sync-session.js'
import type { Message, PendingCounts } from '../../src/core/api.js'
import type { InboxRow, StoreOp } from '../../src/core/store.js'
import { encodeContents } from '../../src/core/contents.js'
import { MemoryStore } from '../../src/storage/memory.js'
import { Arrivals, ARRIVALS_KEPT } from '../../src/service-worker/arrivals.js'
import { resolveSyncOptions, type BackgroundSyncOptions, type ClosedArrival } from '../../src/service-worker/options.js'
import { runSync, type SyncEnv, type SyncSession } from '../../src/service-worker/sync-run.js'
import { identityLock } from '../../src/protocol/tabs.js'

const base: BackgroundSyncOptions = { relayUrl: 'ws://127.0.0.1:1', token: 'dev:alice' }

/** Exclusive locks with `ifAvailable`, as the Web Locks API grants them (the part runSync uses). */
class Locks {
  readonly held = new Set<string>()
  async request(name: string, _options: LockOptions, callback: (lock: Lock | null) => unknown): Promise<unknown> {
    if (this.held.has(name)) return callback(null)
    this.held.add(name)
    try {
      return await callback({ name, mode: 'exclusive' })
    } finally {
      this.held.delete(name)
    }
  }
}

interface Script {
  online?: Promise<void>
  flushed?: Promise<void>
  counts?: PendingCounts[]
  arrivals?: Message[]
}

/** A session that does what `script` says and records when it was closed (and whether the lock was still held). */
function scripted(locks: Locks, script: Script): { env: SyncEnv; log: string[]; tab: () => void } {
  const log: string[] = []
  let tabOpened = (): void => {}
  const counts = [...(script.counts ?? [{ outbound: 0, inbound: 0 }])]
  const session: SyncSession = {
    online: () => script.online ?? Promise.resolve(),
    flushed: () => script.flushed ?? Promise.resolve(),
    pending: async () => (counts.length > 1 ? counts.shift()! : counts[0]!),
    arrivals: () => script.arrivals ?? [],
    close: async () => void log.push(`closed, lock ${locks.held.has(identityLock('alice')) ? 'held' : 'free'}`),
  }
  const env: SyncEnv = {
    locks: locks as unknown as SyncEnv['locks'],
    open: async (_peer, opened) => {
      log.push('opened')
      tabOpened = opened
      return session
    },
  }
  return { env, log, tab: () => tabOpened() }
}

const never = new Promise<never>(() => {})
const EPOCH = '000000001.abcdef' as Epoch

function message(from: string, seq: number, contents: Message['contents']): Message {
  return { id: `${from}-${seq}` as MessageId, from: from as PeerId, to: 'alice' as PeerId, seq, epoch: EPOCH, contents }
}

/** The inbox row a receive of `m` commits. */
function inboxRow(m: Message, index: number): InboxRow {
  const { kind, bytes } = encodeContents(m.contents, 1 << 20)
  return { from: m.from, index, id: m.id, epoch: m.epoch, seq: m.seq, contentKind: kind, contents: bytes, receivedAt: 1 }
}

describe('handleSync options', () => {
  it('misuse throws TypeError or RangeError at once', () => {
    expect(() => resolveSyncOptions(null as never)).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, relayUrl: 'http://x' })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, relayUrl: [] })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, token: 3 as never })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, peerId: 'a b' })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, encryption: 'no' as never })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, dbName: '' })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, onMessageWhileClosed: 'x' as never })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, budgetMs: '5' as never })).toThrow(TypeError)
    expect(() => resolveSyncOptions({ ...base, budgetMs: 0 })).toThrow(RangeError)
    expect(() => resolveSyncOptions({ ...base, quietMs: 1.5 })).toThrow(RangeError)
    expect(() => resolveSyncOptions({ ...base, limits: { window: -1 } })).toThrow(RangeError)
    expect(() => resolveSyncOptions({ ...base, onSync: 1 as never })).toThrow(TypeError)
    const settings = resolveSyncOptions(base)
    expect(settings).toMatchObject({ encryption: true, budgetMs: 60_000, quietMs: 1000, heartbeatMs: 1000 })
  })

  it('relayUrl as a function is asked at each sync, and its answer checked then', async () => {
    expect(await resolveSyncOptions(base).urls('alice')).toEqual(['ws://127.0.0.1:1'])
    expect(await resolveSyncOptions({ ...base, relayUrl: async (peer) => [`wss://relay.example/${peer}`] }).urls('alice')).toEqual([
      'wss://relay.example/alice',
    ])
    await expect(resolveSyncOptions({ ...base, relayUrl: () => 'http://nope' }).urls('alice')).rejects.toThrow(TypeError)
  })
})

describe('runSync', () => {
  it('stands aside when a tab holds the lock: busy, and no engine opened', async () => {
    const locks = new Locks()
    locks.held.add(identityLock('alice'))
    const { env, log } = scripted(locks, {})
    expect(await runSync('alice', resolveSyncOptions(base), env)).toEqual({ peerId: 'alice', outcome: 'busy', arrived: 0 })
    expect(log).toEqual([])
  })

  it('flushes, waits until nothing arrived for quietMs, closes before the lock goes back, and reports what arrived', async () => {
    const locks = new Locks()
    const arrivals: ClosedArrival[] = []
    const counts = [
      { outbound: 2, inbound: 1 },
      { outbound: 0, inbound: 3 },
      { outbound: 0, inbound: 4 },
    ]
    const messages = [message('bob', 0, 'hi'), message('carol', 0, { text: 'yo' })]
    const { env, log } = scripted(locks, { counts, arrivals: messages })
    const settings = resolveSyncOptions({ ...base, quietMs: 150, onMessageWhileClosed: (info) => void arrivals.push(info) })
    const started = Date.now()
    const report = await runSync('alice', settings, env)
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
    expect(report).toEqual({ peerId: 'alice', outcome: 'flushed', arrived: 3, pending: { outbound: 0, inbound: 4 } })
    expect(log).toEqual(['opened', 'closed, lock held'])
    expect(locks.held.size).toBe(0)
    expect(arrivals).toEqual([{ peerId: 'alice', arrived: 3, waiting: 4, messages }])
  })

  it('the budget runs out (the relay never answers): timeout within budgetMs, the engine closed with the lock held', async () => {
    const locks = new Locks()
    const { env, log } = scripted(locks, { online: never })
    const started = Date.now()
    const report = await runSync('alice', resolveSyncOptions({ ...base, budgetMs: 200 }), env)
    expect(report.outcome).toBe('timeout')
    expect(Date.now() - started).toBeLessThan(1000)
    expect(log).toEqual(['opened', 'closed, lock held'])
  })

  it('the budget runs out mid-flush: timeout, closed', async () => {
    const locks = new Locks()
    const { env, log } = scripted(locks, { flushed: never })
    expect((await runSync('alice', resolveSyncOptions({ ...base, budgetMs: 200 }), env)).outcome).toBe('timeout')
    expect(log).toEqual(['opened', 'closed, lock held'])
  })

  it('a tab opens mid-flush: the engine here closes at once (lock still held), handed-over', async () => {
    const locks = new Locks()
    const { env, log, tab } = scripted(locks, { flushed: never })
    const run = runSync('alice', resolveSyncOptions(base), env)
    await new Promise((r) => setTimeout(r, 20))
    tab()
    const started = Date.now()
    expect((await run).outcome).toBe('handed-over')
    expect(Date.now() - started).toBeLessThan(200)
    expect(log).toEqual(['opened', 'closed, lock held'])
  })

  it('no store for the identity here: nothing to do', async () => {
    const locks = new Locks()
    const env: SyncEnv = { locks: locks as unknown as SyncEnv['locks'], open: async () => undefined }
    expect(await runSync('alice', resolveSyncOptions(base), env)).toEqual({ peerId: 'alice', outcome: 'flushed', arrived: 0 })
  })

  it('a failure (the relay refused the login) closes the engine and rejects', async () => {
    const locks = new Locks()
    const { env, log } = scripted(locks, { online: Promise.reject(new Error('refused')) })
    await expect(runSync('alice', resolveSyncOptions(base), env)).rejects.toThrow('refused')
    expect(log).toEqual(['opened', 'closed, lock held'])
    expect(locks.held.size).toBe(0)
  })
})

describe('an identity with no database here', () => {
  const names = async (): Promise<(string | undefined)[]> => (await indexedDB.databases()).map((db) => db.name)
  /** The global factory without `databases()`, as in browsers that lack it: the open-and-abort path. */
  const withoutDatabases = { open: (name: string) => indexedDB.open(name) } as IDBFactory

  it('databaseExists finds out without creating it, with indexedDB.databases() and without', async () => {
    const made = 'exists-made' as PeerId
    await (await new IndexedDBStore().open(made)).close()
    for (const factory of [indexedDB, withoutDatabases]) {
      expect(await databaseExists('exists-nobody' as PeerId, { indexedDB: factory })).toBe(false)
      expect(await databaseExists(made, { indexedDB: factory })).toBe(true)
      expect(await databaseExists('elsewhere' as PeerId, { indexedDB: factory, dbName: () => `intersession:${made}` })).toBe(true)
    }
    expect(await names()).not.toContain('intersession:exists-nobody')
  })

  it('a sync of it does nothing and creates no database', async () => {
    expect(await openSyncSession('sync-nobody', resolveSyncOptions(base), () => {})).toBeUndefined()
    expect(await openSyncSession('sync-nobody', resolveSyncOptions({ ...base, dbName: (peer) => `custom:${peer}` }), () => {})).toBeUndefined()
    expect(await names()).not.toContain('intersession:sync-nobody')
    expect(await names()).not.toContain('custom:sync-nobody')
  })
})

describe('the messages a sync stored, for onMessageWhileClosed', () => {
  it('are the inbox rows its commits stored, decoded as the handlers get them; the rows stay for the handlers', async () => {
    const alice = 'alice' as PeerId
    const arrivals = new Arrivals()
    const handle = arrivals.watch(await new MemoryStore().open(alice), alice)
    const sent = [message('bob', 0, 'hi'), message('bob', 1, new Uint8Array([1, 2])), message('carol', 0, { text: 'yo', n: [1] })]
    const ops: StoreOp[] = sent.map((m, i) => ({ op: 'putInbox', row: inboxRow(m, i) }))
    await handle.commit(ops.slice(0, 1))
    await handle.commit(ops.slice(1))
    expect(arrivals.list()).toEqual(sent)
    expect((await handle.readInbox('bob' as PeerId, 0, 10)).map((r) => r.id)).toEqual(['bob-0', 'bob-1'])
    expect(await handle.count()).toMatchObject({ inbound: 3 })
  })

  it('a commit that failed records nothing; only the latest ARRIVALS_KEPT are kept, oldest first', async () => {
    const alice = 'alice' as PeerId
    const arrivals = new Arrivals()
    const handle = arrivals.watch(await new MemoryStore().open(alice), alice)
    await expect(handle.commit([{ op: 'putInbox', row: { ...inboxRow(message('bob', 0, 'x'), 0), from: '' as PeerId } }])).rejects.toThrow()
    expect(arrivals.list()).toEqual([])
    const many = Array.from({ length: ARRIVALS_KEPT + 5 }, (_, i) => message('bob', i, `m${i}`))
    for (const [i, m] of many.entries()) await handle.commit([{ op: 'putInbox', row: inboxRow(m, i) }])
    expect(arrivals.list()).toEqual(many.slice(5))
  })
})
