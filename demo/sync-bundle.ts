import { join } from 'node:path'
import { build } from 'esbuild'
import type { Plugin } from 'vite'

/**
 * Bundles src/sync-worker.ts (the service worker's background delivery, on
 * `intersession/service-worker` from the built `dist/`) into `sync.js`, one
 * classic script that `public/sw.js` loads with `importScripts`: a service
 * worker cannot `import()`, and the demo's is a classic one. Written before
 * the precache list is made, so the service worker's version covers it.
 */
export function syncBundle(entry: string, serviceWorkerEntry: string, outDir: string): Plugin {
  return {
    name: 'intersession-demo:sync-bundle',
    apply: 'build',
    async writeBundle() {
      await build({
        entryPoints: [entry],
        outfile: join(outDir, 'sync.js'),
        bundle: true,
        format: 'iife',
        target: 'es2022',
        minify: true,
        sourcemap: true,
        logLevel: 'warning',
        alias: { 'intersession/service-worker': serviceWorkerEntry },
      })
    },
  }
}
