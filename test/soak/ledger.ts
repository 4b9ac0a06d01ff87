/** One message handed to the receiver's handler, as its page reported it. */
export interface Handover {
  readonly from: string
  readonly to: string
  /** The sender's running number in this stream (the contents). */
  readonly n: number
  readonly id: string
  readonly seq: number
  /** The sender's epoch, as the message carried it. */
  readonly epoch: string
  /** The tab whose handler ran. */
  readonly tab: string
  /** The page load (document) of that tab in which the handler ran. */
  readonly load: string
  /** That tab's role when its handler ran, as its page knew it (for the log). */
  readonly role: string
  /** Unique per handover: page load and counter. */
  readonly key: string
  /** When the handler ran (ms since the epoch; pages and Node share the clock). */
  readonly at: number
}

/**
 * How a send ended: `resolved` (send() fulfilled), `rejected` (send() rejected
 * with an error: the message must never be delivered), `unknown` (the page or
 * its worker died, or the call timed out, before send() settled).
 */
export type Outcome = 'pending' | 'resolved' | 'rejected' | 'unknown'

/** One send the harness made, with the id Node gave it. */
export interface SendRecord {
  readonly from: string
  readonly to: string
  readonly n: number
  readonly id: string
  outcome: Outcome
  /** From the receipt of a resolved send. */
  seq?: number
  /** The id the receipt named (must be `id`). */
  receiptId?: string
  /** Why it rejected or why its outcome is unknown. */
  error?: string
}

/** What a fault did to a receiving context. */
export type CrashKind = 'reload' | 'terminate-worker' | 'freeze'

/**
 * A fault that killed a tab's page or its worker: the handlers that ran in
 * that page load lose their unsent results, and if the tab led, its engine
 * dies with what it had handed over but not marked processed.
 */
export interface Crash {
  readonly peer: string
  readonly tab: string
  readonly kind: CrashKind
  /** The tab ran its peer's engine (by the roles read just before the fault; a tab that did not answer counts as leading). */
  readonly led: boolean
  /** The roles of the peer's tabs read just before the fault, for the log. */
  readonly roles: readonly (string | undefined)[]
  /** The page load the fault hit (its handlers' results are lost). */
  readonly load: string | undefined
  /** When Node ordered the fault. */
  readonly at: number
  /** When the fault had taken effect (the page navigated away, froze, or its worker was terminated). */
  until: number
}

/** A tab's messenger took a role, as its page reported it. */
export interface RoleChange {
  readonly peer: string
  readonly tab: string
  readonly load: string
  /** `leader` once the tab runs its identity's engine; `follower`, `starting` (frozen, restarting its worker), `closed`. */
  readonly role: string
  readonly key: string
  /** When the page learnt it (ms since the epoch). */
  readonly at: number
}

/** The key of the stream from `from` to `to`. */
export const streamKey = (from: string, to: string): string => `${from}>${to}`

/** Everything the soak saw: sends and their outcome, handovers in handler order, crashes, role changes. */
export class Ledger {
  /** Every send, by stream, in send order. */
  readonly sends = new Map<string, SendRecord[]>()
  /** Every handover, by stream, in the order the handlers ran. */
  readonly handovers = new Map<string, Handover[]>()
  readonly crashes: Crash[] = []
  /** In the order the reports arrived. */
  readonly roles: RoleChange[] = []
  readonly #keys = new Set<string>()
  readonly #ids = new Set<string>()

  /** Records a send about to be made with `id`; the caller settles its outcome. */
  attempt(from: string, to: string, n: number, id: string): SendRecord {
    if (this.#ids.has(id)) throw new RangeError(`send id ${id} used twice`)
    this.#ids.add(id)
    const record: SendRecord = { from, to, n, id, outcome: 'pending' }
    this.#list(this.sends, streamKey(from, to)).push(record)
    return record
  }

  /** Records a handover once (it may be reported twice: by the binding and from localStorage); keeps each stream in handler order. */
  handover(handover: Handover): boolean {
    if (this.#keys.has(handover.key)) return false
    this.#keys.add(handover.key)
    const list = this.#list(this.handovers, streamKey(handover.from, handover.to))
    let i = list.length
    while (i > 0 && list[i - 1]!.at > handover.at) i--
    list.splice(i, 0, handover)
    return true
  }

  /** Records a role change once (it may be reported twice, as handovers are). */
  role(change: RoleChange): boolean {
    if (this.#keys.has(change.key)) return false
    this.#keys.add(change.key)
    this.roles.push(change)
    return true
  }

  /** Records a crash as it starts; the caller sets `until` once it took effect. */
  crash(crash: Omit<Crash, 'until'>): Crash {
    const record: Crash = { ...crash, until: crash.at }
    this.crashes.push(record)
    return record
  }

  /** Resolved sends not handed over yet. */
  undelivered(): SendRecord[] {
    const missing: SendRecord[] = []
    for (const [key, list] of this.sends) {
      const got = new Set((this.handovers.get(key) ?? []).map((h) => h.id))
      for (const s of list) if (s.outcome === 'resolved' && !got.has(s.id)) missing.push(s)
    }
    return missing
  }

  #list<T>(map: Map<string, T[]>, key: string): T[] {
    let list = map.get(key)
    if (list === undefined) map.set(key, (list = []))
    return list
  }
}
