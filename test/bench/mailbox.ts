/**
 * bench:mailbox — what durable custody costs the relay's LevelDB mailbox, in
 * stored-and-drained msgs/s, all on the same disk in one run:
 *
 * (a) LevelMailbox as the relay runs it: every batch synced (`fsync`/
 *     `fdatasync`) before its puts resolve, group commit. N msgs of PAYLOAD
 *     bytes for one destination are `put` in windows of WINDOW concurrent
 *     puts (as the relay does for many senders), then drained as the relay
 *     does: `read` a page after the last key, `ack` up to its last seq, until
 *     empty. Rate = N / (first put -> mailbox empty).
 * (b) The same with `sync: false` (the mailbox before it synced: LevelDB
 *     hands the writes to the OS and resolves).
 * (c) Ceiling: bare classic-level with the same keys and bytes in batches of
 *     the same sizes, synced: one `batch(..., { sync: true })` of each
 *     window's records and frames, then pages read with `getMany` and one
 *     synced `batch` of deletes per page.
 * (d) Floor: bare classic-level, one synced `batch` per message (no group
 *     commit in the mailbox), WINDOW at once, then the same drain as (c);
 *     N / 10 messages (it is slow).
 *
 * Each run uses a fresh database in a directory on the repository's disk
 * (not /tmp, which may be a tmpfs where a sync costs nothing). Runs
 * alternate (a) (b) (c) (d); medians are compared.
 *
 *   npx tsx test/bench/mailbox.ts --messages 20000 --runs 3
 *
 * Writes test/bench/results/mailbox.json. Exits non-zero only when it could not run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import type { MailboxRecord } from '../../src/relay/mailbox/mailbox.js'
import { LevelMailbox } from '../../src/relay/mailbox/level.js'
import { intArg } from './args.js'
import { figure } from './figures.js'

const PAYLOAD = 64
const WINDOW = 256
const PAGE = 256
const TO = 'receiver'
const EPOCH = '0000000a1.benchepoch'
const LIMITS = { maxMessages: 10_000_000, maxBytes: Number.MAX_SAFE_INTEGER }
const SCRATCH = fileURLToPath(new URL('./.mailbox-scratch/', import.meta.url))
const encoder = new TextEncoder()

/** One run's rates, msgs/s: store (puts), drain (read + ack), total. */
interface RunRates {
  readonly total: number
  readonly store: number
  readonly drain: number
}

const record = (seq: number): MailboxRecord => ({ kind: 'msg', from: 'sender', epoch: EPOCH, seq, id: `m${seq}`, size: PAYLOAD, storedAt: Date.now() })
const key = (prefix: string, seq: number): string => `${prefix}\0${TO}\0${String(seq).padStart(16, '0')}`

function freshDir(): string {
  mkdirSync(SCRATCH, { recursive: true })
  return mkdtempSync(`${SCRATCH}run-`)
}

function rates(messages: number, start: number, stored: number, end: number): RunRates {
  const perSec = (ms: number): number => Math.round((messages * 1000) / ms)
  return { total: perSec(end - start), store: perSec(stored - start), drain: perSec(end - stored) }
}

/** Runs `task(0..count-1)` in windows of WINDOW concurrent calls, in order of start. */
async function windowed(count: number, task: (i: number) => Promise<unknown>): Promise<void> {
  for (let from = 0; from < count; from += WINDOW) {
    const batch: Promise<unknown>[] = []
    for (let i = from; i < Math.min(count, from + WINDOW); i++) batch.push(task(i))
    await Promise.all(batch)
  }
}

/** (a) and (b): the mailbox itself. */
async function mailboxRun(messages: number, sync: boolean): Promise<RunRates> {
  const dir = freshDir()
  const box = await LevelMailbox.open(dir, { sync })
  try {
    const frame = new Uint8Array(PAYLOAD).fill(7)
    const start = performance.now()
    await windowed(messages, (seq) => box.put(TO, record(seq), frame, LIMITS))
    const stored = performance.now()
    let after: string | undefined
    let drained = 0
    for (;;) {
      const items = await box.read(TO, after, PAGE)
      const last = items.at(-1)
      if (last === undefined) break
      after = last.entry.key
      drained += await box.ack(TO, last.entry.from, last.entry.epoch, last.entry.seq)
    }
    const end = performance.now()
    if (drained !== messages) throw new Error(`mailbox drained ${drained} of ${messages}`)
    return rates(messages, start, stored, end)
  } finally {
    await box.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** (c) and (d): bare classic-level, synced; `perMessage` writes one batch per message instead of one per window. */
async function bareRun(messages: number, perMessage: boolean): Promise<RunRates> {
  const dir = freshDir()
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    const frame = new Uint8Array(PAYLOAD).fill(7)
    const ops = (seq: number) => [
      { type: 'put' as const, key: key('m', seq), value: encoder.encode(JSON.stringify(record(seq))) },
      { type: 'put' as const, key: key('f', seq), value: frame },
    ]
    const start = performance.now()
    if (perMessage) await windowed(messages, (seq) => db.batch(ops(seq), { sync: true }))
    else {
      for (let from = 0; from < messages; from += WINDOW) {
        const seqs = Array.from({ length: Math.min(WINDOW, messages - from) }, (_, i) => from + i)
        await db.batch(seqs.flatMap(ops), { sync: true })
      }
    }
    const stored = performance.now()
    let drained = 0
    for (let from = 0; from < messages; from += PAGE) {
      const seqs = Array.from({ length: Math.min(PAGE, messages - from) }, (_, i) => from + i)
      const frames = await db.getMany(seqs.map((seq) => key('f', seq)))
      if (frames.some((f) => f === undefined)) throw new Error('bare read missed a frame')
      await db.batch(
        seqs.flatMap((seq) => [
          { type: 'del' as const, key: key('m', seq) },
          { type: 'del' as const, key: key('f', seq) },
        ]),
        { sync: true },
      )
      drained += seqs.length
    }
    const end = performance.now()
    if (drained !== messages) throw new Error(`bare drained ${drained} of ${messages}`)
    return rates(messages, start, stored, end)
  } finally {
    await db.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (values: readonly number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!

async function main(): Promise<void> {
  const MESSAGES = intArg('--messages', 20_000)
  const RUNS = intArg('--runs', 3)
  const FLOOR_MESSAGES = Math.max(1, Math.floor(MESSAGES / 10))
  const synced: RunRates[] = []
  const unsynced: RunRates[] = []
  const ceiling: RunRates[] = []
  const floor: RunRates[] = []
  try {
    for (let run = 0; run < RUNS; run++) {
      synced.push(await mailboxRun(MESSAGES, true))
      unsynced.push(await mailboxRun(MESSAGES, false))
      ceiling.push(await bareRun(MESSAGES, false))
      floor.push(await bareRun(FLOOR_MESSAGES, true))
      console.log(
        `run ${run + 1}: synced ${synced.at(-1)!.total}/s, unsynced ${unsynced.at(-1)!.total}/s, bare synced batches ${ceiling.at(-1)!.total}/s, bare synced per message ${floor.at(-1)!.total}/s`,
      )
    }
  } finally {
    rmSync(SCRATCH, { recursive: true, force: true })
  }
  const m = (runs: readonly RunRates[]): number => median(runs.map((r) => r.total))
  const size = `${MESSAGES.toLocaleString('en')} × ${PAYLOAD} B, ${WINDOW} puts at once, pages of ${PAGE}`
  const result = {
    benchmark: 'mailbox',
    date: new Date().toISOString(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
    messages: MESSAGES,
    floorMessages: FLOOR_MESSAGES,
    payloadBytes: PAYLOAD,
    window: WINDOW,
    page: PAGE,
    runs: RUNS,
    syncedMsgsPerSec: m(synced),
    unsyncedMsgsPerSec: m(unsynced),
    bareSyncedBatchesMsgsPerSec: m(ceiling),
    bareSyncedPerMessageMsgsPerSec: m(floor),
    runsDetail: { synced, unsynced, ceiling, floor },
    figures: [
      figure(`LevelDB mailbox stored and drained, synced with group commit, ${size}`, m(synced), 'msgs/s', 'bare classic-level synced batches of the same sizes', m(ceiling)),
      figure(`LevelDB mailbox stored and drained, synced with group commit, ${size}`, m(synced), 'msgs/s', 'the same mailbox unsynced (before)', m(unsynced)),
      figure(
        `bare classic-level, one synced batch per message, ${FLOOR_MESSAGES.toLocaleString('en')} × ${PAYLOAD} B, ${WINDOW} at once`,
        m(floor),
        'msgs/s',
        'LevelDB mailbox synced with group commit',
        m(synced),
      ),
    ],
  }
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/mailbox.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
  console.log(`bench:mailbox  ${result.machine}`)
  for (const f of result.figures) console.log(`  ${f.figure}: ${f.value} ${f.unit} vs ${f.against} ${f.againstValue} -> ratio ${f.ratio}`)
}

main().catch((error: unknown) => {
  console.error('bench:mailbox could not run:', error)
  process.exit(1)
})
