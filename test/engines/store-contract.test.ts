/** The shared store contract (intersession/testing) against IndexedDBStore, and the upgrade of a schema 2 database, in the page, in each engine on a profile on disk. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { StaticServer } from '../helpers/static-server.js'
import { ENGINES, openPage, openProfile } from './driver.js'
import { serveHarness } from './harness.js'
import { UPGRADED } from '../helpers/schema-2-database.js'

let server: StaticServer
beforeAll(async () => {
  server = await serveHarness()
})
afterAll(() => server?.stop())

describe.each(ENGINES)('%s', (engine) => {
  test('IndexedDBStore passes the store contract and upgrades a schema 2 database', async () => {
    const profile = await openProfile(engine)
    try {
      const page = await openPage(profile.browser, `${server.url}/index.html`)
      const results = await page.evaluate(() => window.harness.storeContract())
      expect(results.length).toBeGreaterThan(10)
      expect(results.filter((r) => !r.ok)).toEqual([])
      expect(await page.evaluate(() => window.harness.schema2Upgrade())).toEqual(UPGRADED)
    } finally {
      await profile.dispose()
    }
  })
})
