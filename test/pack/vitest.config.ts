import { defineConfig } from 'vitest/config'

/** `npm run test:pack`: packs both packages and installs them, so it runs after a build and apart from the unit tests. */
export default defineConfig({
  test: {
    include: ['test/pack/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
})
