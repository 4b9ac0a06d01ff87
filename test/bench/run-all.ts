/**
 * `npm run bench`: builds once (dist/ with tsc; the browser test pages into
 * test/browser/.dist; the same pages into test/bench/.recovery-dist for
 * bench:recovery; the bench:peers page), then runs every benchmark in
 * sequence, each in its own child process: core, idb, idb-firefox, net, relay, cluster,
 * mailbox, mailbox-index, backlog, peers, recovery, size. A benchmark that could not run (non-zero exit, a build it
 * needs failed, or no fresh results file) is reported as such and the others
 * still run. Then it records the outcomes in test/bench/results/last-run.json
 * and writes test/bench/results.json, test/bench/RESULTS.md and the README
 * table (test/bench/report.ts).
 *
 *   npm run bench [-- --only core,relay,size] [-- --skip-build]
 *
 * Exits non-zero only when a benchmark could not run (a size over its budget
 * is reported in the table and the outcomes, not an exit code here:
 * `npx size-limit` is that check).
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LAST_RUN_FILE, writeReport, type BenchmarkOutcome } from './report.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'node_modules/.bin')
const RECOVERY_DIST = join(ROOT, 'test/bench/.recovery-dist')
/** Longest a benchmark may take before it is stopped (and counted as could not run). */
const BENCH_TIMEOUT_MS = 30 * 60_000
const BUILD_TIMEOUT_MS = 5 * 60_000

type BuildName = 'dist' | 'test-pages' | 'recovery-pages' | 'peers-page'

/** A build step: the command, and the builds it needs first. */
const BUILDS: Record<BuildName, { readonly command: readonly string[]; readonly needs: readonly BuildName[] }> = {
  dist: { command: ['npm', 'run', 'build'], needs: [] },
  'test-pages': { command: [join(BIN, 'vite'), 'build', '--config', 'test/browser/vite.config.ts'], needs: ['dist'] },
  'recovery-pages': { command: [join(BIN, 'vite'), 'build', '--config', 'test/browser/vite.config.ts', '--outDir', RECOVERY_DIST], needs: ['dist'] },
  'peers-page': { command: [join(BIN, 'vite'), 'build', '--config', 'test/bench/peers-app/vite.config.ts'], needs: ['dist'] },
}

interface Benchmark {
  readonly name: string
  readonly script: string
  readonly args?: readonly string[]
  readonly builds: readonly BuildName[]
}

const BENCHMARKS: readonly Benchmark[] = [
  { name: 'core', script: 'test/bench/core.ts', builds: [] },
  { name: 'idb', script: 'test/bench/idb.ts', builds: ['dist', 'test-pages'] },
  { name: 'idb-firefox', script: 'test/bench/idb-firefox.ts', builds: ['dist', 'test-pages'] },
  { name: 'net', script: 'test/bench/net.ts', builds: ['dist', 'test-pages'] },
  { name: 'relay', script: 'test/bench/relay.ts', builds: [] },
  { name: 'cluster', script: 'test/bench/cluster.ts', builds: [] },
  { name: 'mailbox', script: 'test/bench/mailbox.ts', builds: [] },
  { name: 'mailbox-index', script: 'test/bench/mailbox-index.ts', builds: [] },
  { name: 'backlog', script: 'test/bench/backlog.ts', builds: [] },
  { name: 'peers', script: 'test/bench/peers.ts', builds: ['dist', 'peers-page'] },
  { name: 'recovery', script: 'test/bench/recovery.ts', args: ['--dist', RECOVERY_DIST], builds: ['dist', 'recovery-pages'] },
  { name: 'size', script: 'test/bench/size.ts', builds: ['dist'] },
]

/** The benchmarks named after `--only` (comma-separated), or all. */
function selected(): readonly Benchmark[] {
  const i = process.argv.indexOf('--only')
  if (i < 0) return BENCHMARKS
  const names = (process.argv[i + 1] ?? '').split(',').filter((n) => n !== '')
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n))
  if (names.length === 0 || unknown.length > 0) throw new RangeError(`--only takes names among ${BENCHMARKS.map((b) => b.name).join(', ')}; got ${process.argv[i + 1]}`)
  return BENCHMARKS.filter((b) => names.includes(b.name))
}

/** The process group of the child running now, stopped with this process (Ctrl-C reaches only the foreground group). */
let running: number | undefined
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (running !== undefined) {
      try {
        process.kill(-running, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    process.exit(130)
  })
}

/**
 * Runs `command` in its own process group, output passed through; resolves
 * with its exit code (or signal) and the tail of its stderr. Stopped (the
 * whole group) after `timeoutMs`.
 */
function run(command: readonly string[], timeoutMs: number): Promise<{ code: number | string; stderrTail: string }> {
  return new Promise((resolve) => {
    const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, stdio: ['ignore', 'inherit', 'pipe'], detached: true })
    running = child.pid
    let stderrTail = ''
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk)
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-4000)
    })
    const timer = setTimeout(() => {
      stderrTail += `\n(stopped after ${timeoutMs / 60_000} min)`
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }, timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      resolve({ code: error.message, stderrTail })
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      running = undefined
      resolve({ code: code ?? signal ?? -1, stderrTail })
    })
  })
}

/** The line of `text` that says why (a benchmark's `could not run: ...`), else its last line that is not a stack frame. */
function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('at ') && !/^[{}[\]]/.test(l))
  return ([...lines].reverse().find((l) => l.includes('could not run')) ?? lines.at(-1) ?? '').slice(0, 300)
}

/** The results file `name` wrote, if it was written at or after `since` (ms since the epoch). */
function freshResult(name: string, since: number): { overBudget?: string[] } | undefined {
  const file = join(ROOT, `test/bench/results/${name}.json`)
  if (!existsSync(file)) return undefined
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as { date?: string; overBudget?: string[] }
    return data.date !== undefined && Date.parse(data.date) >= since ? data : undefined
  } catch {
    return undefined
  }
}

async function main(): Promise<number> {
  const benchmarks = selected()
  const skipBuild = process.argv.includes('--skip-build')
  const builds = new Map<BuildName, string | undefined>()
  /** Runs build `name` (after what it needs) once; resolves with why it failed, or undefined. */
  const build = async (name: BuildName): Promise<string | undefined> => {
    if (builds.has(name)) return builds.get(name)
    for (const need of BUILDS[name].needs) {
      const failed = await build(need)
      if (failed !== undefined) {
        builds.set(name, failed)
        return failed
      }
    }
    console.log(`\n== build ${name}: ${BUILDS[name].command.join(' ')}`)
    const { code, stderrTail } = await run(BUILDS[name].command, BUILD_TIMEOUT_MS)
    const failed = code === 0 ? undefined : `build ${name} failed (${code}): ${lastLine(stderrTail)}`
    builds.set(name, failed)
    return failed
  }
  if (!skipBuild) for (const b of benchmarks) for (const need of b.builds) await build(need)

  const outcomes: BenchmarkOutcome[] = []
  for (const b of benchmarks) {
    const started = Date.now()
    const buildFailure = b.builds.map((n) => builds.get(n)).find((f) => f !== undefined)
    if (buildFailure !== undefined) {
      outcomes.push({ name: b.name, status: 'could not run', seconds: 0, note: buildFailure })
      continue
    }
    if (!existsSync(join(ROOT, b.script))) {
      outcomes.push({ name: b.name, status: 'could not run', seconds: 0, note: `${b.script} is missing` })
      continue
    }
    console.log(`\n== bench:${b.name}`)
    const { code, stderrTail } = await run([join(BIN, 'tsx'), b.script, ...(b.args ?? [])], BENCH_TIMEOUT_MS)
    const seconds = (Date.now() - started) / 1000
    const result = freshResult(b.name, started)
    if (code !== 0 || result === undefined) {
      outcomes.push({ name: b.name, status: 'could not run', seconds, note: code !== 0 ? `exit ${code}: ${lastLine(stderrTail)}` : `exit 0 but no fresh results/${b.name}.json` })
    } else if ((result.overBudget ?? []).length > 0) {
      outcomes.push({ name: b.name, status: 'over budget', seconds, note: (result.overBudget ?? []).join(', ') })
    } else {
      outcomes.push({ name: b.name, status: 'ok', seconds })
    }
  }

  writeFileSync(LAST_RUN_FILE, `${JSON.stringify({ date: new Date().toISOString(), benchmarks: outcomes }, null, 2)}\n`)
  const figures = writeReport()
  console.log(`\n== npm run bench: ${figures} figures -> test/bench/results.json, test/bench/RESULTS.md, README.md`)
  for (const o of outcomes) console.log(`  ${o.name.padEnd(9)} ${o.status.padEnd(14)} ${String(Math.round(o.seconds)).padStart(5)} s  ${o.note ?? ''}`)
  return outcomes.some((o) => o.status === 'could not run') ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('npm run bench could not run:', error)
    process.exit(1)
  },
)
