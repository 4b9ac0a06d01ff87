import type { Crash, Handover, Ledger, RoleChange, SendRecord } from './ledger.js'

/**
 * The receivers' `limits.processBatch` in the soak. With 1, a handover's
 * processed mark is committed before the next handover of its stream, which
 * is what lets the checker tell an unmarked handover from a marked one.
 */
export const PROCESS_BATCH = 1

/** The share of sends whose outcome may stay unknown (a page or worker died first); more fails the run. */
export const UNKNOWN_LIMIT = 0.01

/** What the soak found. The run passes only if `ok`. */
export interface Verdict {
  /** Every send the harness made. */
  readonly attempted: number
  /** Sends whose `send()` resolved. */
  readonly sent: number
  /** Sends whose `send()` rejected: none may ever be delivered. */
  readonly rejected: number
  /** Sends whose page or worker died, or whose call timed out, before `send()` settled: each may arrive at most once. */
  readonly unknown: number
  /** The most `unknown` may be (`UNKNOWN_LIMIT` of `attempted`). */
  readonly unknownLimit: number
  /** Resolved sends never handed over. */
  readonly lost: number
  /** Repeated handovers that are not a documented replay. */
  readonly duplicated: number
  /** Documented replays: an unmarked handover handed over again after a crash of its engine or handler page. */
  readonly replayed: number
  /** Crashes of receiving pages and engines, the faults a replay can be charged to. */
  readonly crashes: number
  /** First handovers of a message older (by send order) than one already handed over in its stream. */
  readonly reordered: number
  /** Handovers whose id matches no send, or whose from, to, n or seq disagree with the send of that id. */
  readonly phantom: number
  /** Rejected sends that were handed over. */
  readonly rejectedDelivered: number
  /** True when every count that must be 0 is 0 and `unknown <= unknownLimit`. */
  readonly ok: boolean
  /** The first violations, described. */
  readonly details: readonly string[]
  /** Every replay, with the crash it was charged to. */
  readonly replays: readonly string[]
}

const MAX_DETAILS = 30

/**
 * Checks the ledger, matching handovers to sends by id.
 *
 * Every resolved send is handed over, and rejected ones never are. The first
 * handovers of a stream come in send order. A repeated handover is a
 * documented replay (promise 2 of docs/GUARANTEES.md) only if all hold:
 * - it has the id, seq and sender epoch of the message's first handover;
 * - the handover right before it in its stream is of the same message (with
 *   `processBatch` 1, any other handover in between means the message was
 *   marked processed), and a crash hit that handover's handling context after
 *   it and before the repeat: the receiver's engine (a tab that led died, or
 *   its worker), or the page load whose handler ran it. A handler may run a
 *   little after the engine that handed the message out died (the message was
 *   in flight to its page), but not after the next engine took over: so a
 *   handover counts as the dead engine's until a tab of the receiver reports
 *   that it leads (or, with no such report, until the crash took effect);
 * - that crash has not already excused `PROCESS_BATCH` repeats of this stream.
 * Every other repeat is a duplicate.
 */
export function check(ledger: Ledger): Verdict {
  const counts = { lost: 0, duplicated: 0, replayed: 0, reordered: 0, phantom: 0, rejectedDelivered: 0 }
  const details: string[] = []
  const replays: string[] = []
  const note = (line: string): void => void (details.length < MAX_DETAILS && details.push(line))
  const sendsById = new Map<string, SendRecord>()
  for (const list of ledger.sends.values()) for (const s of list) sendsById.set(s.id, s)
  const firsts = new Map<string, Handover>()
  const charged = new Map<Crash, Map<string, number>>()

  for (const s of sendsById.values()) {
    if (s.outcome === 'resolved' && s.receiptId !== s.id) {
      counts.phantom++
      note(`phantom: send ${s.id} resolved with a receipt for ${s.receiptId ?? 'no id'}`)
    }
  }
  for (const [key, handovers] of ledger.handovers) {
    let highest: Handover | undefined
    handovers.forEach((h, j) => {
      const sent = sendsById.get(h.id)
      const first = firsts.get(h.id)
      const wrong = mismatch(h, sent, first === undefined)
      if (wrong !== undefined) {
        counts.phantom++
        note(`phantom ${key} id=${h.id} n=${h.n} seq=${h.seq} at ${clock(h.at)} in ${h.tab}: ${wrong}`)
      }
      if (sent === undefined) return
      if (first === undefined) {
        firsts.set(h.id, h)
        if (highest !== undefined && sent.n < highest.n) {
          counts.reordered++
          note(`reordered ${key} n=${sent.n} id=${h.id} handed over after n=${highest.n} (${around(handovers, j)})`)
        }
        if (highest === undefined || sent.n > highest.n) highest = h
        return
      }
      const excuse = replayOf(handovers, j, first, ledger.crashes, ledger.roles, charged, key)
      if (typeof excuse === 'string') {
        counts.duplicated++
        note(`duplicated ${key} n=${h.n} id=${h.id} (send ${sent.outcome}) at ${clock(h.at)} in ${h.tab}: ${excuse} (${around(handovers, j)}; ${crashesNear(ledger.crashes, ledger.roles, h.to, first.at, h.at)})`)
        return
      }
      counts.replayed++
      const prev = handovers[j - 1]!
      const inFlight = excuse.led && prev.at >= excuse.until ? ', in flight to its handler when the engine died' : ''
      replays.push(`replayed ${key} n=${h.n} seq=${h.seq} at ${clock(h.at)} in ${h.tab} (${h.role}): handed over at ${clock(prev.at)} in ${prev.tab} (${prev.role})${inFlight}; crash: ${describeCrash(excuse)}`)
      const streams = charged.get(excuse) ?? new Map<string, number>()
      streams.set(key, (streams.get(key) ?? 0) + 1)
      charged.set(excuse, streams)
    })
  }

  let sent = 0
  let rejected = 0
  let unknown = 0
  for (const s of sendsById.values()) {
    const handed = firsts.has(s.id)
    if (s.outcome === 'resolved') sent++
    else if (s.outcome === 'rejected') rejected++
    else unknown++
    if (s.outcome === 'resolved' && !handed) {
      counts.lost++
      note(`lost ${s.from}>${s.to} n=${s.n} id=${s.id} seq=${s.seq ?? '?'}; ${lastNear(ledger.handovers.get(`${s.from}>${s.to}`) ?? [], sendsById, s)}`)
    }
    if (s.outcome === 'rejected' && handed) {
      counts.rejectedDelivered++
      note(`rejected send handed over: ${s.from}>${s.to} n=${s.n} id=${s.id} (rejected with ${s.error ?? '?'})`)
    }
  }
  const attempted = sendsById.size
  const unknownLimit = Math.floor(attempted * UNKNOWN_LIMIT)
  if (unknown > unknownLimit) note(`${unknown} sends of unknown outcome, more than ${UNKNOWN_LIMIT * 100}% of ${attempted}`)
  const ok = counts.lost + counts.duplicated + counts.reordered + counts.phantom + counts.rejectedDelivered === 0 && unknown <= unknownLimit
  return { attempted, sent, rejected, unknown, unknownLimit, ...counts, crashes: ledger.crashes.length, ok, details, replays }
}

/** Why handover `h` does not match the send of its id, if it does not. The receipt's seq is checked on first handovers (repeats are held to the first). */
function mismatch(h: Handover, sent: SendRecord | undefined, first: boolean): string | undefined {
  if (sent === undefined) return 'no send has this id'
  const wrong = [
    sent.from !== h.from && `from ${h.from}, sent from ${sent.from}`,
    sent.to !== h.to && `to ${h.to}, sent to ${sent.to}`,
    sent.n !== h.n && `n=${h.n}, sent as n=${sent.n}`,
    first && sent.seq !== undefined && sent.seq !== h.seq && `seq ${h.seq}, its receipt said ${sent.seq}`,
  ].filter((x): x is string => x !== false)
  return wrong.length === 0 ? undefined : wrong.join(', ')
}

/** The crash that excuses the repeat `handovers[j]` of `first`, or why none does. */
function replayOf(
  handovers: readonly Handover[],
  j: number,
  first: Handover,
  crashes: readonly Crash[],
  roles: readonly RoleChange[],
  charged: ReadonlyMap<Crash, ReadonlyMap<string, number>>,
  key: string,
): Crash | string {
  const again = handovers[j]!
  if (again.seq !== first.seq || again.epoch !== first.epoch) {
    return `seq ${again.seq} epoch ${again.epoch}, but first handed over as seq ${first.seq} epoch ${first.epoch}`
  }
  // A repeat always has an earlier handover in its stream: its first.
  const prev = handovers[j - 1]!
  if (prev.id !== again.id) return `n=${prev.n} was handed over in between, so the first was already marked processed`
  const hits = crashes.filter(
    (c) => c.peer === again.to && c.at < again.at && ((c.led && prev.at < engineEnd(c, roles)) || (c.tab === prev.tab && c.load === prev.load && prev.at < c.until)),
  )
  if (hits.length === 0) {
    return `no crash of ${again.to}'s engine or of the page that ran the handler (${prev.tab} load ${prev.load}) between ${clock(prev.at)} and ${clock(again.at)}`
  }
  const crash = hits.find((c) => (charged.get(c)?.get(key) ?? 0) < PROCESS_BATCH)
  return crash ?? `over the bound: the crashes in between (${hits.map(describeCrash).join(', ')}) already excused ${PROCESS_BATCH} repeat(s) of this stream each`
}

/** Until when a handler may run a message handed out by the engine `c` killed: until the receiver's next leader reports, else until `c` took effect. */
function engineEnd(c: Crash, roles: readonly RoleChange[]): number {
  let next = Number.POSITIVE_INFINITY
  for (const r of roles) if (r.peer === c.peer && r.role === 'leader' && r.at > c.at && r.at < next) next = r.at
  return next === Number.POSITIVE_INFINITY ? c.until : next
}

function around(handovers: readonly Handover[], j: number): string {
  return handovers
    .slice(Math.max(0, j - 3), j + 2)
    .map((h) => `n=${h.n} seq=${h.seq} at ${clock(h.at)} in ${h.tab} (${h.role})`)
    .join(' ')
}

function crashesNear(crashes: readonly Crash[], roles: readonly RoleChange[], peer: string, from: number, to: number): string {
  const near = crashes.filter((c) => c.peer === peer && c.until >= from - 5000 && c.at <= to)
  const leaders = roles.filter((r) => r.peer === peer && r.role === 'leader' && r.at >= from - 5000 && r.at <= to)
  return [
    near.length === 0 ? `no crash of ${peer} near` : `crashes of ${peer}: ${near.map(describeCrash).join(', ')}`,
    `leaders: ${leaders.map((r) => `${r.tab} at ${clock(r.at)}`).join(', ') || 'none reported'}`,
  ].join('; ')
}

function describeCrash(c: Crash): string {
  return `${c.kind} ${c.tab}${c.led ? ' (led)' : ''} ${clock(c.at)}..${clock(c.until)}`
}

function lastNear(handovers: readonly Handover[], sends: ReadonlyMap<string, SendRecord>, s: SendRecord): string {
  const nOf = (h: Handover): number => sends.get(h.id)?.n ?? h.n
  const before = handovers.filter((h) => nOf(h) < s.n).pop()
  const after = handovers.find((h) => nOf(h) > s.n)
  const show = (h: Handover | undefined): string => (h === undefined ? 'none' : `n=${h.n} at ${clock(h.at)}`)
  return `handed over before: ${show(before)}, after: ${show(after)}`
}

/** `HH:MM:SS.mmm` (UTC), as in the soak's log. */
function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23)
}
