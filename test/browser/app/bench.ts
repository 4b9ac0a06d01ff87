/**
 * Bench page for `npm run bench:idb`: exposes `window.bench` to the script
 * that drives it (test/bench/idb.ts, test/bench/idb-firefox.ts). Measures, in
 * one browser profile on disk, raw IndexedDB puts of outbox rows (the ceiling) and persisted
 * `send()` through `connect()` (worker + IndexedDB).
 */
import { connect, type Messenger } from 'intersession/client'
import { BroadcastChannelTransport, ILM, IndexedDBStore, MemoryStore, type MessageId, type PeerId, type StoreOp } from 'intersession'

let messenger: Messenger | undefined

const bench = {
  /**
   * The ceiling: `count` outbox rows put in sequential readwrite transactions
   * of `batch` rows each (as group commit does: one commit at a time), into a
   * scratch database. Plain IndexedDB API, no promise per request. Resolves
   * with the elapsed milliseconds.
   *
   * `'store'` (the default) does what the store's commit of a batch of sends
   * must (schema 3): the outbox with its key path and its two indexes (`id`,
   * `expiry`), and per transaction the fence read from `meta`, the stream's
   * watermark read from `settled`, and the stream's `put`. `'two-indexes'` is
   * the bare baseline: the same outbox rows and indexes, no `meta`, `settled`
   * or stream request. (Until schema 3 the store's outbox had four indexes and
   * each row a `pending` key: perf-steps from before 2026-12-05 measured that.)
   */
  async rawPuts(count: number, batch: number, bytes: number, durability: IDBTransactionDurability, schema: 'store' | 'two-indexes' = 'store'): Promise<number> {
    const store = schema === 'store'
    const name = `bench-raw-${crypto.randomUUID()}`
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = indexedDB.open(name, 1)
      open.onupgradeneeded = () => {
        const outbox = open.result.createObjectStore('outbox', { keyPath: ['to', 'seq'] })
        outbox.createIndex('id', 'id', { unique: true })
        outbox.createIndex('expiry', 'expiry')
        if (!store) return
        open.result.createObjectStore('meta')
        open.result.createObjectStore('settled', { keyPath: 'to' })
        open.result.createObjectStore('outStreams', { keyPath: 'to' })
      }
      open.onsuccess = () => resolve(open.result)
      open.onerror = () => reject(open.error)
    })
    const createdAt = Date.now()
    const to = 'offline-peer'
    const start = performance.now()
    for (let from = 0; from < count; from += batch) {
      const end = Math.min(count, from + batch)
      const tx = db.transaction(store ? ['meta', 'settled', 'outStreams', 'outbox'] : 'outbox', 'readwrite', { durability })
      if (store) tx.objectStore('meta').get('generation')
      const outbox = tx.objectStore('outbox')
      for (let seq = from; seq < end; seq++) {
        outbox.put({ to, seq, id: `m${seq}-${name}`, contentKind: 'b', contents: new Uint8Array(bytes).fill(seq & 0xff), createdAt })
        if (store && seq === from) tx.objectStore('settled').get(to)
      }
      if (store) tx.objectStore('outStreams').put({ to, nextSeq: end, ackedUpTo: -1 })
      await new Promise<void>((resolve, reject) => {
        tx.oncomplete = () => resolve()
        tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'))
      })
    }
    const ms = performance.now() - start
    db.close()
    await new Promise<void>((resolve) => {
      const del = indexedDB.deleteDatabase(name)
      del.onsuccess = del.onerror = del.onblocked = () => resolve()
    })
    return ms
  },

  /** Opens intersession as `peerId` on a network of its own; resolves once this tab leads. */
  async connect(peerId: string, network: string, memory = false): Promise<string> {
    const worker = memory ? new Worker(new URL('./memory-worker.ts', import.meta.url), { type: 'module' }) : undefined
    messenger = await connect({ peerId, transport: { kind: 'broadcast-channel', network }, ...(worker !== undefined && { worker }) })
    const deadline = performance.now() + 20_000
    while (messenger.role !== 'leader' && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return messenger.role
  },

  /**
   * Sends `count` messages of `bytes` bytes to `to`, in windows of `window`
   * concurrent sends (each window awaited with Promise.all). Resolves with
   * the elapsed milliseconds.
   */
  async send(to: string, count: number, bytes: number, window: number, windows?: number[]): Promise<number> {
    const m = messenger!
    const start = performance.now()
    for (let from = 0; from < count; from += window) {
      const t0 = performance.now()
      const sends: Array<Promise<unknown>> = []
      for (let i = from; i < Math.min(count, from + window); i++) sends.push(m.send(to, new Uint8Array(bytes).fill(i & 0xff)))
      const t1 = performance.now()
      await Promise.all(sends)
      windows?.push(t1 - t0, performance.now() - t1)
    }
    return performance.now() - start
  },
  /** The probe: send() as above, with each window's time calling send() and time awaiting. */
  async sendWindows(to: string, count: number, bytes: number, window: number): Promise<{ ms: number; windows: number[] }> {
    const windows: number[] = []
    const ms = await bench.send(to, count, bytes, window, windows)
    return { ms, windows }
  },

  /**
   * Breakdown: the engine in this page (no worker, no tab bridge) on
   * IndexedDB, `count` sends in windows as above, with or without an explicit
   * message id (`connect()` always gives one, which makes `send()` look the id
   * up first). Resolves with the elapsed milliseconds.
   */
  async engineInPage(peerId: string, count: number, bytes: number, window: number, withIds: boolean, memory = false): Promise<number> {
    const ilm = await ILM.open({
      store: memory ? new MemoryStore() : new IndexedDBStore(),
      transport: new BroadcastChannelTransport({ localId: peerId, network: peerId }),
    })
    try {
      const start = performance.now()
      for (let from = 0; from < count; from += window) {
        const sends: Array<Promise<unknown>> = []
        for (let i = from; i < Math.min(count, from + window); i++) {
          const contents = new Uint8Array(bytes).fill(i & 0xff)
          sends.push(withIds ? ilm.send('offline-peer', contents, { id: `${peerId}-${i}` }) : ilm.send('offline-peer', contents))
        }
        await Promise.all(sends)
      }
      return performance.now() - start
    } finally {
      await ilm.close()
    }
  },

  /**
   * The store's commits of awaited sends, on `IndexedDBStore` directly (no
   * engine, no worker): `count` commits one after the other, each queuing one
   * row of `bytes` bytes with its stream, and with `heldAck` also the ack of
   * the row before (an awaited sender whose receiver acks each message: the
   * held ack rides with the next send, as the engine's writer batches it).
   * Resolves with each commit's milliseconds.
   */
  async storeCommits(count: number, bytes: number, heldAck: boolean): Promise<number[]> {
    const localId = `commits-${crypto.randomUUID()}` as PeerId
    const to = 'offline-peer' as PeerId
    const store = await new IndexedDBStore().open(localId)
    const times: number[] = []
    try {
      for (let seq = 0; seq < count; seq++) {
        const ackedUpTo = heldAck ? seq - 1 : -1
        const ops: StoreOp[] = []
        if (heldAck && seq > 0) ops.push({ op: 'ack', to, upTo: seq - 1, at: Date.now() })
        ops.push({ op: 'outStream', stream: { to, nextSeq: seq + 1, ackedUpTo } })
        ops.push({
          op: 'putOutbox',
          row: { to, seq, id: `${localId}-${seq}` as MessageId, contentKind: 'b', contents: new Uint8Array(bytes).fill(seq & 0xff), createdAt: Date.now() },
        })
        const start = performance.now()
        await store.commit(ops)
        times.push(performance.now() - start)
      }
    } finally {
      await store.close()
      await new Promise<void>((resolve) => {
        const del = indexedDB.deleteDatabase(`intersession:${localId}`)
        del.onsuccess = del.onerror = del.onblocked = () => resolve()
      })
    }
    return times
  },

  /**
   * Awaited sends between two engines in this page (IndexedDB on disk, a
   * BroadcastChannel between them): `count` sends, each awaited before the
   * next, while the receiver stores and acks each one. Resolves with the
   * elapsed milliseconds.
   */
  async awaitedPair(count: number, bytes: number): Promise<number> {
    const network = `pair-${crypto.randomUUID()}`
    const [a, b] = [`a-${network}`, `b-${network}`]
    const alice = await ILM.open({ store: new IndexedDBStore(), transport: new BroadcastChannelTransport({ localId: a, network }) })
    const bob = await ILM.open({ store: new IndexedDBStore(), transport: new BroadcastChannelTransport({ localId: b, network }) })
    let got = 0
    bob.onMessage(() => {
      got++
    })
    try {
      await alice.send(b, new Uint8Array(bytes))
      while (got < 1) await new Promise((resolve) => setTimeout(resolve, 5))
      const start = performance.now()
      for (let i = 0; i < count; i++) await alice.send(b, new Uint8Array(bytes).fill(i & 0xff))
      const ms = performance.now() - start
      while (got < count + 1) await new Promise((resolve) => setTimeout(resolve, 5))
      return ms
    } finally {
      await Promise.all([alice.close(), bob.close()])
    }
  },

  pending: () => messenger!.pending(),
  close: () => messenger?.close(),
}

declare global {
  interface Window {
    bench: typeof bench
  }
}
window.bench = bench
document.title = 'ready'
