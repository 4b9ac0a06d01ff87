/**
 * The relay wire protocol (v1), shared by the relay server (Node) and the
 * WebSocket transport (browser, worker, Node).
 *
 * - Control messages are JSON text frames, validated on receipt.
 * - Engine frames travel as binary WebSocket messages in an envelope:
 *   client -> relay `[u16 BE length][to, UTF-8][frame]`,
 *   relay -> client `[u16 BE length][from, UTF-8][frame]`.
 *   The relay never parses the frame; it replaces the address with the
 *   sender's authenticated id, and the engine refuses a frame whose own
 *   `from` differs from that id. So nobody can speak as another peer.
 */

/** Client -> relay control messages. */
export type ClientControl =
  /** Must be the first message; the relay closes with AUTH_* codes otherwise. */
  | { readonly t: 'auth'; readonly token: string }
  /** Report presence changes of these peers (replaces the previous list). */
  | { readonly t: 'watch'; readonly peers: readonly string[] }
  /** WebRTC signalling for `to`, forwarded with `from` stamped. */
  | { readonly t: 'signal'; readonly to: string; readonly data: unknown }
  /** Application-level heartbeat; answered with `pong`. */
  | { readonly t: 'ping'; readonly n: number }

/** Relay -> client control messages. */
export type RelayControl =
  | { readonly t: 'welcome'; readonly id: string; readonly session: string; readonly limits: RelayLimitsInfo }
  | { readonly t: 'presence'; readonly peer: string; readonly online: boolean }
  | { readonly t: 'signal'; readonly from: string; readonly data: unknown }
  | { readonly t: 'pong'; readonly n: number }
  /** A frame to `peer` was not forwarded (offline, or its socket is too far behind). */
  | { readonly t: 'undeliverable'; readonly peer: string; readonly reason: 'offline' | 'slow' }

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
} as const

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Wraps a frame with an address (the destination going up, the source coming down). */
export function envelope(address: string, frame: Uint8Array): Uint8Array {
  const id = encoder.encode(address)
  const out = new Uint8Array(2 + id.byteLength + frame.byteLength)
  new DataView(out.buffer).setUint16(0, id.byteLength)
  out.set(id, 2)
  out.set(frame, 2 + id.byteLength)
  return out
}

/** Splits an envelope; `undefined` if malformed. Never throws. */
export function openEnvelope(data: Uint8Array): { address: string; frame: Uint8Array } | undefined {
  if (data.byteLength < 2) return undefined
  const length = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint16(0)
  if (length === 0 || 2 + length > data.byteLength) return undefined
  try {
    return { address: decoder.decode(data.subarray(2, 2 + length)), frame: data.subarray(2 + length) }
  } catch {
    return undefined
  }
}

const MAX_WATCH = 10_000

/** Parses a client control message; `undefined` if malformed. Never throws. */
export function parseClientControl(text: string): ClientControl | undefined {
  const m = parseObject(text)
  if (m === undefined) return undefined
  switch (m.t) {
    case 'auth':
      return typeof m.token === 'string' && m.token.length > 0 && m.token.length <= 8192 ? { t: 'auth', token: m.token } : undefined
    case 'watch':
      return Array.isArray(m.peers) && m.peers.length <= MAX_WATCH && m.peers.every((p) => typeof p === 'string')
        ? { t: 'watch', peers: m.peers as string[] }
        : undefined
    case 'signal':
      return typeof m.to === 'string' && 'data' in m ? { t: 'signal', to: m.to, data: m.data } : undefined
    case 'ping':
      return Number.isSafeInteger(m.n) ? { t: 'ping', n: m.n as number } : undefined
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
        ? { t: 'welcome', id: m.id, session: m.session, limits: limits as unknown as RelayLimitsInfo }
        : undefined
    }
    case 'presence':
      return typeof m.peer === 'string' && typeof m.online === 'boolean' ? { t: 'presence', peer: m.peer, online: m.online } : undefined
    case 'signal':
      return typeof m.from === 'string' && 'data' in m ? { t: 'signal', from: m.from, data: m.data } : undefined
    case 'pong':
      return Number.isSafeInteger(m.n) ? { t: 'pong', n: m.n as number } : undefined
    case 'undeliverable':
      return typeof m.peer === 'string' && (m.reason === 'offline' || m.reason === 'slow')
        ? { t: 'undeliverable', peer: m.peer, reason: m.reason }
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
