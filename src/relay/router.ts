import { peekKind } from '../core/codec.js'
import type { PeerId } from '../core/ids.js'
import { envelope, type RelayControl } from '../protocol/relay.js'
import type { RelayCluster } from './cluster/cluster.js'
import type { Connection } from './connection.js'
import type { ConnectionTable } from './connection-table.js'
import type { RelayLimits } from './options.js'
import { errorMessage, type RelayLog } from './relay-log.js'
import type { HeldFrame, HeldKind, StoreAndForward } from './store-and-forward.js'
import type { RelayCounters } from './stats.js'
import type { UnreachedPeers } from './unreached-peers.js'

/** What the router works with. */
export interface RouterContext {
  readonly limits: RelayLimits
  readonly counters: RelayCounters
  readonly log: RelayLog
  readonly connections: ConnectionTable
  readonly cluster: RelayCluster | undefined
  readonly storeAndForward: StoreAndForward | undefined
  /** With a cluster: who was refused for which peer while the backend was unreachable. */
  readonly unreached: UnreachedPeers | undefined
}

/**
 * Gets envelopes and signals to their destination, stamped with the
 * sender's authenticated id. A destination is `local` (logged in here:
 * forwarded, or held behind its mailbox drain), possibly `elsewhere` (the
 * cluster finds the node holding it, if any) or `offline` (`msg` and `ack`
 * frames go to the mailbox, if there is one; anything else is answered
 * `undeliverable`). The relay never parses a frame except the `msg` and
 * `ack` frames the mailbox reads, each decoded once.
 */
export class Router {
  readonly #context: RouterContext

  constructor(context: RouterContext) {
    this.#context = context
  }

  /** Routes a frame for `to` from the logged-in `conn` (its envelope opened and checked by the gateway). */
  route(conn: Connection, to: PeerId, frame: Uint8Array): void {
    const { storeAndForward, cluster } = this.#context
    let kind: HeldKind | undefined
    let decoded: HeldFrame | undefined
    if (storeAndForward !== undefined) {
      const peeked = peekKind(frame)
      kind = peeked === 'msg' || peeked === 'ack' ? peeked : undefined
      if (kind === 'ack') {
        // The receiver's ack also settles what its mailbox holds of that stream.
        const ack = storeAndForward.decode(conn, to, 'ack', frame)
        if (ack === undefined) return
        storeAndForward.settle(conn, ack)
        decoded = ack
      }
    }
    const dest = this.#context.connections.get(to)
    if (dest !== undefined && dest.ws.readyState === dest.ws.OPEN) {
      if (dest.deliver(envelope(conn.id!, frame))) storeAndForward?.forwarded(conn, to)
      else this.#undeliverable(conn, to, 'slow')
    } else if (cluster !== undefined) void this.#forwardElsewhere(cluster, conn, to, frame, kind, decoded)
    else this.#offline(conn, to, frame, kind, decoded)
  }

  /** Forwards a WebRTC signal from `conn` to `to`, stamped with its sender. */
  signal(conn: Connection, to: PeerId, data: unknown): void {
    const { connections, cluster, limits } = this.#context
    const dest = connections.get(to)
    const signal: RelayControl = { t: 'signal', from: conn.id!, data }
    if (dest === undefined || dest.ws.readyState !== dest.ws.OPEN) {
      if (cluster === undefined) {
        this.#undeliverable(conn, to, 'offline')
        return
      }
      return void cluster.sendText(to, JSON.stringify(signal)).then(
        (sent) => {
          this.#context.unreached?.routed(conn, to)
          if (!sent) this.#undeliverable(conn, to, 'offline')
        },
        (error: unknown) => this.#unavailable(conn, to, 'signal', error),
      )
    }
    if (dest.bufferedAmount > limits.maxPendingBytes) {
      this.#undeliverable(conn, to, 'slow')
      return
    }
    dest.sendControl(signal, true)
  }

  /** An envelope from another node for `to`, logged in here. */
  frameFromCluster(to: PeerId, out: Uint8Array): void {
    const dest = this.#context.connections.get(to)
    if (dest === undefined || dest.state !== 'open') return
    // Too far behind: dropped here, the sender's engine retransmits.
    if (!dest.deliver(out)) this.#context.counters.refusals.slow++
  }

  /** A text control message (a signal) from another node for `to`, logged in here. */
  textFromCluster(to: PeerId, text: string): void {
    const dest = this.#context.connections.get(to)
    if (dest === undefined || dest.state !== 'open') return
    if (dest.bufferedAmount > this.#context.limits.maxPendingBytes) {
      this.#context.counters.refusals.slow++
      return
    }
    dest.sendText(text, true)
  }

  /**
   * Publishes the frame to the node holding `to`. Frames of one sender go out
   * and resolve in order (one connection to the backend), so those that find
   * nobody reach the mailbox in order too.
   */
  async #forwardElsewhere(
    nodes: RelayCluster,
    conn: Connection,
    to: PeerId,
    frame: Uint8Array,
    kind: HeldKind | undefined,
    decoded: HeldFrame | undefined,
  ): Promise<void> {
    let sent: boolean
    try {
      sent = await nodes.sendFrame(to, envelope(conn.id!, frame))
    } catch (error) {
      this.#unavailable(conn, to, 'route', error)
      return
    }
    this.#context.unreached?.routed(conn, to)
    if (sent) {
      this.#context.counters.framesOut++
      this.#context.storeAndForward?.forwarded(conn, to)
    } else if (conn.state === 'open') this.#offline(conn, to, frame, kind, decoded)
  }

  /** `to` is connected nowhere: its mailbox holds messages and acks; anything else is refused. */
  #offline(conn: Connection, to: PeerId, frame: Uint8Array, kind: HeldKind | undefined, decoded: HeldFrame | undefined): void {
    const storeAndForward = this.#context.storeAndForward
    if (storeAndForward !== undefined && kind !== undefined) {
      storeAndForward.hold(conn, to, frame, kind, decoded)
      return
    }
    this.#undeliverable(conn, to, 'offline')
  }

  /**
   * The backend is unreachable: the frame or signal is refused, and the sender told that nobody knows where `to` is
   * now (not that it is offline: a sender that took it for offline would stop sending to it, and hear of it again only
   * at its next login). An engine retransmits, and hears `available` once the backend can tell where `to` is.
   */
  #unavailable(conn: Connection, to: PeerId, operation: string, error: unknown): void {
    this.#context.log('error', 'cluster_failed', { operation, to, message: errorMessage(error) })
    this.#context.counters.refusals.unavailable++
    conn.sendControl({ t: 'undeliverable', peer: to, reason: 'unavailable' })
    this.#context.unreached?.refused(conn, to)
  }

  #undeliverable(conn: Connection, peer: string, reason: 'offline' | 'slow'): void {
    this.#context.counters.refusals[reason]++
    conn.sendControl({ t: 'undeliverable', peer, reason })
  }
}
