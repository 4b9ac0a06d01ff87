/**
 * The service worker side: `handleSync()` runs the engine of an identity on
 * Background Sync events while no tab of the app is open.
 * @module
 */
export { handleSync, type BackgroundSync } from './handle-sync.js'
export type { BackgroundSyncOptions, ClosedArrival, RelayUrls, SyncOutcome, SyncReport } from './options.js'
