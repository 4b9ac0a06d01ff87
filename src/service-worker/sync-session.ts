import { IlmError } from '../core/errors.js'
import type { PeerId } from '../core/ids.js'
import type { PeerStore, Store } from '../core/store.js'
import { ILM } from '../ilm.js'
import { databaseExists, IndexedDBStore } from '../storage/indexeddb.js'
import { WebSocketTransport } from '../transport/websocket.js'
import { TabBus } from '../worker/tab-bus.js'
import { Arrivals } from './arrivals.js'
import type { SyncSettings } from './options.js'
import type { SyncSession } from './sync-run.js'

/**
 * Opens the engine of `peerId` in this service worker, on the identity's
 * IndexedDB (the same keys, the same outbox and inbox as its tabs) and the
 * relay: no message handler is subscribed, so what arrives waits in the inbox
 * for the app's handlers in a tab. Meanwhile it heartbeats on the identity's
 * tab bus as a leader does, so that a tab that opens queues on the lock
 * instead of taking it by force, and `tabOpened` hears of that tab.
 * Undefined when the identity has no store here (no database is created).
 */
export async function openSyncSession(peerId: string, settings: SyncSettings, tabOpened: () => void): Promise<SyncSession | undefined> {
  const storeOptions = settings.dbName === undefined ? {} : { dbName: settings.dbName }
  // Opening the store would create an empty database for an identity that never ran here.
  if (!(await databaseExists(peerId as PeerId, storeOptions))) return undefined
  const urls = await settings.urls(peerId)
  const arrivals = new Arrivals()
  const store = new CheckedStore(new IndexedDBStore(storeOptions), settings.encryption, arrivals)
  const transport = new WebSocketTransport({ localId: peerId, urls, token: () => settings.token(peerId) })
  let engine: ILM
  try {
    engine = await ILM.open({
      store,
      transport,
      ...(settings.limits !== undefined && { limits: settings.limits }),
      ...(!settings.encryption && { encryption: false }),
    })
  } catch (error) {
    transport.close()
    if (error instanceof NoStore) return undefined
    throw error
  }
  const bus = new TabBus(
    peerId,
    { heartbeatMs: settings.heartbeatMs, staleAfterMs: 3 * settings.heartbeatMs },
    {
      leading: () => true,
      subscribed: () => false,
      networkEnabled: () => true,
      leaderSeen: () => {},
      followersChanged: (joined) => joined && tabOpened(),
      serve: () => {}, // a tab's calls wait for its own engine, which takes over at once
      result: () => {},
      handle: () => Promise.resolve(false),
      events: () => {},
      switched: () => {},
    },
  )
  bus.beat()
  return {
    online: () => online(transport),
    flushed: () => engine.flushed(),
    pending: () => engine.pending(),
    arrivals: () => arrivals.list(),
    close: async () => {
      await engine.close()
      bus.close()
    },
  }
}

/** Thrown by {@link CheckedStore} when the identity has no store here: nothing to sync. */
class NoStore extends Error {}

/**
 * The identity's store, opened only if its tabs made it, and with the same
 * encryption setting: a store with an epoch but no keys was made with
 * encryption off, one with keys with encryption on. What it stores in the
 * inbox is recorded in `arrivals`.
 */
class CheckedStore implements Store {
  readonly #inner: Store
  readonly #encryption: boolean
  readonly #arrivals: Arrivals

  constructor(inner: Store, encryption: boolean, arrivals: Arrivals) {
    this.#inner = inner
    this.#encryption = encryption
    this.#arrivals = arrivals
  }

  async open(localId: PeerId): Promise<PeerStore> {
    const handle = await this.#inner.open(localId)
    try {
      const [snapshot, keys] = await Promise.all([handle.load(), handle.readKeys()])
      if (snapshot.meta === undefined) throw new NoStore(`${localId} has no store here`)
      if (keys.size > 0 !== this.#encryption) {
        const theirs = keys.size > 0 ? 'on' : 'off'
        throw new IlmError(
          'E2E_MISMATCH',
          `the tabs of ${localId} run with end-to-end encryption ${theirs}: give handleSync() the same encryption setting as connect()`,
        )
      }
      return this.#arrivals.watch(handle, localId)
    } catch (error) {
      await handle.close()
      throw error
    }
  }
}

/** Resolves once the relay accepted the login; rejects if it refused the identity for good. */
function online(transport: WebSocketTransport): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const { status, reason } = transport.state
      if (status === 'online') resolve()
      else if (status === 'failed' || status === 'closed') reject(new IlmError('TRANSPORT_FAILED', `the relay connection ended: ${reason ?? status}`))
      else return false
      return true
    }
    if (check()) return
    const off = transport.onState(() => check() && off())
  })
}
