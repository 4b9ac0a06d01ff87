import { defineConfig } from 'vitest/config'

/**
 * The cross-engine suite (`npm run test:engines`): the same test bodies in
 * Chromium and Firefox ESR through puppeteer-core, one file at a time (each
 * test runs real browsers and relay processes).
 */
export default defineConfig({
  test: {
    include: ['test/engines/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    pool: 'forks',
  },
})
