/**
 * A page for test/browser/tab-fanout.spec.ts, exposed as `window.tabs`: one
 * tab of an identity whose message handler the test subscribes, unsubscribes
 * and holds (the handler then waits, not returning, until released), and
 * whose every handler call and return it records.
 */
import { connect, type Messenger } from 'intersession/client'
import type { Message } from 'intersession'

/** One handler call: the message, and whether the handler has returned. */
interface Call {
  readonly from: string
  readonly seq: number
  readonly id: string
  readonly contents: unknown
  returned: boolean
}

let messenger: Messenger | undefined
let unsubscribe: (() => void) | undefined
let held: { readonly until: Promise<void>; release(): void } | undefined
const calls: Call[] = []
const errors: Array<{ code: string; message: string }> = []

const connected = (): Messenger => {
  if (messenger === undefined) throw new Error('connect() first')
  return messenger
}

const tabs = {
  async connect(peerId: string, options: { network: string; staleAfterMs: number; heartbeatMs: number }) {
    messenger = await connect({
      peerId,
      transport: { kind: 'broadcast-channel', network: options.network },
      staleAfterMs: options.staleAfterMs,
      heartbeatMs: options.heartbeatMs,
    })
    messenger.on('error', (e) => void errors.push({ code: e.code, message: e.message }))
  },
  role: () => messenger?.role,
  /** Subscribes this tab's handler; it records each call, waits while held, and records its return. */
  subscribe() {
    if (unsubscribe !== undefined) return
    unsubscribe = connected().onMessage(async (m: Message) => {
      const call: Call = { from: m.from, seq: m.seq, id: m.id, contents: m.contents, returned: false }
      calls.push(call)
      if (held !== undefined) await held.until
      call.returned = true
    })
  },
  unsubscribe() {
    unsubscribe?.()
    unsubscribe = undefined
  },
  /** From now on the handler does not return until `release()`. */
  hold() {
    let release = () => {}
    const until = new Promise<void>((resolve) => (release = resolve))
    held = { until, release }
  },
  release() {
    held?.release()
    held = undefined
  },
  /** The contents of every handler call, in order. */
  calls: () => calls.map((c) => c.contents),
  /** The contents of every call whose handler returned, in call order. */
  returned: () => calls.filter((c) => c.returned).map((c) => c.contents),
  errors: () => errors,
  /** Sends `${prefix}${i}` for i in from..from+count-1, one after another. */
  async sendMany(to: string, prefix: string, from: number, count: number) {
    const ids: string[] = []
    for (let i = from; i < from + count; i++) ids.push((await connected().send(to, `${prefix}${i}`)).id)
    return ids
  },
  pending: () => connected().pending(),
  status: (id: string) => connected().status(id),
}

declare global {
  interface Window {
    tabs: typeof tabs
  }
}
window.tabs = tabs
document.title = 'ready'
