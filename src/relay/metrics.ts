import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Mailbox } from './mailbox/mailbox.js'
import { observeRedisCommands } from './redis-command-metrics.js'
import { REFUSAL_REASONS, type RelayStats } from './stats.js'

/** `GET /metrics`: the relay's counters in the Prometheus text format. */
export interface RelayMetrics {
  readonly contentType: string
  text(): Promise<string>
  /** Stops observing (the Redis commands); the relay calls it on close. */
  close(): void
}

/**
 * A prom-client registry whose metrics are read from the relay's own counters
 * at scrape time (one source of truth with `/health`), labelled with `node`
 * (the cluster node id, or `standalone`), plus the mailbox's totals when it
 * keeps them, the Redis commands of this process, and Node's process metrics.
 */
export function createRelayMetrics(read: () => RelayStats, node: string, mailbox: Mailbox | undefined): RelayMetrics {
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
      help: `WebSocket messages ${help}, by kind: envelope (a binary frame for a peer) or control.`,
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
  counter('intersession_relay_mailbox_drained_total', 'Stored messages sent to their peer as it logged in.', (s) => s.drained)
  counter('intersession_relay_mailbox_expired_total', 'Stored messages dropped by retention.', (s) => s.expired)
  counter(
    'intersession_relay_mailbox_failures_total',
    'Mailbox operations that failed (no `stored` was sent; the sender retransmits).',
    (s) => s.mailboxFailures,
  )
  if (mailbox?.totals !== undefined) {
    const totals = mailbox.totals.bind(mailbox)
    new Gauge({
      name: 'intersession_relay_mailbox_entries',
      help: 'Entries the mailbox holds (messages, skips, acks, notices) for every destination.',
      registers: [registry],
      collect() {
        this.set(totals().entries)
      },
    })
    new Gauge({
      name: 'intersession_relay_mailbox_bytes',
      help: 'Message bytes the mailbox holds (as counted against the per-peer byte limit).',
      registers: [registry],
      collect() {
        this.set(totals().bytes)
      },
    })
  }
  const stopRedis = observeRedisCommands(registry)
  return {
    contentType: registry.contentType,
    close: stopRedis,
    async text() {
      snapshot = undefined
      try {
        return await registry.metrics()
      } finally {
        snapshot = undefined
      }
    },
  }
}
