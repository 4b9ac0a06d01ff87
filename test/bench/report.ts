/**
 * The results table, from the `figures` of every results file present in
 * test/bench/results/ (and, when `npm run bench` wrote it, the outcome of
 * each benchmark in results/last-run.json): writes test/bench/results.json
 * (every figure, with its benchmark, date and machine), test/bench/RESULTS.md
 * and the table in README.md between `<!-- bench:start -->` and
 * `<!-- bench:end -->`. Regenerate without rerunning anything:
 *
 *   npx tsx test/bench/report.ts
 *
 * (test/bench/run-all.ts calls {@link writeReport} after the benchmarks.)
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Figure, ResultsFile } from './figures.js'

const RESULTS_DIR = new URL('./results/', import.meta.url)
/** Where run-all.ts records the outcome of its last run. */
export const LAST_RUN_FILE = new URL('./results/last-run.json', import.meta.url)
const README = new URL('../../README.md', import.meta.url)
const START = '<!-- bench:start -->'
const END = '<!-- bench:end -->'
/** Table order; benchmarks not listed follow, by name. */
const ORDER = ['core', 'core-ab', 'idb', 'net', 'relay', 'mailbox', 'mailbox-index', 'backlog', 'peers', 'recovery', 'size']

/** How one benchmark of a `npm run bench` run ended. */
export interface BenchmarkOutcome {
  readonly name: string
  /** `over budget`: it ran, and a size exceeded its budget. */
  readonly status: 'ok' | 'over budget' | 'could not run'
  readonly seconds: number
  /** Why it could not run, or what was over budget. */
  readonly note?: string
}

/** What run-all.ts records in {@link LAST_RUN_FILE}. */
export interface LastRun {
  readonly date: string
  readonly benchmarks: readonly BenchmarkOutcome[]
}

/** One results file's figures, with where they come from. */
interface Section {
  readonly benchmark: string
  readonly date: string
  readonly machine: string
  readonly figures: readonly Figure[]
}

const isFigure = (f: unknown): f is Figure => {
  const x = f as Partial<Figure> | null
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.figure === 'string' &&
    typeof x.value === 'number' &&
    typeof x.unit === 'string' &&
    (x.againstValue === null || typeof x.againstValue === 'number') &&
    (x.ratio === null || typeof x.ratio === 'number')
  )
}

/** Every results file with figures, in table order; files without figures (or unreadable) are skipped with a warning. */
function readSections(): Section[] {
  const sections: Section[] = []
  for (const file of readdirSync(RESULTS_DIR).filter((f) => f.endsWith('.json') && f !== 'last-run.json')) {
    let data: Partial<ResultsFile>
    try {
      data = JSON.parse(readFileSync(new URL(file, RESULTS_DIR), 'utf8')) as Partial<ResultsFile>
    } catch (error) {
      console.warn(`report: skipping ${file}: ${(error as Error).message}`)
      continue
    }
    if (!Array.isArray(data.figures)) {
      console.warn(`report: ${file} has no figures (rerun its benchmark)`)
      continue
    }
    const figures = data.figures.filter(isFigure)
    if (figures.length < data.figures.length) console.warn(`report: ${file}: ${data.figures.length - figures.length} malformed figure(s) skipped`)
    sections.push({ benchmark: data.benchmark ?? file.replace(/\.json$/, ''), date: data.date ?? '', machine: data.machine ?? '', figures })
  }
  const rank = (name: string): number => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length)
  return sections.sort((x, y) => rank(x.benchmark) - rank(y.benchmark) || x.benchmark.localeCompare(y.benchmark))
}

const grouped = (value: number, digits = 0): string => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** `value` in `unit`, readably: long times in seconds, large byte counts in MiB. */
export function formatValue(value: number, unit: string): string {
  if (unit === 'ms' && Math.abs(value) >= 10_000) return `${grouped(value / 1000, 1)} s`
  if (unit === 'ms') return `${grouped(value, Math.abs(value) < 10 ? 2 : 0)} ms`
  if (unit === 'B' && Math.abs(value) >= 100_000) return `${grouped(value / 1048576, 2)} MiB`
  return `${grouped(value, Number.isInteger(value) ? 0 : 2)} ${unit}`
}

/** Two decimals, or two significant digits below 0.1. */
export function formatRatio(ratio: number): string {
  return ratio < 0.1 ? String(Number(ratio.toPrecision(2))) : ratio.toFixed(2)
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ')

/** The Markdown table: figure | value | ceiling or peer | ratio | date | machine. */
function table(sections: readonly Section[]): string {
  const rows = sections.flatMap((s) =>
    s.figures.map((f) =>
      [
        f.figure,
        formatValue(f.value, f.unit),
        f.againstValue === null ? f.against : `${f.against}: ${formatValue(f.againstValue, f.unit)}`,
        f.ratio === null ? '' : formatRatio(f.ratio),
        s.date.slice(0, 10),
        s.machine,
      ].map(cell),
    ),
  )
  return ['| figure | value | ceiling or peer | ratio | date | machine |', '| --- | ---: | --- | ---: | --- | --- |', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function readLastRun(): LastRun | undefined {
  if (!existsSync(LAST_RUN_FILE)) return undefined
  try {
    return JSON.parse(readFileSync(LAST_RUN_FILE, 'utf8')) as LastRun
  } catch {
    return undefined
  }
}

function lastRunTable(run: LastRun): string {
  return [
    `Last \`npm run bench\`: ${run.date.slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    '| benchmark | outcome | time | note |',
    '| --- | --- | ---: | --- |',
    ...run.benchmarks.map((b) => `| ${[b.name, b.status, `${Math.round(b.seconds)} s`, b.note ?? ''].map(cell).join(' | ')} |`),
  ].join('\n')
}

/** Puts `table` between the README's markers; false (and nothing written) when they are missing. */
function updateReadme(tableText: string): boolean {
  const readme = readFileSync(README, 'utf8')
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start < 0 || end < start) return false
  const updated = `${readme.slice(0, start + START.length)}\n${tableText}\n${readme.slice(end)}`
  if (updated !== readme) writeFileSync(README, updated)
  return true
}

/** Writes results.json, RESULTS.md and the README table from the results files present; returns how many figures. */
export function writeReport(): number {
  const sections = readSections()
  const lastRun = readLastRun()
  const generated = new Date().toISOString()
  const figures = sections.flatMap((s) => s.figures.map((f) => ({ benchmark: s.benchmark, date: s.date, machine: s.machine, ...f })))
  writeFileSync(new URL('./results.json', import.meta.url), `${JSON.stringify({ generated, ...(lastRun !== undefined && { lastRun }), figures }, null, 2)}\n`)
  const tableText = table(sections)
  const markdown = [
    '# Benchmark results',
    '',
    `Generated ${generated.slice(0, 16).replace('T', ' ')} UTC by \`npm run bench\` (or \`npx tsx test/bench/report.ts\`) from the files in [results/](results/); each row is dated by the run that measured it.`,
    'Every ceiling or peer is measured in the same run, on the same machine, as the figure it is compared with; the ratio is value / ceiling or peer',
    '(for rates, higher is better; for times, latencies, memory and sizes, lower is better; for sizes the comparison is the budget).',
    'The machine is shared and noisy: compare ratios, not absolute figures. How each figure is measured: the header of its script in test/bench/.',
    '',
    tableText,
    ...(lastRun === undefined ? [] : ['', lastRunTable(lastRun)]),
    '',
  ].join('\n')
  writeFileSync(new URL('./RESULTS.md', import.meta.url), markdown)
  if (!updateReadme(tableText)) console.warn(`report: README.md has no ${START} ... ${END} markers; its table was left alone`)
  return figures.length
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const count = writeReport()
  console.log(`report: ${count} figures -> test/bench/results.json, test/bench/RESULTS.md, README.md`)
}
