/**
 * The demo's delivery with no tab open, in its service worker: `public/sw.js`
 * loads this bundle (`sync.js`, built by demo/sync-bundle.ts) with
 * `importScripts`. On a Background Sync event the engine of the name that
 * queued messages offline runs here, sends them, stores what came for it,
 * and leaves a note that the page shows when it opens again
 * (./sync-note.ts).
 */
import { handleSync } from 'intersession/service-worker'
import { NOTE_CACHE, NOTE_KEY, type SyncNote } from './sync-note-record.js'

const CONFIG = new URL('./config.json', location.href).href
const DEFAULT_RELAY_PORT = 8787

/** The relay URL from `config.json` (the cached copy when the server is down), or the page's guess: this host, port 8787. */
async function relayUrl(): Promise<string> {
  try {
    const response = (await caches.match(CONFIG)) ?? (await fetch(CONFIG, { cache: 'no-store' }))
    const { relayUrl } = (await response.json()) as { relayUrl?: unknown }
    if (typeof relayUrl === 'string') return relayUrl
  } catch {
    // No config: fall back below, as the page does.
  }
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${DEFAULT_RELAY_PORT}`
}

handleSync({
  relayUrl,
  // The dev relay lets anyone in as "dev:<name>"; a real app's service worker asks its server for a token.
  token: (peer) => `dev:${peer}`,
  onSync: async (report) => {
    if (report.outcome !== 'flushed' && report.outcome !== 'timeout') return
    const note: SyncNote = { peerId: report.peerId, at: Date.now(), flushed: report.outcome === 'flushed', arrived: report.arrived }
    const cache = await caches.open(NOTE_CACHE)
    await cache.put(NOTE_KEY(report.peerId), new Response(JSON.stringify(note), { headers: { 'content-type': 'application/json' } }))
  },
})
