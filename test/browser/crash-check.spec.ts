/**
 * Self-test of the crash checker (./crash-check.ts): a clean ledger passes
 * with its replays counted, and each failure it claims to catch, planted in
 * that ledger, is caught. No browser.
 */
import { expect, test } from '@playwright/test'
import { checkCrashLedger, type CrashLedger, type Handover, type ProblemKind } from './crash-check.js'

const h = (n: number, life: number, over: Partial<Handover> = {}): Handover => ({ from: 'alice', id: `a${n}`, seq: n, epoch: 'ea', n, life, ...over })

/**
 * alice sends n0..n6 to bob; n0..n4 resolve before the crash of life 1, n5
 * after it, n6 never reports. bob handed a0..a2 in life 1, the crash lost
 * the processed marks of a1 and a2 (still in its inbox with a3 at the start
 * of life 2), and life 2 hands a1, a2 again, then a3..a5.
 */
const clean: CrashLedger = {
  processBatch: 2,
  epochs: { alice: 'ea' },
  ranges: [{ from: 'alice', to: 'bob', first: 0, end: 100 }],
  started: [0, 1, 2, 3, 4, 5, 6].map((n) => ({ from: 'alice', to: 'bob', n })),
  resolved: [0, 1, 2, 3, 4, 5].map((n) => ({ from: 'alice', to: 'bob', n, id: `a${n}`, seq: n, life: n < 5 ? 1 : 2 })),
  rejected: [],
  handovers: { bob: [h(0, 1), h(1, 1), h(2, 1), h(1, 2), h(2, 2), h(3, 2), h(4, 2), h(5, 2)] },
  crashed: [1],
  unmarked: { bob: { 1: [], 2: ['a1', 'a2', 'a3'] } },
}

const bob = (...list: Handover[]): CrashLedger['handovers'] => ({ bob: list })

test('a clean run passes: the replays of a crash are counted, not flagged', () => {
  const verdict = checkCrashLedger(clean)
  expect(verdict.problems).toEqual([])
  expect(verdict).toMatchObject({ handovers: 8, delivered: 6, replays: 2, unknown: 1, unknownDelivered: 0, carried: { 1: 2 } })
  // A send of unknown outcome may arrive, once.
  const once = checkCrashLedger({ ...clean, handovers: bob(...clean.handovers.bob!, h(6, 2)) })
  expect(once.problems).toEqual([])
  expect(once.unknownDelivered).toBe(1)
})

const planted: Array<[string, Partial<CrashLedger>, ProblemKind]> = [
  ['a message handed over twice in one life', { handovers: bob(...clean.handovers.bob!, h(5, 2)) }, 'duplicate'],
  ['one send stored twice (two ids, one contents)', { handovers: bob(...clean.handovers.bob!, h(5, 2, { id: 'a5bis', seq: 6 })) }, 'duplicate'],
  ['a send of unknown outcome handed over twice', { handovers: bob(...clean.handovers.bob!, h(6, 2), h(6, 2)) }, 'duplicate'],
  ['a repeat whose processed mark had committed before the crash', { unmarked: { bob: { 2: ['a2', 'a3'] } } }, 'duplicate'],
  ['a repeat after a life that did not crash', { crashed: [] }, 'duplicate'],
  ['a repeat with another seq', { handovers: bob(h(0, 1), h(1, 1), h(2, 1), h(1, 2, { seq: 7 }), h(2, 2), h(3, 2), h(4, 2), h(5, 2)) }, 'duplicate'],
  ['a repeat with another epoch', { handovers: bob(h(0, 1), h(1, 1), h(2, 1), h(1, 2, { epoch: 'eb' }), h(2, 2), h(3, 2), h(4, 2), h(5, 2)) }, 'duplicate'],
  ['more replays than processBatch after one crash', { processBatch: 1 }, 'replay-out-of-bound'],
  ['a resolved send never handed over', { handovers: bob(h(0, 1), h(1, 1), h(2, 1), h(1, 2), h(2, 2), h(3, 2), h(5, 2)) }, 'lost'],
  ['a resolved send never handed over, at the end of the stream', { handovers: bob(h(0, 1), h(1, 1), h(2, 1), h(1, 2), h(2, 2), h(3, 2), h(4, 2)) }, 'lost'],
  ['two messages swapped', { handovers: bob(h(0, 1), h(1, 1), h(2, 1), h(1, 2), h(2, 2), h(4, 2), h(3, 2), h(5, 2)) }, 'reorder'],
  ['a replay after a newer message of the same life', { handovers: bob(h(0, 1), h(1, 1), h(2, 1), h(1, 2), h(3, 2), h(2, 2), h(4, 2), h(5, 2)) }, 'reorder'],
  ['contents no send had', { handovers: bob(...clean.handovers.bob!, h(500, 2, { seq: 6 })) }, 'phantom'],
  ['a message in an epoch the sender never had', { handovers: bob(...clean.handovers.bob!, h(6, 2, { epoch: 'ez' })) }, 'phantom'],
  ['a message with another seq than its send resolved with', { resolved: clean.resolved.map((r) => (r.n === 5 ? { ...r, seq: 9 } : r)) }, 'phantom'],
  ['a message with another id than its send resolved with', { resolved: clean.resolved.map((r) => (r.n === 5 ? { ...r, id: 'a9' } : r)) }, 'phantom'],
  [
    'a rejected send handed over',
    { handovers: bob(...clean.handovers.bob!, h(6, 2)), rejected: [{ from: 'alice', to: 'bob', n: 6, code: 'STORE_FAILED' }] },
    'rejected-delivered',
  ],
]

for (const [name, change, kind] of planted) {
  test(`caught: ${name} (${kind})`, () => {
    const verdict = checkCrashLedger({ ...clean, ...change })
    expect(verdict.problems.map((p) => p.kind)).toContain(kind)
  })
}
