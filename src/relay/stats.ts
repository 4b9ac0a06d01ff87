/**
 * Why something was refused or a connection closed, as counted in
 * {@link RelayStats.refusals}:
 * - `auth_failed`, `auth_expired`, `auth_timeout`: logins refused / sessions ended (AUTH_* codes)
 * - `replaced`: a connection closed by a newer login of the same id (REPLACED)
 * - `malformed`: bad control message or envelope, or a message before auth (PROTOCOL)
 * - `too_big`: message over `maxFrameBytes` (1009)
 * - `rate`: a message dropped for exceeding `framesPerSecond`
 * - `rate_limited`: a connection closed for staying over the rate (RATE_LIMITED)
 * - `offline`: a frame or signal for a peer that is not connected and that the mailbox does not hold (`undeliverable` 'offline')
 * - `forged`: a frame for the mailbox whose own `from`/`to` differ from its envelope, or undecodable: dropped
 * - `mailbox_full`: a message refused by a full mailbox (the sender gets `failed`)
 * - `held_back`: a message for the mailbox above a seq of its stream whose put failed on that connection: dropped
 *   until that seq is stored, so the mailbox keeps the stream in order (the sender retransmits both)
 * - `slow`: a frame or signal not forwarded because the destination is too far behind (`undeliverable` 'slow')
 * - `slow_control`: a control message (presence, undeliverable, pong…) to a client too far behind, dropped
 * - `idle`: a connection closed for not answering pings (IDLE)
 * - `full`: a connection refused at the connection limit (FULL)
 * - `unavailable`: a login refused, or a frame not routed, because the cluster backend is unreachable or a test took the peer offline (`testControl`) (UNAVAILABLE / `undeliverable` 'unavailable')
 */
export type RefusalReason =
  | 'auth_failed'
  | 'auth_expired'
  | 'auth_timeout'
  | 'replaced'
  | 'malformed'
  | 'too_big'
  | 'rate'
  | 'rate_limited'
  | 'offline'
  | 'forged'
  | 'mailbox_full'
  | 'held_back'
  | 'slow'
  | 'slow_control'
  | 'idle'
  | 'full'
  | 'unavailable'

/** Every {@link RefusalReason}, in the order they are documented. */
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'auth_failed',
  'auth_expired',
  'auth_timeout',
  'replaced',
  'malformed',
  'too_big',
  'rate',
  'rate_limited',
  'offline',
  'forged',
  'mailbox_full',
  'held_back',
  'slow',
  'slow_control',
  'idle',
  'full',
  'unavailable',
]

/** Counters of a relay, since it started (except the gauges `connections`, `authenticated`, `pendingBytes`). */
export interface RelayStats {
  /** Open sockets, authenticated or not. */
  readonly connections: number
  /** Open, authenticated sockets (= peers online). */
  readonly authenticated: number
  /** Sockets accepted since start. */
  readonly accepted: number
  /** Logins completed (welcomed) since start. */
  readonly logins: number
  /** Envelopes received from authenticated peers (including dropped and malformed ones). */
  readonly framesIn: number
  /** Envelopes forwarded to peers. */
  readonly framesOut: number
  /** Packs (messages of several envelopes, each counted in `framesIn` / `framesOut`) received / sent. */
  readonly packsIn: number
  readonly packsOut: number
  /** Control messages received / sent. */
  readonly controlIn: number
  readonly controlOut: number
  /** WebSocket message bytes received / sent (envelopes and control). */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Bytes queued on all sockets right now (bounded by ~`maxPendingBytes` per socket). */
  readonly pendingBytes: number
  /** Mailbox: entries stored, entries sent to peers (as they logged in, or again when they asked), messages expired by retention. */
  readonly stored: number
  readonly drained: number
  readonly expired: number
  /**
   * Mailbox operations that failed (logged as `mailbox_failed`), e.g. a put
   * Redis did not make durable as its policy asks: no `stored` was sent, so
   * the sender still holds the message and retransmits it.
   */
  readonly mailboxFailures: number
  /** Key directory: bundles published (`keys`), fetches answered with a bundle / with `null`, and directory operations that failed (no answer was sent). */
  readonly keysPublished: number
  readonly keysFound: number
  readonly keysUnknown: number
  readonly keysFailures: number
  readonly refusals: Readonly<Record<RefusalReason, number>>
}

/** The gauges of {@link RelayStats}: read from the connections when asked. */
export type RelayGauges = Pick<RelayStats, 'connections' | 'authenticated' | 'pendingBytes'>

/** The relay's counters, shared by its parts, which increment them in place. */
export class RelayCounters {
  accepted = 0
  logins = 0
  framesIn = 0
  framesOut = 0
  packsIn = 0
  packsOut = 0
  controlIn = 0
  controlOut = 0
  bytesIn = 0
  bytesOut = 0
  stored = 0
  drained = 0
  expired = 0
  mailboxFailures = 0
  keysPublished = 0
  keysFound = 0
  keysUnknown = 0
  keysFailures = 0
  readonly refusals = Object.fromEntries(REFUSAL_REASONS.map((reason) => [reason, 0])) as Record<RefusalReason, number>

  /** A snapshot, with the gauges given. */
  stats({ connections, authenticated, pendingBytes }: RelayGauges): RelayStats {
    return {
      connections,
      authenticated,
      accepted: this.accepted,
      logins: this.logins,
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      packsIn: this.packsIn,
      packsOut: this.packsOut,
      controlIn: this.controlIn,
      controlOut: this.controlOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      stored: this.stored,
      drained: this.drained,
      expired: this.expired,
      mailboxFailures: this.mailboxFailures,
      keysPublished: this.keysPublished,
      keysFound: this.keysFound,
      keysUnknown: this.keysUnknown,
      keysFailures: this.keysFailures,
      pendingBytes,
      refusals: { ...this.refusals },
    }
  }
}
