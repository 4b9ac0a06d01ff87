/**
 * What bench:idb (Chromium) and bench:idb-firefox report alike: persisted
 * `send()` through `connect()` against raw strict IndexedDB puts of the same
 * rows, both measured in one run and one profile.
 */
import { machine } from './browser-harness.js'

/** Per second, rounded: `count` in `ms` milliseconds. */
export const rate = (count: number, ms: number): number => Math.round((count / ms) * 1000)

/** One run's timings. The raw puts run more than once (fsync times vary) and are pooled. */
export interface SendVsRawRun {
  readonly benchmark: string
  readonly browser: string
  readonly messages: number
  readonly bytes: number
  readonly window: number
  readonly rawBatch: number
  readonly sendMs: number
  readonly rawMs: readonly number[]
}

/** The fields both results files start with. */
export interface SendVsRaw {
  readonly benchmark: string
  readonly date: string
  readonly machine: string
  readonly messages: number
  readonly bytes: number
  readonly sendWindow: number
  readonly rawBatch: number
  readonly durability: 'strict'
  readonly sendMsgsPerSec: number
  readonly rawIdbPutsPerSec: number
  readonly ratio: number
  readonly rawIdbPutsPerSecRuns: number[]
}

export function sendVsRaw(run: SendVsRawRun): SendVsRaw {
  const sendMsgsPerSec = rate(run.messages, run.sendMs)
  const rawIdbPutsPerSec = rate(run.messages * run.rawMs.length, run.rawMs.reduce((a, b) => a + b, 0))
  return {
    benchmark: run.benchmark,
    date: new Date().toISOString(),
    machine: machine(run.browser),
    messages: run.messages,
    bytes: run.bytes,
    sendWindow: run.window,
    rawBatch: run.rawBatch,
    durability: 'strict',
    sendMsgsPerSec,
    rawIdbPutsPerSec,
    ratio: Number((sendMsgsPerSec / rawIdbPutsPerSec).toFixed(4)),
    rawIdbPutsPerSecRuns: run.rawMs.map((ms) => rate(run.messages, ms)),
  }
}
