/**
 * Storage running out in Firefox: the profile's temporary-storage limit is
 * set low (`dom.quotaManager.temporaryStorage.fixedLimit`, the way Firefox
 * lets a test cause a quota failure), and a peer sends large messages to an
 * offline receiver until IndexedDB refuses. The contents are random:
 * Firefox compresses IndexedDB values (snappy), and a repetitive filler never
 * reached the limit. Every refused send rejects typed (`QUOTA_EXCEEDED`),
 * nothing of a refused group commit is stored, and the store holds exactly
 * the sends that resolved, which reach the receiver once, in order.
 */
import type { Page } from 'puppeteer-core'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { StaticServer } from '../helpers/static-server.js'
import { openPage, openProfile, type Profile } from './driver.js'
import { pollPage, serveHarness } from './harness.js'

let server: StaticServer
let relay: RelayProcess
// Unset when beforeAll failed, whose error is the one to show.
let served: StaticServer | undefined
let started: RelayProcess | undefined
const profiles: Profile[] = []
beforeAll(async () => {
  server = served = await serveHarness()
  relay = started = await startRelayProcess(['--dev'])
})
afterAll(async () => {
  for (const profile of profiles) await profile.dispose()
  await started?.kill()
  await served?.stop()
})

async function online(profile: Profile, id: string): Promise<Page> {
  const page = await openPage(profile.browser, `${server.url}/index.html`)
  await page.evaluate((id, url) => window.harness.connect(id, { relay: url }), id, relay.url)
  await pollPage(page, () => window.harness.connection()?.status, 'online')
  return page
}

/** `count` sends of about `kib` KiB of random base64 each, in one turn (one group commit); texts start with `q<i>:`. */
function sendRandom(page: Page, from: number, count: number, kib: number): ReturnType<typeof window.harness.faults.sendAll> {
  return page.evaluate(
    (from, count, kib) => {
      const random = (): string => {
        const bytes = new Uint8Array((kib * 1024 * 3) / 4)
        for (let i = 0; i < bytes.length; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536))
        let text = ''
        for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192))
        return btoa(text)
      }
      return window.harness.faults.sendAll(
        'quota-bob',
        Array.from({ length: count }, (_, i) => ({ contents: `q${from + i}:${random()}` })),
      )
    },
    from,
    count,
    kib,
  )
}

test('Firefox: quota exhausted mid-stream: sends reject QUOTA_EXCEEDED, nothing half written, the resolved ones arrive once and in order', async () => {
  // 10 MiB of temporary storage for the whole profile; the origin's group limit follows from it.
  const alice = await openProfile('firefox', { 'dom.quotaManager.temporaryStorage.fixedLimit': 10 * 1024 })
  const bob = await openProfile('firefox')
  profiles.push(alice, bob)
  const a = await online(alice, 'quota-alice')
  await online(bob, 'quota-bob')
  await bob.browser.close()

  // Batches of 16 sends of 96 KiB until one is refused (at most 24 MiB offered).
  const outcomes: Awaited<ReturnType<typeof sendRandom>> = []
  for (let batch = 0; batch < 16 && !outcomes.some((o) => !o.ok); batch++) outcomes.push(...(await sendRandom(a, batch * 16, 16, 96)))
  const refused = outcomes.filter((o) => !o.ok)
  const resolved = outcomes.filter((o) => o.ok)
  console.log(
    `firefox quota: ${resolved.length} sends of 96 KiB stored, then ${refused.length} refused: ${[...new Set(refused.map((o) => o.code))].join(', ')}`,
  )
  expect(refused.length).toBeGreaterThan(0)
  for (const outcome of refused) expect(outcome).toMatchObject({ ok: false, name: 'IlmError', code: 'QUOTA_EXCEEDED' })
  expect(resolved.map((o) => o.seq)).toEqual(resolved.map((_, i) => i))
  expect((await a.evaluate(() => window.harness.errors())).map((e) => e.code)).toContain('QUOTA_EXCEEDED')
  const stored = await a.evaluate(() => window.harness.faults.readStore('quota-alice'))
  expect(stored?.outbox.map((r) => r.seq)).toEqual(resolved.map((o) => o.seq))
  expect(stored?.outStreams).toMatchObject([{ to: 'quota-bob', nextSeq: resolved.length }])

  // bob comes back: the stored ones arrive once, in order, and alice's outbox empties.
  await bob.relaunch()
  const b = await online(bob, 'quota-bob')
  await pollPage(b, () => window.harness.receivedCount(), resolved.length, 60_000)
  const got = await b.evaluate(() => window.harness.received().map((m) => [m.seq, String(m.contents).split(':')[0]]))
  expect(got).toEqual(resolved.map((_, i) => [i, `q${i}`]))
  await pollPage(a, () => window.harness.pending(), { outbound: 0, inbound: 0 }, 30_000)
}, 180_000)
