/// <reference types="node" />
import { randomUUID } from 'node:crypto'
import { createClient } from 'redis'
import type { PeerId } from '../../core/ids.js'
import type { ClusterHandlers, RelayCluster } from './cluster.js'

/** Options of {@link createRedisCluster}. */
export interface RedisClusterOptions {
  /** `redis://host:port[/db]`. */
  readonly url: string
  /** Prefix of every channel and key, so several clusters can share one Redis. Default `ilm:`. */
  readonly prefix?: string
  /** This node's id. Default: a random UUID. */
  readonly nodeId?: string
  /** Told about connection trouble (the client reconnects by itself). */
  readonly onError?: (error: Error) => void
}

/** First byte of a message on a peer's channel. */
const TAG = { frame: 0, text: 1, replaced: 2, mail: 3 } as const
const ONLINE = Buffer.from('1')
const OFFLINE = Buffer.from('0')

/**
 * A {@link RelayCluster} over Redis sharded pub/sub (Redis 7). Each peer has
 * a channel `<prefix>p:<peer>` that exactly the node holding it subscribes
 * to, so routing is one `SPUBLISH` whose receiver count says whether the peer
 * is online anywhere; presence changes go to `<prefix>o:<peer>`. Sharded
 * channels live in the hash slot of their name, so on a Redis Cluster the
 * traffic of a peer stays on one shard instead of being broadcast to all. A node that
 * dies loses its subscriptions with its connection, so its peers stop being
 * online at once (their watchers hear of it only when they log in again).
 * Commands fail fast while Redis is unreachable (no offline queue), and the
 * subscriptions are restored when it comes back.
 */
export function createRedisCluster(options: RedisClusterOptions): RelayCluster {
  if (typeof options !== 'object' || options === null || typeof options.url !== 'string' || options.url.length === 0) {
    throw new TypeError('options.url must be a redis:// URL')
  }
  const prefix = options.prefix ?? 'ilm:'
  const nodeId = options.nodeId ?? randomUUID()
  const self = Buffer.from(nodeId)
  const report = options.onError ?? (() => {})
  const pub = createClient({
    url: options.url,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1_000) },
  })
  const sub = pub.duplicate()
  pub.on('error', report)
  sub.on('error', report)
  let handlers: ClusterHandlers | undefined
  // Claims and releases of one peer apply in call order: a release still in flight must not undo a newer claim.
  const chains = new Map<string, Promise<void>>()
  const serial = (peer: string, step: () => Promise<void>): Promise<void> => {
    const next = (chains.get(peer) ?? Promise.resolve()).catch(() => {}).then(step)
    chains.set(peer, next)
    const forget = (): void => void (chains.get(peer) === next && chains.delete(peer))
    next.then(forget, forget)
    return next
  }
  const peerChannel = (peer: string): string => `${prefix}p:${peer}`
  const presenceChannel = (peer: string): string => `${prefix}o:${peer}`

  function onPeerMessage(message: Buffer, channel: Buffer): void {
    const peer = channel.toString('utf8', prefix.length + 2) as PeerId
    const body = message.subarray(1)
    switch (message[0]) {
      case TAG.frame:
        return handlers?.frame(peer, body)
      case TAG.text:
        return handlers?.text(peer, body.toString('utf8'))
      case TAG.replaced:
        if (!body.equals(self)) handlers?.replaced(peer)
        return
      case TAG.mail:
        return handlers?.mail(peer)
    }
  }

  function onPresence(message: Buffer, channel: Buffer): void {
    handlers?.presence(channel.toString('utf8', prefix.length + 2) as PeerId, message.equals(ONLINE))
  }

  const tagged = (tag: number, body: Uint8Array): Buffer => Buffer.concat([Buffer.of(tag), body])

  return {
    nodeId,
    async start(given) {
      handlers = given
      await Promise.all([pub.connect(), sub.connect()])
    },
    claim(peer) {
      return serial(peer, async () => {
        await pub.sPublish(peerChannel(peer), tagged(TAG.replaced, self))
        await sub.sSubscribe(peerChannel(peer), onPeerMessage, true)
        await pub.sPublish(presenceChannel(peer), ONLINE)
      })
    },
    release(peer) {
      return serial(peer, async () => {
        await sub.sUnsubscribe(peerChannel(peer), onPeerMessage, true)
        const counts = await pub.pubSubShardNumSub(peerChannel(peer))
        if ((counts[peerChannel(peer)] ?? 0) === 0) await pub.sPublish(presenceChannel(peer), OFFLINE)
      })
    },
    async sendFrame(to, envelope) {
      return (await pub.sPublish(peerChannel(to), tagged(TAG.frame, envelope))) > 0
    },
    async sendText(to, text) {
      return (await pub.sPublish(peerChannel(to), tagged(TAG.text, Buffer.from(text)))) > 0
    },
    async mail(to) {
      await pub.sPublish(peerChannel(to), Buffer.of(TAG.mail))
    },
    async isOnline(peer) {
      const counts = await pub.pubSubShardNumSub(peerChannel(peer))
      return (counts[peerChannel(peer)] ?? 0) > 0
    },
    async watch(peer) {
      await sub.sSubscribe(presenceChannel(peer), onPresence, true)
    },
    async unwatch(peer) {
      await sub.sUnsubscribe(presenceChannel(peer), onPresence, true)
    },
    async close() {
      handlers = undefined
      await Promise.allSettled([sub.isOpen && sub.close(), pub.isOpen && pub.close()])
    },
  }
}
