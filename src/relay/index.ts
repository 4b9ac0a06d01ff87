/// <reference types="node" />
export {
  createRelay,
  DEFAULT_MAILBOX_TOTALS_INTERVAL_MS,
  DEFAULT_RELAY_LIMITS,
  type RefusalReason,
  type RelayHandle,
  type RelayLimits,
  type RelayLogEntry,
  type RelayOptions,
  type RelayStats,
  type VerifyResult,
  type VerifyToken,
} from './relay.js'
export { createToken, type CreateTokenOptions } from './token.js'
export type {
  Mailbox,
  MailboxEntry,
  MailboxEntryKind,
  MailboxItem,
  MailboxLimits,
  MailboxRecord,
  MailboxTotals,
  PutResult,
  Tombstone,
} from './mailbox/mailbox.js'
export type { KeyDirectory } from './key-directory.js'
export { mailboxContract } from './mailbox/contract.js'
export { MemoryMailbox } from './mailbox/memory.js'
export { LevelMailbox, type LevelMailboxOptions } from './mailbox/level.js'
export { RedisMailbox, type RedisMailboxOptions } from './mailbox/redis.js'
export { DEFAULT_REDIS_DURABILITY, DEFAULT_REPLICA_TIMEOUT_MS, type RedisDurability } from './mailbox/redis-durability.js'
export type { ClusterHandlers, RelayCluster } from './cluster/cluster.js'
export { createRedisCluster, type RedisClusterOptions } from './cluster/redis.js'
export type { RedisTarget } from './redis-target.js'
export {
  CLOSE_CODES,
  envelope,
  openEnvelope,
  parseClientControl,
  parseRelayControl,
  type ClientControl,
  type FailureReason,
  type RelayControl,
  type RelayLimitsInfo,
} from '../protocol/relay.js'
