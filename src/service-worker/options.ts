import type { Message, PendingCounts } from '../core/api.js'
import { isPeerId } from '../core/ids.js'
import { resolveLimits, type Limits } from '../core/options.js'
import { isRelayUrl } from '../protocol/relay.js'

/** Options of {@link handleSync}. Everything the page gives `connect()` for the identity must be given the same here. */
export interface BackgroundSyncOptions {
  /**
   * The identity to sync. Default: the one the event's tag names (the page
   * registers `intersession-sync:<peer id>`), so one service worker serves
   * every identity of the origin.
   */
  readonly peerId?: string
  /**
   * The relay's `ws:`/`wss:` URL, or several equivalent ones (as `connect()`'s
   * `transport.url`); or a function of the peer id that finds it at each sync
   * (e.g. in a cached config file), checked when it answers.
   */
  readonly relayUrl: RelayUrls | ((peerId: string) => RelayUrls | Promise<RelayUrls>)
  /** A login token, or a function of the peer id called before every login (no page is there to ask). */
  readonly token: string | ((peerId: string) => string | Promise<string>)
  /**
   * End-to-end encryption, on unless `false`: the same as `connect()`'s. The
   * engine here opens the identity's IndexedDB, so it holds the same keys; a
   * store made with the other setting is refused with `E2E_MISMATCH`.
   */
  readonly encryption?: boolean
  /** The IndexedDB database of an identity, if `connect()` was given a `dbName`: that name, or a function of the peer id. */
  readonly dbName?: string | ((peerId: string) => string)
  /** As `connect()`'s `limits`. */
  readonly limits?: Partial<Limits>
  /** As `connect()`'s: the leader heartbeat the tabs of the identity expect (default 1,000 ms). */
  readonly heartbeatMs?: number
  /**
   * How long one sync may run, from the event to the engine closed (default
   * 60,000 ms; Chromium stops a sync event after about 3 minutes). When it
   * runs out, the engine closes cleanly (what it stored stays stored) and the
   * event's promise rejects with `SYNC_INCOMPLETE`, so that the browser
   * retries later.
   */
  readonly budgetMs?: number
  /**
   * Once the outbox is flushed, the engine stays connected until nothing
   * arrived for this long (the relay drains its mailbox right after login),
   * then closes. Default 1,000 ms.
   */
  readonly quietMs?: number
  /**
   * Called after a sync that stored incoming messages while no tab was open,
   * with the latest of them (e.g. to show a notification of who wrote, with a
   * preview). They are not handled here: they wait in IndexedDB for the
   * app's handlers, which get each exactly once when a tab opens. Runs inside
   * the event: a rejection makes the event's promise reject.
   */
  readonly onMessageWhileClosed?: (info: ClosedArrival) => void | Promise<void>
  /** Called with the report of every sync that ran (e.g. to tell the app's next page what was sent while it was closed); as `onMessageWhileClosed`, inside the event. */
  readonly onSync?: (report: SyncReport) => void | Promise<void>
}

/** One relay URL or several equivalent ones. */
export type RelayUrls = string | readonly string[]

/** What {@link BackgroundSyncOptions.onMessageWhileClosed} is told. */
export interface ClosedArrival {
  readonly peerId: string
  /** Messages this sync stored. */
  readonly arrived: number
  /** Messages waiting for the app's handlers in all. */
  readonly waiting: number
  /**
   * The latest messages this sync stored (at most 100; `arrived` counts them
   * all), oldest first, as the app's handlers will get them. Read-only
   * copies: the handlers still get every one, once, in the next tab.
   */
  readonly messages: readonly Message[]
}

/**
 * How a sync ended:
 * - `flushed`: every queued message is acknowledged or stored by the relay's
 *   mailbox, and nothing more arrived for `quietMs`.
 * - `busy`: a tab holds the identity's lock (its engine delivers); nothing ran here.
 * - `handed-over`: a tab opened meanwhile; the engine here closed and the tab's took over.
 * - `timeout`: the budget ran out first; the engine closed cleanly.
 */
export type SyncOutcome = 'flushed' | 'busy' | 'handed-over' | 'timeout'

/** What one sync of one identity did. */
export interface SyncReport {
  readonly peerId: string
  readonly outcome: SyncOutcome
  /** Incoming messages it stored for the app's handlers. */
  readonly arrived: number
  /** What waits in the identity's store when it closed (absent when `busy`). */
  readonly pending?: PendingCounts
}

/** {@link BackgroundSyncOptions} checked, with defaults. */
export interface SyncSettings {
  readonly peerId: string | undefined
  readonly urls: (peerId: string) => Promise<readonly string[]>
  readonly token: (peerId: string) => string | Promise<string>
  readonly encryption: boolean
  readonly dbName: ((peerId: string) => string) | undefined
  readonly limits: Partial<Limits> | undefined
  readonly heartbeatMs: number
  readonly budgetMs: number
  readonly quietMs: number
  readonly onMessageWhileClosed: ((info: ClosedArrival) => void | Promise<void>) | undefined
  readonly onSync: ((report: SyncReport) => void | Promise<void>) | undefined
}

/**
 * Checks the options at once, so that a service worker with a wrong one fails
 * when it starts rather than at its first sync.
 * @throws TypeError or RangeError naming the bad option.
 */
export function resolveSyncOptions(options: BackgroundSyncOptions): SyncSettings {
  if (typeof options !== 'object' || (options as BackgroundSyncOptions | null) === null) throw new TypeError('options must be an object')
  const { peerId, relayUrl, token, encryption, dbName, limits, onMessageWhileClosed, onSync } = options
  if (peerId !== undefined && !isPeerId(peerId)) throw new TypeError('peerId must be 1..128 printable characters without whitespace')
  const urls = typeof relayUrl === 'function' ? undefined : relayUrls(relayUrl)
  if (typeof token !== 'string' && typeof token !== 'function') throw new TypeError('token must be a string or a function of the peer id')
  if (typeof token === 'string' && token.length === 0) throw new TypeError('token must not be empty')
  if (encryption !== undefined && typeof encryption !== 'boolean') throw new TypeError('encryption must be a boolean')
  if (dbName !== undefined && typeof dbName !== 'function' && (typeof dbName !== 'string' || dbName.length === 0)) {
    throw new TypeError('dbName must be a non-empty string or a function of the peer id')
  }
  if (onMessageWhileClosed !== undefined && typeof onMessageWhileClosed !== 'function') throw new TypeError('onMessageWhileClosed must be a function')
  if (onSync !== undefined && typeof onSync !== 'function') throw new TypeError('onSync must be a function')
  resolveLimits(limits)
  return {
    peerId,
    urls: async (peer) => urls ?? relayUrls(await (relayUrl as (peerId: string) => RelayUrls | Promise<RelayUrls>)(peer)),
    token: typeof token === 'string' ? () => token : token,
    encryption: encryption !== false,
    dbName: dbName === undefined ? undefined : typeof dbName === 'string' ? () => dbName : dbName,
    limits,
    heartbeatMs: positiveMs('heartbeatMs', options.heartbeatMs, 1000),
    budgetMs: positiveMs('budgetMs', options.budgetMs, 60_000),
    quietMs: positiveMs('quietMs', options.quietMs, 1000),
    onMessageWhileClosed,
    onSync,
  }
}

function relayUrls(given: unknown): readonly string[] {
  const urls: unknown = typeof given === 'string' ? [given] : given
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every(isRelayUrl))
    throw new TypeError('relayUrl must be a ws:// or wss:// URL (or a non-empty list of them)')
  return [...urls]
}

function positiveMs(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`)
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}
