import { isPeerId, type PeerId } from '../core/ids.js'
import { resolveLimits, type Limits } from '../core/options.js'
import { isRelayUrl } from '../protocol/relay.js'
import type { Store } from '../core/store.js'
import type { Transport } from '../core/transport.js'
import type { RtcConnector } from '../transport/webrtc.js'
import type { WebSocketTransportState } from '../transport/websocket.js'

/** WebRTC options of the relay transport. */
export interface WebRtcConfig {
  /** STUN/TURN servers; none are needed on loopback or a LAN. */
  readonly iceServers?: readonly RTCIceServer[]
  /** `relay` forces TURN (and, without a TURN server, no direct channel at all). */
  readonly iceTransportPolicy?: RTCIceTransportPolicy
}

/** How the worker reaches other peers. Serialisable: it crosses the worker bridge. */
export type TransportConfig =
  /** Same-origin peers (tabs, workers) over BroadcastChannel: tests and single-origin apps. */
  | { readonly kind: 'broadcast-channel'; readonly network?: string }
  /**
   * Through an intersession relay over WebSocket; with `webrtc`, frames go peer
   * to peer over data channels when they can, and through the relay otherwise.
   * `token` as a string, or leave it out and give `connect()` a token function.
   */
  | {
      readonly kind: 'websocket'
      readonly url: string | readonly string[]
      readonly token?: string
      readonly webrtc?: boolean | WebRtcConfig
      /** Ping period and pong deadline of the relay link: a dead link is noticed 1–2 periods later. Default 5,000 ms. */
      readonly heartbeatMs?: number
    }

/** What the page tells its worker at start. */
export interface HostConfig {
  readonly peerId: string
  readonly transport: TransportConfig
  readonly limits?: Partial<Limits>
  /** End-to-end encryption; on unless `false` (peers must agree). */
  readonly encryption?: boolean
  /**
   * True when the page decides on a peer's changed identity key
   * (`PageSink.verifyPeerKey`, the app's `verifyPeerKey` given to
   * `connect()`): asked while this tab leads, within `verifyTimeoutMs`, else the key is held.
   */
  readonly verifiesPeerKeys?: boolean
  /** How long the page's `verifyPeerKey` may take to answer (the leader tab's engine waits that long). Default 10,000 ms. */
  readonly verifyTimeoutMs?: number
  /** IndexedDB database name; default `intersession:<peerId>`. */
  readonly dbName?: string
  /** Leader heartbeat period across tabs. Default 1,000 ms. */
  readonly heartbeatMs?: number
  /** A follower takes over when the leader was silent this long (plus jitter). Default 3,000 ms. */
  readonly staleAfterMs?: number
}

/** What a transport built in the worker may use of its surroundings. */
export interface TransportContext {
  /** A fresh login token from the page (for relays whose tokens expire). */
  token(): Promise<string>
  /** The page's WebRTC (workers cannot create RTCPeerConnections). */
  readonly rtc: RtcConnector
  /** Reports the connection state to every tab. */
  state(state: ConnectionState): void
}

/** Where the leader's connection stands (`online` always for transports without a connection). */
export type ConnectionState = WebSocketTransportState

/** How a host builds the engine's dependencies; replace them for custom workers. */
export interface HostFactories {
  createStore(config: HostConfig): Store
  /** The transport, or a promise of it (e.g. to load its code on demand). */
  createTransport(config: HostConfig, context: TransportContext): HostTransport | Promise<HostTransport>
}

/** A transport as the host drives it: optional hooks for reconnecting and for WebRTC. */
export interface HostTransport extends Transport {
  /** Retry connecting now. */
  wake?(): void
  /** Take the connection down and keep it down (`false`), or bring it back (`true`). */
  setEnabled?(enabled: boolean): void
  /** Outgoing WebRTC signalling from the page. */
  signal?(peer: PeerId, data: unknown): void
  /** A data channel to `peer`, transferred from the page. */
  attachChannel?(peer: PeerId, channel: RTCDataChannel | MessagePort): void
  /** The page could not connect to `peer` directly. */
  connectFailed?(peer: PeerId): void
}

/**
 * Checks a {@link HostConfig} when the worker starts, not when a tab comes to
 * lead: an engine that could never open would be retried forever.
 * @throws TypeError or RangeError naming the bad field.
 */
export function validateConfig(config: HostConfig): void {
  if (typeof config !== 'object' || config === null) throw new TypeError('config must be an object')
  if (!isPeerId(config.peerId)) throw new TypeError('peerId must be 1..128 printable characters without whitespace')
  resolveLimits(config.limits)
  if (config.dbName !== undefined && (typeof config.dbName !== 'string' || config.dbName.length === 0)) throw new TypeError('dbName must be a non-empty string')
  if (config.verifiesPeerKeys !== undefined && typeof config.verifiesPeerKeys !== 'boolean') throw new TypeError('verifiesPeerKeys must be a boolean')
  for (const key of ['heartbeatMs', 'staleAfterMs', 'verifyTimeoutMs'] as const) positiveMs(key, config[key])
  const transport = config.transport as { kind?: unknown; url?: unknown; heartbeatMs?: number } | undefined
  if (transport?.kind === 'broadcast-channel') return
  positiveMs('transport.heartbeatMs', transport?.heartbeatMs)
  if (transport?.kind !== 'websocket') throw new TypeError('transport.kind must be "broadcast-channel" or "websocket"')
  const urls = typeof transport.url === 'string' ? [transport.url] : transport.url
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every(isRelayUrl)) {
    throw new TypeError('transport.url must be a ws:// or wss:// URL (or a non-empty list of them)')
  }
}

/** Checks an optional duration: a TypeError if it is not a number, a RangeError if not a positive integer. */
export function positiveMs(name: string, value: unknown): void {
  if (value === undefined) return
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`)
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
}
