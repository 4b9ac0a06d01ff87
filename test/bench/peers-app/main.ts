/**
 * The page of bench:peers (test/bench/peers.ts). Two of them, in two
 * browsers, play sender and receiver of one system at a time; the bench
 * drives them through `window.peers`.
 */
import { durablePeer } from './durable-peer.js'
import { intersessionPeer } from './intersession-peer.js'
import { mqttPeer } from './mqtt-peer.js'
import { now, stamp } from './payload.js'
import { unresolved } from '../peers-stats.js'
import { pace } from './pacer.js'
import type { Peer, PeerOptions, SystemName } from './peer.js'
import { rawPeer } from './raw-peer.js'
import { Receiver, type Tally } from './receiver.js'
import { socketioPeer } from './socketio-peer.js'

const systems: Record<SystemName, (options: PeerOptions) => Promise<Peer>> = {
  intersession: intersessionPeer(true),
  'intersession-plain': intersessionPeer(false),
  mqtt: mqttPeer,
  socketio: socketioPeer,
  raw: rawPeer,
  durable: durablePeer,
}

/** How a run of sends went, on the sender's clock. */
export interface SendReport {
  firstSendAt: number
  lastSettledAt: number
  /** Sends that rejected, and the first reason. */
  failed: number
  firstError?: string
}

/** How a paced or awaited run of sends went, on the sender's clock. */
export interface TimedSendReport {
  firstSendAt: number
  /** When the last send was called. */
  lastSendAt: number
  /** Sends called. */
  called: number
  /** Each resolved send's time from call to resolve, ms, in send order. */
  resolveMs: number[]
  /** Sends not (yet) resolved, and sends that rejected. */
  unresolved: number
  failed: number
  firstError?: string
}

/** The run of sends in progress: when each was called and resolved (0: not yet). */
interface Sending {
  readonly calledAt: Float64Array
  readonly resolvedAt: Float64Array
  called: number
  failed: number
  firstError?: string
  stop: boolean
}

let peer: Peer | undefined
let receiver: Receiver | undefined
let sending: Sending | undefined

const browserClock = { now: () => performance.now(), sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms))) }

/** Starts send `index` of `phase` on `state`, recording its call and its resolve. */
function sendTimed(open: Peer, state: Sending, phase: number, index: number): Promise<void> {
  const text = stamp(phase, index)
  state.calledAt[index] = now()
  state.called++
  return open.send(text).then(
    () => void (state.resolvedAt[index] = now()),
    (error: unknown) => {
      state.failed++
      state.firstError ??= String(error)
    },
  )
}

/** The report of `state` as it stands. */
function timedReport(state: Sending, lastSendAt: number): TimedSendReport {
  const resolveMs: number[] = []
  for (let i = 0; i < state.called; i++) if (state.resolvedAt[i]! > 0) resolveMs.push(state.resolvedAt[i]! - state.calledAt[i]!)
  const pending = unresolved(state.resolvedAt, state.called) - state.failed
  const report: TimedSendReport = { firstSendAt: state.calledAt[0] ?? 0, lastSendAt, called: state.called, resolveMs, unresolved: pending, failed: state.failed }
  if (state.firstError !== undefined) report.firstError = state.firstError
  return report
}

const peers = {
  now,

  /** Connects this page as one end of `system`; arrivals go to the receiver set by `expect`. */
  async open(system: SystemName, options: Omit<PeerOptions, 'onMessage'>): Promise<void> {
    if (peer !== undefined) throw new Error('a peer is open already')
    peer = await systems[system]({ ...options, onMessage: (contents) => receiver?.record(contents, now()) })
  },

  /**
   * From now on, count `count` messages of `phase`. With `cutUrl`, POST to it
   * once half of them arrived: the fault proxy's trigger, pulled from here so
   * that the cut comes at that moment and not after a trip through the bench.
   */
  expect(phase: number, count: number, cutUrl?: string): void {
    const cut = (): void => void fetch(cutUrl!, { method: 'POST', mode: 'no-cors' }).catch((error: unknown) => console.error('cut failed', error))
    receiver = new Receiver(phase, count, cutUrl === undefined ? undefined : cut)
  },

  wait: (timeoutMs: number, quietMs: number, settleMs: number): Promise<Tally> => receiver!.wait(timeoutMs, quietMs, settleMs),

  /** How many messages of the current phase first arrived before `at` (this page's clock). */
  countBefore: (at: number): number => receiver!.countBefore(at),

  /**
   * Messages 0..count-1 of `phase`, in windows of `window` sends issued at
   * once, each window awaited (every send settled) before the next; then
   * `gapMs` of pause (none when 0).
   */
  async send(phase: number, count: number, window: number, gapMs: number): Promise<SendReport> {
    const open = peer!
    const report: SendReport = { firstSendAt: now(), lastSettledAt: 0, failed: 0 }
    for (let from = 0; from < count; from += window) {
      const sends: Array<Promise<unknown>> = []
      for (let i = from; i < Math.min(count, from + window); i++) sends.push(open.send(stamp(phase, i)))
      for (const settled of await Promise.allSettled(sends)) {
        if (settled.status === 'fulfilled') continue
        report.failed++
        report.firstError ??= String(settled.reason)
      }
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
    }
    report.lastSettledAt = now()
    return report
  },

  /**
   * Messages 0..count-1 of `phase` paced at `ratePerSec` (test/bench/peers-app/pacer.ts),
   * none awaited before the next is due; resolves once all were called and
   * every send settled (or `settleMs` after the last call), with each
   * send's call -> resolve time.
   */
  async paced(phase: number, count: number, ratePerSec: number, settleMs: number): Promise<TimedSendReport> {
    const open = peer!
    const state: Sending = { calledAt: new Float64Array(count), resolvedAt: new Float64Array(count), called: 0, failed: 0, stop: false }
    sending = state
    const settles: Array<Promise<void>> = []
    await pace(count, ratePerSec, (i) => settles.push(sendTimed(open, state, phase, i)), browserClock, () => state.stop)
    const lastSendAt = now()
    await Promise.race([Promise.all(settles), new Promise((resolve) => setTimeout(resolve, settleMs))])
    return timedReport(state, lastSendAt)
  },

  /** Messages 0..count-1 of `phase`, each send awaited before the next is called. */
  async awaited(phase: number, count: number): Promise<TimedSendReport> {
    const open = peer!
    const state: Sending = { calledAt: new Float64Array(count), resolvedAt: new Float64Array(count), called: 0, failed: 0, stop: false }
    sending = state
    for (let i = 0; i < count; i++) await sendTimed(open, state, phase, i)
    return timedReport(state, now())
  },

  /**
   * Stops the run of sends in progress from calling more, and reports it as
   * it stands at this moment (what the app would know if the page went away
   * now: the sends not yet resolved).
   */
  snapshot(): TimedSendReport {
    const state = sending!
    state.stop = true
    return timedReport(state, now())
  },

  /** The storage floor: `count` sequential strict single-put transactions in a dedicated worker (floor-worker.ts). */
  floor(count: number): Promise<{ durations: number[]; totalMs: number }> {
    const worker = new Worker(new URL('./floor-worker.ts', import.meta.url), { type: 'module' })
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<{ durations: number[]; totalMs: number } | { error: string }>) => {
        worker.terminate()
        if ('error' in event.data) reject(new Error(event.data.error))
        else resolve(event.data)
      }
      worker.onerror = (event) => (worker.terminate(), reject(new Error(event.message)))
      worker.postMessage({ count, name: `floor-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}` })
    })
  },

  async close(): Promise<void> {
    const open = peer
    peer = undefined
    receiver = undefined
    await open?.close()
  },
}

declare global {
  interface Window {
    peers: typeof peers
  }
}
window.peers = peers
document.title = 'ready'
