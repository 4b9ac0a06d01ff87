/**
 * The page of bench:peers (test/bench/peers.ts). Two of them, in two
 * browsers, play sender and receiver of one system at a time; the bench
 * drives them through `window.peers`.
 */
import { intersessionPeer } from './intersession-peer.js'
import { mqttPeer } from './mqtt-peer.js'
import { now, stamp } from './payload.js'
import type { Peer, PeerOptions, SystemName } from './peer.js'
import { Receiver, type Tally } from './receiver.js'
import { socketioPeer } from './socketio-peer.js'

const systems: Record<SystemName, (options: PeerOptions) => Promise<Peer>> = {
  intersession: intersessionPeer,
  mqtt: mqttPeer,
  socketio: socketioPeer,
}

/** How a run of sends went, on the sender's clock. */
export interface SendReport {
  firstSendAt: number
  lastSettledAt: number
  /** Sends that rejected, and the first reason. */
  failed: number
  firstError?: string
}

let peer: Peer | undefined
let receiver: Receiver | undefined

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
