import type { Handover, Kill, Ledger, SendRecord } from './ledger.js'

/** What the soak found. Every count but `replayed` and `unknown` must be 0. */
export interface Verdict {
  /** Sends whose `send()` resolved. */
  readonly sent: number
  /** Sends whose page or worker died before `send()` settled (may or may not arrive). */
  readonly unknown: number
  /** Resolved sends never handed over. */
  readonly lost: number
  /** Handovers of a message seen before, other than the documented replay. */
  readonly duplicated: number
  /** Documented replays: the message in hand when the receiver was killed, handed over again. */
  readonly replayed: number
  /** Handovers of a message older than one already handed over in its stream. */
  readonly reordered: number
  /** Handovers that match no send (wrong id, never sent). */
  readonly phantom: number
  /** The first violations, described. */
  readonly details: readonly string[]
}

const MAX_DETAILS = 20

/**
 * Checks the ledger: every resolved send handed over exactly once, in the
 * order of its stream. A repeat counts as a replay (promise 3 of
 * docs/PROTOCOL.md, with `processBatch: 1`) only if it directly follows the
 * first handover in its stream and the receiver was killed in between
 * (`slackMs` allows for the report of the first handover reaching Node after
 * the kill was ordered).
 */
export function check(ledger: Ledger, slackMs: number): Verdict {
  const counts = { lost: 0, duplicated: 0, replayed: 0, reordered: 0, phantom: 0 }
  const details: string[] = []
  const note = (line: string): void => void (details.length < MAX_DETAILS && details.push(line))
  const keys = new Set([...ledger.sends.keys(), ...ledger.handovers.keys()])
  for (const key of keys) {
    const sends = new Map((ledger.sends.get(key) ?? []).map((s) => [s.n, s]))
    const handovers = ledger.handovers.get(key) ?? []
    const seen = new Set<number>()
    let highest = -1
    handovers.forEach((h, j) => {
      const sent = sends.get(h.n)
      if (sent === undefined || (sent.id !== undefined && sent.id !== h.id)) {
        counts.phantom++
        note(`phantom ${key} n=${h.n} id=${h.id} (sent as ${sent?.id ?? 'nothing'})`)
      }
      if (seen.has(h.n)) {
        if (isReplay(handovers, j, ledger.kills, slackMs)) counts.replayed++
        else {
          counts.duplicated++
          note(`duplicated ${key} n=${h.n} seq=${h.seq} id=${h.id} at handover #${j} (${describe(handovers, j)})`)
        }
        return
      }
      seen.add(h.n)
      if (h.n < highest) {
        counts.reordered++
        note(`reordered ${key} n=${h.n} after n=${highest} at handover #${j} (${describe(handovers, j)})`)
      }
      highest = Math.max(highest, h.n)
    })
    for (const s of sends.values()) {
      if (s.outcome === 'resolved' && !seen.has(s.n)) {
        counts.lost++
        note(`lost ${key} n=${s.n} id=${s.id ?? '?'}; last handed over ${lastNear(handovers, s)}`)
      }
    }
  }
  let sent = 0
  let unknown = 0
  for (const list of ledger.sends.values()) {
    for (const s of list) {
      if (s.outcome === 'resolved') sent++
      else unknown++
    }
  }
  return { sent, unknown, ...counts, details }
}

function isReplay(handovers: readonly Handover[], j: number, kills: readonly Kill[], slackMs: number): boolean {
  const first = handovers[j - 1]
  const again = handovers[j]!
  if (first === undefined || first.n !== again.n) return false
  return kills.some((k) => k.peer === again.to && k.at >= first.at - slackMs && k.at <= again.at)
}

function describe(handovers: readonly Handover[], j: number): string {
  return handovers
    .slice(Math.max(0, j - 3), j + 2)
    .map((h) => `n=${h.n} seq=${h.seq} at ${clock(h.at)} in ${h.tab}`)
    .join(' ')
}

function lastNear(handovers: readonly Handover[], s: SendRecord): string {
  const before = handovers.filter((h) => h.n < s.n).pop()
  const after = handovers.find((h) => h.n > s.n)
  const show = (h: Handover | undefined): string => (h === undefined ? 'none' : `n=${h.n} at ${clock(h.at)}`)
  return `before: ${show(before)}, after: ${show(after)}`
}

/** `HH:MM:SS.mmm` (UTC), as in the soak's log. */
function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23)
}
