import { IndexedDBStore } from '../storage/indexeddb.js'
import type { HostConfig, HostFactories, HostTransport, TransportContext } from './config.js'

/**
 * IndexedDB for the store; the transport the config names. Each transport is
 * loaded on first use (a dynamic import, so bundlers split it off): a worker
 * carries only the transport its app configures.
 */
export const defaultFactories: HostFactories = {
  createStore: (config: HostConfig) => new IndexedDBStore(config.dbName === undefined ? {} : { dbName: () => config.dbName as string }),
  createTransport: async (config: HostConfig, context: TransportContext): Promise<HostTransport> => {
    const transport = config.transport
    if (transport.kind === 'broadcast-channel') {
      const { BroadcastChannelTransport } = await import('../transport/broadcast-channel.js')
      context.state({ status: 'online' })
      return new BroadcastChannelTransport({ localId: config.peerId, network: transport.network ?? 'default' })
    }
    const { WebSocketTransport } = await import('../transport/websocket.js')
    const relay = new WebSocketTransport({
      localId: config.peerId,
      ...(typeof transport.url === 'string' ? { url: transport.url } : { urls: transport.url }),
      token: transport.token ?? (() => context.token()),
      ...(transport.heartbeatMs !== undefined && { heartbeatMs: transport.heartbeatMs }),
    })
    relay.onState((state) => context.state(state))
    if (transport.webrtc === undefined || transport.webrtc === false) return relay
    const { WebRtcTransport } = await import('../transport/webrtc.js')
    return new WebRtcTransport({ relay, connector: context.rtc })
  },
}
