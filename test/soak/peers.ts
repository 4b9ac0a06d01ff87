import type { Cdp } from '../helpers/cdp.js'
import type { CrashKind, Handover, Ledger, RoleChange } from './ledger.js'
import type { Rng } from './rng.js'
import { Tab } from './tab.js'

/** One identity: its tabs share one engine (one leads, the others follow). */
export interface PeerSpec {
  readonly id: string
  readonly tabs: number
  /** The engine runs in a worker the page made (it can be terminated); else the messenger's own (terminated on freeze). */
  readonly ownWorker: boolean
  /** The index of the one tab that subscribes (the tab opened first usually leads). */
  readonly subscriber: number
}

/** A tab of a peer. `ready` while it is connected and can take sends; `busy` while a fault works on it. */
export interface SoakTab {
  readonly tab: Tab
  readonly peer: SoakPeer
  /** The one tab of its peer that subscribes: every handover is counted once. */
  readonly primary: boolean
  ready: boolean
  busy: boolean
  /** The page load connected last (a reload makes a new one). */
  load: string | undefined
}

export interface SoakPeer {
  readonly spec: PeerSpec
  readonly tabs: SoakTab[]
  /** Set while an offline fault holds this identity's connection down. */
  offline: boolean
}

/** How the pages' engines run: short timings, so that takeovers and half-open detection happen within a soak. */
export interface PeerOptions {
  readonly heartbeatMs: number
  readonly staleAfterMs: number
  /** The receivers' `limits.processBatch`. */
  readonly processBatch: number
}

/** A handover as the page's handler recorded it. */
interface HandoverRecord {
  readonly type: 'handover'
  readonly from: string
  readonly to: string
  readonly n: number
  readonly id: string
  readonly seq: number
  readonly epoch: string
  readonly tab: string
  readonly load: string
  readonly role: string
  readonly key: string
  readonly t: number
}

/** A role the page's messenger took, as the page recorded it. */
interface RoleRecord {
  readonly type: 'role'
  readonly peer: string
  readonly tab: string
  readonly load: string
  readonly role: string
  readonly key: string
  readonly t: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The browser side of the soak: every peer's tabs, their connection through
 * the proxy, the faults that act on pages (reload, worker termination,
 * freeze, offline), and the handover reports, which go to the ledger.
 */
export class Peers {
  readonly list: SoakPeer[] = []
  /** Handovers and role changes known only from localStorage so far. */
  recovered = 0
  readonly #relayUrl: string
  readonly #ledger: Ledger
  readonly #options: PeerOptions
  readonly #log: string[] = []

  private constructor(relayUrl: string, ledger: Ledger, options: PeerOptions) {
    this.#relayUrl = relayUrl
    this.#ledger = ledger
    this.#options = options
  }

  /** Opens every tab of every peer at `pageUrl` and connects them to `relayUrl`. */
  static async open(cdp: Cdp, pageUrl: string, relayUrl: string, specs: readonly PeerSpec[], ledger: Ledger, options: PeerOptions): Promise<Peers> {
    const peers = new Peers(relayUrl, ledger, options)
    const bySession = new Map<string, SoakTab>()
    cdp.on('Runtime.bindingCalled', (params, sessionId) => {
      const tab = bySession.get(sessionId ?? '')
      if (tab !== undefined && params.name === 'soakReport') peers.#onReport(tab, String(params.payload))
    })
    const workers = new Map<string, string>()
    const nameOf = (sessionId: string | undefined): string => bySession.get(sessionId ?? '')?.tab.name ?? workers.get(sessionId ?? '') ?? '?'
    cdp.on('Runtime.exceptionThrown', (params, sessionId) => {
      const d = params.exceptionDetails as { text: string; exception?: { description?: string } }
      peers.note(`[${nameOf(sessionId)}] exception: ${(d.exception?.description ?? d.text).slice(0, 300)}`)
    })
    cdp.on('Target.attachedToTarget', (params, parent) => {
      if (!bySession.has(parent ?? '')) return
      const sessionId = params.sessionId as string
      const name = `${nameOf(parent)}/${(params.targetInfo as { type: string }).type}`
      workers.set(sessionId, name)
      peers.note(`${name} up (${[...workers.values()].filter((w) => w === name).length} alive)`)
      void cdp.send('Runtime.enable', {}, sessionId).catch(() => {})
    })
    cdp.on('Target.detachedFromTarget', (params) => {
      const name = workers.get(params.sessionId as string)
      if (name === undefined) return
      workers.delete(params.sessionId as string)
      peers.note(`${name} down`)
    })
    for (const spec of specs) {
      const peer: SoakPeer = { spec, tabs: [], offline: false }
      peers.list.push(peer)
      const tabs = await Promise.all(Array.from({ length: spec.tabs }, (_, i) => Tab.open(cdp, `${spec.id}/${i}`, pageUrl)))
      tabs.forEach((tab, i) => {
        const soakTab: SoakTab = { tab, peer, primary: i === spec.subscriber, ready: false, busy: false, load: undefined }
        bySession.set(tab.sessionId, soakTab)
        peer.tabs.push(soakTab)
      })
    }
    // In tab order: the first tab of each peer leads.
    for (const peer of peers.list) for (const t of peer.tabs) await peers.#connect(t)
    return peers
  }

  /** Appends a line to the diagnostic log (the last lines are printed on failure). */
  note(line: string): void {
    this.#log.push(`${new Date().toISOString().slice(11, 23)} ${line}`)
    if (this.#log.length > 5000) this.#log.shift()
  }

  /** The diagnostic log. */
  log(): readonly string[] {
    return this.#log
  }

  /** A random connected tab of `peerId`, or none. */
  sender(peerId: string, rng: Rng): SoakTab | undefined {
    const tabs = this.#peer(peerId).tabs.filter((t) => t.ready)
    return tabs.length === 0 ? undefined : rng.pick(tabs)
  }

  /** Tabs no fault is working on. */
  idleTabs(filter: (t: SoakTab) => boolean = () => true): SoakTab[] {
    return this.list.flatMap((p) => p.tabs).filter((t) => !t.busy && t.ready && filter(t))
  }

  /** Reloads the page: its handlers and, if it leads, its engine die mid-work. */
  async reload(t: SoakTab): Promise<void> {
    await this.#fault(
      t,
      'reload',
      () => t.tab.navigate(),
      async () => {
        await t.tab.ready()
        await this.#connect(t)
      },
    )
  }

  /** Terminates the page's own worker (its engine dies), waits `downMs`, and connects a new one. */
  async terminateWorker(t: SoakTab, downMs: number): Promise<void> {
    await this.#fault(
      t,
      'terminate-worker',
      () => t.tab.evaluate('window.harness.soak.terminateWorker()'),
      async () => {
        await sleep(downMs)
        await this.#connect(t)
      },
    )
  }

  /**
   * Freezes the tab for `ms` (its worker is terminated on `freeze`; another
   * tab may take over), then resumes it (a failure revives it, which resumes it too).
   */
  async freeze(t: SoakTab, ms: number): Promise<void> {
    await this.#fault(
      t,
      'freeze',
      () => t.tab.lifecycle('frozen'),
      async () => {
        await sleep(ms)
        await t.tab.lifecycle('active')
        t.ready = true
      },
    )
  }

  /** The app's offline switch on every tab of `peer` for `ms`. */
  async offline(peer: SoakPeer, ms: number): Promise<void> {
    peer.offline = true
    await this.#setOnline(peer, false)
    await sleep(ms)
    peer.offline = false
    await this.#setOnline(peer, true)
  }

  /** The role of each tab of `peer` (`undefined` where it could not be read). */
  async roles(peer: SoakPeer): Promise<Array<string | undefined>> {
    return Promise.all(peer.tabs.map((t) => (t.ready ? t.tab.evaluate<string | undefined>('window.harness.soak.role()', 5000).catch(() => undefined) : undefined)))
  }

  /**
   * Adds the handovers and role changes the pages recorded in localStorage
   * but whose report never reached Node (the page navigated away right
   * after); returns how many.
   */
  async recoverReports(): Promise<number> {
    const t = this.list.flatMap((p) => p.tabs).find((x) => x.ready)
    if (t === undefined) return 0
    const records = await t.tab.evaluate<Array<HandoverRecord | RoleRecord>>('window.harness.soak.records()', 30_000)
    let added = 0
    for (const r of records) if (this.#record(r)) added++
    this.recovered += added
    return added
  }

  /** One line per tab: readiness, role, connection, pending counts (for the log when something is stuck). */
  async describe(): Promise<string[]> {
    const probe = `(async () => { const s = window.harness.soak; return JSON.stringify({ role: s.role(), connection: s.connection(), pending: await Promise.race([s.pending(), new Promise((r) => setTimeout(() => r('timeout'), 3000))]) }) })()`
    return Promise.all(
      this.list.flatMap((p) => p.tabs).map(async (t) => `${t.tab.name} ready=${t.ready} busy=${t.busy} ${await t.tab.evaluate<string>(probe, 8000).catch((e: unknown) => String(e).split('\n')[0])}`),
    )
  }

  /** Reconnects every tab that is not ready (a fault that failed half-way). */
  async reviveAll(): Promise<void> {
    for (const peer of this.list) {
      for (const t of peer.tabs) {
        if (!t.ready) await this.#revive(t)
      }
    }
  }

  /** Outbound messages still queued for `peer`, by its engine's count. */
  async pendingOutbound(peer: SoakPeer): Promise<number> {
    const t = peer.tabs.find((x) => x.ready)
    if (t === undefined) return Number.NaN
    return t.tab.evaluate<{ outbound: number }>('window.harness.soak.pending()', 10_000).then(
      (p) => p.outbound,
      () => Number.NaN,
    )
  }

  /** The rows of `peer`'s outbox, read straight from IndexedDB. */
  async outboxRows(peer: SoakPeer): Promise<number> {
    const t = peer.tabs[0]!
    const rows = await t.tab.evaluate<unknown[]>(`window.harness.outboxRows(${JSON.stringify(peer.spec.id)})`, 10_000)
    return rows.length
  }

  #peer(id: string): SoakPeer {
    const peer = this.list.find((p) => p.spec.id === id)
    if (peer === undefined) throw new RangeError(`no peer ${id}`)
    return peer
  }

  /** Runs a fault on `t`: `strike` kills its page or worker, `recover` brings it back. */
  async #fault(t: SoakTab, kind: CrashKind, strike: () => Promise<unknown>, recover: () => Promise<void>): Promise<void> {
    t.busy = true
    try {
      await this.#crash(t, kind, strike)
      await recover()
    } catch (error) {
      this.note(`${kind} ${t.tab.name} failed: ${String(error)}`)
      await this.#revive(t).catch((e: unknown) => this.note(`could not revive ${t.tab.name}: ${String(e)}`))
    } finally {
      t.busy = false
    }
  }

  /** Reads its peer's roles, then runs `strike` on `t`; the crash goes to the ledger with whether `t` led and when it took effect. */
  async #crash(t: SoakTab, kind: CrashKind, strike: () => Promise<unknown>): Promise<void> {
    const roles = await this.roles(t.peer)
    t.ready = false
    // A tab that did not say `follower` may be running the engine.
    const led = roles[t.peer.tabs.indexOf(t)] !== 'follower'
    const crash = this.#ledger.crash({ peer: t.peer.spec.id, tab: t.tab.name, kind, led, roles, load: t.load, at: Date.now() })
    this.note(`${kind} ${t.tab.name} (load ${t.load ?? '?'}, roles ${roles.map((r) => r ?? '?').join('/')})`)
    try {
      await strike()
    } finally {
      crash.until = Date.now()
    }
  }

  async #revive(t: SoakTab): Promise<void> {
    this.note(`reviving ${t.tab.name}`)
    await t.tab.lifecycle('active').catch(() => {})
    await this.#crash(t, 'reload', () => t.tab.navigate())
    await t.tab.ready()
    await this.#connect(t)
  }

  async #connect(t: SoakTab): Promise<void> {
    const options = {
      relay: this.#relayUrl,
      ownWorker: t.peer.spec.ownWorker,
      subscribe: t.primary,
      heartbeatMs: this.#options.heartbeatMs,
      staleAfterMs: this.#options.staleAfterMs,
      processBatch: this.#options.processBatch,
      tab: t.tab.name,
    }
    const { load } = await t.tab.evaluate<{ load: string }>(`window.harness.soak.connect(${JSON.stringify(t.peer.spec.id)}, ${JSON.stringify(options)})`, 30_000)
    t.load = load
    if (t.peer.offline) await t.tab.evaluate('window.harness.soak.setOnline(false)')
    t.ready = true
  }

  async #setOnline(peer: SoakPeer, online: boolean): Promise<void> {
    this.note(`${peer.spec.id} ${online ? 'online' : 'offline'}`)
    // Every tab, ready or not: a frozen tab runs it when it resumes, and a tab that missed `true` would stay offline for good.
    await Promise.all(peer.tabs.map((t) => t.tab.evaluate(`window.harness.soak.setOnline(${online})`).catch(() => {})))
  }

  #onReport(t: SoakTab, payload: string): void {
    const r = JSON.parse(payload) as HandoverRecord | RoleRecord
    if (this.#record(r) && r.tab !== t.tab.name) this.note(`report of ${r.tab} from tab ${t.tab.name}`)
  }

  /** Adds a page's record to the ledger unless it is there already; true if it was new. */
  #record(r: HandoverRecord | RoleRecord): boolean {
    if (r.type === 'handover') return this.#ledger.handover(toHandover(r))
    const added = this.#ledger.role(toRoleChange(r))
    if (added) this.note(`${r.tab} ${r.role} (load ${r.load}, page time ${new Date(r.t).toISOString().slice(11, 23)})`)
    return added
  }
}

function toHandover(r: HandoverRecord): Handover {
  return { from: r.from, to: r.to, n: r.n, id: r.id, seq: r.seq, epoch: r.epoch, tab: r.tab, load: r.load, role: r.role, key: r.key, at: r.t }
}

function toRoleChange(r: RoleRecord): RoleChange {
  return { peer: r.peer, tab: r.tab, load: r.load, role: r.role, key: r.key, at: r.t }
}
