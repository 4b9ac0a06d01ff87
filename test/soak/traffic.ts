import type { Ledger } from './ledger.js'
import type { Peers } from './peers.js'
import type { Rng } from './rng.js'

/** How often each stream sends: a random pause in `minMs..maxMs` before each message. */
export interface TrafficRate {
  readonly minMs: number
  readonly maxMs: number
}

// A send waits for its page; a frozen page answers when it resumes.
const SEND_TIMEOUT_MS = 60_000

/**
 * Every peer sends to every other peer, one message at a time per stream
 * (the next send of a stream starts once the previous one settled, so a
 * stream's order is its running number `n`), through a random connected tab.
 */
export class Traffic {
  readonly #peers: Peers
  readonly #ledger: Ledger
  readonly #rng: Rng
  readonly #rate: TrafficRate
  #loops: Array<Promise<void>> = []
  #stopped = false

  constructor(peers: Peers, ledger: Ledger, rng: Rng, rate: TrafficRate) {
    this.#peers = peers
    this.#ledger = ledger
    this.#rng = rng
    this.#rate = rate
  }

  start(): void {
    const ids = this.#peers.list.map((p) => p.spec.id)
    for (const from of ids) for (const to of ids) if (from !== to) this.#loops.push(this.#stream(from, to, this.#rng.fork()))
  }

  /** Stops sending; resolves once every stream's last send settled. */
  async stop(): Promise<void> {
    this.#stopped = true
    await Promise.all(this.#loops)
  }

  async #stream(from: string, to: string, rng: Rng): Promise<void> {
    for (let n = 0; !this.#stopped; ) {
      await new Promise((resolve) => setTimeout(resolve, rng.int(this.#rate.minMs, this.#rate.maxMs)))
      const t = this.#peers.sender(from, rng)
      if (t === undefined || this.#stopped) continue
      const record = this.#ledger.attempt(from, to, n)
      n++
      try {
        record.id = await t.tab.evaluate<string>(`window.harness.soak.send(${JSON.stringify(to)}, ${record.n})`, SEND_TIMEOUT_MS)
        record.outcome = 'resolved'
      } catch (error) {
        record.outcome = 'unknown'
        this.#peers.note(`send ${from}>${to} n=${record.n} via ${t.tab.name}: ${String(error).split('\n')[0]!.slice(0, 200)}`)
      }
    }
  }
}
