/**
 * Storage faults in real Chromium, with persistent profiles (IndexedDB on
 * disk) and a real relay process: the quota running out during sends, the
 * database deleted while the app runs, and a transaction failing in the middle
 * of a group commit. What each promises is in docs/GUARANTEES.md (4).
 */
import type { CDPSession, Page } from '@playwright/test'
import { expect, test, type KitRelay, type Peer, type PeerOptions } from '../../src/playwright/index.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

// No mailbox: a message for a peer that is offline stays with its sender.
test.use({ relayOptions: { ...REPO_RELAY, mailbox: false } })

const texts = (prefix: string, from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`)

/** A kit peer (a browser profile of its own on disk) on the harness page, online through `relay`; `before` runs before it opens its database. */
async function peer(
  open: (name: string, options: PeerOptions) => Promise<Peer>,
  relay: KitRelay,
  id: string,
  before?: (page: Page) => Promise<void>,
  faultyWorker = false,
): Promise<Page> {
  const page = await harnessTab(await open(id, HARNESS), true)
  await before?.(page)
  await page.evaluate(({ id, url, faultyWorker }) => window.harness.connect(id, { relay: url, faultyWorker }), { id, url: relay.url, faultyWorker })
  await expect.poll(() => page.evaluate(() => window.harness.connection()?.status), { timeout: 15_000 }).toBe('online')
  return page
}

async function setOnline(page: Page, online: boolean): Promise<void> {
  await page.evaluate((on) => window.harness.faults.setOnline(on), online)
  const status = () => page.evaluate(() => window.harness.connection()?.status)
  if (online) await expect.poll(status, { timeout: 15_000 }).toBe('online')
  else await expect.poll(status, { timeout: 15_000 }).not.toBe('online')
}

/**
 * The origin's storage quota, through CDP. Chromium's IndexedDB caches the
 * space it may still use (refreshed when a write does not fit, or after about
 * 30 s), so a lowered quota bites from the first write larger than what was
 * left: the test gives the origin a small quota from the start, and lowers it
 * to what is in use once the app runs.
 */
class Quota {
  private constructor(
    private readonly cdp: CDPSession,
    private readonly origin: string,
  ) {}

  static async of(page: Page): Promise<Quota> {
    return new Quota(await page.context().newCDPSession(page), new URL(page.url()).origin)
  }

  async set(quotaSize: number | undefined): Promise<void> {
    await this.cdp.send('Storage.overrideQuotaForOrigin', { origin: this.origin, ...(quotaSize !== undefined && { quotaSize }) })
  }

  /** Bytes in use by the origin, as the quota manager counts them (`navigator.storage.estimate()` reports a padded figure). */
  async usage(): Promise<number> {
    return (await this.cdp.send('Storage.getUsageAndQuota', { origin: this.origin })).usage
  }
}

const MIB = 1024 * 1024

test('quota exceeded during a send: typed error, earlier messages intact, sending resumes when space returns', async ({ relay, peer: open }) => {
  let quota: Quota | undefined
  const a = await peer(open, relay, 'alice', async (page) => {
    quota = await Quota.of(page)
    await quota.set(2 * MIB)
  })
  const b = await peer(open, relay, 'bob')
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 5))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(5)
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
  await setOnline(b, false)
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 5, 5))
  expect(await a.evaluate(() => window.harness.pending())).toEqual({ outbound: 5, inbound: 0 })

  // The disk fills up: no room beyond what is stored.
  const usage = await quota!.usage()
  await quota!.set(usage)
  // 64 sends of 48 KiB in one group commit (Chromium stores values over 64 KiB
  // as blobs, which a lowered quota did not stop in our runs), then a small one.
  const big = await a.evaluate(() => window.harness.faults.sendLarge('bob', 'q', 0, 64, 48))
  const small = await a.evaluate(() => window.harness.faults.sendAll('bob', [{ contents: 'q64' }]))
  const codes = [...big, ...small].map((o) => (o.ok ? `seq ${o.seq}` : o.code))
  test.info().annotations.push({ type: 'quota', description: `quota lowered to ${usage} B in use; ${codes.length} sends: ${[...new Set(codes)].join(', ')}` })
  for (const outcome of [...big, ...small]) expect(outcome).toMatchObject({ ok: false, name: 'IlmError', code: 'QUOTA_EXCEEDED', isIlmError: true })
  expect((await a.evaluate(() => window.harness.errors())).map((e) => e.code)).toContain('QUOTA_EXCEEDED')

  // Nothing of the refused sends is stored; the five pending ones are intact.
  const stored = await a.evaluate(() => window.harness.faults.readStore('alice'))
  expect(stored?.outbox.map((r) => [r.seq, r.text])).toEqual(texts('m', 5, 5).map((t, i) => [5 + i, t]))
  expect(stored?.outStreams).toMatchObject([{ to: 'bob', nextSeq: 10, ackedUpTo: 4 }])
  expect(await a.evaluate(() => window.harness.pending())).toEqual({ outbound: 5, inbound: 0 })

  // Space returns: sending resumes where the stream stood, and everything arrives once, in order.
  await quota!.set(undefined)
  const resumed = await a.evaluate(() => window.harness.faults.sendLarge('bob', 'm', 10, 5, 64))
  expect(resumed.map((o) => (o.ok ? o.seq : o.code))).toEqual([10, 11, 12, 13, 14])
  await setOnline(b, true)
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(15)
  const got = await b.evaluate(() => window.harness.received())
  expect(got.map((m) => (m.contents as string).split(':')[0])).toEqual(texts('m', 0, 15))
  expect(got.map((m) => m.seq)).toEqual([...Array(15).keys()])
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('site data deleted while the app runs: a new epoch, the peer follows it, no stream wedged', async ({ relay, peer: open }) => {
  const a = await peer(open, relay, 'alice')
  const b = await peer(open, relay, 'bob')
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 5))
  await b.evaluate(() => window.harness.sendMany('alice', 'n', 0, 3))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(5)
  await expect.poll(() => a.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(3)
  const before = await a.evaluate(() => window.harness.faults.readStore('alice'))
  await setOnline(b, false)
  // Pending at the wipe: these go with the user's data.
  const lost = await a.evaluate(() => window.harness.sendMany('bob', 'lost', 0, 3))
  expect(await a.evaluate(() => window.harness.pending())).toEqual({ outbound: 3, inbound: 0 })

  await a.evaluate((id) => window.harness.faults.awaitDelivered(id), lost[1]!)
  const cdp = await a.context().newCDPSession(a)
  await cdp.send('Storage.clearDataForOrigin', { origin: new URL(a.url()).origin, storageTypes: 'indexeddb' })

  // The app keeps working: the next sends land in a new store, a new epoch, seqs from 0.
  const after = await a.evaluate(() =>
    window.harness.faults.sendAll(
      'bob',
      [0, 1, 2, 3, 4].map((i) => ({ contents: `w${i}` })),
    ),
  )
  expect(after.map((o) => (o.ok ? o.seq : o.code))).toEqual([0, 1, 2, 3, 4])
  const fresh = await a.evaluate(() => window.harness.faults.readStore('alice'))
  expect(fresh?.epoch).toBeDefined()
  expect(fresh?.epoch).not.toBe(before?.epoch)
  expect(fresh?.outbox.map((r) => r.text)).toEqual(['w0', 'w1', 'w2', 'w3', 'w4'])
  const errors = (await a.evaluate(() => window.harness.errors())).map((e) => e.code)
  test.info().annotations.push({ type: 'wipe', description: `epoch ${before?.epoch} -> ${fresh?.epoch}; errors reported: ${errors.join(', ')}` })

  // What was pending at the wipe is gone: unknown here, never delivered.
  expect(await a.evaluate((ids) => Promise.all(ids.map((id) => window.harness.status(id))), lost)).toEqual(['unknown', 'unknown', 'unknown'])
  expect(await a.evaluate((id) => window.harness.faults.deliveredOutcome(id), lost[0]!)).toMatchObject({ ok: false, code: 'UNKNOWN_MESSAGE' })
  // A delivered() waiting at the wipe moves to the new store with the other calls, and learns the same.
  expect(await a.evaluate(() => window.harness.faults.waited())).toMatchObject({ ok: false, code: 'UNKNOWN_MESSAGE' })

  // The wiped store has new keys too: bob is told (peer-key-changed) and holds alice's messages until his app accepts
  // the new key; then he follows the new stream from seq 0, and both ways keep flowing.
  const oldNumber = await b.evaluate(() => window.harness.safetyNumber('alice'))
  await setOnline(b, true)
  await expect.poll(() => b.evaluate(() => window.harness.keyChanges()), { timeout: 30_000 }).toEqual(['alice'])
  expect(await b.evaluate(() => window.harness.receivedCount())).toBe(5)
  expect(await b.evaluate(() => window.harness.safetyNumber('alice'))).not.toBe(oldNumber)
  expect(await b.evaluate(() => window.harness.safetyNumber('alice'))).toBe(await a.evaluate(() => window.harness.safetyNumber('bob')))
  await b.evaluate(() => window.harness.acceptPeerKey('alice'))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(10)
  const got = await b.evaluate(() => window.harness.received())
  expect(got.map((m) => m.contents)).toEqual([...texts('m', 0, 5), ...texts('w', 0, 5)])
  expect(got.map((m) => m.seq)).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
  const followed = await b.evaluate(() => window.harness.faults.readStore('bob'))
  expect(followed?.inStreams.find((s) => s.from === 'alice')).toMatchObject({ epoch: fresh?.epoch, receivedUpTo: 4 })
  await b.evaluate(() => window.harness.sendMany('alice', 'n', 3, 3))
  await expect.poll(() => a.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(6)
  expect((await a.evaluate(() => window.harness.received())).map((m) => m.contents)).toEqual(texts('n', 0, 6))
  await a.evaluate(() => window.harness.sendMany('bob', 'w', 5, 5))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(15)
  expect((await b.evaluate(() => window.harness.received())).slice(10).map((m) => [m.seq, m.contents])).toEqual(texts('w', 5, 5).map((t, i) => [5 + i, t]))
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
  await expect.poll(() => b.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('a transaction failing in the middle of a group commit: nothing half written, the batch rejects typed, seqs continue', async ({ relay, peer: open }) => {
  const a = await peer(open, relay, 'alice', undefined, true)
  const b = await peer(open, relay, 'bob')
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 5))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(5)
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
  await setOnline(b, false)
  const pendingIds = await a.evaluate(() => window.harness.sendMany('bob', 'm', 5, 5))

  // 20 sends in one turn share one transaction; the 11th outbox insert fails
  // (ConstraintError) after ten inserts of the same transaction were issued.
  // Each is 40 KiB, so each is a record of its own (a record of several rows
  // stays under 48 KiB): small ones would be one record.
  expect(pendingIds).toHaveLength(5)
  await a.evaluate(() => window.harness.faults.armOutboxAddFault(10))
  const batch = Array.from({ length: 20 }, (_, i) => ({ contents: `x${i}:`.padEnd(40 * 1024, '.') }))
  const outcomes = await a.evaluate((specs) => window.harness.faults.sendAll('bob', specs), batch)
  test.info().annotations.push({ type: 'batch', description: JSON.stringify(outcomes[0]) })
  for (const outcome of outcomes) {
    expect(outcome).toMatchObject({ ok: false, name: 'IlmError', code: 'STORE_FAILED', isIlmError: true, cause: 'ConstraintError' })
  }

  const expected = { outbox: texts('m', 5, 5).map((t, i) => [5 + i, t]), outStreams: [{ to: 'bob', nextSeq: 10, ackedUpTo: 4 }] }
  const check = async (): Promise<void> => {
    const stored = await a.evaluate(() => window.harness.faults.readStore('alice'))
    expect({ outbox: stored?.outbox.map((r) => [r.seq, r.text]), outStreams: stored?.outStreams }).toMatchObject(expected)
  }
  await check()
  // Reopened (the page reloads, a new worker opens the store): the same.
  await a.reload()
  await a.waitForFunction(() => document.title === 'ready')
  await check()
  await a.evaluate((url) => window.harness.connect('alice', { relay: url }), relay.url)
  expect(await a.evaluate(() => window.harness.pending())).toEqual({ outbound: 5, inbound: 0 })

  const later = await a.evaluate(() =>
    window.harness.faults.sendAll(
      'bob',
      [10, 11, 12, 13, 14].map((i) => ({ contents: `m${i}` })),
    ),
  )
  expect(later.map((o) => (o.ok ? o.seq : o.code))).toEqual([10, 11, 12, 13, 14])
  await setOnline(b, true)
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 30_000 }).toBe(15)
  const got = await b.evaluate(() => window.harness.received())
  expect(got.map((m) => [m.seq, m.contents])).toEqual(texts('m', 0, 15).map((t, i) => [i, t]))
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
})

test('the app deletes its database in the middle of a stream of sends: every send settles, the new stream is gapless', async ({ relay, peer: open }) => {
  const a = await peer(open, relay, 'alice')
  const b = await peer(open, relay, 'bob')
  await a.evaluate(() => window.harness.sendMany('bob', 'm', 0, 3))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(3)
  const before = await a.evaluate(() => window.harness.faults.readStore('alice'))

  // 200 sends one after another; the 50th is in flight when the page deletes the database.
  const { outcomes, deleted } = await a.evaluate(async () => {
    const h = window.harness
    const outcomes = []
    let deleting: Promise<string> | undefined
    for (let i = 0; i < 200; i++) {
      const sending = h.faults.sendAll('bob', [{ contents: `x${i}` }])
      if (i === 50) deleting = h.faults.deleteDatabase('alice')
      outcomes.push((await sending)[0]!)
    }
    return { outcomes, deleted: await deleting }
  })
  const failures = outcomes.filter((o) => !o.ok)
  for (const failure of failures) expect(failure).toMatchObject({ isIlmError: true })
  const fresh = await a.evaluate(() => window.harness.faults.readStore('alice'))
  expect(fresh?.epoch).toBeDefined()
  expect(fresh?.epoch).not.toBe(before?.epoch)
  test.info().annotations.push({
    type: 'delete',
    description: `${deleted}; ${outcomes.length - failures.length} of 200 sends resolved (failures: ${[...new Set(failures.map((f) => (f.ok ? '' : f.code)))].join(', ') || 'none'}); the new epoch's stream holds ${fresh?.outStreams[0]?.nextSeq} of them`,
  })

  // The new store has new keys: bob is told, and his app accepts them (the hold itself: the site-data test above).
  await expect.poll(() => b.evaluate(() => window.harness.keyChanges()), { timeout: 30_000 }).toEqual(['alice'])
  await b.evaluate(() => window.harness.acceptPeerKey('alice'))
  // Bob ends up following the new epoch: all of its seqs, in order, each once.
  const nextSeq = fresh?.outStreams.find((s) => s.to === 'bob')?.nextSeq ?? 0
  expect(nextSeq).toBeGreaterThan(0)
  await expect
    .poll(async () => (await b.evaluate(() => window.harness.faults.readStore('bob')))?.inStreams.find((s) => s.from === 'alice'), { timeout: 60_000 })
    .toMatchObject({ epoch: fresh?.epoch, receivedUpTo: nextSeq - 1 })
  await expect.poll(() => b.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
  const got = await b.evaluate(() => window.harness.received())
  const tail = got.slice(got.length - nextSeq)
  expect(tail.map((m) => m.seq)).toEqual([...Array(nextSeq).keys()])
  expect(tail.at(-1)?.contents).toBe('x199')
  const numbers = got.slice(3).map((m) => Number((m.contents as string).slice(1)))
  expect(numbers).toEqual([...numbers].sort((x, y) => x - y)) // in send order, across the wipe
  expect(new Set(numbers).size).toBe(numbers.length) // nothing twice
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
})
