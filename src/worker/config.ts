import type { Limits } from '../core/options.js'
import type { Store } from '../core/store.js'
import type { Transport } from '../core/transport.js'

/** How the worker reaches other peers. Serialisable: it crosses the worker bridge. */
export type TransportConfig =
  /** Same-origin peers (tabs, workers) over BroadcastChannel: tests and single-origin apps. */
  { readonly kind: 'broadcast-channel'; readonly network?: string }

/** What the page tells its worker at start. */
export interface HostConfig {
  readonly peerId: string
  readonly transport: TransportConfig
  readonly limits?: Partial<Limits>
  /** IndexedDB database name; default `intersession:<peerId>`. */
  readonly dbName?: string
  /** Leader heartbeat period across tabs. Default 1,000 ms. */
  readonly heartbeatMs?: number
  /** A follower takes over when the leader was silent this long (plus jitter). Default 3,000 ms. */
  readonly staleAfterMs?: number
}

/** How a host builds the engine's dependencies; replace them for custom workers. */
export interface HostFactories {
  createStore(config: HostConfig): Store
  createTransport(config: HostConfig): Transport
}
