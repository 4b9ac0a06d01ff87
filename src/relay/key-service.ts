import type { PeerId } from '../core/ids.js'
import { decodeBase64Url, encodeBase64Url } from '../protocol/base64url.js'
import type { Connection } from './connection.js'
import type { KeyDirectory } from './key-directory.js'
import { errorMessage, type RelayLog } from './relay-log.js'
import type { RelayCounters } from './stats.js'

/** What the key service works with. */
export interface KeyServiceContext {
  readonly directory: KeyDirectory
  readonly counters: RelayCounters
  readonly log: RelayLog
}

/**
 * The relay's side of the key directory: `keys` stores the bundle under the
 * connection's authenticated id (the message names no peer, so nobody can
 * publish for another), and `key?` is answered with `key`. The gateway has
 * already validated and rate-limited both. A directory that fails is logged
 * and counted; a fetch it fails is not answered (the client times out, as
 * it would with a relay that lost the request), never answered `null`,
 * which would claim the peer has no keys.
 */
export class KeyService {
  readonly #context: KeyServiceContext
  #stopped = false

  constructor(context: KeyServiceContext) {
    this.#context = context
  }

  /** `conn` (logged in) published `bundle` (valid base64url). */
  publish(conn: Connection, bundle: string): void {
    const bytes = decodeBase64Url(bundle)
    const peer = conn.id
    if (bytes === undefined || peer === undefined) return
    const { directory, counters } = this.#context
    counters.keysPublished++
    directory.putKeys(peer, bytes).catch((error: unknown) => this.#failed('put', peer, error))
  }

  /**
   * `peer`, logging in, gave `bundle` (valid base64url) in `auth`: resolves once it is in the directory (true), or
   * false when the directory failed (logged and counted; the client then sends `keys`).
   */
  async publishAtLogin(peer: PeerId, bundle: string): Promise<boolean> {
    const bytes = decodeBase64Url(bundle)
    if (bytes === undefined) return false
    const { directory, counters } = this.#context
    counters.keysPublished++
    try {
      await directory.putKeys(peer, bytes)
      return true
    } catch (error) {
      this.#failed('put', peer, error)
      return false
    }
  }

  /** `conn` asked for `peer`'s bundle with `n`; answered once the directory has read it, if `conn` is still open. */
  fetch(conn: Connection, n: number, peer: PeerId): void {
    const { directory, counters } = this.#context
    directory.getKeys(peer).then(
      (bytes) => {
        if (bytes === undefined) counters.keysUnknown++
        else counters.keysFound++
        if (conn.state === 'open') conn.sendControl({ t: 'key', n, peer, bundle: bytes === undefined ? null : encodeBase64Url(bytes) })
      },
      (error: unknown) => this.#failed('get', peer, error),
    )
  }

  /** The relay is shutting down: directory failures from now on are expected. */
  stop(): void {
    this.#stopped = true
  }

  #failed(operation: string, peer: string, error: unknown): void {
    if (this.#stopped) return
    this.#context.counters.keysFailures++
    this.#context.log('error', 'keys_failed', { operation, peer, message: errorMessage(error) })
  }
}
