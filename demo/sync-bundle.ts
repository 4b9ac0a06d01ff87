import { resolve } from 'node:path'
import { build } from 'esbuild'
import type { Plugin } from 'vite'

/**
 * Bundles `entry` (a service worker's background delivery, on
 * `intersession/service-worker` from the built `dist/`) into `fileName` in the
 * build's output directory, one classic script: Firefox before 147 cannot run
 * module service workers, and a classic one cannot `import()`. Written before
 * the bundle closes, so a precache list made then covers it.
 */
export function syncBundle(entry: string, serviceWorkerEntry: string, fileName: string): Plugin {
  let outDir = ''
  return {
    name: 'intersession:sync-bundle',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir)
    },
    async writeBundle() {
      await build({
        entryPoints: [entry],
        outfile: resolve(outDir, fileName),
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
