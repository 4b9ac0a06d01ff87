/**
 * Runs the runner-agnostic contract suites of `src/testing` (store and
 * transport contracts) under Vitest.
 */
import { it } from 'vitest'
import type { ContractCase } from '../../src/testing/contract.js'

/** Registers one Vitest test per case, named after the case (then ` ${suffix}`, if given). */
export function runContract(cases: readonly ContractCase[], suffix?: string): void {
  for (const c of cases) it(suffix === undefined ? c.name : `${c.name} ${suffix}`, () => c.run())
}
