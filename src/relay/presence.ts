import type { Clock, TimerHandle } from '../core/clock.js'
import type { PeerId } from '../core/ids.js'
import type { RelayControl } from '../protocol/relay.js'
import type { RelayCluster } from './cluster/cluster.js'
import type { Connection } from './connection.js'
import { errorMessage, type RelayLog } from './relay-log.js'
import type { UnreachedPeers } from './unreached-peers.js'

/** First wait before a failed cluster subscription is tried again (ms); it doubles up to {@link MAX_RESUBSCRIBE_MS}. */
export const RESUBSCRIBE_MS = 500
const MAX_RESUBSCRIBE_MS = 30_000

/** What {@link Presence} works with. */
export interface PresenceContext {
  /** Whether `peer` is logged in to this relay. */
  readonly isLocal: (peer: PeerId) => boolean
  readonly cluster: RelayCluster | undefined
  readonly clock: Clock
  readonly log: RelayLog
  /** With a cluster: tells a watcher a peer's state once the cluster can, when it could not at once. */
  readonly unreached: UnreachedPeers | undefined
}

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
  /** Watched peers whose cluster subscription failed (the backend unreachable), until it is tried again. */
  readonly #resubscribing = new Map<PeerId, TimerHandle>()
  readonly #context: PresenceContext
  #stopped = false

  constructor(context: PresenceContext) {
    this.#context = context
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
        this.#subscribe(peer, RESUBSCRIBE_MS)
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
    for (const timer of this.#resubscribing.values()) this.#context.clock.clearTimeout(timer)
    this.#resubscribing.clear()
  }

  /**
   * Subscribes to `peer`'s changes on other nodes. A subscription the backend refused is tried again, waits doubling,
   * while `peer` is watched here; once it holds, its watchers are told `peer`'s state afresh, since a change before it
   * reached nobody here.
   */
  #subscribe(peer: PeerId, waitMs: number): void {
    const { cluster, clock } = this.#context
    cluster?.watch(peer).then(
      () => {
        // A first attempt is the watch's own, whose lookup tells each new watcher.
        if (waitMs === RESUBSCRIBE_MS) return
        for (const conn of this.#watchers.get(peer) ?? []) void this.#tell(conn, peer)
      },
      (error: unknown) => {
        this.#clusterFailed('watch', peer, error)
        if (this.#stopped || !this.#watchers.has(peer) || this.#resubscribing.has(peer)) return
        const timer = clock.setTimeout(() => {
          this.#resubscribing.delete(peer)
          if (!this.#stopped && this.#watchers.has(peer)) this.#subscribe(peer, Math.min(2 * waitMs, MAX_RESUBSCRIBE_MS))
        }, waitMs)
        this.#resubscribing.set(peer, timer)
      },
    )
  }

  async #tell(conn: Connection, peer: PeerId): Promise<void> {
    const { cluster, isLocal, unreached } = this.#context
    let online = isLocal(peer)
    if (!online && cluster !== undefined) {
      try {
        online = await cluster.isOnline(peer)
      } catch {
        // Not known now, so not "offline": a watcher told so would stop sending to the peer until its next change.
        if (conn.state === 'open') unreached?.refused(conn, peer)
        return
      }
    }
    if (conn.state === 'open' && conn.watching.has(peer)) conn.sendControl({ t: 'presence', peer, online })
  }

  #unwatch(conn: Connection, peer: PeerId): void {
    const set = this.#watchers.get(peer)
    if (set === undefined) return
    set.delete(conn)
    if (set.size > 0) return
    this.#watchers.delete(peer)
    this.#announced.delete(peer)
    const timer = this.#resubscribing.get(peer)
    if (timer !== undefined) {
      this.#context.clock.clearTimeout(timer)
      this.#resubscribing.delete(peer)
      return
    }
    this.#context.cluster?.unwatch(peer).catch((error: unknown) => this.#clusterFailed('unwatch', peer, error))
  }

  #clusterFailed(operation: string, peer: PeerId, error: unknown): void {
    this.#context.log('error', 'cluster_failed', { operation, id: peer, message: errorMessage(error) })
  }
}
