import { syncTag } from '../protocol/sync-tag.js'

/** A ServiceWorkerRegistration as far as Background Sync goes (not in TypeScript's DOM types); `sync` is absent where the browser lacks it. */
interface SyncRegistration {
  readonly sync?: { register(tag: string): Promise<void> }
}

/**
 * Asks the browser for a `sync` event for `peerId` once it is online again,
 * so that the app's service worker (`handleSync` from
 * `intersession/service-worker`) sends what this page queued even if the page
 * is closed by then. Feature-detected: nothing happens without a service
 * worker registration for this page, or without Background Sync
 * (`registration.sync`: absent in Firefox and Safari). Never throws; a
 * refusal (permission) only means no early flush.
 */
export function requestBackgroundSync(peerId: string): void {
  // Undefined outside a page, and in pages that are not a secure context.
  const container: ServiceWorkerContainer | undefined = typeof navigator === 'undefined' ? undefined : navigator.serviceWorker
  container
    ?.getRegistration()
    .then((registration) => (registration as SyncRegistration | undefined)?.sync?.register(syncTag(peerId)))
    .catch(() => {})
}
