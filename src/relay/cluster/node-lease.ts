/// <reference types="node" />
/** Default lease of a node's logins: a node silent this long is presumed dead and its peers are announced offline. */
export const DEFAULT_LEASE_MS = 15_000
/** Shortest lease accepted (a node renews it three times per lease). */
export const MIN_LEASE_MS = 300

/** Runs one Redis command on the shard of `firstKey` (any node when there is one). */
export type RunCommand = (firstKey: string, args: string[]) => Promise<unknown>

/**
 * Renews this node's lease and lists up to 16 nodes whose lease lapsed. The
 * time is the Redis server's (one clock for every node, no skew between
 * relays). ZADD answers 1 when this node was missing: it had been reaped.
 */
const RENEW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
return {added, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, 16)}`

/** Takes a lapsed node off the list if its lease is still lapsed: exactly one node wins the reaping. */
const TAKE = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= now then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`

/**
 * Announces `peer` offline unless some node subscribes to its channel: one
 * script, so a login on another node (subscribe, then announce online)
 * comes wholly before or after it, never between the check and the publish.
 */
export const OFFLINE_UNLESS_HELD = `local n = redis.call('PUBSUB', 'SHARDNUMSUB', KEYS[1])
if tonumber(n[2]) == 0 then redis.call('SPUBLISH', KEYS[2], '0') return 1 end
return 0`

/** Keys and callbacks a {@link NodeLease} works with. */
export interface NodeLeaseOptions {
  readonly nodeId: string
  readonly leaseMs: number
  /** The sorted set of live nodes (member: node id, score: lease end in Redis time, ms). */
  readonly nodesKey: string
  /** The set of peers a node holds (hash-tagged by node). */
  readonly peersKey: (node: string) => string
  /** Announces `peer` offline unless some node holds it (runs {@link OFFLINE_UNLESS_HELD} on its shard). */
  readonly offlineUnlessHeld: (peer: string) => Promise<void>
  readonly run: RunCommand
  /** The peers held here now (to register them again after this node was reaped). */
  readonly held: () => Iterable<string>
  readonly report: (error: Error) => void
}

/** SPOP batch while reaping a dead node's peers. */
const REAP_BATCH = 256

/**
 * A node's lease on its logins. Every node renews its lease every third of
 * `leaseMs` and keeps the set of peers it holds in Redis; every node also
 * reaps nodes whose lease lapsed: it takes the dead node off the list (one
 * reaper wins), pops its peers and announces each offline unless another
 * node holds it (it logged in again there) — a node that was only slow
 * still holds its subscriptions, so none of its peers is announced, and it
 * registers its peers again at its next renewal.
 */
export class NodeLease {
  readonly #options: NodeLeaseOptions
  #timer: ReturnType<typeof setInterval> | undefined
  #ticking: Promise<void> | undefined

  constructor(options: NodeLeaseOptions) {
    this.#options = options
  }

  /** Takes the lease (resolves once registered) and starts renewing and reaping. */
  async start(): Promise<void> {
    await this.#tick()
    this.#timer = setInterval(
      () => {
        if (this.#ticking !== undefined) return
        this.#ticking = this.#tick()
          .catch((error: unknown) => this.#options.report(error instanceof Error ? error : new Error(String(error))))
          .finally(() => (this.#ticking = undefined))
      },
      Math.max(1, Math.floor(this.#options.leaseMs / 3)),
    )
    this.#timer.unref()
  }

  /** `peer` logged in here. */
  async add(peer: string): Promise<void> {
    const { run, peersKey, nodeId } = this.#options
    await run(peersKey(nodeId), ['SADD', peersKey(nodeId), peer])
  }

  /** `peer`'s connection here closed. */
  async remove(peer: string): Promise<void> {
    const { run, peersKey, nodeId } = this.#options
    await run(peersKey(nodeId), ['SREM', peersKey(nodeId), peer])
  }

  /** Stops renewing and gives the lease back (this node's peers were released before). */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#ticking
    const { run, peersKey, nodeId, nodesKey } = this.#options
    await Promise.all([run(nodesKey, ['ZREM', nodesKey, nodeId]), run(peersKey(nodeId), ['DEL', peersKey(nodeId)])])
  }

  async #tick(): Promise<void> {
    const { run, nodesKey, nodeId, leaseMs, peersKey, held } = this.#options
    const reply = (await run(nodesKey, ['EVAL', RENEW, '1', nodesKey, nodeId, String(leaseMs)])) as [unknown, unknown[]]
    if (Number(reply[0]) === 1) {
      // First renewal, or another node reaped this one while it was slow: the peers it still holds are registered again.
      const peers = [...held()]
      if (peers.length > 0) await run(peersKey(nodeId), ['SADD', peersKey(nodeId), ...peers])
    }
    for (const node of reply[1].map(String)) if (node !== nodeId) await this.#reap(node)
  }

  async #reap(node: string): Promise<void> {
    const { run, nodesKey, peersKey, offlineUnlessHeld } = this.#options
    if (Number(await run(nodesKey, ['EVAL', TAKE, '1', nodesKey, node])) !== 1) return
    const key = peersKey(node)
    for (;;) {
      const peers = (await run(key, ['SPOP', key, String(REAP_BATCH)])) as unknown[] | null
      if (peers === null || peers.length === 0) return
      await Promise.all(peers.map((peer) => offlineUnlessHeld(String(peer))))
    }
  }
}
