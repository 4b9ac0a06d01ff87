/// <reference types="node" />
/**
 * The intersession relay: a WebSocket server that authenticates peers and
 * forwards opaque engine frames between them, stamping the sender's
 * authenticated id on every frame. With a `Mailbox` (store and forward)
 * it also holds `msg` and `ack` frames for offline peers and drains them, in
 * order, when the peer logs in; without one it keeps no state beyond live
 * connections, and messages wait in the senders' stores.
 *
 * This file wires the parts: options (`options.ts`), the HTTP + WebSocket
 * server (`server.ts`), each socket's life (`gateway.ts`, `connection.ts`,
 * `rate-limiter.ts`), routing (`router.ts`), store and forward
 * (`store-and-forward.ts`, `drain-queue.ts`, `mailbox/`), presence
 * (`presence.ts`), the key directory (`key-service.ts`, `key-directory.ts`;
 * bundles live in the mailbox when there is one, else in memory) and the
 * cluster seam (`cluster/`). All of them read time
 * from one injected clock.
 *
 * Protocol: `../protocol/relay.ts`. Close codes: `CLOSE_CODES`.
 */
import { isPeerId } from '../core/ids.js'
import { systemClock } from '../runtime/system-clock.js'
import { ConnectionTable } from './connection-table.js'
import { Gateway } from './gateway.js'
import { MemoryKeyDirectory } from './key-directory.js'
import { KeyService } from './key-service.js'
import { resolveRelayOptions, type RelayOptions } from './options.js'
import { Presence } from './presence.js'
import { createRelayLog, errorMessage } from './relay-log.js'
import { Router } from './router.js'
import { UnreachedPeers } from './unreached-peers.js'
import { listen } from './server.js'
import { createRelayMetrics } from './metrics.js'
import { RelayCounters, type RelayStats } from './stats.js'
import { StoreAndForward } from './store-and-forward.js'
import { unrefTimers } from './unref-timers.js'

export type { VerifyResult, VerifyToken } from './auth.js'
export { DEFAULT_MAILBOX_TOTALS_INTERVAL_MS, DEFAULT_RELAY_LIMITS, type RelayLimits, type RelayLogEntry, type RelayOptions } from './options.js'
export type { RefusalReason, RelayStats } from './stats.js'

/**
 * How long `GET /metrics` waits for a count of the mailbox in progress before
 * it shows the last one: well inside Prometheus's default 10 s scrape timeout.
 */
const METRICS_TOTALS_WAIT_MS = 5_000

/** A running relay. */
export interface RelayHandle {
  readonly host: string
  readonly port: number
  /** `ws://host:port` */
  readonly url: string
  stats(): RelayStats
  /**
   * Graceful shutdown: stops accepting, closes every socket with 1001
   * (GOING_AWAY) so clients reconnect (elsewhere), then the server.
   * Idempotent: later calls return the same promise.
   */
  close(): Promise<void>
}

/**
 * Starts a relay and resolves once it is listening.
 * @throws TypeError unless exactly one of `verify`, `jwtSecret`, `dev: true` is given, or on a mistyped option.
 * @throws RangeError for a limit out of range.
 */
export async function createRelay(options: RelayOptions): Promise<RelayHandle> {
  const { host, port, limits, logger, auth, mailbox, mailboxTotalsIntervalMs, cluster, testControl } = resolveRelayOptions(options)
  const clock = unrefTimers(systemClock)
  const log = createRelayLog(logger, clock)
  const counters = new RelayCounters()
  const connections = new ConnectionTable()
  const storeAndForward = mailbox === undefined ? undefined : new StoreAndForward(mailbox, { clock, limits, counters, log, connections, cluster })
  const unreached = cluster === undefined ? undefined : new UnreachedPeers(cluster, clock)
  const presence = new Presence({ isLocal: (peer) => connections.has(peer), cluster, clock, log, unreached })
  const router = new Router({ limits, counters, log, connections, cluster, storeAndForward, unreached })
  const keys = new KeyService({ directory: mailbox ?? new MemoryKeyDirectory(), counters, log })
  const gateway = new Gateway({ clock, limits, counters, log, auth, connections, router, presence, storeAndForward, cluster, keys })
  let shuttingDown = false
  let closing: Promise<void> | undefined
  const stats = (): RelayStats =>
    counters.stats({ connections: connections.all.size, authenticated: connections.authenticated, pendingBytes: connections.pendingBytes() })

  await cluster?.start({
    frame: (to, out) => router.frameFromCluster(to, out),
    text: (to, text) => router.textFromCluster(to, text),
    replaced: (peer) => gateway.replacedElsewhere(peer),
    mail: (to) => storeAndForward?.mailArrived(to),
    presence: (peer, online) => presence.announce(peer, online),
  })
  const metrics = createRelayMetrics(stats, cluster?.nodeId ?? 'standalone', mailbox, {
    intervalMs: mailboxTotalsIntervalMs,
    waitMs: METRICS_TOTALS_WAIT_MS,
    clock,
    onError: (error) => log('warn', 'mailbox_totals_failed', { message: errorMessage(error) }),
  })
  const server = await listen({
    host,
    port,
    limits,
    log,
    directory: auth.kind === 'dev',
    health: () => ({ closing: shuttingDown, stats: stats() }),
    metrics,
    peers: () => connections.peers(),
    testControl: testControl ? (peer, online) => isPeerId(peer) && (gateway.setPeerOnline(peer, online), true) : undefined,
    accept: (ws, req) => gateway.accept(ws, req),
  }).catch((error: unknown) => {
    metrics.close()
    throw error
  })
  gateway.start()
  storeAndForward?.start()

  if (auth.kind === 'dev') {
    log('warn', 'dev_mode', {
      message: 'INSECURE DEV MODE: any client can log in as any peer with the token "dev:<peerId>". Never expose this relay.',
    })
  }
  if (testControl)
    log('warn', 'test_control', { message: 'TEST CONTROL ON: anyone who reaches this relay can take peers offline (/test/...). Never expose this relay.' })
  log('info', 'listening', { url: server.url, host, port: server.port, auth: auth.kind, mailbox: mailbox !== undefined, node: cluster?.nodeId, limits })

  const close = (): Promise<void> => {
    shuttingDown = true
    return (closing ??= (async () => {
      presence.stop()
      unreached?.stop()
      storeAndForward?.stop()
      keys.stop()
      log('info', 'shutdown', { connections: connections.all.size })
      await gateway.shutdown()
      await server.close()
      metrics.close()
      await storeAndForward?.close()
      await cluster?.close().catch((error: unknown) => log('error', 'cluster_failed', { operation: 'close', message: errorMessage(error) }))
      log('info', 'stopped', {})
    })())
  }

  return { host, port: server.port, url: server.url, stats, close }
}
