/** Registers the service worker that lets the page open without a network (production builds only). */

export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || !('serviceWorker' in navigator)) return
  navigator.serviceWorker.register('./sw.js', { scope: './' }).catch((error: unknown) => {
    console.warn('intersession demo: the service worker could not be registered; the page will not open offline', error)
  })
}
