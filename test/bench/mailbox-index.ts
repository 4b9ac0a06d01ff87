/**
 * bench:mailbox-index — what a large mailbox costs the relay in memory and in
 * its retention sweep (the memory and LevelDB mailboxes keep their entries'
 * records in a MailboxIndex; the sweep runs at most once a minute).
 * ENTRIES `msg` entries of 64 B for 100 destinations from 4 senders, stored
 * a millisecond apart, in one index. Per run, medians over runs:
 *
 * (a) a sweep that finds nothing due (`takeDue` before the first entry; the
 *     mean of 1,000), against (b) a walk of every entry asking whether it is
 *     due: what each sweep did before the index kept its expiring entries by
 *     time;
 * (c) a sweep that expires the oldest tenth, each made a skip as the
 *     mailboxes do, against the same sweep by a walk, on a twin index;
 * (d) the index's heap per stored entry, after a collection, with the
 *     entry's own strings (its id, 21 characters decoded from bytes as the
 *     relay reads them; its key); no ceiling.
 *
 *   npx tsx test/bench/mailbox-index.ts [--entries 1000000] [--runs 3]
 *
 * Writes test/bench/results/mailbox-index.json. Exits non-zero only when it could not run.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { MailboxEntry } from '../../src/relay/mailbox/mailbox.js'
import { MailboxIndex } from '../../src/relay/mailbox/mailbox-index.js'
import { intArg } from './args.js'
import { figure, plainFigure } from './figures.js'
import { median } from './peers-stats.js'

const ENTRIES = intArg('--entries', 1_000_000)
const RUNS = intArg('--runs', 3)
const DESTINATIONS = 100
const encoder = new TextEncoder()
const decoder = new TextDecoder()
// A collection before each heap reading, without asking for a flag on the command line.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

interface Run {
  readonly emptySweepMs: number
  readonly walkMs: number
  readonly tenthSweepMs: number
  readonly tenthWalkedMs: number
  readonly heapBytesPerEntry: number
}

const SWEEPS = 1_000
const senders = Array.from({ length: 4 }, (_, s) => `sender-${s}`)
const epoch = `${Date.now().toString(36)}-${'e'.repeat(16)}`
const destinations = Array.from({ length: DESTINATIONS }, (_, d) => `destination-${d}`)

/** An index of ENTRIES entries, stored a millisecond apart from 1,000 on. */
function filled(): MailboxIndex {
  const index = new MailboxIndex()
  const limits = { maxMessages: 1e9, maxBytes: 1e15 }
  // As a relay has them: each stream's ids shared by its entries (its frames' header prefix is read once), each
  // message's id a string of its own, as long as the engine's (21 characters), decoded from the frame's bytes.
  for (let i = 0; i < ENTRIES; i++) {
    const id = decoder.decode(encoder.encode(`m${String(i).padStart(20, '0')}`))
    const record = { kind: 'msg' as const, from: senders[i % 4]!, epoch, seq: i, id, size: 64, storedAt: 1_000 + i }
    index.admit(destinations[i % DESTINATIONS]!, record, limits)
  }
  return index
}

/** Every entry stored before `before`, by a walk of every entry (as each sweep found them before). */
function walk(index: MailboxIndex, before: number): { to: string; entry: MailboxEntry }[] {
  const due: { to: string; entry: MailboxEntry }[] = []
  for (const to of destinations) for (const entry of index.read(to, undefined, ENTRIES)) if (entry.storedAt < before) due.push({ to, entry })
  return due
}

/** Makes every entry of `due` a skip, as the mailboxes expire them; checks there are `count`. */
function expire(index: MailboxIndex, due: readonly { to: string; entry: MailboxEntry }[], count: number): void {
  if (due.length !== count) throw new Error(`a sweep took ${due.length} entries, not ${count}`)
  for (const { to, entry } of due) index.toSkip(to, entry.key, 40, 'retention')
}

function oneRun(): Run {
  gc()
  const base = process.memoryUsage().heapUsed
  const index = filled()
  gc()
  const heapBytesPerEntry = (process.memoryUsage().heapUsed - base) / ENTRIES
  let start = performance.now()
  for (let i = 0; i < SWEEPS; i++) expire(index, index.takeDue(1_000), 0)
  const emptySweepMs = (performance.now() - start) / SWEEPS
  start = performance.now()
  expire(index, walk(index, 1_000), 0)
  const walkMs = performance.now() - start
  const tenth = 1_000 + ENTRIES / 10
  start = performance.now()
  expire(index, index.takeDue(tenth), ENTRIES / 10)
  const tenthSweepMs = performance.now() - start
  const twin = filled()
  gc()
  start = performance.now()
  expire(twin, walk(twin, tenth), ENTRIES / 10)
  const tenthWalkedMs = performance.now() - start
  return { emptySweepMs, walkMs, tenthSweepMs, tenthWalkedMs, heapBytesPerEntry }
}

const runs: Run[] = []
for (let run = 0; run < RUNS; run++) {
  runs.push(oneRun())
  const r = runs.at(-1)!
  console.log(
    `run ${run + 1}: sweep finding nothing ${r.emptySweepMs.toFixed(4)} ms (walked ${r.walkMs.toFixed(0)} ms), sweep of a tenth ${r.tenthSweepMs.toFixed(0)} ms (walked ${r.tenthWalkedMs.toFixed(0)} ms), ${r.heapBytesPerEntry.toFixed(0)} B/entry`,
  )
}
const m = (key: keyof Run): number => Number(median(runs.map((r) => r[key])).toPrecision(4))
const size = `${ENTRIES.toLocaleString('en')} entries for ${DESTINATIONS} destinations`
const walked = `a walk of every entry (each sweep before)`
const result = {
  benchmark: 'mailbox-index',
  date: new Date().toISOString(),
  machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
  entries: ENTRIES,
  runs,
  figures: [
    figure(`relay mailbox index: a retention sweep that finds nothing, ${size}`, m('emptySweepMs') * 1_000, 'us', walked, m('walkMs') * 1_000),
    figure(
      `relay mailbox index: a retention sweep that expires the oldest tenth into skips, ${size}`,
      m('tenthSweepMs'),
      'ms',
      'the same sweep by a walk of every entry (before)',
      m('tenthWalkedMs'),
    ),
    plainFigure(`relay mailbox index: heap per stored entry, ${size}`, Math.round(m('heapBytesPerEntry')), 'B'),
  ],
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
writeFileSync(new URL('./results/mailbox-index.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
console.log(`bench:mailbox-index  ${result.machine}`)
for (const f of result.figures) console.log(`  ${f.figure}: ${f.value} ${f.unit}${f.ratio === null ? '' : ` (${f.ratio} of ${f.against})`}`)
