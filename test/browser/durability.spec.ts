/**
 * The transactions that must survive a crash open with durability `strict`,
 * as Chromium reports it (`IDBTransaction.durability`): two peers on a
 * persistent profile, each engine in a worker that records every IndexedDB
 * transaction it opens (app/durability-probe.ts), run a send / receive /
 * process / ack cycle. The second case opens the stores `relaxed` and shows
 * that the same check catches it.
 */
import type { Page } from '@playwright/test'
import { expect, test } from '../../src/playwright/index.js'
import type { TransactionRecord } from './app/durability.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

/** The object stores whose writes must be durable: a message, its seq, its processed mark, its ack, the store's identity. */
const DURABLE_STORES = ['outbox', 'inbox', 'inboxFloors', 'outStreams', 'inStreams', 'settled', 'acks', 'meta'] as const

/** The readwrite transactions that write a store of {@link DURABLE_STORES} without `strict` durability. */
function notStrict(records: readonly TransactionRecord[]): TransactionRecord[] {
  return records.filter((r) => r.mode === 'readwrite' && r.stores.some((s) => (DURABLE_STORES as readonly string[]).includes(s)) && r.durability !== 'strict')
}

/** Stores written by some readwrite transaction of `db`. */
function written(records: readonly TransactionRecord[], db: string): string[] {
  return [...new Set(records.filter((r) => r.db === db && r.mode === 'readwrite').flatMap((r) => r.stores))].sort()
}

/** How many readwrite transactions of `db` wrote `store`. */
function writes(records: readonly TransactionRecord[], db: string, store: string): number {
  return records.filter((r) => r.db === db && r.mode === 'readwrite' && r.stores.includes(store)).length
}

/**
 * a sends 20 messages to b (outbox, outStreams); b stores them (inbox,
 * inStreams), hands them to its handler and marks them processed (inbox
 * deleted, inStreams), and acks; a takes them out of its outbox and keeps
 * their receipts. Resolves with every transaction both workers opened.
 */
async function cycle(a: Page, b: Page, relaxed: boolean): Promise<TransactionRecord[]> {
  const network = relaxed ? 'durability-relaxed' : 'durability-default'
  await b.evaluate(({ network, relaxed }) => window.harness.connectProbed('dur-b', network, relaxed), { network, relaxed })
  await a.evaluate(({ network, relaxed }) => window.harness.connectProbed('dur-a', network, relaxed), { network, relaxed })
  const ids = await a.evaluate(() => window.harness.sendBurst('dur-b', 'm', 20))
  await expect.poll(() => b.evaluate(() => window.harness.receivedCount()), { timeout: 20_000 }).toBe(20)
  await expect.poll(() => a.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
  await expect.poll(() => b.evaluate(() => window.harness.pending()), { timeout: 20_000 }).toEqual({ outbound: 0, inbound: 0 })
  expect(await a.evaluate((id) => window.harness.status(id), ids[19]!)).toBe('delivered')
  // Both workers post to every page of the origin: a's page has heard b's worker too.
  const records = await a.evaluate(() => [...window.harness.durability.records()])
  // Every part of the cycle ran through a recorded transaction: the check below cannot pass on nothing.
  expect(written(records, 'intersession:dur-a')).toEqual(expect.arrayContaining(['acks', 'meta', 'outStreams', 'outbox', 'settled']))
  expect(written(records, 'intersession:dur-b')).toEqual(expect.arrayContaining(['meta', 'inStreams', 'inbox', 'inboxFloors']))
  // The outbox is written by the sends and again by the ack; the inbox by the receive and again by the processed mark.
  expect(writes(records, 'intersession:dur-a', 'outbox')).toBeGreaterThanOrEqual(2)
  expect(writes(records, 'intersession:dur-b', 'inbox')).toBeGreaterThanOrEqual(2)
  return records
}

test('every readwrite transaction that writes outbox, inbox, streams, acks or meta is strict', async ({ peer }) => {
  const browser = await peer('dur-a', HARNESS)
  const a = await harnessTab(browser, true)
  const b = await harnessTab(browser)
  const records = await cycle(a, b, false)
  const readwrite = records.filter((r) => r.mode === 'readwrite')
  test.info().annotations.push({
    type: 'transactions',
    description: `${records.length} recorded, ${readwrite.length} readwrite, durabilities ${[...new Set(readwrite.map((r) => r.durability))].join(', ')}`,
  })
  expect(notStrict(records)).toEqual([])
})

test('the check catches a store opened relaxed', async ({ peer }) => {
  const browser = await peer('dur-a', HARNESS)
  const a = await harnessTab(browser, true)
  const b = await harnessTab(browser)
  const records = await cycle(a, b, true)
  const readwrite = records.filter((r) => r.mode === 'readwrite')
  expect(readwrite.length).toBeGreaterThan(0)
  // The probe reads what the browser applied: every write of the relaxed stores is relaxed, and flagged.
  expect(new Set(readwrite.map((r) => r.durability))).toEqual(new Set(['relaxed']))
  expect(notStrict(records)).toEqual(readwrite)
})
