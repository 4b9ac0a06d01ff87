import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Clock } from '../core/clock.js'
import { CachedTotals } from './cached-totals.js'
import type { Mailbox, MailboxTotals } from './mailbox/mailbox.js'
import { observeRedisCommands } from './redis-command-metrics.js'
import { REFUSAL_REASONS, type RelayStats } from './stats.js'

/** `GET /metrics`: the relay's counters in the Prometheus text format. */
export interface RelayMetrics {
  readonly contentType: string
  text(): Promise<string>
  /** Stops observing (the Redis commands); the relay calls it on close. */
  close(): void
}

/** How the mailbox totals gauges are read (see {@link CachedTotals}). */
export interface MailboxTotalsOptions {
  /** A walk over the mailbox's storage (Redis) starts at most once per this many ms. */
  readonly intervalMs: number
  /** How long a scrape waits for a walk in progress before it shows the last totals (ms). */
  readonly waitMs: number
  readonly clock: Clock
  /** Told about a walk that failed. */
  readonly onError: (error: unknown) => void
}

/**
 * A prom-client registry whose metrics are read from the relay's own counters
 * at scrape time (one source of truth with `/health`), labelled with `node`
 * (the cluster node id, or `standalone`), plus the mailbox's totals when it
 * has them, the Redis commands of this process, and Node's process metrics.
 */
export function createRelayMetrics(read: () => RelayStats, node: string, mailbox: Mailbox | undefined, options: MailboxTotalsOptions): RelayMetrics {
  const registry = new Registry()
  registry.setDefaultLabels({ node })
  collectDefaultMetrics({ register: registry, prefix: 'intersession_relay_' })
  let snapshot: RelayStats | undefined
  // One snapshot per scrape: every metric of a scrape reads the same instant.
  const stats = (): RelayStats => (snapshot ??= read())
  const counter = (name: string, help: string, value: (s: RelayStats) => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset()
        this.inc(value(stats()))
      },
    })
  }
  const gauge = (name: string, help: string, value: (s: RelayStats) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value(stats()))
      },
    })
  }
  gauge('intersession_relay_connections', 'Open WebSocket connections, authenticated or not.', (s) => s.connections)
  gauge('intersession_relay_peers_online', 'Authenticated connections (peers logged in to this node).', (s) => s.authenticated)
  gauge('intersession_relay_pending_bytes', 'Bytes queued on all sockets, not yet written.', (s) => s.pendingBytes)
  counter('intersession_relay_connections_accepted_total', 'WebSocket connections accepted.', (s) => s.accepted)
  counter('intersession_relay_logins_total', 'Logins completed (welcomed).', (s) => s.logins)
  for (const [direction, help] of [
    ['in', 'received from peers'],
    ['out', 'sent to peers'],
  ] as const) {
    new Counter({
      name: `intersession_relay_frames_${direction}_total`,
      help: `Messages ${help}, by kind: envelope (a binary frame for a peer, alone or in a pack) or control.`,
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const s = stats()
        this.reset()
        this.inc({ kind: 'envelope' }, direction === 'in' ? s.framesIn : s.framesOut)
        this.inc({ kind: 'control' }, direction === 'in' ? s.controlIn : s.controlOut)
      },
    })
    counter(`intersession_relay_bytes_${direction}_total`, `WebSocket message bytes ${help}.`, (s) => (direction === 'in' ? s.bytesIn : s.bytesOut))
    counter(
      `intersession_relay_packs_${direction}_total`,
      `Packs (several envelopes in one WebSocket message) ${help}; their envelopes count in frames.`,
      (s) => (direction === 'in' ? s.packsIn : s.packsOut),
    )
  }
  new Counter({
    name: 'intersession_relay_refusals_total',
    help: 'Logins, connections or messages refused, by reason (see docs/RELAY.md).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const { refusals } = stats()
      this.reset()
      for (const reason of REFUSAL_REASONS) this.inc({ reason }, refusals[reason])
    },
  })
  counter('intersession_relay_mailbox_stored_total', 'Messages the mailbox stored (answered `stored`).', (s) => s.stored)
  counter(
    'intersession_relay_mailbox_drained_total',
    'Stored messages sent to their peer: as it logged in, or again when it asked (redrain).',
    (s) => s.drained,
  )
  counter('intersession_relay_mailbox_expired_total', 'Stored messages dropped by retention.', (s) => s.expired)
  counter(
    'intersession_relay_mailbox_failures_total',
    'Mailbox operations that failed (no `stored` was sent; the sender retransmits).',
    (s) => s.mailboxFailures,
  )
  counter('intersession_relay_keys_published_total', 'Key bundles published (`keys`) and handed to the key directory.', (s) => s.keysPublished)
  new Counter({
    name: 'intersession_relay_keys_fetched_total',
    help: 'Key bundle fetches (`key?`) answered, by result: found (the bundle) or unknown (null).',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      const s = stats()
      this.reset()
      this.inc({ result: 'found' }, s.keysFound)
      this.inc({ result: 'unknown' }, s.keysUnknown)
    },
  })
  counter(
    'intersession_relay_keys_failures_total',
    'Key directory operations that failed (a publish not stored, or a fetch not answered: the client times out).',
    (s) => s.keysFailures,
  )
  const readTotals = mailbox?.totals?.bind(mailbox)
  const totals = readTotals === undefined ? undefined : mailboxTotals(registry, readTotals, options)
  const stopRedis = observeRedisCommands(registry)
  return {
    contentType: registry.contentType,
    close: stopRedis,
    async text() {
      snapshot = undefined
      await totals?.()
      try {
        return await registry.metrics()
      } finally {
        snapshot = undefined
      }
    },
  }
}

/**
 * The mailbox totals gauges: `..._mailbox_entries`, `..._mailbox_bytes` and
 * `..._mailbox_totals_age_seconds` (how old the totals shown are: 0 for
 * counters kept in memory, up to the interval and more after failed walks
 * for Redis), absent until a first read succeeded; and
 * `..._mailbox_totals_failures_total`. Returns what a scrape calls first.
 */
function mailboxTotals(registry: Registry, read: () => MailboxTotals | Promise<MailboxTotals>, options: MailboxTotalsOptions): () => Promise<void> {
  const cache = new CachedTotals({ ...options, read })
  new Counter({
    name: 'intersession_relay_mailbox_totals_failures_total',
    help: 'Reads of the mailbox totals that failed (the gauges keep the last good totals; see ..._mailbox_totals_age_seconds).',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(cache.failures)
    },
  })
  // Registered on the first good reading: a gauge of 0 before it would be a false total.
  const gauges = [
    new Gauge({
      name: 'intersession_relay_mailbox_entries',
      help: 'Entries the mailbox holds (messages, skips, acks, notices) for every destination; with Redis, of the whole Redis (do not sum it over nodes).',
      registers: [],
    }),
    new Gauge({
      name: 'intersession_relay_mailbox_bytes',
      help: 'Message bytes the mailbox holds (as counted against the per-peer byte limit); with Redis, of the whole Redis (do not sum it over nodes).',
      registers: [],
    }),
    new Gauge({
      name: 'intersession_relay_mailbox_totals_age_seconds',
      help: 'How old the mailbox entries and bytes shown are (0: counted on every change; Redis: from its last scan).',
      registers: [],
    }),
  ] as const
  let registered = false
  return async () => {
    const reading = await cache.get()
    if (reading === undefined) return
    const [entries, bytes, age] = gauges
    entries.set(reading.totals.entries)
    bytes.set(reading.totals.bytes)
    age.set(Math.max(0, options.clock.now() - reading.at) / 1000)
    if (!registered) for (const gauge of gauges) registry.registerMetric(gauge)
    registered = true
  }
}
