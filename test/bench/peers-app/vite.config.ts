import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

const dist = (path: string): string => fileURLToPath(new URL(`../../../dist/${path}`, import.meta.url))

/**
 * The page of bench:peers. It imports intersession by its package entry
 * points, resolved to the built `dist/` as an app's bundler would, and
 * MQTT.js / socket.io-client by their browser builds.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  logLevel: 'warn',
  resolve: {
    alias: [
      { find: /^intersession\/client$/, replacement: dist('client/index.js') },
      { find: /^intersession$/, replacement: dist('index.js') },
    ],
  },
  worker: { format: 'es' },
  build: {
    outDir: fileURLToPath(new URL('./.dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
})
