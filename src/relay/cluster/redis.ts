/// <reference types="node" />
import { randomUUID } from 'node:crypto'
import { IlmError } from '../../core/errors.js'
import type { PeerId } from '../../core/ids.js'
import { redisClient, redisTarget, type RedisTarget } from '../redis-target.js'
import { within } from '../within.js'
import { DEFAULT_CLUSTER_TIMEOUT_MS, type ClusterHandlers, type RelayCluster } from './cluster.js'
import { DEFAULT_LEASE_MS, MIN_LEASE_MS, NodeLease, OFFLINE_UNLESS_HELD } from './node-lease.js'

/**
 * Options of {@link createRedisCluster}: `url` (one Redis node,
 * `redis://host:port[/db]`) or `rootNodes` (a Redis Cluster), and these.
 */
export type RedisClusterOptions = RedisTarget & {
  /** Prefix of every channel and key, so several clusters can share one Redis. Default `ilm:`; no `{` or `}`. */
  readonly prefix?: string
  /** This node's id. Default: a random UUID. */
  readonly nodeId?: string
  /**
   * How long this node's logins outlive it (ms; default 15 000, at least 300): a node that has not
   * renewed its lease for this long is presumed dead, and the other nodes announce its peers offline.
   */
  readonly leaseMs?: number
  /**
   * How long a login's claim, a logout's release or a watch's subscription may wait on Redis (ms; default 5 000, at
   * least 1). A claim not done by then rejects `TRANSPORT_FAILED` (the relay refuses that login `unavailable`; the client
   * logs in again), the peer's later claims and releases stop waiting for it, and whatever it had done is undone once
   * its commands answer; a release given up likewise holds nothing after it. A watch not done by then rejects
   * `TRANSPORT_FAILED` too (the relay tries it again later), and so does any other command: a frame forwarded to another
   * node (its sender's engine sends it again), a lease's renewal (tried again at the next one).
   */
  readonly timeoutMs?: number
  /** Told about connection trouble (the client reconnects by itself). */
  readonly onError?: (error: Error) => void
}

type Listener = (message: Buffer, channel: Buffer) => void

/** Sharded pub/sub on one Redis node or across a Redis Cluster (each channel on its slot's shard). */
interface ShardedPubSub {
  connect(): Promise<void>
  publish(channel: string, message: Buffer): Promise<number>
  subscribe(channel: string, listener: Listener): Promise<void>
  unsubscribe(channel: string, listener: Listener): Promise<void>
  /** Subscribers of `channel` (on its shard). */
  subscribers(channel: string): Promise<number>
  /** Runs a command on the shard of `firstKey`. */
  command(firstKey: string, args: string[]): Promise<unknown>
  close(): Promise<void>
}

function shardedPubSub(target: RedisTarget, report: (error: Error) => void): ShardedPubSub {
  const made = redisClient(target, {})
  if (made.kind === 'cluster') {
    // The cluster client keeps one subscriber connection per shard, moves a channel's subscription
    // when its slot moves (MOVED, failover) and routes every command by its channel's slot.
    const cluster = made.client
    cluster.on('error', report)
    cluster.on('node-error', report)
    return {
      connect: async () => void (await cluster.connect()),
      publish: (channel, message) => cluster.sPublish(channel, message),
      subscribe: (channel, listener) => cluster.sSubscribe(channel, listener, true),
      unsubscribe: (channel, listener) => cluster.sUnsubscribe(channel, listener, true),
      // A plain PUBSUB SHARDNUMSUB is keyless to the client's routing (it lands on any node); as a one-key script it runs on the channel's master.
      subscribers: async (channel) => Number(await cluster.sendCommand(channel, false, ['EVAL', SHARD_SUBSCRIBERS, '1', channel])),
      command: (firstKey, args) => cluster.sendCommand(firstKey, false, args),
      close: async () => void (await Promise.allSettled([cluster.close()])),
    }
  }
  const pub = made.client
  const sub = pub.duplicate()
  pub.on('error', report)
  sub.on('error', report)
  return {
    connect: async () => void (await Promise.all([pub.connect(), sub.connect()])),
    publish: (channel, message) => pub.sPublish(channel, message),
    subscribe: (channel, listener) => sub.sSubscribe(channel, listener, true),
    unsubscribe: (channel, listener) => sub.sUnsubscribe(channel, listener, true),
    subscribers: async (channel) => shardCount(await pub.sendCommand(['PUBSUB', 'SHARDNUMSUB', channel])),
    command: (_firstKey, args) => pub.sendCommand(args),
    close: async () => void (await Promise.allSettled([sub.isOpen && sub.close(), pub.isOpen && pub.close()])),
  }
}

/** Subscribers of the sharded channel KEYS[1], on the node serving its slot. */
const SHARD_SUBSCRIBERS = "return redis.call('PUBSUB', 'SHARDNUMSUB', KEYS[1])[2]"

/** The count in a `PUBSUB SHARDNUMSUB <one channel>` reply (`[channel, count]`). */
function shardCount(reply: unknown): number {
  return Array.isArray(reply) ? Number(reply[1] ?? 0) : 0
}

/** `work`, or a rejection `TRANSPORT_FAILED` once `ms` passed (see the relay's `within`). */
function bounded<T>(work: Promise<T>, ms: number, what: string, giveUp?: () => void): Promise<T> {
  return within(work, ms, () => new IlmError('TRANSPORT_FAILED', `cluster: ${what} took over ${ms} ms`), giveUp)
}

/**
 * `redis` with each command that waits on Redis's answer given up after `ms` (`TRANSPORT_FAILED`): a frame forwarded to
 * another node, a lease's command. Subscriptions are bounded where they are made (claims and watches).
 */
function boundedCommands(redis: ShardedPubSub, ms: number): ShardedPubSub {
  return {
    ...redis,
    publish: (channel, message) => bounded(redis.publish(channel, message), ms, `publishing to ${channel}`),
    subscribers: (channel) => bounded(redis.subscribers(channel), ms, `counting the subscribers of ${channel}`),
    command: (firstKey, args) => bounded(redis.command(firstKey, args), ms, `${args[0] ?? 'a command'} on ${firstKey}`),
  }
}

/** First byte of a message on a peer's channel. */
const TAG = { frame: 0, text: 1, replaced: 2, mail: 3 } as const
const ONLINE = Buffer.from('1')

/**
 * A {@link RelayCluster} over Redis sharded pub/sub (Redis 7). Each peer has
 * a channel `<prefix>p:{<peer>}` that exactly the node holding it subscribes
 * to, so routing is one `SPUBLISH` whose receiver count says whether the peer
 * is online anywhere; presence changes go to `<prefix>o:{<peer>}`. Sharded
 * channels live in the hash slot of their name, here of the `{<peer>}` tag
 * that the peer's mailbox keys share: on a Redis Cluster (`rootNodes`) all of
 * a peer's traffic and storage stays on one shard instead of being broadcast
 * to all, and the cluster client moves its subscriptions when that slot's
 * master fails over. A node that
 * dies loses its subscriptions with its connection, so its peers stop being
 * online at once; its watchers elsewhere hear of it when its lease lapses
 * (`leaseMs`, see {@link NodeLease}): each node renews a lease in
 * `<prefix>nodes` and keeps the peers it holds in `<prefix>n:{<node>}`, and
 * the other nodes announce the peers of a node whose lease lapsed offline.
 * Commands fail fast while Redis is unreachable (no offline queue), are given
 * up after `timeoutMs` while it does not answer, and the subscriptions are
 * restored when it comes back.
 */
export function createRedisCluster(options: RedisClusterOptions): RelayCluster {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  const target = redisTarget(options)
  const prefix = options.prefix ?? 'ilm:'
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) throw new TypeError('options.prefix must be a string without { or }')
  const nodeId = options.nodeId ?? randomUUID()
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS
  if (!Number.isSafeInteger(leaseMs) || leaseMs < MIN_LEASE_MS) throw new RangeError(`options.leaseMs must be an integer >= ${MIN_LEASE_MS}`)
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLUSTER_TIMEOUT_MS
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new RangeError('options.timeoutMs must be an integer >= 1')
  const self = Buffer.from(nodeId)
  const report = options.onError ?? (() => {})
  const redis = boundedCommands(shardedPubSub(target, report), timeoutMs)
  let handlers: ClusterHandlers | undefined
  // Claims and releases of one peer apply in call order: a release still in flight must not undo a newer claim. Each
  // is given up after timeoutMs, so one that Redis never answers holds none after it; given up, it stops at its next
  // `going()`. `steps` is told the step's own promise, which settles when its commands have answered.
  const chains = new Map<string, Promise<void>>()
  const serial = (peer: string, what: string, step: (going: () => void) => Promise<void>, steps?: (run: Promise<void>) => void): Promise<void> => {
    const next = (chains.get(peer) ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        let givenUp = false
        const run = step(() => {
          if (givenUp) throw new IlmError('TRANSPORT_FAILED', `cluster: ${what} was given up`)
        })
        steps?.(run)
        return bounded(run, timeoutMs, what, () => (givenUp = true))
      })
    chains.set(peer, next)
    const forget = (): void => {
      if (chains.get(peer) === next) chains.delete(peer)
    }
    next.then(forget, forget)
    return next
  }
  // Hash-tagged like the peer's mailbox keys: on a Redis Cluster a peer's routing, presence and mailbox share one slot.
  const peerChannel = (peer: string): string => `${prefix}p:{${peer}}`
  const presenceChannel = (peer: string): string => `${prefix}o:{${peer}}`
  const peerOf = (channel: Buffer): PeerId => channel.toString('utf8', prefix.length + 3, channel.length - 1) as PeerId
  // Announced offline in one script on the peer's shard, so a login elsewhere is never overtaken by a stale "offline".
  const offlineUnlessHeld = async (peer: string): Promise<void> => {
    await redis.command(peerChannel(peer), ['EVAL', OFFLINE_UNLESS_HELD, '2', peerChannel(peer), presenceChannel(peer)])
  }
  /** Peers held here, as claimed and released (in each peer's call order). */
  const held = new Set<string>()
  const releaseSteps = async (peer: string, going: () => void): Promise<void> => {
    held.delete(peer)
    await redis.unsubscribe(peerChannel(peer), onPeerMessage)
    going()
    await lease.remove(peer)
    going()
    await offlineUnlessHeld(peer)
  }
  const lease = new NodeLease({
    nodeId,
    leaseMs,
    nodesKey: `${prefix}nodes`,
    peersKey: (node) => `${prefix}n:{${node}}`,
    offlineUnlessHeld,
    run: (firstKey, args) => redis.command(firstKey, args),
    held: () => held,
    report,
  })

  function onPeerMessage(message: Buffer, channel: Buffer): void {
    const peer = peerOf(channel)
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
    handlers?.presence(peerOf(channel), message.equals(ONLINE))
  }

  const tagged = (tag: number, body: Uint8Array): Buffer => Buffer.concat([Buffer.of(tag), body])

  return {
    nodeId,
    async start(given) {
      handlers = given
      await redis.connect()
      await lease.start()
    },
    claim(peer) {
      let steps: Promise<void> | undefined
      const claimed = serial(
        peer,
        `claiming ${peer}`,
        async (going) => {
          await redis.publish(peerChannel(peer), tagged(TAG.replaced, self))
          going()
          await redis.subscribe(peerChannel(peer), onPeerMessage)
          going()
          await lease.add(peer)
          going()
          await redis.publish(presenceChannel(peer), ONLINE)
          going()
          held.add(peer)
        },
        (run) => {
          steps = run
        },
      )
      // A failed claim leaves nothing behind (a subscription here would take the peer's frames while it is connected nowhere, instead of its mailbox):
      // once its commands have answered, it is released in turn, unless a later claim holds the peer by then.
      claimed.catch(() => {
        void steps
          ?.catch(() => {})
          .then(() => serial(peer, `releasing ${peer}`, async (going) => (held.has(peer) ? undefined : releaseSteps(peer, going))))
          .catch((error: unknown) => report(error instanceof Error ? error : new Error(String(error))))
      })
      return claimed
    },
    release(peer) {
      return serial(peer, `releasing ${peer}`, (going) => releaseSteps(peer, going))
    },
    async sendFrame(to, envelope) {
      return (await redis.publish(peerChannel(to), tagged(TAG.frame, envelope))) > 0
    },
    async sendText(to, text) {
      return (await redis.publish(peerChannel(to), tagged(TAG.text, Buffer.from(text)))) > 0
    },
    async mail(to) {
      await redis.publish(peerChannel(to), Buffer.of(TAG.mail))
    },
    async isOnline(peer) {
      return (await redis.subscribers(peerChannel(peer))) > 0
    },
    watch(peer) {
      // Given up, it may still take effect later: the same listener subscribed twice is one subscription.
      return bounded(redis.subscribe(presenceChannel(peer), onPresence), timeoutMs, `watching ${peer}`)
    },
    async unwatch(peer) {
      await redis.unsubscribe(presenceChannel(peer), onPresence)
    },
    async close() {
      handlers = undefined
      await Promise.allSettled(chains.values())
      await lease.stop().catch(report)
      await redis.close()
    },
  }
}
