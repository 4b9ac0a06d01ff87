/**
 * Bare sharded pub/sub for the cluster benchmarks: `count` messages
 * published round-robin over `channels` that one subscriber holds, at most
 * `inFlight` unreceived; the ceiling the relays' cross-node path is compared
 * with, on one redis-server or a Redis Cluster.
 */

/** What the flow uses of a node-redis client or cluster client. */
export interface ShardedPubSub {
  sSubscribe(channel: string, listener: () => void, bufferMode: true): Promise<unknown>
  sPublish(channel: string, message: Buffer): Promise<unknown>
}

/** Subscribes `sub` to `channels`, publishes `count` × `body` from `pub`; msgs/s from the first publish to the last arrival. */
export async function spublishFlow(pub: ShardedPubSub, sub: ShardedPubSub, channels: readonly string[], count: number, body: Buffer, inFlight: number): Promise<number> {
  let received = 0
  let sent = 0
  let last = 0
  let wake: (() => void) | undefined
  let finish!: () => void
  const finished = new Promise<void>((resolve) => (finish = resolve))
  const arrived = (): void => {
    received++
    last = performance.now()
    if (received === count) finish()
    if (wake !== undefined && sent - received <= inFlight / 2) {
      const w = wake
      wake = undefined
      w()
    }
  }
  for (const channel of channels) await sub.sSubscribe(channel, arrived, true)
  const start = performance.now()
  while (sent < count) {
    while (sent < count && sent - received < inFlight) {
      void pub.sPublish(channels[sent % channels.length]!, body)
      sent++
    }
    if (sent < count) await new Promise<void>((resolve) => (wake = resolve))
  }
  await finished
  return Math.round((count / (last - start)) * 1000)
}
