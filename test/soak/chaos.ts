import type { FaultProxy } from './fault-proxy.js'
import type { Peers, SoakTab } from './peers.js'
import type { RelayControl } from './relay-control.js'
import type { Rng } from './rng.js'

/** Every fault the soak injects. */
export const FAULT_KINDS = ['cut', 'stall', 'delay', 'reload', 'terminate-worker', 'freeze', 'offline', 'relay-kill'] as const

export type FaultKind = (typeof FAULT_KINDS)[number]

const WEIGHTS: Readonly<Record<FaultKind, number>> = {
  cut: 3,
  stall: 2,
  delay: 2,
  reload: 2,
  'terminate-worker': 1.5,
  freeze: 1.5,
  offline: 1,
  'relay-kill': 0.6,
}

/** The pause between two faults: `minMs..maxMs`. */
export interface ChaosPace {
  readonly minMs: number
  readonly maxMs: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Injects one random fault after another (they overlap: a fault that lasts,
 * like a freeze, runs in the background). A fault with no target at the time
 * (every tab busy, the relay already down) is skipped and not counted.
 */
export class Chaos {
  readonly counts: Record<FaultKind, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
  readonly #rng: Rng
  readonly #proxy: FaultProxy
  readonly #peers: Peers
  readonly #relay: RelayControl
  readonly #pace: ChaosPace
  readonly #tasks = new Set<Promise<void>>()
  #loop: Promise<void> | undefined
  #stopped = false
  /** Kinds not injected yet: they come first (in a seeded order), so that even a short run has every kind. */
  #due: FaultKind[]
  #relayDown = false

  constructor(rng: Rng, proxy: FaultProxy, peers: Peers, relay: RelayControl, pace: ChaosPace) {
    this.#rng = rng
    this.#proxy = proxy
    this.#peers = peers
    this.#relay = relay
    this.#pace = pace
    this.#due = shuffle([...FAULT_KINDS], rng)
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  /** Injects nothing more; resolves once every fault in progress ended (pages resumed, relay back). */
  async stop(): Promise<void> {
    this.#stopped = true
    await this.#loop
    while (this.#tasks.size > 0) await Promise.all(this.#tasks)
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      await sleep(this.#rng.int(this.#pace.minMs, this.#pace.maxMs))
      if (this.#stopped) return
      const kind = this.#due.shift() ?? this.#rng.weighted(WEIGHTS)
      const task = this.#inject(kind)
      if (task === undefined) {
        if (this.counts[kind] === 0) this.#due.push(kind)
        continue
      }
      this.counts[kind]++
      const tracked = task.catch((error: unknown) => this.#peers.note(`${kind} failed: ${String(error)}`)).finally(() => this.#tasks.delete(tracked))
      this.#tasks.add(tracked)
    }
  }

  /** Starts a fault of `kind`; `undefined` if it has no target now. */
  #inject(kind: FaultKind): Promise<void> | undefined {
    const rng = this.#rng
    switch (kind) {
      case 'cut':
        return this.#proxy.cut() ? Promise.resolve() : undefined
      case 'stall':
        return this.#proxy.stall(rng.int(500, 6000)) ? Promise.resolve() : undefined
      case 'delay':
        return this.#proxy.delay(rng.int(1000, 5000), rng.int(10, 400)) ? Promise.resolve() : undefined
      case 'reload': {
        const t = this.#pick(() => true)
        return t && this.#peers.reload(t)
      }
      case 'terminate-worker': {
        const t = this.#pick((x) => x.peer.spec.ownWorker)
        return t && this.#peers.terminateWorker(t, rng.int(100, 2000))
      }
      case 'freeze': {
        const t = this.#pick((x) => !x.peer.spec.ownWorker)
        return t && this.#freezeLeader(t, rng.int(1000, 6000))
      }
      case 'offline': {
        const peers = this.#peers.list.filter((p) => !p.offline)
        return peers.length === 0 ? undefined : this.#peers.offline(rng.pick(peers), rng.int(1000, 6000))
      }
      case 'relay-kill': {
        if (this.#relayDown) return undefined
        this.#relayDown = true
        this.#peers.note('relay SIGKILL')
        return this.#relay.crash(rng.int(200, 3000)).finally(() => {
          this.#relayDown = false
          this.#peers.note('relay restarted')
        })
      }
    }
  }

  #pick(filter: (t: SoakTab) => boolean): SoakTab | undefined {
    const tabs = this.#peers.idleTabs(filter)
    return tabs.length === 0 ? undefined : this.#rng.pick(tabs)
  }

  /** Freezes the leader tab of `t`'s peer if it is idle, else `t`. */
  async #freezeLeader(t: SoakTab, ms: number): Promise<void> {
    t.busy = true // reserved while the roles are read
    const roles = await this.#peers.roles(t.peer)
    t.busy = false
    const leader = t.peer.tabs.find((x, i) => roles[i] === 'leader' && !x.busy && x.ready)
    await this.#peers.freeze(leader ?? t, ms)
  }
}

/** Fisher-Yates with `rng`. */
function shuffle<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i)
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}
