/**
 * The Redis mailbox's stored-and-drained msgs/s (part of `npm run bench:cluster`).
 *
 * (a) RedisMailbox: `put` N msgs of PAYLOAD bytes for one destination, in
 *     batches of WINDOW concurrent puts (as a relay does for many senders), then drain as
 *     the relay does: `read` a page after the last key, `ack` up to its last
 *     seq, until empty; rate = N / (first put -> mailbox empty).
 * (b) The ceiling, on the same Redis: bare `XADD` of the same bytes with the
 *     same batches, then `XRANGE` pages and `XDEL` of each page.
 * Runs alternate ceiling / mailbox, `runs` of each, on fresh keys; the medians
 * are compared. Redis runs without persistence and the mailbox with durability
 * `none`: this is the mailbox's own cost over the bare commands, not a disk's.
 *
 *   npx tsx test/bench/cluster-mailbox.ts --messages 10000 --runs 5
 *
 * Run alone it starts its own redis-server and prints the result as JSON.
 */
import { createClient, createCluster, RESP_TYPES } from 'redis'
import { RedisMailbox } from '../../src/relay/mailbox/redis.js'
import type { RedisDurability } from '../../src/relay/mailbox/redis-durability.js'
import { startRedisProcess } from '../helpers/redis-process.js'
import { figure, type Figure } from './figures.js'

/** Options of {@link benchRedisMailbox}. */
export interface MailboxBenchOptions {
  /** Messages per run. Default 10,000. */
  readonly messages?: number
  /** Entries per read (the relay's drain page). Default 256. */
  readonly page?: number
  /** Runs of each side. Default 5. */
  readonly runs?: number
  /**
   * The mailbox's durability. Default `none`. With `replica` the bare side
   * sends `WAIT 1` on the key's master after each window of `XADD`s, as the
   * mailbox shares one `WAIT` among the puts in flight.
   */
  readonly durability?: Extract<RedisDurability, 'none' | 'replica'>
}

/** Where the Redis is: one node's URL, or a cluster's root nodes (`host:port`). */
export type BenchTarget = string | { readonly rootNodes: readonly string[] }

/** What {@link benchRedisMailbox} measured. */
export interface MailboxBenchResult {
  readonly messages: number
  readonly payloadBytes: number
  readonly page: number
  readonly runs: number
  /** Median stored-and-drained msgs/s through RedisMailbox. */
  readonly mailboxMsgsPerSec: number
  /** Median msgs/s of bare XADD + XRANGE + XDEL. */
  readonly ceilingMsgsPerSec: number
  /** Every run, with its two phases: store (put / XADD) and drain (read + ack / XRANGE + XDEL), msgs/s. */
  readonly mailboxRuns: readonly RunRates[]
  readonly ceilingRuns: readonly RunRates[]
  readonly figure: Figure
}

/** One run's rates, msgs/s. */
export interface RunRates {
  readonly total: number
  readonly store: number
  readonly drain: number
}

const PAYLOAD = 64
const WINDOW = 256
const EPOCH = '0000000a1.benchepoch'
const LIMITS = { maxMessages: 10_000_000, maxBytes: Number.MAX_SAFE_INTEGER }

/** Measures RedisMailbox against bare Redis stream commands on the Redis at `target`. */
export async function benchRedisMailbox(target: BenchTarget, options: MailboxBenchOptions = {}): Promise<MailboxBenchResult> {
  const durability = options.durability ?? 'none'
  const messages = positive(options.messages ?? 10_000, 'messages')
  const page = positive(options.page ?? 256, 'page')
  const runs = positive(options.runs ?? 5, 'runs')
  const payload = new Uint8Array(PAYLOAD).fill(7)
  const tag = `bench-${process.pid}-${Date.now()}`
  const mailboxRuns: RunRates[] = []
  const ceilingRuns: RunRates[] = []
  for (let run = 0; run < runs; run++) {
    ceilingRuns.push(await bareRun(target, `${tag}:bare:{${run}}`, messages, page, payload, durability === 'replica'))
    mailboxRuns.push(await mailboxRun(target, `${tag}:`, `dest-${run}`, messages, page, payload, durability))
  }
  const mailboxMsgsPerSec = Math.round(median(mailboxRuns.map((run) => run.total)))
  const ceilingMsgsPerSec = Math.round(median(ceilingRuns.map((run) => run.total)))
  return {
    messages,
    payloadBytes: PAYLOAD,
    page,
    runs,
    mailboxMsgsPerSec,
    ceilingMsgsPerSec,
    mailboxRuns,
    ceilingRuns,
    figure: figure(
      `mailbox stored and drained, ${messages.toLocaleString('en')} × ${PAYLOAD} B, pages of ${page}`,
      mailboxMsgsPerSec,
      'msgs/s',
      'bare XADD + XRANGE + XDEL',
      ceilingMsgsPerSec,
    ),
  }
}

async function mailboxRun(
  target: BenchTarget,
  prefix: string,
  to: string,
  messages: number,
  page: number,
  frame: Uint8Array,
  durability: RedisDurability,
): Promise<RunRates> {
  const box = await RedisMailbox.open({ ...(typeof target === 'string' ? { url: target } : { rootNodes: [...target.rootNodes] }), prefix, durability })
  try {
    const start = performance.now()
    await windowed(messages, (seq) =>
      box.put(to, { kind: 'msg', from: 'sender', epoch: EPOCH, seq, id: `m${seq}`, size: frame.byteLength, storedAt: Date.now() }, frame, LIMITS),
    )
    const stored = performance.now()
    let after: string | undefined
    let drained = 0
    for (;;) {
      const items = await box.read(to, after, page)
      const last = items.at(-1)
      if (last === undefined) break
      after = last.entry.key
      drained += await box.ack(to, last.entry.from, last.entry.epoch, last.entry.seq)
    }
    const end = performance.now()
    if (drained !== messages) throw new Error(`mailbox drained ${drained} of ${messages}`)
    // Untimed: the now empty destination leaves the expiry index, so the run leaves no keys.
    await box.expire(Infinity, () => new Uint8Array(0))
    return rates(messages, start, stored, end)
  } finally {
    await box.close()
  }
}

async function bareRun(target: BenchTarget, key: string, messages: number, page: number, frame: Uint8Array, replicated: boolean): Promise<RunRates> {
  const mapping = { [RESP_TYPES.BLOB_STRING]: Buffer }
  const wait = ['WAIT', '1', '1000']
  let client
  let replicas: () => Promise<unknown>
  if (typeof target === 'string') {
    const node = createClient({ url: target }).withTypeMapping(mapping)
    client = node
    replicas = () => node.sendCommand(wait)
  } else {
    const cluster = createCluster({ rootNodes: target.rootNodes.map((node) => ({ url: `redis://${node}` })) }).withTypeMapping(mapping)
    client = cluster
    replicas = async () => (await cluster.getNodeClientForKey(key)).sendCommand(wait)
  }
  await client.connect()
  try {
    const body = Buffer.from(frame)
    const start = performance.now()
    await windowed(messages, () => client.xAdd(key, '*', { b: body }), replicated ? replicas : undefined)
    const stored = performance.now()
    let after = '-'
    let drained = 0
    for (;;) {
      const ids = ((await client.xRange(key, after, '+', { COUNT: page })) ?? []).map((row) => row.id.toString())
      const last = ids.at(-1)
      if (last === undefined) break
      after = `(${last}`
      drained += await client.xDel(key, ids)
    }
    const end = performance.now()
    if (drained !== messages) throw new Error(`bare drained ${drained} of ${messages}`)
    await client.del(key)
    return rates(messages, start, stored, end)
  } finally {
    await client.close()
  }
}

/** Runs `task(0..count-1)` in batches of WINDOW concurrent calls, in order of start; `after` once each batch is sent. */
async function windowed(count: number, task: (i: number) => Promise<unknown>, after?: () => Promise<unknown>): Promise<void> {
  for (let from = 0; from < count; from += WINDOW) {
    const batch: Promise<unknown>[] = []
    for (let i = from; i < Math.min(count, from + WINDOW); i++) batch.push(task(i))
    if (after !== undefined) batch.push(after())
    await Promise.all(batch)
  }
}

function rates(messages: number, start: number, stored: number, end: number): RunRates {
  const perSec = (ms: number): number => Math.round((messages * 1000) / ms)
  return { total: perSec(end - start), store: perSec(stored - start), drain: perSec(end - stored) }
}

function median(values: readonly number[]): number {
  return [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : undefined
}

if (import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const redis = await startRedisProcess({ persistence: 'none' })
  try {
    const messages = arg('--messages')
    const runs = arg('--runs')
    const page = arg('--page')
    const result = await benchRedisMailbox(redis.url, {
      ...(messages !== undefined && { messages }),
      ...(runs !== undefined && { runs }),
      ...(page !== undefined && { page }),
    })
    console.log(JSON.stringify(result, null, 2))
  } finally {
    await redis.stop()
  }
}
