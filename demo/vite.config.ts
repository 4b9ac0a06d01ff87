import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import { syncBundle } from './sync-bundle.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const dist = (path: string): string => here(`../dist/${path}`)
const outDir = here('./dist')

/** The marker in `public/sw.js` that the build replaces with the app shell's file list. */
const PRECACHE_MARKER = /\/\* @precache \*\/ \{[^}]*\}/

/**
 * Writes the app shell's file list (every built file but the service worker
 * and source maps) and a version hash of their contents into `dist/sw.js`, so
 * the service worker precaches exactly this build, and a new build (a changed
 * sw.js) installs a new one.
 */
function precacheManifest(): Plugin {
  return {
    name: 'intersession-demo:precache',
    apply: 'build',
    closeBundle() {
      const files = listFiles(outDir)
        .filter((file) => file !== 'sw.js' && !file.endsWith('.map'))
        .sort()
      const hash = createHash('sha256')
      for (const file of files)
        hash
          .update(file)
          .update('\0')
          .update(readFileSync(join(outDir, file)))
      const build = { version: hash.digest('hex').slice(0, 12), files: ['./', ...files.map((file) => `./${file}`)] }
      const swPath = join(outDir, 'sw.js')
      const sw = readFileSync(swPath, 'utf8')
      if (!PRECACHE_MARKER.test(sw)) throw new Error('demo/public/sw.js lost its /* @precache */ marker')
      writeFileSync(swPath, sw.replace(PRECACHE_MARKER, `/* @precache */ ${JSON.stringify(build)}`))
    },
  }
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'))
}

/**
 * The demo chat page. It imports intersession by its package entry points,
 * resolved to the built `dist/` as an app's bundler would resolve the
 * installed package; `connect()` brings the engine's worker along.
 */
export default defineConfig({
  root: here('.'),
  base: './',
  logLevel: 'warn',
  resolve: {
    alias: [
      { find: /^intersession\/client$/, replacement: dist('client/index.js') },
      { find: /^intersession$/, replacement: dist('index.js') },
    ],
  },
  worker: { format: 'es' },
  plugins: [syncBundle(here('./src/sync-worker.ts'), dist('service-worker/index.js'), 'sync.js'), precacheManifest()],
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
})
