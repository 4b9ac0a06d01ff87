/**
 * `intersession/playwright`: Playwright Test fixtures for apps built on
 * intersession: a real relay process, peers on profiles on disk, and faults
 * that really happen (offline at the relay and in the browser, frozen tabs,
 * reloads, browser crashes, relay crashes), with exactly-once checks.
 * Needs `@playwright/test` (an optional peer dependency).
 */
export { test, type IntersessionFixtures, type IntersessionOptions } from './fixtures.js'
export type { OfflineOptions, Peer, PeerOptions, ReceivedMessage } from './peer.js'
export type { KitRelay, KitRelayHealth, KitRelayOptions } from './relay.js'
export { expectExactlyOnce, exactlyOnceReport, type ExactlyOnceOptions, type ExactlyOnceReport } from './exactly-once.js'
export { expect } from '@playwright/test'
