/** What the service worker (./sync-worker.ts) leaves for the page (./sync-note.ts) after it delivered with no tab open. */
export interface SyncNote {
  readonly peerId: string
  readonly at: number
  /** Every queued message went out (acknowledged, or stored by the relay for an offline peer). */
  readonly flushed: boolean
  /** Messages it stored for this name, shown when the page opens. */
  readonly arrived: number
}

/** A Cache Storage cache of its own: the app shell's caches are replaced on every new build. */
export const NOTE_CACHE = 'intersession-demo-sync-notes'

/** The note of one name, as a request URL of this origin (Cache Storage keys are requests). */
export const NOTE_KEY = (peerId: string): string => new URL(`./sync-note/${encodeURIComponent(peerId)}`, location.href).href
