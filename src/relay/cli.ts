#!/usr/bin/env node
/// <reference types="node" />
/**
 * `intersession-relay [--port N] [--host H] [--dev] [--test-control] [--redis URL | --redis-cluster HOST:PORT,... [--redis-durability fsync|replica|none] [--redis-wait-ms N] [--lease-ms N] [--cluster-timeout-ms N]] [--mailbox-dir DIR | --no-mailbox] [--mailbox-max-messages N] [--mailbox-max-bytes N] [--mailbox-retention-ms N] [--mailbox-totals-interval-ms N]`
 *
 * Environment (flags win over it):
 * - `INTERSESSION_RELAY_PORT` (default 8787; 0 = any free one), `INTERSESSION_RELAY_HOST` (default 127.0.0.1)
 * - `INTERSESSION_JWT_SECRET`: HS256 secret of the login tokens (never on the command line)
 * - `INTERSESSION_DEV=1`: insecure demo mode, same as `--dev`
 * - limits: `INTERSESSION_RELAY_MAX_FRAME_BYTES`, `_FRAMES_PER_SECOND`, `_MAX_PENDING_BYTES`,
 *   `_MAX_CONNECTIONS`, `_AUTH_TIMEOUT_MS`, `_PING_INTERVAL_MS`, `_MAILBOX_MAX_MESSAGES`, `_MAILBOX_MAX_BYTES`,
 *   `_MAILBOX_RETENTION_MS` (all prefixed `INTERSESSION_RELAY`)
 * - `INTERSESSION_RELAY_MAILBOX_DIR` (default `./.intersession-mailbox`), `INTERSESSION_RELAY_NO_MAILBOX=1`
 * - `INTERSESSION_RELAY_REDIS`: same as `--redis`; `INTERSESSION_RELAY_REDIS_CLUSTER`: same as `--redis-cluster`; `INTERSESSION_RELAY_REDIS_DURABILITY`, `INTERSESSION_RELAY_REDIS_WAIT_MS`, `INTERSESSION_RELAY_LEASE_MS`, `INTERSESSION_RELAY_CLUSTER_TIMEOUT_MS`, `INTERSESSION_RELAY_MAILBOX_TOTALS_INTERVAL_MS`
 *
 * The mailbox (store and forward for offline peers) is on by default, in an
 * embedded LevelDB directory that survives restarts. With `--redis` the relay
 * is one node of a cluster: routing, presence and the mailbox (Redis Streams)
 * go through that Redis, so any number of nodes serve one population of peers.
 * `stored` is answered once the message is durable: synced to disk (LevelDB),
 * or as `--redis-durability` says (default `fsync`: the relay refuses to start
 * unless Redis runs with `appendonly yes` and `appendfsync always`).
 *
 * Logs JSON lines on stdout, the first being `{"event":"listening","url":...,"port":...}`.
 * SIGINT/SIGTERM close every socket with 1001 (going away) and exit 0.
 */
import { parseArgs } from 'node:util'
import type { RelayCluster } from './cluster/cluster.js'
import type { Mailbox } from './mailbox/mailbox.js'
import { DEFAULT_CLUSTER_TIMEOUT_MS } from './cluster/cluster.js'
import { DEFAULT_LEASE_MS, MIN_LEASE_MS } from './cluster/node-lease.js'
import { DEFAULT_REDIS_DURABILITY, DEFAULT_REPLICA_TIMEOUT_MS, REDIS_DURABILITIES, type RedisDurability } from './mailbox/redis-durability.js'
import { parseRootNodes, type RedisTarget } from './redis-target.js'
import { createRelay, DEFAULT_MAILBOX_TOTALS_INTERVAL_MS, type RelayHandle, type RelayLimits } from './relay.js'

/** Where the mailbox lives unless told otherwise: next to where the relay runs. */
const DEFAULT_MAILBOX_DIR = './.intersession-mailbox'

/** A fixed port, so an app's dev config can name the relay's URL; 0 asks for any free one. */
const DEFAULT_PORT = 8787

const USAGE = `Usage: intersession-relay [--port N] [--host H] [--dev] [--test-control] [--redis URL | --redis-cluster HOST:PORT,... [--redis-durability P] [--redis-wait-ms N] [--lease-ms N] [--cluster-timeout-ms N]] [--mailbox-dir DIR | --no-mailbox]

  --port N        TCP port (default $INTERSESSION_RELAY_PORT or ${DEFAULT_PORT}; 0 = any free one)
  --host H        interface (default $INTERSESSION_RELAY_HOST or 127.0.0.1)
  --dev           INSECURE demo mode: token "dev:<peerId>" logs in as anyone
                  (or INTERSESSION_DEV=1)
  --test-control  FOR TESTS ONLY: /test/peers, /test/offline?peer=ID and
                  /test/online?peer=ID (intersession/playwright uses them)
  --redis URL     be one node of a cluster sharing this Redis (redis://host:port):
                  routing, presence and the mailbox go through it
                  (or INTERSESSION_RELAY_REDIS)
  --redis-cluster HOST:PORT[,HOST:PORT...]
                  the same on a Redis Cluster (7+), reached through these
                  nodes (or INTERSESSION_RELAY_REDIS_CLUSTER): each peer's
                  channel and mailbox live on its hash slot's shard
  --redis-durability fsync|replica|none
                  when the relay answers "stored" with the mailbox in Redis
                  (or INTERSESSION_RELAY_REDIS_DURABILITY; default ${DEFAULT_REDIS_DURABILITY}):
                  fsync    Redis has it on disk; refuses to start unless Redis
                           runs with appendonly yes and appendfsync always
                  replica  a replica has it (WAIT 1 after each write; on a
                           cluster, on the master of the message's slot)
                  none     it is in Redis's memory: a Redis crash loses it
  --redis-wait-ms N
                  with replica: how long a write waits for a replica
                  (default ${DEFAULT_REPLICA_TIMEOUT_MS}; or INTERSESSION_RELAY_REDIS_WAIT_MS)
  --lease-ms N    with --redis or --redis-cluster: a node that has not renewed
                  its lease for N ms is presumed dead and its peers are
                  announced offline (default ${DEFAULT_LEASE_MS}, at least ${MIN_LEASE_MS};
                  or INTERSESSION_RELAY_LEASE_MS)
  --cluster-timeout-ms N
                  with --redis or --redis-cluster: how long the relay waits on
                  Redis for any one thing: a login whose claim has not
                  answered within N ms is refused 1013 (the client logs in
                  again), a watch's subscription is tried again, and a frame
                  forwarded to another node or a mailbox command fails (the
                  sender sends it again) (default ${DEFAULT_CLUSTER_TIMEOUT_MS}; or
                  INTERSESSION_RELAY_CLUSTER_TIMEOUT_MS)
  --mailbox-dir DIR
                  keep messages for offline peers in this LevelDB directory
                  (default $INTERSESSION_RELAY_MAILBOX_DIR or ${DEFAULT_MAILBOX_DIR})
  --no-mailbox    no store and forward: frames for offline peers are refused
                  (or INTERSESSION_RELAY_NO_MAILBOX=1)
  --mailbox-max-messages N   entries per offline peer (default 10000)
  --mailbox-max-bytes N      message bytes per offline peer (default 67108864)
  --mailbox-retention-ms N   how long a message waits (default 604800000 = 7 days)
  --mailbox-totals-interval-ms N
                  with the mailbox in Redis: /metrics counts the entries and
                  bytes of the whole Redis (a SCAN of every master) at most
                  once per N ms (default ${DEFAULT_MAILBOX_TOTALS_INTERVAL_MS}; 0 = every scrape;
                  or INTERSESSION_RELAY_MAILBOX_TOTALS_INTERVAL_MS)

Authentication: set INTERSESSION_JWT_SECRET (HS256; sub = peer id, exp required),
or use --dev for local demos.`

const LIMIT_ENV: Record<keyof RelayLimits, string> = {
  maxFrameBytes: 'INTERSESSION_RELAY_MAX_FRAME_BYTES',
  framesPerSecond: 'INTERSESSION_RELAY_FRAMES_PER_SECOND',
  rateLimitCloseMs: 'INTERSESSION_RELAY_RATE_LIMIT_CLOSE_MS',
  maxPendingBytes: 'INTERSESSION_RELAY_MAX_PENDING_BYTES',
  maxConnections: 'INTERSESSION_RELAY_MAX_CONNECTIONS',
  authTimeoutMs: 'INTERSESSION_RELAY_AUTH_TIMEOUT_MS',
  pingIntervalMs: 'INTERSESSION_RELAY_PING_INTERVAL_MS',
  mailboxMaxMessages: 'INTERSESSION_RELAY_MAILBOX_MAX_MESSAGES',
  mailboxMaxBytes: 'INTERSESSION_RELAY_MAILBOX_MAX_BYTES',
  mailboxRetentionMs: 'INTERSESSION_RELAY_MAILBOX_RETENTION_MS',
}

/** Limits that also have a flag (the flag wins over the environment). */
const LIMIT_FLAGS = {
  mailboxMaxMessages: 'mailbox-max-messages',
  mailboxMaxBytes: 'mailbox-max-bytes',
  mailboxRetentionMs: 'mailbox-retention-ms',
} as const

function fail(message: string): never {
  process.stderr.write(`intersession-relay: ${message}\n\n${USAGE}\n`)
  process.exit(2)
}

function integer(value: string, name: string): number {
  if (!/^\d+$/.test(value)) fail(`${name} must be a non-negative integer, got "${value}"`)
  return Number(value)
}

async function main(): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        dev: { type: 'boolean' },
        'test-control': { type: 'boolean' },
        redis: { type: 'string' },
        'redis-cluster': { type: 'string' },
        'redis-durability': { type: 'string' },
        'redis-wait-ms': { type: 'string' },
        'lease-ms': { type: 'string' },
        'cluster-timeout-ms': { type: 'string' },
        'mailbox-dir': { type: 'string' },
        'no-mailbox': { type: 'boolean' },
        'mailbox-max-messages': { type: 'string' },
        'mailbox-max-bytes': { type: 'string' },
        'mailbox-retention-ms': { type: 'string' },
        'mailbox-totals-interval-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    })
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error))
  }
  const { values } = parsed
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const env = process.env
  const portText = values.port ?? (env.INTERSESSION_RELAY_PORT || String(DEFAULT_PORT))
  const port = integer(portText, 'port')
  const host = values.host ?? env.INTERSESSION_RELAY_HOST ?? '127.0.0.1'
  const dev = values.dev === true || env.INTERSESSION_DEV === '1' || env.INTERSESSION_DEV === 'true'
  const secret = env.INTERSESSION_JWT_SECRET
  const hasSecret = secret !== undefined && secret !== ''
  if (dev && hasSecret) fail('give either INTERSESSION_JWT_SECRET or --dev, not both')
  if (!dev && !hasSecret) fail('set INTERSESSION_JWT_SECRET, or pass --dev for an insecure local demo')
  const limits: Partial<Record<keyof RelayLimits, number>> = {}
  for (const [key, name] of Object.entries(LIMIT_ENV) as [keyof RelayLimits, string][]) {
    const value = env[name]
    if (value !== undefined && value !== '') limits[key] = integer(value, name)
  }
  for (const [key, flag] of Object.entries(LIMIT_FLAGS) as [keyof typeof LIMIT_FLAGS, string][]) {
    const value = values[flag as keyof typeof values]
    if (typeof value === 'string') limits[key] = integer(value, `--${flag}`)
  }
  const noMailbox = values['no-mailbox'] === true || env.INTERSESSION_RELAY_NO_MAILBOX === '1' || env.INTERSESSION_RELAY_NO_MAILBOX === 'true'
  if (noMailbox && values['mailbox-dir'] !== undefined) fail('give either --mailbox-dir or --no-mailbox, not both')
  const mailboxDir = values['mailbox-dir'] ?? env.INTERSESSION_RELAY_MAILBOX_DIR ?? DEFAULT_MAILBOX_DIR
  const redisUrl = values.redis ?? (env.INTERSESSION_RELAY_REDIS || undefined)
  const clusterNodes = values['redis-cluster'] ?? (env.INTERSESSION_RELAY_REDIS_CLUSTER || undefined)
  if (redisUrl !== undefined && clusterNodes !== undefined) fail('give either --redis or --redis-cluster, not both')
  let redis: RedisTarget | undefined
  try {
    redis = clusterNodes !== undefined ? { rootNodes: parseRootNodes(clusterNodes) } : redisUrl !== undefined ? { url: redisUrl } : undefined
  } catch (error) {
    fail(`--redis-cluster: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (redis !== undefined && values['mailbox-dir'] !== undefined) fail('with --redis or --redis-cluster the mailbox lives in Redis: drop --mailbox-dir')
  for (const flag of ['redis-durability', 'redis-wait-ms'] as const) {
    if (values[flag] !== undefined && (redis === undefined || noMailbox)) {
      fail(`--${flag} applies to the mailbox in Redis: it needs --redis or --redis-cluster, and a mailbox`)
    }
  }
  const durabilityText = values['redis-durability'] ?? (env.INTERSESSION_RELAY_REDIS_DURABILITY || DEFAULT_REDIS_DURABILITY)
  if (!(REDIS_DURABILITIES as readonly string[]).includes(durabilityText)) {
    fail(`--redis-durability must be one of ${REDIS_DURABILITIES.join(', ')}, got "${durabilityText}"`)
  }
  const durability = durabilityText as RedisDurability
  const waitText = values['redis-wait-ms'] ?? (env.INTERSESSION_RELAY_REDIS_WAIT_MS || undefined)
  const replicaTimeoutMs = waitText === undefined ? DEFAULT_REPLICA_TIMEOUT_MS : integer(waitText, '--redis-wait-ms')
  if (replicaTimeoutMs < 1) fail('--redis-wait-ms must be at least 1')
  const leaseText = values['lease-ms'] ?? (env.INTERSESSION_RELAY_LEASE_MS || undefined)
  if (leaseText !== undefined && redis === undefined) fail('--lease-ms applies to a cluster: it needs --redis or --redis-cluster')
  const leaseMs = leaseText === undefined ? DEFAULT_LEASE_MS : integer(leaseText, '--lease-ms')
  if (leaseMs < MIN_LEASE_MS) fail(`--lease-ms must be at least ${MIN_LEASE_MS}`)
  const clusterTimeoutText = values['cluster-timeout-ms'] ?? (env.INTERSESSION_RELAY_CLUSTER_TIMEOUT_MS || undefined)
  if (clusterTimeoutText !== undefined && redis === undefined) fail('--cluster-timeout-ms applies to a cluster: it needs --redis or --redis-cluster')
  const clusterTimeoutMs = clusterTimeoutText === undefined ? DEFAULT_CLUSTER_TIMEOUT_MS : integer(clusterTimeoutText, '--cluster-timeout-ms')
  if (clusterTimeoutMs < 1) fail('--cluster-timeout-ms must be at least 1')
  const totalsText = values['mailbox-totals-interval-ms'] ?? (env.INTERSESSION_RELAY_MAILBOX_TOTALS_INTERVAL_MS || undefined)
  const mailboxTotalsIntervalMs = totalsText === undefined ? DEFAULT_MAILBOX_TOTALS_INTERVAL_MS : integer(totalsText, '--mailbox-totals-interval-ms')
  const onRedisError = (error: Error): void => {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'warn', event: 'redis_error', message: error.message })}\n`)
  }

  let relay: RelayHandle | undefined
  let mailbox: Mailbox | undefined
  let cluster: RelayCluster | undefined
  let stopping = false as boolean // set by a signal handler, which narrowing does not see
  const close = (up: RelayHandle): void => {
    up.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1) // a second signal: give up waiting
    stopping = true
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'info', event: 'signal', signal })}\n`)
    if (relay !== undefined) close(relay)
  }
  // Before the `listening` line: a supervisor may signal as soon as it reads it.
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  try {
    // Loaded only when used: --no-mailbox needs no native module, a single relay no Redis client.
    if (redis !== undefined) {
      cluster = (await import('./cluster/redis.js')).createRedisCluster({ ...redis, leaseMs, timeoutMs: clusterTimeoutMs, onError: onRedisError })
      if (!noMailbox) {
        const { RedisMailbox } = await import('./mailbox/redis.js')
        mailbox = await RedisMailbox.open({ ...redis, onError: onRedisError, durability, replicaTimeoutMs, timeoutMs: clusterTimeoutMs })
      }
    } else if (!noMailbox) mailbox = await (await import('./mailbox/level.js')).LevelMailbox.open(mailboxDir)
    // Before createRelay: its `listening` line tells a supervisor the relay is up, with everything about its mailbox already said.
    if (mailbox !== undefined) {
      const where =
        redis !== undefined
          ? { redis: redis.url ?? redis.rootNodes, durability, ...(durability === 'replica' && { replicaTimeoutMs }) }
          : { dir: mailboxDir, durability: 'fsync' }
      process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'info', event: 'mailbox', ...where })}\n`)
      if (redis !== undefined && durability === 'none') {
        const message =
          '--redis-durability none: "stored" means in Redis\'s memory only; if Redis crashes or restarts before its own persistence ran, messages the relay answered "stored" are lost, and their senders no longer have them'
        process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'warn', event: 'redis_durability_none', message })}\n`)
        process.stderr.write(`intersession-relay: warning: ${message}\n`)
      }
    }
    relay = await createRelay({
      host,
      port,
      limits,
      mailboxTotalsIntervalMs,
      ...(mailbox !== undefined && { mailbox }),
      ...(cluster !== undefined && { cluster }),
      ...(dev ? { dev: true } : { jwtSecret: secret! }),
      ...(values['test-control'] === true && { testControl: true }),
    })
  } catch (error) {
    await mailbox?.close().catch(() => {})
    await cluster?.close().catch(() => {})
    process.stderr.write(`intersession-relay: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
  if (dev) process.stderr.write('\n  *** INSECURE DEV MODE: anyone can log in as any peer. Do not expose this relay. ***\n\n')
  if (stopping) close(relay)
}

void main()
