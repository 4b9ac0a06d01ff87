/**
 * bench:core-ab — the engines' CPU per message across commits, in one run: issue 13's engine CPU goal ("4x less than
 * when the issue was filed, measured before and after in the same run"). Each round runs bench:core's two-engine run
 * (core-ab-run.ts: memory store and network, encryption off, 64 B messages) once per checkout, each in a fresh
 * process, the checkouts alternated round by round so that a machine's drift weighs on each alike. Reports each
 * checkout's median CPU per message (process user + system, GC threads included) and msgs/s, and the last one against
 * the first (after / before: 0.25 is 4x less).
 *
 *   git worktree add /tmp/filed c5ad899 && ln -s "$PWD/node_modules" /tmp/filed/node_modules
 *   npm run bench:core-ab -- --rounds 5 /tmp/filed .
 *
 * A checkout is any commit whose `src/index.ts` exports ILM, MemoryNetwork and MemoryStore, with its dependencies
 * installed or linked. Writes test/bench/results/core-ab.json, or `--out` (a results file: its figure goes into the
 * table). Exits non-zero when a round fails, naming the checkout.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { intArg } from './args.js'
import { figure } from './figures.js'
import { median } from './peers-stats.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TSX = join(ROOT, 'node_modules/.bin/tsx')
const RUN = fileURLToPath(new URL('./core-ab-run.ts', import.meta.url))
const ROUND_TIMEOUT_MS = 5 * 60_000

const ROUNDS = intArg('--rounds', 5)
const N = intArg('--messages', 100_000)
const flags = new Set(['--rounds', '--messages', '--out'])
const argv = process.argv.slice(2)
const out = argv.includes('--out') ? (argv[argv.indexOf('--out') + 1] ?? '') : fileURLToPath(new URL('./results/core-ab.json', import.meta.url))
if (out === '') throw new TypeError('--out needs a file')
const checkouts = argv.filter((arg, i) => !flags.has(arg) && !flags.has(argv[i - 1] ?? '')).map((path) => resolve(path))
if (checkouts.length < 2) throw new TypeError('usage: core-ab.ts [--rounds 5] [--messages 100000] [--out file.json] <before checkout> ... <after checkout>')

/** The checkout's commit, short, with `+` when its work tree differs from it; its path when it is not a git checkout. */
function labelOf(checkout: string): string {
  try {
    const commit = execFileSync('git', ['-C', checkout, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['-C', checkout, 'status', '--porcelain', '--untracked-files=no', '--', 'src'], { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${commit}+` : commit
  } catch {
    return checkout
  }
}

interface Round {
  readonly cpuMicrosPerMsg: number
  readonly msgsPerSec: number
}

function runRound(checkout: string): Round {
  if (!existsSync(join(checkout, 'src/index.ts'))) throw new Error(`core-ab: ${checkout} has no src/index.ts`)
  const child = spawnSync(TSX, [RUN, checkout, String(N)], { cwd: checkout, encoding: 'utf8', timeout: ROUND_TIMEOUT_MS })
  const line = child.stdout.trim().split('\n').at(-1) ?? ''
  let round: Partial<Round> | undefined
  try {
    round = JSON.parse(line) as Partial<Round>
  } catch {
    round = undefined
  }
  if (child.status !== 0 || typeof round?.cpuMicrosPerMsg !== 'number' || typeof round.msgsPerSec !== 'number') {
    throw new Error(`core-ab: a round at ${checkout} failed (exit ${String(child.status ?? child.signal)}): ${child.stderr.trim().slice(-2000)}`)
  }
  return { cpuMicrosPerMsg: round.cpuMicrosPerMsg, msgsPerSec: round.msgsPerSec }
}

const labels = checkouts.map(labelOf)
const rounds: Round[][] = checkouts.map(() => [])
for (let r = 0; r < ROUNDS; r++) {
  for (const [i, checkout] of checkouts.entries()) {
    const round = runRound(checkout)
    rounds[i]!.push(round)
    console.log(`round ${r + 1}/${ROUNDS}  ${labels[i]!.padEnd(10)} ${round.cpuMicrosPerMsg.toFixed(2)} us CPU/msg  ${Math.round(round.msgsPerSec)} msgs/s`)
  }
}
const medians = checkouts.map((checkout, i) => ({
  checkout,
  label: labels[i]!,
  cpuMicrosPerMsg: Number(median(rounds[i]!.map((r) => r.cpuMicrosPerMsg)).toFixed(2)),
  msgsPerSec: Math.round(median(rounds[i]!.map((r) => r.msgsPerSec))),
  rounds: rounds[i]!.map((r) => Number(r.cpuMicrosPerMsg.toFixed(2))),
}))
const first = medians[0]!
const last = medians.at(-1)!
for (const m of medians) {
  console.log(`${m.label.padEnd(10)} median ${m.cpuMicrosPerMsg} us CPU/msg (${m.rounds.join(' ')})  ${m.msgsPerSec} msgs/s  ${(first.cpuMicrosPerMsg / m.cpuMicrosPerMsg).toFixed(2)}x less than ${first.label}`)
}
const result = {
  benchmark: 'core-ab',
  date: new Date().toISOString(),
  machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
  messages: N,
  rounds: ROUNDS,
  checkouts: medians,
  figures: [
    figure(
      `core-ab: two engines, encryption off, process CPU per message at ${last.label} (medians of ${ROUNDS} alternated rounds, fresh processes)`,
      last.cpuMicrosPerMsg,
      'us',
      `${first.label}, same run`,
      first.cpuMicrosPerMsg,
    ),
  ],
}
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
