import { IndexedDBStore } from '../storage/indexeddb.js'
import { BroadcastChannelTransport } from '../transport/broadcast-channel.js'
import type { HostConfig, HostFactories } from './config.js'

/** IndexedDB for the store; the transport named by the config. */
export const defaultFactories: HostFactories = {
  createStore: (config: HostConfig) =>
    new IndexedDBStore(config.dbName === undefined ? {} : { dbName: () => config.dbName as string }),
  createTransport: (config: HostConfig) => {
    switch (config.transport.kind) {
      case 'broadcast-channel':
        return new BroadcastChannelTransport({ localId: config.peerId, network: config.transport.network ?? 'default' })
    }
  },
}
