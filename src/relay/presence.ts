import type { PeerId } from '../core/ids.js'
import type { RelayControl } from '../protocol/relay.js'
import type { RelayCluster } from './cluster/cluster.js'
import type { Connection } from './connection.js'
import { errorMessage, type RelayLog } from './relay-log.js'

/**
 * Who watches whom, and telling them: a connection's `watch` list gets the
 * state of each new peer at once and every change after. Fan-out is
 * O(watchers) through a reverse index; with a cluster, the first local
 * watcher of a peer subscribes to its changes on other nodes.
 */
export class Presence {
  /** peer -> connections watching it. */
  readonly #watchers = new Map<PeerId, Set<Connection>>()
  /** Last presence announced of each watched peer: a cluster reports a local login too, once is enough. */
  readonly #announced = new Map<PeerId, boolean>()
  readonly #isLocal: (peer: PeerId) => boolean
  readonly #cluster: RelayCluster | undefined
  readonly #log: RelayLog
  #stopped = false

  /** @param isLocal whether `peer` is logged in to this relay */
  constructor(isLocal: (peer: PeerId) => boolean, cluster: RelayCluster | undefined, log: RelayLog) {
    this.#isLocal = isLocal
    this.#cluster = cluster
    this.#log = log
  }

  /** Replaces `conn`'s watch list with `peers`; peers new on it get their state now. */
  watch(conn: Connection, peers: readonly PeerId[]): void {
    const next = new Set(peers)
    for (const peer of conn.watching) if (!next.has(peer)) this.#unwatch(conn, peer)
    const added: PeerId[] = []
    for (const peer of next) {
      if (conn.watching.has(peer)) continue
      let set = this.#watchers.get(peer)
      if (set === undefined) {
        this.#watchers.set(peer, (set = new Set()))
        this.#cluster?.watch(peer).catch((error: unknown) => this.#clusterFailed('watch', peer, error))
      }
      set.add(conn)
      added.push(peer)
    }
    conn.watching = next
    // Peers already on the list got their state before and get every change since.
    for (const peer of added) void this.#tell(conn, peer)
  }

  /** `conn` closed: it watches nobody any more. */
  forget(conn: Connection): void {
    for (const peer of conn.watching) this.#unwatch(conn, peer)
    conn.watching = new Set()
  }

  /** `peer` came online or went offline (here, or on another node): its watchers here hear of it once. */
  announce(peer: PeerId, online: boolean): void {
    if (this.#stopped) return
    const set = this.#watchers.get(peer)
    if (set === undefined || this.#announced.get(peer) === online) return
    this.#announced.set(peer, online)
    const text = JSON.stringify({ t: 'presence', peer, online } satisfies RelayControl)
    for (const watcher of set) if (watcher.state === 'open') watcher.sendText(text, false)
  }

  /** The relay is shutting down: connections closing now are not announced. */
  stop(): void {
    this.#stopped = true
  }

  async #tell(conn: Connection, peer: PeerId): Promise<void> {
    const cluster = this.#cluster
    const online = this.#isLocal(peer) || (cluster !== undefined && (await cluster.isOnline(peer).catch(() => false)))
    if (conn.state === 'open' && conn.watching.has(peer)) conn.sendControl({ t: 'presence', peer, online })
  }

  #unwatch(conn: Connection, peer: PeerId): void {
    const set = this.#watchers.get(peer)
    if (set === undefined) return
    set.delete(conn)
    if (set.size > 0) return
    this.#watchers.delete(peer)
    this.#announced.delete(peer)
    this.#cluster?.unwatch(peer).catch((error: unknown) => this.#clusterFailed('unwatch', peer, error))
  }

  #clusterFailed(operation: string, peer: PeerId, error: unknown): void {
    this.#log('error', 'cluster_failed', { operation, id: peer, message: errorMessage(error) })
  }
}
