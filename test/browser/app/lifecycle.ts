/**
 * Harness functions for test/browser/client-lifecycle.spec.ts: `connect()`
 * with workers that fail, `ready()`, the work-offline switch from any tab,
 * and the order of a send's resolution and its status events.
 */
import { connect, type Messenger } from 'intersession/client'

let messenger: Messenger | undefined
/** What this page saw, in order: `resolved:<id>` when a send resolved, `status:<id>:<status>` for each status event. */
const order: string[] = []

function current(): Messenger {
  if (messenger === undefined) throw new Error('connect first')
  return messenger
}

/** How a promise ended, as plain data. */
async function outcome(promise: Promise<unknown>): Promise<{ ok: boolean; code?: string; name?: string; message?: string; ms: number }> {
  const started = performance.now()
  try {
    await promise
    return { ok: true, ms: performance.now() - started }
  } catch (error) {
    const e = error as { code?: string; name?: string; message?: string }
    return { ok: false, ...(e.code !== undefined && { code: e.code }), name: String(e.name), message: String(e.message), ms: performance.now() - started }
  }
}

export const lifecycle = {
  /** `connect()` with a worker whose script is not there (a 404, as a wrong bundler base gives). */
  connectMissingWorker: (peerId: string) =>
    outcome(connect({ peerId, transport: { kind: 'broadcast-channel' }, worker: new Worker('/no-such-worker.js', { type: 'module' }) })),
  /** `connect()` with a worker that loads but never answers. */
  connectSilentWorker: (peerId: string, workerTimeoutMs: number) =>
    outcome(
      connect({
        peerId,
        transport: { kind: 'broadcast-channel' },
        worker: new Worker(URL.createObjectURL(new Blob(['// nothing here'], { type: 'text/javascript' })), { type: 'module' }),
        workerTimeoutMs,
      }),
    ),
  /** Connects through a relay (or a BroadcastChannel network); resolves with how long `ready()` took after `connect()` resolved. */
  async connect(peerId: string, options: { relay?: string; network?: string; staleAfterMs?: number; heartbeatMs?: number; subscribe?: boolean }) {
    messenger = await connect({
      peerId,
      transport:
        options.relay === undefined
          ? { kind: 'broadcast-channel', network: options.network ?? 'lifecycle' }
          : { kind: 'websocket', url: options.relay, token: async () => `dev:${peerId}` },
      ...(options.staleAfterMs !== undefined && { staleAfterMs: options.staleAfterMs }),
      ...(options.heartbeatMs !== undefined && { heartbeatMs: options.heartbeatMs }),
    })
    messenger.on('status', (event) => void order.push(`status:${event.id}:${event.status}`))
    if (options.subscribe === true) messenger.onMessage(() => {})
    const connected = performance.now()
    await messenger.ready()
    return { role: messenger.role, readyAfterMs: performance.now() - connected }
  },
  role: () => current().role,
  connection: () => current().connection,
  setOnline: (online: boolean) => current().setOnline(online),
  /** Sends `count` messages in one turn; records when each resolved. */
  async sendAll(to: string, count: number): Promise<string[]> {
    const m = current()
    const receipts = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        m.send(to, `n${i}`).then((r) => {
          order.push(`resolved:${r.id}`)
          return r
        }),
      ),
    )
    return receipts.map((r) => r.id)
  },
  order: () => order,
  /**
   * `ready()` while no tab can lead (this page holds the identity's lock
   * itself): it waits; after `waitMs` the messenger closes and it rejects.
   */
  async readyWithoutLeader(peerId: string, waitMs: number) {
    let release = (): void => {}
    const held = new Promise<void>((resolve) => (release = resolve))
    await new Promise<void>((locked) => void navigator.locks.request(`intersession:${peerId}`, () => (locked(), held)))
    const m = await connect({ peerId, transport: { kind: 'broadcast-channel', network: 'lifecycle-no-leader' } })
    const ready = outcome(m.ready())
    const early = await Promise.race([ready.then(() => 'settled'), new Promise((resolve) => setTimeout(() => resolve('waiting'), waitMs))])
    await m.close()
    release()
    return { early, after: await ready }
  },
}
