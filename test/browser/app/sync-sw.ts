/**
 * The service worker of test/browser/service-worker.spec.ts and
 * test/engines/service-worker.test.ts: `handleSync` from
 * intersession/service-worker, configured by its script URL
 * (`sync-sw.js?relay=ws://…&budget=ms`), bundled into one classic script
 * (Firefox ESR runs no module service worker). It records, for the test to
 * read (`self.syncLog` through Playwright), how each sync event's `waitUntil`
 * promise settled and what `onMessageWhileClosed` was told. Where Background
 * Sync is missing, a `message` `{ flush: peerId }` with a port runs
 * `flush(peerId)` and answers on the port with the report or the error.
 */
import { handleSync, type ClosedArrival, type SyncReport } from 'intersession/service-worker'

interface WaitUntilEvent extends Event {
  readonly tag: string
  waitUntil(promise: Promise<unknown>): void
}

/** A `message` event in a service worker (not in TypeScript's DOM library). */
interface ExtendableMessageEvent extends Event {
  readonly data: unknown
  readonly ports: readonly MessagePort[]
  waitUntil(promise: Promise<unknown>): void
}

interface SyncLog {
  readonly events: { tag: string; type: string; settled: 'resolved' | 'rejected'; outcome?: string; code?: string | undefined; at: number }[]
  readonly arrivals: ClosedArrival[]
}

const params = new URL(location.href).searchParams
const log: SyncLog = { events: [], arrivals: [] }
;(globalThis as unknown as { syncLog: SyncLog }).syncLog = log

// Runs before handleSync's own listeners (listeners run in the order they were added): it sees the promise they pass to waitUntil.
for (const type of ['sync', 'periodicsync']) {
  addEventListener(type, (event) => {
    const sync = event as WaitUntilEvent
    const waitUntil = sync.waitUntil.bind(sync)
    sync.waitUntil = (promise) => {
      promise.then(
        (report) => void log.events.push({ tag: sync.tag, type, settled: 'resolved', outcome: (report as { outcome: string }).outcome, at: Date.now() }),
        (error: unknown) => void log.events.push({ tag: sync.tag, type, settled: 'rejected', code: (error as { code?: string }).code, at: Date.now() }),
      )
      waitUntil(promise)
    }
  })
}

const sync = handleSync({
  relayUrl: params.get('relay') ?? 'ws://127.0.0.1:1',
  token: (peer) => `dev:${peer}`,
  budgetMs: Number(params.get('budget') ?? 60_000),
  quietMs: 500,
  onMessageWhileClosed: (info) => void log.arrivals.push(info),
})

/** What the `message` fallback answers on its port. */
export type FlushAnswer = { report: SyncReport } | { error: { code: string | undefined; message: string } }

addEventListener('message', (event) => {
  const message = event as unknown as ExtendableMessageEvent
  const peerId = (message.data as { flush?: unknown } | null)?.flush
  const port = message.ports[0]
  if (typeof peerId !== 'string' || port === undefined) return
  const answer = (value: FlushAnswer): void => port.postMessage(value)
  message.waitUntil(
    sync.flush(peerId).then(
      (report) => answer({ report }),
      (error: unknown) => answer({ error: { code: (error as { code?: string }).code, message: String(error) } }),
    ),
  )
})

addEventListener('install', () => void (self as unknown as { skipWaiting(): Promise<void> }).skipWaiting())
addEventListener('activate', (event) => (event as WaitUntilEvent).waitUntil((self as unknown as { clients: { claim(): Promise<void> } }).clients.claim()))
