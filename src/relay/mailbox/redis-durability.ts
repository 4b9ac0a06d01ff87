/// <reference types="node" />
/**
 * What a resolved `put` of the Redis mailbox promises, so the relay answers
 * `stored` only once the message is as durable as the operator asked:
 * - `fsync`: Redis appends every write to its AOF and fsyncs it before it
 *   replies (`appendonly yes`, `appendfsync always`); the mailbox checks
 *   those settings when it connects, and again after every reconnection;
 * - `replica`: after the write, `WAIT 1 <timeout>` until at least one replica
 *   has it; without one in time the put rejects (no `stored`: the sender
 *   keeps the message and retransmits);
 * - `none`: the put resolves once the write is in Redis's memory.
 */
export type RedisDurability = 'fsync' | 'replica' | 'none'

/** Every {@link RedisDurability}, for parsing flags. */
export const REDIS_DURABILITIES: readonly RedisDurability[] = ['fsync', 'replica', 'none']

/** The default policy: `stored` means on Redis's disk. */
export const DEFAULT_REDIS_DURABILITY: RedisDurability = 'fsync'

/** Default of `replicaTimeoutMs`: long enough for a replica over a LAN under load, short next to a sender's retransmit backoff. */
export const DEFAULT_REPLICA_TIMEOUT_MS = 1_000

/**
 * Why a `CONFIG GET appendonly appendfsync` reply (a flat array, a Map or an
 * object, of strings or Buffers) does not give durability `fsync`, as one
 * line for the operator; undefined when it does.
 */
export function aofProblem(reply: unknown): string | undefined {
  const pairs: unknown[][] = Array.isArray(reply)
    ? reply.flatMap((name, i) => (i % 2 === 0 ? [[name, reply[i + 1]]] : []))
    : reply instanceof Map
      ? [...reply]
      : typeof reply === 'object' && reply !== null
        ? Object.entries(reply)
        : []
  const settings = new Map(pairs.map(([name, value]) => [String(name).toLowerCase(), String(value).toLowerCase()]))
  const appendonly = settings.get('appendonly') ?? '(not reported)'
  const appendfsync = settings.get('appendfsync') ?? '(not reported)'
  if (appendonly === 'yes' && appendfsync === 'always') return undefined
  return (
    `redis mailbox durability 'fsync' (--redis-durability fsync, the default) needs Redis with appendonly yes and appendfsync always; ` +
    `this Redis has appendonly ${appendonly}, appendfsync ${appendfsync}. Set both (redis.conf, or CONFIG SET), or choose durability 'replica' or 'none'`
  )
}

/** The line for a Redis that refuses (or lacks) `CONFIG GET`. */
export function aofUncheckable(error: unknown): string {
  const why = error instanceof Error ? error.message : String(error)
  return (
    `redis mailbox durability 'fsync' (--redis-durability fsync, the default) cannot check Redis's persistence: CONFIG GET appendonly appendfsync failed (${why}). ` +
    `Allow CONFIG GET for this Redis user, or choose durability 'replica' or 'none'`
  )
}

/**
 * Group commit for `WAIT`: one `WAIT 1 <timeout>` covers every write sent
 * before it on the same connection (Redis waits for the connection's last
 * write), so a write joins the last `WAIT` sent after it, or sends one that
 * covers every write sent so far. While a `WAIT` blocks the connection, the
 * writes queued behind it share the next one.
 */
export class ReplicaAcks {
  readonly #wait: () => Promise<unknown>
  readonly #timeoutMs: number
  /** Writes sent so far, numbered from 1. */
  #sent = 0
  /** Writes up to this number were sent before the last `WAIT`. */
  #covered = 0
  #last: Promise<void> | undefined
  /** Writes up to this number were sent on a connection that is gone: no later `WAIT` can vouch for them. */
  #lost = 0

  /** `wait` sends `WAIT 1 <timeoutMs>` on the connection the writes go through. */
  constructor(wait: () => Promise<unknown>, timeoutMs: number) {
    this.#wait = wait
    this.#timeoutMs = timeoutMs
  }

  /** Call as a write is sent: its number, for {@link replicated}. */
  sent(): number {
    return ++this.#sent
  }

  /** The connection was lost and made again: writes sent before cannot be confirmed on the new one. */
  reconnected(): void {
    this.#lost = this.#sent
    this.#covered = this.#sent
    this.#last = undefined
  }

  /** Resolves once a replica acknowledged write `n` (and everything before it); rejects when none did in time. */
  replicated(n: number): Promise<void> {
    if (n <= this.#lost) return Promise.reject(new Error('the connection to Redis was lost before a replica acknowledged the write'))
    if (this.#last === undefined || n > this.#covered) {
      this.#covered = this.#sent
      this.#last = this.#wait().then((count) => {
        if (!(Number(count) >= 1))
          throw new Error(`no replica acknowledged the write within ${this.#timeoutMs} ms (WAIT 1 ${this.#timeoutMs} answered ${String(count)})`)
      })
    }
    return this.#last
  }
}
