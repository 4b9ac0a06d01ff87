import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import { syncBundle } from '../../demo/sync-bundle.js'

const dist = (path: string): string => fileURLToPath(new URL(`../../dist/${path}`, import.meta.url))

/**
 * The pages browser tests drive. They import intersession by its package
 * entry points, resolved to the built `dist/` as an app's bundler would.
 */
export default defineConfig({
  root: fileURLToPath(new URL('./app', import.meta.url)),
  logLevel: 'warn',
  resolve: {
    alias: [
      { find: /^intersession\/client$/, replacement: dist('client/index.js') },
      { find: /^intersession\/testing$/, replacement: dist('testing/index.js') },
      { find: /^intersession\/worker$/, replacement: dist('worker/index.js') },
      { find: /^intersession\/service-worker$/, replacement: dist('service-worker/index.js') },
      { find: /^intersession$/, replacement: dist('index.js') },
    ],
  },
  worker: { format: 'es' },
  // The service worker at the root (its scope is the whole app), one classic script as Firefox ESR needs.
  plugins: [syncBundle(fileURLToPath(new URL('./app/sync-sw.ts', import.meta.url)), dist('service-worker/index.js'), 'sync-sw.js')],
  build: {
    outDir: fileURLToPath(new URL('./.dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rollupOptions: {
      input: {
        index: fileURLToPath(new URL('./app/index.html', import.meta.url)),
        bench: fileURLToPath(new URL('./app/bench.html', import.meta.url)),
        'net-bench': fileURLToPath(new URL('./app/net-bench.html', import.meta.url)),
        tabs: fileURLToPath(new URL('./app/tabs.html', import.meta.url)),
        kit: fileURLToPath(new URL('./app/kit.html', import.meta.url)),
        plain: fileURLToPath(new URL('./app/plain.html', import.meta.url)),
      },
    },
  },
  preview: { host: '127.0.0.1', strictPort: true },
})
