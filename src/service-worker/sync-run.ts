import type { Message, PendingCounts } from '../core/api.js'
import { IlmError } from '../core/errors.js'
import { identityLock } from '../protocol/tabs.js'
import type { SyncOutcome, SyncReport, SyncSettings } from './options.js'

/** An engine opened for one sync, as {@link runSync} drives it. */
export interface SyncSession {
  /** Resolves once logged in to the relay; rejects if the relay refused the identity for good. */
  online(): Promise<void>
  /** Resolves once every queued message is acknowledged or stored by the relay's mailbox. */
  flushed(): Promise<void>
  pending(): Promise<PendingCounts>
  /** The latest messages this session stored in the inbox (bounded), oldest first. */
  arrivals(): readonly Message[]
  /** Closes the engine cleanly and stops watching for tabs. */
  close(): Promise<void>
}

/** What a sync runs on: the Web Locks API and a way to open the identity's engine. */
export interface SyncEnv {
  readonly locks: Pick<LockManager, 'request'>
  /**
   * Opens the engine of `peerId` (the caller holds its lock); `tabOpened` is
   * called when a tab of the identity shows up. Undefined when the identity
   * has no store here (nothing to do).
   */
  open(peerId: string, tabOpened: () => void): Promise<SyncSession | undefined>
}

/** How often the store's counts are read while waiting for the relay to go quiet. */
const QUIET_POLL_MS = 100

/**
 * One background sync of `peerId`: takes the identity's Web Lock only if it is
 * free (a tab that holds it is delivering: `busy`), opens the engine, waits
 * until the outbox is flushed and nothing arrived for `quietMs`, and closes
 * the engine before the lock goes back. A tab that opens meanwhile (it queues
 * on the lock) makes the engine here close at once, so the tab's takes over:
 * one engine at a time, always. Ends within `budgetMs` (plus the close).
 */
export async function runSync(peerId: string, settings: SyncSettings, env: SyncEnv): Promise<SyncReport> {
  const started = Date.now()
  let stolen: (() => void) | undefined
  const run = new Promise<Held>((resolve, reject) => {
    env.locks
      .request(identityLock(peerId), { ifAvailable: true }, async (lock) => {
        if (lock === null) {
          resolve({ report: { peerId, outcome: 'busy', arrived: 0 }, messages: [] })
          return
        }
        const lost = new Promise<'handed-over'>((took) => (stolen = () => took('handed-over')))
        await hold(peerId, settings, env, started, lost).then(resolve, reject)
      })
      .catch((error: unknown) => {
        // A tab took the lock by force (it missed the heartbeats): stop now; the store fences this engine anyway.
        if (error instanceof DOMException && error.name === 'AbortError' && stolen !== undefined) stolen()
        else reject(error instanceof Error ? error : new IlmError('INTERNAL', 'the Web Lock request failed', { cause: error }))
      })
  })
  const { report, messages } = await run
  await settings.onSync?.(report)
  if (report.arrived > 0 && (report.outcome === 'flushed' || report.outcome === 'timeout')) {
    await settings.onMessageWhileClosed?.({ peerId, arrived: report.arrived, waiting: report.pending?.inbound ?? report.arrived, messages })
  }
  return report
}

/** What a sync that held the lock did, and the messages it stored (for `onMessageWhileClosed`). */
interface Held {
  readonly report: SyncReport
  readonly messages: readonly Message[]
}

async function hold(peerId: string, settings: SyncSettings, env: SyncEnv, started: number, lost: Promise<'handed-over'>): Promise<Held> {
  let tabOpened: (() => void) | undefined
  const tab = new Promise<'handed-over'>((opened) => (tabOpened = () => opened('handed-over')))
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<'timeout'>((expired) => (timer = setTimeout(() => expired('timeout'), Math.max(0, started + settings.budgetMs - Date.now()))))
  const opening = env.open(peerId, () => tabOpened?.())
  const session = await Promise.race([opening, timeout, tab, lost])
  try {
    if (typeof session === 'string') {
      // Given up while opening: the engine still closes before the lock goes back.
      await (await opening.catch(() => undefined))?.close()
      return { report: { peerId, outcome: session, arrived: 0 }, messages: [] }
    }
    if (session === undefined) return { report: { peerId, outcome: 'flushed', arrived: 0 }, messages: [] }
    let before: PendingCounts
    let outcome: SyncOutcome
    try {
      before = await session.pending()
      const working = work(session, settings.quietMs)
      working.catch(() => {}) // once the race is decided, the closed engine makes it reject
      outcome = await Promise.race([working, timeout, tab, lost])
    } catch (error) {
      await session.close()
      throw error
    }
    const pending = await session.pending().catch(() => undefined)
    await session.close()
    const arrived = pending === undefined ? 0 : Math.max(0, pending.inbound - before.inbound)
    const report = pending === undefined ? { peerId, outcome, arrived } : { peerId, outcome, arrived, pending }
    return { report, messages: session.arrivals() }
  } finally {
    clearTimeout(timer)
  }
}

/** Logged in, the outbox flushed, then nothing new for `quietMs`. */
async function work(session: SyncSession, quietMs: number): Promise<'flushed'> {
  await session.online()
  await session.flushed()
  let last = await session.pending()
  let quietSince = Date.now()
  while (Date.now() - quietSince < quietMs) {
    await new Promise((wait) => setTimeout(wait, Math.min(QUIET_POLL_MS, quietMs)))
    const now = await session.pending()
    if (now.inbound !== last.inbound || now.outbound !== last.outbound) {
      last = now
      quietSince = Date.now()
    }
  }
  await session.flushed()
  return 'flushed'
}
