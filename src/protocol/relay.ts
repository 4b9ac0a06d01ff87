/**
 * The relay protocol (v1), shared by the relay server (Node) and the
 * WebSocket transport (browser, worker, Node).
 *
 * - Control messages are JSON text frames, validated on receipt.
 * - Engine frames travel as binary WebSocket messages in an envelope:
 *   client -> relay `[u16 BE length][to, UTF-8][frame]`,
 *   relay -> client `[u16 BE length][from, UTF-8][frame]`.
 *   The relay replaces the address with the sender's authenticated id, and
 *   the engine refuses a frame whose own `from` differs from that id. So
 *   nobody can speak as another peer. A relay with a mailbox also decodes
 *   `msg` and `ack` frames (to store, acknowledge and expire them) and drops
 *   a frame whose `from`/`to` differ from the envelope's.
 * - Going down, the top bit of the length marks a frame drained from the
 *   mailbox: it does not prove its sender online.
 * - Packs: several envelopes in one binary message, `[0xFF 0xFF]` then, per
 *   envelope, `[u32 BE length][envelope]` (no envelope starts with 0xFFFF:
 *   an address has at most 512 bytes). A relay that reads packs says so in
 *   `welcome` (`pack: true`), a client in `auth`; each side sends packs only
 *   to a side that said so. A pack is never larger than the relay's
 *   `maxFrameBytes`; an envelope that does not fit in one goes alone.
 * - Only the relay sends control messages (a peer's `signal` is wrapped), so
 *   `stored` and `failed` receipts cannot be forged by peers.
 * - Key directory: a client publishes its public key bundle with `keys`
 *   (opaque bytes as unpadded base64url, at most {@link MAX_BUNDLE_CHARS}
 *   characters); the relay keeps it under the connection's authenticated id
 *   (never an id named in a message), replacing the previous one, and
 *   answers nothing. `key?` asks for a peer's bundle; the relay answers
 *   `key` with the same `n` and `peer`, and the bundle or `null` when it has
 *   none. The relay does not vouch for a bundle: the engine verifies it.
 *   A client may also give its bundle in `auth`: the relay stores it before
 *   the login completes, and says so with `keys: true` in `welcome`, so that
 *   nobody who sees the peer online can still be served its previous bundle.
 */

import { isEpoch, isPeerId } from '../core/ids.js'
import { decodeBase64Url } from './base64url.js'

/** Client -> relay control messages. */
export type ClientControl =
  /**
   * Must be the first message; the relay closes with AUTH_* codes otherwise. `pack`: this client reads packs. `keys`:
   * its public key bundle (as in `keys`), in the directory before the relay says `welcome` or announces the peer.
   * `window`: the most messages of one sender it keeps as they come; a relay with a mailbox sends no more than that of
   * a sender at login and then `redrained` (`more`) for it, and the client asks for the rest (`redrain`). A relay older
   * than that ignores it and sends everything.
   */
  | { readonly t: 'auth'; readonly token: string; readonly pack?: boolean; readonly keys?: string; readonly window?: number }
  /** Report presence changes of these peers (replaces the previous list). */
  | { readonly t: 'watch'; readonly peers: readonly string[] }
  /** WebRTC signalling for `to`, forwarded with `from` stamped. */
  | { readonly t: 'signal'; readonly to: string; readonly data: unknown }
  /** Application-level heartbeat; answered with `pong`. */
  | { readonly t: 'ping'; readonly n: number }
  /** Publishes this peer's public key bundle (canonical unpadded base64url), stored under its authenticated id. */
  | { readonly t: 'keys'; readonly bundle: string }
  /** Asks for `peer`'s key bundle; answered by `key` with the same `n`. */
  | { readonly t: 'key?'; readonly n: number; readonly peer: string }
  /**
   * Asks the mailbox again for up to `limit` stored messages from `from`, past seq `after` of `epoch` or of a newer
   * epoch: sent as at login, after the drain under way. The client could not keep them as the login drained them.
   */
  | { readonly t: 'redrain'; readonly from: string; readonly epoch: string; readonly after: number; readonly limit: number }

/** Relay -> client control messages. */
export type RelayControl =
  /**
   * `mailbox`: frames for offline peers are stored (store and forward), so send to them too. `pack`: this relay reads
   * packs. `keys`: the bundle given in `auth` is in the directory (a relay older than that, or whose directory failed,
   * leaves it out: send `keys`). `redrain`: this relay answers `redrain` (one older than that closes the connection
   * over it).
   */
  | {
      readonly t: 'welcome'
      readonly id: string
      readonly session: string
      readonly limits: RelayLimitsInfo
      readonly mailbox?: boolean
      readonly pack?: boolean
      readonly keys?: boolean
      readonly redrain?: boolean
    }
  | { readonly t: 'presence'; readonly peer: string; readonly online: boolean }
  | { readonly t: 'signal'; readonly from: string; readonly data: unknown }
  | { readonly t: 'pong'; readonly n: number }
  /**
   * A frame to `peer` was not forwarded: it is offline, its socket is too far behind (`slow`), or the relay cannot
   * tell where it is now (`unavailable`: its cluster backend is unreachable). A client older than `unavailable`
   * drops the message, as it should: only `offline` says anything of the peer.
   */
  | { readonly t: 'undeliverable'; readonly peer: string; readonly reason: 'offline' | 'slow' | 'unavailable' }
  /**
   * After `undeliverable: unavailable` for `peer`, the relay can tell where it is again: `online` (a session can start
   * now, even with a peer already taken for online) or not (send to the mailbox). A client older than this message
   * drops it and waits for its own retransmission.
   */
  | { readonly t: 'available'; readonly peer: string; readonly online: boolean }
  /** What a `redrain` for `from` asked for was sent (after it); `more`: it stopped at its limit, so more may wait. */
  | { readonly t: 'redrained'; readonly from: string; readonly more: boolean }
  /** The relay's mailbox now holds message `seq` (of this peer's stream in `epoch`) for the offline `peer`. */
  | { readonly t: 'stored'; readonly peer: string; readonly epoch: string; readonly seq: number }
  /**
   * The relay gave up on message `seq` for `peer` (`reason`: `full_messages`,
   * `full_bytes`, `retention`). `held`: the mailbox keeps a skip in its place,
   * so the receiver moves past the seq without the sender; otherwise the
   * sender must send the skip itself.
   */
  | { readonly t: 'failed'; readonly peer: string; readonly epoch: string; readonly seq: number; readonly reason: FailureReason; readonly held: boolean }
  /** The answer to `key?` `n`: `peer`'s key bundle as the relay holds it (base64url), or `null` when it holds none. */
  | { readonly t: 'key'; readonly n: number; readonly peer: string; readonly bundle: string | null }

/** Why the relay's mailbox gave up on a message. */
export type FailureReason = 'full_messages' | 'full_bytes' | 'retention'

const FAILURE_REASONS: readonly string[] = ['full_messages', 'full_bytes', 'retention'] satisfies FailureReason[]

/** Limits the relay announces in `welcome`, so clients can stay inside them. */
export interface RelayLimitsInfo {
  readonly maxFrameBytes: number
  readonly framesPerSecond: number
}

/** WebSocket close codes used by the relay. Stable: part of the API. */
export const CLOSE_CODES = {
  /** Server shutting down; reconnect (elsewhere). */
  GOING_AWAY: 1001,
  /** Frame larger than `maxFrameBytes`. */
  TOO_BIG: 1009,
  /** The token was missing, malformed, wrongly signed, or names another id. */
  AUTH_FAILED: 4001,
  /** The token has expired (at login, or while connected). */
  AUTH_EXPIRED: 4002,
  /** No `auth` within the login timeout. */
  AUTH_TIMEOUT: 4003,
  /** A newer login of the same id replaced this connection. */
  REPLACED: 4004,
  /** Malformed control message or envelope. */
  PROTOCOL: 4005,
  /** More frames per second than allowed, for too long. */
  RATE_LIMITED: 4008,
  /** No pong to the relay's pings within the idle timeout. */
  IDLE: 4009,
  /** The relay is at its connection limit. */
  FULL: 4010,
  /** The relay cannot reach its cluster backend (Redis) to log the peer in; try again, or another relay. */
  UNAVAILABLE: 1013,
} as const

/** True for a `ws:` or `wss:` URL, the only kind a relay is reached at. */
export function isRelayUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    const protocol = new URL(value).protocol
    return protocol === 'ws:' || protocol === 'wss:'
  } catch {
    return false
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

const STORED_FLAG = 0x8000

/**
 * Wraps a frame with an address (the destination going up, the source coming
 * down); `stored` marks a frame drained from the relay's mailbox.
 */
export function envelope(address: string, frame: Uint8Array, stored = false): Uint8Array {
  return joined(envelopeHead(address, stored), frame)
}

/** What {@link envelope} writes before the frame: the address's length (and the `stored` flag), then the address. */
export function envelopeHead(address: string, stored = false): Uint8Array {
  const id = encoder.encode(address)
  const out = new Uint8Array(2 + id.byteLength)
  out[0] = (id.byteLength | (stored ? STORED_FLAG : 0)) >>> 8
  out[1] = id.byteLength & 0xff
  out.set(id, 2)
  return out
}

/** `head` (if any) then `frame`, in one array. */
function joined(head: Uint8Array | undefined, frame: Uint8Array): Uint8Array {
  if (head === undefined) return frame
  const out = new Uint8Array(head.byteLength + frame.byteLength)
  out.set(head)
  out.set(frame, head.byteLength)
  return out
}

/** Splits an envelope; `undefined` if malformed. Never throws. */
export function openEnvelope(data: Uint8Array): { address: string; frame: Uint8Array; stored: boolean } | undefined {
  if (data.byteLength < 2) return undefined
  const word = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint16(0)
  const length = word & ~STORED_FLAG
  if (length === 0 || 2 + length > data.byteLength) return undefined
  try {
    return { address: decoder.decode(data.subarray(2, 2 + length)), frame: data.subarray(2 + length), stored: word >= STORED_FLAG }
  } catch {
    return undefined
  }
}

const PACK_MARK = 0xffff
/** Bytes a pack adds: its mark, then a length per envelope. */
export const PACK_HEADER_BYTES = 2
export const PACK_ITEM_BYTES = 4

/**
 * `envelopes` in one message: the one envelope as it is, or a pack of several. Where `heads[i]` is given, envelope
 * `i` is that {@link envelopeHead} then the frame `envelopes[i]`, joined as they are written.
 */
export function pack(envelopes: readonly Uint8Array[], heads: readonly (Uint8Array | undefined)[] = []): Uint8Array {
  const [first] = envelopes
  if (envelopes.length === 1 && first !== undefined) return joined(heads[0], first)
  let size = PACK_HEADER_BYTES
  // Index loops: an entries() iterator allocates a pair per envelope.
  for (let i = 0; i < envelopes.length; i++) size += PACK_ITEM_BYTES + (heads[i]?.byteLength ?? 0) + (envelopes[i] as Uint8Array).byteLength
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint16(0, PACK_MARK)
  let at = PACK_HEADER_BYTES
  for (let i = 0; i < envelopes.length; i++) {
    const head = heads[i] ?? EMPTY
    const one = envelopes[i] as Uint8Array
    view.setUint32(at, head.byteLength + one.byteLength)
    out.set(head, at + PACK_ITEM_BYTES)
    out.set(one, at + PACK_ITEM_BYTES + head.byteLength)
    at += PACK_ITEM_BYTES + head.byteLength + one.byteLength
  }
  return out
}

const EMPTY = new Uint8Array(0)

/**
 * The envelopes of a binary message: a pack's, in order (views into `data`), or `data` itself; `undefined` for a
 * malformed pack (empty, a length past its end, an envelope shorter than an address length). Never throws.
 */
export function unpack(data: Uint8Array): Uint8Array[] | undefined {
  if (data.byteLength < PACK_HEADER_BYTES) return [data]
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  if (view.getUint16(0) !== PACK_MARK) return [data]
  const out: Uint8Array[] = []
  let at = PACK_HEADER_BYTES
  while (at < data.byteLength) {
    if (at + PACK_ITEM_BYTES > data.byteLength) return undefined
    const length = view.getUint32(at)
    at += PACK_ITEM_BYTES
    if (length < 2 || at + length > data.byteLength) return undefined
    out.push(data.subarray(at, at + length))
    at += length
  }
  return out.length === 0 ? undefined : out
}

/** The longest watch list a relay accepts; a longer one is malformed and ends the connection. */
export const MAX_WATCH = 10_000

/** The longest key bundle in a `keys` or `key` message, in base64url characters. */
export const MAX_BUNDLE_CHARS = 1024

/** The most bytes a key bundle may have: what {@link MAX_BUNDLE_CHARS} characters of base64url carry (768). */
export const MAX_BUNDLE_BYTES = (MAX_BUNDLE_CHARS / 4) * 3

/** True for a key bundle as the protocol carries it: canonical unpadded base64url of 1..{@link MAX_BUNDLE_CHARS} characters. */
export function isWireBundle(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_BUNDLE_CHARS && decodeBase64Url(value) !== undefined
}

/** The most messages one `redrain` asks for: the largest `window`. */
export const MAX_REDRAIN = 65_536

function isRedrainLimit(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= MAX_REDRAIN
}

/** Parses a client control message; `undefined` if malformed. Never throws. */
export function parseClientControl(text: string): ClientControl | undefined {
  const m = parseObject(text)
  if (m === undefined) return undefined
  switch (m.t) {
    case 'auth':
      return typeof m.token === 'string' &&
        m.token.length > 0 &&
        m.token.length <= 8192 &&
        (m.keys === undefined || isWireBundle(m.keys)) &&
        (m.window === undefined || isRedrainLimit(m.window))
        ? {
            t: 'auth',
            token: m.token,
            ...(m.pack === true && { pack: true }),
            ...(m.keys !== undefined && { keys: m.keys }),
            ...(m.window !== undefined && { window: m.window }),
          }
        : undefined
    case 'watch':
      return Array.isArray(m.peers) && m.peers.length <= MAX_WATCH && m.peers.every((p) => typeof p === 'string') ? { t: 'watch', peers: m.peers } : undefined
    case 'signal':
      return typeof m.to === 'string' && 'data' in m ? { t: 'signal', to: m.to, data: m.data } : undefined
    case 'ping':
      return Number.isSafeInteger(m.n) ? { t: 'ping', n: m.n as number } : undefined
    case 'keys':
      return isWireBundle(m.bundle) ? { t: 'keys', bundle: m.bundle } : undefined
    case 'key?':
      return Number.isSafeInteger(m.n) && isPeerId(m.peer) ? { t: 'key?', n: m.n as number, peer: m.peer } : undefined
    case 'redrain':
      return isPeerId(m.from) && isEpoch(m.epoch) && Number.isSafeInteger(m.after) && (m.after as number) >= -1 && isRedrainLimit(m.limit)
        ? { t: 'redrain', from: m.from, epoch: m.epoch, after: m.after as number, limit: m.limit }
        : undefined
    default:
      return undefined
  }
}

/** Parses a relay control message; `undefined` if malformed. Never throws. */
export function parseRelayControl(text: string): RelayControl | undefined {
  const m = parseObject(text)
  if (m === undefined) return undefined
  switch (m.t) {
    case 'welcome': {
      const limits = m.limits as Record<string, unknown> | undefined
      return typeof m.id === 'string' &&
        typeof m.session === 'string' &&
        typeof limits === 'object' &&
        limits !== null &&
        Number.isSafeInteger(limits.maxFrameBytes) &&
        Number.isSafeInteger(limits.framesPerSecond)
        ? {
            t: 'welcome',
            id: m.id,
            session: m.session,
            limits: limits as unknown as RelayLimitsInfo,
            mailbox: m.mailbox === true,
            pack: m.pack === true,
            keys: m.keys === true,
            redrain: m.redrain === true,
          }
        : undefined
    }
    case 'presence':
    case 'available':
      return typeof m.peer === 'string' && typeof m.online === 'boolean' ? { t: m.t, peer: m.peer, online: m.online } : undefined
    case 'signal':
      return typeof m.from === 'string' && 'data' in m ? { t: 'signal', from: m.from, data: m.data } : undefined
    case 'redrained':
      return isPeerId(m.from) && typeof m.more === 'boolean' ? { t: 'redrained', from: m.from, more: m.more } : undefined
    case 'pong':
      return Number.isSafeInteger(m.n) ? { t: 'pong', n: m.n as number } : undefined
    case 'undeliverable':
      return typeof m.peer === 'string' && (m.reason === 'offline' || m.reason === 'slow' || m.reason === 'unavailable')
        ? { t: 'undeliverable', peer: m.peer, reason: m.reason }
        : undefined
    case 'stored':
      return typeof m.peer === 'string' && typeof m.epoch === 'string' && Number.isSafeInteger(m.seq) && (m.seq as number) >= 0
        ? { t: 'stored', peer: m.peer, epoch: m.epoch, seq: m.seq as number }
        : undefined
    case 'failed':
      return typeof m.peer === 'string' &&
        typeof m.epoch === 'string' &&
        Number.isSafeInteger(m.seq) &&
        (m.seq as number) >= 0 &&
        FAILURE_REASONS.includes(m.reason as string) &&
        typeof m.held === 'boolean'
        ? { t: 'failed', peer: m.peer, epoch: m.epoch, seq: m.seq as number, reason: m.reason as FailureReason, held: m.held }
        : undefined
    case 'key':
      return Number.isSafeInteger(m.n) && isPeerId(m.peer) && (m.bundle === null || isWireBundle(m.bundle))
        ? { t: 'key', n: m.n as number, peer: m.peer, bundle: m.bundle }
        : undefined
    default:
      return undefined
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  if (typeof text !== 'string' || text.length > 1_000_000) return undefined
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}
