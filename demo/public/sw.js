/**
 * The demo's service worker: the app shell (this build's HTML, JS, CSS, the
 * engine's worker, manifest and icon) comes from the cache first, so the page
 * opens with the network off; `config.json` comes from the network first,
 * from the cache when the server is down. Nothing else is touched: the relay
 * (WebSocket and its `/peers` directory) always goes to the network.
 *
 * The build replaces the object after the marker below with this build's file
 * list and a hash of their contents (demo/vite.config.ts).
 */
// Delivery with no tab open: intersession's handleSync, bundled from src/sync-worker.ts.
importScripts('./sync.js')

const BUILD = /* @precache */ { version: 'dev', files: ['./', './index.html'] }

const PREFIX = 'intersession-demo-'
const CACHE = PREFIX + BUILD.version
const scope = self.registration.scope
const INDEX = new URL('./index.html', scope).href
const CONFIG = new URL('./config.json', scope).href
const SHELL = new Set(BUILD.files.map((file) => new URL(file, scope).href))
const CONFIG_TIMEOUT_MS = 3000

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE)
      await cache.addAll([...SHELL])
      try {
        const response = await fetch(CONFIG, { cache: 'no-store' })
        if (response.ok) await cache.put(CONFIG, response)
      } catch {
        // Offline while installing: config.json is cached on its next fetch.
      }
      await self.skipWaiting()
    })(),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key)
      }
      await self.clients.claim()
    })(),
  )
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return // the relay: never cached
  url.search = ''
  url.hash = ''
  if (url.href === CONFIG) return event.respondWith(networkFirst(request))
  if (request.mode === 'navigate' && (url.href === scope || url.href === INDEX)) return event.respondWith(cacheFirst(INDEX, request))
  if (SHELL.has(url.href)) return event.respondWith(cacheFirst(url.href, request))
})

async function cacheFirst(key, request) {
  const cached = await caches.match(key, { cacheName: CACHE })
  return cached ?? fetch(request)
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE)
  try {
    const response = await fetch(request, { cache: 'no-store', signal: AbortSignal.timeout(CONFIG_TIMEOUT_MS) })
    if (response.ok) await cache.put(CONFIG, response.clone())
    return response
  } catch (error) {
    const cached = await cache.match(CONFIG)
    if (cached !== undefined) return cached
    throw error
  }
}
