/** One message handed to the receiver's handler, as its page reported it. */
export interface Handover {
  readonly from: string
  readonly to: string
  /** The sender's running number in this stream (the contents). */
  readonly n: number
  readonly id: string
  readonly seq: number
  /** The tab whose handler reported it (`storage` if only its record in localStorage told). */
  readonly tab: string
  /** Unique per handover: page load and counter. */
  readonly key: string
  /** When the handler ran (ms since the epoch; pages and Node share the clock). */
  readonly at: number
}

/** One send the harness made: `resolved` once `send()` resolved, `unknown` if the page or worker died first. */
export interface SendRecord {
  readonly from: string
  readonly to: string
  readonly n: number
  id: string | undefined
  outcome: 'pending' | 'resolved' | 'unknown'
}

/** A page reload, worker termination or freeze of a tab of `peer`, when Node ordered it. */
export interface Kill {
  readonly peer: string
  readonly kind: string
  readonly at: number
}

/** The key of the stream from `from` to `to`. */
export const streamKey = (from: string, to: string): string => `${from}>${to}`

/** Everything the soak saw: sends and their outcome, handovers in arrival order, kills. */
export class Ledger {
  readonly sends = new Map<string, SendRecord[]>()
  readonly handovers = new Map<string, Handover[]>()
  readonly kills: Kill[] = []
  readonly #keys = new Set<string>()

  /** Records a send about to be made; the caller settles its outcome. */
  attempt(from: string, to: string, n: number): SendRecord {
    const record: SendRecord = { from, to, n, id: undefined, outcome: 'pending' }
    this.#list(this.sends, streamKey(from, to)).push(record)
    return record
  }

  /** Records a handover once (it may be reported twice: by the binding and from localStorage); keeps each stream in handler order. */
  handover(handover: Handover): void {
    if (this.#keys.has(handover.key)) return
    this.#keys.add(handover.key)
    const list = this.#list(this.handovers, streamKey(handover.from, handover.to))
    let i = list.length
    while (i > 0 && list[i - 1]!.at > handover.at) i--
    list.splice(i, 0, handover)
  }

  kill(peer: string, kind: string): void {
    this.kills.push({ peer, kind, at: Date.now() })
  }

  /** Sends whose `send()` resolved, in all streams. */
  resolvedCount(): number {
    let count = 0
    for (const list of this.sends.values()) for (const s of list) if (s.outcome === 'resolved') count++
    return count
  }

  /** Resolved sends not handed over yet. */
  undelivered(): SendRecord[] {
    const missing: SendRecord[] = []
    for (const [key, list] of this.sends) {
      const got = new Set((this.handovers.get(key) ?? []).map((h) => h.n))
      for (const s of list) if (s.outcome === 'resolved' && !got.has(s.n)) missing.push(s)
    }
    return missing
  }

  #list<T>(map: Map<string, T[]>, key: string): T[] {
    let list = map.get(key)
    if (list === undefined) map.set(key, (list = []))
    return list
  }
}
