import type { RelayCluster } from './cluster/cluster.js'
import type { Mailbox } from './mailbox/mailbox.js'
import { resolveAuth, type Authenticator, type VerifyToken } from './auth.js'

/** Limits, all on by default. */
export interface RelayLimits {
  /** Largest WebSocket message (envelope or control) in bytes; larger closes 1009. Default 1 MiB + 64 KiB. */
  readonly maxFrameBytes: number
  /** Messages per second per connection (token bucket, burst 2x). Excess is dropped. Default 2,000. */
  readonly framesPerSecond: number
  /** How long a connection may stay over its rate before it is closed RATE_LIMITED, in ms. Default 3,000. */
  readonly rateLimitCloseMs: number
  /** A frame is not forwarded while the destination socket has more than this many bytes queued. Default 8 MiB. */
  readonly maxPendingBytes: number
  /**
   * Open sockets (authenticated or not). Beyond it the oldest socket that has
   * not sent `auth` yet is closed FULL to make room, or, if there is none, the
   * newcomer. Default 10,000.
   */
  readonly maxConnections: number
  /**
   * Time to send `auth` and be verified, in ms; then AUTH_TIMEOUT. Also the
   * longest an HTTP request (or WebSocket upgrade) may take to arrive. Default 10,000.
   */
  readonly authTimeoutMs: number
  /** WebSocket ping interval in ms; no pong by the next ping closes IDLE. Default 15,000. */
  readonly pingIntervalMs: number
  /** Mailbox: entries held per offline peer; a message beyond it fails `full_messages`. Default 10,000. */
  readonly mailboxMaxMessages: number
  /** Mailbox: message bytes held per offline peer; a message beyond it fails `full_bytes`. Default 64 MiB. */
  readonly mailboxMaxBytes: number
  /** Mailbox: how long a message waits for its receiver before it fails `retention`, in ms. Default 7 days. */
  readonly mailboxRetentionMs: number
}

/** The default {@link RelayLimits}. */
export const DEFAULT_RELAY_LIMITS: RelayLimits = Object.freeze({
  maxFrameBytes: 1024 * 1024 + 64 * 1024,
  framesPerSecond: 2000,
  rateLimitCloseMs: 3000,
  maxPendingBytes: 8 * 1024 * 1024,
  maxConnections: 10_000,
  authTimeoutMs: 10_000,
  pingIntervalMs: 15_000,
  mailboxMaxMessages: 10_000,
  mailboxMaxBytes: 64 * 1024 * 1024,
  mailboxRetentionMs: 7 * 24 * 3600 * 1000,
})

/** The default of {@link RelayOptions.mailboxTotalsIntervalMs}. */
export const DEFAULT_MAILBOX_TOTALS_INTERVAL_MS = 15_000

/** The longest delay a Node timer takes (a longer one fires at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A structured log entry: `{ time, level, event, ...fields }`. */
export interface RelayLogEntry {
  readonly time: string
  readonly level: 'debug' | 'info' | 'warn' | 'error'
  readonly event: string
  readonly [field: string]: unknown
}

/** Options of `createRelay`. Exactly one of `verify`, `jwtSecret` and `dev: true` must be given. */
export interface RelayOptions {
  /** Interface to listen on. Default `'127.0.0.1'` (loopback only). */
  readonly host?: string
  /** TCP port; 0 (the default) picks an ephemeral one. */
  readonly port?: number
  /** Custom authentication: token -> peer id. */
  readonly verify?: VerifyToken
  /** HS256 JWT secret: a token is valid when signed with it, `sub` is the peer id and `exp` has not passed. */
  readonly jwtSecret?: string | Uint8Array
  /** INSECURE demo mode: the token `dev:<peerId>` logs in as any peer. */
  readonly dev?: boolean
  readonly limits?: Partial<RelayLimits>
  /**
   * Store and forward: frames for offline peers are kept here (the relay
   * closes it on `close()`). Without it, such frames are refused `offline`.
   */
  readonly mailbox?: Mailbox
  /**
   * `GET /metrics`, for a mailbox that walks its storage to count what it
   * holds (`RedisMailbox`: a `SCAN` of every master): a new count starts only
   * once this many ms have passed since the last one ended, so scrapes in
   * between show the last count (`intersession_relay_mailbox_totals_age_seconds`
   * says how old). 0 counts on every scrape (still one count at a time).
   * Memory and LevelDB mailboxes keep counters and ignore it. Default 15,000.
   */
  readonly mailboxTotalsIntervalMs?: number
  /**
   * Makes this relay one node of many (e.g. `createRedisCluster`): frames,
   * signals and presence reach peers connected to other nodes, and a login
   * here replaces the same peer's connection on any node. Give the nodes a
   * shared mailbox too (e.g. `RedisMailbox`). The relay closes it on `close()`.
   */
  readonly cluster?: RelayCluster
  /** Receives structured log entries. Default: JSON lines on stdout. */
  readonly logger?: (entry: RelayLogEntry) => void
  /**
   * FOR TESTS ONLY: serves `GET /test/peers` (the logged-in peers) and
   * `POST /test/offline?peer=ID` / `POST /test/online?peer=ID`, which close
   * a peer's connection and refuse its logins until it is let back online
   * (`intersession/playwright` cuts a peer off with it). Anyone who can reach
   * the relay can use it: never turn it on in a relay users reach.
   */
  readonly testControl?: boolean
}

/** {@link RelayOptions} checked, with every default filled in. */
export interface ResolvedRelayOptions {
  readonly host: string
  readonly port: number
  readonly limits: RelayLimits
  readonly logger: (entry: RelayLogEntry) => void
  readonly auth: Authenticator
  readonly mailbox: Mailbox | undefined
  readonly mailboxTotalsIntervalMs: number
  readonly cluster: RelayCluster | undefined
  readonly testControl: boolean
}

/**
 * Checks the options of `createRelay` and fills in the defaults.
 * @throws TypeError unless exactly one of `verify`, `jwtSecret`, `dev: true` is given, or on a mistyped option.
 * @throws RangeError for a port, limit or `mailboxTotalsIntervalMs` out of range.
 */
export function resolveRelayOptions(options: RelayOptions): ResolvedRelayOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('host must be a non-empty string')
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError('port must be an integer in 0..65535')
  const limits = resolveRelayLimits(options.limits)
  const logger = options.logger ?? defaultLogger
  if (typeof logger !== 'function') throw new TypeError('logger must be a function')
  const auth = resolveAuth(options)
  const mailbox = options.mailbox
  if (mailbox !== undefined && (typeof mailbox !== 'object' || mailbox === null || typeof mailbox.put !== 'function')) {
    throw new TypeError('mailbox must implement Mailbox')
  }
  const mailboxTotalsIntervalMs = options.mailboxTotalsIntervalMs ?? DEFAULT_MAILBOX_TOTALS_INTERVAL_MS
  if (!Number.isSafeInteger(mailboxTotalsIntervalMs) || mailboxTotalsIntervalMs < 0) {
    throw new RangeError('mailboxTotalsIntervalMs must be an integer >= 0 (ms)')
  }
  const cluster = options.cluster
  if (cluster !== undefined && (typeof cluster !== 'object' || cluster === null || typeof cluster.claim !== 'function')) {
    throw new TypeError('cluster must implement RelayCluster')
  }
  const testControl = options.testControl ?? false
  if (typeof testControl !== 'boolean') throw new TypeError('testControl must be a boolean')
  return { host, port, limits, logger, auth, mailbox, mailboxTotalsIntervalMs, cluster, testControl }
}

function resolveRelayLimits(given: Partial<RelayLimits> | undefined): RelayLimits {
  if (given !== undefined && (typeof given !== 'object' || given === null)) throw new TypeError('limits must be an object')
  const out: Record<string, number> = { ...DEFAULT_RELAY_LIMITS }
  for (const [key, value] of Object.entries(given ?? {})) {
    if (!(key in DEFAULT_RELAY_LIMITS)) throw new TypeError(`unknown limit "${key}"`)
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new RangeError(`limits.${key} must be a positive integer`)
    out[key] = value
  }
  if (out.pingIntervalMs! > MAX_TIMER_MS || out.authTimeoutMs! > MAX_TIMER_MS) throw new RangeError('timeouts must fit a timer (< 2^31 ms)')
  if (out.mailboxMaxMessages! > 2 ** 30) throw new RangeError('limits.mailboxMaxMessages must be at most 2^30')
  return Object.freeze(out as unknown as RelayLimits)
}

function defaultLogger(entry: RelayLogEntry): void {
  process.stdout.write(`${JSON.stringify(entry)}\n`)
}
