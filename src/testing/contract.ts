/**
 * One case of a contract suite. Suites are plain lists of cases so that any
 * runner can run them: Vitest in Node, or a page in a real browser.
 */
export interface ContractCase {
  readonly name: string
  run(): Promise<void>
}

/** Thrown by the contract assertions. */
export class ContractFailure extends Error {
  override readonly name = 'ContractFailure'
}

/** Fails the case unless `condition` holds. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ContractFailure(message)
}

/** Fails the case unless `actual` and `expected` are structurally equal (Uint8Array by content). */
export function checkEqual(actual: unknown, expected: unknown, message: string): void {
  if (!deepEqual(actual, expected)) {
    throw new ContractFailure(`${message}: expected ${show(expected)}, got ${show(actual)}`)
  }
}

/** Resolves with the error `promise` rejects with; fails the case if it resolves. */
export async function checkRejects(promise: Promise<unknown>, message: string): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new ContractFailure(`${message}: expected a rejection`)
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i])
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined)
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined)
  if (ka.length !== kb.length) return false
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `Uint8Array[${v.join(',')}]` : v))
}
