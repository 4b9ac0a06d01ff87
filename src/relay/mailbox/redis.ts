/// <reference types="node" />
import { type CommandParser, defineScript, RESP_TYPES } from 'redis'
import { IlmError } from '../../core/errors.js'
import { DEFAULT_CLUSTER_TIMEOUT_MS } from '../cluster/cluster.js'
import { redisClient, redisTarget, type RedisTarget } from '../redis-target.js'
import { within } from '../within.js'
import type { Mailbox, MailboxEntry, MailboxEntryKind, MailboxItem, MailboxLimits, MailboxRecord, PutResult, Tombstone } from './mailbox.js'
import {
  aofProblem,
  aofUncheckable,
  DEFAULT_REDIS_DURABILITY,
  DEFAULT_REPLICA_TIMEOUT_MS,
  REDIS_DURABILITIES,
  ReplicaAcks,
  type RedisDurability,
} from './redis-durability.js'

/**
 * Options of {@link RedisMailbox.open}: `url` (one Redis node,
 * `redis://host:port[/db]`) or `rootNodes` (a Redis Cluster), and these.
 */
export type RedisMailboxOptions = RedisTarget & {
  /** Prefix of every key, so several clusters can share one Redis. Default `ilm:`; no `{` or `}`. */
  readonly prefix?: string
  /** Told about connection trouble (the client reconnects by itself). */
  readonly onError?: (error: Error) => void
  /**
   * What a resolved `put` means, i.e. what the relay's `stored` promises
   * ({@link RedisDurability}). Default `'fsync'`: `open` rejects unless Redis
   * runs with `appendonly yes` and `appendfsync always`.
   */
  readonly durability?: RedisDurability
  /** With durability `'replica'`: how long a put waits for a replica's acknowledgement (ms, >= 1). Default 1000. */
  readonly replicaTimeoutMs?: number
  /**
   * How long each command waits on Redis's answer (ms, >= 1; default 5 000; a replica's acknowledgement may take
   * `replicaTimeoutMs` twice more): a stalled Redis (a host gone without closing its connections, a stopped process)
   * holds written commands until TCP gives up. Given up, the call rejects `STORE_FAILED`. A put given up may still be
   * stored: its sender, never told `stored`, sends it again, and that put finds the duplicate.
   */
  readonly timeoutMs?: number
}

// ---- Lua ---------------------------------------------------------------------
// Every script gets the five keys of one destination, all in the hash slot of
// `{<to>}`: KEYS[1] stream, [2] seq index, [3] expirable, [4] sizes, [5] tombstones.
// Variadic calls go in chunks (`each`): Lua's unpack has a stack limit.

const LUA_COMMON = `
local S, Q, X, Z, O = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function pad(s) return string.rep('0', 16 - #s) .. s end
local function group(from, epoch) return #from .. ':' .. from .. #epoch .. ':' .. epoch end
local function each(list, fn)
  for i = 1, #list, 1000 do fn(unpack(list, i, math.min(i + 999, #list))) end
end
local function row(id) return redis.call('XRANGE', S, id, id)[1] end
local function firstExpirable() return redis.call('ZRANGE', X, 0, 0, 'WITHSCORES') end
local function addBytes(n) redis.call('HINCRBY', Z, '_', string.format('%.0f', n)) end
-- Removes entries that are in the stream and no longer in Q.
local function forget(ids)
  if #ids == 0 then return end
  local bytes = 0
  each(ids, function(...)
    for _, size in ipairs(redis.call('HMGET', Z, ...)) do if size then bytes = bytes + tonumber(size) end end
    redis.call('HDEL', Z, ...)
    redis.call('ZREM', X, ...)
    redis.call('XDEL', S, ...)
  end)
  if bytes > 0 then addBytes(-bytes) end
  if redis.call('EXISTS', O) == 1 then
    local fields = {}
    for i, id in ipairs(ids) do fields[2 * i - 1] = id; fields[2 * i] = id .. 'r' end
    each(fields, function(...) redis.call('HDEL', O, ...) end)
  end
  if redis.call('XLEN', S) == 0 then redis.call('DEL', S, Q, X, Z, O) end
end
`

/**
 * ARGV: kind from epoch seq id size storedAt reason frame maxMessages maxBytes expiresAt touch
 * (touch '1': a duplicate still makes a replicated write)
 * -> {'dup', row, skip, reason, score} | {'full_*'} | {'ok', id, score}, where
 * `score` (or nil) is the entry's storedAt when it is the oldest expirable one.
 */
const LUA_PUT = `${LUA_COMMON}
local kind, from, epoch, seq, size = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6]
local member
if kind == 'msg' or kind == 'skip' then
  member = group(from, epoch) .. pad(seq)
  local hit = redis.call('ZRANGE', Q, '[' .. member, '(' .. member .. '\\255', 'BYLEX', 'LIMIT', 0, 1)[1]
  if hit then
    -- A write that changes nothing but is replicated: a WAIT after it covers the entry, whoever stored it.
    if ARGV[13] == '1' then redis.call('HINCRBY', Z, '_', 0) end
    local id = string.sub(hit, #member + 1)
    local first = firstExpirable()
    return {'dup', row(id), redis.call('HGET', O, id), redis.call('HGET', O, id .. 'r'), first[1] == id and first[2]}
  end
end
local entries, maxMessages = redis.call('XLEN', S), tonumber(ARGV[10])
if kind == 'msg' then
  if entries >= maxMessages then return {'full_messages'} end
  if tonumber(redis.call('HGET', Z, '_') or '0') + tonumber(size) > tonumber(ARGV[11]) then return {'full_bytes'} end
elseif entries >= 2 * maxMessages then
  return {'full_messages'}
end
local id = redis.call('XADD', S, '*', 'k', kind, 'f', from, 'e', epoch, 's', seq, 'i', ARGV[5], 'z', size, 't', ARGV[7], 'r', ARGV[8], 'x', ARGV[12], 'b', ARGV[9])
if member then redis.call('ZADD', Q, 0, member .. id) end
if kind == 'msg' then
  redis.call('HSET', Z, id, size)
  redis.call('HINCRBY', Z, '_', size)
end
if kind == 'msg' or kind == 'ack' then
  redis.call('ZADD', X, ARGV[7], id)
  local first = firstExpirable()
  if first[1] == id then return {'ok', id, first[2]} end
end
return {'ok', id}
`

/** ARGV: from epoch upTo+1 -> entries removed. */
const LUA_ACK = `${LUA_COMMON}
local prefix = group(ARGV[1], ARGV[2])
local low, high = '[' .. prefix, '(' .. prefix .. pad(ARGV[3])
local ids = {}
for i, member in ipairs(redis.call('ZRANGE', Q, low, high, 'BYLEX')) do ids[i] = string.sub(member, #prefix + 17) end
if #ids > 0 then redis.call('ZREMRANGEBYLEX', Q, low, high) end
forget(ids)
return #ids
`

/** ARGV: keys -> entries removed. */
const LUA_REMOVE = `${LUA_COMMON}
local ids, seen = {}, {}
for _, id in ipairs(ARGV) do
  local r = not seen[id] and row(id)
  seen[id] = true
  if r then
    local f = {}
    for i = 1, #r[2], 2 do f[r[2][i]] = r[2][i + 1] end
    if f.k == 'msg' or f.k == 'skip' then redis.call('ZREM', Q, group(f.f, f.e) .. pad(f.s) .. id) end
    ids[#ids + 1] = id
  end
end
forget(ids)
return #ids
`

/** ARGV: before limit -> rows of up to `limit` expirable entries stored before `before`, oldest first. */
const LUA_DUE = `${LUA_COMMON}
local rows = {}
for _, id in ipairs(redis.call('ZRANGE', X, '-inf', '(' .. ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])) do
  rows[#rows + 1] = row(id)
end
return rows
`

/**
 * ARGV: reason, then pairs (key, skip frame; '' for an ack). Each entry still
 * expirable becomes a skip (msg) or goes (ack); one taken by another node is
 * left alone. -> {keys of msgs made skips, first expirable score or nil}.
 */
const LUA_BURY = `${LUA_COMMON}
local reason, buried, gone = ARGV[1], {}, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZSCORE', X, id) then
    local size = redis.call('HGET', Z, id)
    if size then
      redis.call('HSET', O, id, ARGV[i + 1], id .. 'r', reason)
      redis.call('HDEL', Z, id)
      addBytes(-tonumber(size))
      redis.call('ZREM', X, id)
      buried[#buried + 1] = id
    else
      gone[#gone + 1] = id
    end
  end
end
forget(gone)
return {buried, firstExpirable()[2]}
`

/** -> {entries, msg bytes}. */
const LUA_SIZE = `${LUA_COMMON}
return {redis.call('XLEN', S), tonumber(redis.call('HGET', Z, '_') or '0')}
`

/** -> {key, score} of the destination's oldest expirable entry, or {}. */
const LUA_FIRST = `${LUA_COMMON}
return firstExpirable()
`

function script(lua: string, readOnly: boolean) {
  return defineScript({
    SCRIPT: lua,
    NUMBER_OF_KEYS: 5,
    IS_READ_ONLY: readOnly,
    parseCommand(parser: CommandParser, keys: readonly string[], args: readonly (string | Buffer)[]) {
      for (const key of keys) parser.pushKey(key)
      parser.push(...args)
    },
    transformReply: (reply: unknown): unknown => reply,
  })
}

const SCRIPTS = {
  mbPut: script(LUA_PUT, false),
  mbAck: script(LUA_ACK, false),
  mbRemove: script(LUA_REMOVE, false),
  mbDue: script(LUA_DUE, true),
  mbBury: script(LUA_BURY, false),
  mbSize: script(LUA_SIZE, true),
  mbFirst: script(LUA_FIRST, true),
}

function connect(target: RedisTarget) {
  const made = redisClient(target, SCRIPTS)
  return made.kind === 'node'
    ? { kind: made.kind, client: made.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) }
    : { kind: made.kind, client: made.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) }
}

/** The connection to one Redis node (of a cluster, a master): `WAIT` and `CONFIG GET` go there. */
interface NodeClient {
  sendCommand(args: string[]): Promise<unknown>
  scriptLoad(script: string): Promise<unknown>
  on(event: 'ready', listener: () => void): unknown
}

/** Checks of a node's AOF settings a write waits for in a row (a reconnection during one starts another). */
const MAX_CHECK_WAITS = 3

/** What the mailbox tracks per node connection: its group commit of `WAIT`s and its AOF check. */
interface NodeState {
  readonly acks: ReplicaAcks | undefined
  /** The AOF check under way, bounded by the command timeout (its answer still sets `aofState` when it comes later). */
  aof: Promise<string | undefined> | undefined
  aofState: 'checking' | 'ok' | { readonly problem: string }
}

type Connection = ReturnType<typeof connect>
type Client = Connection['client']

// ---- the mailbox -------------------------------------------------------------

const KINDS: readonly MailboxEntryKind[] = ['msg', 'skip', 'ack', 'notice']
const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/
const MAX_ID_PART = 2n ** 64n - 1n
const CHAR_X = 'x'.charCodeAt(0)
/** Expirable entries handled per script call of `expire`. */
const EXPIRE_PAGE = 512
/** Pages of one `expire` call, so a stream of back-dated puts cannot hold it forever. */
const EXPIRE_MAX_PAGES = 1_000
/** `COUNT` of each `SCAN` of `totals`: keys looked at per round trip. */
const SCAN_PAGE = 1_000

/**
 * A {@link Mailbox} in Redis (7+), shared by any number of relay nodes: the
 * process holds no per-destination state, and every check-and-write is one
 * Lua script (EVALSHA), so nodes racing on one destination stay consistent.
 *
 * Keys of destination `<to>` (`<p>` = prefix), all hash-tagged `{<to>}` so they
 * share a slot on Redis Cluster:
 * - `<p>m:{<to>}` Stream, one entry per mailbox entry, in order; the entry id is
 *   the mailbox key. Fields `k` kind, `f` from, `e` epoch, `s` seq, `i` id,
 *   `z` size, `t` storedAt, `r` reason (`''` none, `'+'reason`), `x` expiresAt
 *   (`''` none), `b` frame.
 * - `<p>q:{<to>}` sorted set, all scores 0, members
 *   `<len>:<from><len>:<epoch><seq, 16 digits><entry id>` of `msg` and `skip`
 *   entries: a lexical range finds a duplicate (from, epoch, seq) and the seqs
 *   of one (from, epoch) up to `upTo` in O(log n + k).
 * - `<p>x:{<to>}` sorted set of the expirable entries (`msg`, `ack`) by storedAt.
 * - `<p>z:{<to>}` hash: `<id>` -> frame bytes of each `msg` that counts against
 *   `maxBytes`, and `_` -> their total (the byte limit, checked in O(1)).
 * - `<p>o:{<to>}` hash, the tombstones: a stream entry cannot be rewritten, so
 *   an expired `msg` keeps its place and its stream entry, and `o` holds
 *   `<id>` -> its skip frame and `<id>r` -> the reason. `read` (and a duplicate
 *   `put`) merge them: kind `skip`, size and frame of the skip. The expired
 *   message's own bytes stay in the stream until the entry is acked or
 *   removed (Redis memory, bounded by the count limit); they no longer count
 *   against `maxBytes`.
 *
 * Entry count is `XLEN`. When a destination's last entry goes, its keys go.
 * Stream ids come from the Redis clock, so keys keep increasing as long as
 * that clock does not step back while a destination is empty. `ack` is one
 * lexical range of `q` and variadic deletes: O(log n + k), no per-entry reads.
 *
 * Key directory: `<p>k:{<peer>}`, a string holding the peer's key bundle (in
 * the peer's slot, next to its mailbox), written with `SET` under the same
 * durability as a `put` and read with `GET`.
 *
 * Global: `<p>e`, sorted set of destinations scored by (at most) their oldest
 * expirable storedAt, so `expire` visits only destinations with something due.
 * It is in another slot than the destinations, so it cannot be written in their
 * scripts: a `put` lowers it (`ZADD LT`) after its script when its entry became
 * the oldest expirable one; `expire` sets it to the destination's new oldest,
 * then reads that again and lowers it, so a racing `put` is never lost. A score
 * may be too low (a visit that finds nothing), never too high.
 *
 * Commands fail fast while Redis is unreachable (no offline queue): every
 * method rejects with `IlmError` `STORE_FAILED` then, and works again once the
 * client has reconnected; one Redis has not answered within `timeoutMs`
 * rejects so too. Call order on one destination holds: each method
 * sends its first command before it yields, on one connection, and the
 * scripts are loaded again on every (re)connection before any other command
 * (so no EVALSHA falls back to a later EVAL). `read` is plain `XRANGE` (and
 * `HMGET` of the tombstones when there are any): a script would copy every
 * row into Lua and back.
 *
 * Durability ({@link RedisMailboxOptions.durability}) is what a resolved
 * `put` promises: with `fsync`, Redis's AOF settings are checked on every
 * (re)connection; puts wait for the check under way (at most `timeoutMs`)
 * and reject unless it passed; with `replica`,
 * each put waits for a replica (`WAIT`, shared by the puts in flight) and
 * rejects without one. `ack`, `remove` and `expire` do not wait: losing
 * one replays messages their receiver already has (it drops them), or
 * keeps a message its sender was told failed.
 */
export class RedisMailbox implements Mailbox {
  readonly #connection: Connection
  readonly #client: Client
  readonly #prefix: string
  readonly #report: (error: Error) => void
  readonly #durability: RedisDurability
  readonly #replicaTimeoutMs: number
  readonly #timeoutMs: number
  /** On one Redis node, its state; on a cluster, {@link #nodes} has one per master connection seen. */
  readonly #single: NodeState | undefined
  readonly #nodes = new WeakMap<NodeClient, NodeState>()
  /** `open` resolved: later problems go to `onError` (before, `open` rejects with them). */
  #opened = false
  #closing: Promise<void> | undefined

  private constructor(
    connection: Connection,
    prefix: string,
    report: (error: Error) => void,
    durability: RedisDurability,
    replicaTimeoutMs: number,
    timeoutMs: number,
  ) {
    this.#connection = connection
    this.#client = connection.client
    this.#prefix = prefix
    this.#report = report
    this.#durability = durability
    this.#replicaTimeoutMs = replicaTimeoutMs
    this.#timeoutMs = timeoutMs
    // Before connecting: the scripts are loaded on the first `ready`, ahead of any other command.
    this.#single = connection.kind === 'node' ? this.#watch(connection.client, false) : undefined
  }

  /**
   * Connects to Redis (retrying until it answers) and resolves with the
   * mailbox. With durability `fsync` it rejects (`IlmError` `STORE_FAILED`,
   * one line naming the settings) unless Redis (on a cluster, every master)
   * has `appendonly yes` and `appendfsync always`, or when `CONFIG GET` is refused.
   */
  static async open(options: RedisMailboxOptions): Promise<RedisMailbox> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
    const target = redisTarget(options)
    const prefix = options.prefix ?? 'ilm:'
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) throw new TypeError('options.prefix must be a string without { or }')
    const durability = options.durability ?? DEFAULT_REDIS_DURABILITY
    if (!REDIS_DURABILITIES.includes(durability)) throw new TypeError(`options.durability must be one of ${REDIS_DURABILITIES.join(', ')}`)
    const replicaTimeoutMs = options.replicaTimeoutMs ?? DEFAULT_REPLICA_TIMEOUT_MS
    if (!Number.isSafeInteger(replicaTimeoutMs) || replicaTimeoutMs < 1) throw new RangeError('options.replicaTimeoutMs must be an integer >= 1')
    const timeoutMs = options.timeoutMs ?? DEFAULT_CLUSTER_TIMEOUT_MS
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new RangeError('options.timeoutMs must be an integer >= 1')
    const report = options.onError ?? (() => {})
    const connection = connect(target)
    const box = new RedisMailbox(connection, prefix, report, durability, replicaTimeoutMs, timeoutMs)
    let states: NodeState[]
    if (connection.kind === 'node') {
      connection.client.on('error', report)
      await connection.client.connect()
      states = [box.#single!]
    } else {
      const cluster = connection.client
      cluster.on('node-error', report)
      await cluster.connect()
      states = await Promise.all(cluster.masters.map(async (master) => box.#state(await cluster.nodeClient(master))))
    }
    let problem: string | undefined
    try {
      problem = (await Promise.all(states.map((state) => state.aof))).find((found) => found !== undefined)
    } catch (error) {
      problem = aofUncheckable(error)
    }
    if (problem !== undefined) {
      await box.close()
      throw new IlmError('STORE_FAILED', problem)
    }
    box.#opened = true
    return box
  }

  /** The durability policy of this mailbox. */
  get durability(): RedisDurability {
    return this.#durability
  }

  async put(to: string, record: MailboxRecord, frame: Uint8Array, limits: MailboxLimits): Promise<PutResult> {
    this.#check()
    const keys = this.#keys(to)
    checkRecord(record)
    if (!(frame instanceof Uint8Array)) throw new TypeError('frame must be a Uint8Array')
    checkLimit(limits?.maxMessages, 'limits.maxMessages')
    checkLimit(limits?.maxBytes, 'limits.maxBytes')
    const single = this.#single
    // Only while a check is under way: otherwise the script goes out in this tick, in the order puts are made.
    if (single !== undefined && single.aofState !== 'ok') await this.#storable(single)
    const args = [
      record.kind,
      record.from,
      record.epoch,
      String(record.seq),
      record.id,
      String(record.size),
      String(record.storedAt),
      record.reason === undefined ? '' : `+${record.reason}`,
      Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength),
      String(limits.maxMessages),
      String(limits.maxBytes),
      record.expiresAt === undefined ? '' : String(record.expiresAt),
      this.#durability === 'replica' ? '1' : '',
    ]
    // On a cluster, the master the write goes to: asked in the same tick as the script is sent, so both see one slot map.
    const node = single === undefined ? this.#nodeOf(keys[0]!) : undefined
    const write = single?.acks?.sent()
    const reply = list(await this.#run(() => this.#client.mbPut(keys, args)))
    const status = text(reply[0])
    if (status === 'full_messages' || status === 'full_bytes') return { ok: false, reason: status }
    const duplicate = status === 'dup'
    // Also for a duplicate: the put that stored it may have failed before this step.
    const oldest = reply[duplicate ? 4 : 2]
    if (oldest !== undefined && oldest !== null) {
      await this.#run(() => this.#client.zAdd(this.#globalKey(), { score: Number(text(oldest)), value: to }, { comparison: 'LT' }))
    }
    await this.#durable(write, node, keys[0]!)
    if (duplicate) return { ok: true, duplicate, entry: fromRow(reply[1], reply[2], reply[3]).entry }
    return { ok: true, duplicate, entry: { ...record, key: text(reply[1]) } }
  }

  async read(to: string, after: string | undefined, limit: number): Promise<readonly MailboxItem[]> {
    this.#check()
    const keys = this.#keys(to)
    if (after !== undefined) checkKey(after)
    checkCount(limit, 'limit')
    if (limit === 0) return []
    const [stream, , , , tombstones] = keys as [string, string, string, string, string]
    const [rows, buried] = await this.#run(() =>
      Promise.all([this.#raw(stream, ['XRANGE', stream, after === undefined ? '-' : `(${after}`, '+', 'COUNT', String(limit)]), this.#client.hLen(tombstones)]),
    )
    const page = list(rows)
    const fields = buried === 0 ? [] : page.flatMap((row) => [text(list(row)[0]), `${text(list(row)[0])}r`])
    const skips = fields.length === 0 ? [] : list(await this.#run(() => this.#client.hmGet(tombstones, fields)))
    return page.map((row, i) => {
      const { entry, frame } = fromRow(row, skips[2 * i], skips[2 * i + 1])
      return { entry, frame: new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength) }
    })
  }

  async ack(to: string, from: string, epoch: string, upTo: number): Promise<number> {
    this.#check()
    const keys = this.#keys(to)
    if (typeof from !== 'string' || typeof epoch !== 'string') throw new TypeError('from and epoch must be strings')
    if (!Number.isSafeInteger(upTo)) throw new TypeError('upTo must be a safe integer')
    if (upTo < 0) return 0
    return Number(await this.#run(() => this.#client.mbAck(keys, [from, epoch, String(upTo + 1)])))
  }

  async remove(to: string, keys: readonly string[]): Promise<void> {
    this.#check()
    const boxKeys = this.#keys(to)
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) throw new TypeError('keys must be an array of strings')
    // A key that is no stream id was never given out: like any unknown key, nothing to remove.
    const ids = keys.filter(isStreamId)
    if (ids.length > 0) await this.#run(() => this.#client.mbRemove(boxKeys, ids))
  }

  async expire(before: number, tombstone: Tombstone): Promise<readonly { to: string; entry: MailboxEntry }[]> {
    this.#check()
    if (typeof before !== 'number' || Number.isNaN(before)) throw new TypeError('before must be a number')
    if (typeof tombstone !== 'function') throw new TypeError('tombstone must be a function')
    const bound = before === Infinity ? '+inf' : before === -Infinity ? '-inf' : String(before)
    const expired: { to: string; entry: MailboxEntry }[] = []
    const visited = new Set<string>()
    try {
      for (;;) {
        const due = await this.#run(() =>
          this.#client.zRange(this.#globalKey(), '-inf', `(${bound}`, { BY: 'SCORE', LIMIT: { offset: 0, count: EXPIRE_PAGE } }),
        )
        const fresh = due.map((to) => to.toString('utf8')).filter((to) => !visited.has(to))
        if (fresh.length === 0) break
        for (const to of fresh) {
          visited.add(to)
          await this.#expireBox(to, bound, tombstone, expired)
        }
      }
    } catch (error) {
      // Messages already made skips must reach the caller (their senders are told from this list);
      // the rest stays due in `<p>e` for the next call.
      if (expired.length === 0) throw error
      this.#report(error instanceof Error ? error : new Error(String(error)))
    }
    return expired
  }

  async size(to: string): Promise<{ entries: number; bytes: number }> {
    this.#check()
    const keys = this.#keys(to)
    const [entries, bytes] = list(await this.#run(() => this.#client.mbSize(keys, [])))
    return { entries: Number(entries), bytes: Number(bytes) }
  }

  /**
   * Entries and `msg` bytes of every destination under this prefix, over the
   * whole Redis (on a cluster, every master): `SCAN` for the destinations'
   * streams on each master, the masters in parallel (`MATCH <p>m:{*`, `TYPE
   * stream`, pages of {@link SCAN_PAGE}), then `mbSize` of each destination
   * found, a page at a time (one script per destination, in its own slot,
   * pipelined). Not a snapshot: a destination changed during the walk counts
   * as it was when it was reached, and one whose slot migrates meanwhile may
   * count twice or not at all. Keys `SCAN` returns twice (it may, while Redis
   * resizes a table) count once (a set of the keys seen, per master, for the
   * walk). Costs one round trip per page and one short script per
   * destination; the relay's metrics cache it (`mailboxTotalsIntervalMs`).
   */
  async totals(): Promise<{ entries: number; bytes: number }> {
    this.#check()
    const connection = this.#connection
    const masters =
      connection.kind === 'node'
        ? [connection.client]
        : await this.#run(() => Promise.all(connection.client.masters.map((master) => connection.client.nodeClient(master))))
    const match = `${globEscape(this.#prefix)}m:{*`
    // `<p>m:{<to>}`: the destination starts after the prefix, `m:` and `{`.
    const tagAt = this.#prefix.length + 3
    let entries = 0
    let bytes = 0
    // The masters in parallel, each one page at a time.
    await Promise.all(
      masters.map(async (master) => {
        const seen = new Set<string>()
        let cursor = '0'
        do {
          const { cursor: next, keys } = await this.#run(() => master.scan(cursor, { MATCH: match, COUNT: SCAN_PAGE, TYPE: 'stream' }))
          cursor = text(next)
          const fresh = keys.map(text).filter((key) => !seen.has(key))
          for (const key of fresh) seen.add(key)
          const sizes = await this.#run(() => Promise.all(fresh.map((key) => this.#client.mbSize(this.#keys(key.slice(tagAt, -1)), []))))
          for (const size of sizes) {
            const [n, b] = list(size)
            entries += Number(n)
            bytes += Number(b)
          }
        } while (cursor !== '0')
      }),
    )
    return { entries, bytes }
  }

  /** `SET`, then durable as {@link RedisMailbox.put} is: synced (`fsync`) or on a replica (`replica`). */
  async putKeys(peer: string, bundle: Uint8Array): Promise<void> {
    this.#check()
    const key = this.#keysKey(peer)
    if (!(bundle instanceof Uint8Array)) throw new TypeError('bundle must be a Uint8Array')
    const single = this.#single
    if (single !== undefined && single.aofState !== 'ok') await this.#storable(single)
    const node = single === undefined ? this.#nodeOf(key) : undefined
    const write = single?.acks?.sent()
    await this.#run(() => this.#client.set(key, Buffer.from(bundle.buffer, bundle.byteOffset, bundle.byteLength)))
    await this.#durable(write, node, key)
  }

  async getKeys(peer: string): Promise<Uint8Array | undefined> {
    this.#check()
    const key = this.#keysKey(peer)
    const bundle = await this.#run(() => this.#client.get(key))
    return bundle === null ? undefined : Uint8Array.from(bundle)
  }

  close(): Promise<void> {
    this.#closing ??= this.#client.close().catch(() => this.#client.destroy())
    return this.#closing
  }

  /** Buries what is due in one destination (adding the msgs made skips to `out`), then brings its score in `<p>e` up to date. */
  async #expireBox(to: string, bound: string, tombstone: Tombstone, out: { to: string; entry: MailboxEntry }[]): Promise<void> {
    const keys = this.#keys(to)
    const expired: MailboxEntry[] = []
    try {
      await this.#buryDue(to, keys, bound, tombstone, expired)
    } finally {
      for (const entry of expired.sort((a, b) => compareKeys(a.key, b.key))) out.push({ to, entry })
    }
  }

  /** Makes the due msgs of `to` skips and drops its due acks, page by page; `expired` gets the msgs. */
  async #buryDue(to: string, keys: string[], bound: string, tombstone: Tombstone, expired: MailboxEntry[]): Promise<void> {
    let first: unknown
    for (let page = 0; page < EXPIRE_MAX_PAGES; page++) {
      const due = list(await this.#run(() => this.#client.mbDue(keys, [bound, String(EXPIRE_PAGE)]))).map((row) => fromRow(row).entry)
      if (due.length === 0) {
        first = list(await this.#run(() => this.#client.mbFirst(keys, [])))[1]
        break
      }
      const args: (string | Buffer)[] = ['retention']
      for (const entry of due) {
        const skip = entry.kind === 'msg' ? tombstone(to, entry) : new Uint8Array(0)
        args.push(entry.key, Buffer.from(skip.buffer, skip.byteOffset, skip.byteLength))
      }
      const [buried, next] = list(await this.#run(() => this.#client.mbBury(keys, args)))
      const done = new Set(list(buried).map(text))
      for (const entry of due) if (done.has(entry.key)) expired.push(entry)
      first = next
      if (due.length < EXPIRE_PAGE) break
    }
    const global = this.#globalKey()
    if (first === undefined || first === null) await this.#run(() => this.#client.zRem(global, to))
    else await this.#run(() => this.#client.zAdd(global, { score: Number(text(first)), value: to }))
    // A put that raced the write above lowered the score after its script; one that ran before it shows here.
    const [, score] = list(await this.#run(() => this.#client.mbFirst(keys, [])))
    if (score !== undefined && score !== null) {
      await this.#run(() => this.#client.zAdd(global, { score: Number(text(score)), value: to }, { comparison: 'LT' }))
    }
  }

  /**
   * After a put's write: on a cluster, that its slot's master may take writes
   * (`fsync`); with `replica`, that a replica of the master the write went to
   * has it, and that this master still holds the slot (a write redirected by
   * a failover is not vouched for by a WAIT elsewhere: the put rejects, the
   * sender retransmits, and the duplicate is recognised).
   */
  async #durable(write: number | undefined, node: Promise<NodeClient> | undefined, key: string): Promise<void> {
    const target = node === undefined ? undefined : await this.#run(() => node)
    const state = target === undefined ? this.#single! : this.#state(target)
    if (target !== undefined && state.aofState !== 'ok') await this.#storable(state)
    if (state.acks === undefined) return
    const n = write ?? state.acks.sent()
    // WAITs queue on the connection: one may wait behind the one in flight.
    await this.#run(() => state.acks!.replicated(n), this.#timeoutMs + 2 * this.#replicaTimeoutMs)
    if (target !== undefined && (await this.#run(() => this.#nodeOf(key))) !== target) {
      throw new IlmError('STORE_FAILED', 'redis mailbox: the hash slot moved to another master before a replica acknowledged the write')
    }
  }

  /**
   * `fsync`: waits for a check of the node's AOF settings under way (within the command timeout; a reconnection may
   * start another), then rejects unless they passed. Refused at once, a put made just after Redis came back would
   * get no answer, and its sender would wait for its retransmission timer, backed off to many seconds by then.
   */
  async #storable(state: NodeState): Promise<void> {
    if (this.#durability !== 'fsync') return
    for (let checks = 0; checks < MAX_CHECK_WAITS && state.aofState === 'checking' && state.aof !== undefined; checks++) {
      try {
        await state.aof
      } catch {
        break
      }
    }
    if (state.aofState === 'ok') return
    const why = state.aofState === 'checking' ? "Redis's persistence is being checked after a reconnection" : state.aofState.problem
    throw new IlmError('STORE_FAILED', `redis mailbox: not storing: ${why}`)
  }

  /** The per-connection state of a cluster node, made on first sight. */
  #state(node: NodeClient): NodeState {
    let state = this.#nodes.get(node)
    if (state === undefined) {
      state = this.#watch(node, true)
      this.#nodes.set(node, state)
    }
    return state
  }

  /**
   * Tracks one node connection: on every `ready` (and at once when it is
   * already connected) it loads the scripts, forgets the writes a lost
   * connection can no longer vouch for, and (`fsync`) checks the AOF settings.
   */
  #watch(node: NodeClient, connected: boolean): NodeState {
    const timeoutMs = this.#replicaTimeoutMs
    const state: NodeState = {
      acks: this.#durability === 'replica' ? new ReplicaAcks(() => node.sendCommand(['WAIT', '1', String(timeoutMs)]), timeoutMs) : undefined,
      aof: undefined,
      aofState: 'checking',
    }
    const ready = (): void => {
      for (const { SCRIPT } of Object.values(SCRIPTS)) node.scriptLoad(SCRIPT).catch(this.#report)
      state.acks?.reconnected()
      if (this.#durability === 'fsync') this.#checkAof(node, state)
    }
    node.on('ready', ready)
    if (connected) ready()
    return state
  }

  /** `fsync`: checks the AOF settings of the Redis this connection reached; writes made meanwhile wait for it. */
  #checkAof(node: NodeClient, state: NodeState): void {
    state.aofState = 'checking'
    const check = node.sendCommand(['CONFIG', 'GET', 'appendonly', 'appendfsync']).then(aofProblem, aofUncheckable)
    // Registered first: the state is set before any write waiting for the check goes on.
    void check.then((problem) => {
      if (state.aof !== wait) return
      state.aofState = problem === undefined ? 'ok' : { problem }
      if (problem !== undefined && this.#opened) this.#report(new IlmError('STORE_FAILED', problem))
    })
    // One bound for every write that waits: they end together, so none is stored while one made before it failed.
    const wait = within(check, this.#timeoutMs, () => new Error(`no answer to CONFIG GET within ${this.#timeoutMs} ms`))
    wait.catch(() => {})
    state.aof = wait
  }

  /** The connection to the node holding `key`: the one node, or on a cluster its slot's master. */
  #nodeOf(key: string): Promise<NodeClient> {
    const connection = this.#connection
    return connection.kind === 'node' ? Promise.resolve(connection.client) : connection.client.getNodeClientForKey(key)
  }

  /** A command the client has no method for, sent to the node holding `key`. */
  #raw(key: string, args: string[]): Promise<unknown> {
    const connection = this.#connection
    return connection.kind === 'node' ? connection.client.sendCommand(args) : connection.client.sendCommand(key, false, args)
  }

  #keys(to: string): string[] {
    if (typeof to !== 'string' || to.length === 0) throw new TypeError('to must be a non-empty string')
    const tag = `{${to}}`
    return ['m', 'q', 'x', 'z', 'o'].map((name) => `${this.#prefix}${name}:${tag}`)
  }

  #keysKey(peer: string): string {
    if (typeof peer !== 'string' || peer.length === 0) throw new TypeError('peer must be a non-empty string')
    return `${this.#prefix}k:{${peer}}`
  }

  #globalKey(): string {
    return `${this.#prefix}e`
  }

  async #run<T>(command: () => Promise<T>, ms = this.#timeoutMs): Promise<T> {
    try {
      return await within(command(), ms, () => new Error(`no answer from Redis within ${ms} ms`))
    } catch (error) {
      if (this.#closing !== undefined) throw new IlmError('CLOSED', 'mailbox closed', { cause: error })
      throw new IlmError('STORE_FAILED', `redis mailbox: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
  }

  #check(): void {
    if (this.#closing !== undefined) throw new IlmError('CLOSED', 'mailbox closed')
  }
}

function checkRecord(record: MailboxRecord): void {
  if (typeof record !== 'object' || record === null) throw new TypeError('record must be an object')
  if (!KINDS.includes(record.kind)) throw new TypeError(`record.kind must be one of ${KINDS.join(', ')}`)
  for (const name of ['from', 'epoch', 'id'] as const) if (typeof record[name] !== 'string') throw new TypeError(`record.${name} must be a string`)
  if (!Number.isSafeInteger(record.seq)) throw new TypeError('record.seq must be a safe integer')
  if ((record.kind === 'msg' || record.kind === 'skip') && record.seq < 0) throw new RangeError('record.seq of a msg or skip must be >= 0')
  checkCount(record.size, 'record.size')
  if (!Number.isFinite(record.storedAt)) throw new TypeError('record.storedAt must be a finite number')
  if (record.reason !== undefined && typeof record.reason !== 'string') throw new TypeError('record.reason must be a string')
  if (record.expiresAt !== undefined && !Number.isFinite(record.expiresAt)) throw new TypeError('record.expiresAt must be a finite number')
}

function checkCount(value: unknown, name: string): void {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new TypeError(`${name} must be a non-negative safe integer`)
}

function checkLimit(value: unknown, name: string): void {
  if (value !== Infinity) checkCount(value, name)
}

function checkKey(key: unknown): void {
  if (typeof key !== 'string' || !isStreamId(key)) throw new TypeError('mailbox keys are Redis stream ids')
}

/** `<ms>-<n>`, both parts 64-bit: anything else would fail inside a script, after some of its writes. */
function isStreamId(key: string): boolean {
  const parts = STREAM_ID.exec(key)
  return parts !== null && BigInt(parts[1]!) <= MAX_ID_PART && BigInt(parts[2]!) <= MAX_ID_PART
}

/** `text` matched literally in a `SCAN ... MATCH` pattern. */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]^-]/g, '\\$&')
}

/** Orders stream ids `<ms>-<n>` numerically. */
function compareKeys(a: string, b: string): number {
  const [am = '', an = ''] = a.split('-')
  const [bm = '', bn = ''] = b.split('-')
  return am.length - bm.length || (am < bm ? -1 : am > bm ? 1 : 0) || an.length - bn.length || (an < bn ? -1 : an > bn ? 1 : 0)
}

function list(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) throw new IlmError('INTERNAL', 'unexpected reply from the redis mailbox')
  return reply
}

function text(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8')
  if (typeof value === 'string' || typeof value === 'number') return String(value)
  throw new IlmError('INTERNAL', 'unexpected reply from the redis mailbox')
}

/** A stream row `[id, [field, value, ...]]` as an entry and its frame; with a tombstone (`skip`, `reason`), as that skip. */
function fromRow(row: unknown, skip?: unknown, reason?: unknown): { entry: MailboxEntry; frame: Buffer } {
  const [id, flat] = list(row)
  const values = list(flat)
  // Field names are one letter: index the values by its char code (no strings made for names).
  const fields: (Buffer | undefined)[] = []
  for (let i = 0; i + 1 < values.length; i += 2) {
    const name = values[i]
    const value = values[i + 1]
    if (Buffer.isBuffer(name) && name.length === 1 && Buffer.isBuffer(value)) fields[name[0]!] = value
  }
  const field = (name: string): Buffer => {
    const value = fields[name.charCodeAt(0)]
    if (value === undefined) throw new IlmError('INTERNAL', `redis mailbox entry without field ${name}`)
    return value
  }
  const kind = field('k').toString('latin1') as MailboxEntryKind
  if (!KINDS.includes(kind)) throw new IlmError('INTERNAL', `unknown redis mailbox entry kind ${kind}`)
  const stored = field('r')
  const expiresAt = fields[CHAR_X]
  const entry: MailboxEntry = {
    kind,
    from: field('f').toString('utf8'),
    epoch: field('e').toString('utf8'),
    seq: Number(field('s').toString('latin1')),
    id: field('i').toString('utf8'),
    size: Number(field('z').toString('latin1')),
    storedAt: Number(field('t').toString('latin1')),
    key: text(id),
    ...(stored.length > 0 && { reason: stored.toString('utf8', 1) }),
    ...(expiresAt !== undefined && expiresAt.length > 0 && { expiresAt: Number(expiresAt.toString('latin1')) }),
  }
  if (!Buffer.isBuffer(skip)) return { entry, frame: field('b') }
  return { entry: { ...entry, kind: 'skip', size: skip.byteLength, reason: text(reason) }, frame: skip }
}
