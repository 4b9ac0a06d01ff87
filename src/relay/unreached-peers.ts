import type { Clock, TimerHandle } from '../core/clock.js'
import type { PeerId } from '../core/ids.js'
import type { RelayCluster } from './cluster/cluster.js'
import type { Connection } from './connection.js'

/** How often the cluster is asked again while some connection waits to hear of a peer (ms). */
export const UNREACHED_PROBE_MS = 250
/** Peers remembered per connection; a connection refused for more waits for its engine's own retransmission. */
const MAX_PER_CONNECTION = 64
/** Peers asked about per probe, so a long outage with many refusals costs a bounded load once the backend is back. */
const MAX_PER_PROBE = 256

/**
 * Tells a connection where a peer is as soon as the cluster can tell again.
 *
 * A frame the node could not route because its cluster backend (Redis) was
 * unreachable is answered `undeliverable: unavailable`, and the sender's
 * engine resends on its own timer, which may have backed off to many seconds
 * by the time the backend is back. A watcher whose new peer's presence the
 * node could not look up is in the same place: told nothing, where "offline"
 * would be false. So the node remembers, per connection, the peers it refused
 * frames for or could not tell of, and asks the cluster every
 * {@link UNREACHED_PROBE_MS} where they are. Once it answers, each such
 * connection gets `available` with the peer's presence: online starts a
 * session with it at once, offline sends to the mailbox.
 */
export class UnreachedPeers {
  readonly #pending = new Map<Connection, Set<PeerId>>()
  readonly #cluster: RelayCluster
  readonly #clock: Clock
  #timer: TimerHandle | undefined
  #probing = false
  #stopped = false

  constructor(cluster: RelayCluster, clock: Clock) {
    this.#cluster = cluster
    this.#clock = clock
  }

  /** `conn` was refused a frame or signal for `peer`, or not told its presence, because the backend is unreachable. */
  refused(conn: Connection, peer: PeerId): void {
    if (this.#stopped) return
    let peers = this.#pending.get(conn)
    if (peers === undefined) this.#pending.set(conn, (peers = new Set()))
    if (peers.size < MAX_PER_CONNECTION) peers.add(peer)
    this.#schedule()
  }

  /** A frame from `conn` reached `peer`'s node (or its mailbox): nothing is left to tell. */
  routed(conn: Connection, peer: PeerId): void {
    const peers = this.#pending.get(conn)
    if (peers === undefined || !peers.delete(peer)) return
    if (peers.size === 0) this.#pending.delete(conn)
  }

  /** The relay is shutting down. */
  stop(): void {
    this.#stopped = true
    this.#pending.clear()
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#probing || this.#stopped) return
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined
      void this.#probe()
    }, UNREACHED_PROBE_MS)
  }

  async #probe(): Promise<void> {
    this.#probing = true
    const asked = new Set<PeerId>()
    for (const [conn, peers] of this.#pending) {
      if (conn.state !== 'open') this.#pending.delete(conn)
      else for (const peer of peers) if (asked.size < MAX_PER_PROBE) asked.add(peer)
    }
    await Promise.all([...asked].map(async (peer) => this.#tell(peer, await this.#cluster.isOnline(peer).catch(() => undefined))))
    this.#probing = false
    if (this.#pending.size > 0) this.#schedule()
  }

  /** `online` undefined: the backend still does not answer, so everyone waiting keeps waiting. */
  #tell(peer: PeerId, online: boolean | undefined): void {
    if (online === undefined || this.#stopped) return
    for (const [conn, peers] of this.#pending) {
      if (!peers.delete(peer)) continue
      if (peers.size === 0) this.#pending.delete(conn)
      if (conn.state === 'open') conn.sendControl({ t: 'available', peer, online })
    }
  }
}
