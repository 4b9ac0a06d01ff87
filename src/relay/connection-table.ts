import type { PeerId } from '../core/ids.js'
import type { Connection } from './connection.js'

/** The relay's open sockets, and the logged-in ones by peer id (at most one per peer). */
export class ConnectionTable {
  /** Every open socket, logged in or not, in the order they were accepted. */
  readonly all = new Set<Connection>()
  readonly #byId = new Map<PeerId, Connection>()

  /** The connection logged in as `peer`, if any. */
  get(peer: PeerId): Connection | undefined {
    return this.#byId.get(peer)
  }

  has(peer: PeerId): boolean {
    return this.#byId.has(peer)
  }

  /** `conn` logged in as `peer`: it is that peer's connection now. */
  bind(peer: PeerId, conn: Connection): void {
    this.#byId.set(peer, conn)
  }

  /** Unbinds `conn` if it is its peer's connection; true if it was. */
  unbind(conn: Connection): boolean {
    if (conn.id === undefined || this.#byId.get(conn.id) !== conn) return false
    this.#byId.delete(conn.id)
    return true
  }

  /** How many peers are logged in. */
  get authenticated(): number {
    return this.#byId.size
  }

  /** The ids of the peers logged in. */
  peers(): PeerId[] {
    return [...this.#byId.keys()]
  }

  /** Bytes queued on all sockets. */
  pendingBytes(): number {
    let pending = 0
    for (const conn of this.all) pending += conn.bufferedAmount
    return pending
  }
}
