import { IlmError } from '../core/errors.js'
import { isPeerId } from '../core/ids.js'
import { peerOfSyncTag } from '../protocol/sync-tag.js'
import { resolveSyncOptions, type BackgroundSyncOptions, type SyncReport, type SyncSettings } from './options.js'
import { openSyncSession } from './sync-session.js'
import { runSync, type SyncEnv } from './sync-run.js'

/** A `sync` or `periodicsync` event (Background Sync types are not in TypeScript's libraries). */
interface SyncEvent extends Event {
  readonly tag: string
  /** One-shot sync only: the browser will not retry after this attempt. */
  readonly lastChance?: boolean
  waitUntil(promise: Promise<unknown>): void
}

/** What {@link handleSync} returns. */
export interface BackgroundSync {
  /**
   * Runs a sync of `peerId` (default: the `peerId` option) now, as a `sync`
   * event does: for browsers without Background Sync, call it from another
   * event that starts the service worker (`activate`, `push`, `fetch`,
   * `message`) inside its `waitUntil`. A sync of the same identity already
   * running is joined, not repeated. Resolves with what it did (`busy` and
   * `timeout` included); rejects only on a failure (`STORE_FAILED`,
   * `E2E_MISMATCH`, `TRANSPORT_FAILED` when the relay refused the login, ...).
   * @throws TypeError without a valid peer id.
   */
  flush(peerId?: string): Promise<SyncReport>
}

/**
 * Lets the app's service worker deliver while no tab is open. Call it once, at
 * the top level of the service worker script: it listens to `sync` and
 * `periodicsync` events with intersession's tags (`intersession-sync:<peer id>`,
 * registered by the page's `connect()` whenever messages are queued while
 * offline; register `periodicsync` with the same tag where it is granted).
 *
 * On such an event it takes the identity's Web Lock only if it is free (a tab
 * holding it is delivering), opens the engine on the identity's IndexedDB and
 * the relay, flushes the outbox until every message is acknowledged or stored
 * by the relay's mailbox, stores what arrives for the app's handlers in the
 * next tab (exactly once), and closes within `budgetMs`. The event's promise
 * rejects with `SYNC_INCOMPLETE` when the budget ran out or (but on its last
 * chance) a tab held the lock, so that the browser retries later.
 *
 * @example
 * // sw.js
 * import { handleSync } from 'intersession/service-worker'
 * handleSync({ relayUrl: 'wss://relay.example', token: (peer) => fetch(`/token?peer=${peer}`).then((r) => r.text()) })
 * @throws TypeError or RangeError on a bad option, at once.
 */
export function handleSync(options: BackgroundSyncOptions): BackgroundSync {
  const settings = resolveSyncOptions(options)
  const env: SyncEnv = {
    get locks() {
      return navigator.locks
    },
    open: (peerId, tabOpened) => openSyncSession(peerId, settings, tabOpened),
  }
  const running = new Map<string, Promise<SyncReport>>()
  const flush = (peerId = settings.peerId): Promise<SyncReport> => {
    if (peerId === undefined || !isPeerId(peerId)) throw new TypeError('flush() needs a peer id (or the peerId option)')
    let run = running.get(peerId)
    if (run === undefined) {
      run = runSync(peerId, settings, env).finally(() => running.delete(peerId))
      running.set(peerId, run)
    }
    return run
  }
  const onEvent = (event: Event): void => {
    const sync = event as SyncEvent
    const peerId = peerOfSyncTag(sync.tag)
    if (peerId === undefined || (settings.peerId !== undefined && peerId !== settings.peerId)) return
    sync.waitUntil(flush(peerId).then((report) => settle(report, sync, settings)))
  }
  addEventListener('sync', onEvent)
  addEventListener('periodicsync', onEvent)
  return { flush }
}

/** The event's outcome: the browser retries a one-shot sync whose promise rejected. */
function settle(report: SyncReport, event: SyncEvent, settings: SyncSettings): SyncReport {
  if (report.outcome === 'timeout') {
    throw new IlmError(
      'SYNC_INCOMPLETE',
      `the sync of ${report.peerId} ran out of its ${settings.budgetMs} ms budget; what it did is kept, the rest waits for a retry`,
    )
  }
  if (report.outcome === 'busy' && event.type === 'sync' && event.lastChance !== true) {
    throw new IlmError('SYNC_INCOMPLETE', `a tab of ${report.peerId} holds its engine; retrying later in case it closes before it delivered`)
  }
  return report
}
