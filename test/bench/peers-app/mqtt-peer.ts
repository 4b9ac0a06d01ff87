import mqtt from 'mqtt'
import type { Peer, PeerOptions } from './peer.js'

const UP_WITHIN_MS = 20_000
const decoder = new TextDecoder()

/**
 * MQTT.js over WebSocket, QoS 1, persistent session (`clean: false`, the
 * fixed client id `id`), so the broker queues for a receiver that is away.
 * The receiver subscribes to the topic `peers/<receiver id>` at QoS 1; `send`
 * publishes there and resolves on the broker's PUBACK. Reconnects are MQTT.js's
 * defaults (every 1 s).
 */
export async function mqttPeer({ url, id, other, role, onMessage }: PeerOptions): Promise<Peer> {
  const client = await mqtt.connectAsync(url, { clientId: id, clean: false, protocolVersion: 4, connectTimeout: UP_WITHIN_MS })
  const topic = `peers/${role === 'receiver' ? id : other}`
  if (role === 'receiver') {
    client.on('message', (_topic, payload) => onMessage(decoder.decode(payload)))
    await client.subscribeAsync(topic, { qos: 1 })
  }
  return {
    send: (text) => client.publishAsync(topic, text, { qos: 1 }),
    close: () => client.endAsync(true),
  }
}
