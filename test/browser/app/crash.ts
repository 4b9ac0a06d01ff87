/**
 * Harness functions for test/browser/browser-crash.spec.ts, as
 * `window.harness.crash`: a peer on the relay whose handler writes every
 * handover to an IndexedDB database of this origin (`durability: 'strict'`)
 * before it returns, so that the record of a handover outlives a SIGKILL of
 * the whole browser; and a send loop that reports each send's outcome to Node
 * through the binding `sendLedgerReport` as soon as it settles.
 */
import { connect, type Messenger } from 'intersession/client'
import type { Message } from 'intersession'
import { openDB, type IDBPDatabase } from 'idb'
import { rowsOf, type StoredInbox } from '../../../src/storage/inbox-chunk.js'

/** A handover as the handler recorded it; `life` is the browser launch it happened in. */
export interface HandoverRecord {
  readonly life: number
  readonly from: string
  readonly id: string
  readonly seq: number
  readonly epoch: string
  /** The number the sender put in the contents. */
  readonly n: number
}

/** What the send loop tells Node, one report per event. */
export type SendReport =
  | { readonly kind: 'start'; readonly n: number }
  | { readonly kind: 'resolved'; readonly n: number; readonly id: string; readonly seq: number }
  | { readonly kind: 'rejected'; readonly n: number; readonly code: string | undefined; readonly message: string }

/** A row of the receiver's inbox: stored, not yet marked processed. */
export interface InboxEntry {
  readonly from: string
  readonly id: string
  readonly seq: number
  readonly epoch: string
}

declare global {
  interface Window {
    /** Installed by the spec (`exposeBinding`). (Not `crashReport`: Chromium has a `window.crashReport` of its own.) */
    sendLedgerReport?: (payload: string) => Promise<void>
  }
}

const LEDGER = 'crash-ledger'
const HANDOVERS = 'handovers'

let messenger: Messenger | undefined
let ledger: Promise<IDBPDatabase> | undefined
let handed = 0
/** The engine's error events in this page, as `code: message`. */
const errors: string[] = []
let stopped = false
let loop: Promise<void> | undefined

function openLedger(): Promise<IDBPDatabase> {
  ledger ??= openDB(LEDGER, 1, { upgrade: (db) => void db.createObjectStore(HANDOVERS, { autoIncrement: true }) })
  return ledger
}

/** Appends one record; resolves once the transaction committed with strict durability (flushed). */
async function append(record: HandoverRecord): Promise<void> {
  const tx = (await openLedger()).transaction(HANDOVERS, 'readwrite', { durability: 'strict' })
  await Promise.all([tx.store.add(record), tx.done])
}

const REPORT_DELAY_MS = 10
/** Reports not yet handed to the binding, in the order they happened. */
let reports: SendReport[] = []

/**
 * Queues a report; the queue goes to Node in one binding call within
 * REPORT_DELAY_MS. One call per report fell seconds behind the sends (each is
 * a CDP event), so Node heard of a fraction of the sends before a crash.
 */
function report(payload: SendReport): void {
  reports.push(payload)
  if (reports.length === 1) setTimeout(flushReports, REPORT_DELAY_MS)
}

function flushReports(): void {
  const batch = reports
  reports = []
  // Reports cut off by the crash are lost; their sends then count as ones of unknown outcome.
  window.sendLedgerReport!(JSON.stringify(batch)).catch(() => {})
}

export const crash = {
  /**
   * Reads this identity's inbox straight from IndexedDB. Call it before
   * `connect` (the engine would process the rows): after a crash these are
   * the messages whose processed mark never committed.
   */
  async unprocessed(peerId: string): Promise<InboxEntry[]> {
    const name = `intersession:${peerId}`
    // Opening a database that does not exist would create an empty one, which the engine's upgrade then skips.
    if (!(await indexedDB.databases()).some((d) => d.name === name)) return []
    const db = await openDB(name)
    try {
      // A record holds the rows one commit stored (by column, read by the store's own rowsOf), or one row as stores
      // before chunks wrote it. A stream's rows below its highest processed mark (`inboxFloors`) are gone, also those
      // still inside a record.
      const records = (await db.getAll('inbox')) as StoredInbox[]
      const floors = (await db.getAll('inboxFloors')) as Array<{ from: string; below: number }>
      const floor = (from: string): number => Math.max(-Infinity, ...floors.filter((f) => f.from === from).map((f) => f.below))
      return records
        .flatMap((record) => rowsOf(record))
        .filter((row) => row.index >= floor(row.from))
        .map(({ from, id, seq, epoch }) => ({ from, id, seq, epoch }))
    } finally {
      db.close()
    }
  },
  /** Connects `peerId` through `relay`; its handler records each handover (tagged `life`) durably before it returns. */
  async connect(peerId: string, relay: string, life: number, processBatch: number) {
    await openLedger()
    const m = await connect({
      peerId,
      transport: { kind: 'websocket', url: relay, token: async () => `dev:${peerId}`, heartbeatMs: 2000 },
      limits: { processBatch },
    })
    m.onMessage(async (message: Message) => {
      const { n } = message.contents as { n: number }
      await append({ life, from: message.from, id: message.id, seq: message.seq, epoch: message.epoch, n })
      handed++
    })
    m.on('error', (error) => void errors.push(`${error.code}: ${error.message}`))
    messenger = m
  },
  connection: () => messenger?.connection,
  /** Handovers recorded in this page since it loaded. */
  handed: () => handed,
  /** The engine's error events in this page since it loaded. */
  errors: () => [...errors],
  /**
   * Sends `{ n }` for n in [first, end) to `to`, `concurrency` at a time and
   * at most `rate` per second, reporting each start and outcome; runs until
   * done or `stop()`.
   */
  start(to: string, first: number, end: number, concurrency: number, rate: number): void {
    const m = messenger
    if (m === undefined) throw new Error('connect first')
    if (typeof window.sendLedgerReport !== 'function') throw new TypeError('expose the binding sendLedgerReport first')
    let next = first
    const began = performance.now()
    const lane = async (): Promise<void> => {
      while (!stopped && next < end) {
        const n = next++
        const wait = began + ((n - first) * 1000) / rate - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        report({ kind: 'start', n })
        try {
          const { id, seq } = await m.send(to, { n })
          report({ kind: 'resolved', n, id, seq })
        } catch (error) {
          report({ kind: 'rejected', n, code: (error as { code?: string }).code, message: String((error as Error).message) })
        }
      }
    }
    loop = Promise.all(Array.from({ length: concurrency }, lane)).then(() => {})
  },
  /** Resolves once the send loop has ended (all of its sends settled). */
  finished: () => loop ?? Promise.resolve(),
  stop(): Promise<void> {
    stopped = true
    return loop ?? Promise.resolve()
  },
  /** Every handover recorded in this profile, in the order the handlers ran (across launches). */
  async ledger(): Promise<HandoverRecord[]> {
    return (await (await openLedger()).getAll(HANDOVERS)) as HandoverRecord[]
  },
  /** This identity's epoch, from its store. */
  async epoch(peerId: string): Promise<string | undefined> {
    const db = await openDB(`intersession:${peerId}`)
    try {
      return ((await db.get('meta', 'identity')) as { epoch?: string } | undefined)?.epoch
    } finally {
      db.close()
    }
  },
  pending: () => messenger!.pending(),
}
