import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { Figure } from '../bench/figures.js'

// bench:core-ab's self-test: it must tell a slower checkout from a faster one, and refuse a checkout it cannot run.
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TSX = join(ROOT, 'node_modules/.bin/tsx')
const HARNESS = join(ROOT, 'test/bench/core-ab.ts')
const dir = mkdtempSync(join(tmpdir(), 'core-ab-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/**
 * A checkout whose engines are this repository's with `microsPerSend` of CPU planted in every send: process CPU time,
 * not wall time, which on a loaded machine passes while the process waits for a core (a CI run once saw a planted
 * 40 us of wall time cost 1.4 us more CPU per message).
 */
function slowCheckout(microsPerSend: number): string {
  const checkout = join(dir, `slow-${microsPerSend}`)
  mkdirSync(join(checkout, 'src'), { recursive: true })
  const real = JSON.stringify(join(ROOT, 'src/index.ts'))
  writeFileSync(
    join(checkout, 'src/index.ts'),
    `export * from ${real}
import { ILM as Real } from ${real}
const cpu = () => { const { user, system } = process.cpuUsage(); return user + system }
const busy = () => { const end = cpu() + ${microsPerSend}; while (cpu() < end); }
export const ILM = {
  async open(options) {
    const engine = await Real.open(options)
    const send = engine.send.bind(engine)
    engine.send = (...args) => { busy(); return send(...args) }
    return engine
  },
}
`,
  )
  return checkout
}

interface Measured {
  readonly cpuMicrosPerMsg: number
  readonly rounds: readonly number[]
}

function harness(...args: string[]): { status: number | null; stderr: string; result: () => { checkouts: Measured[]; figures: Figure[] } } {
  const out = join(dir, `result-${Math.random().toString(36).slice(2)}.json`)
  const child = spawnSync(TSX, [HARNESS, '--out', out, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  return { status: child.status, stderr: child.stderr, result: () => JSON.parse(readFileSync(out, 'utf8')) as { checkouts: Measured[]; figures: Figure[] } }
}

describe('bench:core-ab', () => {
  it('reports a checkout with 80 us of CPU planted per send as that much slower than this one, alternated', () => {
    const run = harness('--rounds', '3', '--messages', '2000', slowCheckout(80), ROOT)
    expect(run.status, run.stderr).toBe(0)
    const { checkouts, figures } = run.result()
    const [slow, here] = checkouts as [Measured, Measured]
    const [result] = figures as [Figure]
    expect(slow.rounds).toHaveLength(3)
    expect(here.rounds).toHaveLength(3)
    expect(slow.cpuMicrosPerMsg - here.cpuMicrosPerMsg).toBeGreaterThan(40)
    // The figure is the last checkout against the first: under 1 when the last costs less.
    expect(result.value).toBe(here.cpuMicrosPerMsg)
    expect(result.againstValue).toBe(slow.cpuMicrosPerMsg)
    expect(result.ratio).toBeLessThan(0.8)
  }, 120_000)

  it('fails, naming the checkout, when one has no engines to run', () => {
    const empty = join(dir, 'empty')
    mkdirSync(empty, { recursive: true })
    const run = harness('--rounds', '1', '--messages', '100', empty, ROOT)
    expect(run.status).not.toBe(0)
    expect(run.stderr).toContain(`${empty} has no src/index.ts`)
  }, 60_000)
})
