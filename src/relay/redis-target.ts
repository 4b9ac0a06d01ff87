/// <reference types="node" />
import { createClient, createCluster, type RedisClientOptions } from 'redis'

/**
 * Where the relay's Redis is: one node (`url`, `redis://host:port[/db]`), or
 * a Redis Cluster reached through any of its `rootNodes` (`host:port` or
 * `redis://host:port`; the client learns the rest of the topology from them).
 */
export type RedisTarget = { readonly url: string; readonly rootNodes?: undefined } | { readonly rootNodes: readonly string[]; readonly url?: undefined }

/** How the relay's Redis clients reconnect: quickly at first, then every second. */
const reconnectStrategy = (retries: number): number => Math.min(50 * 2 ** retries, 1_000)

/** Options every relay connection shares: fail fast while a node is unreachable (no offline queue). */
export const CONNECTION_OPTIONS = { disableOfflineQueue: true, socket: { reconnectStrategy } } as const satisfies Partial<RedisClientOptions>

/** Checks `options.url` / `options.rootNodes` (exactly one) and returns them as a {@link RedisTarget}; throws TypeError. */
export function redisTarget(options: { readonly url?: unknown; readonly rootNodes?: unknown }): RedisTarget {
  const { url, rootNodes } = options
  if (url !== undefined && rootNodes !== undefined) throw new TypeError('give either options.url or options.rootNodes, not both')
  if (rootNodes !== undefined) {
    if (!Array.isArray(rootNodes) || rootNodes.length === 0 || !rootNodes.every((node) => typeof node === 'string' && node.length > 0)) {
      throw new TypeError('options.rootNodes must be a non-empty array of host:port strings')
    }
    return { rootNodes: rootNodes.map(nodeUrl) }
  }
  if (typeof url !== 'string' || url.length === 0) throw new TypeError('options.url must be a redis:// URL (or give options.rootNodes)')
  return { url }
}

/** `host:port,host:port` (the `--redis-cluster` flag) as root nodes; throws TypeError on an empty or malformed entry. */
export function parseRootNodes(list: string): string[] {
  const nodes = list.split(',').map((node) => node.trim())
  for (const node of nodes) if (!/^(redis:\/\/)?[^\s:/,]+:\d{1,5}$/.test(node)) throw new TypeError(`"${node}" is not host:port`)
  return nodes
}

function nodeUrl(node: string): string {
  return node.includes('://') ? node : `redis://${node}`
}

/** A single-node client or a cluster client for `target`, with `scripts` (not connected yet). */
export function redisClient<S extends NonNullable<RedisClientOptions['scripts']>>(target: RedisTarget, scripts: S) {
  if (target.url !== undefined) return { kind: 'node', client: createClient({ url: target.url, scripts, ...CONNECTION_OPTIONS }) } as const
  return {
    kind: 'cluster',
    client: createCluster({ rootNodes: target.rootNodes.map((url) => ({ url })), defaults: CONNECTION_OPTIONS, scripts }),
  } as const
}
