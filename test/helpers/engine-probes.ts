/**
 * Probes for feeding an engine hostile network input and proving it changed
 * nothing: a transport the test drives by hand (it injects frames "from" any
 * authenticated id and records what the engine sends), and a store wrapper
 * that records every commit the engine makes.
 */
import type { PeerId } from '../../src/core/ids.js'
import type { PeerStore, Store, StoreOp } from '../../src/core/store.js'
import type { Transport, TransportEvents } from '../../src/core/transport.js'

/** A transport whose network is the test: `inject` delivers a frame as if the relay authenticated `from`. */
export class ProbeTransport implements Transport {
  readonly sent: { to: PeerId; data: Uint8Array }[] = []
  #events: TransportEvents | undefined

  constructor(readonly localId: string) {}

  open(events: TransportEvents): void {
    this.#events = events
  }

  send(to: PeerId, data: Uint8Array): void {
    this.sent.push({ to, data })
  }

  watch(): void {}

  close(): void {
    this.#events = undefined
  }

  /** Delivers `data` to the engine as a frame authenticated as `from`. */
  inject(from: string, data: Uint8Array): void {
    this.#events?.frame(from as PeerId, data)
  }

  /** Reports `peer` reachable or not. */
  presence(peer: string, online: boolean): void {
    this.#events?.peer(peer as PeerId, online)
  }
}

/** A {@link Store} that records the ops of every commit made through the handles it opens. */
export class RecordingStore implements Store {
  readonly commits: (readonly StoreOp[])[] = []

  constructor(private readonly inner: Store) {}

  async open(localId: PeerId): Promise<PeerStore> {
    const handle = await this.inner.open(localId)
    const commits = this.commits
    return new Proxy(handle, {
      get(target, key, receiver) {
        if (key === 'commit') {
          return (ops: readonly StoreOp[]) => {
            commits.push(ops)
            return target.commit(ops)
          }
        }
        const value: unknown = Reflect.get(target, key, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  }
}
