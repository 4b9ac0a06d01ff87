import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from '@playwright/test'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { expect, harnessPage, launchProfile, test } from './fixtures.js'

const texts = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)
const dirs: string[] = []
let relay: RelayProcess

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

async function online(page: Page, id: string): Promise<void> {
  await page.evaluate(({ id, url }) => window.harness.connect(id, { relay: url }), { id, url: relay.url })
  await expect.poll(() => page.evaluate(() => window.harness.connection()?.status), { timeout: 15_000 }).toBe('online')
}

test.beforeEach(async () => {
  relay = await startRelayProcess(['--dev', '--mailbox-dir', tempDir('intersession-mailbox-')])
})

test.afterEach(async () => {
  await relay?.kill() // undefined when beforeEach failed, whose error is the one to show
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

test('the relay mailbox: the sender stores for an offline peer and quits; the receiver gets it all later; the sender, back, sees delivered', async ({
  profiles,
  baseURL,
}) => {
  const aliceProfile = tempDir('intersession-profile-')
  // A profile on disk that outlives its browser: alice quits and comes back to it.
  const first = await launchProfile(aliceProfile)
  const alice = await harnessPage(first, baseURL)
  await online(alice, 'alice')
  const ids = await alice.evaluate(() => window.harness.sendMany('bob', 'm', 0, 30))
  await expect.poll(() => alice.evaluate((id) => window.harness.status(id), ids[29]!), { timeout: 20_000 }).toBe('stored')
  await first.close()

  const bobContext = await profiles.open()
  const bob = await harnessPage(bobContext, baseURL)
  await online(bob, 'bob')
  await expect.poll(() => bob.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(30)
  expect((await bob.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('m', 30))

  const again = await launchProfile(aliceProfile)
  const back = await harnessPage(again, baseURL)
  await online(back, 'alice')
  await expect.poll(() => back.evaluate((id) => window.harness.status(id), ids[29]!), { timeout: 20_000 }).toBe('delivered')
  expect(await back.evaluate((all) => Promise.all(all.map((id) => window.harness.status(id))), ids)).toEqual(ids.map(() => 'delivered'))
  await again.close()
  await bobContext.close()
})
