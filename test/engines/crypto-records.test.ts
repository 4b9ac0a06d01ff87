/**
 * src/crypto's records in each engine: identity keys, a prekey and a sender key go into IndexedDB by structured
 * clone as they are; after the browser restarts on the same profile they come back as CryptoKeys that are still
 * not extractable and still sign, derive, seal (identically) and open (test/browser/app/crypto-records.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { StaticServer } from '../helpers/static-server.js'
import { ENGINES, openPage, openProfile } from './driver.js'
import { serveHarness } from './harness.js'

// Unset when beforeAll failed, whose error is the one to show.
let server: StaticServer | undefined
beforeAll(async () => {
  server = await serveHarness()
})
afterAll(() => server?.stop())

describe.each(ENGINES)('%s', (engine) => {
  test('crypto records survive IndexedDB and a browser restart, and still work', async () => {
    const url = `${server!.url}/index.html`
    const profile = await openProfile(engine)
    try {
      const before = await openPage(profile.browser, url)
      await before.evaluate(() => window.harness.cryptoRecords.write('e2e-records'))
      await profile.relaunch()
      const after = await openPage(profile.browser, url)
      const checks = await after.evaluate(() => window.harness.cryptoRecords.read('e2e-records'))
      expect(checks.map((c) => c.name)).toHaveLength(6)
      expect(checks.filter((c) => !c.ok)).toEqual([])
    } finally {
      await profile.dispose()
    }
  })
})
