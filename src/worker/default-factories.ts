import { IndexedDBStore } from '../storage/indexeddb.js'
import { BroadcastChannelTransport } from '../transport/broadcast-channel.js'
import { WebRtcTransport } from '../transport/webrtc.js'
import { WebSocketTransport } from '../transport/websocket.js'
import type { HostConfig, HostFactories, TransportContext } from './config.js'

/** IndexedDB for the store; the transport the config names. */
export const defaultFactories: HostFactories = {
  createStore: (config: HostConfig) =>
    new IndexedDBStore(config.dbName === undefined ? {} : { dbName: () => config.dbName as string }),
  createTransport: (config: HostConfig, context: TransportContext) => {
    const transport = config.transport
    switch (transport.kind) {
      case 'broadcast-channel':
        context.state({ status: 'online' })
        return new BroadcastChannelTransport({ localId: config.peerId, network: transport.network ?? 'default' })
      case 'websocket': {
        const relay = new WebSocketTransport({
          localId: config.peerId,
          ...(typeof transport.url === 'string' ? { url: transport.url } : { urls: transport.url }),
          token: transport.token ?? (() => context.token()),
          ...(transport.heartbeatMs !== undefined && { heartbeatMs: transport.heartbeatMs }),
        })
        relay.onState((state) => context.state(state))
        if (transport.webrtc === undefined || transport.webrtc === false) return relay
        return new WebRtcTransport({ relay, connector: context.rtc })
      }
    }
  },
}
