import type { Clock } from './clock.js'
import type { E2EFactory } from './e2e.js'
import type { Store } from './store.js'
import type { Transport } from './transport.js'

/** Tunable limits. Every one has a safe default. */
export interface Limits {
  /** Unacknowledged messages in flight per stream (the sliding window). Default 256. */
  readonly window: number
  /** Largest encoded contents accepted by `send()`. Default 1 MiB. */
  readonly maxMessageBytes: number
  /** Messages queued toward one peer before `send()` rejects with `QUEUE_FULL`. Default 1,000,000. */
  readonly maxPendingPerPeer: number
  /** Received messages waiting for the application per sender; beyond it frames are not acked (backpressure). Default 100,000. */
  readonly maxInboxPerPeer: number
  /** Lowest (and first) retransmission timeout; it adapts to measured round trips and doubles on each timeout. Default 1,000 ms. */
  readonly retransmitMs: number
  /** Retransmission timeout cap. Default 30,000 ms. */
  readonly maxRetransmitMs: number
  /** First wait before handing a message again after its handler threw; doubles. Default 1,000 ms. */
  readonly handlerRetryMs: number
  /**
   * Messages per sender handed over before their "processed" mark is
   * committed, in one transaction. After a crash at most this many are handed
   * over again. 1 is the strictest (one transaction per message); the default
   * 128 spares the store 127 of 128 transactions, and as many round trips to
   * the page (32: receiver CPU 1.6x and 1.4x the time for a burst). Default 128.
   */
  readonly processBatch: number
  /** How long receipts of delivered and expired messages are kept for `status()`. Default 7 days. */
  readonly receiptTtlMs: number
  /**
   * How long the commits kept off the critical path may wait, unless another
   * transaction takes them along first: the sender's record of an ack (lost
   * in a crash, the peer's copy is sent again and ignored), its record of a
   * relay's `stored` or `failed` receipt (lost in a crash, the row goes to
   * the relay again and its mailbox, which holds each seq once, answers the
   * same) and the receiver's mark of fewer than `processBatch` processed
   * messages (lost in a crash, those are handed over again, within the
   * `processBatch` bound). 0 commits each at once. Default 50 ms.
   */
  readonly deferCommitMs: number
  /**
   * How long a receiver may hold the ack of messages it stored, so that one
   * ack covers those stored meanwhile: fewer frames through the relay and
   * fewer ack records for the sender to commit. It acks at once once a
   * sixteenth of its own `window` waits (16 messages by default), or for a
   * duplicate (the sender is resending: it may have missed the last ack).
   * Only the sender's `delivered` events wait; nothing is handed over later.
   * 0 acks at the end of each turn. Default 20 ms.
   */
  readonly ackDelayMs: number
}

/** Options of the engine with every dependency explicit. */
export interface EngineOptions {
  readonly store: Store
  readonly transport: Transport
  readonly clock: Clock
  /** Random url-safe ids (21 characters is plenty): message ids and epoch suffixes. */
  readonly newId: () => string
  /**
   * End-to-end encryption: the factory of this identity's cipher, or `false`
   * to send contents in clear (peers must agree: one that encrypts refuses
   * one that does not, with `E2E_MISMATCH`).
   */
  readonly encryption: E2EFactory | false
  readonly limits?: Partial<Limits>
}

/** The default limits. */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  window: 256,
  maxMessageBytes: 1024 * 1024,
  maxPendingPerPeer: 1_000_000,
  maxInboxPerPeer: 100_000,
  retransmitMs: 1000,
  maxRetransmitMs: 30_000,
  handlerRetryMs: 1000,
  processBatch: 128,
  receiptTtlMs: 7 * 24 * 3600 * 1000,
  deferCommitMs: 50,
  ackDelayMs: 20,
})

const RANGES: Record<keyof Limits, readonly [number, number]> = {
  window: [1, 65_536],
  maxMessageBytes: [0, 256 * 1024 * 1024],
  maxPendingPerPeer: [1, Number.MAX_SAFE_INTEGER],
  maxInboxPerPeer: [1, Number.MAX_SAFE_INTEGER],
  retransmitMs: [1, 3_600_000],
  maxRetransmitMs: [1, 86_400_000],
  handlerRetryMs: [1, 3_600_000],
  processBatch: [1, 1024],
  receiptTtlMs: [0, Number.MAX_SAFE_INTEGER],
  deferCommitMs: [0, 60_000],
  ackDelayMs: [0, 10_000],
}

/**
 * Checks options and fills in default limits.
 * @throws TypeError for a missing or mistyped option, RangeError for a value out of range.
 */
export function resolveOptions(options: EngineOptions): EngineOptions & { readonly limits: Limits } {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  requireMethods('store', options.store, ['open'])
  requireMethods('transport', options.transport, ['open', 'send', 'close'])
  requireMethods('clock', options.clock, ['now', 'setTimeout', 'clearTimeout'])
  if (typeof options.newId !== 'function') throw new TypeError('newId must be a function')
  if (options.encryption !== false && typeof options.encryption !== 'function') throw new TypeError('encryption must be a cipher factory or false')
  return { ...options, limits: resolveLimits(options.limits) }
}

/**
 * Checks partial limits and fills in the defaults.
 * @throws TypeError for a mistyped or unknown limit, RangeError for a value out of range.
 */
export function resolveLimits(given: Partial<Limits> | undefined): Limits {
  if (given !== undefined && (typeof given !== 'object' || given === null)) throw new TypeError('limits must be an object')
  const limits: Record<string, number> = { ...DEFAULT_LIMITS }
  for (const [key, value] of Object.entries(given ?? {})) {
    const range = RANGES[key as keyof Limits]
    if (range === undefined) throw new TypeError(`unknown limit "${key}"`)
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`limits.${key} must be an integer`)
    if (value < range[0] || value > range[1]) throw new RangeError(`limits.${key} must be in ${range[0]}..${range[1]}`)
    limits[key] = value
  }
  if (limits.maxRetransmitMs! < limits.retransmitMs!) throw new RangeError('limits.maxRetransmitMs must be >= limits.retransmitMs')
  return limits as unknown as Limits
}

function requireMethods(name: string, value: unknown, methods: readonly string[]): void {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${name} is required`)
  for (const method of methods) {
    if (typeof (value as Record<string, unknown>)[method] !== 'function') {
      throw new TypeError(`${name}.${method} must be a function`)
    }
  }
}
