/**
 * Soak harness functions (test/soak): `window.harness.soak`. A peer on the relay with
 * `processBatch: 1`, whose handler reports every handover to Node through the
 * CDP binding `soakReport`, and sends Node numbers itself.
 */
import { connect, type Messenger } from 'intersession/client'

interface SoakConnectOptions {
  relay: string
  /** Run the engine in a worker this page made, so that `terminateWorker` can kill it. */
  ownWorker: boolean
  /** Only one tab per identity subscribes, so that each message has exactly one handover to count. */
  subscribe: boolean
  heartbeatMs: number
  staleAfterMs: number
}

declare global {
  interface Window {
    /** Installed by the soak over CDP (`Runtime.addBinding`). */
    soakReport?: (payload: string) => void
  }
}

/** A handover as the handler records it; `key` is unique, `t` is when the handler ran (ms since the epoch). */
interface HandoverRecord {
  to: string
  from: string
  n: number
  id: string
  seq: number
  key: string
  t: number
}

const PREFIX = 'soak:h:'
// Binding calls made just before a navigation can be lost; localStorage survives it.
const load = Math.random().toString(36).slice(2, 10)
let handled = 0
let messenger: Messenger | undefined
let worker: Worker | undefined
// Rejects the sends of a worker that was terminated: they can never settle otherwise.
const abandon = new Set<(error: Error) => void>()

/** What the soak drives in each tab. */
export const soak = {
  async connect(peerId: string, options: SoakConnectOptions) {
    if (options.ownWorker) worker = new Worker(new URL('./own-worker.ts', import.meta.url), { type: 'module' })
    const m = await connect({
      peerId,
      transport: { kind: 'websocket', url: options.relay, token: async () => `dev:${peerId}`, heartbeatMs: options.heartbeatMs },
      limits: { processBatch: 1 },
      heartbeatMs: options.heartbeatMs,
      staleAfterMs: options.staleAfterMs,
      ...(worker !== undefined && { worker }),
    })
    if (options.subscribe) {
      m.onMessage((message) => {
        const { n } = message.contents as { n: number }
        const key = `${load}:${++handled}`
        const record: HandoverRecord = { to: peerId, from: message.from, n, id: message.id, seq: message.seq, key, t: performance.timeOrigin + performance.now() }
        const text = JSON.stringify(record)
        localStorage.setItem(PREFIX + key, text)
        window.soakReport?.(text)
      })
    }
    messenger = m
    return m.role
  },
  /** Kills this page's own worker (a crash); the messenger is dropped, `connect` makes a new one. */
  terminateWorker() {
    worker?.terminate()
    worker = undefined
    messenger = undefined
    for (const reject of abandon) reject(new Error('worker terminated'))
    abandon.clear()
  },
  /** Sends `{ n }` to `to`; resolves with the message id once send() resolved. */
  async send(to: string, n: number): Promise<string> {
    const m = messenger
    if (m === undefined) throw new Error('not connected')
    let reject!: (error: Error) => void
    const abandoned = new Promise<never>((_, r) => (reject = r))
    abandon.add(reject)
    try {
      return (await Promise.race([m.send(to, { n }), abandoned])).id
    } finally {
      abandon.delete(reject)
    }
  },
  setOnline(online: boolean) {
    messenger?.setOnline(online)
  },
  /** Every handover recorded by the handlers of this origin's tabs. */
  handovers(): HandoverRecord[] {
    const records: HandoverRecord[] = []
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i)
      if (key?.startsWith(PREFIX)) records.push(JSON.parse(localStorage.getItem(key)!) as HandoverRecord)
    }
    return records
  },
  role: () => messenger?.role,
  connection: () => messenger?.connection,
  pending: () => messenger?.pending(),
}
