/**
 * The mailbox gauges of `GET /metrics` with the mailbox in Redis: on a real
 * Redis Cluster (six redis-server processes, three masters and three
 * replicas, shared by the file's cluster tests), `createRelay` and relay
 * processes report the exact entries and bytes of every master, read at most
 * once per `mailboxTotalsIntervalMs`; on one Redis node that is killed,
 * `/metrics` keeps answering with the last totals and counts the failure.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { MailboxRecord, MailboxTotals } from '../../src/relay/mailbox/mailbox.js'
import { RedisMailbox, type RedisMailboxOptions } from '../../src/relay/mailbox/redis.js'
import { createRelay } from '../../src/relay/relay.js'
import { waitFor } from '../helpers/cluster-peer.js'
import { scrapeMetrics, type Scrape } from '../helpers/metrics.js'
import { startRedisCluster, type RedisClusterProcess } from '../helpers/redis-cluster-process.js'
import { startRedisProcess } from '../helpers/redis-process.js'
import { startRelayProcess } from '../helpers/relay-process.js'

const LIMITS = { maxMessages: 100, maxBytes: 1_000_000 }
const EPOCH = '0000000a1.epochone'
const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const quiet = (): void => {}

async function mailbox(options: RedisMailboxOptions): Promise<RedisMailbox> {
  const box = await RedisMailbox.open({ durability: 'none', onError: quiet, ...options })
  cleanups.push(() => box.close())
  return box
}

async function relayOn(box: RedisMailbox, mailboxTotalsIntervalMs: number): Promise<{ port: number }> {
  const relay = await createRelay({ dev: true, mailbox: box, mailboxTotalsIntervalMs, logger: quiet })
  cleanups.push(() => relay.close())
  return relay
}

const msg = (seq: number, size: number): MailboxRecord => ({ kind: 'msg', from: 'sender', epoch: EPOCH, seq, id: `m-${seq}`, size, storedAt: Date.now() })

/**
 * Stores `1 + i % 3` messages of `10 + (i * 7) % 50` bytes for each of `count`
 * destinations `<stem>-<i>`, and an ack entry (not counted in bytes) for every
 * fifth; resolves with the destinations and the totals stored.
 */
async function fill(box: RedisMailbox, stem: string, count: number): Promise<{ destinations: string[]; totals: MailboxTotals }> {
  const destinations = Array.from({ length: count }, (_, i) => `${stem}-${i}`)
  let entries = 0
  let bytes = 0
  await Promise.all(
    destinations.map(async (to, i) => {
      for (let seq = 0; seq < 1 + (i % 3); seq++) {
        const size = 10 + ((i * 7 + seq) % 50)
        const result = await box.put(to, msg(seq, size), new Uint8Array(size), LIMITS)
        expect(result).toMatchObject({ ok: true, duplicate: false })
        entries++
        bytes += size
      }
      if (i % 5 === 0) {
        await box.put(to, { kind: 'ack', from: 'other', epoch: EPOCH, seq: 1, id: '', size: 9, storedAt: Date.now() }, new Uint8Array(9), LIMITS)
        entries++
      }
    }),
  )
  return { destinations, totals: { entries, bytes } }
}

const shown = (scrape: Scrape): MailboxTotals => ({
  entries: scrape.sum('intersession_relay_mailbox_entries'),
  bytes: scrape.sum('intersession_relay_mailbox_bytes'),
})

describe('mailbox gauges of a relay whose mailbox is on a real Redis Cluster (3 masters + 3 replicas)', () => {
  let redis: RedisClusterProcess
  // Set once the cluster is up: when beforeAll failed, its error is the one to show.
  let stopCluster = async (): Promise<void> => {}
  beforeAll(async () => {
    redis = await startRedisCluster(1_000)
    stopCluster = () => redis.stop()
  }, 60_000)
  afterAll(() => stopCluster())

  /** `SCAN` calls served so far by each master. */
  async function scans(): Promise<number[]> {
    const shards = await redis.shards()
    return Promise.all(
      shards.map(async (shard) => {
        const stats = String(await redis.command(shard.masterPort, ['INFO', 'commandstats']))
        return Number(/^cmdstat_scan:calls=(\d+)/m.exec(stats)?.[1] ?? 0)
      }),
    )
  }

  it('createRelay shows the exact entries and bytes of all three masters, at most one scan per interval, and their drop after acks', async () => {
    const INTERVAL_MS = 1_500
    const box = await mailbox({ rootNodes: redis.rootNodes, prefix: 'gauges:' })
    const relay = await relayOn(box, INTERVAL_MS)
    expect(shown(await scrapeMetrics(relay.port))).toEqual({ entries: 0, bytes: 0 })

    const { destinations, totals } = await fill(box, 'dest', 300)
    // Every master holds some of the destinations' streams.
    const shards = await redis.shards()
    const perMaster = await Promise.all(shards.map(async (shard) => (await redis.command(shard.masterPort, ['KEYS', 'gauges:m:{*'])) as unknown[])).then(
      (keys) => keys.map((found) => found.length),
    )
    expect(perMaster.reduce((a, b) => a + b)).toBe(300)
    for (const count of perMaster) expect(count).toBeGreaterThan(50)

    await waitFor(async () => shown(await scrapeMetrics(relay.port)).entries > 0, 'the next scan')
    const full = await scrapeMetrics(relay.port)
    expect(shown(full)).toEqual(totals)
    expect(full.sum('intersession_relay_mailbox_totals_failures_total')).toBe(0)

    // Scrapes within the interval show the same totals without scanning again.
    const before = await scans()
    await box.ack(destinations[0]!, 'sender', EPOCH, 10)
    const cached = await Promise.all(Array.from({ length: 5 }, () => scrapeMetrics(relay.port)))
    for (const scrape of cached) expect(shown(scrape)).toEqual(totals)
    expect(await scans()).toEqual(before)

    // Acks of every other destination: once the interval has passed, the totals drop to exactly what is left.
    for (const [i, to] of destinations.entries()) if (i % 2 === 0) await box.ack(to, 'sender', EPOCH, 10)
    const sizes = await Promise.all(destinations.map((to) => box.size(to)))
    const left = sizes.reduce((a, b) => ({ entries: a.entries + b.entries, bytes: a.bytes + b.bytes }), { entries: 0, bytes: 0 })
    expect(left.bytes).toBeLessThan(totals.bytes / 2 + 1_000)
    await waitFor(async () => shown(await scrapeMetrics(relay.port)).entries === left.entries, 'a scan after the acks', 5 * INTERVAL_MS)
    expect(shown(await scrapeMetrics(relay.port))).toEqual(left)

    // Drained: every entry acked or removed, nothing held, the keys gone.
    await Promise.all(
      destinations.map(async (to) => {
        await box.ack(to, 'sender', EPOCH, 10)
        const rest = await box.read(to, undefined, 10)
        await box.remove(
          to,
          rest.map(({ entry }) => entry.key),
        )
      }),
    )
    await waitFor(async () => shown(await scrapeMetrics(relay.port)).entries === 0, 'a scan after the drain', 5 * INTERVAL_MS)
    expect(shown(await scrapeMetrics(relay.port))).toEqual({ entries: 0, bytes: 0 })
  }, 60_000)

  it('relay processes (--redis-cluster) each report the same whole-cluster totals, under their own node label; the scan cost for 3,000 destinations', async () => {
    // The relays' own prefix (`ilm:`): the destinations' mailboxes as the relays see them.
    const box = await mailbox({ rootNodes: redis.rootNodes })
    const { totals } = await fill(box, 'peer', 3_000)
    const started = Date.now()
    expect(await box.totals()).toEqual(totals)
    const scanMs = Date.now() - started
    console.log(`redis mailbox totals: ${totals.entries} entries of 3000 destinations on 3 masters counted in ${scanMs} ms`)

    const args = ['--dev', '--redis-cluster', redis.rootNodes.join(','), '--redis-durability', 'none', '--mailbox-totals-interval-ms', '0']
    const nodes = await Promise.all([startRelayProcess(args), startRelayProcess(args)])
    for (const node of nodes) cleanups.push(() => node.kill())
    const scrapes = await Promise.all(nodes.map((node) => scrapeMetrics(node.port)))
    for (const scrape of scrapes) expect(shown(scrape)).toEqual(totals)
    const labels = scrapes.map((scrape) => /intersession_relay_mailbox_entries\{node="([^"]+)"\}/.exec(scrape.text)?.[1])
    expect(new Set(labels).size).toBe(2)
  }, 60_000)
})

describe('mailbox gauges of a relay whose one Redis node goes away', () => {
  it('keeps answering /metrics with the last totals while Redis is down, counts the failed scans, and catches up once it is back', async () => {
    const redis = await startRedisProcess({ persistence: 'aof-always' })
    cleanups.push(() => redis.stop())
    const INTERVAL_MS = 200
    const box = await mailbox({ url: redis.url })
    const relay = await relayOn(box, INTERVAL_MS)
    const { totals } = await fill(box, 'single', 40)
    await waitFor(async () => shown(await scrapeMetrics(relay.port)).entries === totals.entries, 'the totals')
    expect(shown(await scrapeMetrics(relay.port))).toEqual(totals)

    await redis.kill()
    await waitFor(async () => (await scrapeMetrics(relay.port)).sum('intersession_relay_mailbox_totals_failures_total') >= 2, 'two failed scans')
    const down = await scrapeMetrics(relay.port)
    expect(shown(down)).toEqual(totals)
    expect(down.sum('intersession_relay_mailbox_totals_age_seconds')).toBeGreaterThan(INTERVAL_MS / 1000)
    expect(down.sum('intersession_relay_redis_command_errors_total', { command: 'SCAN' })).toBeGreaterThanOrEqual(2)

    await redis.restart()
    await waitFor(async () => (await scrapeMetrics(relay.port)).sum('intersession_relay_mailbox_totals_age_seconds') < INTERVAL_MS / 1000, 'a good scan')
    await box.ack('single-0', 'sender', EPOCH, 10)
    await waitFor(async () => shown(await scrapeMetrics(relay.port)).entries < totals.entries, 'the ack counted')
  }, 60_000)
})
