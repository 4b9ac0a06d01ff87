/**
 * bench:size — the bundle sizes `size-limit` measures (entries and budgets in
 * .size-limit.json, gzip), as a results file: one figure per entry, value =
 * gzip bytes, against = its budget, ratio = size / budget. Writes
 * test/bench/results/size.json with `overBudget` listing the entries above
 * their budget (not an error here: `npx size-limit` is the check that fails).
 *
 *   npx tsx test/bench/size.ts      (needs `npm run build` first: it measures dist/)
 *
 * Exits non-zero only when it could not run (no configuration, or size-limit
 * printed no sizes).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runBench, writeResult } from './browser-harness.js'
import { figure, plainFigure } from './figures.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** One entry of `size-limit --json`. */
interface Check {
  readonly name: string
  readonly passed?: boolean
  readonly size?: number
  readonly sizeLimit?: number
}

/** Runs `size-limit --json` and returns its checks; throws with its output when it printed none. */
function sizeLimit(): Check[] {
  if (!existsSync(join(ROOT, '.size-limit.json'))) throw new Error('.size-limit.json is missing')
  // It exits 1 when an entry is over budget, and still prints every size.
  const run = spawnSync(join(ROOT, 'node_modules/.bin/size-limit'), ['--json'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 })
  let checks: unknown
  try {
    checks = JSON.parse(run.stdout)
  } catch {
    checks = undefined
  }
  if (!Array.isArray(checks) || checks.length === 0 || !checks.every((c: Check) => typeof c.name === 'string' && typeof c.size === 'number')) {
    const output = `${run.stdout}\n${run.stderr}`.trim()
    console.error(output)
    const why = output.split('\n').find((line) => /error/i.test(line)) ?? output.split('\n').at(-1)
    throw new Error(`size-limit --json gave no sizes (exit ${run.status ?? run.signal ?? run.error?.message}): ${why?.trim()}`)
  }
  return checks as Check[]
}

/**
 * Issue 13's goals (page client 4 kB, worker with the WebSocket transport
 * 18 kB; they replace issue 6's 3 kB and 12 kB): reported next to the enforced budgets,
 * which sit just above today's sizes to catch regressions.
 */
const GOALS: Record<string, number> = {
  'client: connect() from intersession/client': 4_000,
  'worker with the WebSocket relay transport': 18_000,
  // The goal predates end-to-end encryption (issue 16): the like-for-like worker has no cipher.
  'worker with the WebSocket relay transport, encryption off (the cipher is not loaded)': 18_000,
}

async function main(): Promise<void> {
  const checks = sizeLimit()
  const figures = checks.flatMap((c) => {
    const name = `size: ${c.name} (gzip)`
    const goal = GOALS[c.name]
    const budget = c.sizeLimit === undefined ? plainFigure(name, c.size!, 'B') : figure(name, c.size!, 'B', 'enforced budget', c.sizeLimit)
    return goal === undefined ? [budget] : [budget, figure(name, c.size!, 'B', 'goal (issue 13)', goal)]
  })
  const overBudget = checks.filter((c) => c.passed === false).map((c) => c.name)
  const result = {
    benchmark: 'size',
    date: new Date().toISOString(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
    checks,
    overBudget,
    figures,
  }
  console.log(
    [
      'bench:size  gzip bytes per entry point (size-limit, .size-limit.json)',
      ...figures.map((f) => `  ${f.figure}: ${f.value} B${f.againstValue === null ? '' : `  budget ${f.againstValue} B  ratio ${f.ratio}`}`),
      ...(overBudget.length > 0 ? [`  OVER BUDGET: ${overBudget.join(', ')}`] : []),
    ].join('\n'),
  )
  writeResult('size', result)
}

runBench('size', main)
