/** Registers the service worker that lets the page open without a network (production builds only). */

export function registerServiceWorker(): void {
  if (!serviceWorkerUsed()) return
  navigator.serviceWorker.register('./sw.js', { scope: './' }).catch((error: unknown) => {
    console.warn('intersession demo: the service worker could not be registered; the page will not open offline', error)
  })
}

/**
 * Whether messages written offline leave with no tab open: the service
 * worker is used and the browser has Background Sync (`SyncManager`, which
 * Firefox and Safari lack; there they go the next time the app is open and
 * online).
 */
export function sendsInBackground(): boolean {
  return serviceWorkerUsed() && 'SyncManager' in globalThis
}

function serviceWorkerUsed(): boolean {
  return import.meta.env.PROD && 'serviceWorker' in navigator
}
