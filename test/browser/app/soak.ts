/**
 * Soak harness functions (test/soak): `window.harness.soak`. A peer on the
 * relay whose handler reports every handover, and whose messenger reports
 * every role it takes, to Node through the CDP binding `soakReport` (and
 * keeps them in localStorage); it sends what Node asks, with the id Node chose.
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
  /** The receiver's `limits.processBatch` (the soak's checker relies on its value). */
  processBatch: number
  /** This tab's name in the soak, written into every handover its handler records. */
  tab: string
}

declare global {
  interface Window {
    /** Installed by the soak over CDP (`Runtime.addBinding`). */
    soakReport?: (payload: string) => void
  }
}

/** A handover as the handler records it; `key` is unique, `t` is when the handler ran (ms since the epoch). */
interface HandoverRecord {
  type: 'handover'
  to: string
  from: string
  n: number
  id: string
  seq: number
  epoch: string
  tab: string
  load: string
  /** This tab's role when its handler ran (for the log). */
  role: string
  key: string
  t: number
}

/** This tab's messenger took `role` at `t` (a `leader` runs its identity's engine from then on). */
interface RoleRecord {
  type: 'role'
  peer: string
  tab: string
  load: string
  role: string
  key: string
  t: number
}

/** How `send()` settled: its receipt, or the error it rejected with. */
type SendResult = { ok: true; id: string; seq: number } | { ok: false; error: string }

const PREFIX = 'soak:r:'
/** This page load: a reload is a new one. */
const load = Math.random().toString(36).slice(2, 10)
let reported = 0
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
      limits: { processBatch: options.processBatch },
      heartbeatMs: options.heartbeatMs,
      staleAfterMs: options.staleAfterMs,
      ...(worker !== undefined && { worker }),
    })
    // The role it already took while connecting, then every change: no engine hands anything to this page's handlers before this.
    const roleReport = (role: string): void => report({ type: 'role', peer: peerId, tab: options.tab, load, role, key: nextKey(), t: now() })
    roleReport(m.role)
    m.on('role', roleReport)
    if (options.subscribe) {
      m.onMessage((message) => {
        const { n } = message.contents as { n: number }
        report({
          type: 'handover',
          to: peerId,
          from: message.from,
          n,
          id: message.id,
          seq: message.seq,
          epoch: message.epoch,
          tab: options.tab,
          load,
          role: m.role,
          key: nextKey(),
          t: now(),
        })
      })
    }
    messenger = m
    return { role: m.role, load }
  },
  /** Kills this page's own worker (a crash); the messenger is dropped, `connect` makes a new one. */
  terminateWorker() {
    worker?.terminate()
    worker = undefined
    messenger = undefined
    for (const reject of abandon) reject(new Error('worker terminated'))
    abandon.clear()
  },
  /**
   * Sends `{ n }` to `to` with the message id `id` (Node's: it knows every
   * send's id whatever happens to the page). Resolves with the receipt, or
   * with the error if send() rejected; throws if the worker was terminated
   * first (the outcome is unknown).
   */
  async send(to: string, n: number, id: string): Promise<SendResult> {
    const m = messenger
    if (m === undefined) return { ok: false, error: 'not connected: send() was not called' }
    let reject!: (error: Error) => void
    const abandoned = new Promise<never>((_, r) => (reject = r))
    abandon.add(reject)
    // The harness's own id, the same kind of call the page client makes for a plain send(to, contents).
    const sent = m.send(to, { n }, { id }).then(
      (receipt): SendResult => ({ ok: true, id: receipt.id, seq: receipt.seq }),
      (error: unknown): SendResult => ({
        ok: false,
        error: error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error),
      }),
    )
    try {
      return await Promise.race([sent, abandoned])
    } finally {
      abandon.delete(reject)
    }
  },
  setOnline(online: boolean) {
    messenger?.setOnline(online)
  },
  /** Every handover and role change recorded by this origin's tabs. */
  records(): Array<HandoverRecord | RoleRecord> {
    const records: Array<HandoverRecord | RoleRecord> = []
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i)
      if (key?.startsWith(PREFIX)) records.push(JSON.parse(localStorage.getItem(key)!) as HandoverRecord | RoleRecord)
    }
    return records
  },
  role: () => messenger?.role,
  connection: () => messenger?.connection,
  pending: () => messenger?.pending(),
}

const nextKey = (): string => `${load}:${++reported}`
const now = (): number => performance.timeOrigin + performance.now()

// Binding calls made just before a navigation can be lost; localStorage survives it.
function report(record: HandoverRecord | RoleRecord): void {
  const text = JSON.stringify(record)
  localStorage.setItem(PREFIX + record.key, text)
  window.soakReport?.(text)
}
