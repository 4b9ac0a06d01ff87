import { syncTag } from '../protocol/sync-tag.js'

/** The part of a ServiceWorkerRegistration with Background Sync (not in TypeScript's DOM types). */
interface SyncRegistration {
  readonly sync: { register(tag: string): Promise<void> }
}

/**
 * Asks the browser for a `sync` event for `peerId` once it is online again,
 * so that the app's service worker (`handleSync` from
 * `intersession/service-worker`) sends what this page queued even if the page
 * is closed by then. Feature-detected: nothing happens without a service
 * worker registration for this page, or without Background Sync (Firefox,
 * Safari). Never throws; a refusal (permission) only means no early flush.
 */
export function requestBackgroundSync(peerId: string): void {
  const container = typeof navigator === 'undefined' ? undefined : navigator.serviceWorker
  if (container === undefined) return
  container
    .getRegistration()
    .then((registration) => {
      if (registration !== undefined && 'sync' in registration) return (registration as unknown as SyncRegistration).sync.register(syncTag(peerId))
    })
    .catch(() => {})
}
