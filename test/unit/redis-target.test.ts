import { describe, expect, it } from 'vitest'
import { createRedisCluster } from '../../src/relay/cluster/redis.js'
import { RedisMailbox } from '../../src/relay/mailbox/redis.js'
import { parseRootNodes, redisTarget } from '../../src/relay/redis-target.js'

describe('where the relay finds Redis: one node (url) or a Redis Cluster (rootNodes)', () => {
  it('parses --redis-cluster lists and refuses malformed entries', () => {
    expect(parseRootNodes('127.0.0.1:7000, redis-a:7001,redis://10.0.0.5:7002')).toEqual(['127.0.0.1:7000', 'redis-a:7001', 'redis://10.0.0.5:7002'])
    for (const bad of ['', '127.0.0.1', '127.0.0.1:7000,', 'host:port', 'a:1,,b:2', 'http://x:1/']) expect(() => parseRootNodes(bad), bad).toThrow(TypeError)
  })

  it('takes exactly one of url and rootNodes, and gives root nodes a redis:// scheme', () => {
    expect(redisTarget({ url: 'redis://x:1' })).toEqual({ url: 'redis://x:1' })
    expect(redisTarget({ rootNodes: ['x:1', 'redis://y:2'] })).toEqual({ rootNodes: ['redis://x:1', 'redis://y:2'] })
    expect(() => redisTarget({})).toThrow(TypeError)
    expect(() => redisTarget({ url: 'redis://x:1', rootNodes: ['x:1'] })).toThrow(TypeError)
    expect(() => redisTarget({ rootNodes: [] })).toThrow(TypeError)
    expect(() => redisTarget({ rootNodes: ['x:1', 7] })).toThrow(TypeError)
    expect(() => redisTarget({ rootNodes: 'x:1' })).toThrow(TypeError)
  })

  it('createRedisCluster and RedisMailbox.open refuse bad targets and braces in the prefix at once', async () => {
    expect(() => createRedisCluster({} as never)).toThrow(TypeError)
    expect(() => createRedisCluster({ rootNodes: [] })).toThrow(TypeError)
    expect(() => createRedisCluster({ url: 'redis://x:1', prefix: 'a{' })).toThrow(TypeError)
    await expect(RedisMailbox.open({ rootNodes: [] })).rejects.toThrow(TypeError)
    await expect(RedisMailbox.open({ url: 'redis://x:1', rootNodes: ['x:1'] } as never)).rejects.toThrow(TypeError)
  })
})
