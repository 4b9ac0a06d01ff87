import { nanoid } from 'nanoid'
import type { Ledger } from './ledger.js'
import type { Peers } from './peers.js'
import type { Rng } from './rng.js'

/** How the page's `send()` settled (test/browser/app/soak.ts). */
type SendResult = { ok: true; id: string; seq: number } | { ok: false; error: string }

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
 * Node names every message (`<run>-<from>-<to>-<n>`), so that its id is known
 * whatever becomes of the send.
 */
export class Traffic {
  readonly #peers: Peers
  readonly #ledger: Ledger
  readonly #rng: Rng
  readonly #rate: TrafficRate
  /** Unique per run: ids never meet those of another run. */
  readonly #run = nanoid(8)
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
      const record = this.#ledger.attempt(from, to, n, `${this.#run}-${from}-${to}-${n}`)
      n++
      try {
        const result = await t.tab.evaluate<SendResult>(`window.harness.soak.send(${JSON.stringify(to)}, ${record.n}, ${JSON.stringify(record.id)})`, SEND_TIMEOUT_MS)
        if (result.ok) {
          record.outcome = 'resolved'
          record.seq = result.seq
          record.receiptId = result.id
        } else {
          record.outcome = 'rejected'
          record.error = result.error
          this.#peers.note(`send ${record.id} via ${t.tab.name} rejected: ${result.error.slice(0, 200)}`)
        }
      } catch (error) {
        record.outcome = 'unknown'
        record.error = String(error).split('\n')[0]!.slice(0, 200)
        this.#peers.note(`send ${record.id} via ${t.tab.name}: outcome unknown: ${record.error}`)
      }
    }
  }
}
