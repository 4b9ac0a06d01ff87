/**
 * The verdict of test/browser/browser-crash.spec.ts: what each sender's
 * `send()` resolved with, and what each receiver's handler recorded across
 * browser crashes, checked for exactly-once, in-order delivery with replays
 * only within the documented bound (docs/GUARANTEES.md, 2). Its self-test is
 * test/browser/crash-check.spec.ts.
 */

/** One send whose promise resolved, as Node heard of it. */
export interface ResolvedSend {
  readonly from: string
  readonly to: string
  /** The number in the contents, unique per send attempt of `from`. */
  readonly n: number
  readonly id: string
  readonly seq: number
  /** The browser launch it resolved in. */
  readonly life: number
}

/** One send whose promise rejected. */
export interface RejectedSend {
  readonly from: string
  readonly to: string
  readonly n: number
  readonly code: string | undefined
}

/** One call of a receiver's handler, as it recorded it durably before returning. */
export interface Handover {
  readonly from: string
  readonly id: string
  readonly seq: number
  readonly epoch: string
  readonly n: number
  readonly life: number
}

/** Everything a run recorded. */
export interface CrashLedger {
  /** `limits.processBatch`: the most a crash may replay per sender. */
  readonly processBatch: number
  /** Each sender's epoch (its store's identity, the same all run long). */
  readonly epochs: Readonly<Record<string, string>>
  /** The contents numbers each sender's send loops were given, `[first, end)` per stream. */
  readonly ranges: ReadonlyArray<{ readonly from: string; readonly to: string; readonly first: number; readonly end: number }>
  /** Sends started, as far as Node heard before a crash. */
  readonly started: ReadonlyArray<{ readonly from: string; readonly to: string; readonly n: number }>
  readonly resolved: readonly ResolvedSend[]
  readonly rejected: readonly RejectedSend[]
  /** Per receiver, its handovers in the order its handlers ran, across launches. */
  readonly handovers: Readonly<Record<string, readonly Handover[]>>
  /** The launches (lives) that ended in a crash (SIGKILL); the others ended cleanly or are the last. */
  readonly crashed: readonly number[]
  /**
   * Per receiver, per life: the ids in its inbox (stored, processed mark not
   * committed) when that life began, read before its engine started.
   */
  readonly unmarked: Readonly<Record<string, Readonly<Record<number, readonly string[]>>>>
}

export type ProblemKind = 'lost' | 'duplicate' | 'reorder' | 'phantom' | 'replay-out-of-bound' | 'rejected-delivered'

export interface Problem {
  readonly kind: ProblemKind
  readonly detail: string
}

export interface CrashVerdict {
  readonly problems: readonly Problem[]
  /** Handover calls in all. */
  readonly handovers: number
  /** Distinct messages handed over. */
  readonly delivered: number
  /** Documented replays: a message handed over again after a crash of its receiver, within the bound. */
  readonly replays: number
  /** Sends started whose outcome Node never heard (the browser died first). */
  readonly unknown: number
  /** Of those, how many were handed over (each once at most, else a problem). */
  readonly unknownDelivered: number
  /** Per crashed life: resolved sends of that life first handed over in a later one (the crash cut the stream). */
  readonly carried: Readonly<Record<number, number>>
}

/**
 * Checks a run. A repeat of a message is a documented replay only when all of these hold:
 * - it has the same id, seq and epoch as the first handover;
 * - the previous handover of that id was in a life that ended in a crash,
 *   and the id was in the receiver's inbox (its processed mark not
 *   committed) when the next life began;
 * - the crash has at most `processBatch` such repeats per sender.
 * Every other repeat is a duplicate, and so is a second id carrying the
 * contents of one send. Every resolved send must be handed over; no rejected
 * one may be. First handovers of a stream must follow its seqs 0, 1, 2, ...,
 * and within one life every handover (replays included) must have a higher
 * seq than the one before; each in the sender's epoch, with the id and seq
 * its send resolved with. Anything else is a reorder or a phantom.
 */
export function checkCrashLedger(ledger: CrashLedger): CrashVerdict {
  const problems: Problem[] = []
  const problem = (kind: ProblemKind, detail: string): void => void problems.push({ kind, detail })
  const crashed = new Set(ledger.crashed)
  const key = (s: { from: string; to: string; n: number }): string => `${s.from}>${s.to}#${s.n}`
  const resolvedBy = new Map(ledger.resolved.map((r) => [key(r), r]))
  const rejectedBy = new Map(ledger.rejected.map((r) => [key(r), r]))
  const firstHanded = new Map<string, Handover>()
  const carried: Record<number, number> = Object.fromEntries(ledger.crashed.map((life) => [life, 0]))
  let handovers = 0
  let replays = 0

  for (const [receiver, list] of Object.entries(ledger.handovers)) {
    const streams = new Map<string, Handover[]>()
    for (const h of list) streams.set(h.from, [...(streams.get(h.from) ?? []), h])
    for (const [sender, stream] of streams) {
      const name = `${sender}->${receiver}`
      const inRange = (n: number): boolean => ledger.ranges.some((r) => r.from === sender && r.to === receiver && n >= r.first && n < r.end)
      const byId = new Map<string, { first: Handover; last: Handover }>()
      const idOfN = new Map<number, string>()
      const repeatsPerCrash = new Map<number, number>()
      let nextSeq = 0
      let previous: Handover | undefined
      for (const h of stream) {
        handovers++
        const what = `${name} id ${h.id} seq ${h.seq} n ${h.n} (life ${h.life})`
        if (previous !== undefined && previous.life === h.life && h.seq <= previous.seq)
          problem('reorder', `${what}: after seq ${previous.seq} in the same life`)
        previous = h
        const seen = byId.get(h.id)
        if (seen !== undefined) {
          const { first, last } = seen
          seen.last = h
          if (first.seq !== h.seq || first.epoch !== h.epoch || first.n !== h.n) {
            problem('duplicate', `${what}: handed over again as seq ${first.seq} epoch ${first.epoch} n ${first.n} first`)
            continue
          }
          const unmarked = ledger.unmarked[receiver]?.[last.life + 1] ?? []
          if (last.life >= h.life || !crashed.has(last.life) || !unmarked.includes(h.id)) {
            const why =
              last.life >= h.life
                ? 'in the same life'
                : !crashed.has(last.life)
                  ? `after life ${last.life}, which did not crash`
                  : `its processed mark had committed before the crash of life ${last.life}`
            problem('duplicate', `${what}: handed over again ${why}`)
            continue
          }
          const count = (repeatsPerCrash.get(last.life) ?? 0) + 1
          repeatsPerCrash.set(last.life, count)
          if (count > ledger.processBatch) {
            problem('replay-out-of-bound', `${what}: replay ${count} after the crash of life ${last.life}, more than processBatch ${ledger.processBatch}`)
            continue
          }
          replays++
          continue
        }
        byId.set(h.id, { first: h, last: h })
        firstHanded.set(key({ from: sender, to: receiver, n: h.n }), h)
        const other = idOfN.get(h.n)
        if (other !== undefined) problem('duplicate', `${what}: the send of n ${h.n} was handed over before as id ${other}`)
        idOfN.set(h.n, h.id)
        const resolved = resolvedBy.get(key({ from: sender, to: receiver, n: h.n }))
        if (!inRange(h.n)) problem('phantom', `${what}: no send had n ${h.n}`)
        else if (h.epoch !== ledger.epochs[sender]) problem('phantom', `${what}: epoch ${h.epoch}, the sender's is ${ledger.epochs[sender]}`)
        else if (resolved !== undefined && (resolved.id !== h.id || resolved.seq !== h.seq)) {
          problem('phantom', `${what}: its send resolved as id ${resolved.id} seq ${resolved.seq}`)
        }
        if (h.seq !== nextSeq) problem('reorder', `${what}: expected seq ${nextSeq}`)
        nextSeq = h.seq + 1
      }
    }
  }

  for (const r of ledger.resolved) {
    const h = firstHanded.get(key(r))
    if (h === undefined) problem('lost', `${r.from}->${r.to} id ${r.id} seq ${r.seq} n ${r.n}: resolved in life ${r.life}, never handed over`)
    else if (h.life > r.life && crashed.has(r.life)) carried[r.life] = (carried[r.life] ?? 0) + 1
  }
  for (const r of ledger.rejected) {
    const h = firstHanded.get(key(r))
    if (h !== undefined) problem('rejected-delivered', `${r.from}->${r.to} n ${r.n}: send rejected (${r.code}), handed over as id ${h.id}`)
  }
  const unknown = ledger.started.filter((s) => !resolvedBy.has(key(s)) && !rejectedBy.has(key(s)))
  return {
    problems,
    handovers,
    delivered: firstHanded.size,
    replays,
    unknown: unknown.length,
    unknownDelivered: unknown.filter((s) => firstHanded.has(key(s))).length,
    carried,
  }
}
